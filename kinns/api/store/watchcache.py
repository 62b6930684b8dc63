"""Fan-out of committed changes to many watchers from one in-memory window.

Like the kube-apiserver's watch cache, this keeps the most recent events in a
ring so that a watcher starting at a recent resourceVersion can be replayed
without touching the database, and so that a hundred watchers cost one
append each rather than a hundred queries.  A watcher asking to start before
the window gets `TooOldError`, which the REST layer turns into the 410 Gone
("Expired") that makes clients re-list.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Iterable

from .base import Event, TooOldError


class Watcher:
    """One watch stream: events for one resource (and optionally namespace)."""

    def __init__(self, cache: "WatchCache", resource: str, namespace: str | None, since: int) -> None:
        self._cache = cache
        # Events at or before `since` were already seen by the caller's list
        # (which may include writes whose commit is still in flight).
        self.since = since
        self.resource = resource
        self.namespace = namespace
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._stopped = False

    def wants(self, ev: Event) -> bool:
        return ev.revision > self.since and ev.key[0] == self.resource and (self.namespace is None or ev.key[1] == self.namespace)

    def push(self, ev: Event) -> None:
        if not self._stopped:
            self._queue.put_nowait(ev)

    def __aiter__(self) -> "Watcher":
        return self

    async def __anext__(self) -> Event:
        if self._stopped:
            raise StopAsyncIteration
        ev = await self._queue.get()
        if ev is None:
            raise StopAsyncIteration
        return ev

    async def next(self, timeout: float | None) -> Event | None:
        """The next event, or None when `timeout` passes first (for bookmarks).

        An event already queued is returned at once: `wait_for` would wrap
        the wait in a new task (Python 3.11), and during a rollout most
        calls find one waiting."""
        if not self._stopped and not self._queue.empty():
            ev = self._queue.get_nowait()
            if ev is None:
                raise StopAsyncIteration
            return ev
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except asyncio.TimeoutError:
            return None

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._cache.remove(self)
            self._queue.put_nowait(None)


class WatchCache:
    """A bounded window of recent events and the live watchers."""

    def __init__(self, start_revision: int, capacity: int = 100_000) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        # Oldest revision a watch may start from and still see every later event.
        self._window_start = start_revision
        self._watchers: set[Watcher] = set()

    def publish(self, events: Iterable[Event]) -> None:
        for ev in events:
            if len(self._events) == self._events.maxlen:
                self._window_start = self._events[0].revision
            self._events.append(ev)
            for w in list(self._watchers):
                if w.wants(ev):
                    w.push(ev)

    def watch(self, resource: str, namespace: str | None, since: int) -> Watcher:
        """A watcher that first replays events after `since`, then follows live ones."""
        if since < self._window_start:
            raise TooOldError(since)
        w = Watcher(self, resource, namespace, since)
        for ev in self._events:
            if w.wants(ev):
                w.push(ev)
        self._watchers.add(w)
        return w

    def remove(self, w: Watcher) -> None:
        self._watchers.discard(w)

    def close(self) -> None:
        for w in list(self._watchers):
            w.stop()

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)
