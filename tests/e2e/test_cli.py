"""The kinns CLI on bad input and hard stops: clear messages, nothing touched, nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from kinns.net.cleanup import leftovers
from kinns.testing import ClusterHandle, find_leaks, new_cluster_name


def test_too_many_nodes_for_the_pod_subnet(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("n"), state_root)
    r = c.cli("up", "--name", c.name, "--nodes", "5", "--pod-subnet", "10.244.0.0/23", check=False)
    assert r.returncode == 1
    assert "--nodes 5 is more than the pod network 10.244.0.0/23 allows" in " ".join(r.stderr.split())
    assert not find_leaks(c.name, state_root)


def test_fabric_overlapping_pod_network_is_refused(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("f"), state_root)
    r = c.cli("up", "--name", c.name, "--fabric-subnet", "10.244.5.0/24", check=False)
    assert r.returncode == 1 and "overlaps the --pod-subnet" in " ".join(r.stderr.split())


def test_ipvs_mode_is_refused_without_ip_vs(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("v"), state_root)
    r = c.cli("up", "--name", c.name, "--proxy-mode", "ipvs", check=False)
    assert r.returncode == 1
    assert "--proxy-mode ipvs needs the ip_vs kernel module" in " ".join(r.stderr.split())
    assert not find_leaks(c.name, state_root)


def test_bad_lb_pool_is_refused(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("l"), state_root)
    r = c.cli("up", "--name", c.name, "--lb-pool", "10.0.0.9-10.0.0.1", check=False)
    assert r.returncode == 1 and "10.0.0.9 comes after 10.0.0.1" in " ".join(r.stderr.split())
    r = c.cli("up", "--name", c.name, "--lb-pool", "192.0.2.1-192.0.2.5", check=False)
    assert r.returncode == 1 and "is outside the fabric subnet" in " ".join(r.stderr.split())
    assert not find_leaks(c.name, state_root)


def test_fabric_overlapping_a_host_route_is_refused_and_other_cluster_untouched(cluster: ClusterHandle,
                                                                                state_root: Path) -> None:
    theirs = json.loads((cluster.state_dir / "cluster.json").read_text())["fabric_subnet"]
    routes_before = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    c = ClusterHandle(new_cluster_name("o"), state_root)
    r = c.cli("up", "--name", c.name, "--fabric-subnet", theirs, check=False)
    assert r.returncode == 1 and "overlaps host route" in " ".join(r.stderr.split())
    assert subprocess.run(["ip", "route"], capture_output=True, text=True).stdout == routes_before
    assert cluster.kubectl("get", "nodes").returncode == 0


def test_down_after_sigkill_leaves_nothing(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("k"), state_root)
    c.up()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    c.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    deadline = time.time() + 30
    while c.kubectl("get", "pod", "victim", "-o", "jsonpath={.status.phase}").stdout != "Running":
        assert time.time() < deadline
        time.sleep(0.2)
    os.kill(int((c.state_dir / "daemon.pid").read_text()), signal.SIGKILL)
    time.sleep(0.5)
    assert leftovers(c.name)  # namespaces are still there until `down`
    c.down()  # asserts no namespace, mount, process, cgroup or state is left
    assert not leftovers(c.name)


def test_a_one_node_cluster_runs_pods_on_its_control_plane(state_root: Path) -> None:
    """kind removes the control-plane taint when a cluster has no other node (else
    nothing could run); with workers the control-plane node keeps it, as kubeadm."""
    c = ClusterHandle(new_cluster_name("one"), state_root, ["--nodes", "1", "--disable", "ingress"])
    c.up()
    try:
        node = json.loads(c.kubectl("get", "node", f"{c.name}-control-plane", "-o", "json").stdout)
        assert "taints" not in node["spec"] and "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"]
        c.kubectl("run", "solo", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo alone")
        c.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/solo", "--timeout=60s")
        assert c.kubectl("logs", "solo").stdout.strip() == "alone"
    finally:
        c.down()
