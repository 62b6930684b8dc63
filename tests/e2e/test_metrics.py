"""`kubectl top` and a HorizontalPodAutoscaler on a cluster with nothing installed.

A busybox Deployment spins (`while :; do :; done`) under a CPU limit of
100m against a request of 50m, so its pods run at ~200 % of their
request.  `kubectl top` must show that (and memory) from the kubelets'
cgroups through metrics.k8s.io; `kubectl autoscale --cpu-percent=50`
must then scale the Deployment up, and a higher target (with scale-down
stabilization off, as a user would set `behavior`) back down.

The HPA controller looks at HPAs every --horizontal-pod-autoscaler-sync-
period (15 s upstream); the module sets 2s the way a kubeadm user would,
by editing the controller-manager's static pod manifest, right after the
Deployment's pod exists, so the restart overlaps the `top` checks.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client, config

from kinns.cluster.config import ClusterConfig
from kinns.cluster.manifests import manifest_dir
from kinns.testing import ClusterHandle, wait_for

from .helpers import apply, deployment, pods

SYNC_FLAG = "--horizontal-pod-autoscaler-sync-period=2s"
BUSY = {"name": "burn", "image": "busybox", "command": ["sh", "-c", "while :; do :; done"],
        "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}}}


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def _milli(cell: str) -> int:
    assert cell.endswith("m"), cell
    return int(cell[:-1])


def _mebi(cell: str) -> int:
    assert cell.endswith("Mi"), cell
    return int(cell[:-2])


def _set_sync_period(cluster: ClusterHandle) -> None:
    """What a kubeadm user does: add the flag to /etc/kubernetes/manifests/kube-controller-manager.yaml."""
    path = manifest_dir(ClusterConfig.load_from(cluster.state_dir), f"{cluster.name}-control-plane") / \
        "kube-controller-manager.yaml"
    pod = yaml.safe_load(path.read_text())
    pod["spec"]["containers"][0]["command"].append(SYNC_FLAG)
    path.write_text(yaml.safe_dump(pod, sort_keys=False))


@pytest.fixture(scope="module")
def busy(cluster: ClusterHandle) -> Iterator[str]:
    apply(cluster, deployment("busy", 1, BUSY))
    wait_for(lambda: pods(cluster, "app=busy"), timeout=60)
    _set_sync_period(cluster)
    pod = wait_for(lambda: next((p["metadata"]["name"] for p in pods(cluster, "app=busy")
                                 if p["status"].get("phase") == "Running"), None), timeout=60)
    yield str(pod)
    cluster.kubectl("delete", "hpa", "busy", "--ignore-not-found")
    cluster.kubectl("delete", "deployment", "busy", "--ignore-not-found")


def test_the_metrics_api_is_registered_and_discoverable(cluster: ClusterHandle) -> None:
    out = cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io").stdout
    assert _rows(out)[0] == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert _rows(out)[1][:3] == ["v1beta1.metrics.k8s.io", "Local", "True"]
    resources = cluster.kubectl("api-resources", "--api-group=metrics.k8s.io", "-o", "wide").stdout
    assert re.search(r"^nodes\s+metrics\.k8s\.io/v1beta1\s+false\s+NodeMetrics\s+get,list", resources, re.M), resources
    assert re.search(r"^pods\s+metrics\.k8s\.io/v1beta1\s+true\s+PodMetrics\s+get,list", resources, re.M), resources


def test_kubectl_top_pods_shows_the_busy_pods_cpu_and_memory(cluster: ClusterHandle, busy: str) -> None:
    def busy_row() -> list[str] | None:
        r = cluster.kubectl("top", "pods", check=False)
        row = next((x for x in _rows(r.stdout) if x[0] == busy), None) if r.returncode == 0 else None
        return row if row and _milli(row[1]) >= 40 else None

    row = wait_for(busy_row, timeout=60, interval=1)
    assert _milli(row[1]) <= 130 and _mebi(row[2]) >= 0            # held near its 100m limit
    top_all = _rows(cluster.kubectl("top", "pods", "-A").stdout)
    assert top_all[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    names = {(r[0], r[1]) for r in top_all[1:]}
    assert ("default", busy) in names
    assert ("kube-system", f"kube-apiserver-{cluster.name}-control-plane") in names
    assert all(_mebi(r[3]) > 0 for r in top_all[1:] if r[1].startswith("kube-apiserver"))
    containers = _rows(cluster.kubectl("top", "pod", busy, "--containers").stdout)
    assert containers[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"] and containers[1][:2] == [busy, "burn"]
    # the same numbers as objects: windows and quantities as metrics-server writes them
    raw = json.loads(cluster.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{busy}")
                     .stdout)
    assert raw["kind"] == "PodMetrics" and raw["metadata"]["labels"]["app"] == "busy"
    assert re.fullmatch(r"[\d.]+(ms|s)", raw["window"]) and re.fullmatch(r"\d+[nu]?|\d+m", raw["containers"][0]
                                                                          ["usage"]["cpu"])
    assert re.fullmatch(r"\d+(Ki|Mi)?", raw["containers"][0]["usage"]["memory"])


def test_kubectl_top_nodes_and_its_errors(cluster: ClusterHandle, busy: str) -> None:
    node = next(p["spec"]["nodeName"] for p in pods(cluster, "app=busy") if p["metadata"]["name"] == busy)
    rows = _rows(cluster.kubectl("top", "nodes").stdout)
    assert rows[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {n["metadata"]["name"] for n in json.loads(
        cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    assert _milli(by_name[node][1]) >= 40 and by_name[node][2].endswith("%") and _mebi(by_name[node][3]) > 0
    old = _rows(cluster.kubectl("top", "node", node, version="1.27").stdout)   # 1.27 prints CPU% / MEMORY%
    assert old[0] == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"] and old[1][0] == node
    missing = cluster.kubectl("top", "pod", "no-such-pod", check=False)
    assert missing.returncode != 0 and 'pods "no-such-pod" not found' in missing.stderr


def _hpa(cluster: ClusterHandle) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "hpa", "busy", "-o", "json").stdout)  # type: ignore[no-any-return]


def _condition(hpa: dict[str, Any], kind: str) -> tuple[str, str]:
    c: dict[str, str] = next((c for c in (hpa.get("status") or {}).get("conditions") or [] if c["type"] == kind),
                             {})
    return c.get("status", ""), c.get("reason", "")


def _replicas(cluster: ClusterHandle) -> int:
    return int(cluster.kubectl("get", "deploy", "busy", "-o", "jsonpath={.spec.replicas}").stdout or 0)


def test_an_hpa_scales_the_busy_deployment_up_then_down(cluster: ClusterHandle, busy: str) -> None:
    out = cluster.kubectl("autoscale", "deploy", "busy", "--cpu-percent=50", "--min=1", "--max=3").stdout
    assert out.strip() == "horizontalpodautoscaler.autoscaling/busy autoscaled"
    rows = _rows(cluster.kubectl("get", "hpa").stdout)
    assert rows[0] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert rows[1][:3] == ["busy", "Deployment/busy", "cpu:"] and rows[1][4:6] == ["1", "3"], rows
    assert re.fullmatch(r"(<unknown>|\d+%)/50%", rows[1][3]), rows
    # ~200% of the request against a 50% target wants 4 pods: capped at --max=3
    wait_for(lambda: _replicas(cluster) == 3, timeout=90, interval=1)
    wait_for(lambda: _condition(_hpa(cluster), "ScalingLimited") == ("True", "TooManyReplicas"), timeout=30)
    hpa = _hpa(cluster)
    assert _condition(hpa, "AbleToScale")[0] == "True"
    assert _condition(hpa, "ScalingActive") == ("True", "ValidMetricFound")
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    row = _rows(cluster.kubectl("get", "hpa", "busy").stdout)[1]
    assert row[:3] == ["busy", "Deployment/busy", "cpu:"] and re.fullmatch(r"\d+%/50%", row[3]), row
    events = cluster.kubectl("get", "events", "--field-selector", "reason=SuccessfulRescale", "-o", "json").stdout
    messages = [e["message"] for e in json.loads(events)["items"] if e["involvedObject"]["name"] == "busy"]
    assert "New size: 3; reason: cpu resource utilization (percentage of request) above target" in messages
    # autoscaling/v1 sees the same HPA
    v1 = json.loads(cluster.kubectl("get", "--raw", "/apis/autoscaling/v1/namespaces/default/"
                                    "horizontalpodautoscalers/busy").stdout)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50 and v1["status"]["currentCPUUtilizationPercentage"] > 50
    # a target far above the load, scale-down stabilization off: back to one pod
    cluster.kubectl("patch", "hpa", "busy", "--type=merge", "-p", json.dumps({"spec": {
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 1000}}}]}}))
    wait_for(lambda: _replicas(cluster) == 1, timeout=60, interval=1)
    described = cluster.kubectl("describe", "hpa", "busy").stdout
    assert "New size: 1; reason: All metrics below target" in described
    assert re.search(r"resource cpu on pods\s+\(as a percentage of request\):\s+\d+% \(\d+m\) / 1000%", described)


def test_hpa_bad_input_gets_upstreams_messages(cluster: ClusterHandle) -> None:
    bad = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "minReplicas": 0, "maxReplicas": 2,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}}}
    r = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert r.returncode != 0
    assert 'The HorizontalPodAutoscaler "bad" is invalid' in r.stderr
    assert "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1" in r.stderr
    assert "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000: must be less than or " \
           "equal to 3600" in r.stderr


def test_the_python_client_reads_metrics_and_hpas(cluster: ClusterHandle, busy: str) -> None:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        metrics: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", "default", "pods", label_selector="app=busy")
        assert metrics["kind"] == "PodMetricsList" and metrics["items"]
        hpas = client.AutoscalingV1Api(api).list_namespaced_horizontal_pod_autoscaler("default")
        assert all(h.spec.max_replicas >= 1 for h in hpas.items)
    finally:
        api.close()
