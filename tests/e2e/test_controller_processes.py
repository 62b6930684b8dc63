"""kube-controller-manager and kube-scheduler as processes: HTTPS, own identities, Lease leader election.

The cluster runs both as static pods of the control-plane node.  The test
adds standby replicas the way a second control-plane node would: the same
command line as the static pod's manifest (`python -m kinns.controllers`
with the manifest's flags: its kubeconfig, whose server is the node's
https://<ip>:6443, and --use-service-account-credentials), started from the
host.  What is checked is what a user sees: `kubectl get lease -n
kube-system`, `kubectl logs` of the static pods, and controllers that keep
working across hand-overs (a release when the manifest is moved out, a
lease running out after a SIGKILL).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kinns.cluster.config import ClusterConfig
from kinns.cluster.manifests import manifest_dir
from kinns.testing import ClusterHandle, wait_for

KCM = "kube-controller-manager"


class Standby:
    """A component process started from the host; its klog lines go to a file."""

    def __init__(self, module: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=self._out,
                                     stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def identity(self) -> str:
        """The holder identity it announced ("<identity> became leader"), else ""."""
        for line in self.text().splitlines():
            if "LeaderElection" in line and "became leader" in line:
                return line.split('message="', 1)[1].split(" became leader", 1)[0]
        return ""

    def stop(self, sig: int = signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._out.close()


@pytest.fixture()
def standbys() -> Iterator[list[Standby]]:
    started: list[Standby] = []
    yield started
    for s in started:
        s.stop()


def _cp(cluster: ClusterHandle) -> str:
    return f"{cluster.name}-control-plane"


def _manifest(cluster: ClusterHandle, stem: str) -> Path:
    return manifest_dir(ClusterConfig.load_from(cluster.state_dir), _cp(cluster)) / f"{stem}.yaml"


def _flags(cluster: ClusterHandle, stem: str) -> list[str]:
    """The static pod's flags, from its manifest."""
    command: list[str] = yaml.safe_load(_manifest(cluster, stem).read_text())["spec"]["containers"][0]["command"]
    return command[1:]


def _standby(cluster: ClusterHandle, standbys: list[Standby], flags: list[str], tag: str) -> Standby:
    """A kube-controller-manager replica with the static pod's flags."""
    s = Standby("kinns.controllers", flags, cluster.state_dir / f"{KCM}-{tag}.log", cluster.env())
    standbys.append(s)
    return s


def _lease(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    r = cluster.kubectl("get", "lease", "-n", "kube-system", name, "-o", "json", check=False)
    return json.loads(r.stdout)["spec"] if r.returncode == 0 else {}


def _static_log(cluster: ClusterHandle, component: str) -> str:
    r = cluster.kubectl("logs", "-n", "kube-system", f"{component}-{_cp(cluster)}", check=False)
    return r.stdout


@pytest.mark.parametrize("component", [KCM, "kube-scheduler"])
def test_static_pod_holds_its_lease(cluster: ClusterHandle, component: str) -> None:
    wait_for(lambda: f"successfully acquired lease kube-system/{component}" in _static_log(cluster, component),
             timeout=60)
    first = _lease(cluster, component)
    assert first["holderIdentity"].startswith(f"{_cp(cluster)}_"), first
    assert first["leaseDurationSeconds"] == 15
    time.sleep(2.5)
    later = _lease(cluster, component)
    assert later["holderIdentity"] == first["holderIdentity"] and later["renewTime"] > first["renewTime"]
    assert later["acquireTime"] == first["acquireTime"]


def test_standby_takes_over_on_release_and_after_a_kill(cluster: ClusterHandle, standbys: list[Standby]) -> None:
    wait_for(lambda: _lease(cluster, KCM).get("holderIdentity"), timeout=60)
    static = _lease(cluster, KCM)
    flags = _flags(cluster, KCM)
    b = _standby(cluster, standbys, flags, "b")
    wait_for(lambda: f"attempting to acquire leader lease kube-system/{KCM}" in b.text(), timeout=30)
    time.sleep(4)   # two renewals by the static pod: b stays a candidate
    assert "successfully acquired" not in b.text() and b.proc.poll() is None
    assert _lease(cluster, KCM)["holderIdentity"] == static["holderIdentity"]

    # Moving the manifest out stops the static pod cleanly: it releases, b takes over at once.
    manifest = _manifest(cluster, KCM)
    parked = cluster.state_dir / f"{KCM}.yaml.parked"
    manifest.rename(parked)
    try:
        wait_for(lambda: "successfully acquired lease" in b.text(), timeout=30, interval=0.2)
        spec = _lease(cluster, KCM)
        assert spec["holderIdentity"] == b.identity()
        assert spec["leaseTransitions"] == static.get("leaseTransitions", 0) + 1
        released = time.monotonic()

        # b's controllers act with their own ServiceAccounts: a Deployment gets its ReplicaSet and pods.
        cluster.kubectl("create", "deployment", "lease-web", "--image=registry.k8s.io/pause:3.10", "--replicas=2")
        wait_for(lambda: len(json.loads(cluster.kubectl("get", "pods", "-l", "app=lease-web", "-o", "json")
                                        .stdout)["items"]) == 2, timeout=60)
        sa = json.loads(cluster.kubectl("get", "sa", "-n", "kube-system", "-o", "json").stdout)["items"]
        assert {"replicaset-controller", "deployment-controller"} <= {s["metadata"]["name"] for s in sa}
        assert "forbidden" not in b.text(), [ln for ln in b.text().splitlines() if "forbidden" in ln][:3]

        # A killed leader cannot release: the next candidate waits the 15 s lease out.
        c = _standby(cluster, standbys, flags, "c")
        wait_for(lambda: "attempting to acquire leader lease" in c.text(), timeout=30)
        assert time.monotonic() - released < 30
        b.stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: "successfully acquired lease" in c.text(), timeout=30, interval=0.2)
        took = time.monotonic() - killed
        # 15 s from the last renewal c saw, then c's next jittered retry (at most 2 s * 2.2), plus slack.
        assert 8 <= took <= 15 + 2 * 2.2 + 4, f"took over {took:.1f}s after the kill"
        spec = _lease(cluster, KCM)
        assert spec["holderIdentity"] == c.identity() != b.identity()
        assert spec["leaseTransitions"] == static.get("leaseTransitions", 0) + 2

        # A clean stop releases the lease and exits 0.
        assert c.stop(signal.SIGTERM) == 0
        assert "Requested to terminate, exiting" in c.text()
        assert _lease(cluster, KCM)["holderIdentity"] == ""
    finally:
        parked.rename(manifest)
        cluster.kubectl("delete", "deployment", "lease-web", "--ignore-not-found", check=False)
    # The static pod comes back and leads again.
    wait_for(lambda: _lease(cluster, KCM).get("holderIdentity", "").startswith(f"{_cp(cluster)}_"), timeout=60)


def test_unknown_controller_is_refused_as_upstream(cluster: ClusterHandle) -> None:
    conf = cluster.state_dir / "kubeconfigs" / "controller-manager.conf"
    r = subprocess.run([sys.executable, "-m", "kinns.controllers", f"--kubeconfig={conf}",
                        f"--state-dir={cluster.state_dir}", "--controllers=*,nosuch"],
                       capture_output=True, text=True, timeout=30, env=cluster.env())
    assert r.returncode == 1 and '"nosuch" is not in the list of known controllers' in r.stderr
