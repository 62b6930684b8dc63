"""Components as real processes: static control-plane pods, a kubelet per node,
and a cluster that survives killed components, as a learner sees on kind.

One cluster for the module; the tests run in file order and each leaves the
cluster healthy for the next (a killed component is back before it ends).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kinns.testing import ClusterHandle, new_cluster_name, wait_for

from .helpers import AGNHOST, apply, kexec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


@pytest.fixture(scope="module")
def c(state_root: Path) -> Iterator[ClusterHandle]:
    h = ClusterHandle(new_cluster_name("comp"), state_root)
    h.up()
    try:
        yield h
    finally:
        h.down()


def status(c: ClusterHandle) -> dict[str, Any]:
    r = c.cli("status", "--name", c.name, "-o", "json", check=False)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def component(c: ClusterHandle, name: str, node: str | None = None) -> dict[str, Any]:
    for comp in status(c)["components"]:
        if comp["name"] == name and (node is None or comp["node"] == node):
            return comp  # type: ignore[no-any-return]
    raise AssertionError(f"no component {name} on {node}")


def pod_json(c: ClusterHandle, name: str, ns: str = "default") -> dict[str, Any]:
    return json.loads(c.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)  # type: ignore[no-any-return]


def api_answers(c: ClusterHandle) -> bool:
    return c.kubectl("get", "--raw", "/readyz", check=False, timeout=5).returncode == 0


def test_control_plane_runs_as_static_pods_with_mirror_pods(c: ClusterHandle) -> None:
    cp = f"{c.name}-control-plane"
    names = c.kubectl("get", "pods", "-n", "kube-system", "-o", "name").stdout.split()
    for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"pod/{comp}-{cp}" in names
        pod = pod_json(c, f"{comp}-{cp}", "kube-system")
        ann = pod["metadata"]["annotations"]
        assert ann["kubernetes.io/config.source"] == "file"
        assert ann["kubernetes.io/config.mirror"] == ann["kubernetes.io/config.hash"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Node"
        assert pod["spec"]["nodeName"] == cp and pod["spec"]["hostNetwork"] is True
        assert pod["status"]["phase"] == "Running"
        assert pod["metadata"]["labels"] == {"component": comp, "tier": "control-plane"}
    logs = c.kubectl("logs", "-n", "kube-system", f"kube-apiserver-{cp}").stdout
    assert "Serving securely on 0.0.0.0:6443" in logs
    # The API server is really on the node's address, port 6443 (the `kubernetes` Service's endpoint).
    ep = json.loads(c.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout)
    node_ip = ep["subsets"][0]["addresses"][0]["ip"]
    out = kexec(c, f"node/{c.name}-worker", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                f"https://{node_ip}:6443/livez").stdout
    assert out == "200"


def test_status_lists_every_component_with_its_pid(c: ClusterHandle) -> None:
    st = status(c)
    assert st["state"] == "running"
    comps = {(x["name"], x["node"]): x for x in st["components"]}
    nodes = [f"{c.name}-control-plane", f"{c.name}-worker", f"{c.name}-worker2"]
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert comps[(name, nodes[0])]["state"] == "running"
    if os.environ.get("KINNS_TEST_STORE") == "etcd":
        assert comps[("etcd", nodes[0])]["state"] == "running"
        assert f"pod/etcd-{nodes[0]}" in c.kubectl("get", "pods", "-n", "kube-system", "-o", "name").stdout.split()
    for n in nodes:
        assert comps[("kubelet", n)]["state"] == "running"
    for x in st["components"]:
        if x["state"] == "running":
            assert Path(f"/proc/{x['pid']}").exists(), x
    table = c.cli("status", "--name", c.name).stdout
    assert "COMPONENT" in table and "kube-apiserver" in table and nodes[2] in table


def test_leader_election_leases(c: ClusterHandle) -> None:
    for name in ("kube-controller-manager", "kube-scheduler"):
        lease = wait_for(lambda: json.loads(c.kubectl("get", "lease", name, "-n", "kube-system", "-o", "json",
                                                      check=False).stdout or "null"), timeout=30)
        assert lease["spec"]["holderIdentity"]
        assert lease["spec"]["leaseDurationSeconds"] == 15


def _running_pod(c: ClusterHandle, name: str, node: str) -> dict[str, Any]:
    apply(c, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
              "spec": {"nodeName": node, "containers": [{"name": "web", "image": AGNHOST,
                                                          "args": ["netexec", "--http-port=8080"]}]}})
    return wait_for(lambda: (lambda p: p if p["status"].get("phase") == "Running" and all(
        s.get("ready") for s in p["status"].get("containerStatuses", [])) else None)(pod_json(c, name)), timeout=60)


def _container_pid(c: ClusterHandle, pod: dict[str, Any]) -> set[int]:
    from kinns.node.cgroups import Cgroups
    node = pod["spec"]["nodeName"]
    parent = json.loads((c.state_dir / "runtime" / node / "runtime.json").read_text())["cgroup_parent"]
    return Cgroups(parent).pids(f"pod{pod['metadata']['uid']}")


def test_killed_kubelet_comes_back_and_leaves_containers_alone(c: ClusterHandle) -> None:
    worker = f"{c.name}-worker"
    before = _running_pod(c, "survivor", worker)
    pids = _container_pid(c, before)
    assert pids
    old = component(c, "kubelet", worker)["pid"]
    os.kill(old, signal.SIGKILL)
    back = wait_for(lambda: (lambda k: k if k["pid"] and k["pid"] != old and k["state"] == "running" else None)(
        component(c, "kubelet", worker)), timeout=15)
    assert back["pid"] != old
    # The container kept running through it: same processes, same IP, no restart.
    assert _container_pid(c, before) == pids
    time.sleep(2)  # let the new kubelet sync the pod once
    after = pod_json(c, "survivor")
    assert after["status"]["podIP"] == before["status"]["podIP"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert after["status"]["containerStatuses"][0]["containerID"] == before["status"]["containerStatuses"][0][
        "containerID"]
    assert _container_pid(c, before) == pids
    # The new kubelet still runs the node: a new pod there starts.
    _running_pod(c, "after-restart", worker)
    c.kubectl("delete", "pod", "after-restart", "--wait=false")


def test_api_server_killed_services_keep_answering_and_it_comes_back(c: ClusterHandle) -> None:
    """Seed 000: with the control plane gone, Services keep answering; the API returns by itself."""
    apply(c, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "survivor"},
              "spec": {"type": "NodePort", "selector": {"app": "survivor"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    svc = json.loads(c.kubectl("get", "svc", "survivor", "-o", "json").stdout)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    node_ip = json.loads(c.kubectl("get", "node", f"{c.name}-worker2", "-o", "json").stdout)["status"][
        "addresses"][0]["address"]
    def curl() -> str:
        r = subprocess.run(["curl", "-s", "-m", "3", f"http://{node_ip}:{node_port}/hostname"], capture_output=True,
                           text=True)
        return r.stdout
    wait_for(lambda: curl() == "survivor", timeout=30)
    api = component(c, "kube-apiserver")["pid"]
    os.kill(api, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    answered = 0
    while time.monotonic() < deadline:
        answered += curl() == "survivor"
    assert answered > 0
    wait_for(lambda: api_answers(c), timeout=40)
    assert component(c, "kube-apiserver")["pid"] != api
    assert curl() == "survivor"
    # The kubelet writes the mirror pod's status once the new API server answers it.
    def restarts() -> int:
        mirror = pod_json(c, f"kube-apiserver-{c.name}-control-plane", "kube-system")
        return int(mirror["status"]["containerStatuses"][0]["restartCount"])
    wait_for(lambda: restarts() >= 1, timeout=20)


def test_moving_a_manifest_stops_the_component(c: ClusterHandle) -> None:
    cp = f"{c.name}-control-plane"
    kexec(c, f"node/{cp}", "mv", "/etc/kubernetes/manifests/kube-scheduler.yaml", "/etc/kubernetes/")
    try:
        wait_for(lambda: component(c, "kube-scheduler")["pid"] is None, timeout=20)
        wait_for(lambda: f"pod/kube-scheduler-{cp}" not in c.kubectl(
            "get", "pods", "-n", "kube-system", "-o", "name").stdout.split(), timeout=20)
        apply(c, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unscheduled"},
                  "spec": {"containers": [{"name": "p", "image": "registry.k8s.io/pause:3.10"}]}})
        time.sleep(2)
        assert not pod_json(c, "unscheduled")["spec"].get("nodeName")
    finally:
        kexec(c, f"node/{cp}", "mv", "/etc/kubernetes/kube-scheduler.yaml", "/etc/kubernetes/manifests/")
    wait_for(lambda: pod_json(c, "unscheduled")["spec"].get("nodeName"), timeout=40)
    assert component(c, "kube-scheduler")["state"] == "running"
    c.kubectl("delete", "pod", "unscheduled", "--wait=false")


def test_broken_manifest_keeps_component_down_and_kubelet_says_why(c: ClusterHandle) -> None:
    cp = f"{c.name}-control-plane"
    path = c.state_dir / "nodes" / cp / "etc" / "kubernetes" / "manifests" / "broken.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: broken\nspec: [\n")
    try:
        log = c.state_dir / "logs" / f"kubelet-{cp}.log"
        wait_for(lambda: "Could not process manifest file" in log.read_text() and "broken.yaml" in log.read_text(),
                 timeout=10)
        assert api_answers(c)
    finally:
        path.unlink()
