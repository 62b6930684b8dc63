"""The scheduler: binds pending pods to nodes.

Watches pods and nodes; each pending pod with no node (and our scheduler
name) is a key.  `scheduling.schedule` picks the node; the binding goes
through the `pods/binding` subresource as upstream's does.  When no node
fits, the pod gets `PodScheduled=False, reason Unschedulable` with the
upstream-style message and a FailedScheduling Event, which is what `kubectl
describe pod` shows; it is tried again when nodes change or a pod goes away.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from typing import Any

from ..api.errors import ApiError
from ..client.client import Obj, object_key
from ..client.informer import index_by_node_name
from . import podutil, pvbinder, volumerestrictions
from .base import Controller
from .scheduling import Decision, schedule

SCHEDULER_NAME = "default-scheduler"
RETRY_SECONDS = 5.0
NO_PROVISIONER = "kubernetes.io/no-provisioner"  # a class of static volumes only

log = logging.getLogger("kube-scheduler")


def _reasons(message: str) -> Counter[str]:
    """The per-reason node counts of a FailedScheduling message."""
    out: Counter[str] = Counter()
    _, sep, tail = message.partition(" nodes are available: ")
    for part in tail.split(". preemption:")[0].split(", ") if sep else []:
        count, _, reason = part.partition(" ")
        if count.isdigit() and reason:
            out[reason] += int(count)
    return out


def _pending(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not (pod.get("metadata") or {}).get("deletionTimestamp"))


class Scheduler(Controller):
    name = "scheduler"
    workers = 1  # one binder at a time: decisions see each other's bindings

    def setup(self) -> None:
        # Bindings this scheduler made that the cache may not show yet (set
        # first: handlers may run as soon as they are registered).
        self._assumed: dict[str, str] = {}
        self._binding: set[asyncio.Task[None]] = set()
        self.pods = self.factory.informer("v1", "Pod")
        self.nodes = self.factory.informer("v1", "Node")
        self.claims = self.factory.informer("v1", "PersistentVolumeClaim")
        self.claims.add_handlers(on_add=lambda c: self._requeue_all(), on_update=lambda o, n: self._requeue_all(),
                                 on_delete=lambda c: self._requeue_all())
        self.pods.add_indexer("node", index_by_node_name)
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda old, new: self._pod_changed(new),
            on_delete=lambda pod: self._requeue_all(),
        )
        self.nodes.add_handlers(on_add=lambda n: self._requeue_all(),
                                on_update=lambda o, n: self._requeue_all(),
                                on_delete=lambda n: self._requeue_all())

    def _unbound_claim(self, pod: Obj) -> str | None:
        """Upstream's VolumeBinding filter: every claim must exist, and be bound unless
        its class binds at the first consumer (WaitForFirstConsumer): those wait for us."""
        ns = pod["metadata"]["namespace"]
        classes = self.factory.informer("storage.k8s.io/v1", "StorageClass")
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.claims.get(f"{ns}/{claim}")
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found'
            if pvc["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{claim}" is being deleted'
            if (pvc.get("status") or {}).get("phase") != "Bound":
                cls = pvbinder.claim_class(pvc, pvbinder.default_class(classes.list()))
                if not pvbinder.is_wait_for_first_consumer(classes.get(cls) if cls else None):
                    return "pod has unbound immediate PersistentVolumeClaims"
        return None

    def _delayed_claims(self, pod: Obj) -> list[Obj]:
        """The pod's claims still unbound that wait for a node (WaitForFirstConsumer)."""
        ns = pod["metadata"]["namespace"]
        classes = self.factory.informer("storage.k8s.io/v1", "StorageClass")
        out = []
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            pvc = self.claims.get(f"{ns}/{claim}") if claim else None
            if pvc is None or (pvc.get("spec") or {}).get("volumeName") or \
                    (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            cls = pvbinder.claim_class(pvc, pvbinder.default_class(classes.list()))
            if pvbinder.is_wait_for_first_consumer(classes.get(cls) if cls else None):
                out.append(pvc)
        return out

    def _volume_conflicts(self, pod: Obj, nodes: list[Obj]) -> dict[str, str]:
        """Nodes the pod's volumes rule out, with upstream's VolumeBinding reason: the node
        affinity of its bound volumes, and for claims that wait for their first consumer
        but that no provisioner serves, a node without a matching volume."""
        ns = pod["metadata"]["namespace"]
        volumes = self.factory.informer("v1", "PersistentVolume")
        classes = self.factory.informer("storage.k8s.io/v1", "StorageClass")
        pvs, static = [], []
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            pvc = self.claims.get(f"{ns}/{claim}") if claim else None
            name = ((pvc or {}).get("spec") or {}).get("volumeName")
            pv = volumes.get(name) if name else None
            if pv is not None:
                pvs.append(pv)
        for pvc in self._delayed_claims(pod):
            cls = pvbinder.claim_class(pvc, pvbinder.default_class(classes.list()))
            if (classes.get(cls) or {}).get("provisioner") == NO_PROVISIONER:
                static.append((pvc, cls))
        if not pvs and not static:
            return {}
        out: dict[str, str] = {}
        candidates = volumes.list() if static else []
        for n in nodes:
            if not all(pvbinder.node_affinity_matches(pv, n) for pv in pvs):
                out[n["metadata"]["name"]] = "node(s) had volume node affinity conflict"
            elif any(pvbinder.find_matching_volume(pvc, candidates, claim_class_name=cls, node=n,
                                                   delay_binding=True) is None for pvc, cls in static):
                out[n["metadata"]["name"]] = "node(s) didn't find available persistent volumes to bind"
        return out

    def _schedule(self, pod: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]]) -> Decision:
        """`scheduling.schedule`, then the pod's volumes (VolumeBinding comes after the other
        filters, so a node both filters reject counts under the earlier one, as upstream)."""
        conflicts = self._volume_conflicts(pod, nodes)
        if volumerestrictions.rwop_in_use(pod, self.claims.get, self.pods.list, self._assumed):
            conflicts = {n["metadata"]["name"]: volumerestrictions.RWOP_CONFLICT for n in nodes}
        if not conflicts:
            return schedule(pod, nodes, by_node=by_node)
        rest = [n for n in nodes if n["metadata"]["name"] not in conflicts]
        reasons: Counter[str] = Counter()
        if rest:
            decision = schedule(pod, rest, by_node=by_node)
            if decision.node is not None:
                return decision
            reasons.update(_reasons(decision.message))
        for n in nodes:
            name = n["metadata"]["name"]
            if name in conflicts:
                alone = schedule(pod, [n], by_node=by_node)
                reasons.update(_reasons(alone.message) if alone.node is None else {conflicts[name]: 1})
        return Decision(None, volumerestrictions.failure_message(reasons, len(nodes)))

    def _pod_changed(self, pod: Obj) -> None:
        if _pending(pod):
            self.enqueue(object_key(pod))
        else:
            self._assumed.pop(object_key(pod), None)

    def _requeue_all(self) -> None:
        for pod in self.pods.list():
            if _pending(pod):
                self.enqueue(object_key(pod))

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None or not _pending(pod) or key in self._assumed:
            return None
        nodes = self.nodes.list()
        by_node = {n["metadata"]["name"]: [p for p in self.pods.by_index("node", n["metadata"]["name"])
                                           if podutil.is_active(p)] for n in nodes}
        for k, node in self._assumed.items():
            assumed = self.pods.get(k)
            if assumed is not None and not (assumed.get("spec") or {}).get("nodeName") and node in by_node:
                by_node[node].append({**assumed, "spec": {**assumed["spec"], "nodeName": node}})
        unbound = self._unbound_claim(pod)
        if unbound is not None:
            await self._unschedulable(pod, f"0/{len(nodes)} nodes are available: {unbound}. preemption: 0/"
                                           f"{len(nodes)} nodes are available: {len(nodes)} Preemption is not "
                                           "helpful for scheduling.")
            return RETRY_SECONDS
        decision = self._schedule(pod, nodes, by_node)
        meta = pod["metadata"]
        if decision.node is None:
            await self._unschedulable(pod, decision.message)
            return RETRY_SECONDS
        # Assume the binding at once and write it in the background, so the
        # next decision already counts this pod on its node (upstream's
        # scheduler cache does the same).
        self._assumed[key] = decision.node
        task = asyncio.get_running_loop().create_task(self._bind(key, pod, decision.node))
        self._binding.add(task)
        task.add_done_callback(self._binding.discard)
        return None

    async def _bind(self, key: str, pod: Obj, node: str) -> None:
        """Write the assumed binding; on any failure forget the assumption and try
        the pod again.  A failure that escaped here would leave the pod assumed
        for ever: never retried, and with no Event saying why."""
        try:
            bound = await self._write_binding(pod, node)
        except Exception as exc:  # noqa: BLE001 - transport errors too: the binding may not have landed
            log.warning("scheduler: binding %s to %s failed (retrying): %s", key, node, exc,
                        extra={"source": "schedule_one.go:1049"})
            bound = None
        if bound:
            return
        self._assumed.pop(key, None)
        if bound is None:
            self.queue.add_after(key, 0.5)

    async def _write_binding(self, pod: Obj, node: str) -> bool | None:
        """True once bound (and the Scheduled Event told), False when the pod is
        gone, None to try again (raises on transport errors)."""
        meta = pod["metadata"]
        # Claims that wait for their first consumer learn the node now, so their
        # volume is found or provisioned there (upstream's VolumeBinding PreBind).
        for pvc in self._delayed_claims(pod):
            if ((pvc["metadata"].get("annotations") or {}).get(pvbinder.ANN_SELECTED_NODE)) == node:
                continue
            try:
                await self.client.patch(("v1", "PersistentVolumeClaim"), pvc["metadata"]["name"], {
                    "metadata": {"annotations": {pvbinder.ANN_SELECTED_NODE: node}}}, meta["namespace"])
            except ApiError as exc:
                if exc.code != 404:
                    return None
        try:
            await self.client.post_subresource(("v1", "Pod"), meta["name"], meta["namespace"], "binding", {
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            })
        except ApiError as exc:
            return False if exc.code == 404 else None  # a pod deleted meanwhile needs nothing more
        self.client.emit_event(pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
                               component=SCHEDULER_NAME)
        return True

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        conds: list[dict[str, Any]] = list((pod.get("status") or {}).get("conditions") or [])
        current = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if current is not None and current.get("message") == message and current.get("status") == "False":
            return
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        new = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
               "lastProbeTime": None, "lastTransitionTime": now}
        conds = [c for c in conds if c.get("type") != "PodScheduled"] + [new]
        meta = pod["metadata"]
        await self.client.patch(("v1", "Pod"), meta["name"], {"status": {"conditions": conds}}, meta["namespace"],
                                patch_type="merge", subresource="status")
        self.client.emit_event(pod, "FailedScheduling", message, type="Warning", component=SCHEDULER_NAME)
