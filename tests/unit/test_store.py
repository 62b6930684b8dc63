"""The SQLite store and its watch cache: revisions, conflicts, order, durability."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kinns.api.store.base import ConflictError, ExistsError, NotFoundError, TooOldError
from kinns.api.store.sqlite import SqliteStore
from kinns.api.store.watchcache import WatchCache


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data}


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_revisions_and_conflicts(tmp_path: Path) -> None:
    async def go() -> None:
        s = SqliteStore(tmp_path / "db")
        a = await s.create(("configmaps", "default", "a"), cm("a"))
        assert a["metadata"]["resourceVersion"] == "1"
        with pytest.raises(ExistsError):
            await s.create(("configmaps", "default", "a"), cm("a"))
        b = await s.update(("configmaps", "default", "a"), cm("a", k="v"), expected_rv="1")
        assert b["metadata"]["resourceVersion"] == "2"
        with pytest.raises(ConflictError):
            await s.update(("configmaps", "default", "a"), cm("a", k="w"), expected_rv="1")
        with pytest.raises(NotFoundError):
            await s.delete(("configmaps", "default", "zzz"))
        gone = await s.delete(("configmaps", "default", "a"))
        assert gone["metadata"]["resourceVersion"] == "3" and s.get(("configmaps", "default", "a")) is None
        await s.close()
    run(go())


def test_watch_replays_then_follows_in_order(tmp_path: Path) -> None:
    async def go() -> None:
        s = SqliteStore(tmp_path / "db")
        await s.create(("configmaps", "default", "a"), cm("a"))
        await s.create(("configmaps", "other", "b"), cm("b"))
        w = s.watch("configmaps", "default", 0)
        await asyncio.gather(*(s.create(("configmaps", "default", f"c{i}"), cm(f"c{i}")) for i in range(50)))
        await s.delete(("configmaps", "default", "a"))
        seen = []
        for _ in range(52):
            ev = await asyncio.wait_for(w.__anext__(), 1)
            seen.append((ev.type, ev.key[2], ev.revision))
        assert seen[0] == ("ADDED", "a", 1)
        assert [r for _, _, r in seen] == sorted(r for _, _, r in seen)
        assert seen[-1][0] == "DELETED" and all(k != "b" for _, k, _ in seen)
        w.stop()
        await s.close()
    run(go())


def test_persisted_across_reopen_and_old_watch_too_old(tmp_path: Path) -> None:
    async def go() -> None:
        s = SqliteStore(tmp_path / "db")
        for i in range(5):
            await s.create(("configmaps", "default", f"c{i}"), cm(f"c{i}", i=str(i)))
        await s.close()
        s2 = SqliteStore(tmp_path / "db")
        assert s2.revision == 5
        assert sorted(o["metadata"]["name"] for o in s2.list("configmaps")) == [f"c{i}" for i in range(5)]
        with pytest.raises(TooOldError):
            s2.watch("configmaps", None, 2)
        s2.watch("configmaps", None, 5).stop()
        await s2.close()
    run(go())


def test_window_moves_when_ring_is_full() -> None:
    from kinns.api.store.base import Event
    wc = WatchCache(0, capacity=3)
    wc.publish(Event(i, "ADDED", ("configmaps", "", f"c{i}"), {}) for i in range(1, 6))
    with pytest.raises(TooOldError):
        wc.watch("configmaps", None, 1)
    w = wc.watch("configmaps", None, 3)
    assert w.wants(Event(6, "ADDED", ("configmaps", "", "x"), {}))
