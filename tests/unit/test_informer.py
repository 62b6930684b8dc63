"""Informers against the fake API: sync, events, indexers, re-list on 410, broken watches."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from kinns.api.request import Request, Response
from kinns.client import Client, Informer, InformerFactory, MockTransport, index_by_node_name
from kinns.client.fake import FakeApi


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def pod(name: str, node: str = "", ns: str = "default", **labels: str) -> dict[str, Any]:
    spec = {"nodeName": node} if node else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": spec}


async def eventually(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def add(self, o: dict[str, Any]) -> None:
        self.events.append(("add", o["metadata"]["name"]))

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"]))

    def delete(self, o: dict[str, Any]) -> None:
        self.events.append(("delete", o["metadata"]["name"]))

    def attach(self, inf: Informer) -> None:
        inf.add_handlers(self.add, self.update, self.delete)


def with_informer(body: Callable[[FakeApi, Client, Informer, Recorder], Awaitable[None]], **kw: Any) -> None:
    async def go() -> None:
        fake = FakeApi()
        fake.put(pod("pre", "n1"))
        client = Client(MockTransport(fake.handle))
        inf = Informer(client, "v1", "Pod", min_backoff=0.01, max_backoff=0.05, **kw)
        rec = Recorder()
        rec.attach(inf)
        inf.start()
        try:
            assert await inf.wait_for_sync(2)
            await body(fake, client, inf, rec)
        finally:
            await inf.stop()
    run(go())


def test_initial_list_and_live_events() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        assert inf.has_synced and rec.events == [("add", "pre")]
        await c.create(pod("a", "n1"))
        await c.patch(("v1", "Pod"), "a", {"metadata": {"labels": {"x": "1"}}}, "default")
        await c.delete(("v1", "Pod"), "pre", "default")
        await eventually(lambda: len(rec.events) == 4)
        assert rec.events[1:] == [("add", "a"), ("update", "a"), ("delete", "pre")]
        assert inf.keys() == ["default/a"]
        got = inf.get("default/a")
        assert got is not None and got["metadata"]["labels"] == {"x": "1"}
        assert got["kind"] == "Pod"
    with_informer(body)


def test_indexers() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        inf.add_indexer("node", index_by_node_name)  # added after sync: built from the cache
        await c.create(pod("a", "n1"))
        await c.create(pod("b", "n2"))
        await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
        await c.create(pod("c", "n1", ns="other"))
        await eventually(lambda: len(inf) == 4)
        assert sorted(p["metadata"]["name"] for p in inf.by_index("node", "n1")) == ["a", "c", "pre"]
        assert [p["metadata"]["name"] for p in inf.list("other")] == ["c"]
        await c.delete(("v1", "Pod"), "a", "default")
        await eventually(lambda: len(inf) == 3)
        assert sorted(p["metadata"]["name"] for p in inf.by_index("node", "n1")) == ["c", "pre"]
        assert inf.index_keys("node", "n2") == ["default/b"]
    with_informer(body)


def test_relist_after_410_reports_missed_changes() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        await c.create(pod("a"))
        await eventually(lambda: len(rec.events) == 2)
        lists = inf.lists
        # Changes happen while the watch is down, and history is lost.
        fake.history_limit = 0
        fake.break_watches()
        await c.delete(("v1", "Pod"), "pre", "default")
        await c.create(pod("b"))
        await c.patch(("v1", "Pod"), "a", {"metadata": {"labels": {"y": "2"}}}, "default")
        fake.expire_history()
        await eventually(lambda: inf.lists > lists and sorted(inf.keys()) == ["default/a", "default/b"])
        await eventually(lambda: len(rec.events) >= 5)
        assert set(rec.events[2:]) == {("delete", "pre"), ("add", "b"), ("update", "a")}
        # The informer keeps watching after the re-list.
        await c.create(pod("c"))
        await eventually(lambda: inf.get("default/c") is not None)
    with_informer(body)


def test_broken_watch_resumes_without_relist() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        lists = inf.lists
        fake.break_watches()
        await c.create(pod("a"))  # in history: a resumed watch replays it
        await eventually(lambda: inf.get("default/a") is not None)
        assert inf.lists == lists and inf.watches >= 2
    with_informer(body)


def test_selectors_limit_the_cache() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        await c.create(pod("a", app="web"))
        await c.create(pod("b", app="db"))
        await eventually(lambda: inf.keys() == ["default/a"])
        # A label change that leaves the selector is a delete for this informer.
        await c.patch(("v1", "Pod"), "a", {"metadata": {"labels": {"app": "other"}}}, "default")
        await eventually(lambda: inf.keys() == [])
        assert rec.events == [("add", "a"), ("delete", "a")]
    with_informer(body, label_selector="app=web")


def test_backoff_while_api_is_down() -> None:
    async def go() -> None:
        fake = FakeApi()
        down = {"on": True}
        calls = {"n": 0}

        async def handler(req: Request) -> Response:
            calls["n"] += 1
            if down["on"]:
                raise ConnectionRefusedError("api down")
            return await fake.handle(req)
        inf = Informer(Client(MockTransport(handler)), "v1", "Pod", min_backoff=0.02, max_backoff=0.1)
        inf.start()
        await asyncio.sleep(0.3)
        assert not inf.has_synced and 2 <= calls["n"] <= 12  # backed off, not spinning
        down["on"] = False
        assert await inf.wait_for_sync(2)
        await inf.stop()
    run(go())


def test_factory_shares_informers_and_late_handlers_see_cache() -> None:
    async def go() -> None:
        fake = FakeApi()
        fake.put(pod("a"))
        f = InformerFactory(Client(MockTransport(fake.handle)))
        i1 = f.informer("v1", "Pod")
        assert f.informer("v1", "Pod") is i1
        assert f.informer("v1", "Pod", namespace="kube-system") is not i1
        f.start()
        assert await f.wait_for_sync(2)
        rec = Recorder()
        rec.attach(i1)  # registered after sync: replays the cache as adds
        assert rec.events == [("add", "a")]
        late = f.informer("v1", "Node")  # made after start: started at once
        assert await late.wait_for_sync(2)
        await f.stop()
    run(go())


def test_handler_errors_do_not_stop_the_informer() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        def boom(o: dict[str, Any]) -> None:
            raise RuntimeError("bad handler")
        inf.add_handlers(on_add=None, on_update=None, on_delete=boom)
        await c.delete(("v1", "Pod"), "pre", "default")
        await c.create(pod("z"))
        await eventually(lambda: inf.get("default/z") is not None)
    import logging
    logging.getLogger("kinns.client.informer").disabled = True
    try:
        with_informer(body)
    finally:
        logging.getLogger("kinns.client.informer").disabled = False


def test_resync_redelivers_cached_objects_as_updates() -> None:
    async def body(fake: FakeApi, c: Client, inf: Informer, rec: Recorder) -> None:
        await eventually(lambda: rec.events.count(("update", "pre")) >= 2)
    with_informer(body, resync_period=0.05)


def test_a_transform_keeps_what_the_cache_holds_and_handlers_see() -> None:
    """client-go's SetTransform: the cache holds the transformed object (and a
    re-list with the same resourceVersion changes nothing)."""
    from kinns.netpol.model import pod_from_api, slim_pod

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "7",
                        "labels": {"app": "web"}, "managedFields": [{"manager": "kubectl"}],
                        "annotations": {"big": "x" * 1000}},
           "spec": {"nodeName": "n1", "containers": [
               {"name": "c", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 81}]}]},
           "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    inf = Informer(Client(MockTransport(FakeApi().handle)), "v1", "Pod")
    inf.transform = slim_pod
    seen: list[dict[str, object]] = []
    inf.add_handlers(on_add=seen.append)
    inf._replace([pod])
    cached = inf.list()[0]
    assert "managedFields" not in cached["metadata"] and "annotations" not in cached["metadata"]
    assert "conditions" not in cached["status"] and seen == [cached]
    assert pod_from_api(cached) == pod_from_api(pod), "the agent reads the same pod from the slim copy"
    inf._replace([pod])
    assert len(seen) == 1
