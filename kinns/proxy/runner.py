"""When kube-proxy syncs: upstream's BoundedFrequencyRunner, on asyncio.

Event handlers only *ask* for a sync (`request()`); the runner decides
when it happens: at once if the last sync is older than `min_interval`,
else as soon as `min_interval` has passed (so a burst of changes becomes
one sync), at least every `max_interval` even with no changes (the periodic
full resync that repairs drift), and again after `retry_interval` when a
sync failed.  The clock is injectable so tests need not sleep.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    def __init__(self, fn: Callable[[], Awaitable[None]], *, min_interval: float, max_interval: float,
                 retry_interval: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval
        self._clock = clock
        self._wake = asyncio.Event()
        self.last_run = float("-inf")
        self._retry_at: float | None = None
        self.runs = 0

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def request(self) -> None:
        """Ask for a sync soon (coalesced with any already pending)."""
        self._wake.set()

    def next_due(self) -> float:
        """When the next sync must happen even with no request."""
        due = self.last_run + self.max_interval
        if self._retry_at is not None:
            due = min(due, self._retry_at)
        return due

    async def loop(self) -> None:
        while True:
            timeout = max(0.0, self.next_due() - self.now())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            gap = self.last_run + self.min_interval - self.now()
            if gap > 0:
                await asyncio.sleep(gap)
            self._wake.clear()
            await self.run_once()

    async def run_once(self) -> None:
        self.last_run = self.now()
        self.runs += 1
        try:
            await self.fn()
            self._retry_at = None
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; the runner retries
            log.exception("sync failed; retrying in %.1fs", self.retry_interval)
            self._retry_at = self.now() + self.retry_interval
