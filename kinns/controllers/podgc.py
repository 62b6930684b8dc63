"""The pod garbage collector: force-deletes pods no kubelet will ever finish.

Graceful deletion of a bound pod waits for its kubelet.  When there is none
to wait for, upstream's PodGC (pkg/controller/podgc) steps in, and so does
this one:
- orphaned: the pod is bound to a node that no longer exists (checked
  against the API after a quarantine, since a node may be registering just
  as its first pods arrive).  It gets phase Failed and the condition
  `DisruptionTarget` (`DeletionByPodGC`, "PodGC: node no longer exists");
- terminating on a node that is not Ready and carries the
  `node.kubernetes.io/out-of-service` taint (an operator's word that the
  machine is gone, so StatefulSet pods can move);
- terminating and never scheduled.
Each is marked Failed (if it was not finished) and deleted with grace 0.
The cap on finished pods (`--terminated-pod-gc-threshold`, 12500) is not
kept: kinns clusters do not grow that large.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ..api.errors import ApiError
from ..client.client import Client, Obj, object_key
from ..client.informer import InformerFactory, index_by_node_name
from . import nodehealth as nh
from .base import Controller
from .taints import OUT_OF_SERVICE

log = logging.getLogger(__name__)

ORPHANED, TERMINATING_OUT_OF_SERVICE, UNSCHEDULED_TERMINATING = (
    "orphaned", "terminating-out-of-service", "unscheduled-terminating")
ORPHAN_CONDITION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                    "message": "PodGC: node no longer exists"}


def gc_reason(pod: Obj, node: Obj | None) -> str | None:
    """Why the pod GC should force-delete `pod`, bound to `node` (None: not in the cache)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    if not spec.get("nodeName"):
        return UNSCHEDULED_TERMINATING if terminating else None
    if node is None:
        return ORPHANED
    if terminating and nh.ready_status(node) != "True" and any(
            t.get("key") == OUT_OF_SERVICE for t in (node.get("spec") or {}).get("taints") or []):
        return TERMINATING_OUT_OF_SERVICE
    return None


class PodGCController(Controller):
    name = "pod-garbage-collector"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 quarantine: float = 40.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(client, factory)
        self.quarantine = quarantine
        self.clock = clock
        self._missing_since: dict[str, float] = {}   # node name -> when first missed from the cache

    def setup(self) -> None:
        self.nodes = self.factory.informer("v1", "Node")
        self.pods = self.factory.informer("v1", "Pod")
        self.pods.add_indexer("node", index_by_node_name)
        self.pods.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n))
        self.nodes.add_handlers(on_add=self._node_event, on_update=lambda o, n: self._node_event(n),
                                on_delete=self._node_event)

    def _pod_event(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if gc_reason(pod, self.nodes.get(node) if node else None) is not None:
            self.enqueue(object_key(pod))

    def _node_event(self, node: Obj) -> None:
        for key in self.pods.index_keys("node", node["metadata"]["name"]):
            self.enqueue(key)

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None:
            return None
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        reason = gc_reason(pod, self.nodes.get(node_name) if node_name else None)
        if reason is None:
            self._missing_since.pop(node_name, None)
            return None
        if reason == ORPHANED:
            since = self._missing_since.setdefault(node_name, self.clock())
            left = since + self.quarantine - self.clock()
            if left > 0:
                return left
            try:
                await self.client.get(("v1", "Node"), node_name)
                return None  # it exists: our cache lags, and its add event will bring us back
            except ApiError as exc:
                if exc.code != 404:
                    raise
        log.info("%s: force deleting pod %s (%s)", self.name, key, reason)
        await self._fail_and_delete(pod, ORPHAN_CONDITION if reason == ORPHANED else None)
        return None

    async def _fail_and_delete(self, pod: Obj, cond: Obj | None) -> None:
        """Upstream's markFailedAndDeletePodWithCondition: no pod stays Running with no kubelet."""
        meta = pod["metadata"]
        status = pod.get("status") or {}
        try:
            if status.get("phase") not in ("Succeeded", "Failed"):
                # A patch, not a PUT: upstream's role for the pod GC allows only `patch pods/status`.
                change: Obj = {"phase": "Failed"}
                if cond is not None:
                    change["conditions"] = nh.with_condition(status.get("conditions") or [], {
                        **cond, "lastProbeTime": None, "lastTransitionTime": nh.format_time(nh.utcnow())})
                await self.client.patch(("v1", "Pod"), meta["name"], {"status": change}, meta["namespace"],
                                        subresource="status")
            await self.client.delete(("v1", "Pod"), meta["name"], meta["namespace"], grace_period_seconds=0,
                                     preconditions={"uid": meta.get("uid", "")})
        except ApiError as exc:
            if exc.code != 404:
                raise
