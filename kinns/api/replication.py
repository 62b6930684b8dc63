"""ReplicationController and ControllerRevision: their defaulting and validation.

A ReplicationController is the core/v1 ancestor of the ReplicaSet: the same
job, but its `selector` is a plain label map (equality only) and, as
upstream's SetDefaults_ReplicationController, both the selector and the
object's own labels default to the template's labels when left out, which
is why `kubectl create -f rc.yaml` works without a selector.  Validation is
upstream's ValidateReplicationControllerSpec: a non-empty selector that
matches the template's labels, pods that restart Always.

A ControllerRevision (apps/v1) is an immutable snapshot of a DaemonSet's or
StatefulSet's template, written by their controllers (see
kinns/controllers/history.py): `data` is required and may never change,
`revision` is not negative.

defaults.py and validation.py call in here; they are imported lazily
because this module builds on their helpers.
"""

from __future__ import annotations

from typing import Any

from .errors import FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, FieldError

Obj = dict[str, Any]


def default_replication_controller(obj: Obj) -> None:
    """SetDefaults_ReplicationController (the pod template is defaulted by the caller)."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    template = spec.get("template")
    labels = ((template.get("metadata") or {}).get("labels")) if isinstance(template, dict) else None
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = obj.setdefault("metadata", {})
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1


def validate_replication_controller(obj: Obj) -> list[FieldError]:
    """ValidateReplicationControllerSpec, in upstream's order."""
    from .validation import _non_negative, go_string_map, validate_pod_template  # noqa: PLC0415

    raw = obj.get("spec")
    spec: Obj = raw if isinstance(raw, dict) else {}
    errs: list[FieldError] = _non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    selector: Obj = spec["selector"] if isinstance(spec.get("selector"), dict) else {}
    if not selector:
        errs.append(FieldError(REQUIRED, "spec.selector"))
    errs += _non_negative("spec.replicas", spec.get("replicas"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return errs + [FieldError(REQUIRED, "spec.template")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        errs.append(FieldError(INVALID, "spec.template.metadata.labels",
                               detail=f"{go_string_map(labels)}: `selector` does not match template `labels`"))
    errs += validate_pod_template(template, "spec.template")
    tspec = template.get("spec") or {}
    if tspec.get("restartPolicy") != "Always":
        errs.append(FieldError(NOT_SUPPORTED, "spec.template.spec.restartPolicy",
                               tspec.get("restartPolicy"), 'supported values: "Always"'))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(FieldError(FORBIDDEN, "spec.template.spec.activeDeadlineSeconds",
                               detail="activeDeadlineSeconds in ReplicationController is not Supported"))
    return errs


def validate_controller_revision(obj: Obj) -> list[FieldError]:
    """ValidateControllerRevision (the name rules are the generic subdomain ones)."""
    from .validation import _non_negative  # noqa: PLC0415

    errs: list[FieldError] = []
    if obj.get("data") is None:
        errs.append(FieldError(REQUIRED, "data", detail="data is mandatory"))
    return errs + _non_negative("revision", obj.get("revision"))


def _go_raw_extension(data: Any) -> str:
    """Go's %#v of the runtime.RawExtension holding `data` as JSON bytes."""
    import orjson  # noqa: PLC0415

    raw = orjson.dumps(data) if data is not None else b""
    return ("runtime.RawExtension{Raw:[]uint8{" + ", ".join(f"0x{b:x}" for b in raw) + "}, "
            "Object:runtime.Object(nil)}")


def validate_controller_revision_update(new: Obj, old: Obj) -> list[FieldError]:
    """ValidateControllerRevisionUpdate: the snapshot itself never changes."""
    if new.get("data") != old.get("data"):
        return [FieldError(INVALID, "data", detail=f"{_go_raw_extension(new.get('data'))}: field is immutable")]
    return []
