"""kube-controller-manager and kube-scheduler as processes: HTTPS, own identity, Lease leader election.

Each process is started from the host with the kubeconfig the cluster
wrote for it (`<state>/kubeconfigs/controller-manager.conf`, whose server
is the control-plane node's https://<ip>:6443), exactly the command line a
static pod runs.  While the daemon still runs its own controllers
in-process, the controller-manager processes here run one idempotent
controller only (`--controllers=root-ca-cert-publisher`), so the two never
fight over anything; what is checked is the leader election a user sees
with `kubectl get lease -n kube-system`.
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

from kinns.testing import ClusterHandle, wait_for


class Component:
    """One component process whose stderr (its klog lines) goes to a file."""

    def __init__(self, module: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=self._out,
                                     stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def identity(self) -> str:
        """The holder identity this process announced ("<id> became leader"), else ""."""
        for line in self.text().splitlines():
            if "LeaderElection" in line and "became leader" in line:
                return line.split('message="', 1)[1].split(" became leader", 1)[0]
        return ""

    def stop(self, sig: int = signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self._out.close()


@pytest.fixture()
def components(cluster: ClusterHandle) -> Iterator[list[Component]]:
    started: list[Component] = []
    yield started
    for c in started:
        c.stop()


def _lease(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    r = cluster.kubectl("get", "lease", "-n", "kube-system", name, "-o", "json", check=False)
    return json.loads(r.stdout)["spec"] if r.returncode == 0 else {}


def _kcm(cluster: ClusterHandle, components: list[Component], tag: str) -> Component:
    conf = cluster.state_dir / "kubeconfigs" / "controller-manager.conf"
    c = Component("kinns.controllers", [f"--kubeconfig={conf}", f"--state-dir={cluster.state_dir}",
                                        "--controllers=root-ca-cert-publisher", "--leader-elect=true"],
                  cluster.state_dir / f"kcm-{tag}.log", cluster.env())
    components.append(c)
    return c


def test_controller_manager_leads_and_a_second_one_takes_over_after_a_kill(
        cluster: ClusterHandle, components: list[Component]) -> None:
    a = _kcm(cluster, components, "a")
    wait_for(lambda: "successfully acquired lease kube-system/kube-controller-manager" in a.text(), timeout=30)
    held = _lease(cluster, "kube-controller-manager")
    assert held["holderIdentity"] == a.identity() and held["leaseDurationSeconds"] == 15
    transitions = held.get("leaseTransitions", 0)
    assert "Started controller" in a.text() and 'controller="root-ca-certificate-publisher-controller"' in a.text()

    b = _kcm(cluster, components, "b")
    wait_for(lambda: "attempting to acquire leader lease kube-system/kube-controller-manager" in b.text(),
             timeout=30)
    time.sleep(4)  # two renewals: b stays a candidate
    assert "successfully acquired" not in b.text() and b.proc.poll() is None
    assert _lease(cluster, "kube-controller-manager")["holderIdentity"] == a.identity()

    a.stop(signal.SIGKILL)      # no release: b must wait the lease out
    killed = time.monotonic()
    wait_for(lambda: "successfully acquired lease" in b.text(), timeout=25, interval=0.2)
    took = time.monotonic() - killed
    assert took <= 15 + 2 * 2 + 1, f"took over after {took:.1f}s"
    spec = _lease(cluster, "kube-controller-manager")
    assert spec["holderIdentity"] == b.identity() != a.identity()
    assert spec["leaseTransitions"] == transitions + 1

    # A clean stop releases at once and exits 0.
    assert b.stop(signal.SIGTERM) == 0
    assert "Requested to terminate, exiting" in b.text()
    assert _lease(cluster, "kube-controller-manager")["holderIdentity"] == ""


def test_scheduler_process_takes_its_own_lease(cluster: ClusterHandle, components: list[Component]) -> None:
    conf = cluster.state_dir / "kubeconfigs" / "scheduler.conf"
    s = Component("kinns.controllers.scheduler_main", [f"--kubeconfig={conf}"],
                  cluster.state_dir / "scheduler.log", cluster.env())
    components.append(s)
    wait_for(lambda: "successfully acquired lease kube-system/kube-scheduler" in s.text(), timeout=30)
    assert _lease(cluster, "kube-scheduler")["holderIdentity"] == s.identity()
    assert '"Starting Kubernetes Scheduler" version="v1.' in s.text()
    assert s.stop(signal.SIGTERM) == 0
    assert _lease(cluster, "kube-scheduler")["holderIdentity"] == ""


def test_bad_flags_are_refused_as_upstream(cluster: ClusterHandle) -> None:
    conf = cluster.state_dir / "kubeconfigs" / "controller-manager.conf"
    r = subprocess.run([sys.executable, "-m", "kinns.controllers", f"--kubeconfig={conf}",
                        f"--state-dir={cluster.state_dir}", "--controllers=*,nosuch"],
                       capture_output=True, text=True, timeout=30, env=cluster.env())
    assert r.returncode == 1 and '"nosuch" is not in the list of known controllers' in r.stderr
