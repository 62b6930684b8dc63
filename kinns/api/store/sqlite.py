"""The embedded store: objects in memory, made durable in SQLite (WAL).

Division of labour: the in-memory maps are the read path (a LIST of 10,000
pods never touches the database), SQLite is the durability path, and the
watch cache is the notification path.  A write updates memory at once, on
the event loop, so the next request sees it and conditional writes cannot
race; then it joins the current batch, and one background task commits each
batch in a single transaction on a worker thread (group commit).  The write
returns, and its watch event is published, only after its batch is on disk,
so a client never sees an answer the store could still lose, and watchers
see events in revision order.

Like kine (etcd over SQL), one global revision counter gives every write its
resourceVersion.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from .base import ConflictError, Event, ExistsError, Key, NotFoundError, ObjectCache
from .watchcache import Watcher, WatchCache

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


class SqliteStore(ObjectCache):
    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self._path = str(path)
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: each committed batch is fsynced, so an acknowledged write survives a crash.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.executescript(_SCHEMA)
        self._db_lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        rev = 0
        for resource, ns, name, revision, data in self._db.execute(
            "SELECT resource, namespace, name, revision, data FROM objects"
        ):
            self._objects.setdefault(resource, {})[(ns, name)] = orjson.loads(data)
            rev = max(rev, revision)
        row = self._db.execute("SELECT v FROM meta WHERE k='revision'").fetchone()
        self._revision = max(rev, row[0] if row else 0)
        self._cache = WatchCache(self._revision)
        self._pending: list[tuple[Event, asyncio.Future[None]]] = []
        # Commits get a thread of their own: queued behind other blocking work
        # in the shared default executor, every write would wait for it.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinns-store")
        self._flush_task: asyncio.Task[None] | None = None

    # Reads: ObjectCache.

    # -- writes ------------------------------------------------------------

    def _stamp(self, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._revision += 1
        obj = copy.copy(obj)
        obj["metadata"] = dict(obj.get("metadata") or {})
        obj["metadata"]["resourceVersion"] = str(self._revision)
        return self._revision, obj

    async def create(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        bucket = self._objects.setdefault(key[0], {})
        if (key[1], key[2]) in bucket:
            raise ExistsError(key)
        rev, obj = self._stamp(obj)
        bucket[(key[1], key[2])] = obj
        await self._commit(Event(rev, "ADDED", key, obj))
        return obj

    async def update(self, key: Key, obj: dict[str, Any], expected_rv: str | None = None) -> dict[str, Any]:
        bucket = self._objects.get(key[0], {})
        old = bucket.get((key[1], key[2]))
        if old is None:
            raise NotFoundError(key)
        if expected_rv and old["metadata"].get("resourceVersion") != expected_rv:
            raise ConflictError(key)
        rev, obj = self._stamp(obj)
        bucket[(key[1], key[2])] = obj
        await self._commit(Event(rev, "MODIFIED", key, obj, old))
        return obj

    async def delete(self, key: Key, expected_rv: str | None = None) -> dict[str, Any]:
        bucket = self._objects.get(key[0], {})
        old = bucket.get((key[1], key[2]))
        if old is None:
            raise NotFoundError(key)
        if expected_rv and old["metadata"].get("resourceVersion") != expected_rv:
            raise ConflictError(key)
        del bucket[(key[1], key[2])]
        # A deleted object is reported with the revision of its deletion.
        rev, gone = self._stamp(old)
        await self._commit(Event(rev, "DELETED", key, gone, old))
        return gone

    # -- group commit ------------------------------------------------------

    async def _commit(self, ev: Event) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((ev, fut))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._write_batch, [ev for ev, _ in batch])
            except Exception as exc:  # pragma: no cover - disk full and such
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self._cache.publish(ev for ev, _ in batch)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    def _write_batch(self, events: builtins.list[Event]) -> None:
        with self._db_lock:
            cur = self._db.cursor()
            cur.execute("BEGIN")
            for ev in events:
                res, ns, name = ev.key
                if ev.type == "DELETED":
                    cur.execute(
                        "DELETE FROM objects WHERE resource=? AND namespace=? AND name=?", (res, ns, name)
                    )
                else:
                    cur.execute(
                        "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?)",
                        (res, ns, name, ev.revision, orjson.dumps(ev.obj)),
                    )
            cur.execute(
                "INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (events[-1].revision,)
            )
            cur.execute("COMMIT")

    # -- watch -------------------------------------------------------------

    def watch(self, resource: str, namespace: str | None, since: int) -> Watcher:
        return self._cache.watch(resource, namespace, since)

    async def close(self) -> None:
        if self._flush_task is not None:
            await self._flush_task
        self._cache.close()
        self._writer.shutdown(wait=True)
        with self._db_lock:
            self._db.close()
