"""The ReplicaSet controller: keeps `spec.replicas` pods of a template alive.

Owned pods are found by controller ownerReference (and orphans matching the
selector are adopted, as upstream does); missing pods are created from the
template with `generateName: <rs>-`, excess ones deleted in upstream's
preference order (unscheduled, pending, not ready first).  Status counts
replicas, ready and available pods so Deployments and `kubectl get rs` can
read them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from ..api.errors import ApiError
from ..api.selectors import LabelSelector
from ..client.client import Obj, object_key
from ..client.informer import index_by_owner_uid
from . import podutil
from .base import Controller


# Most pods one reconcile creates; the rest come on the next pass (upstream: 500).
BURST = 500


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 2
    # The kind kept at scale (the ReplicationController manager reuses all of this).
    kind: tuple[str, str] = ("apps/v1", "ReplicaSet")

    def selector(self, rs: Obj) -> LabelSelector:
        return LabelSelector.from_spec(rs["spec"].get("selector"))

    def setup(self) -> None:
        self.sets = self.factory.informer(*self.kind)
        self.pods = self.factory.informer("v1", "Pod")
        self.pods.add_indexer("owner", index_by_owner_uid)
        # Pods with no controller, by namespace: the only ones a ReplicaSet may adopt.
        self.pods.add_indexer("orphans", lambda p: [] if podutil.controller_ref(p) else
                              [p["metadata"].get("namespace", "")])
        self.sets.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                               on_delete=self.enqueue_obj)
        self.pods.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n),
                               on_delete=self._pod_event)
        # Upstream's "expectations": pods we created or deleted that the cache
        # does not show yet.  Until it does, counting the cache would create
        # or delete twice.
        self._expect_created: dict[str, set[str]] = {}
        self._expect_deleted: dict[str, set[str]] = {}

    def _settled(self, key: str, ns: str) -> bool:
        created = {n for n in self._expect_created.get(key, set()) if self.pods.get(f"{ns}/{n}") is None}
        deleted = {n for n in self._expect_deleted.get(key, set())
                   if (p := self.pods.get(f"{ns}/{n}")) is not None and podutil.is_active(p)}
        self._expect_created[key], self._expect_deleted[key] = created, deleted
        return not created and not deleted

    def _pod_event(self, pod: Obj) -> None:
        ref = podutil.controller_ref(pod)
        if ref and ref.get("kind") == self.kind[1]:
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")
        elif ref is None:
            for rs in self.sets.list(pod["metadata"]["namespace"]):
                self.enqueue(object_key(rs))

    async def reconcile(self, key: str) -> float | None:
        rs = self.sets.get(key)
        if rs is None or (rs["metadata"].get("deletionTimestamp")):
            self._expect_created.pop(key, None)
            self._expect_deleted.pop(key, None)
            return None
        ns = rs["metadata"]["namespace"]
        if not self._settled(key, ns):
            return 0.1
        selector = self.selector(rs)
        pods = [p for p in self.pods.by_index("owner", rs["metadata"]["uid"]) if podutil.is_active(p)]
        await self._adopt(rs, selector, ns, pods)
        want = int(rs["spec"].get("replicas", 1))
        diff = want - len(pods)
        if diff > 0:
            await self._create_pods(rs, key, ns, min(diff, BURST))
        elif diff < 0:
            await asyncio.gather(*(self._delete_pod(rs, key, ns, pod)
                                   for pod in podutil.deletion_order(pods)[:-diff]))
        await self._status(rs, pods)
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        if min_ready and any(podutil.is_ready(p) for p in pods):
            return float(min_ready)
        return None

    async def _create_pods(self, rs: Obj, key: str, ns: str, n: int) -> None:
        """Create `n` pods in slow-start batches (1, 2, 4, ...), as upstream:
        concurrent enough to be quick, and a failing template fails after
        one try rather than `n`."""
        batch = 1
        while n > 0:
            size = min(batch, n)
            results = await asyncio.gather(
                *(self.client.create(podutil.pod_from_template(rs, rs["spec"]["template"]), ns)
                  for _ in range(size)), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
                self._expect_created.setdefault(key, set()).add(r["metadata"]["name"])
                self.client.emit_event(rs, "SuccessfulCreate", f"Created pod: {r['metadata']['name']}",
                                       component=self.name)
            n -= size
            batch *= 2

    async def _delete_pod(self, rs: Obj, key: str, ns: str, pod: Obj) -> None:
        try:
            await self.client.delete(("v1", "Pod"), pod["metadata"]["name"], ns)
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        self._expect_deleted.setdefault(key, set()).add(pod["metadata"]["name"])
        self.client.emit_event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                               component=self.name)

    async def _adopt(self, rs: Obj, selector: LabelSelector, ns: str, owned: list[Obj]) -> None:
        for pod in self.pods.by_index("orphans", ns):
            if podutil.is_active(pod) and selector.matches(pod["metadata"].get("labels")):
                refs = list(pod["metadata"].get("ownerReferences") or []) + [podutil.owner_reference(rs)]
                try:
                    await self.client.patch(("v1", "Pod"), pod["metadata"]["name"],
                                            {"metadata": {"ownerReferences": refs,
                                                          "resourceVersion": pod["metadata"]["resourceVersion"]}},
                                            ns)
                    owned.append(pod)
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        raise

    async def _status(self, rs: Obj, pods: list[Obj]) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(1 for p in pods if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())),
            "readyReplicas": sum(1 for p in pods if podutil.is_ready(p)),
            "availableReplicas": sum(1 for p in pods if podutil.is_available(p, min_ready, now)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        for k in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if status[k] == 0:
                del status[k]
        if rs.get("status") != status:
            await self.client.update_status({**rs, "status": status})
