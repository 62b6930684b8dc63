"""The HorizontalPodAutoscaler controller (pkg/controller/podautoscaler/horizontal.go).

Every `--horizontal-pod-autoscaler-sync-period` (15 s) each HPA is looked
at once: its target's `scale` subresource gives the current replica count
and the pod selector, metrics.k8s.io gives the pods' usage, the pure
`replicacalc` turns that into a desired count, and if it differs the
controller PUTs the scale, records a `SuccessfulRescale` event and writes
the status `kubectl get hpa` and `describe hpa` read (current/desired
replicas, current metrics, the AbleToScale, ScalingActive and
ScalingLimited conditions).  As upstream, a new or changed HPA waits one
sync period in the queue before its first look, and a failure is logged,
evented and retried at the next period, not sooner.

Only Resource and ContainerResource metrics have a source here
(metrics.k8s.io); Pods, Object and External metrics need a custom or
external metrics API, which kinns does not serve, and fail with
upstream's message.  The ambiguous-selector check (two HPAs over the same
pods) is not done.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from ..api.errors import ApiError
from ..api.request import Request
from ..api.resources import ResourceType
from ..api.selectors import LabelSelector
from ..api.tables import format_quantity
from ..client.client import Client, Obj, error_from, object_key
from ..client.informer import InformerFactory
from ..klog import info
from . import replicacalc as rc
from .base import Controller

log = logging.getLogger(__name__)

COMPONENT = "horizontal-pod-autoscaler"
METRICS_API = "metrics.k8s.io/v1beta1"
SYNC_PERIOD = 15.0
DOWNSCALE_STABILIZATION = 300.0


class MetricError(Exception):
    """A metric could not be evaluated: the ScalingActive reason and upstream's message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now_rfc3339(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def set_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str, now: float) -> None:
    """setConditionInList: update in place; the transition time moves only when the status does."""
    cond = next((c for c in conditions if c.get("type") == kind), None)
    if cond is None:
        cond = {"type": kind}
        conditions.append(cond)
    if cond.get("status") != status:
        cond["lastTransitionTime"] = _now_rfc3339(now)
    cond.update(status=status, reason=reason, message=message)


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler-controller"
    workers = 1   # upstream starts one worker (--concurrent-horizontal-pod-autoscaler-syncs)

    def __init__(self, client: Client, factory: InformerFactory | None = None, *, sync_period: float = SYNC_PERIOD,
                 downscale_stabilization: float = DOWNSCALE_STABILIZATION) -> None:
        super().__init__(client, factory)
        self.sync_period = sync_period
        self.downscale_stabilization = downscale_stabilization
        # Per HPA key: unstabilized recommendations and recent rescales (upstream keeps them in memory too).
        self.recommendations: dict[str, list[rc.Recommendation]] = {}
        self.up_events: dict[str, list[rc.ScaleEvent]] = {}
        self.down_events: dict[str, list[rc.ScaleEvent]] = {}

    def setup(self) -> None:
        self.hpas = self.factory.informer("autoscaling/v2", "HorizontalPodAutoscaler")
        self.pods = self.factory.informer("v1", "Pod")
        self.hpas.add_handlers(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                               on_delete=lambda o: self.queue.forget(object_key(o)))

    def _enqueue(self, hpa: Obj) -> None:
        """Every request waits a sync period in the queue (upstream's fixed-interval rate limiter)."""
        self.queue.add_after(object_key(hpa), self.sync_period)

    async def reconcile(self, key: str) -> float | None:
        hpa = self.hpas.get(key)
        if hpa is None:
            info(log, "horizontal.go:380", "Horizontal Pod Autoscaler has been deleted", HPA=key)
            for state in (self.recommendations, self.up_events, self.down_events):
                state.pop(key, None)
            return None
        try:
            await self.reconcile_autoscaler(key, copy.deepcopy(hpa))
        except Exception as exc:  # noqa: BLE001 - upstream logs and looks again at the next period
            log.error("%s", exc, extra={"source": "horizontal.go:265"})
        return self.sync_period

    # -- the API calls: the target's scale, the pods' metrics, the HPA's status

    async def _call(self, method: str, path: str, obj: Any = None, query: dict[str, list[str]] | None = None) -> Any:
        headers = {"user-agent": self.client.user_agent, "accept": "application/json"}
        if obj is not None:
            headers["content-type"] = "application/json"
        resp = await self.client.transport.request(Request(method, path, query or {}, headers, b"", obj))
        if resp.status >= 400:
            raise error_from(resp)
        return resp.obj

    def _target_type(self, ref: Obj) -> ResourceType:
        """The RESTMapper's answer for scaleTargetRef: the group's kind (its own version preferred)."""
        api_version, kind = str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
        group, _, version = api_version.rpartition("/")
        found = [rt for rt in self.client.registry.types if rt.group == group and rt.kind == kind]
        if not found:
            raise LookupError(f'no matches for kind "{kind}" in group "{group}"')
        return next((rt for rt in found if rt.version == version), found[0])

    async def _metrics(self, namespace: str, selector: str) -> list[Obj]:
        """The metrics client's GetResourceMetric: PodMetrics of the selected pods."""
        try:
            items, _ = await self.client.list((METRICS_API, "PodMetrics"), namespace, label_selector=selector)
        except ApiError as exc:
            raise rc.CalculationError(f"unable to fetch metrics from resource metrics API: {exc.message}") from None
        if not items:
            raise rc.CalculationError("no metrics returned from resource metrics API")
        return items

    # -- one metric

    async def _resource_metric(self, hpa: Obj, spec: Obj, current: int, pods: list[Obj],
                               selector: str) -> tuple[int, str, Obj, float]:
        container_kind = spec.get("type") == "ContainerResource"
        key = "containerResource" if container_kind else "resource"
        src = spec.get(key) or {}
        name, container, target = src.get("name", ""), src.get("container", ""), src.get("target") or {}
        reason = "FailedGetContainerResourceMetric" if container_kind else "FailedGetResourceMetric"
        ns = hpa["metadata"]["namespace"]
        status: Obj
        try:
            try:
                metrics = rc.pod_metrics(await self._metrics(ns, selector), name, container)
            except rc.CalculationError as exc:
                raise rc.CalculationError(f"unable to get metrics for resource {name}: {exc}") from None
            now = time.time()
            if target.get("averageValue") is not None:
                try:
                    p = rc.raw_resource_replicas(current, rc.milli_value(target["averageValue"]), name, pods,
                                                 metrics, now)
                except rc.CalculationError as exc:
                    raise rc.CalculationError(f"failed to get {name} usage: {exc}") from None
                status = {"averageValue": format_quantity(f"{p.raw}m")}
                label = f"{name} resource"
            elif target.get("averageUtilization") is not None:
                try:
                    p = rc.resource_replicas(current, int(target["averageUtilization"]), name, pods, metrics, now,
                                             container)
                except rc.CalculationError as exc:
                    raise rc.CalculationError(f"failed to get {name} utilization: {exc}") from None
                status = {"averageUtilization": p.utilization, "averageValue": format_quantity(f"{p.raw}m")}
                label = f"{name} {'container ' if container_kind else ''}resource utilization (percentage of request)"
            else:
                raise rc.CalculationError("invalid resource metric source: neither an average utilization target "
                                          "nor an average value (usage) target was set")
        except rc.CalculationError as exc:
            raise MetricError(reason, str(exc)) from None
        current_status: Obj = {"name": name, "current": status}
        if container_kind:
            current_status["container"] = container
        return p.replicas, label, {"type": spec["type"], key: current_status}, p.timestamp

    async def _metric(self, hpa: Obj, spec: Obj, current: int, pods: list[Obj],
                      selector: str) -> tuple[int, str, Obj, float]:
        kind = spec.get("type")
        if kind in ("Resource", "ContainerResource"):
            return await self._resource_metric(hpa, spec, current, pods, selector)
        ns = hpa["metadata"]["namespace"]
        if kind in ("Pods", "Object"):
            metric = ((spec.get("pods" if kind == "Pods" else "object") or {}).get("metric") or {}).get("name", "")
            raise MetricError(f"FailedGet{kind}Metric", f"unable to get metric {metric}: unable to fetch metrics from "
                                                        "custom metrics API: no custom metrics API "
                                                        "(custom.metrics.k8s.io) registered")
        if kind == "External":
            metric = ((spec.get("external") or {}).get("metric") or {}).get("name", "")
            raise MetricError("FailedGetExternalMetric",
                              f"unable to get external metric {ns}/{metric}/nil: unable to fetch metrics from "
                              f"external metrics API: the server could not find the requested resource (get "
                              f"{metric}.external.metrics.k8s.io)")
        raise MetricError("InvalidMetricSourceType", f'unknown metric source type "{kind}"')

    # -- all metrics

    async def _metrics_proposal(self, hpa: Obj, scale: Obj, conditions: list[Obj],
                                now: float) -> tuple[int, str, list[Obj], Exception | None]:
        """computeReplicasForMetrics: the highest proposal, its metric, every metric's status;
        -1 and the error when no metric could be evaluated."""
        selector_text = (scale.get("status") or {}).get("selector") or ""
        if not selector_text:
            self._event(hpa, "Warning", "SelectorRequired", "selector is required")
            set_condition(conditions, "ScalingActive", "False", "InvalidSelector",
                          "the HPA target's scale is missing a selector", now)
            return -1, "", [], rc.CalculationError("selector is required")
        try:
            selector = LabelSelector.parse(selector_text)
        except ApiError as exc:
            msg = f"couldn't convert selector into a corresponding internal selector object: {exc.message}"
            self._event(hpa, "Warning", "InvalidSelector", msg)
            set_condition(conditions, "ScalingActive", "False", "InvalidSelector", msg, now)
            return -1, "", [], rc.CalculationError(msg)
        ns = hpa["metadata"]["namespace"]
        pods = [p for p in self.pods.list(ns) if selector.matches(p["metadata"].get("labels"))]
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        specs = hpa["spec"].get("metrics") or []
        statuses: list[Obj] = []
        replicas, metric, first = 0, "", None
        invalid = 0
        for spec in specs:
            try:
                proposal, label, status, _ = await self._metric(hpa, spec, current, pods, selector_text)
            except MetricError as exc:
                self._event(hpa, "Warning", exc.reason, str(exc))
                statuses.append({"type": ""})
                invalid += 1
                if first is None:
                    first = exc
                continue
            statuses.append(status)
            if replicas == 0 or proposal > replicas:
                replicas, metric = proposal, label
        err = None
        if first is not None:
            err = rc.CalculationError(f"invalid metrics ({invalid} invalid out of {len(specs)}), first error is: "
                                      f"{first}")
        if first is not None and (invalid >= len(specs) or replicas < current):
            set_condition(conditions, "ScalingActive", "False", first.reason,
                          f"the HPA was unable to compute the replica count: {first}", now)
            return -1, "", statuses, err
        set_condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from {metric}", now)
        return replicas, metric, statuses, err

    # -- the whole HPA

    def _event(self, hpa: Obj, kind: str, reason: str, message: str) -> None:
        self.client.emit_event(hpa, reason, message, type=kind, component=COMPONENT)

    async def _update_status(self, hpa: Obj, original: Obj) -> None:
        if hpa.get("status") == original:
            return
        try:
            await self.client.update_status(hpa)
        except ApiError as exc:
            self._event(hpa, "Warning", "FailedUpdateStatus", exc.message)
            raise

    async def reconcile_autoscaler(self, key: str, hpa: Obj) -> None:
        now = time.time()
        spec = hpa["spec"]
        original = copy.deepcopy(hpa.get("status") or {})
        status = hpa.setdefault("status", {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        ref = spec.get("scaleTargetRef") or {}
        ns = hpa["metadata"]["namespace"]
        reference = f"{ref.get('kind')}/{ns}/{ref.get('name')}"
        try:
            rt = self._target_type(ref)
            scale_path = self.client.path(rt, ns, ref.get("name"), "scale")
            scale = await self._call("GET", scale_path)
        except (LookupError, ApiError) as exc:
            msg = exc.message if isinstance(exc, ApiError) else str(exc)
            self._event(hpa, "Warning", "FailedGetScale", msg)
            set_condition(conditions, "AbleToScale", "False", "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: {msg}", now)
            await self._update_status(hpa, original)
            raise RuntimeError(f"failed to query scale subresource for {reference}: {msg}") from None
        set_condition(conditions, "AbleToScale", "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", now)
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        recs = self.recommendations.setdefault(key, [rc.Recommendation(current, now)])
        low = int(spec.get("minReplicas") or 1)
        high = int(spec.get("maxReplicas") or 0)
        statuses: list[Obj] = []
        rescale, reason, desired = True, "", 0
        if current == 0 and low != 0:
            rescale = False
            set_condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero", now)
        elif current > high:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", high
        elif current < low:
            reason, desired = "Current number of replicas below Spec.MinReplicas", low
        else:
            proposal, metric, statuses, err = await self._metrics_proposal(hpa, scale, conditions, now)
            if proposal == -1:
                status.update(currentReplicas=current, currentMetrics=statuses or None)
                await self._update_status(hpa, original)
                self._event(hpa, "Warning", "FailedComputeMetricsReplicas", str(err))
                raise RuntimeError(f"failed to compute desired number of replicas based on listed metrics for "
                                   f"{reference}: {err}")
            desired = max(proposal, 0)
            if desired > current:
                reason = f"{metric} above target"
            elif desired < current:
                reason = "All metrics below target"
            behavior = spec.get("behavior")
            if behavior is None:
                limited = rc.normalize_legacy(recs, current, desired, low, high, now, self.downscale_stabilization)
            else:
                limited = rc.normalize_with_behavior(
                    recs, self.up_events.setdefault(key, []), self.down_events.setdefault(key, []), behavior,
                    current, desired, low, high, now, self.downscale_stabilization)
            set_condition(conditions, "AbleToScale", "True", limited.able_reason, limited.able_message, now)
            set_condition(conditions, "ScalingLimited", "True" if limited.limited else "False", limited.limit_reason,
                          limited.limit_message, now)
            desired = limited.replicas
            rescale = desired != current
        if rescale:
            scale["spec"]["replicas"] = desired
            try:
                await self._call("PUT", scale_path, scale)
            except ApiError as exc:
                self._event(hpa, "Warning", "FailedRescale",
                            f"New size: {desired}; reason: {reason}; error: {exc.message}")
                set_condition(conditions, "AbleToScale", "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {exc.message}", now)
                status.update(currentReplicas=current, currentMetrics=statuses or None)
                await self._update_status(hpa, original)
                raise RuntimeError(f"failed to rescale {reference}: {exc.message}") from None
            set_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}", now)
            self._event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            rc.record_scale_event(spec.get("behavior"), self.up_events.setdefault(key, []),
                                  self.down_events.setdefault(key, []), current, desired, now)
            info(log, "horizontal.go:916", "Successfully rescaled", HPA=key, currentReplicas=current,
                 desiredReplicas=desired, reason=reason)
            status["lastScaleTime"] = _now_rfc3339(now)
        else:
            desired = current
        status.update(currentReplicas=current, desiredReplicas=desired, currentMetrics=statuses or None)
        await self._update_status(hpa, original)
