"""Stop, start, crash and node failure: a cluster keeps what it was told.

One cluster with a short --node-monitor-grace-period (10 s) so a stopped node
is noticed quickly; the tests run in file order on the same workload.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kinns.testing import ClusterHandle, find_leaks, new_cluster_name, wait_for

from .helpers import AGNHOST, apply, deployment, kexec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

WEB = {"name": "web", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
       "readinessProbe": {"httpGet": {"path": "/hostname", "port": 8080}, "periodSeconds": 1}}


@pytest.fixture(scope="module")
def c(state_root: Path) -> Iterator[ClusterHandle]:
    h = ClusterHandle(new_cluster_name("life"), state_root, ["--node-monitor-grace-period", "10s"])
    h.up()
    try:
        yield h
    finally:
        h.down()


def get(c: ClusterHandle, *args: str) -> Any:
    r = c.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def ready_pods(c: ClusterHandle, app: str) -> list[dict[str, Any]]:
    items = (get(c, "pods", "-l", f"app={app}") or {}).get("items", [])
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and any(
        cond["type"] == "Ready" and cond["status"] == "True" for cond in p["status"].get("conditions", []))]


def node_condition(c: ClusterHandle, node: str) -> tuple[str, str]:
    ready = next(x for x in get(c, "node", node)["status"]["conditions"] if x["type"] == "Ready")
    return ready["status"], ready.get("message", "")


def curl(url: str) -> str:
    return subprocess.run(["curl", "-s", "-m", "3", url], capture_output=True, text=True).stdout


def test_node_failure_taints_evicts_and_recovers(c: ClusterHandle) -> None:
    dep = deployment("spread", 3, WEB)
    tmpl = dep["spec"]["template"]["spec"]
    # As upstream's DefaultTolerationSeconds would, but 5 s instead of 300 s so the test is short.
    tmpl["tolerations"] = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": 5} for k in ("unreachable", "not-ready")]
    tmpl["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                          "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {
                                              "matchLabels": {"app": "spread"}}}]
    apply(c, dep)
    wait_for(lambda: len(ready_pods(c, "spread")) == 3, timeout=60)
    victim = f"{c.name}-worker2"
    on_victim = [p["metadata"]["name"] for p in ready_pods(c, "spread") if p["spec"]["nodeName"] == victim]
    victim_ip = get(c, "node", victim)["status"]["addresses"][0]["address"]
    c.cli("node", "stop", "--name", c.name, victim)
    assert curl(f"http://{victim_ip}:10256/healthz") == ""        # its addresses stop answering
    start = time.monotonic()
    wait_for(lambda: node_condition(c, victim)[0] == "Unknown", timeout=40)
    assert node_condition(c, victim)[1] == "Kubelet stopped posting node status."
    def taints() -> set[tuple[str, str]]:
        return {(t["key"], t["effect"]) for t in get(c, "node", victim)["spec"].get("taints", [])}
    wait_for(lambda: ("node.kubernetes.io/unreachable", "NoExecute") in taints(), timeout=20)
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints()
    # Its pods are replaced elsewhere once their tolerationSeconds ran out.
    wait_for(lambda: len([p for p in ready_pods(c, "spread") if p["spec"]["nodeName"] != victim]) == 3, timeout=60)
    assert time.monotonic() - start >= 5 if on_victim else True
    eps = get(c, "endpointslices", "-l", "kubernetes.io/service-name=spread") or {"items": []}
    for s in eps["items"]:
        for e in s.get("endpoints") or []:
            assert e.get("nodeName") != victim or not e["conditions"].get("ready")
    # Back on: Ready, untainted.
    c.cli("node", "start", "--name", c.name, victim)
    wait_for(lambda: node_condition(c, victim)[0] == "True", timeout=40)
    wait_for(lambda: not [t for t in get(c, "node", victim)["spec"].get("taints", [])
                          if t["key"].startswith("node.kubernetes.io/")], timeout=30)


def test_node_stop_refuses_the_control_plane_node(c: ClusterHandle) -> None:
    r = c.cli("node", "stop", "--name", c.name, f"{c.name}-control-plane", check=False)
    assert r.returncode == 1 and "control-plane node" in r.stderr
    r = c.cli("node", "stop", "--name", c.name, "nosuch", check=False)
    assert r.returncode == 1 and 'node "nosuch" not found' in r.stderr


def _workload(c: ClusterHandle) -> None:
    c.kubectl("create", "configmap", "kept", "--from-literal=k=v")
    apply(c, deployment("keep", 2, WEB))
    apply(c, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "keep"},
              "spec": {"type": "NodePort", "selector": {"app": "keep"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    apply(c, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {
        "serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 3600"],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}}}]}})
    wait_for(lambda: len(ready_pods(c, "keep")) == 2, timeout=60)
    wait_for(lambda: len(ready_pods(c, "db")) == 1, timeout=60)
    kexec(c, "pod/db-0", "sh", "-c", "echo written-before > /data/f")


def _check_workload(c: ClusterHandle, ips_before: dict[str, str]) -> None:
    assert c.kubectl("get", "cm", "kept", "-o", "jsonpath={.data.k}").stdout == "v"
    wait_for(lambda: len(ready_pods(c, "keep")) == 2, timeout=60)
    wait_for(lambda: len(ready_pods(c, "db")) == 1, timeout=60)
    after = {p["metadata"]["name"]: p["status"]["podIP"] for p in ready_pods(c, "keep") + ready_pods(c, "db")}
    assert after == ips_before, "unchanged pods keep their names and IPs"
    assert wait_for(lambda: kexec(c, "pod/db-0", "cat", "/data/f", check=False).stdout.strip() == "written-before",
                    timeout=20)
    svc = get(c, "svc", "keep")
    node_ip = get(c, "node", f"{c.name}-worker")["status"]["addresses"][0]["address"]
    port = svc["spec"]["ports"][0]["nodePort"]
    answers = wait_for(lambda: curl(f"http://{node_ip}:{port}/hostname"), timeout=30)
    assert answers in after


def test_stop_and_start_keep_everything(c: ClusterHandle) -> None:
    _workload(c)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in ready_pods(c, "keep") + ready_pods(c, "db")}
    c.cli("stop", "--name", c.name)
    assert c.cli("status", "--name", c.name, check=False).returncode == 1
    leaks = [x for x in find_leaks(c.name, c.state_root) if not x.startswith("state dir")]
    assert leaks == [], "a stopped cluster runs nothing and holds no namespace"
    r = c.cli("start", "--name", c.name)
    assert "is started" in r.stderr
    _check_workload(c, ips)


def test_start_after_the_daemon_and_everything_was_killed(c: ClusterHandle) -> None:
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in ready_pods(c, "keep") + ready_pods(c, "db")}
    c.kubectl("create", "configmap", "acked", "--from-literal=k=acked")   # acknowledged just before the crash
    daemon = int((c.state_dir / "daemon.pid").read_text())
    os.kill(daemon, signal.SIGKILL)
    for comp in json.loads(c.cli("status", "--name", c.name, "-o", "json", check=False).stdout)["components"]:
        if comp["pid"]:
            os.kill(comp["pid"], signal.SIGKILL)
    r = c.cli("up", "--name", c.name)        # `up` on an existing cluster starts it as it was
    assert "exists and is stopped" in r.stderr
    assert c.kubectl("get", "cm", "acked", "-o", "jsonpath={.data.k}").stdout == "acked"
    _check_workload(c, ips)


def test_two_starts_at_once_and_a_damaged_config(c: ClusterHandle) -> None:
    c.cli("stop", "--name", c.name)
    cmd = [sys.executable, "-m", "kinns.cli", "start", "--name", c.name]
    procs = [subprocess.Popen(cmd, env=c.env(), text=True, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range(2)]
    results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "already runs cluster" in loser or "already running" in loser, loser
    assert c.cli("status", "--name", c.name, check=False).returncode == 0
    assert len([x for x in json.loads(c.cli("status", "--name", c.name, "-o", "json").stdout)["components"]
                if x["name"] == "kubelet" and x["state"] == "running"]) == 3
    # A damaged settings file: a clear message, and `kinns down` (the fixture's) still removes everything.
    conf = c.state_dir / "cluster.json"
    saved = conf.read_text()
    conf.write_text(saved[: len(saved) // 2])
    try:
        r = c.cli("status", "--name", c.name, check=False)
        assert r.returncode == 1 and "cluster.json is damaged" in " ".join(r.stderr.split())
    finally:
        conf.write_text(saved)
