"""Garbage collector and namespace controller against the fake API.

Owner chains are Deployment → ReplicaSet → Pod, as `kubectl delete
deployment` exercises them, with each propagation policy.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from kinns.client import Client, MockTransport
from kinns.client.fake import FakeApi
from kinns.controllers.base import Controller
from kinns.controllers.gc import GarbageCollector
from kinns.controllers.namespace import NamespaceController


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def ref(owner: dict[str, Any], block: bool = True) -> dict[str, Any]:
    m = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"], "uid": m["uid"],
            "controller": True, "blockOwnerDeletion": block}


def obj(api_version: str, kind: str, name: str, *owners: dict[str, Any], ns: str = "default",
        block: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = [ref(o, block) for o in owners]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


async def eventually(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def chain(fake: FakeApi, pods: int = 2, block: bool = True) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    d = fake.put(obj("apps/v1", "Deployment", "web"))
    rs = fake.put(obj("apps/v1", "ReplicaSet", "web-1", d, block=block))
    ps = [fake.put(obj("v1", "Pod", f"web-1-{i}", rs, block=block)) for i in range(pods)]
    return d, rs, ps


def with_controller(make: Callable[[Client], Controller],
                    body: Callable[[FakeApi, Client, Controller], Awaitable[None]]) -> None:
    async def go() -> None:
        fake = FakeApi()
        client = Client(MockTransport(fake.handle))
        ctl = make(client)
        try:
            await body(fake, client, ctl)
        finally:
            await ctl.stop()
    run(go())


def gc(client: Client) -> Controller:
    return GarbageCollector(client)


def names(fake: FakeApi, api_version: str, kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in fake.all(api_version, kind, "default")]


def test_background_deletes_whole_chain() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        chain(fake)
        bystander = fake.put(obj("v1", "Pod", "alone"))
        await ctl.start()
        await c.delete(("apps/v1", "Deployment"), "web", "default", propagation_policy="Background")
        await eventually(lambda: names(fake, "v1", "Pod") == ["alone"])
        assert names(fake, "apps/v1", "ReplicaSet") == []
        assert fake.all("v1", "Pod", "default")[0]["metadata"]["uid"] == bystander["metadata"]["uid"]
    with_controller(gc, body)


def test_dangling_owner_found_at_startup() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "gone", "uid": "no-such-uid"}}
        fake.put(obj("v1", "Pod", "orphaned", ghost))
        # Same name as the owner but another UID: still dangling.
        fake.put(obj("apps/v1", "ReplicaSet", "gone"))
        await ctl.start()
        await eventually(lambda: names(fake, "v1", "Pod") == [])
        assert names(fake, "apps/v1", "ReplicaSet") == ["gone"]
    with_controller(gc, body)


def test_owner_missing_from_cache_is_checked_live() -> None:
    """A dependent seen before its owner reached the cache must not be deleted."""
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        assert isinstance(ctl, GarbageCollector)
        await ctl.start()
        rs_inf = ctl.informers[("apps/v1", "ReplicaSet")]
        await rs_inf.stop()  # the ReplicaSet cache now lags behind the API
        rs = await c.create(obj("apps/v1", "ReplicaSet", "rs"))
        await c.create(obj("v1", "Pod", "p", rs))
        await eventually(lambda: ctl.informers[("v1", "Pod")].get("default/p") is not None)
        await asyncio.sleep(0.1)
        assert names(fake, "v1", "Pod") == ["p"]
    with_controller(gc, body)


def test_partial_owners_only_lose_the_dangling_reference() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        a = fake.put(obj("v1", "ConfigMap", "a"))
        b = fake.put(obj("v1", "ConfigMap", "b"))
        fake.put(obj("v1", "Secret", "s", a, b))
        await ctl.start()
        await c.delete(("v1", "ConfigMap"), "a", "default")
        await eventually(lambda: len(fake.all("v1", "Secret", "default")[0]["metadata"]["ownerReferences"]) == 1)
        s = fake.all("v1", "Secret", "default")[0]
        assert s["metadata"]["ownerReferences"][0]["uid"] == b["metadata"]["uid"]
    with_controller(gc, body)


def test_foreground_waits_for_blocking_dependents() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        d, rs, ps = chain(fake)
        # One pod holds a finalizer of its own, so it lingers while "terminating".
        pod0 = fake.lookup("v1", "Pod", ps[0]["metadata"]["name"], "default")
        assert pod0 is not None
        await c.patch(("v1", "Pod"), pod0["metadata"]["name"], {"metadata": {"finalizers": ["test/hold"]}}, "default")
        await ctl.start()
        await c.delete(("apps/v1", "Deployment"), "web", "default", propagation_policy="Foreground")
        await eventually(lambda: names(fake, "v1", "Pod") == ["web-1-0"])
        held = fake.lookup("v1", "Pod", "web-1-0", "default")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        await asyncio.sleep(0.1)
        # Owner and middle owner wait, marked for deletion.
        dep = fake.lookup("apps/v1", "Deployment", "web", "default")
        mid = fake.lookup("apps/v1", "ReplicaSet", "web-1", "default")
        assert dep is not None and "foregroundDeletion" in dep["metadata"]["finalizers"]
        assert mid is not None and mid["metadata"].get("deletionTimestamp")
        await c.patch(("v1", "Pod"), "web-1-0", {"metadata": {"finalizers": None}}, "default")
        await eventually(lambda: fake.lookup("apps/v1", "Deployment", "web", "default") is None)
        assert names(fake, "apps/v1", "ReplicaSet") == [] and names(fake, "v1", "Pod") == []
    with_controller(gc, body)


def test_foreground_without_blocking_dependents_finishes_at_once() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        chain(fake, block=False)
        await ctl.start()
        await c.delete(("apps/v1", "Deployment"), "web", "default", propagation_policy="Foreground")
        await eventually(lambda: fake.lookup("apps/v1", "Deployment", "web", "default") is None)
        await eventually(lambda: names(fake, "v1", "Pod") == [])  # dependents still collected
    with_controller(gc, body)


def test_orphan_keeps_dependents_and_strips_references() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        d, rs, ps = chain(fake)
        await ctl.start()
        await c.delete(("apps/v1", "ReplicaSet"), "web-1", "default", propagation_policy="Orphan")
        await eventually(lambda: fake.lookup("apps/v1", "ReplicaSet", "web-1", "default") is None)
        await asyncio.sleep(0.1)
        pods = fake.all("v1", "Pod", "default")
        assert len(pods) == 2 and all(not p["metadata"].get("ownerReferences") for p in pods)
        assert names(fake, "apps/v1", "Deployment") == ["web"]
    with_controller(gc, body)


# ------------------------------------------------------------ namespaces

def nsc(client: Client) -> Controller:
    return NamespaceController(client, recheck=0.05)


def test_namespace_deletion_empties_then_finalizes() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        await c.create(obj("v1", "ConfigMap", "cm", ns="team"))
        await c.create(obj("apps/v1", "Deployment", "d", ns="team"))
        held = await c.create(obj("v1", "Pod", "p", ns="team"))
        await c.patch(("v1", "Pod"), "p", {"metadata": {"finalizers": ["test/hold"]}}, "team")
        await c.create(obj("v1", "ConfigMap", "keep"))  # another namespace: untouched
        await ctl.start()
        await c.delete(("v1", "Namespace"), "team")
        ns = fake.lookup("v1", "Namespace", "team")
        assert ns is not None and ns["status"]["phase"] == "Terminating"
        await eventually(lambda: fake.all("v1", "ConfigMap", "team") == [] and fake.all("apps/v1", "Deployment", "team") == [])

        def conditions() -> dict[str, Any]:
            n = fake.lookup("v1", "Namespace", "team")
            return {x["type"]: x for x in (n or {}).get("status", {}).get("conditions", [])}
        await eventually(lambda: "NamespaceContentRemaining" in conditions())
        cond = conditions()
        assert cond["NamespaceContentRemaining"]["message"] == \
            "Some resources are remaining: pods. has 1 resource instances"
        assert cond["NamespaceFinalizersRemaining"]["message"] == \
            "Some content in the namespace has finalizers remaining: test/hold in 1 resource instances"
        assert fake.lookup("v1", "Namespace", "team") is not None  # waits for the pod
        await c.patch(("v1", "Pod"), "p", {"metadata": {"finalizers": None}}, "team")
        await eventually(lambda: fake.lookup("v1", "Namespace", "team") is None)
        assert names(fake, "v1", "ConfigMap") == ["keep"]
        assert held["metadata"]["uid"]
    with_controller(nsc, body)


def test_namespace_not_deleting_is_left_alone() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        await c.create(obj("v1", "ConfigMap", "cm"))
        await ctl.start()
        await asyncio.sleep(0.1)
        assert names(fake, "v1", "ConfigMap") == ["cm"]
        assert fake.lookup("v1", "Namespace", "default") is not None
    with_controller(nsc, body)


def test_controller_retries_failed_reconciles_with_backoff() -> None:
    class Flaky(Controller):
        name = "flaky"

        def __init__(self, client: Client) -> None:
            super().__init__(client, workers=2)
            self.calls: list[str] = []
            self.queue.base_delay = 0.01

        async def reconcile(self, key: str) -> float | None:
            self.calls.append(key)
            if len(self.calls) < 3:
                raise RuntimeError("transient")
            return None

    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        assert isinstance(ctl, Flaky)
        import logging
        logging.getLogger("kinns.controllers.base").disabled = True
        try:
            await ctl.start()
            ctl.enqueue("k")
            await eventually(lambda: len(ctl.calls) == 3)
            await asyncio.sleep(0.05)
            assert ctl.calls == ["k", "k", "k"] and ctl.queue.num_requeues("k") == 0
        finally:
            logging.getLogger("kinns.controllers.base").disabled = False
    with_controller(Flaky, body)


def test_cluster_scoped_dependent_of_namespaced_owner_is_kept_with_warning() -> None:
    async def body(fake: FakeApi, c: Client, ctl: Controller) -> None:
        rs = fake.put(obj("apps/v1", "ReplicaSet", "rs"))
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              "metadata": {"name": "pv1", "ownerReferences": [ref(rs)]}}
        fake.put(pv)
        await ctl.start()
        await eventually(lambda: any(e["reason"] == "OwnerRefInvalidNamespace"
                                     for e in fake.all("v1", "Event", "default")))
        assert fake.lookup("v1", "PersistentVolume", "pv1") is not None
        ev = [e for e in fake.all("v1", "Event", "default") if e["reason"] == "OwnerRefInvalidNamespace"][0]
        assert ev["type"] == "Warning" and ev["involvedObject"]["name"] == "pv1"
    with_controller(gc, body)
