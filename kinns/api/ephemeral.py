"""The `pods/ephemeralcontainers` subresource (what `kubectl debug` writes).

GET answers the Pod; PUT takes a Pod and PATCH any patch of one (kubectl
sends a strategic merge patch adding to `spec.ephemeralContainers`, merged
by name).  Of the result only `spec.ephemeralContainers` is kept, the rest
is the stored pod, as upstream's podEphemeralContainersStrategy
(dropNonEphemeralContainerUpdates); the main resource in turn may not
change them (ValidatePodUpdate) and a new pod may not have any
("cannot be set on create").

Validation is upstream's ValidatePodEphemeralContainersUpdate and
validateEphemeralContainers: each new container is a container (name,
image, terminationMessagePolicy, env, volume mounts, ...) with a name unique
among all the pod's containers and a targetContainerName naming one of the
pod's init or app containers; lifecycle, probes, ports, resources,
resizePolicy and restartPolicy are refused ("cannot be set for an
Ephemeral Container"), as are subPath mounts; existing ones may be neither
changed nor removed; static (mirror) pods have none.
"""

from __future__ import annotations

from typing import Any

from .errors import DUPLICATE, FORBIDDEN, NOT_FOUND, FieldError
from .objects import deep_copy
from .validation import _each, _required, _spec_diff, _validate_container, is_dns1123_label, validate

Obj = dict[str, Any]
SUBRESOURCE = "ephemeralcontainers"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
NOT_ALLOWED = "cannot be set for an Ephemeral Container"
# EphemeralContainerCommon's fields that ephemeral containers may not set, in its declaration order
# (the order upstream's validateFieldAllowList reports them in).
FORBIDDEN_FIELDS = ("ports", "resources", "resizePolicy", "restartPolicy", "livenessProbe", "readinessProbe",
                    "startupProbe", "lifecycle")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def prepare_update(new: Obj, old: Obj) -> Obj:
    """The stored pod with only the request's ephemeral containers taken over."""
    out = deep_copy(old)
    wanted = (new.get("spec") or {}).get("ephemeralContainers") if isinstance(new.get("spec"), dict) else None
    if wanted:
        out.setdefault("spec", {})["ephemeralContainers"] = deep_copy(wanted)
    else:
        out.get("spec", {}).pop("ephemeralContainers", None)
    return out


def _is_set(value: Any) -> bool:
    """Set as Go's reflect.DeepEqual against the zero value sees it: an empty
    object like kubectl's `"resources": {}` is unset, anything else is set."""
    return value not in (None, {}, "", 0, False)


def validate_containers(spec: Obj) -> list[FieldError]:
    """validateEphemeralContainers over `spec.ephemeralContainers`."""
    errs: list[FieldError] = []
    others = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []
              if isinstance(c, dict)}
    names = set(others)
    volumes = {str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, dict)}
    for i, c in enumerate(spec.get("ephemeralContainers") or []):
        p = f"spec.ephemeralContainers[{i}]"
        if not isinstance(c, dict):
            errs.append(_required(p))
            continue
        name = c.get("name") or ""
        if not name:
            errs.append(_required(f"{p}.name"))
        else:
            errs += _each(f"{p}.name", name, is_dns1123_label(str(name)))
        policy = c.get("terminationMessagePolicy")
        if policy not in ("File", "FallbackToLogsOnError"):
            errs.append(_required(f"{p}.terminationMessagePolicy") if not policy else FieldError(
                "FieldValueNotSupported", f"{p}.terminationMessagePolicy", policy,
                'supported values: "File", "FallbackToLogsOnError"'))
        # validateContainerCommon does not look into probes (refused below as a whole)
        errs += [e for e in _validate_container(c, p, volumes, init=False)
                 if not any(e.field.startswith(f"{p}.{f}") for f in _PROBES)]
        if name in names:
            errs.append(FieldError(DUPLICATE, f"{p}.name", name))
        elif name:
            names.add(name)
        target = c.get("targetContainerName")
        if target and target not in others:
            errs.append(FieldError(NOT_FOUND, f"{p}.targetContainerName", target))
        errs += [FieldError(FORBIDDEN, f"{p}.{f}", detail=NOT_ALLOWED) for f in FORBIDDEN_FIELDS if _is_set(c.get(f))]
        for j, m in enumerate(c.get("volumeMounts") or []):
            for key in ("subPath", "subPathExpr"):
                if isinstance(m, dict) and m.get(key):
                    errs.append(FieldError(FORBIDDEN, f"{p}.volumeMounts[{j}].{key}", detail=NOT_ALLOWED))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate."""
    if MIRROR_ANNOTATION in ((old.get("metadata") or {}).get("annotations") or {}):
        return [FieldError(FORBIDDEN, "", detail="static pods do not support ephemeral containers")]
    errs = validate("Pod", new) + validate_containers(new.get("spec") or {})
    now = {c.get("name"): c for c in (new.get("spec") or {}).get("ephemeralContainers") or [] if isinstance(c, dict)}
    for was in (old.get("spec") or {}).get("ephemeralContainers") or []:
        name = was.get("name")
        if name not in now:
            errs.append(FieldError(FORBIDDEN, "spec.ephemeralContainers",
                                   detail=f'existing ephemeral containers "{name}" may not be removed\n'))
        elif now[name] != was:
            diff = _spec_diff("core.EphemeralContainer", was, now[name])
            errs.append(FieldError(FORBIDDEN, "spec.ephemeralContainers",
                                   detail=f'existing ephemeral containers "{name}" may not be changed\n{diff}'))
    return errs


def create_errors(kind: str, obj: Obj) -> list[FieldError]:
    """ValidatePodCreate's extra rule: ephemeral containers come only through the subresource."""
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict) and spec.get("ephemeralContainers"):
        return [FieldError(FORBIDDEN, "spec.ephemeralContainers", detail="cannot be set on create")]
    return []
