"""The DaemonSet controller: one pod per eligible node (see daemonset_plan), its
template history in ControllerRevisions (see daemonset_history)."""

from __future__ import annotations

import datetime as dt

from ..api.errors import ApiError
from ..client.client import Obj, object_key
from ..client.informer import index_by_owner_uid
from . import podutil
from . import daemonset_history
from .base import Controller
from .daemonset_plan import daemon_pod, plan
from .history import CONTROLLER_REVISION, POD_REVISION_LABEL, History, controlled


class DaemonSetController(Controller):
    name = "daemonset-controller"
    workers = 2

    def setup(self) -> None:
        self.sets = self.factory.informer("apps/v1", "DaemonSet")
        self.pods = self.factory.informer("v1", "Pod")
        self.nodes = self.factory.informer("v1", "Node")
        self.revisions = self.factory.informer(*CONTROLLER_REVISION)
        self.pods.add_indexer("owner", index_by_owner_uid)
        self.revisions.add_indexer("owner", index_by_owner_uid)
        self.history = History(self.client)
        self.sets.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                               on_delete=self.enqueue_obj)
        self.pods.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n),
                               on_delete=self._pod_event)
        self.nodes.add_handlers(on_add=lambda n: self._all(), on_update=lambda o, n: self._all(),
                                on_delete=lambda n: self._all())
        self.revisions.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n),
                                    on_delete=self._pod_event)
        self._expect: dict[str, set[str]] = {}  # node names we created a pod for, not yet seen

    def _all(self) -> None:
        for ds in self.sets.list():
            self.enqueue(object_key(ds))

    def _pod_event(self, pod: Obj) -> None:
        ref = podutil.controller_ref(pod)
        if ref and ref.get("kind") == "DaemonSet":
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")

    async def reconcile(self, key: str) -> float | None:
        ds = self.sets.get(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            self._expect.pop(key, None)
            return None
        ns = ds["metadata"]["namespace"]
        pods = self.pods.by_index("owner", ds["metadata"]["uid"])
        owned = controlled(self.revisions.by_index("owner", ds["metadata"]["uid"]), ds)
        cur, old = await daemonset_history.construct_history(self.history, ds, owned, pods)
        hash_ = (cur["metadata"].get("labels") or {}).get(POD_REVISION_LABEL, "")
        p = plan(ds, self.nodes.list(), pods, dt.datetime.now(dt.timezone.utc), hash_)
        seen = set(p.create_on)
        pending = self._expect.get(key, set()) & seen
        if pending:
            return 0.1  # our creates are not in the cache yet
        self._expect[key] = set()
        for node in p.create_on:
            await self.client.create(daemon_pod(ds, node, hash_), ns)
            self._expect[key].add(node)
        for name in p.delete:
            try:
                await self.client.delete(("v1", "Pod"), name, ns)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        await daemonset_history.cleanup(self.history, ds, old, pods)
        if ds.get("status") != p.status:
            await self.client.update_status({**ds, "status": p.status})
        return None
