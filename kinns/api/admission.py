"""Admission steps that need other objects: run on create, after defaults.

Upstream runs these as admission plugins in the API server; kinns keeps
the ones users can see:
- DefaultStorageClass: a PersistentVolumeClaim created without
  `storageClassName` gets the class annotated
  `storageclass.kubernetes.io/is-default-class: "true"` (the newest one if
  several), so `kubectl get pvc` shows `standard` as on kind.
- PodSecurity (`pod_security`): the namespace's
  `pod-security.kubernetes.io/*` labels checked on Pod creates (403 on an
  enforce violation), workload pod templates (warnings), and Namespace
  writes (invalid labels refused; existing pods that a stricter enforce
  level would refuse, as warnings).  The checks are `podsecurity`'s.
"""

from __future__ import annotations

from typing import Any

from . import podsecurity
from .discovery import VERSION_INFO
from .errors import INVALID, FieldError, forbidden, invalid
from .store.base import Store

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def default_storage_class(store: Store, claim: dict[str, Any]) -> None:
    spec = claim.setdefault("spec", {})
    if "storageClassName" in spec:
        return  # set, even to "" (which means "no class"), is the user's choice
    defaults = [sc for sc in store.list("storageclasses.storage.k8s.io")
                if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    if defaults:
        newest = max(defaults, key=lambda sc: (sc["metadata"].get("creationTimestamp", ""),
                                               sc["metadata"]["name"]))
        spec["storageClassName"] = newest["metadata"]["name"]


def pod_security(store: Store, kind: str, namespace: str, obj: dict[str, Any],
                 old: dict[str, Any] | None, subresource: str = "") -> list[str]:
    """The PodSecurity admission step of a create (`old` None) or update:
    the Warning texts to answer with; raises the 403 of an enforce
    violation or the 422 of invalid policy labels."""
    if subresource:
        return []
    minor = int("".join(ch for ch in str(VERSION_INFO.get("minor", "")) if ch.isdigit()) or podsecurity.LATEST_MINOR)
    if kind == "Namespace":
        return _namespace_policy(store, obj, old, minor)
    if kind != "Pod" and kind not in podsecurity.TEMPLATE_PATHS:
        return []
    ns = store.get(("namespaces", "", namespace))
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    if kind == "Pod":
        if old is not None:  # upstream re-checks only image changes; kinns pods keep their images
            return []
        decision = podsecurity.admit_pod(labels, obj, minor)
        if decision.forbidden:
            raise forbidden("pods", "", obj["metadata"].get("name", ""), decision.forbidden)
        return list(decision.warnings)
    return list(podsecurity.admit_template(labels, obj, minor, kind=kind).warnings)


def _namespace_policy(store: Store, ns: dict[str, Any], old: dict[str, Any] | None, minor: int) -> list[str]:
    labels = (ns.get("metadata") or {}).get("labels") or {}
    old_labels = None if old is None else (old.get("metadata") or {}).get("labels") or {}
    errs = podsecurity.namespace_label_errors(labels, old_labels)
    name = ns["metadata"].get("name", "")
    if errs:
        raise invalid("Namespace", "", name, [FieldError(INVALID, e.field, e.value, e.detail) for e in errs])
    if old is None:
        return []
    return podsecurity.namespace_warnings(name, labels, old_labels, store.list("pods", name), minor)
