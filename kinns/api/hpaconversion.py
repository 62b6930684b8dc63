"""HorizontalPodAutoscaler between autoscaling/v1 and the stored autoscaling/v2.

autoscaling/v1 knows one metric, `targetCPUUtilizationPercentage`, and one
status number, `currentCPUUtilizationPercentage`; everything else an HPA
holds survives a trip through v1 in annotations, exactly as upstream
keeps it (pkg/apis/autoscaling/v1/conversion.go):

    autoscaling.alpha.kubernetes.io/metrics           other metric specs, v1's MetricSpec shape
    autoscaling.alpha.kubernetes.io/current-metrics   every current metric, v1's MetricStatus shape
    autoscaling.alpha.kubernetes.io/conditions        status.conditions
    autoscaling.alpha.kubernetes.io/behavior          spec.behavior (upstream marshals the internal
                                                      type here, so the keys are Go field names)

Reading v1 back turns the annotations into fields again and drops them.
Both directions are pure functions on JSON-shaped dicts.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ROUND_TRIP = (METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _clean(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v is not None}


# --------------------------------------------------------------------------- metric shapes


def _spec_to_v1(m: Obj) -> Obj:
    """v2 MetricSpec → v1's (v2beta1-like) MetricSpec."""
    kind = m.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        src, target = _dict(m.get(key)), _dict(_dict(m.get(key)).get("target"))
        out[key] = _clean({"name": src.get("name"), "container": src.get("container"),
                           "targetAverageUtilization": target.get("averageUtilization"),
                           "targetAverageValue": target.get("averageValue")})
    elif kind == "Pods":
        src = _dict(m.get("pods"))
        metric = _dict(src.get("metric"))
        out["pods"] = _clean({"metricName": metric.get("name"), "selector": metric.get("selector"),
                              "targetAverageValue": _dict(src.get("target")).get("averageValue")})
    elif kind == "Object":
        src = _dict(m.get("object"))
        metric, target = _dict(src.get("metric")), _dict(src.get("target"))
        out["object"] = _clean({"target": src.get("describedObject"), "metricName": metric.get("name"),
                                "selector": metric.get("selector"), "targetValue": target.get("value"),
                                "averageValue": target.get("averageValue")})
    elif kind == "External":
        src = _dict(m.get("external"))
        metric, target = _dict(src.get("metric")), _dict(src.get("target"))
        out["external"] = _clean({"metricName": metric.get("name"), "metricSelector": metric.get("selector"),
                                  "targetValue": target.get("value"),
                                  "targetAverageValue": target.get("averageValue")})
    return out


def _target(utilization: Any = None, average: Any = None, value: Any = None) -> Obj:
    kind = "Utilization" if utilization is not None else "AverageValue" if average is not None else "Value"
    return _clean({"type": kind, "averageUtilization": utilization, "averageValue": average, "value": value})


def _spec_to_v2(m: Obj) -> Obj:
    kind = m.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        src = _dict(m.get(key))
        out[key] = _clean({"name": src.get("name"), "container": src.get("container"),
                           "target": _target(src.get("targetAverageUtilization"), src.get("targetAverageValue"))})
    elif kind == "Pods":
        src = _dict(m.get("pods"))
        out["pods"] = {"metric": _clean({"name": src.get("metricName"), "selector": src.get("selector")}),
                       "target": _target(average=src.get("targetAverageValue"))}
    elif kind == "Object":
        src = _dict(m.get("object"))
        out["object"] = {"describedObject": src.get("target") or {},
                         "metric": _clean({"name": src.get("metricName"), "selector": src.get("selector")}),
                         "target": _target(average=src.get("averageValue"), value=src.get("targetValue"))}
    elif kind == "External":
        src = _dict(m.get("external"))
        out["external"] = {"metric": _clean({"name": src.get("metricName"), "selector": src.get("metricSelector")}),
                           "target": _target(average=src.get("targetAverageValue"), value=src.get("targetValue"))}
    return out


def _status_to_v1(m: Obj) -> Obj:
    kind = m.get("type", "")
    out: Obj = {"type": kind}
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods", "Object": "object",
           "External": "external"}.get(kind)
    if key is None:
        return out
    src = _dict(m.get(key))
    current, metric = _dict(src.get("current")), _dict(src.get("metric"))
    if key in ("resource", "containerResource"):
        out[key] = _clean({"name": src.get("name"), "container": src.get("container"),
                           "currentAverageUtilization": current.get("averageUtilization"),
                           "currentAverageValue": current.get("averageValue")})
    elif key == "pods":
        out[key] = _clean({"metricName": metric.get("name"), "selector": metric.get("selector"),
                           "currentAverageValue": current.get("averageValue")})
    elif key == "object":
        out[key] = _clean({"target": src.get("describedObject"), "metricName": metric.get("name"),
                           "selector": metric.get("selector"), "currentValue": current.get("value"),
                           "averageValue": current.get("averageValue")})
    else:
        out[key] = _clean({"metricName": metric.get("name"), "metricSelector": metric.get("selector"),
                           "currentValue": current.get("value"), "currentAverageValue": current.get("averageValue")})
    return out


def _status_to_v2(m: Obj) -> Obj:
    kind = m.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        src = _dict(m.get(key))
        out[key] = _clean({"name": src.get("name"), "container": src.get("container"), "current": _clean({
            "averageUtilization": src.get("currentAverageUtilization"),
            "averageValue": src.get("currentAverageValue")})})
    elif kind == "Pods":
        src = _dict(m.get("pods"))
        out["pods"] = {"metric": _clean({"name": src.get("metricName"), "selector": src.get("selector")}),
                       "current": _clean({"averageValue": src.get("currentAverageValue")})}
    elif kind == "Object":
        src = _dict(m.get("object"))
        out["object"] = {"describedObject": src.get("target") or {},
                         "metric": _clean({"name": src.get("metricName"), "selector": src.get("selector")}),
                         "current": _clean({"value": src.get("currentValue"), "averageValue": src.get("averageValue")})}
    elif kind == "External":
        src = _dict(m.get("external"))
        out["external"] = {"metric": _clean({"name": src.get("metricName"), "selector": src.get("metricSelector")}),
                           "current": _clean({"value": src.get("currentValue"),
                                              "averageValue": src.get("currentAverageValue")})}
    return out


# --------------------------------------------------------------------------- behavior (Go field names)


def _go_keys(value: Any) -> Any:
    """JSON keys as Go's encoder writes an untagged struct: `scaleUp` → `ScaleUp`."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _go_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_keys(v) for v in value]
    return value


def _json_keys(value: Any) -> Any:
    """Go's decoder matches field names case-insensitively; ours are lowerCamel."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _json_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


def _is_cpu_utilization(m: Obj) -> bool:
    res = _dict(m.get("resource"))
    return m.get("type") == "Resource" and res.get("name") == "cpu" and \
        _dict(res.get("target")).get("averageUtilization") is not None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------- objects


def to_v1(hpa: Obj) -> Obj:
    """A stored autoscaling/v2 HPA as autoscaling/v1 shows it."""
    spec, status = _dict(hpa.get("spec")), _dict(hpa.get("status"))
    meta = copy.deepcopy(_dict(hpa.get("metadata")))
    notes = {k: v for k, v in _dict(meta.get("annotations")).items() if k not in _ROUND_TRIP}
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    others = [_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        notes[METRICS] = _dumps(others)
    current = [m for m in status.get("currentMetrics") or [] if isinstance(m, dict)]
    if current:
        notes[CURRENT_METRICS] = _dumps([_status_to_v1(m) for m in current])
    if spec.get("behavior") is not None:
        notes[BEHAVIOR] = _dumps(_go_keys(spec["behavior"]))
    if status.get("conditions"):
        notes[CONDITIONS] = _dumps(status["conditions"])
    if notes:
        meta["annotations"] = notes
    else:
        meta.pop("annotations", None)
    v1_spec: Obj = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    if cpu is not None:
        v1_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"]["averageUtilization"]
    v1_status: Obj = {"currentReplicas": status.get("currentReplicas", 0),
                      "desiredReplicas": status.get("desiredReplicas", 0)}
    for key in ("observedGeneration", "lastScaleTime"):
        if status.get(key) is not None:
            v1_status[key] = status[key]
    cpu_now = next((_dict(_dict(m.get("resource")).get("current")).get("averageUtilization") for m in current
                    if m.get("type") == "Resource" and _dict(m.get("resource")).get("name") == "cpu"), None)
    if cpu_now is not None:
        v1_status["currentCPUUtilizationPercentage"] = cpu_now
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": meta, "spec": v1_spec,
            "status": v1_status}


def _loads(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def to_v2(hpa: Obj) -> Obj:
    """An autoscaling/v1 HPA (as sent) in the stored autoscaling/v2 form."""
    spec, status = _dict(hpa.get("spec")), _dict(hpa.get("status"))
    meta = copy.deepcopy(_dict(hpa.get("metadata")))
    notes = _dict(meta.get("annotations"))
    v2_spec: Obj = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    metrics: list[Obj] = []
    others = _loads(notes.get(METRICS))
    if isinstance(others, list):
        metrics += [_spec_to_v2(m) for m in others if isinstance(m, dict)]
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    if metrics:
        v2_spec["metrics"] = metrics
    behavior = _loads(notes.get(BEHAVIOR))
    if isinstance(behavior, dict) and behavior:
        v2_spec["behavior"] = _json_keys(behavior)
    v2_status: Obj = {k: status[k] for k in ("currentReplicas", "desiredReplicas", "observedGeneration",
                                             "lastScaleTime") if status.get(k) is not None}
    v2_status.setdefault("desiredReplicas", 0)
    current = _loads(notes.get(CURRENT_METRICS))
    if isinstance(current, list):
        v2_status["currentMetrics"] = [_status_to_v2(m) for m in current if isinstance(m, dict)]
    elif status.get("currentCPUUtilizationPercentage") is not None:
        v2_status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
    else:
        v2_status["currentMetrics"] = None
    conditions = _loads(notes.get(CONDITIONS))
    if isinstance(conditions, list):
        v2_status["conditions"] = conditions
    kept = {k: v for k, v in notes.items() if k not in _ROUND_TRIP}
    if kept:
        meta["annotations"] = kept
    else:
        meta.pop("annotations", None)
    out: Obj = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
                "spec": v2_spec, "status": v2_status}
    return out
