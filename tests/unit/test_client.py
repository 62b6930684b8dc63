"""The client: paths, verbs, errors, watch, events; and its HTTPS transport end to end."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from kinns.api.errors import ApiError
from kinns.api.request import Request, Response
from kinns.api.resources import REGISTRY
from kinns.client import Client, HttpTransport, InProcessTransport, MockTransport
from kinns.client.fake import FakeApi


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def cm(name: str, ns: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def test_paths() -> None:
    dep = REGISTRY.by_kind("apps/v1", "Deployment")
    node = REGISTRY.by_kind("v1", "Node")
    assert dep is not None and node is not None
    assert Client.path(dep, "default", "web", "scale") == "/apis/apps/v1/namespaces/default/deployments/web/scale"
    assert Client.path(dep) == "/apis/apps/v1/deployments"
    assert Client.path(node, "ignored", "n1") == "/api/v1/nodes/n1"


def test_requests_on_the_wire() -> None:
    async def go() -> None:
        def handler(req: Request) -> Response:
            if req.method == "GET" and req.path.endswith("/pods"):
                return Response(obj={"kind": "PodList", "metadata": {"resourceVersion": "42"},
                                     "items": [{"metadata": {"name": "p"}}]})
            return Response(obj={"echo": req.obj})
        t = MockTransport(handler)
        c = Client(t)
        items, rv = await c.list(("v1", "Pod"), "ns1", label_selector="app=web", field_selector="spec.nodeName=n1")
        assert rv == "42" and items[0]["kind"] == "Pod" and items[0]["apiVersion"] == "v1"
        r = t.requests[-1]
        assert r.path == "/api/v1/namespaces/ns1/pods"
        assert r.query == {"labelSelector": ["app=web"], "fieldSelector": ["spec.nodeName=n1"]}
        await c.delete(("apps/v1", "ReplicaSet"), "rs", "ns1", propagation_policy="Foreground",
                       grace_period_seconds=0, preconditions={"uid": "u1"})
        r = t.requests[-1]
        assert r.method == "DELETE" and r.path == "/apis/apps/v1/namespaces/ns1/replicasets/rs"
        assert r.obj["propagationPolicy"] == "Foreground" and r.obj["gracePeriodSeconds"] == 0
        assert r.obj["preconditions"] == {"uid": "u1"}
        await c.patch(("v1", "Pod"), "p", {"metadata": {"labels": {"a": "b"}}}, "ns1", patch_type="strategic")
        r = t.requests[-1]
        assert r.method == "PATCH" and r.header("content-type") == "application/strategic-merge-patch+json"
        await c.update_status({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns1"}})
        assert t.requests[-1].path == "/api/v1/namespaces/ns1/pods/p/status"
        await c.finalize_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        assert t.requests[-1].method == "PUT" and t.requests[-1].path == "/api/v1/namespaces/x/finalize"
    run(go())


def test_list_follows_continue_tokens() -> None:
    async def go() -> None:
        def handler(req: Request) -> Response:
            page = req.param("continue")
            if not page:
                return Response(obj={"metadata": {"resourceVersion": "7", "continue": "p2"}, "items": [{"metadata": {"name": "a"}}]})
            return Response(obj={"metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "b"}}]})
        c = Client(MockTransport(handler))
        items, rv = await c.list(("v1", "ConfigMap"), "default", limit=1)
        assert [i["metadata"]["name"] for i in items] == ["a", "b"] and rv == "7"
    run(go())


def test_errors_are_api_errors() -> None:
    async def go() -> None:
        c = Client(MockTransport(FakeApi().handle))
        with pytest.raises(ApiError) as ei:
            await c.get(("v1", "ConfigMap"), "nope", "default")
        assert ei.value.code == 404 and ei.value.reason == "NotFound"
        assert ei.value.message == 'configmaps "nope" not found'
        await c.create(cm("a"))
        with pytest.raises(ApiError) as ei:
            await c.create(cm("a"))
        assert ei.value.code == 409 and ei.value.reason == "AlreadyExists"
        # Non-Status error bodies still become ApiError.
        bare = Client(MockTransport(lambda req: Response(503, raw=b"overloaded", content_type="text/plain")))
        with pytest.raises(ApiError) as ei:
            await bare.get(("v1", "Pod"), "p", "default")
        assert ei.value.code == 503 and ei.value.message == "overloaded"
        with pytest.raises(ValueError):
            c.resource(("v9", "Nothing"))
    run(go())


def test_crud_and_optimistic_concurrency() -> None:
    async def go() -> None:
        c = Client(MockTransport(FakeApi().handle))
        a = await c.create(cm("a", k="1"))
        assert a["metadata"]["uid"] and a["metadata"]["resourceVersion"]
        a["data"]["k"] = "2"
        b = await c.update(a)
        assert b["data"]["k"] == "2"
        with pytest.raises(ApiError) as ei:
            await c.update(a)  # stale resourceVersion
        assert ei.value.code == 409 and ei.value.reason == "Conflict"
        p = await c.patch(("v1", "ConfigMap"), "a", {"data": {"x": "y"}}, "default")
        assert p["data"] == {"k": "2", "x": "y"}
        await c.delete(("v1", "ConfigMap"), "a", "default")
        items, _ = await c.list(("v1", "ConfigMap"), "default")
        assert items == []
    run(go())


def test_watch_yields_events_and_raises_on_410() -> None:
    async def go() -> None:
        fake = FakeApi()
        c = Client(MockTransport(fake.handle))
        await c.create(cm("a"))
        _, rv = await c.list(("v1", "ConfigMap"), "default")
        got: list[tuple[str, str]] = []

        async def consume() -> None:
            async for ev in c.watch(("v1", "ConfigMap"), "default", resource_version=rv):
                if ev["type"] != "BOOKMARK":
                    got.append((ev["type"], ev["object"]["metadata"]["name"]))
                if len(got) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        await c.create(cm("b"))
        await c.delete(("v1", "ConfigMap"), "a", "default")
        await asyncio.wait_for(task, 2)
        assert got == [("ADDED", "b"), ("DELETED", "a")]
        fake.expire_history()
        with pytest.raises(ApiError) as ei:
            async for _ in c.watch(("v1", "ConfigMap"), "default", resource_version=rv):
                pass
        assert ei.value.code == 410 and ei.value.reason == "Expired"
    run(go())


def test_create_event_aggregates_repeats() -> None:
    async def go() -> None:
        fake = FakeApi()
        c = Client(MockTransport(fake.handle))
        pod = fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}})
        e1 = await c.create_event(pod, "Scheduled", "Successfully assigned default/web to n1",
                                  component="default-scheduler")
        assert e1 is not None
        assert e1["involvedObject"]["uid"] == pod["metadata"]["uid"]
        assert e1["source"] == {"component": "default-scheduler"} and e1["count"] == 1 and e1["type"] == "Normal"
        e2 = await c.create_event(pod, "Scheduled", "Successfully assigned default/web to n1",
                                  component="default-scheduler")
        assert e2 is not None and e2["metadata"]["name"] == e1["metadata"]["name"] and e2["count"] == 2
        await c.create_event(pod, "Pulled", "already present", component="kubelet", host="n1")
        assert len(fake.all("v1", "Event", "default")) == 2
        node = fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        ev = await c.create_event(node, "NodeReady", "Node n1 status is now: NodeReady", component="kubelet")
        assert ev is not None and ev["metadata"]["namespace"] == "default"
        # Best effort: a failing API does not raise.
        broken = Client(MockTransport(lambda req: Response(500, obj={"kind": "Status", "code": 500})))
        assert await broken.create_event(pod, "X", "y") is None
    run(go())


def test_inprocess_transport_copies_server_objects() -> None:
    async def go() -> None:
        held = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a"}}

        async def dispatch(req: Request) -> Response:
            assert req.obj is None or isinstance(req.obj, dict)  # objects, not bytes
            return Response(obj=held)
        c = Client(InProcessTransport(dispatch))
        got = await c.get(("v1", "ConfigMap"), "a", "default")
        got["metadata"]["name"] = "changed"
        assert held["metadata"]["name"] == "a"
    run(go())


# ----------------------------------------------------------- HTTPS transport

def _app(fake: FakeApi) -> web.Application:
    """A tiny HTTP front end over the fake, so the real HttpTransport is exercised."""
    async def handle(request: web.Request) -> web.StreamResponse:
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        body = await request.read()
        req = Request(request.method, request.path, query, {k.lower(): v for k, v in request.headers.items()},
                      body, orjson.loads(body) if body else None)
        resp = await fake.handle(req)
        if resp.stream is not None:
            out = web.StreamResponse()
            out.headers["Content-Type"] = "application/json"
            out.enable_chunked_encoding()
            await out.prepare(request)
            try:
                async for ev in resp.stream:
                    await out.write(orjson.dumps(ev) + b"\n")
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            return out
        return web.Response(status=resp.status, body=orjson.dumps(resp.obj), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def test_http_transport_with_client_certs_from_kubeconfig(tmp_path: Path) -> None:
    from kinns.cluster import certs, kubeconfig

    pki = certs.ensure_pki(tmp_path / "pki", ["localhost"], ["127.0.0.1"])

    async def go() -> None:
        fake = FakeApi()
        sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        sctx.load_verify_locations(str(pki.ca_cert))
        sctx.verify_mode = ssl.CERT_REQUIRED  # no client cert, no answer
        runner = web.AppRunner(_app(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=sctx)
        await site.start()
        port = runner.addresses[0][1]
        try:
            cfg = kubeconfig.build("t", f"https://127.0.0.1:{port}", pki)
            path = tmp_path / "kubeconfig"
            kubeconfig.write_own(path, cfg)
            c = Client(HttpTransport.from_kubeconfig(path))
            await c.create(cm("a", k="v"))
            assert (await c.get(("v1", "ConfigMap"), "a", "default"))["data"] == {"k": "v"}
            with pytest.raises(ApiError) as ei:
                await c.get(("v1", "ConfigMap"), "zz", "default")
            assert ei.value.code == 404
            _, rv = await c.list(("v1", "ConfigMap"), "default")
            seen: list[str] = []

            async def consume() -> None:
                async for ev in c.watch(("v1", "ConfigMap"), "default", resource_version=rv):
                    if ev["type"] == "ADDED":
                        seen.append(ev["object"]["metadata"]["name"])
                        return
            task = asyncio.create_task(consume())
            await asyncio.sleep(0.05)
            big = "x" * 200_000  # longer than aiohttp's readline limit
            await c.create(cm("b", k=big))
            await asyncio.wait_for(task, 5)
            assert seen == ["b"]
            # File-based certificates work too.
            c2 = Client(HttpTransport(f"https://127.0.0.1:{port}", str(pki.ca_cert), str(pki.admin_cert),
                                      str(pki.admin_key)))
            assert len((await c2.list(("v1", "ConfigMap"), "default"))[0]) == 2
            await c.close()
            await c2.close()
        finally:
            await runner.cleanup()
    run(go())
