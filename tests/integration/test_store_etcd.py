"""The store contract on both stores (SQLite and a real etcd), then what only etcd does.

The contract is what the REST layer relies on: resourceVersions that grow
with every write, create/update/delete preconditions (409 Conflict, 404,
AlreadyExists), one winner among concurrent updates of one version, watches
that replay from a revision in order and then follow, durability across a
reopen, and "too old" (410 Gone) for a watch from before the store's window.

etcd runs for real (`kinns.cluster.etcd.EtcdServer`, free loopback ports, a
temp dir); the tests skip, saying so, when the etcd binary is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kinns.api.store.base import ConflictError, ExistsError, NotFoundError, TooOldError
from kinns.api.store.etcd import COMPACT_REV_KEY, EtcdStore
from kinns.api.store.etcd_gateway import EtcdError, EtcdGateway, b64, unb64
from kinns.api.store.sqlite import SqliteStore
from kinns.cluster.etcd import EtcdServer, _free_port, etcd_command, healthy

needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None,
                                reason="the etcd binary is missing (Debian: apt-get install etcd-server)")

Store = SqliteStore | EtcdStore


def cm(name: str, ns: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("etcd") is None:
        pytest.skip("the etcd binary is missing (Debian: apt-get install etcd-server)")
    server = EtcdServer(tmp_path_factory.mktemp("etcd"), "store-test")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "etcd"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Opens the store under test; calling it again reopens the same data."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    url = request.getfixturevalue("etcd")
    prefix = f"/{uuid.uuid4().hex[:8]}/registry"   # each test its own keyspace in the shared etcd
    return lambda: EtcdStore(url, prefix=prefix, compaction_interval=0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the contract -------------------------------------------------------------

def test_revisions_and_preconditions(opener: Callable[[], Store]) -> None:
    async def go() -> None:
        s = opener()
        key = ("configmaps", "default", "a")
        a = await s.create(key, cm("a"))
        assert s.revision == rv(a) and s.get(key) == a
        with pytest.raises(ExistsError):
            await s.create(key, cm("a"))
        b = await s.update(key, cm("a", k="v"), expected_rv=str(rv(a)))
        assert rv(b) > rv(a) and s.get(key)["data"] == {"k": "v"}   # type: ignore[index]
        with pytest.raises(ConflictError):
            await s.update(key, cm("a", k="w"), expected_rv=str(rv(a)))
        with pytest.raises(ConflictError):
            await s.delete(key, expected_rv=str(rv(a)))
        with pytest.raises(NotFoundError):
            await s.update(("configmaps", "default", "zzz"), cm("zzz"), expected_rv=str(rv(b)))
        with pytest.raises(NotFoundError):
            await s.delete(("configmaps", "default", "zzz"))
        unconditional = await s.update(key, cm("a", k="x"))
        gone = await s.delete(key)
        # A deletion is reported with its own revision, the object as it was.
        assert rv(gone) > rv(unconditional) and gone["data"] == {"k": "x"}
        assert s.get(key) is None and s.revision == rv(gone)
        await s.close()
    run(go())


def test_concurrent_updates_of_one_version_have_one_winner(opener: Callable[[], Store]) -> None:
    async def go() -> None:
        s = opener()
        key = ("configmaps", "default", "race")
        base = await s.create(key, cm("race"))
        results = await asyncio.gather(
            *(s.update(key, cm("race", writer=str(i)), expected_rv=str(rv(base))) for i in range(20)),
            return_exceptions=True)
        winners = [r for r in results if isinstance(r, dict)]
        assert len(winners) == 1 and all(isinstance(r, ConflictError) for r in results if r is not winners[0])
        assert s.get(key) == winners[0]
        await s.close()
    run(go())


def test_watch_replays_from_a_revision_then_follows_in_order(opener: Callable[[], Store]) -> None:
    async def go() -> None:
        s = opener()
        first = await s.create(("configmaps", "default", "a"), cm("a"))
        await s.create(("configmaps", "other", "b"), cm("b", "other"))
        w = s.watch("configmaps", "default", rv(first))   # what a LIST at that revision already showed
        await asyncio.gather(*(s.create(("configmaps", "default", f"c{i}"), cm(f"c{i}")) for i in range(30)))
        mod = await s.update(("configmaps", "default", "a"), cm("a", k="v"))
        gone = await s.delete(("configmaps", "default", "a"))
        seen = [await asyncio.wait_for(w.__anext__(), 5) for _ in range(32)]
        assert [e.revision for e in seen] == sorted(e.revision for e in seen)
        assert {e.key[2] for e in seen[:30]} == {f"c{i}" for i in range(30)} and all(e.key[1] == "default" for e in seen)
        assert (seen[30].type, seen[30].revision, seen[30].prev["data"]) == ("MODIFIED", rv(mod), {})  # type: ignore[index]
        assert (seen[31].type, seen[31].revision, seen[31].obj["data"]) == ("DELETED", rv(gone), {"k": "v"})
        # A second watcher from the same revision replays the same history.
        w2 = s.watch("configmaps", None, rv(first))
        again = await asyncio.wait_for(w2.__anext__(), 5)
        assert again.key == ("configmaps", "other", "b")
        w.stop()
        w2.stop()
        await s.close()
    run(go())


def test_objects_survive_a_reopen_and_older_watches_are_too_old(opener: Callable[[], Store]) -> None:
    async def go() -> None:
        s = opener()
        written = [await s.create(("configmaps", "default", f"c{i}"), cm(f"c{i}", i=str(i))) for i in range(5)]
        await s.create(("namespaces", "", "team"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        last = s.revision
        await s.close()
        s2 = opener()
        assert s2.revision == last
        assert sorted(s2.list("configmaps"), key=lambda o: o["metadata"]["name"]) == written
        assert [o["metadata"]["name"] for o in s2.list("namespaces")] == ["team"]
        assert s2.list("configmaps", "other") == []
        with pytest.raises(TooOldError):   # the REST layer answers 410 Gone, "too old resource version"
            s2.watch("configmaps", None, rv(written[1]))
        s2.watch("configmaps", None, last).stop()
        await s2.close()
    run(go())


# -- etcd only ------------------------------------------------------------------

def _kvs(url: str, prefix: str) -> dict[str, dict[str, Any]]:
    async def go() -> dict[str, dict[str, Any]]:
        gw = EtcdGateway(url)
        try:
            start = prefix.encode()
            resp = await gw.range(start, start[:-1] + bytes([start[-1] + 1]))
            return {unb64(kv["key"]).decode(): kv for kv in resp.get("kvs", [])}
        finally:
            await gw.close()
    return run(go())  # type: ignore[no-any-return]


@needs_etcd
def test_keys_are_kube_apiserver_s_and_resource_versions_are_mod_revisions(etcd: str) -> None:
    prefix = f"/{uuid.uuid4().hex[:8]}/registry"
    objs = {
        ("configmaps", "default", "a"): cm("a"),
        ("services", "default", "web"): {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}},
        ("endpoints", "default", "web"): {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"}},
        ("nodes", "", "n1"): {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        ("deployments.apps", "default", "web"): {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}},
        ("leases.coordination.k8s.io", "kube-node-lease", "n1"): {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"}},
    }

    async def write() -> dict[str, int]:
        s = EtcdStore(etcd, prefix=prefix, compaction_interval=0)
        out = {k[0]: rv(await s.create(k, o)) for k, o in objs.items()}
        await s.close()
        return out
    versions = run(write())
    kvs = _kvs(etcd, prefix + "/")
    expect = {"configmaps": "configmaps/default/a", "services": "services/specs/default/web",
              "endpoints": "services/endpoints/default/web", "nodes": "minions/n1",
              "deployments.apps": "deployments/default/web",
              "leases.coordination.k8s.io": "leases/kube-node-lease/n1"}
    assert set(kvs) == {f"{prefix}/{p}" for p in expect.values()}
    for resource, path in expect.items():
        kv = kvs[f"{prefix}/{path}"]
        assert int(kv["mod_revision"]) == versions[resource]
        stored = json.loads(unb64(kv["value"]))
        assert "resourceVersion" not in stored["metadata"]   # etcd's revision is the version, as upstream

    async def reread() -> None:
        s = EtcdStore(etcd, prefix=prefix, compaction_interval=0)
        for key in objs:
            assert rv(s.get(key) or {"metadata": {"resourceVersion": "0"}}) == versions[key[0]], key
        await s.close()
    run(reread())


@needs_etcd
def test_two_api_servers_on_one_etcd_see_each_other_and_conflict(etcd: str) -> None:
    async def go() -> None:
        prefix = f"/{uuid.uuid4().hex[:8]}/registry"
        a = EtcdStore(etcd, prefix=prefix, compaction_interval=0)
        b = EtcdStore(etcd, prefix=prefix, compaction_interval=0)
        key = ("configmaps", "default", "shared")
        w = b.watch("configmaps", None, b.revision)
        made = await a.create(key, cm("shared"))
        ev = await asyncio.wait_for(w.__anext__(), 5)
        assert ev.type == "ADDED" and b.get(key) == made
        results = await asyncio.gather(a.update(key, cm("shared", by="a"), str(rv(made))),
                                       b.update(key, cm("shared", by="b"), str(rv(made))), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "dict"]
        with pytest.raises(ExistsError):
            await b.create(key, cm("shared"))
        w.stop()
        await a.close()
        await b.close()
    run(go())


class Partition:
    """A TCP relay between the API server and etcd that the test cuts and mends,
    as a network partition would: while cut, connections are accepted and dropped."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self._conns: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    def sever(self) -> None:
        self.cut = True
        for w in self._conns:
            w.transport.abort()
        self._conns.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._conns += [writer, up_w]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


@needs_etcd
def test_compaction_past_the_feed_relists_and_old_watches_get_410(etcd: str) -> None:
    async def go() -> None:
        prefix = f"/{uuid.uuid4().hex[:8]}/registry"
        relay = Partition(int(etcd.rsplit(":", 1)[1]))
        await relay.start()
        # Made on a thread: its first LIST blocks, and the relay runs on this loop.
        s = await asyncio.to_thread(EtcdStore, f"http://127.0.0.1:{relay.port}", prefix=prefix, compaction_interval=0)
        before = await s.create(("configmaps", "default", "a"), cm("a"))
        w = s.watch("configmaps", None, rv(before))
        relay.sever()
        with pytest.raises(EtcdError):   # an unacknowledged write fails, it does not hang
            await s.create(("configmaps", "default", "lost"), cm("lost"))
        # Meanwhile another API server writes and compacts past what this one saw.
        gw = EtcdGateway(etcd)
        for name in ("b", "b2"):   # two writes: compacting to the second drops the first's event
            put = await gw.txn([], [{"request_put": {"key": b64(f"{prefix}/configmaps/default/{name}"),
                                                     "value": b64(json.dumps(cm(name)))}}])
        await gw.compact(int(put["header"]["revision"]))
        await gw.close()
        relay.cut = False
        deadline = time.monotonic() + 15
        while s.get(("configmaps", "default", "b")) is None:
            assert time.monotonic() < deadline, "the store did not re-list after the compaction"
            await asyncio.sleep(0.05)
        assert s.get(("configmaps", "default", "lost")) is None
        # The open watch ended (its client re-watches) and a watch from before is 410 Gone.
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(w.__anext__(), 5)
        with pytest.raises(TooOldError):
            s.watch("configmaps", None, rv(before))
        w2 = s.watch("configmaps", None, s.revision)
        after = await s.create(("configmaps", "default", "c"), cm("c"))
        assert (await asyncio.wait_for(w2.__anext__(), 5)).revision == rv(after)
        w2.stop()
        await s.close()
    run(go())


@needs_etcd
def test_the_compactor_compacts_one_interval_behind(etcd: str) -> None:
    async def go() -> None:
        prefix = f"/{uuid.uuid4().hex[:8]}/registry"
        gw = EtcdGateway(etcd)
        start = await gw.range(COMPACT_REV_KEY)
        version0 = int(start["kvs"][0]["version"]) if start.get("kvs") else 0
        s = EtcdStore(etcd, prefix=prefix, compaction_interval=0.3)
        old = await s.create(("configmaps", "default", "a"), cm("a"))
        await s.update(("configmaps", "default", "a"), cm("a", k="v"))
        deadline = time.monotonic() + 10
        while True:
            try:
                await gw.range(f"{prefix}/configmaps/default/a".encode(), revision=rv(old))
            except EtcdError as exc:
                assert exc.compacted
                break
            assert time.monotonic() < deadline, "no compaction within 10s"
            await asyncio.sleep(0.1)
        mark = await gw.range(COMPACT_REV_KEY)
        assert int(mark["kvs"][0]["version"]) >= version0 + 2   # one round to learn, one to compact
        assert s.get(("configmaps", "default", "a"))["data"] == {"k": "v"}   # type: ignore[index]
        await s.close()
        await gw.close()
    run(go())


@needs_etcd
def test_etcd_killed_and_restarted_loses_no_acknowledged_write(tmp_path: Path) -> None:
    client, peer = _free_port("127.0.0.1"), _free_port("127.0.0.1")
    url = f"http://127.0.0.1:{client}"
    argv = etcd_command("kill-test", tmp_path / "etcd", listen_client_urls=[url], advertise_client_urls=[url],
                     peer_url=f"http://127.0.0.1:{peer}", binary=shutil.which("etcd") or "etcd")
    (tmp_path / "etcd").mkdir(mode=0o700)

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not healthy(url, 0.5):
            assert time.monotonic() < deadline and p.poll() is None, "etcd did not start"
            time.sleep(0.05)
        return p

    proc = start()
    try:
        async def go() -> None:
            nonlocal proc
            s = EtcdStore(url, compaction_interval=0)
            acked = [await s.create(("configmaps", "default", f"c{i}"), cm(f"c{i}")) for i in range(20)]
            w = s.watch("configmaps", None, s.revision)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            # A write while etcd is down waits for it (the request was never sent) ...
            during = asyncio.create_task(s.create(("configmaps", "default", "during"), cm("during")))
            await asyncio.sleep(0.3)
            assert not during.done()
            proc = await asyncio.to_thread(start)
            written = [await during, await s.create(("configmaps", "default", "after"), cm("after"))]
            # ... and the same watch goes on, without a gap.
            evs = [await asyncio.wait_for(w.__anext__(), 10) for _ in written]
            assert [(e.type, e.revision) for e in evs] == [("ADDED", rv(o)) for o in written]
            w.stop()
            await s.close()
            s2 = EtcdStore(url, compaction_interval=0)
            assert {o["metadata"]["name"]: rv(o) for o in s2.list("configmaps")} == \
                {o["metadata"]["name"]: rv(o) for o in acked + written}
            await s2.close()
        run(go())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@needs_etcd
def test_launcher_keeps_a_healthy_etcd_and_stop_leaves_no_process(tmp_path: Path) -> None:
    server = EtcdServer(tmp_path, "launch")
    url = server.start()
    pid = server.pid
    try:
        again = EtcdServer(tmp_path, "launch")
        assert again.start() == url and again.pid == server.pid   # a restarted daemon keeps its etcd
        assert oct((tmp_path / "etcd").stat().st_mode & 0o777) == "0o700"
    finally:
        server.stop()
    assert not healthy(url) and not Path(f"/proc/{pid}").exists()
    assert (tmp_path / "etcd" / "member").is_dir()   # the data stays for the next start
