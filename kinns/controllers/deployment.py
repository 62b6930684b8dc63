"""The Deployment controller: applies `rollout.plan` one step at a time.

Watches Deployments and the ReplicaSets they own; each reconcile computes
the next step (create the new ReplicaSet, scale new up and old down within
maxSurge/maxUnavailable, prune history) and writes it, then the status that
`kubectl rollout status` and `kubectl get deploy` read.  ReplicaSet status
changes (pods becoming available) trigger the next step.
"""

from __future__ import annotations

import datetime as dt

from ..api.errors import ApiError
from ..client.client import Obj
from ..client.informer import index_by_owner_uid
from . import podutil
from .base import Controller
from .rollout import REVISION, plan


class DeploymentController(Controller):
    name = "deployment-controller"
    workers = 2

    def setup(self) -> None:
        self.deployments = self.factory.informer("apps/v1", "Deployment")
        self.sets = self.factory.informer("apps/v1", "ReplicaSet")
        self.sets.add_indexer("owner", index_by_owner_uid)
        self.deployments.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                                      on_delete=self.enqueue_obj)
        self.sets.add_handlers(on_add=self._rs_event, on_update=lambda o, n: self._rs_event(n),
                               on_delete=self._rs_event)

    def _rs_event(self, rs: Obj) -> None:
        ref = podutil.controller_ref(rs)
        if ref and ref.get("kind") == "Deployment":
            self.enqueue(f"{rs['metadata']['namespace']}/{ref['name']}")

    async def reconcile(self, key: str) -> float | None:
        d = self.deployments.get(key)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return None
        ns = d["metadata"]["namespace"]
        rss = [rs for rs in self.sets.by_index("owner", d["metadata"]["uid"])
               if not rs["metadata"].get("deletionTimestamp")]
        p = plan(d, rss, dt.datetime.now(dt.timezone.utc))
        if p.create is not None:
            try:
                await self.client.create(p.create, ns)
            except ApiError as exc:
                if exc.code != 409:
                    raise
                return 0.1  # already exists (cache lag): look again
            self.client.emit_event(
                d, "ScalingReplicaSet",
                f"Scaled up replica set {p.create['metadata']['name']} from 0 to {p.create['spec']['replicas']}",
                component="deployment-controller")
        for name, annotations in p.annotate.items():
            await self.client.patch(("apps/v1", "ReplicaSet"), name, {"metadata": {"annotations": annotations}}, ns)
        for name, replicas in p.scale.items():
            old = next((rs for rs in rss if rs["metadata"]["name"] == name), None)
            before = int(old["spec"].get("replicas", 0)) if old else 0
            await self.client.patch(("apps/v1", "ReplicaSet"), name, {"spec": {"replicas": replicas}}, ns)
            verb = "up" if replicas > before else "down"
            self.client.emit_event(d, "ScalingReplicaSet",
                                           f"Scaled {verb} replica set {name} from {before} to {replicas}",
                                           component="deployment-controller")
        for name in p.delete:
            try:
                await self.client.delete(("apps/v1", "ReplicaSet"), name, ns)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        annotations = d["metadata"].get("annotations") or {}
        if p.revision and annotations.get(REVISION) != p.revision:
            # An update, as upstream's: system:controller:deployment-controller may not patch Deployments.
            d = await self.client.update({**d, "metadata": {**d["metadata"],
                                                            "annotations": {**annotations, REVISION: p.revision}}})
        if d.get("status") != p.status:
            await self.client.update_status({**d, "status": p.status})
        return None
