"""The shape every kinns controller shares: informers → work queue → reconcile.

A subclass registers informer handlers in `setup()` that do nothing but
`enqueue` keys, and implements `reconcile(key)`: read the cache, compute
what should be, make it so.  Reconcile is level-triggered and idempotent;
running it twice for the same state changes nothing, so losing or doubling
a notification is harmless.

The base class owns the plumbing: N workers pull keys from a de-duplicating
queue (never the same key twice at once), a raised exception re-queues the
key with per-key exponential back-off, a returned number re-queues it after
that many seconds (polling a state nobody will notify us about), and
`stop()` lets workers finish the key in hand before cancelling them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..api.errors import ApiError
from ..client.client import Client, Obj, object_key
from ..client.informer import InformerFactory
from ..client.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)


class Controller:
    name = "controller"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 workers: int | None = None) -> None:
        self.client = client
        self.factory = factory or InformerFactory(client)
        self._own_factory = factory is None
        if workers is not None:
            self.workers = workers
        self.queue = WorkQueue(self.name)
        self._tasks: list[asyncio.Task[None]] = []
        self._setup_done = False

    # ----------------------------------------------------- for subclasses

    def setup(self) -> None:
        """Create informers from `self.factory` and register handlers."""

    async def reconcile(self, key: str) -> float | None:
        """Make the world match the desired state for `key`.

        Return None when done, or seconds after which to look again.
        Raise to retry with back-off.
        """
        raise NotImplementedError

    # ---------------------------------------------------------- enqueuing

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_obj(self, obj: Obj, *_: Any) -> None:
        """Handler-shaped: usable directly as on_add / on_delete (and on_update via lambda)."""
        self.queue.add(object_key(obj))

    # ---------------------------------------------------------- lifecycle

    async def start(self, sync_timeout: float | None = 30.0) -> None:
        """Start informers (if we own the factory), wait for sync, start workers."""
        if not self._setup_done:
            self.setup()
            self._setup_done = True
        self.factory.start()
        if not await self.factory.wait_for_sync(sync_timeout):
            log.warning("%s: informers not synced after %ss; starting anyway", self.name, sync_timeout)
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}"))

    async def run(self) -> None:
        """Start, then run until cancelled; stops gracefully on the way out."""
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking keys; let workers finish the key in hand, then cancel."""
        self.queue.shutdown()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._own_factory:
            await self.factory.stop()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                after = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retry every failure with back-off
                delay = self.queue.when(key)
                if isinstance(exc, ApiError) and exc.code == 409:
                    log.debug("%s: %s: conflict, retrying in %.2fs", self.name, key, delay)
                else:
                    log.warning("%s: reconcile %s failed (retry in %.2fs): %s", self.name, key, delay, exc,
                                exc_info=not isinstance(exc, ApiError))
                self.queue.add_after(key, delay)
            else:
                self.queue.forget(key)
                if after is not None:
                    self.queue.add_after(key, after)
            finally:
                self.queue.done(key)
