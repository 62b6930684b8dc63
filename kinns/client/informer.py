"""Informers: a local, always-current copy of one kind, fed by list + watch.

An `Informer` lists the kind once, then watches from the list's
resourceVersion, applying each event to an in-memory cache and telling its
handlers (`on_add`, `on_update`, `on_delete`).  Controllers read the cache,
never the API, on their hot path.

When the watch breaks it resumes from the last resourceVersion seen (kept
fresh by BOOKMARKs); when the server says that version is too old (410
Expired) it lists again and reconciles the cache with the new list, so
handlers see the adds, updates and deletes they missed.  Failures back off
exponentially, so a restarting API server is not hammered.

Indexers answer "which objects have X" without a scan: by namespace
always, and by any function of an object (pods by `spec.nodeName`,
anything by owner UID).  An `InformerFactory` shares one informer per
(kind, namespace, selectors) among all controllers of a process.

Cached objects are shared: handlers and readers must copy before changing one.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import random
from typing import Any, Awaitable, Callable, Iterable, Union

from ..api.errors import ApiError
from .client import Client, Obj, object_key

log = logging.getLogger(__name__)

AddHandler = Callable[[Obj], Union[None, Awaitable[None]]]
UpdateHandler = Callable[[Obj, Obj], Union[None, Awaitable[None]]]
DeleteHandler = Callable[[Obj], Union[None, Awaitable[None]]]
IndexFunc = Callable[[Obj], Iterable[str]]

NAMESPACE_INDEX = "namespace"


def index_by_namespace(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace", "")]


def index_by_owner_uid(obj: Obj) -> list[str]:
    return [r["uid"] for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid")]


def index_by_node_name(obj: Obj) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


class Informer:
    def __init__(
        self,
        client: Client,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        min_backoff: float = 0.05,
        max_backoff: float = 30.0,
        watch_timeout: tuple[int, int] = (300, 600),
        resync_period: float | None = None,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.rt = client.resource((api_version, kind))
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.watch_timeout = watch_timeout
        self.resync_period = resync_period
        self._cache: dict[str, Obj] = {}
        # What the cache keeps of each object (client-go's SetTransform): a process that
        # needs a few fields of every pod in the cluster need not hold them all.
        self.transform: Callable[[Obj], Obj] | None = None
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: index_by_namespace}
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        self._add_handlers: list[AddHandler] = []
        self._update_handlers: list[UpdateHandler] = []
        self._delete_handlers: list[DeleteHandler] = []
        self._synced = asyncio.Event()
        self._background: set[asyncio.Future[Any]] = set()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.resource_version = ""
        self.lists = 0    # how many times we listed (tests, metrics)
        self.watches = 0  # how many watches we opened

    # ----------------------------------------------------------- handlers

    def add_handlers(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; a late registrant gets an add for every cached object."""
        if on_add:
            self._add_handlers.append(on_add)
            if self._synced.is_set():
                for obj in list(self._cache.values()):
                    self._call(on_add, obj)
        if on_update:
            self._update_handlers.append(on_update)
        if on_delete:
            self._delete_handlers.append(on_delete)

    def _call(self, fn: Callable[..., Any], *args: Obj) -> None:
        try:
            out = fn(*args)
            if inspect.isawaitable(out):
                task = asyncio.ensure_future(out)
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        except Exception:  # noqa: BLE001 - one bad handler must not kill the informer
            log.exception("%s informer handler %r failed", self.kind, fn)

    # ----------------------------------------------------------- indexers

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        if name in self._indexers:
            return
        self._indexers[name] = func
        idx: dict[str, set[str]] = {}
        for key, obj in self._cache.items():
            for v in func(obj):
                idx.setdefault(v, set()).add(key)
        self._indices[name] = idx

    def _index(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._indexers.items():
            idx = self._indices[name]
            if old is not None:
                for v in func(old):
                    s = idx.get(v)
                    if s is not None:
                        s.discard(key)
                        if not s:
                            del idx[v]
            if new is not None:
                for v in func(new):
                    idx.setdefault(v, set()).add(key)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        keys = self._indices[name].get(value, ())
        return [self._cache[k] for k in sorted(keys) if k in self._cache]

    def index_keys(self, name: str, value: str) -> builtins.list[str]:
        return sorted(self._indices[name].get(value, ()))

    # -------------------------------------------------------------- reads

    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._cache.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> builtins.list[Obj]:
        if namespace is None:
            return list(self._cache.values())
        return self.by_index(NAMESPACE_INDEX, namespace)

    def keys(self) -> builtins.list[str]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # ----------------------------------------------------------- applying

    def _upsert(self, obj: Obj) -> None:
        if self.transform is not None:
            obj = self.transform(obj)
        key = object_key(obj)
        old = self._cache.get(key)
        self._cache[key] = obj
        self._index(key, old, obj)
        if old is None:
            for h in self._add_handlers:
                self._call(h, obj)
        else:
            for uh in self._update_handlers:
                self._call(uh, old, obj)

    def _remove(self, obj: Obj) -> None:
        key = object_key(obj)
        old = self._cache.pop(key, None)
        if old is None:
            return
        self._index(key, old, None)
        for h in self._delete_handlers:
            self._call(h, obj)

    def _replace(self, items: builtins.list[Obj]) -> None:
        """Make the cache equal a fresh list, reporting the differences."""
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self._cache if k not in fresh]:
            self._remove(self._cache[key])  # we missed its delete: last state known
        for key, obj in fresh.items():
            old = self._cache.get(key)
            if old is not None and _rv(old) == _rv(obj):
                continue
            self._upsert(obj)

    # ----------------------------------------------------------------- run

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.kind}")
        if self.resync_period and (self._resync_task is None or self._resync_task.done()):
            self._resync_task = asyncio.create_task(self._resync_loop(self.resync_period),
                                                    name=f"informer-{self.kind}-resync")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        self._task = self._resync_task = None
        for task in tasks:
            # Cancel until it is done: on Python 3.11 `asyncio.wait_for` can
            # swallow a cancellation that races its inner result, and the
            # watch loop would then run on (seen as a hung stop()).
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
            if not task.cancelled():
                task.exception()    # retrieved, so it is not reported as unhandled

    async def _resync_loop(self, period: float) -> None:
        """Re-deliver every cached object as an update (old is new), as a safety net.

        Level-triggered controllers use it to re-check state that changes
        without an API event (time passing, the outside world).
        """
        while True:
            await asyncio.sleep(period)
            if not self.has_synced:
                continue
            for obj in list(self._cache.values()):
                for uh in self._update_handlers:
                    self._call(uh, obj, obj)

    async def run(self) -> None:
        """List, then watch forever; re-list when the watch's history expired."""
        backoff = self.min_backoff
        need_list = True
        while True:
            try:
                if need_list:
                    items, rv = await self.client.list(
                        self.rt, self.namespace, label_selector=self.label_selector,
                        field_selector=self.field_selector)
                    self.lists += 1
                    self._replace(items)
                    self.resource_version = rv
                    self._synced.set()
                    need_list = False
                    backoff = self.min_backoff
                self.watches += 1
                got_any = False
                async for ev in self.client.watch(
                    self.rt, self.namespace, resource_version=self.resource_version,
                    label_selector=self.label_selector, field_selector=self.field_selector,
                    allow_bookmarks=True, timeout_seconds=random.randint(*self.watch_timeout),
                ):
                    self._apply(ev)
                    got_any = True
                    backoff = self.min_backoff
                if got_any:
                    # The server closed the watch (its timeout): resume at once.
                    continue
                # An empty watch that ended at once: do not spin; back off quietly.
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.code == 410:
                    log.debug("%s watch expired at %s; re-listing", self.kind, self.resource_version)
                    need_list = True
                    continue
                log.warning("%s informer: %s (%s); retrying in %.2fs", self.kind, exc.message, exc.code, backoff)
            except Exception as exc:  # noqa: BLE001 - connection trouble: back off and retry
                log.warning("%s informer: %r; retrying in %.2fs", self.kind, exc, backoff)
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

    def _apply(self, ev: Obj) -> None:
        typ = ev.get("type")
        obj = ev.get("object") or {}
        rv = _rv(obj)
        if typ == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        if typ in ("ADDED", "MODIFIED"):
            obj.setdefault("apiVersion", self.rt.api_version)
            obj.setdefault("kind", self.rt.kind)
            self._upsert(obj)
        elif typ == "DELETED":
            self._remove(obj)
        if rv:
            self.resource_version = rv


class InformerFactory:
    """One informer per (kind, namespace, selectors), shared by a process's controllers."""

    def __init__(self, client: Client, *, resync_period: float | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[tuple[str, str, str | None, str | None, str | None], Informer] = {}
        self._started = False

    def informer(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer:
        key = (api_version, kind, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, api_version, kind, namespace, label_selector, field_selector,
                           resync_period=self.resync_period)
            self._informers[key] = inf
            if self._started:
                inf.start()
        return inf

    def informers(self) -> builtins.list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer made so far (and, from now on, any made later)."""
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(i.wait_for_sync(timeout) for i in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
