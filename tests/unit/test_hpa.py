"""The HPA's arithmetic and API rules, table-driven after upstream's replica_calculator_test.go and
horizontal_test.go: proposals, tolerance, unready and missing pods, normalization, behaviors, and the
autoscaling/v1 ⇄ v2 conversion."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kinns.api import hpa as hpa_api
from kinns.api.request import Request
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.api.hpaconversion import to_v1, to_v2
from kinns.controllers import replicacalc as rc

NOW = 1_000_000.0
LONG_AGO = "1970-01-12T13:40:00Z"       # NOW - 600 s: past the 5-minute CPU initialization period


def _pod(name: str, cpu_request: str = "1", phase: str = "Running", ready: str = "True",
         ready_since: str = LONG_AGO, started: str = LONG_AGO, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu_request}}}]},
            "status": {"phase": phase, "startTime": started,
                       "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": ready_since}]}}


def _metrics(levels: dict[str, int]) -> dict[str, rc.PodMetric]:
    return {name: rc.PodMetric(value, NOW - 30, 15.0) for name, value in levels.items()}


def _cpu(current: int, target: int, pods: list[dict[str, Any]], levels: dict[str, int]) -> rc.Proposal:
    return rc.resource_replicas(current, target, "cpu", pods, _metrics(levels), NOW)


# --------------------------------------------------------------------------- proposals


def test_scale_up_is_ceil_of_the_usage_ratio_times_the_ready_pods() -> None:
    pods = [_pod("a"), _pod("b"), _pod("c")]
    p = _cpu(3, 30, pods, {"a": 300, "b": 500, "c": 700})
    assert (p.replicas, p.utilization, p.raw) == (5, 50, 500)


def test_scale_down() -> None:
    pods = [_pod(n) for n in "abcde"]
    p = _cpu(5, 50, pods, {"a": 100, "b": 300, "c": 500, "d": 250, "e": 250})
    assert (p.replicas, p.utilization) == (3, 28)


def test_within_the_ten_percent_tolerance_nothing_changes() -> None:
    pods = [_pod(n, "0.9") for n in "abc"]
    p = _cpu(3, 100, pods, {"a": 1010, "b": 1030, "c": 1020})   # 113%... of 900m requests: outside
    assert p.replicas == 4
    p = _cpu(3, 100, pods, {"a": 940, "b": 960, "c": 950})      # 105%: inside
    assert p.replicas == 3


def test_an_unready_pod_counts_as_idle_on_a_scale_up() -> None:
    pods = [_pod("a", ready="False"), _pod("b"), _pod("c")]
    p = _cpu(3, 30, pods, {"a": 300, "b": 500, "c": 700})
    # ready ones alone: 60% → 2.0; with "a" at 0: 1200/3000 = 40% → ceil(1.33 × 3) = 4
    assert (p.replicas, p.utilization) == (4, 60)


def test_a_pod_without_metrics_uses_its_whole_request_on_a_scale_down() -> None:
    pods = [_pod("a"), _pod("b"), _pod("c"), _pod("d")]
    p = _cpu(4, 50, pods, {"a": 100, "b": 300, "c": 200})
    # 20% → 1.2 pods; counting "d" at 100%: 1600/4000 = 40% → ceil(0.8 × 4) = 4, not fewer than that
    assert p.replicas == 4


def test_a_young_pod_is_ignored_until_a_metric_window_after_it_became_ready() -> None:
    just_ready = "1970-01-12T13:46:30Z"  # NOW - 210 s, after the metric's timestamp (NOW - 30 s - window)
    young = _pod("a", started="1970-01-12T13:46:00Z", ready_since="1970-01-12T13:46:39Z")
    g = rc.group_pods([young, _pod("b", ready_since=just_ready)], _metrics({"a": 100, "b": 100}), "cpu", NOW)
    assert g.unready == {"a"} and g.ready == 1
    g = rc.group_pods([_pod("x", phase="Pending"), _pod("y", phase="Failed"),
                       _pod("z", deletionTimestamp=LONG_AGO)], {}, "cpu", NOW)
    assert (g.unready, g.ignored) == ({"x"}, {"y", "z"})


@pytest.mark.parametrize("pods,levels,message", [
    ([], {}, "no pods returned by selector while calculating replica count"),
    ([_pod("a", phase="Pending")], {"a": 1}, "did not receive metrics for targeted pods (pods might be unready)"),
])
def test_what_cannot_be_calculated(pods: list[dict[str, Any]], levels: dict[str, int], message: str) -> None:
    with pytest.raises(rc.CalculationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _cpu(1, 50, pods, levels)


def test_a_container_without_a_request_is_an_error() -> None:
    pod = _pod("a")
    del pod["spec"]["containers"][0]["resources"]
    with pytest.raises(rc.CalculationError, match="missing request for cpu in container c of Pod a"):
        _cpu(1, 50, [pod], {"a": 10})


def test_average_value_targets_compare_raw_usage() -> None:
    pods = [_pod("a"), _pod("b")]
    p = rc.raw_resource_replicas(2, 200, "cpu", pods, _metrics({"a": 300, "b": 500}), NOW)
    assert (p.replicas, p.utilization, p.raw) == (4, None, 400)


def test_pod_metrics_sum_containers_and_skip_pods_missing_one() -> None:
    items = [{"metadata": {"name": "a"}, "timestamp": "1970-01-12T13:46:40Z", "window": "15.5s",
              "containers": [{"name": "x", "usage": {"cpu": "250m"}}, {"name": "y", "usage": {"cpu": "1500000n"}}]},
             {"metadata": {"name": "b"}, "containers": [{"name": "x", "usage": {"memory": "1Mi"}}]}]
    got = rc.pod_metrics(items, "cpu")
    assert got == {"a": rc.PodMetric(252, NOW, 15.5)}
    assert rc.pod_metrics(items[:1], "cpu", container="y")["a"].value == 2
    with pytest.raises(rc.CalculationError, match="container y not present in metrics for pod /b"):
        rc.pod_metrics(items, "cpu", container="y")


@pytest.mark.parametrize("q,milli", [("250m", 250), ("1", 1000), ("1.5", 1500), ("1500000n", 2), ("2k", 2_000_000),
                                     ("100u", 1)])
def test_milli_values_round_up_as_upstream(q: str, milli: int) -> None:
    assert rc.milli_value(q) == milli


# --------------------------------------------------------------------------- normalization


def test_without_behavior_a_scale_down_keeps_the_highest_recommendation_of_the_window() -> None:
    recs = [rc.Recommendation(5, NOW - 100)]
    got = rc.normalize_legacy(recs, current=5, desired=2, low=1, high=10, now=NOW, downscale_window=300)
    assert (got.replicas, got.able_reason, got.limited) == (5, "ScaleDownStabilized", False)
    assert [r.replicas for r in recs] == [5, 2]
    got = rc.normalize_legacy([rc.Recommendation(5, NOW - 400)], 5, 2, 1, 10, NOW, 300)
    assert (got.replicas, got.able_reason, got.limit_reason) == (2, "ReadyForNewScale", "DesiredWithinRange")


def test_without_behavior_a_scale_up_is_capped_at_twice_or_four() -> None:
    got = rc.normalize_legacy([], current=1, desired=10, low=1, high=20, now=NOW, downscale_window=300)
    assert (got.replicas, got.limited, got.limit_reason) == (4, True, "ScaleUpLimit")
    got = rc.normalize_legacy([], current=1, desired=4, low=1, high=3, now=NOW, downscale_window=300)
    assert (got.replicas, got.limit_reason) == (3, "TooManyReplicas")
    got = rc.normalize_legacy([], current=3, desired=1, low=2, high=5, now=NOW, downscale_window=0)
    assert (got.replicas, got.limit_reason, got.limit_message) == (
        2, "TooFewReplicas", "the desired replica count is less than the minimum replica count")


def _behavior(down_window: int | None = None, **down: Any) -> dict[str, Any]:
    obj = {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": down_window, **down}}}}
    hpa_api.default(obj)
    return obj["spec"]["behavior"]


def test_behavior_defaults_scale_up_by_four_pods_or_double_per_period() -> None:
    b = _behavior(0)
    got = rc.normalize_with_behavior([], [], [], b, current=1, desired=10, low=1, high=20, now=NOW,
                                     downscale_window=300)
    assert (got.replicas, got.limit_reason) == (5, "ScaleUpLimit")
    got = rc.normalize_with_behavior([], [], [], b, current=6, desired=20, low=1, high=20, now=NOW,
                                     downscale_window=300)
    assert got.replicas == 12
    # 4 pods were added 5 s ago: the period started at 2, so at most max(2+4, 2×2) = 6 now
    up = [rc.ScaleEvent(4, NOW - 5)]
    got = rc.normalize_with_behavior([], up, [], b, current=6, desired=20, low=1, high=20, now=NOW,
                                     downscale_window=300)
    assert got.replicas == 6


def test_behavior_scale_down_policies_and_stabilization() -> None:
    b = _behavior(0, policies=[{"type": "Pods", "value": 1, "periodSeconds": 60}])
    got = rc.normalize_with_behavior([], [], [], b, current=5, desired=1, low=1, high=10, now=NOW,
                                     downscale_window=300)
    assert (got.replicas, got.limit_reason) == (4, "ScaleDownLimit")
    # no window given: the controller's --horizontal-pod-autoscaler-downscale-stabilization applies
    recs = [rc.Recommendation(5, NOW - 60)]
    got = rc.normalize_with_behavior(recs, [], [], _behavior(), current=5, desired=1, low=1, high=10, now=NOW,
                                     downscale_window=300)
    assert (got.replicas, got.able_reason) == (5, "ScaleDownStabilized")
    disabled = _behavior(0, selectPolicy="Disabled")
    assert rc.normalize_with_behavior([], [], [], disabled, 5, 1, 1, 10, NOW, 300).replicas == 5


def test_scale_events_are_kept_for_the_longest_policy_period() -> None:
    b = _behavior(0)
    up: list[rc.ScaleEvent] = []
    rc.record_scale_event(b, up, [], 1, 5, NOW - 100)
    rc.record_scale_event(b, up, [], 5, 7, NOW)     # the first is older than 15 s: its slot is reused
    assert [(e.change, e.timestamp) for e in up] == [(2, NOW)]
    rc.record_scale_event(b, up, [], 7, 8, NOW + 1)
    assert [e.change for e in up] == [2, 1]
    rc.record_scale_event(None, up, [], 8, 9, NOW)  # no behavior: nothing kept
    assert len(up) == 2


# --------------------------------------------------------------------------- API rules


def test_defaults_fill_min_replicas_and_the_cpu_metric() -> None:
    obj: dict[str, Any] = {"spec": {"maxReplicas": 3}}
    hpa_api.default(obj)
    assert obj["spec"] == {"maxReplicas": 3, "minReplicas": 1, "metrics": [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}


def test_validation_messages() -> None:
    obj = {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a/b"}, "minReplicas": 3, "maxReplicas": 2,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": 50, "averageValue": "100m"}}},
                                {"type": "Pods"}],
                    "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 1801}]}}}}
    got = [str(e) for e in hpa_api.validate(obj)]
    assert got == [
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
        "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'",
        "spec.metrics[0].resource.target.averageValue: Forbidden: may not set both a target raw value and a target "
        "utilization",
        "spec.metrics[1].pods: Required value: must populate information for the given metric source",
        "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
        "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
    ]


@pytest.mark.parametrize("current,target,text", [
    ([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45}}}], None, "cpu: 45%/50%"),
    ([], None, "cpu: <unknown>/50%"),
    ([{"type": ""}], None, "cpu: <unknown>/50%"),
    ([], "500m", "cpu: <unknown>/500m"),
])
def test_targets_column(current: list[dict[str, Any]], target: str | None, text: str) -> None:
    tgt: dict[str, Any] = {"type": "AverageValue", "averageValue": target} if target else \
        {"type": "Utilization", "averageUtilization": 50}
    specs = [{"type": "Resource", "resource": {"name": "cpu", "target": tgt}}]
    assert hpa_api.format_metrics(specs, current) == text
    assert hpa_api.format_metrics([], []) == "<none>"
    three = specs * 3
    assert hpa_api.format_metrics(three, []).endswith(" + 1 more...")


# --------------------------------------------------------------------------- v1 ⇄ v2


def test_v1_and_v2_round_trip_through_the_annotations() -> None:
    v2: dict[str, Any]
    v2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "h", "annotations": {"keep": "me"}},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                   "minReplicas": 1, "maxReplicas": 5,
                   "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {
                       "type": "AverageValue", "averageValue": "100Mi"}}},
                               {"type": "Resource", "resource": {"name": "cpu", "target": {
                                   "type": "Utilization", "averageUtilization": 60}}}],
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
          "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
              {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70,
                                                                           "averageValue": "700m"}}}],
              "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]}}
    v1 = to_v1(v2)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 60 and "metrics" not in v1["spec"]
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 70}
    notes = v1["metadata"]["annotations"]
    assert notes["keep"] == "me"
    assert notes["autoscaling.alpha.kubernetes.io/metrics"] == (
        '[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}}]')
    assert notes["autoscaling.alpha.kubernetes.io/behavior"] == '{"ScaleDown":{"StabilizationWindowSeconds":0}}'
    back = to_v2(v1)
    assert back["metadata"]["annotations"] == {"keep": "me"}
    assert back["spec"] == v2["spec"]
    assert back["status"]["currentMetrics"] == v2["status"]["currentMetrics"]
    assert back["status"]["conditions"] == v2["status"]["conditions"]


def test_a_plain_v1_hpa_becomes_a_cpu_utilization_metric() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3,
                   "targetCPUUtilizationPercentage": 50}}
    v2 = to_v2(v1)
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]
    assert v2["status"] == {"desiredReplicas": 0, "currentMetrics": None}


def test_autoscaling_v1_is_served_through_the_stored_v2(tmp_path: Path) -> None:
    """Create in v2, read, patch and list in v1, see the change in v2: one object, two versions."""
    async def run() -> None:
        api = ApiServer(SqliteStore(tmp_path / "state.db", durable=False))
        await api.bootstrap()

        async def call(method: str, path: str, obj: Any = None, ct: str = "application/json",
                       accept: str = "application/json") -> Any:
            resp = await api.dispatch(Request(method, path, {}, {"content-type": ct, "accept": accept}, obj=obj))
            assert resp.status < 300, resp.obj
            return resp.obj

        v1_path, v2_path = (f"/apis/autoscaling/{v}/namespaces/default/horizontalpodautoscalers" for v in ("v1", "v2"))
        await call("POST", v2_path, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                     "metadata": {"name": "web"}, "spec": {"maxReplicas": 4, "scaleTargetRef": {
                                         "apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}})
        got = await call("GET", f"{v1_path}/web")
        assert got["apiVersion"] == "autoscaling/v1" and got["spec"]["targetCPUUtilizationPercentage"] == 80
        await call("PATCH", f"{v1_path}/web", {"spec": {"targetCPUUtilizationPercentage": 40}},
                   ct="application/merge-patch+json")
        v2 = await call("GET", f"{v2_path}/web")
        assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 40
        listed = await call("GET", v1_path)
        assert (listed["kind"], listed["apiVersion"]) == ("HorizontalPodAutoscalerList", "autoscaling/v1")
        assert listed["items"][0]["spec"]["targetCPUUtilizationPercentage"] == 40
        table = await call("GET", v1_path, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
        assert table["rows"][0]["cells"][:6] == ["web", "Deployment/web", "cpu: <unknown>/40%", "1", 4, 0]
        resp = await api.dispatch(Request("POST", v1_path, {}, {"content-type": "application/json"}, obj={
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"}}))
        assert resp.obj["message"] == ("the API version in the data (autoscaling/v2) does not match the expected "
                                       "API version (autoscaling/v1)")

    asyncio.run(run())
