"""Admission steps that need other objects: run on create, after defaults.

Upstream runs these as admission plugins in the API server; kinns keeps
the ones users can see:
- DefaultStorageClass: a PersistentVolumeClaim created without
  `storageClassName` gets the class annotated
  `storageclass.kubernetes.io/is-default-class: "true"` (the newest one if
  several), so `kubectl get pvc` shows `standard` as on kind.
"""

from __future__ import annotations

from typing import Any

from .store.sqlite import SqliteStore

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def default_storage_class(store: SqliteStore, claim: dict[str, Any]) -> None:
    spec = claim.setdefault("spec", {})
    if "storageClassName" in spec:
        return  # set, even to "" (which means "no class"), is the user's choice
    defaults = [sc for sc in store.list("storageclasses.storage.k8s.io")
                if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    if defaults:
        newest = max(defaults, key=lambda sc: (sc["metadata"].get("creationTimestamp", ""),
                                               sc["metadata"]["name"]))
        spec["storageClassName"] = newest["metadata"]["name"]
