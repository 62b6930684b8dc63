"""HorizontalPodAutoscaler's API rules (autoscaling/v2): defaults, validation, the printed row.

What kube-apiserver applies to every HPA write, from
pkg/apis/autoscaling/v2/defaults.go and pkg/apis/autoscaling/validation,
and what `kubectl get hpa` prints (pkg/printers/internalversion): the
generic REST machinery calls these through the kind tables in
`defaults.py`, `validation.py` and `tables.py`.  autoscaling/v1 objects
reach them converted (`hpaconversion.py`), as upstream validates the
internal form whatever version was sent.

Defaults worth knowing: `minReplicas` 1, no `metrics` means CPU at 80 %
utilization, and a `behavior` given in part is completed with upstream's
rules (scale up by the larger of 4 pods or 100 % per 15 s, no up
stabilization; scale down by up to 100 % per 15 s, its stabilization
window left unset so the controller's --horizontal-pod-autoscaler-downscale-
stabilization, 5 minutes, applies).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from typing import Any

from .errors import FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, FieldError

Obj = dict[str, Any]
Errs = list[FieldError]

DEFAULT_CPU_UTILIZATION = 80
MAX_STABILIZATION_WINDOW_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800
SCALE_UP_RULES: Obj = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                       "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
SCALE_DOWN_RULES: Obj = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
_SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
_SOURCE_FIELD = {"Object": "object", "Pods": "pods", "Resource": "resource", "External": "external",
                 "ContainerResource": "containerResource"}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))")


# --------------------------------------------------------------------------- defaults


def _rules(given: Any, default: Obj) -> Obj:
    """copyHPAScalingRules: the given non-null fields over upstream's rules."""
    out = copy.deepcopy(default)
    if isinstance(given, dict):
        for key in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
            if given.get(key) is not None:
                out[key] = given[key]
    return out


def default(obj: Obj) -> None:
    """SetDefaults_HorizontalPodAutoscaler (v2), in place."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _rules(behavior.get("scaleUp"), SCALE_UP_RULES)
        behavior["scaleDown"] = _rules(behavior.get("scaleDown"), SCALE_DOWN_RULES)


# --------------------------------------------------------------------------- validation


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positive_quantity(value: Any) -> bool:
    m = _NUMBER.match(str(value))
    return m is not None and float(m.group(1)) > 0


def _path_segment(path: str, value: Any) -> Errs:
    if not value:
        return [FieldError(REQUIRED, path)]
    text = str(value)
    msgs = [f"may not be '{text}'"] if text in (".", "..") else []
    msgs += [f"may not contain '{c}'" for c in ("/", "%") if c in text]
    return [FieldError(INVALID, path, text, m) for m in msgs]


def _target(t: Any, path: str) -> Errs:
    t = _dict(t)
    errs: Errs = []
    if not t.get("type"):
        errs.append(FieldError(REQUIRED, f"{path}.type", detail="must specify a metric target type"))
    if t.get("type") not in ("Utilization", "Value", "AverageValue"):
        errs.append(FieldError(INVALID, f"{path}.type", t.get("type", ""),
                               "must be either Utilization, Value, or AverageValue"))
    for key in ("value", "averageValue"):
        if t.get(key) is not None and not _positive_quantity(t[key]):
            errs.append(FieldError(INVALID, f"{path}.{key}", str(t[key]), "must be positive"))
    util = t.get("averageUtilization")
    if util is not None and (_int(util) is None or util < 1):
        errs.append(FieldError(INVALID, f"{path}.averageUtilization", util, "must be greater than 0"))
    return errs


def _resource_source(src: Obj, path: str, container: bool) -> Errs:
    errs: Errs = []
    if not src.get("name"):
        errs.append(FieldError(REQUIRED, f"{path}.name", detail="must specify a resource name"))
    if container and not src.get("container"):
        errs.append(FieldError(REQUIRED, f"{path}.container", detail="must specify a container"))
    target = _dict(src.get("target"))
    errs += _target(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        errs.append(FieldError(REQUIRED, f"{path}.target.averageUtilization",
                               detail="must set either a target raw value or a target utilization"))
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        errs.append(FieldError(FORBIDDEN, f"{path}.target.averageValue",
                               detail="may not set both a target raw value and a target utilization"))
    return errs


def _metric(spec: Any, path: str) -> Errs:
    spec = _dict(spec)
    kind = spec.get("type") or ""
    errs: Errs = []
    if not kind:
        errs.append(FieldError(REQUIRED, f"{path}.type", detail="must specify a metric source type"))
    if kind not in _SOURCE_TYPES:
        errs.append(FieldError(NOT_SUPPORTED, f"{path}.type", kind,
                               "supported values: " + ", ".join(json.dumps(t) for t in _SOURCE_TYPES)))
    present = [f for f in ("object", "pods", "resource", "containerResource", "external")
               if isinstance(spec.get(f), dict)]
    first = present[0] if present else ""
    if first in ("resource", "containerResource"):
        errs += _resource_source(spec[first], f"{path}.{first}", first == "containerResource")
    elif first:
        errs += _target((spec[first] or {}).get("target"), f"{path}.{first}.target")
    expected = _SOURCE_FIELD.get(kind, "")
    if expected and expected not in present:
        errs.append(FieldError(REQUIRED, f"{path}.{expected}", detail="must populate information for the given "
                                                                       "metric source"))
    if len(present) != 1:
        errs += [FieldError(FORBIDDEN, f"{path}.{f}", detail="must populate the given metric source only")
                 for f in present if f != expected]
    return errs


def _scaling_rules(rules: Any, path: str) -> Errs:
    if not isinstance(rules, dict):
        return []
    errs: Errs = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None and window < 0:
        errs.append(FieldError(INVALID, f"{path}.stabilizationWindowSeconds", window,
                               "must be greater than or equal to zero"))
    if window is not None and window > MAX_STABILIZATION_WINDOW_SECONDS:
        errs.append(FieldError(INVALID, f"{path}.stabilizationWindowSeconds", window,
                               f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Disabled", "Max", "Min"):
        errs.append(FieldError(NOT_SUPPORTED, f"{path}.selectPolicy", select,
                               'supported values: "Disabled", "Max", "Min"'))
    policies = rules.get("policies") or []
    if not policies:
        errs.append(FieldError(REQUIRED, f"{path}.policies", detail="must specify at least one Policy"))
    for i, p in enumerate(policies):
        p = _dict(p)
        at = f"{path}.policies[{i}]"
        if p.get("type") not in ("Pods", "Percent"):
            errs.append(FieldError(NOT_SUPPORTED, f"{at}.type", p.get("type", ""),
                                   'supported values: "Percent", "Pods"'))
        if (_int(p.get("value")) or 0) <= 0:
            errs.append(FieldError(INVALID, f"{at}.value", p.get("value", 0), "must be greater than zero"))
        period = _int(p.get("periodSeconds")) or 0
        if period <= 0:
            errs.append(FieldError(INVALID, f"{at}.periodSeconds", period, "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            errs.append(FieldError(INVALID, f"{at}.periodSeconds", period,
                                   f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


def validate(obj: Obj) -> Errs:
    """ValidateHorizontalPodAutoscaler (spec; metadata is checked by the caller)."""
    spec = _dict(obj.get("spec"))
    errs: Errs = []
    low, high = spec.get("minReplicas"), _int(spec.get("maxReplicas")) or 0
    if low is not None and low < 1:
        errs.append(FieldError(INVALID, "spec.minReplicas", low, "must be greater than or equal to 1"))
    if high < 1:
        errs.append(FieldError(INVALID, "spec.maxReplicas", high, "must be greater than 0"))
    if low is not None and high < low:
        errs.append(FieldError(INVALID, "spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    ref = _dict(spec.get("scaleTargetRef"))
    errs += _path_segment("spec.scaleTargetRef.kind", ref.get("kind"))
    errs += _path_segment("spec.scaleTargetRef.name", ref.get("name"))
    for i, metric in enumerate(spec.get("metrics") or []):
        errs += _metric(metric, f"spec.metrics[{i}]")
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        errs += _scaling_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp")
        errs += _scaling_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown")
    return errs


# --------------------------------------------------------------------------- kubectl get hpa


def format_metrics(specs: list[Obj], statuses: list[Obj]) -> str:
    """formatHPAMetrics: "cpu: 45%/50%", "<unknown>" before a reading, at most two then "+ N more..."."""
    from .tables import format_quantity  # noqa: PLC0415 - tables imports this module

    if not specs:
        return "<none>"
    out: list[str] = []
    for i, spec in enumerate(specs):
        kind = spec.get("type")
        status = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else {}
        field = _SOURCE_FIELD.get(kind or "", "")
        src = spec.get(field) or {}
        target = src.get("target") or {}
        current_of = (status.get(field) or {}).get("current") if status.get(field) else None
        if kind in ("Resource", "ContainerResource"):
            name = src.get("name", "")
            if target.get("averageValue") is not None:
                cur = format_quantity(current_of.get("averageValue")) if current_of is not None else "<unknown>"
                out.append(f"{name}: {cur}/{format_quantity(target['averageValue'])}")
            else:
                util = (current_of or {}).get("averageUtilization")
                cur = f"{util}%" if util is not None else "<unknown>"
                want = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
                out.append(f"{name}: {cur}/{want}")
        elif kind in ("Pods", "Object", "External"):
            avg = kind == "Pods" or target.get("averageValue") is not None
            key = "averageValue" if avg else "value"
            cur = format_quantity((current_of or {}).get(key)) if current_of is not None else "<unknown>"
            suffix = " (avg)" if avg and kind != "Pods" else ""
            out.append(f"{cur}/{format_quantity(target.get(key))}{suffix}")
        else:
            out.append("<unknown type>")
    if len(out) > 2:
        return f"{', '.join(out[:2])} + {len(out) - 2} more..."
    return ", ".join(out)


def cells(obj: Obj, now: dt.datetime) -> list[Any]:
    """NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE (printHorizontalPodAutoscaler)."""
    from .tables import since  # noqa: PLC0415 - tables imports this module

    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    low = spec.get("minReplicas")
    return [obj.get("metadata", {}).get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            format_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
            "<unset>" if low is None else str(low), int(spec.get("maxReplicas") or 0),
            int(status.get("currentReplicas") or 0), since(obj.get("metadata", {}).get("creationTimestamp"), now)]
