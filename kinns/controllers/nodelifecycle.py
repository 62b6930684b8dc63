"""The node lifecycle controller: notices dead kubelets and says so, as upstream's does.

Every node-monitor period (5 s) one pass looks at every Node and its Lease
`kube-node-lease/<node>` (rules in `nodehealth`):
- a node silent for longer than the grace period (`--node-monitor-grace-period`,
  50 s) gets its conditions set to Unknown, a `NodeNotReady` Event, and
  Ready=False on each of its pods, so Endpoints list them as not ready while
  they stay Running (nobody is left to stop them);
- a node whose Ready is False or Unknown is queued for the NoExecute
  `not-ready`/`unreachable` taint, which the taint-eviction controller acts
  on; the queue is rate-limited per zone and stops when every zone is down;
- a node Ready again loses the NoExecute taint.
Between passes, every Node change gets the NoSchedule taints that mirror
its conditions (and `spec.unschedulable`), so the scheduler stops placing
pods on a sick node at once; and a pod bound to a node that is not Ready
is marked not ready as soon as it is seen.

Queue keys: `MONITOR` for the pass, a node name for its NoSchedule taints,
`namespace/name` for a newly bound pod.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Callable

from ..api.errors import ApiError
from ..client.client import Client, Obj, object_key
from ..client.informer import InformerFactory, index_by_node_name
from . import nodehealth as nh
from .taints import NOT_READY, UNREACHABLE
from .base import Controller

log = logging.getLogger(__name__)

COMPONENT = "node-controller"
MONITOR = "#monitor"     # no node name or pod key looks like this
UPDATE_RETRIES = 5       # upstream's NodeHealthUpdateRetry


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 grace: float = 50.0, startup_grace: float = 60.0, period: float = 5.0,
                 eviction_rate: float = 0.1, secondary_eviction_rate: float = 0.01,
                 large_cluster: int = 50, unhealthy_zone_threshold: float = 0.55,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], dt.datetime] = nh.utcnow) -> None:
        super().__init__(client, factory)
        self.grace = grace
        self.startup_grace = startup_grace
        self.period = period
        self.eviction_rate = eviction_rate
        self.secondary_eviction_rate = secondary_eviction_rate
        self.large_cluster = large_cluster
        self.unhealthy_zone_threshold = unhealthy_zone_threshold
        self.clock = clock
        self.wall_clock = wall_clock
        self._health: dict[str, nh.NodeHealth] = {}
        self._known: dict[str, Obj] = {}              # nodes seen by the last pass
        self._retry: set[str] = set()                 # nodes whose pods could not all be marked
        self._zone_states: dict[str, str] = {}
        self._buckets: dict[str, nh.TokenBucket] = {}
        self._pending: dict[str, dict[str, None]] = {}  # zone -> nodes awaiting a NoExecute taint, in order

    # -------------------------------------------------------------- wiring

    def setup(self) -> None:
        self.nodes = self.factory.informer("v1", "Node")
        self.pods = self.factory.informer("v1", "Pod")
        self.leases = self.factory.informer("coordination.k8s.io/v1", "Lease", namespace="kube-node-lease")
        self.pods.add_indexer("node", index_by_node_name)
        self.nodes.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n))
        self.pods.add_handlers(on_add=self._pod_bound, on_update=self._pod_bound)

    def _pod_bound(self, a: Obj, b: Obj | None = None) -> None:
        old, new = (None, a) if b is None else (a, b)
        node = (new.get("spec") or {}).get("nodeName")
        if node and (old is None or (old.get("spec") or {}).get("nodeName") != node):
            self.enqueue(object_key(new))

    async def start(self, sync_timeout: float | None = 30.0) -> None:
        await super().start(sync_timeout)
        self.enqueue(MONITOR)

    async def reconcile(self, key: str) -> float | None:
        if key == MONITOR:
            await self.monitor()
            return self.period
        if "/" in key:
            await self._pod_on_sick_node(key)
        else:
            await self._noschedule_pass(key)
        return None

    def _now_ts(self) -> str:
        return nh.format_time(self.wall_clock())

    # ---------------------------------------------------------- the pass

    async def monitor(self) -> None:
        """One node-monitor pass over every node (upstream's monitorNodeHealth)."""
        nodes = self.nodes.list()
        self._classify(nodes)
        now = self.clock()
        statuses: dict[str, list[str | None]] = {}
        current_nodes: list[Obj] = []
        for node in nodes:
            name = node["metadata"]["name"]
            got = await self._update_health(node, now)
            if got is None:
                continue  # deleted meanwhile
            observed, current, node = got
            current_nodes.append(node)
            statuses.setdefault(nh.zone_key(node), []).append(current)
            if current is None:
                continue  # never posted status, still within its startup grace
            await self._taint_based_eviction(node, observed)
            if current != "True" and observed == "True":
                self.client.emit_event(node, "NodeNotReady", f"Node {name} status is now: NodeNotReady",
                                       component=COMPONENT)
            elif not (name in self._retry and observed != "True"):
                self._retry.discard(name)
                continue
            if await self._mark_pods_not_ready(self.pods.by_index("node", name), name):
                self._retry.discard(name)
            else:
                self._retry.add(name)
        self._handle_disruption(statuses, now)
        if self._all_fully_disrupted():
            for node in current_nodes:
                await self._write_taints(node, nh.without_noexecute)
        await self._noexecute_pass(now)

    def _classify(self, nodes: list[Obj]) -> None:
        """RegisteredNode / RemovingNode Events as nodes come and go, as upstream."""
        names = {n["metadata"]["name"] for n in nodes}
        for node in nodes:
            name = node["metadata"]["name"]
            if name not in self._known:
                self.client.emit_event(node, "RegisteredNode",
                                       f"Node {name} event: Registered Node {name} in Controller", component=COMPONENT)
            self._known[name] = node
        for name in [n for n in self._known if n not in names]:
            gone = self._known.pop(name)
            self._health.pop(name, None)
            self._retry.discard(name)
            for pending in self._pending.values():
                pending.pop(name, None)
            self.client.emit_event(gone, "RemovingNode", f"Node {name} event: Removing Node {name} from Controller",
                                   component=COMPONENT)

    async def _update_health(self, node: Obj, now: float) -> tuple[str, str | None, Obj] | None:
        """(observed Ready, current Ready, node) after marking a silent node Unknown
        (upstream's tryUpdateNodeHealth); None when the node is gone."""
        name = node["metadata"]["name"]
        for _ in range(UPDATE_RETRIES):
            lease = self.leases.get(f"kube-node-lease/{name}")
            health = nh.observe(self._health.get(name), node, lease, now, self.wall_clock())
            self._health[name] = health
            observed = nh.ready_status(node)
            if not nh.is_stale(health, now, self.grace, self.startup_grace):
                return observed or "Unknown", observed, node
            conds = nh.unknown_conditions(node, self._now_ts())
            if conds is None:
                return observed or "Unknown", observed, node
            try:
                updated = await self.client.update_status(
                    {**node, "status": {**(node.get("status") or {}), "conditions": conds}})
            except ApiError as exc:
                if exc.code == 404:
                    return None
                if exc.code != 409:
                    raise
                try:
                    node = await self.client.get(("v1", "Node"), name)
                except ApiError as exc2:
                    if exc2.code == 404:
                        return None
                    raise
                continue
            log.info("node %s: no heartbeat for %.0fs, conditions now Unknown", name, now - health.probe)
            self._health[name] = nh.after_write(health, updated)
            return observed or "Unknown", "Unknown", updated
        raise ApiError(409, "Conflict", f"node {name}: status kept changing under us")

    async def _taint_based_eviction(self, node: Obj, observed: str) -> None:
        """Queue a not-ready node for its NoExecute taint, swap at once between
        not-ready and unreachable, and untaint a Ready one (processTaintBaseEviction)."""
        name = node["metadata"]["name"]
        pending = self._pending.setdefault(nh.zone_key(node), {})
        key = nh.noexecute_taint(observed)
        if key is None:
            pending.pop(name, None)
            if observed == "True":
                await self._write_taints(node, nh.without_noexecute)
            return
        other = UNREACHABLE if key == NOT_READY else NOT_READY
        if nh.has_taint(node, other, "NoExecute"):
            await self._write_taints(node, lambda n: nh.swap_taints(
                n, [{"key": key, "effect": "NoExecute"}], [{"key": other, "effect": "NoExecute"}], self._now_ts()))
        elif not nh.has_taint(node, key, "NoExecute"):
            pending.setdefault(name, None)

    def _bucket(self, zone: str) -> nh.TokenBucket:
        if zone not in self._buckets:
            self._buckets[zone] = nh.TokenBucket(self.eviction_rate)
        return self._buckets[zone]

    def _zone_qps(self, state: str, size: int) -> float:
        return nh.zone_qps(state, size, rate=self.eviction_rate, secondary_rate=self.secondary_eviction_rate,
                           large_cluster=self.large_cluster)

    def _all_fully_disrupted(self) -> bool:
        return bool(self._zone_states) and all(s == nh.FULL for s in self._zone_states.values())

    def _handle_disruption(self, statuses: dict[str, list[str | None]], now: float) -> None:
        """Zone states and their tainting rates (upstream's handleDisruption)."""
        new = {z: nh.zone_state(s, self.unhealthy_zone_threshold) for z, s in statuses.items()}
        was_full = self._all_fully_disrupted()
        for z in [z for z in self._zone_states if z not in new]:
            del self._zone_states[z]
        for z in new:
            self._zone_states.setdefault(z, "Initial")
        all_full = bool(new) and all(s == nh.FULL for s in new.values())
        if all_full and was_full:
            return
        if all_full:
            log.info("Controller detected that all Nodes are not-Ready. Entering master disruption mode.")
            for z in new:
                self._bucket(z).set_rate(0.0)
                self._zone_states[z] = nh.FULL
            return
        if was_full:
            log.info("Controller detected that some Nodes are Ready. Exiting master disruption mode.")
            # Every node gets a fresh grace period: the silence may have been ours.
            for name, h in self._health.items():
                self._health[name] = dataclasses.replace(h, probe=now)
        for z, state in new.items():
            if self._zone_states[z] != state or was_full:
                if self._zone_states[z] != state:
                    log.info("Controller detected that zone %r is now in state %s.", z, state)
                self._bucket(z).set_rate(self._zone_qps(state, len(statuses[z])))
                self._zone_states[z] = state

    async def _noexecute_pass(self, now: float) -> None:
        """Taint queued nodes, as fast as each zone's rate allows (doNoExecuteTaintingPass)."""
        for zone, pending in self._pending.items():
            for name in list(pending):
                node = self.nodes.get(name)
                key = nh.noexecute_taint(nh.ready_status(node)) if node is not None else None
                if node is None or key is None or nh.has_taint(node, key, "NoExecute"):
                    pending.pop(name, None)
                    continue
                if not self._bucket(zone).try_take(now):
                    break
                other = UNREACHABLE if key == NOT_READY else NOT_READY
                if await self._write_taints(node, lambda n: nh.swap_taints(
                        n, [{"key": key, "effect": "NoExecute"}], [{"key": other, "effect": "NoExecute"}],
                        self._now_ts())):
                    log.info("node %s: tainted %s:NoExecute", name, key)
                    pending.pop(name, None)

    # ------------------------------------------------------- between passes

    async def _noschedule_pass(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is not None:
            await self._write_taints(node, lambda n: nh.reconcile_noschedule(n, self._now_ts()))

    async def _pod_on_sick_node(self, key: str) -> None:
        """A pod just bound to a node that is not Ready is not ready either (upstream's processPod)."""
        pod = self.pods.get(key)
        if pod is None:
            return
        node_name = (pod.get("spec") or {}).get("nodeName", "")
        node = self.nodes.get(node_name)
        if node_name not in self._health or node is None:
            return
        status = nh.ready_status(node)
        if status is not None and status != "True" and not await self._mark_pods_not_ready([pod], node_name):
            raise ApiError(409, "Conflict", f"pod {key}: could not mark it not ready")

    # ------------------------------------------------------------- writes

    async def _write_taints(self, node: Obj, compute: Callable[[Obj], list[Obj] | None]) -> bool:
        """Write `compute(node)` as the node's taints (None: nothing to do), re-reading
        the node on a conflict; False when it could not be written."""
        name = node["metadata"]["name"]
        for _ in range(UPDATE_RETRIES):
            taints = compute(node)
            if taints is None:
                return True
            patch = {"metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
                     "spec": {"taints": taints or None}}
            try:
                await self.client.patch(("v1", "Node"), name, patch)
                return True
            except ApiError as exc:
                if exc.code == 404:
                    return False
                if exc.code != 409:
                    raise
            try:
                node = await self.client.get(("v1", "Node"), name)
            except ApiError as exc:
                if exc.code == 404:
                    return False
                raise
        return False

    async def _mark_pods_not_ready(self, pods: list[Obj], node_name: str) -> bool:
        """Ready=False on each pod of the node (upstream's MarkPodsNotReady); False if some write failed."""
        ok = True
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            conds = nh.pod_not_ready_conditions(pod, self._now_ts())
            if conds is None:
                continue
            try:
                await self.client.update_status({**pod, "status": {**(pod.get("status") or {}), "conditions": conds}})
            except ApiError as exc:
                if exc.code != 404:
                    log.info("could not mark pod %s not ready: %s", object_key(pod), exc)
                    ok = False
                continue
            self.client.emit_event(pod, "NodeNotReady", "Node is not ready", type="Warning", component=COMPONENT)
        return ok
