"""How many replicas an HPA wants: upstream's replica calculator and normalization, as pure functions.

From pkg/controller/podautoscaler (replica_calculator.go, horizontal.go,
metrics/utilization.go), v1.32, in the order the controller applies them:

1. **metrics per pod** from metrics.k8s.io PodMetrics (`pod_metrics`):
   the sum over a pod's containers in milli-units (or one container's,
   for ContainerResource metrics); a pod missing a container's value is
   left out;
2. **grouping** (`group_pods`): deleted and failed pods are ignored,
   pending ones unready, pods without a metric missing, and, for CPU, a
   pod is unready while it is not Ready or, within its first 5 minutes,
   until one metric window has passed since it became Ready;
3. **the proposal** (`resource_replicas`, `raw_resource_replicas`):
   usage ratio = utilization / target (utilization = Σusage·100 / Σrequests
   over the pods with metrics); within the 10 % tolerance nothing changes;
   else ceil(ratio × ready pods), and with unready or missing pods the
   ratio is computed again counting them at 0 (scale up) or at the target
   (scale down) — and if that flips the direction or lands within
   tolerance, the current count stays;
4. **normalization**: without `spec.behavior` (`normalize_legacy`) the
   highest recommendation of the last 5 minutes wins a scale-down and a
   scale-up is capped at max(2 × current, 4); with it
   (`normalize_with_behavior`) the stabilization windows and the rate
   policies of `scaleUp`/`scaleDown`, measured against the scale events
   of the policies' periods, apply; then minReplicas/maxReplicas, with
   the ScalingLimited reason saying which limit bit.

Times are Unix seconds (floats); "now" is always passed in, so tests
pin it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

Obj = dict[str, Any]

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
            "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


class CalculationError(Exception):
    """A replica count could not be computed (the message is upstream's)."""


def milli_value(quantity: Any) -> int:
    """resource.Quantity.MilliValue(): the value × 1000, rounded up."""
    text = str(quantity).strip()
    i = len(text)
    while i > 0 and text[i - 1].isalpha():
        i -= 1
    number, suffix = text[:i], text[i:]
    if suffix not in _DECIMAL:   # an exponent such as 1e3
        return math.ceil(float(text) * 1000 - 1e-9)
    return math.ceil(float(number) * _DECIMAL[suffix] * 1000 - 1e-9)


def parse_time(value: Any) -> float | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class PodMetric:
    value: int              # milli-units
    timestamp: float = 0.0
    window: float = 0.0


def _duration(text: Any) -> float:
    """A metav1.Duration ("15.034s", "1m0.5s", "800ms") in seconds."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    s, i = str(text or ""), 0
    while i < len(s):
        if s[i].isdigit() or s[i] == ".":
            number += s[i]
            i += 1
            continue
        unit = next(u for u in ("ms", "us", "µs", "ns", "h", "m", "s") if s.startswith(u, i))
        total += float(number or 0) * units[unit]
        number, i = "", i + len(unit)
    return total


def pod_metrics(items: Iterable[Obj], resource: str, container: str = "") -> dict[str, PodMetric]:
    """PodMetrics items → per-pod usage (getPodMetrics / getContainerMetrics)."""
    out: dict[str, PodMetric] = {}
    for m in items:
        name = (m.get("metadata") or {}).get("name", "")
        ts, window = parse_time(m.get("timestamp")) or 0.0, _duration(m.get("window"))
        containers = m.get("containers") or []
        if container:
            c = next((c for c in containers if c.get("name") == container), None)
            if c is None:
                ns = (m.get("metadata") or {}).get("namespace", "")
                raise CalculationError(f"container {container} not present in metrics for pod {ns}/{name}")
            if resource in (c.get("usage") or {}):
                out[name] = PodMetric(milli_value(c["usage"][resource]), ts, window)
            continue
        usages = [(c.get("usage") or {}).get(resource) for c in containers]
        if containers and all(u is not None for u in usages):
            out[name] = PodMetric(sum(milli_value(u) for u in usages), ts, window)
    return out


# --------------------------------------------------------------------------- pods


def _condition(pod: Obj, kind: str) -> Obj | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


@dataclass
class PodGroups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def group_pods(pods: Iterable[Obj], metrics: dict[str, PodMetric], resource: str, now: float,
               cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
               initial_readiness_delay: float = INITIAL_READINESS_DELAY) -> PodGroups:
    """groupPods: which pods count, which wait, which have no metric."""
    g = PodGroups()
    for pod in pods:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
            g.ignored.add(name)
            continue
        if phase == "Pending":
            g.unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            g.missing.add(name)
            continue
        if resource == "cpu":
            cond = _condition(pod, "Ready")
            start = parse_time((pod.get("status") or {}).get("startTime"))
            if cond is None or start is None:
                unready = True
            else:
                changed = parse_time(cond.get("lastTransitionTime")) or 0.0
                if start + cpu_initialization_period > now:
                    unready = cond.get("status") == "False" or metric.timestamp < changed + metric.window
                else:
                    unready = cond.get("status") == "False" and start + initial_readiness_delay > changed
            if unready:
                g.unready.add(name)
                continue
        g.ready += 1
    return g


def pod_requests(pods: Iterable[Obj], resource: str, container: str = "") -> dict[str, int]:
    """calculatePodRequests: each pod's request in milli-units; every container must state one."""
    out: dict[str, int] = {}
    for pod in pods:
        total = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if request is None:
                raise CalculationError(f"missing request for {resource} in container {c.get('name')} "
                                       f"of Pod {pod['metadata']['name']}")
            total += milli_value(request)
        out[pod["metadata"]["name"]] = total
    return out


def utilization_ratio(metrics: dict[str, PodMetric], requests: dict[str, int],
                      target: int) -> tuple[float, int, int]:
    """GetResourceUtilizationRatio: (usage ratio, utilization %, average raw usage)."""
    total = requested = entries = 0
    for name, metric in metrics.items():
        if name not in requests:
            continue
        total += metric.value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise CalculationError("no metrics returned matched known pods")
    utilization = total * 100 // requested
    return utilization / target, utilization, total // entries


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None      # percent of requests (Utilization targets)
    raw: int                     # average usage in milli-units
    timestamp: float


def _with_stragglers(metrics: dict[str, PodMetric], g: PodGroups, ratio: float,
                     on_scale_down: Callable[[str], int]) -> None:
    """The pessimistic second pass: missing pods count at `on_scale_down(name)` when
    scaling down and at 0 when scaling up; on a scale-up, unready pods count at 0."""
    for name in g.missing:
        if ratio < 1.0:
            metrics[name] = PodMetric(on_scale_down(name))
        elif ratio > 1.0:
            metrics[name] = PodMetric(0)
    if ratio > 1.0:
        for name in g.unready:
            metrics[name] = PodMetric(0)


def _decide(current: int, ratio: float, new_ratio: float, counted: int, tolerance: float) -> int:
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def _prepare(pods: list[Obj], metrics: dict[str, PodMetric], resource: str, now: float) -> PodGroups:
    if not pods:
        raise CalculationError("no pods returned by selector while calculating replica count")
    g = group_pods(pods, metrics, resource, now)
    for name in g.ignored | g.unready:
        metrics.pop(name, None)
    if not metrics:
        raise CalculationError("did not receive metrics for targeted pods (pods might be unready)")
    return g


def resource_replicas(current: int, target_utilization: int, resource: str, pods: list[Obj],
                      metrics: dict[str, PodMetric], now: float, container: str = "",
                      tolerance: float = TOLERANCE) -> Proposal:
    """GetResourceReplicas: a Utilization target (percent of the pods' requests)."""
    metrics = dict(metrics)
    timestamp = next(iter(metrics.values())).timestamp if metrics else 0.0
    g = _prepare(pods, metrics, resource, now)
    requests = pod_requests(pods, resource, container)
    ratio, utilization, raw = utilization_ratio(metrics, requests, target_utilization)
    if not (g.unready and ratio > 1.0) and not g.missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, utilization, raw, timestamp)
        return Proposal(math.ceil(ratio * g.ready), utilization, raw, timestamp)
    fallback = max(100, target_utilization)   # a missing pod uses all it asked for, or the target if higher
    _with_stragglers(metrics, g, ratio, lambda name: requests.get(name, 0) * fallback // 100)
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    return Proposal(_decide(current, ratio, new_ratio, len(metrics), tolerance), utilization, raw, timestamp)


def raw_resource_replicas(current: int, target_milli: int, resource: str, pods: list[Obj],
                          metrics: dict[str, PodMetric], now: float, tolerance: float = TOLERANCE) -> Proposal:
    """GetRawResourceReplicas: an AverageValue target (calcPlainMetricReplicas)."""
    metrics = dict(metrics)
    timestamp = next(iter(metrics.values())).timestamp if metrics else 0.0
    g = _prepare(pods, metrics, resource, now)

    def ratio_of(ms: dict[str, PodMetric]) -> tuple[float, int]:
        usage = sum(m.value for m in ms.values()) // len(ms)
        return usage / target_milli, usage

    ratio, usage = ratio_of(metrics)
    if not (g.unready and ratio > 1.0) and not g.missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, None, usage, timestamp)
        return Proposal(math.ceil(ratio * g.ready), None, usage, timestamp)
    _with_stragglers(metrics, g, ratio, lambda name: target_milli)   # a missing pod uses exactly the target
    new_ratio, _ = ratio_of(metrics)
    return Proposal(_decide(current, ratio, new_ratio, len(metrics), tolerance), None, usage, timestamp)


# --------------------------------------------------------------------------- normalization


@dataclass
class Recommendation:
    replicas: int
    timestamp: float


@dataclass
class ScaleEvent:
    change: int
    timestamp: float
    outdated: bool = False


@dataclass(frozen=True)
class Limited:
    """The outcome of normalization and the two conditions it sets."""

    replicas: int
    able_reason: str       # AbleToScale (True): ReadyForNewScale | ScaleUpStabilized | ScaleDownStabilized
    able_message: str
    limited: bool          # ScalingLimited
    limit_reason: str
    limit_message: str


_READY = ("ReadyForNewScale", "recommended size matches current size")
_WITHIN = ("DesiredWithinRange", "the desired count is within the acceptable range")
_TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
_TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
_UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
_DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")


def _record(recs: list[Recommendation], desired: int, now: float, old_index: int | None) -> None:
    if old_index is not None:
        recs[old_index] = Recommendation(desired, now)
    else:
        recs.append(Recommendation(desired, now))


def normalize_legacy(recs: list[Recommendation], current: int, desired: int, low: int, high: int, now: float,
                     downscale_window: float) -> Limited:
    """normalizeDesiredReplicas (no spec.behavior): `recs` is updated in place."""
    stabilized, old = desired, None
    for i, rec in enumerate(recs):
        if rec.timestamp < now - downscale_window:
            old = i
        elif rec.replicas > stabilized:
            stabilized = rec.replicas
    _record(recs, desired, now, old)
    able = _READY if stabilized == desired else (
        "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent "
                               "recommendation")
    up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    upper, reason = (up_limit, _UP_LIMIT) if high > up_limit else (high, _TOO_MANY)
    if stabilized < low:
        replicas, reason = low, _TOO_FEW
    elif stabilized > upper:
        replicas = upper
    else:
        replicas, reason = stabilized, _WITHIN
    return Limited(replicas, *able, replicas != stabilized, *reason)


def _changed_within(period: float, events: list[ScaleEvent], now: float) -> int:
    return sum(e.change for e in events if e.timestamp > now - period)


def _limit(current: int, up: list[ScaleEvent], down: list[ScaleEvent], rules: Obj, now: float,
           pods: Callable[[int, int], int], percent: Callable[[int, int], int], most: bool) -> int:
    """Each policy proposes a bound from the replicas at the start of its period
    (`current` less what changed within it); `selectPolicy` picks the most
    permissive (Max) or the least (Min) of them; Disabled keeps `current`."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for p in rules.get("policies") or []:
        period = float(p.get("periodSeconds", 0))
        start = current - _changed_within(period, up, now) + _changed_within(period, down, now)
        step = pods if p.get("type") == "Pods" else percent
        proposals.append(step(start, int(p.get("value", 0))))
    if not proposals:
        return current
    permissive = max if most else min
    strict = min if most else max
    return strict(proposals) if select == "Min" else permissive(proposals)


def scale_up_limit(current: int, up: list[ScaleEvent], down: list[ScaleEvent], rules: Obj, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now."""
    return _limit(current, up, down, rules, now, lambda start, v: start + v,
                  lambda start, v: math.ceil(start * (1 + v / 100)), most=True)


def scale_down_limit(current: int, up: list[ScaleEvent], down: list[ScaleEvent], rules: Obj, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow now."""
    return _limit(current, up, down, rules, now, lambda start, v: start - v,
                  lambda start, v: int(start * (1 - v / 100)), most=False)


def normalize_with_behavior(recs: list[Recommendation], up_events: list[ScaleEvent], down_events: list[ScaleEvent],
                            behavior: Obj, current: int, desired: int, low: int, high: int, now: float,
                            downscale_window: float) -> Limited:
    """normalizeDesiredReplicasWithBehaviors: stabilization windows, then the rate policies."""
    up_rules, down_rules = behavior.get("scaleUp") or {}, behavior.get("scaleDown") or {}
    up_window = float(up_rules.get("stabilizationWindowSeconds") or 0)
    down_window = down_rules.get("stabilizationWindowSeconds")
    down_window = float(downscale_window if down_window is None else down_window)
    up_rec = down_rec = desired
    old = None
    for i, rec in enumerate(recs):
        if rec.timestamp > now - up_window:
            up_rec = min(rec.replicas, up_rec)
        if rec.timestamp > now - down_window:
            down_rec = max(rec.replicas, down_rec)
        if rec.timestamp < now - up_window and rec.timestamp < now - down_window:
            old = i
    stabilized = min(max(current, up_rec), down_rec)
    _record(recs, desired, now, old)
    if stabilized == desired:
        able = _READY
    elif desired >= current:
        able = ("ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent "
                                     "recommendation")
    else:
        able = ("ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest "
                                       "recent recommendation")
    replicas, reason = stabilized, _WITHIN
    if stabilized > current:
        limit = max(scale_up_limit(current, up_events, down_events, up_rules, now), current)
        upper, why = (limit, _UP_LIMIT) if high > limit else (high, _TOO_MANY)
        if stabilized > upper:
            replicas, reason = upper, why
    elif stabilized < current:
        limit = min(scale_down_limit(current, up_events, down_events, down_rules, now), current)
        lower, why = (limit, _DOWN_LIMIT) if low < limit else (low, _TOO_FEW)
        if stabilized < lower:
            replicas, reason = lower, why
    return Limited(replicas, *able, replicas != stabilized, *reason)


def _longest_period(rules: Obj) -> float:
    return float(max((p.get("periodSeconds", 0) for p in rules.get("policies") or []), default=0))


def record_scale_event(behavior: Obj | None, up_events: list[ScaleEvent], down_events: list[ScaleEvent],
                       before: int, after: int, now: float) -> None:
    """storeScaleEvent: remember a rescale for the policies' periods (only with spec.behavior)."""
    if behavior is None:
        return
    growing = after > before
    events = up_events if growing else down_events
    period = _longest_period(behavior.get("scaleUp" if growing else "scaleDown") or {})
    for e in events:
        if e.timestamp < now - period:
            e.outdated = True
    event = ScaleEvent(abs(after - before), now)
    old = next((i for i, e in enumerate(events) if e.outdated), None)
    if old is not None:
        events[old] = event
    else:
        events.append(event)
