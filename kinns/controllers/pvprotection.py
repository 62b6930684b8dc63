"""The PersistentVolume protection controller, as upstream's pv-protection-controller.

Every PersistentVolume carries the finalizer `kubernetes.io/pv-protection`
(the API server's StorageObjectInUseProtection admission adds it on
create; this controller adds it to volumes that predate that).  Deleting a
volume that is still Bound to a claim therefore only marks it: `kubectl
get pv` shows it Terminating until its claim lets go (the binder then calls
it Released, or the claim goes), and only then is the finalizer removed
and the volume really deleted.  "In use" is upstream's test: the volume's
phase is Bound.
"""

from __future__ import annotations

from ..api.errors import ApiError
from ..client.client import Obj
from .base import Controller

PV_PROTECTION = "kubernetes.io/pv-protection"


def needs_finalizer(pv: Obj) -> bool:
    meta = pv.get("metadata") or {}
    return not meta.get("deletionTimestamp") and PV_PROTECTION not in (meta.get("finalizers") or [])


def may_release(pv: Obj) -> bool:
    """Being deleted, protected, and no longer Bound: the finalizer can go."""
    meta = pv.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and PV_PROTECTION in (meta.get("finalizers") or []) and \
        (pv.get("status") or {}).get("phase") != "Bound"


class PVProtectionController(Controller):
    name = "pv-protection-controller"
    workers = 1

    def setup(self) -> None:
        self.volumes = self.factory.informer("v1", "PersistentVolume")
        self.volumes.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n))

    async def reconcile(self, key: str) -> float | None:
        pv = self.volumes.get(key)
        if pv is None:
            return None
        finalizers = list(pv["metadata"].get("finalizers") or [])
        if may_release(pv):
            finalizers.remove(PV_PROTECTION)
        elif needs_finalizer(pv):
            finalizers.append(PV_PROTECTION)
        else:
            return None
        try:
            await self.client.update({**pv, "metadata": {**pv["metadata"], "finalizers": finalizers}})
        except ApiError as exc:
            if exc.code != 404:
                raise
        return None
