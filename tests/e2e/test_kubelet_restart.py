"""A kubelet that was away finds its pods again (kubelet checkpoints and the
runtime daemon): running containers keep their processes, IP, container ID,
restart count and readiness; a container that exited meanwhile is restarted
as its restartPolicy says; a pod deleted meanwhile is torn down.

The kubelet is kept away deterministically: its supervisor (the cluster
daemon) is paused with SIGSTOP, the kubelet SIGKILLed, things happen, and
the supervisor resumes and starts a new kubelet.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kinns.node.cgroups import Cgroups
from kinns.testing import ClusterHandle, wait_for

from .helpers import AGNHOST, apply

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


def pod_json(c: ClusterHandle, name: str) -> dict[str, Any]:
    return json.loads(c.kubectl("get", "pod", name, "-o", "json").stdout)  # type: ignore[no-any-return]


def pod_pids(c: ClusterHandle, node: str, uid: str) -> set[int]:
    """The processes of a pod's containers, from the node runtime's cgroups."""
    parent = json.loads((c.state_dir / "runtime" / node / "runtime.json").read_text())["cgroup_parent"]
    return {p for p in Cgroups(parent).pids(f"pod{uid}") if _alive(p)}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def ready_running(c: ClusterHandle, name: str) -> dict[str, Any] | None:
    p = pod_json(c, name)
    statuses = p["status"].get("containerStatuses") or []
    if p["status"].get("phase") == "Running" and statuses and all(s.get("ready") for s in statuses):
        return p
    return None


def ready_condition(p: dict[str, Any]) -> dict[str, Any]:
    return next(x for x in p["status"]["conditions"] if x["type"] == "Ready")


def test_a_kubelet_that_was_away_finds_its_pods(cluster: ClusterHandle, tmp_path: Path) -> None:
    c = cluster
    node = f"{c.name}-worker"
    trigger = tmp_path / "trigger"
    trigger.mkdir()
    web = {"name": "web", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
           "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    quitter = {"name": "quitter", "image": "busybox", "volumeMounts": [{"name": "t", "mountPath": "/t"}],
               "command": ["sh", "-c", "while [ ! -e /t/go ]; do sleep 0.1; done; rm -f /t/go; exit 3"]}
    sleeper = {"name": "sleeper", "image": "busybox", "command": ["sleep", "3600"]}
    for name, container, extra in (("kept", web, {}), ("quits", quitter,
                                                       {"volumes": [{"name": "t", "hostPath": {"path": str(trigger)}}]}),
                                   ("goner", sleeper, {})):
        apply(c, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                  "spec": {"nodeName": node, "containers": [container], **extra}})
    before = {name: wait_for(lambda n=name: ready_running(c, n), timeout=60) for name in ("kept", "quits", "goner")}
    pids = {name: pod_pids(c, node, p["metadata"]["uid"]) for name, p in before.items()}
    assert all(pids.values()), pids
    checkpoints = c.state_dir / "kubelet" / node / "checkpoints"
    assert {f"{p['metadata']['uid']}.json" for p in before.values()} <= set(os.listdir(checkpoints))

    # (the daemon also publishes the API on the host's 127.0.0.1: while it is paused, go to the node's address)
    cp = json.loads(c.kubectl("get", "node", f"{c.name}-control-plane", "-o", "json").stdout)
    api = "https://" + next(a["address"] for a in cp["status"]["addresses"] if a["type"] == "InternalIP") + ":6443"
    supervisor = int((c.state_dir / "daemon.pid").read_text())
    kubelet = int((c.state_dir / "kubelet" / node / "kubelet.pid").read_text())
    os.kill(supervisor, signal.SIGSTOP)
    try:
        os.kill(kubelet, signal.SIGKILL)
        wait_for(lambda: not _alive(kubelet), timeout=10)
        (trigger / "go").touch()  # "quits" exits 3 with no kubelet to see it
        wait_for(lambda: not pod_pids(c, node, before["quits"]["metadata"]["uid"]), timeout=10)
        c.kubectl("--server", api, "delete", "pod", "goner", "--force", "--grace-period=0")
        assert pod_pids(c, node, before["kept"]["metadata"]["uid"]) == pids["kept"]
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_for(lambda: (c.state_dir / "kubelet" / node / "kubelet.pid").read_text().strip() not in ("", str(kubelet)),
             timeout=15)

    # the exit that happened while away: restarted as restartPolicy Always says, counted once
    def restarted() -> dict[str, Any] | None:
        p = ready_running(c, "quits")
        return p if p and p["status"]["containerStatuses"][0]["restartCount"] == 1 else None
    quits = wait_for(restarted, timeout=30)["status"]["containerStatuses"][0]
    assert quits["lastState"]["terminated"]["exitCode"] == 3
    assert quits["lastState"]["terminated"]["containerID"] == \
        before["quits"]["status"]["containerStatuses"][0]["containerID"]
    # the pod deleted while away: its containers and checkpoint go
    wait_for(lambda: not pod_pids(c, node, before["goner"]["metadata"]["uid"]), timeout=30)
    assert not (checkpoints / f"{before['goner']['metadata']['uid']}.json").exists()
    # the running one: untouched, and never seen unready
    time.sleep(2)  # a few probe periods of the new kubelet
    kept = pod_json(c, "kept")
    old, new = before["kept"]["status"], kept["status"]
    assert pod_pids(c, node, kept["metadata"]["uid"]) == pids["kept"]
    assert new["podIP"] == old["podIP"]
    for key in ("containerID", "restartCount", "state", "ready", "started"):
        assert new["containerStatuses"][0][key] == old["containerStatuses"][0][key], key
    assert ready_condition(kept) == ready_condition(before["kept"])
    c.kubectl("delete", "pod", "kept", "quits", "--wait=false")
