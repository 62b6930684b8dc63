"""PodDisruptionBudgets, the eviction API, and kubectl cordon/uncordon/drain.

What a user sees on kind: a budget's status (`kubectl get pdb`), an eviction
refused with 429 while the budget allows no disruption and accepted once it
does (the pod then carries DisruptionTarget), and `kubectl drain` evicting
what it may, retrying every 5 s the pod whose budget forbids it, and going
on as soon as a replacement is ready elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kinns.testing import ClusterHandle, kubectl_binary, wait_for

from .helpers import apply, deployment, pods, running

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
# A pod that outlives SIGTERM for its grace period, so its eviction can be seen under way.
STUBBORN = {"name": "c", "image": "busybox", "command": ["sh", "-c", "trap '' TERM; sleep 3600"]}


def pdb(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": selector}, **spec}}


def budget_status(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(cluster.kubectl("get", "pdb", name, "-o", "json").stdout).get("status", {})
    return status


def settled(cluster: ClusterHandle, name: str, generation: int, allowed: int) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        s = budget_status(cluster, name)
        return s if s.get("observedGeneration") == generation and s.get("disruptionsAllowed") == allowed else None
    status: dict[str, Any] = wait_for(ok, timeout=40)
    return status


def evict(cluster: ClusterHandle, pod: str) -> Any:
    return cluster.http("POST", f"/api/v1/namespaces/default/pods/{pod}/eviction", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "default"}})


def test_budget_status_columns_and_bad_input(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("cols", 3, {"name": "web", "image": "nginx"}))
    apply(cluster, pdb("cols-min", {"app": "cols"}, minAvailable=2))
    apply(cluster, pdb("cols-pct", {"app": "cols"}, maxUnavailable="50%"))
    running(cluster, "app=cols", 3)
    status = settled(cluster, "cols-min", 1, 1)
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (3, 2, 3)
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "True", "SufficientPods")
    # 50% of the Deployment's 3 replicas, rounded up, may be unavailable: 1 must stay healthy.
    pct = settled(cluster, "cols-pct", 1, 2)
    assert (pct["desiredHealthy"], pct["expectedPods"]) == (1, 3)
    lines = cluster.kubectl("get", "pdb").stdout.splitlines()
    assert lines[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    rows = {ln.split()[0]: ln.split()[1:4] for ln in lines[1:]}
    assert rows["cols-min"] == ["2", "N/A", "1"] and rows["cols-pct"] == ["N/A", "50%", "2"]
    bad = cluster.kubectl("apply", "-f", "-", check=False, stdin=json.dumps(
        pdb("cols-bad", {"app": "cols"}, minAvailable=1, maxUnavailable="120%")))
    assert bad.returncode != 0
    assert 'The PodDisruptionBudget "cols-bad" is invalid' in bad.stderr
    assert "minAvailable and maxUnavailable cannot be both set" in bad.stderr
    assert ('spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"120%"}: '
            "must not be greater than 100%") in bad.stderr
    assert cluster.kubectl("get", "pdb", "cols-bad", check=False).returncode != 0
    cluster.kubectl("delete", "deployment/cols", "pdb/cols-min", "pdb/cols-pct", "--wait=false")


def test_eviction_api_refuses_then_allows(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("ev", 1, STUBBORN))
    apply(cluster, pdb("ev", {"app": "ev"}, minAvailable=1))
    [victim] = running(cluster, "app=ev", 1)
    name = victim["metadata"]["name"]
    settled(cluster, "ev", 1, 0)
    refused = evict(cluster, name)
    assert refused.status == 429
    body = refused.json()
    assert (body["reason"], body["message"]) == ("TooManyRequests", VIOLATION)
    assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                          "message": "The disruption budget ev needs 1 healthy pods and has 1 currently"}]
    pod = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)
    assert not pod["metadata"].get("deletionTimestamp")
    # Budget relaxed: one disruption is allowed, and spent by the next eviction.
    cluster.kubectl("patch", "pdb", "ev", "--type=merge", "-p", '{"spec":{"minAvailable":0}}')
    settled(cluster, "ev", 2, 1)
    accepted = evict(cluster, name)
    assert accepted.status == 201
    assert accepted.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    pod = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)
    assert pod["metadata"]["deletionTimestamp"]
    target = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert [(c["status"], c["reason"], c["message"]) for c in target] == [
        ("True", "EvictionByEvictionAPI", "Eviction API: evicting")]
    cluster.kubectl("delete", "deployment/ev", "pdb/ev", "--wait=false")
    cluster.kubectl("delete", "pod", name, "--grace-period=0", "--force", check=False)


def test_python_client_eviction(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("pyev", 1, {"name": "web", "image": "nginx"}))
    apply(cluster, pdb("pyev", {"app": "pyev"}, maxUnavailable=0))
    [victim] = running(cluster, "app=pyev", 1)
    settled(cluster, "pyev", 1, 0)
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        core = client.CoreV1Api(api)
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=victim["metadata"]["name"], namespace="default"))
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod_eviction(victim["metadata"]["name"], "default", body)
        assert err.value.status == 429
        assert json.loads(err.value.body or "{}")["details"]["causes"][0]["message"] == \
            "The disruption budget pyev needs 1 healthy pods and has 1 currently"
        cluster.kubectl("delete", "pdb", "pyev")
        core.create_namespaced_pod_eviction(victim["metadata"]["name"], "default", body)
    finally:
        api.close()
    wait_for(lambda: victim["metadata"]["name"] not in {p["metadata"]["name"] for p in pods(cluster, "app=pyev")})
    cluster.kubectl("delete", "deployment/pyev", "--wait=false")


def test_discovery_offers_policy_v1_eviction(cluster: ClusterHandle) -> None:
    resources = cluster.http("GET", "/api/v1").json()["resources"]
    [entry] = [r for r in resources if r["name"] == "pods/eviction"]
    assert (entry["group"], entry["version"], entry["kind"], entry["verbs"]) == ("policy", "v1", "Eviction", ["create"])


@pytest.fixture
def drain_node(cluster: ClusterHandle) -> Iterator[str]:
    """The worker the guarded pod runs on; uncordoned again afterwards."""
    apply(cluster, deployment("guarded", 1, {"name": "web", "image": "nginx"}))
    apply(cluster, pdb("guarded", {"app": "guarded"}, minAvailable=1))
    [pod] = running(cluster, "app=guarded", 1)
    node: str = pod["spec"]["nodeName"]
    yield node
    cluster.kubectl("uncordon", node, check=False)
    cluster.kubectl("delete", "deployment/guarded", "deployment/scratch", "pdb/guarded", "pod/loner",
                    "--ignore-not-found", "--wait=false")


def test_cordon_and_uncordon(cluster: ClusterHandle, drain_node: str) -> None:
    assert cluster.kubectl("cordon", drain_node).stdout.strip() == f"node/{drain_node} cordoned"
    def node() -> dict[str, Any]:
        got: dict[str, Any] = json.loads(cluster.kubectl("get", "node", drain_node, "-o", "json").stdout)
        return got
    assert node()["spec"]["unschedulable"] is True
    # The node lifecycle controller taints it, so only pods that tolerate that land there.
    wait_for(lambda: any(t["key"] == "node.kubernetes.io/unschedulable" for t in node()["spec"].get("taints", [])))
    status = [ln.split()[1] for ln in cluster.kubectl("get", "nodes").stdout.splitlines()
              if ln.split()[0] == drain_node]
    assert status == ["Ready,SchedulingDisabled"]
    assert cluster.kubectl("uncordon", drain_node).stdout.strip() == f"node/{drain_node} uncordoned"
    assert not node()["spec"].get("unschedulable")
    wait_for(lambda: not node()["spec"].get("taints"))


def test_drain_waits_for_the_budget(cluster: ClusterHandle, drain_node: str) -> None:
    # Beside the guarded pod: a pod no controller owns, and one with an emptyDir.
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loner", "labels": {"app": "loner"}},
                    "spec": {"nodeName": drain_node, "containers": [{"name": "web", "image": "nginx"}]}})
    scratch = deployment("scratch", 1, {"name": "web", "image": "nginx",
                                        "volumeMounts": [{"name": "tmp", "mountPath": "/scratch"}]})
    scratch["spec"]["template"]["spec"].update(nodeSelector={"kubernetes.io/hostname": drain_node},
                                               volumes=[{"name": "tmp", "emptyDir": {}}])
    apply(cluster, scratch)
    running(cluster, "app=loner", 1)
    running(cluster, "app=scratch", 1)
    settled(cluster, "guarded", 1, 0)

    refused = cluster.kubectl("drain", drain_node, "--ignore-daemonsets", "--timeout=20s", check=False)
    assert refused.returncode != 0
    assert refused.stdout.splitlines()[0] == f"node/{drain_node} cordoned"
    assert "cannot delete Pods that declare no controller (use --force to override): default/loner" in refused.stderr
    assert "cannot delete Pods with local storage (use --delete-emptydir-data to override)" in refused.stderr

    drain = subprocess.Popen([kubectl_binary("1.32"), "--kubeconfig", str(cluster.kubeconfig), "drain", drain_node,
                              "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=120s"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        [guarded] = pods(cluster, "app=guarded")
        name = guarded["metadata"]["name"]
        # The other pods go; the guarded one stays while its budget allows nothing.
        wait_for(lambda: not pods(cluster, "app=loner") and
                 all(p["spec"].get("nodeName") != drain_node for p in pods(cluster, "app=scratch")), timeout=60)
        time.sleep(6)   # at least one 5 s retry of the refused eviction
        [still] = pods(cluster, "app=guarded")
        assert still["metadata"]["name"] == name and not still["metadata"].get("deletionTimestamp")
        assert drain.poll() is None
        # A second replica elsewhere makes one disruption allowed: drain goes on by itself.
        cluster.kubectl("scale", "deployment/guarded", "--replicas=2")
        out, _ = drain.communicate(timeout=90)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.communicate()
    assert drain.returncode == 0, out
    lines = out.splitlines()
    assert lines[0] == f"node/{drain_node} already cordoned"
    assert "deleting Pods that declare no controller: default/loner" in out
    assert f"evicting pod default/{name}" in lines
    retry = (f'error when evicting pods/"{name}" -n "default" (will retry after 5s): {VIOLATION}')
    assert retry in lines
    assert f"pod/{name} evicted" in lines and "pod/loner evicted" in lines
    assert lines[-1] == f"node/{drain_node} drained"
    survivors = running(cluster, "app=guarded", 2)
    assert all(p["spec"]["nodeName"] != drain_node for p in survivors)
    node = json.loads(cluster.kubectl("get", "node", drain_node, "-o", "json").stdout)
    assert node["spec"]["unschedulable"] is True
