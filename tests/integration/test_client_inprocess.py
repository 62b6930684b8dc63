"""The client, informers, GC and namespace controller against the real ApiServer, in-process.

No sockets: `InProcessTransport(api.dispatch)` runs the very validation,
admission and storage code kubectl reaches over HTTPS.  These tests check
that the behaviour the unit tests assume of the fake (watch from a list's
resourceVersion, delete options, finalizers, the finalize subresource)
holds for the real server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from kinns.api.errors import ApiError
from kinns.client import Client, InformerFactory, InProcessTransport

server_mod = pytest.importorskip("kinns.api.server", reason="the API server is not importable yet")
sqlite_mod = pytest.importorskip("kinns.api.store.sqlite")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def eventually(cond: Callable[[], Any], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        r = cond()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Env:
    def __init__(self, api: Any, client: Client) -> None:
        self.api = api
        self.client = client


async def _env(tmp: Path) -> Env:
    store = sqlite_mod.SqliteStore(tmp / "state.db", durable=False)
    api = server_mod.ApiServer(store)
    await api.bootstrap()
    return Env(api, Client(InProcessTransport(api.dispatch)))


def with_env(tmp_path: Path, body: Callable[[Env], Any]) -> None:
    async def go() -> None:
        env = await _env(tmp_path)
        try:
            await body(env)
        finally:
            await env.api.store.close()
    run(go())


def cm(name: str, ns: str = "default", owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def owner_ref(o: dict[str, Any], block: bool = True) -> dict[str, Any]:
    return {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"], "blockOwnerDeletion": block}


async def _exists(c: Client, kind: tuple[str, str], name: str, ns: str | None = "default") -> bool:
    try:
        await c.get(kind, name, ns)
        return True
    except ApiError as exc:
        if exc.code == 404:
            return False
        raise


def test_crud_errors_and_watch(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        c = env.client
        a = await c.create(cm("a"))
        assert a["metadata"]["uid"]
        with pytest.raises(ApiError) as ei:
            await c.create(cm("a"))
        assert ei.value.code == 409 and ei.value.reason == "AlreadyExists"
        items, rv = await c.list(("v1", "ConfigMap"), "default")
        assert [i["metadata"]["name"] for i in items] == ["a"] and rv

        async def first_events(n: int) -> list[tuple[str, str]]:
            out: list[tuple[str, str]] = []
            stream: AsyncIterator[dict[str, Any]] = c.watch(("v1", "ConfigMap"), "default", resource_version=rv)
            async for ev in stream:
                if ev["type"] != "BOOKMARK":
                    out.append((ev["type"], ev["object"]["metadata"]["name"]))
                if len(out) == n:
                    break
            return out

        task = asyncio.create_task(first_events(3))
        await asyncio.sleep(0.05)
        await c.create(cm("b"))
        await c.patch(("v1", "ConfigMap"), "b", {"data": {"k": "w"}}, "default")
        await c.delete(("v1", "ConfigMap"), "a", "default")
        assert await asyncio.wait_for(task, 5) == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
        with pytest.raises(ApiError) as ei:
            await c.delete(("v1", "ConfigMap"), "b", "default", preconditions={"uid": "wrong"})
        assert ei.value.code == 409
        ev = await c.create_event(a, "Tested", "an event for describe", component="test")
        assert ev is not None and ev["involvedObject"]["name"] == "a"
    with_env(tmp_path, body)


def test_informer_sees_changes(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        c = env.client
        f = InformerFactory(c)
        inf = f.informer("v1", "ConfigMap", namespace="default")
        f.start()
        try:
            assert await f.wait_for_sync(5)
            await c.create(cm("x"))
            await eventually(lambda: inf.get("default/x") is not None)
            await c.delete(("v1", "ConfigMap"), "x", "default")
            await eventually(lambda: inf.get("default/x") is None)
        finally:
            await f.stop()
    with_env(tmp_path, body)


def test_gc_background_foreground_orphan(tmp_path: Path) -> None:
    from kinns.controllers.gc import GarbageCollector

    async def body(env: Env) -> None:
        c = env.client
        gc = GarbageCollector(c)
        await gc.start()
        try:
            # Background: owner gone → dependent deleted.
            o1 = await c.create(cm("owner1"))
            await c.create(cm("dep1", owners=[owner_ref(o1)]))
            await c.delete(("v1", "ConfigMap"), "owner1", "default")
            await eventually(lambda: _not(_exists(c, ("v1", "ConfigMap"), "dep1")))
            # Foreground: owner waits for the dependent, then goes.
            o2 = await c.create(cm("owner2"))
            await c.create(cm("dep2", owners=[owner_ref(o2)]))
            marked = await c.delete(("v1", "ConfigMap"), "owner2", "default", propagation_policy="Foreground")
            assert "foregroundDeletion" in (marked.get("metadata") or {}).get("finalizers", []) or \
                marked.get("kind") == "Status"
            await eventually(lambda: _not(_exists(c, ("v1", "ConfigMap"), "owner2")))
            assert not await _exists(c, ("v1", "ConfigMap"), "dep2")
            # Orphan: dependent stays, without the reference.
            o3 = await c.create(cm("owner3"))
            await c.create(cm("dep3", owners=[owner_ref(o3)]))
            await c.delete(("v1", "ConfigMap"), "owner3", "default", propagation_policy="Orphan")
            await eventually(lambda: _not(_exists(c, ("v1", "ConfigMap"), "owner3")))
            dep3 = await c.get(("v1", "ConfigMap"), "dep3", "default")
            assert not dep3["metadata"].get("ownerReferences")
        finally:
            await gc.stop()
    with_env(tmp_path, body)


async def _not(aw: Any) -> bool:
    return not await aw


def test_namespace_deletion(tmp_path: Path) -> None:
    from kinns.controllers.namespace import NamespaceController

    async def body(env: Env) -> None:
        c = env.client
        ctl = NamespaceController(c, recheck=0.05)
        await ctl.start()
        try:
            await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
            await c.create(cm("one", ns="team"))
            await c.create(cm("two", ns="team"))
            await c.delete(("v1", "Namespace"), "team")
            with pytest.raises(ApiError) as ei:
                await c.create(cm("late", ns="team"))
            assert ei.value.code in (403, 404)
            await eventually(lambda: _not(_exists(c, ("v1", "Namespace"), "team", None)))
            items, _ = await c.list(("v1", "ConfigMap"), "team")
            assert items == []
        finally:
            await ctl.stop()
    with_env(tmp_path, body)


# http.py stores its upgrade handlers under a plain string key (aiohttp warns).
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
def test_same_client_over_https(tmp_path: Path) -> None:
    """The HTTP transport against the real HTTPS front end, with the admin client cert."""
    http_mod = pytest.importorskip("kinns.api.http")
    from kinns.client import HttpTransport
    from kinns.cluster import certs, kubeconfig
    from kinns.controllers.gc import GarbageCollector

    pki = certs.ensure_pki(tmp_path / "pki", ["localhost"], ["127.0.0.1"])

    async def go() -> None:
        env = await _env(tmp_path)
        ctx = http_mod.server_ssl_context(str(pki.server_cert), str(pki.server_key), str(pki.ca_cert))
        runner = await http_mod.serve(env.api, "127.0.0.1", 0, ctx)
        port = runner.addresses[0][1]
        path = tmp_path / "kubeconfig"
        kubeconfig.write_own(path, kubeconfig.build("it", f"https://127.0.0.1:{port}", pki))
        c = Client(HttpTransport.from_kubeconfig(path))
        gc = GarbageCollector(c)
        try:
            await gc.start()
            o = await c.create(cm("owner"))
            await c.create(cm("dep", owners=[owner_ref(o)]))
            await c.delete(("v1", "ConfigMap"), "owner", "default")
            await eventually(lambda: _not(_exists(c, ("v1", "ConfigMap"), "dep")))
        finally:
            await gc.stop()
            await c.close()
            await runner.cleanup()
            await env.api.store.close()
    run(go())
