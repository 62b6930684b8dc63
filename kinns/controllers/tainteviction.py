"""The taint-eviction controller: deletes pods from nodes with NoExecute taints they do not tolerate.

As upstream's (pkg/controller/tainteviction): a pod that does not tolerate
one of its node's NoExecute taints is deleted at once; one that tolerates
them all with a `tolerationSeconds` is deleted when the shortest runs out,
counted from the taint's `timeAdded`; one that tolerates them without a
limit (DaemonSet pods) stays.  Before deleting, the pod gets the
`DisruptionTarget` condition and an Event `TaintManagerEviction` ("Marking
for deletion Pod ns/name"); a planned deletion the node's recovery made
moot is announced as "Cancelling deletion of Pod ns/name".

The deletion is an ordinary graceful one: on a node whose kubelet is gone
the pod stays Terminating, as upstream, until the kubelet comes back or
the Node object is deleted (the pod GC then removes it).  Its controller
replaces it meanwhile.

Queue keys are pod keys; a pod waiting for its deadline is parked until
then (`reconcile` returns the seconds left), so a node that recovers first
simply finds nothing to do when the key comes back.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

from ..api.errors import ApiError
from ..client.client import Client, Obj, object_key
from ..client.informer import InformerFactory, index_by_node_name
from . import nodehealth as nh
from .base import Controller

log = logging.getLogger(__name__)

DISRUPTION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
              "message": "Taint manager: deleting due to NoExecute taint"}


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 wall_clock: Callable[[], dt.datetime] = nh.utcnow) -> None:
        super().__init__(client, factory)
        self.wall_clock = wall_clock
        self._scheduled: set[str] = set()       # pods with a deletion planned for later
        self._seen: dict[tuple[str, str, str], dt.datetime] = {}  # (node, key, effect) of taints without timeAdded

    def setup(self) -> None:
        self.nodes = self.factory.informer("v1", "Node")
        self.pods = self.factory.informer("v1", "Pod")
        self.pods.add_indexer("node", index_by_node_name)
        self.nodes.add_handlers(on_add=lambda n: self._node_changed(None, n), on_update=self._node_changed)
        self.pods.add_handlers(on_add=lambda p: self._pod_changed(None, p), on_update=self._pod_changed,
                               on_delete=self.enqueue_obj)

    def _node_changed(self, old: Obj | None, new: Obj) -> None:
        if old is not None and nh.noexecute_taints(old) == nh.noexecute_taints(new):
            return
        for key in self.pods.index_keys("node", new["metadata"]["name"]):
            self.enqueue(key)

    def _pod_changed(self, old: Obj | None, new: Obj) -> None:
        spec = new.get("spec") or {}
        if not spec.get("nodeName"):
            return
        if old is not None and (old.get("spec") or {}).get("nodeName") == spec.get("nodeName") and \
                (old.get("spec") or {}).get("tolerations") == spec.get("tolerations"):
            return
        self.enqueue(object_key(new))

    def _cancel(self, key: str, pod: Obj | None) -> None:
        if key in self._scheduled:
            self._scheduled.discard(key)
            if pod is not None:
                self.client.emit_event(pod, "TaintManagerEviction", f"Cancelling deletion of Pod {key}",
                                       component=self.name)

    def _taints(self, node_name: str) -> tuple[list[Obj], dict[tuple[str, str], dt.datetime]]:
        """The node's NoExecute taints, and when we first saw those written without `timeAdded`."""
        taints = nh.noexecute_taints(self.nodes.get(node_name))
        now = self.wall_clock()
        live = {(node_name, t.get("key", ""), t.get("effect", "")) for t in taints}
        for k in [k for k in self._seen if k[0] == node_name and k not in live]:
            del self._seen[k]
        seen = {}
        for t in taints:
            k = (node_name, t.get("key", ""), t.get("effect", ""))
            if not t.get("timeAdded"):
                seen[k[1:]] = self._seen.setdefault(k, now)
        return taints, seen

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._scheduled.discard(key)
            return None
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        taints, seen = self._taints(node_name)
        deadline = nh.eviction_deadline(pod, taints, seen)
        if deadline is None:
            self._cancel(key, pod)
            return None
        left = (deadline - self.wall_clock()).total_seconds() if deadline != nh.IMMEDIATELY else 0.0
        if left > 0:
            self._scheduled.add(key)
            return left
        await self._evict(pod)
        self._scheduled.discard(key)
        return None

    async def _evict(self, pod: Obj) -> None:
        meta = pod["metadata"]
        key = object_key(pod)
        log.info("%s: deleting pod %s (NoExecute taint on %s)", self.name, key, pod["spec"].get("nodeName"))
        self.client.emit_event(pod, "TaintManagerEviction", f"Marking for deletion Pod {key}", component=self.name)
        status = pod.get("status") or {}
        conds = status.get("conditions") or []
        want = nh.with_condition(conds, {**DISRUPTION, "lastProbeTime": None,
                                         "lastTransitionTime": nh.format_time(self.wall_clock())})
        try:
            if want != conds:
                await self.client.update_status({**pod, "status": {**status, "conditions": want}})
            await self.client.delete(("v1", "Pod"), meta["name"], meta["namespace"],
                                     preconditions={"uid": meta.get("uid", "")})
        except ApiError as exc:
            if exc.code != 404:
                raise  # 409: the pod changed under us; retried with the fresh one
