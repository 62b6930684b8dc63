"""A work queue of string keys for level-triggered controllers.

Informer handlers only say *which* object needs attention (its key); the
worker then reads the current state and reconciles.  So the queue's job is
bookkeeping, with the same guarantees as client-go's workqueue:

- de-duplication: a key added many times before a worker takes it is
  handed out once;
- exclusion: a key being processed is never handed to a second worker; if
  it is added meanwhile it is queued again when the first worker calls
  `done`, so no change is lost;
- delays: `add_after` parks a key until later (keeping the earliest time
  when parked twice);
- rate limiting per key: `add_rate_limited` waits base·2^failures (capped),
  and `forget` resets the count after a success.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ShutDown(Exception):
    """Raised by `get` once the queue is shut down and drained."""


class WorkQueue:
    def __init__(self, name: str = "", *, base_delay: float = 0.005, max_delay: float = 300.0) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()        # waiting to be handed out
        self._processing: set[str] = set()   # handed out, not yet done
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._parked: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}
        self._shutting_down = False

    # ------------------------------------------------------------- adding

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` after `delay` seconds; an earlier pending time wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        old = self._parked.get(key)
        if old is not None:
            if old.when() <= when:
                return
            old.cancel()
        self._parked[key] = loop.call_at(when, self._unpark, key)

    def _unpark(self, key: str) -> None:
        self._parked.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        """Re-add after a per-key exponential back-off (a failed attempt)."""
        self.add_after(key, self.when(key))

    def when(self, key: str) -> float:
        """Next back-off for `key`, counting this as one more failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return float(min(self.base_delay * (2 ** min(n, 62)), self.max_delay))

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """Stop tracking failures of `key` (call after it succeeded)."""
        self._failures.pop(key, None)

    # ------------------------------------------------------------- taking

    async def get(self) -> str:
        """The next key; marks it as processing until `done(key)`."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # If we were woken for an item we will not take, pass it on.
                if fut.done() and not fut.cancelled() and self._queue:
                    self._wake_one()
                raise
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # ------------------------------------------------------------ lifecycle

    def shutdown(self) -> None:
        """Refuse new keys; `get` raises `ShutDown` once the queue is empty."""
        self._shutting_down = True
        for h in self._parked.values():
            h.cancel()
        self._parked.clear()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        return len(self._queue)

    def pending(self) -> int:
        """Keys queued or parked (for tests and metrics)."""
        return len(self._queue) + len(self._parked)

    def is_processing(self, key: str) -> bool:
        return key in self._processing
