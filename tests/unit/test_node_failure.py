"""A node whose kubelet goes silent, against the real API server in-process.

The test plays the kubelets: it registers Nodes, renews their Leases and
posts pod status, then stops renewing one node's Lease.  The node lifecycle,
taint-eviction, endpoints and pod GC controllers, with a grace period cut
to 1.5 s, must then do what upstream's do, as `kubectl` would show it:
Unknown conditions, the unreachable taints, pods not ready and listed as
such in Endpoints, the pod that tolerates the taint for 2 s deleted after
2 s, the node untainted when its kubelet is back, and pods force-deleted
when the Node object goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path
from typing import Any, Callable

from kinns.api.errors import ApiError
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.client import Client, InformerFactory, InProcessTransport
from kinns.controllers.base import Controller
from kinns.controllers.endpoints import EndpointsController
from kinns.controllers.nodehealth import format_time, parse_time
from kinns.controllers.nodelifecycle import NodeLifecycleController
from kinns.controllers.podgc import PodGCController
from kinns.controllers.taints import NOT_READY, UNREACHABLE
from kinns.controllers.tainteviction import TaintEvictionController

Obj = dict[str, Any]
NODE, LEASE = ("v1", "Node"), ("coordination.k8s.io/v1", "Lease")
GRACE = 1.5


def now_ts() -> str:
    return format_time(dt.datetime.now(dt.timezone.utc))


def micro_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def eventually(cond: Callable[[], Any], timeout: float = 8.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        r = cond()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return r
        if loop.time() > end:
            raise AssertionError(f"{what}: not met in {timeout}s")
        await asyncio.sleep(0.05)


class Kubelets:
    """The heartbeats of fake kubelets: a Lease renewed every 0.2 s for each live node."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.alive: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def register(self, name: str) -> None:
        await self.client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                  "status": self.status()})
        await self.client.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                  "metadata": {"name": name, "namespace": "kube-node-lease"},
                                  "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                                           "renewTime": micro_now()}})
        self.alive.add(name)

    @staticmethod
    def status() -> Obj:
        t = now_ts()
        return {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status", "lastHeartbeatTime": t,
                                "lastTransitionTime": t}],
                "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}}

    async def come_back(self, name: str) -> None:
        """What a restarted kinns kubelet does: post its status, then renew its lease."""
        await self.client.patch(NODE, name, {"status": self.status()}, subresource="status")
        self.alive.add(name)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            for name in list(self.alive):
                with contextlib.suppress(ApiError):
                    await self.client.patch(LEASE, name, {"spec": {"renewTime": micro_now()}}, "kube-node-lease")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start(client: Client, kubelets: Kubelets, grace: float = GRACE) -> list[Controller]:
    factory = InformerFactory(client)
    controllers: list[Controller] = [
        NodeLifecycleController(client, factory, grace=grace, startup_grace=grace, period=0.25),
        TaintEvictionController(client, factory),
        EndpointsController(client, factory),
        PodGCController(client, factory, quarantine=0.0),
    ]
    for c in controllers:
        await c.start()
    kubelets.start()
    return controllers


async def running_pod(client: Client, name: str, node: str, ip: str, tolerations: list[Obj] | None = None,
                      labels: dict[str, str] | None = None) -> Obj:
    pod = await client.create({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
                               "spec": {"nodeName": node, "tolerations": tolerations or [],
                                        "containers": [{"name": "c", "image": "nginx"}]}})
    t = now_ts()
    pod["status"] = {"phase": "Running", "podIP": ip, "conditions": [
        {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": t},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": t}]}
    out: Obj = await client.update_status(pod)
    return out


def cond(obj: Obj, ctype: str) -> Obj:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def taints(node: Obj) -> list[tuple[str, str]]:
    return sorted((t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or [])


async def get(client: Client, ref: tuple[str, str], name: str, ns: str | None = None) -> Obj | None:
    try:
        obj: Obj = await client.get(ref, name, ns)
        return obj
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def events(client: Client, reason: str) -> list[Obj]:
    items, _ = await client.list(("v1", "Event"), "default")
    return [e for e in items if e.get("reason") == reason]


async def stop_all(controllers: list[Controller], kubelets: Kubelets) -> None:
    await kubelets.stop()
    for c in controllers:
        await c.stop()
        await c.factory.stop()


def test_silent_node_goes_unknown_gets_tainted_and_its_pods_go(tmp_path: Path) -> None:
    async def go() -> None:
        api = ApiServer(SqliteStore(tmp_path / "state.db", durable=False))
        await api.bootstrap()
        client = Client(InProcessTransport(api.dispatch))
        kubelets = Kubelets(client)
        await kubelets.register("w1")
        await kubelets.register("w2")
        web1 = await running_pod(client, "web-1", "w1", "10.244.1.5", labels={"app": "web"})
        await running_pod(client, "web-2", "w2", "10.244.2.5", labels={"app": "web"})
        await running_pod(client, "brief", "w1", "10.244.1.6",
                          tolerations=[{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": 2}])
        await running_pod(client, "patient", "w1", "10.244.1.8",
                          tolerations=[{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": 60}])
        await running_pod(client, "daemon", "w1", "10.244.1.7",
                          tolerations=[{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
                                       {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}])
        await client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        # DefaultTolerationSeconds: what a pod that names none gets on create.
        assert [t for t in web1["spec"]["tolerations"] if t.get("tolerationSeconds") == 300] == [
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        controllers = await start(client, kubelets)
        try:
            async def endpoints() -> tuple[list[str], list[str]]:
                ep = await get(client, ("v1", "Endpoints"), "web", "default") or {}
                subset = (ep.get("subsets") or [{}])[0]
                return ([a["targetRef"]["name"] for a in subset.get("addresses") or []],
                        [a["targetRef"]["name"] for a in subset.get("notReadyAddresses") or []])

            async def both_ready() -> bool:
                return await endpoints() == (["web-1", "web-2"], [])
            await eventually(both_ready, what="both web pods ready in Endpoints")
            await asyncio.sleep(GRACE + 0.5)
            w1 = await client.get(NODE, "w1")
            assert cond(w1, "Ready")["status"] == "True" and taints(w1) == []   # a renewed lease keeps it alive

            kubelets.alive.discard("w1")                                       # its kubelet dies
            async def unknown() -> Obj | None:
                n = await client.get(NODE, "w1")
                return n if cond(n, "Ready")["status"] == "Unknown" else None
            w1 = await eventually(unknown, timeout=GRACE + 3, what="w1 Ready=Unknown")
            ready = cond(w1, "Ready")
            assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
            async def tainted() -> Obj | None:
                n = await client.get(NODE, "w1")
                return n if (UNREACHABLE, "NoExecute") in taints(n) else None
            w1 = await eventually(tainted, timeout=3, what="w1 unreachable:NoExecute")
            assert taints(w1) == [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
            added = parse_time(next(t["timeAdded"] for t in w1["spec"]["taints"] if t["effect"] == "NoExecute"))
            assert added is not None

            # The pods stay Running but not ready; Endpoints list web-1 as not ready.
            pod = await client.get(("v1", "Pod"), "web-1", "default")
            assert pod["status"]["phase"] == "Running" and cond(pod, "Ready")["status"] == "False"
            async def web1_not_ready() -> bool:
                return await endpoints() == (["web-2"], ["web-1"])
            await eventually(web1_not_ready, timeout=3, what="web-1 under notReadyAddresses")
            assert [e["message"] for e in await events(client, "NodeNotReady")
                    if e["involvedObject"]["kind"] == "Node"] == ["Node w1 status is now: NodeNotReady"]
            assert taints(await client.get(NODE, "w2")) == []

            # The pod tolerating the taint for 2 s goes after 2 s, and stays Terminating (no kubelet).
            async def brief_terminating() -> Obj | None:
                p = await client.get(("v1", "Pod"), "brief", "default")
                return p if p["metadata"].get("deletionTimestamp") else None
            brief = await eventually(brief_terminating, timeout=6, what="brief Terminating")
            seen = dt.datetime.now(dt.timezone.utc)
            assert seen >= added + dt.timedelta(seconds=2), "evicted before its tolerationSeconds ran out"
            assert cond(brief, "DisruptionTarget")["reason"] == "DeletionByTaintManager"
            assert [e["message"] for e in await events(client, "TaintManagerEviction")] == \
                ["Marking for deletion Pod default/brief"]
            for name in ("web-1", "patient", "daemon"):   # 300 s, 60 s, forever: still there, not deleting
                p = await client.get(("v1", "Pod"), name, "default")
                assert not p["metadata"].get("deletionTimestamp"), name

            # The kubelet comes back: Ready, and the taints go.
            await kubelets.come_back("w1")
            async def healthy() -> Obj | None:
                n = await client.get(NODE, "w1")
                return n if cond(n, "Ready")["status"] == "True" and taints(n) == [] else None
            await eventually(healthy, timeout=3, what="w1 Ready and untainted")
            async def cancelled() -> bool:
                return "Cancelling deletion of Pod default/patient" in [
                    e["message"] for e in await events(client, "TaintManagerEviction")]
            await eventually(cancelled, timeout=3, what="patient's eviction cancelled")
            await asyncio.sleep(GRACE + 0.5)
            assert taints(await client.get(NODE, "w1")) == []

            # The Node object deleted: the pod GC force-deletes what was bound to it.
            await client.delete(NODE, "w1")
            async def gone() -> bool:
                return all([await get(client, ("v1", "Pod"), n, "default") is None
                            for n in ("web-1", "brief", "patient", "daemon")])
            await eventually(gone, timeout=5, what="w1's pods force-deleted")
            assert await get(client, ("v1", "Pod"), "web-2", "default") is not None
            async def only_web2() -> bool:
                return await endpoints() == (["web-2"], [])
            await eventually(only_web2, timeout=3, what="web-1 gone from Endpoints")
        finally:
            await stop_all(controllers, kubelets)
            await api.store.close()
    asyncio.run(go())


def test_when_every_node_is_silent_nothing_is_evicted(tmp_path: Path) -> None:
    """Upstream's master disruption mode: no node answering is more likely our fault than all of theirs."""
    async def go() -> None:
        api = ApiServer(SqliteStore(tmp_path / "state.db", durable=False))
        await api.bootstrap()
        client = Client(InProcessTransport(api.dispatch))
        kubelets = Kubelets(client)
        await kubelets.register("solo")
        await running_pod(client, "web", "solo", "10.244.1.5",
                          tolerations=[{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": 0}])
        controllers = await start(client, kubelets)
        try:
            kubelets.alive.clear()
            async def unknown() -> Obj | None:
                n = await client.get(NODE, "solo")
                return n if cond(n, "Ready")["status"] == "Unknown" and taints(n) else None
            solo = await eventually(unknown, timeout=GRACE + 3, what="solo Unknown and tainted")
            await asyncio.sleep(1.0)
            solo = await client.get(NODE, "solo")
            assert taints(solo) == [(UNREACHABLE, "NoSchedule")]
            pod = await client.get(("v1", "Pod"), "web", "default")
            assert not pod["metadata"].get("deletionTimestamp") and cond(pod, "Ready")["status"] == "False"
        finally:
            await stop_all(controllers, kubelets)
            await api.store.close()
    asyncio.run(go())
