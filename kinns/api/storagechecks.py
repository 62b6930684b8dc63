"""Storage rules the API server enforces: volumeMount paths and storage admission.

Validation (called from validation.py for every container): a `subPath`
or `subPathExpr` must be a relative path without `..`
(validateLocalDescendingPath), and the two are mutually exclusive.  As
upstream, the subPath errors are reported at the `volumeMounts` list path
(`spec.containers[0].volumeMounts.subPath`), the exclusivity error at the
indexed one.

Admission (a hook on writes, see server.py), as kube-apiserver's plugins:
- StorageObjectInUseProtection: a new PersistentVolume gets the finalizer
  `kubernetes.io/pv-protection`, a new PersistentVolumeClaim
  `kubernetes.io/pvc-protection`; the protection controllers take them off
  once nothing uses the object, so a claim in use or a bound volume stays
  Terminating instead of vanishing under a pod.
- PersistentVolumeClaimResize: a bound claim may ask for more storage only
  if its StorageClass has `allowVolumeExpansion: true` (403 otherwise, with
  upstream's message).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .defaults import parse_quantity
from .errors import INVALID, FieldError, forbidden
from .store.base import Store

if TYPE_CHECKING:
    from .request import Request
    from .rest import Target

PV_PROTECTION = "kubernetes.io/pv-protection"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
RESIZE_FORBIDDEN = ("only dynamically provisioned pvc can be resized and the storageclass that provisions "
                    "the pvc must support resize")


def _local_descending(path: str, field: str) -> list[FieldError]:
    errs = []
    if os.path.isabs(path):
        errs.append(FieldError(INVALID, field, path, "must be a relative path"))
    if ".." in path.replace("\\", "/").split("/"):
        errs.append(FieldError(INVALID, field, path, "must not contain '..'"))
    return errs


def volume_mount_errors(mount: dict[str, Any], list_path: str, index_path: str) -> list[FieldError]:
    """The subPath/subPathExpr errors of one volumeMount (validateVolumeMounts)."""
    errs: list[FieldError] = []
    sub, expr = mount.get("subPath") or "", mount.get("subPathExpr") or ""
    if sub:
        errs += _local_descending(str(sub), f"{list_path}.subPath")
    if expr:
        if sub:
            errs.append(FieldError(INVALID, f"{index_path}.subPathExpr", expr,
                                   "subPathExpr and subPath are mutually exclusive"))
        errs += _local_descending(str(expr), f"{list_path}.subPathExpr")
    return errs


def _with_finalizer(obj: dict[str, Any], finalizer: str) -> None:
    meta = obj.setdefault("metadata", {})
    finalizers = list(meta.get("finalizers") or [])
    if finalizer not in finalizers:
        meta["finalizers"] = finalizers + [finalizer]


def _storage(claim: dict[str, Any] | None) -> Any:
    return ((((claim or {}).get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


def _claim_class(claim: dict[str, Any]) -> str:
    ann = ((claim.get("metadata") or {}).get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class")
    return str(ann if ann is not None else (claim.get("spec") or {}).get("storageClassName") or "")


def admit(store: Store, kind: str, subresource: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The storage admission steps of a create (`old` None) or update; raises the 403 of a refused resize."""
    if subresource:
        return
    if old is None:
        if kind == "PersistentVolume":
            _with_finalizer(obj, PV_PROTECTION)
        elif kind == "PersistentVolumeClaim":
            _with_finalizer(obj, PVC_PROTECTION)
        return
    if kind != "PersistentVolumeClaim" or (old.get("status") or {}).get("phase") != "Bound":
        return
    new_size, old_size = parse_quantity(_storage(obj)), parse_quantity(_storage(old))
    if new_size is None or old_size is None or new_size <= old_size:
        return
    cls, old_cls = _claim_class(obj), _claim_class(old)
    sc = store.get(("storageclasses.storage.k8s.io", "", cls)) if cls and cls == old_cls else None
    if not (sc or {}).get("allowVolumeExpansion"):
        raise forbidden("persistentvolumeclaims", "", (obj.get("metadata") or {}).get("name", ""), RESIZE_FORBIDDEN)


def hook(store: Store) -> Callable[[Target, dict[str, Any], "dict[str, Any] | None", Request], Awaitable[None]]:
    """`admit` as the REST handlers' admission hook."""
    async def run(t: Target, obj: dict[str, Any], old: dict[str, Any] | None, _req: Request) -> None:
        admit(store, t.rt.kind, t.subresource, obj, old)
    return run
