"""The etcd store: objects in a real etcd, as kube-apiserver keeps them.

Division of labour, as in kube-apiserver (storage/etcd3 + the cacher):
etcd is the truth and the arbiter of every write; this process keeps a
mirror of it for reads and a watch cache for watchers, both fed by one
etcd watch of the whole prefix.

- Layout: `/registry/<resource>/<namespace>/<name>` (see `etcd_keys.py`).
  Values are the object as JSON without `metadata.resourceVersion`;
  upstream stores built-in kinds as protobuf (`k8s\\x00` + runtime.Unknown)
  and custom resources as JSON.  A protobuf value written by a real
  kube-apiserver sharing the etcd is skipped with a warning.
- resourceVersion is the key's etcd `mod_revision`; a DELETED event and a
  delete's answer carry the revision of the deletion.
- Create is a txn `create_revision(key) == 0`; update and delete with a
  precondition are a txn `mod_revision(key) == N`, without one
  `create_revision(key) > 0`; the failure branch reads the key so a missing
  key (404) and a stale resourceVersion (409) are told apart.
- Reads (`get`, `list`, `revision`) come from the mirror: the REST layer
  reads synchronously, and a LIST of 10,000 pods never leaves the process.
  The mirror starts from a LIST of the prefix at one revision (paged at that
  revision, so it is a consistent snapshot) and follows the watch from the
  next revision.  A write returns once the mirror has its revision, so the
  writer reads its own write, and watchers see events in revision order.
- Watch: served from the watch cache window, as the cacher serves them; a
  resourceVersion older than the window is "too old" (410 Gone), and so,
  after a restart, is any resourceVersion from before it, as upstream.
- Compaction, as kube-apiserver's compactor (storage/etcd3/compact.go):
  every `compaction_interval` seconds, compact to the revision seen one
  interval ago, coordinated through the version of `compact_rev_key` so
  that several API servers on one etcd compact once.  If the feed's watch
  breaks and its resume revision was compacted meanwhile, the mirror is
  re-listed, the window starts again there, and open watches end so their
  clients re-watch and get 410, then re-list.
- The revision counter is etcd's; there is nothing else to allocate here
  (Service IPs and ports are derived from the stored Services).
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import heapq
import itertools
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from .base import ConflictError, Event, ExistsError, Key, NotFoundError, ObjectCache
from .etcd_gateway import EtcdError, EtcdGateway, b64, prefix_end, unb64
from .etcd_keys import KeyLayout
from .watchcache import Watcher, WatchCache

log = logging.getLogger("kinns.store.etcd")

COMPACT_REV_KEY = b"compact_rev_key"   # upstream's, outside the prefix
LIST_PAGE = 1000


class EtcdStore(ObjectCache):
    """A Store on etcd's v3 API; see the module docstring."""

    def __init__(self, endpoint: str, *, prefix: str = "/registry", ssl_context: ssl.SSLContext | None = None,
                 watch_cache_size: int = 100_000, compaction_interval: float = 300.0,
                 connect_timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.layout = KeyLayout(prefix)
        self._ssl = ssl_context
        self._cache_size = watch_cache_size
        self._compaction_interval = compaction_interval
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._keys: dict[bytes, Key] = {}      # etcd key -> store key, for DELETE events
        self._revision = 0
        # The REST layer constructs its store synchronously (often inside the
        # event loop), so the first consistent list runs to completion on a
        # thread with its own loop and connection.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinns-etcd-list") as ex:
            kvs, rev = ex.submit(asyncio.run, self._first_list(connect_timeout)).result()
        self._load(kvs, rev)
        self._cache = WatchCache(rev, capacity=watch_cache_size)
        self._gw: EtcdGateway | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._closed = False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return                     # started by the first write or watch
        self._start()

    # -- start-up ----------------------------------------------------------

    async def _first_list(self, connect_timeout: float) -> tuple[builtins.list[dict[str, Any]], int]:
        gw = EtcdGateway(self.endpoint, ssl_context=self._ssl, unavailable_wait=0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        try:
            while True:
                try:
                    return await self._list_all(gw)
                except EtcdError as exc:
                    # kube-apiserver waits for its etcd the same way (static pods start together).
                    if loop.time() > deadline:
                        raise EtcdError(exc.code, f"etcd at {self.endpoint} did not answer within "
                                                  f"{connect_timeout:.0f}s: {exc.message}") from exc
                    await asyncio.sleep(0.2)
        finally:
            await gw.close()

    async def _list_all(self, gw: EtcdGateway) -> tuple[builtins.list[dict[str, Any]], int]:
        """Every key under the prefix at one revision, in pages at that revision."""
        start = self.layout.range_prefix()
        end = prefix_end(start)
        rev = 0
        kvs: builtins.list[dict[str, Any]] = []
        while True:
            page = await gw.range(start, end, revision=rev, limit=LIST_PAGE)
            rev = rev or int(page["header"]["revision"])
            kvs += page.get("kvs", [])
            if not page.get("more"):
                return kvs, rev
            start = unb64(kvs[-1]["key"]) + b"\0"

    def _load(self, kvs: builtins.list[dict[str, Any]], rev: int) -> None:
        self._objects, self._keys = {}, {}
        for kv in kvs:
            k = unb64(kv["key"])
            obj = self._decode(k, kv)
            key = self.layout.parse(k, obj) if obj is not None else None
            if obj is not None and key is not None:
                self._objects.setdefault(key[0], {})[(key[1], key[2])] = obj
                self._keys[k] = key
        self._revision = rev

    def _start(self) -> None:
        if self._gw is not None or self._closed:
            return
        self._gw = EtcdGateway(self.endpoint, ssl_context=self._ssl)
        self._tasks.append(asyncio.get_running_loop().create_task(self._feed()))
        if self._compaction_interval > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._compactor()))

    def _gateway(self) -> EtcdGateway:
        self._start()
        assert self._gw is not None, "store is closed"
        return self._gw

    # -- values ------------------------------------------------------------

    @staticmethod
    def _encode(obj: dict[str, Any]) -> str:
        meta = dict(obj.get("metadata") or {})
        meta.pop("resourceVersion", None)
        return b64(orjson.dumps({**obj, "metadata": meta}))

    @staticmethod
    def _decode(etcd_key: bytes, kv: dict[str, Any]) -> dict[str, Any] | None:
        raw = unb64(kv.get("value", ""))
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("skipping %s: not a JSON object (%r...)", etcd_key.decode(errors="replace"), raw[:8])
            return None
        if not isinstance(obj, dict):
            return None
        obj["metadata"] = dict(obj.get("metadata") or {})
        obj["metadata"]["resourceVersion"] = str(kv["mod_revision"])
        return obj

    # Reads: ObjectCache.

    # -- writes ------------------------------------------------------------

    def _etcd_key(self, key: Key) -> bytes:
        # Remembered so the feed files the object under this resource even if
        # its apiVersion does not name the group (etcd_keys.KeyLayout.parse).
        k = self.layout.key(key)
        self._keys[k] = key
        return k

    async def create(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        k = self._etcd_key(key)
        resp = await self._gateway().txn(
            [{"key": b64(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": b64(k), "value": self._encode(obj)}}])
        if not resp.get("succeeded"):
            raise ExistsError(key)
        return await self._acknowledged(resp, obj)

    async def update(self, key: Key, obj: dict[str, Any], expected_rv: str | None = None) -> dict[str, Any]:
        k = self._etcd_key(key)
        resp = await self._gateway().txn(
            [self._precondition(k, key, expected_rv)],
            [{"request_put": {"key": b64(k), "value": self._encode(obj)}}],
            [{"request_range": {"key": b64(k), "count_only": True}}])
        if not resp.get("succeeded"):
            self._raise_failed(key, resp)
        return await self._acknowledged(resp, obj)

    async def delete(self, key: Key, expected_rv: str | None = None) -> dict[str, Any]:
        k = self._etcd_key(key)
        resp = await self._gateway().txn(
            [self._precondition(k, key, expected_rv)],
            [{"request_delete_range": {"key": b64(k), "prev_kv": True}}],
            [{"request_range": {"key": b64(k), "count_only": True}}])
        if not resp.get("succeeded"):
            self._raise_failed(key, resp)
        prev = resp["responses"][0]["response_delete_range"]["prev_kvs"][0]
        old = self._decode(k, prev) or {"metadata": {}}
        return await self._acknowledged(resp, old)

    @staticmethod
    def _precondition(k: bytes, key: Key, expected_rv: str | None) -> dict[str, Any]:
        if not expected_rv:
            return {"key": b64(k), "target": "CREATE", "result": "GREATER", "create_revision": "0"}
        try:
            rv = int(expected_rv)
        except ValueError:
            raise ConflictError(key) from None
        return {"key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": str(rv)}

    @staticmethod
    def _raise_failed(key: Key, resp: dict[str, Any]) -> None:
        found = int(resp["responses"][0]["response_range"].get("count", 0))
        raise ConflictError(key) if found else NotFoundError(key)

    async def _acknowledged(self, resp: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        """The written object as its writer sees it, once the mirror (and so every
        read and watch of this process) has caught up with the write."""
        rev = int(resp["header"]["revision"])
        await self._caught_up(rev)
        out = copy.copy(obj)
        out["metadata"] = {**(obj.get("metadata") or {}), "resourceVersion": str(rev)}
        return out

    async def _caught_up(self, rev: int) -> None:
        if self._revision >= rev:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rev, next(self._seq), fut))
        await fut

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._revision:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    # -- the feed: one watch of the whole prefix ---------------------------

    async def _feed(self) -> None:
        gw = self._gateway()
        start = self.layout.range_prefix()
        backoff = 0.05
        while True:
            try:
                async for msg in gw.watch(start, prefix_end(start), self._revision + 1):
                    backoff = 0.05
                    if msg.get("compact_revision") and msg.get("canceled"):
                        log.warning("etcd compacted past revision %d (to %s): re-listing",
                                    self._revision + 1, msg["compact_revision"])
                        await self._relist(gw)
                        break
                    if msg.get("canceled"):
                        raise EtcdError(0, f"watch canceled: {msg.get('cancel_reason', '')}")
                    if not msg.get("created"):
                        self._apply(msg)
                else:
                    await asyncio.sleep(backoff)   # etcd ended the stream (shutting down): watch again
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:   # a silent stream (half-open connection, no progress notifications)
                log.debug("etcd watch idle; watching again from revision %d", self._revision + 1)
            except Exception as exc:  # etcd restarting, connection lost: resume where we were
                log.warning("etcd watch broke (%s); resuming from revision %d", exc, self._revision + 1)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _apply(self, msg: dict[str, Any]) -> None:
        events = msg.get("events") or []
        if not events:
            # A progress notification: every change up to this revision was sent.
            self._revision = max(self._revision, int(msg.get("header", {}).get("revision", 0)))
            self._wake()
            return
        out: builtins.list[Event] = []
        for e in events:
            kv = e["kv"]
            k = unb64(kv["key"])
            rev = int(kv["mod_revision"])
            self._revision = max(self._revision, rev)
            if e.get("type") == "DELETE":
                key = self._keys.pop(k, None)
                old = self._objects.get(key[0], {}).pop((key[1], key[2]), None) if key else None
                if key is not None and old is not None:
                    gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(rev)}}
                    out.append(Event(rev, "DELETED", key, gone, old))
                continue
            obj = self._decode(k, kv)
            key = self._keys.get(k) or (self.layout.parse(k, obj) if obj is not None else None)
            if obj is None or key is None:
                continue
            self._keys[k] = key
            bucket = self._objects.setdefault(key[0], {})
            prev = bucket.get((key[1], key[2]))
            bucket[(key[1], key[2])] = obj
            out.append(Event(rev, "ADDED" if prev is None else "MODIFIED", key, obj, prev))
        self._cache.publish(out)
        self._wake()

    async def _relist(self, gw: EtcdGateway) -> None:
        kvs, rev = await self._list_all(gw)
        self._load(kvs, max(rev, self._revision))
        old, self._cache = self._cache, WatchCache(self._revision, capacity=self._cache_size)
        old.close()
        self._wake()

    # -- compaction (kube-apiserver's compactor) ---------------------------

    async def _compactor(self) -> None:
        t, rev = 0, 0
        while True:
            await asyncio.sleep(self._compaction_interval)
            try:
                t, rev = await self.compact_step(t, rev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("etcd compaction failed: %s", exc)

    async def compact_step(self, t: int, rev: int) -> tuple[int, int]:
        """One round of upstream's compactor: if `compact_rev_key` still has
        version `t` (no other API server compacted since), claim the round and
        compact to `rev`; returns the (version, current revision) for the next."""
        gw = self._gateway()
        resp = await gw.txn(
            [{"key": b64(COMPACT_REV_KEY), "target": "VERSION", "result": "EQUAL", "version": str(t)}],
            [{"request_put": {"key": b64(COMPACT_REV_KEY), "value": b64(str(rev))}}],
            [{"request_range": {"key": b64(COMPACT_REV_KEY)}}])
        cur_rev = int(resp["header"]["revision"])
        if not resp.get("succeeded"):
            return int(resp["responses"][0]["response_range"]["kvs"][0]["version"]), cur_rev
        if rev:   # never on the first round (upstream: "we don't compact on bootstrap")
            try:
                await gw.compact(rev)
            except EtcdError as exc:
                if not exc.compacted:
                    raise
            log.info("compacted etcd to revision %d", rev)
        return t + 1, cur_rev

    # -- watch -------------------------------------------------------------

    def watch(self, resource: str, namespace: str | None, since: int) -> Watcher:
        self._start()
        return self._cache.watch(resource, namespace, since)

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(EtcdError(0, "store closed"))
        self._waiters = []
        self._cache.close()
        if self._gw is not None:
            await self._gw.close()
            self._gw = None
