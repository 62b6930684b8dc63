"""The pod sandbox through a real cluster, checked the way a learner checks
it: `kubectl exec` into pods and look around (`ps`, `ls /dev`, CapEff, the
state directory, kubeconfigs, another pod's files), a fork bomb, a
`runAsNonRoot` pod whose image runs as root, a read-only root, and Pod
Security Admission refusing a privileged pod in a restricted namespace."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kinns.testing import ClusterHandle, wait_for

from .helpers import apply, pod

SLEEP = {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}
DEV = ["core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
       "termination-log", "tty", "urandom", "zero"]
L = "pod-security.kubernetes.io/"


def kx(cluster: ClusterHandle, target: str, *cmd: str, check: bool = True, ns: str = "default",
       timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("exec", "-n", ns, target, "--", *cmd, check=check, timeout=timeout)


def get_pod(cluster: ClusterHandle, name: str, ns: str = "default") -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "pod", "-n", ns, name, "-o", "json").stdout)  # type: ignore[no-any-return]


def wait_running(cluster: ClusterHandle, *names: str) -> None:
    def ok() -> bool:
        return all(get_pod(cluster, n)["status"].get("phase") == "Running" for n in names)
    wait_for(ok, timeout=60)


@pytest.fixture(scope="module")
def pods(cluster: ClusterHandle) -> ClusterHandle:
    vol = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    apply(cluster, pod("sb-a", {**SLEEP, **vol, "command": ["sh", "-c", "echo pod-a-secret > /data/secret-of-a; "
                                                                        "exec sleep 3600"]},
                       volumes=[{"name": "data", "emptyDir": {}}]))
    apply(cluster, pod("sb-b", SLEEP))
    apply(cluster, pod("sb-priv", {**SLEEP, "securityContext": {"privileged": True}}))
    apply(cluster, pod("sb-ro", {**SLEEP, **vol, "securityContext": {"readOnlyRootFilesystem": True}},
                       volumes=[{"name": "data", "emptyDir": {}}]))
    wait_running(cluster, "sb-a", "sb-b", "sb-priv", "sb-ro")
    return cluster


def test_ps_shows_only_the_pods_processes(pods: ClusterHandle) -> None:
    out = kx(pods, "sb-b", "ps", "-e", "-o", "pid=,args=").stdout.splitlines()
    rows = [line.split(None, 1) for line in out]
    assert rows[0] == ["1", "sleep 3600"], out
    assert len(rows) == 2 and rows[1][1].startswith("ps "), out  # PID 1 and ps itself: nothing of the node
    assert kx(pods, "sb-b", "hostname").stdout.strip() == "sb-b"


def test_state_kubeconfigs_and_other_pods_files_are_hidden(pods: ClusterHandle) -> None:
    # pod A's file is on the node, under the cluster's state directory
    wait_for(lambda: list(pods.state_dir.rglob("secret-of-a")))
    host_path = next(pods.state_dir.rglob("secret-of-a"))
    assert host_path.read_text() == "pod-a-secret\n"
    script = (f"cat {host_path} 2>&1; cat {pods.state_dir}/pki/admin.key 2>&1; cat {pods.kubeconfig} 2>&1; "
              f"ls -A {pods.state_dir} 2>&1 | wc -l; cat ~/.kube/config /root/.kube/config 2>&1; ls -A /root /home; "
              "wc -c < /etc/shadow; find / -xdev -name secret-of-a 2>/dev/null | wc -l")
    out = kx(pods, "sb-b", "sh", "-c", script, check=False).stdout
    assert "pod-a-secret" not in out and "PRIVATE KEY" not in out and "current-context" not in out, out
    assert "No such file or directory" in out
    lines = out.splitlines()
    assert lines[-1] == "0" and lines[-2] == "0"      # nobody's secret anywhere; /etc/shadow empty
    root_entries = [x for x in lines if x.startswith(".")]
    assert set(root_entries) <= {".pyenv"}, out      # only the Python installation built-ins run from
    # pod A sees its own file
    assert kx(pods, "sb-a", "cat", "/data/secret-of-a").stdout == "pod-a-secret\n"


def test_dev_is_the_short_list(pods: ClusterHandle) -> None:
    assert kx(pods, "sb-b", "ls", "/dev").stdout.split() == DEV
    assert kx(pods, "sb-b", "ls", "/dev/pts").stdout.split() == ["ptmx"]
    assert len(kx(pods, "sb-priv", "ls", "/dev").stdout.split()) > len(DEV)  # privileged: the node's /dev


def caps(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if line.startswith("Cap"))}


def test_capabilities(pods: ClusterHandle) -> None:
    assert kx(pods, "sb-b", "grep", "CapEff", "/proc/self/status").stdout.split() == ["CapEff:", "00000000a80425fb"]
    node = caps(Path("/proc/self/status").read_text())
    priv = caps(kx(pods, "sb-priv", "cat", "/proc/self/status").stdout)
    assert priv["CapEff"] == node["CapEff"] and priv["CapBnd"] == node["CapBnd"]
    # without CAP_SYS_ADMIN a pod cannot mount, nor reach the node's devices
    out = kx(pods, "sb-b", "sh", "-c", "mount -t tmpfs x /mnt 2>&1; ls /dev/vda 2>&1", check=False).stdout
    assert "denied" in out or "not permitted" in out, out
    assert "No such file" in out


def test_read_only_root_filesystem(pods: ClusterHandle) -> None:
    r = kx(pods, "sb-ro", "touch", "/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert kx(pods, "sb-ro", "sh", "-c", "touch /data/x && echo ok").stdout == "ok\n"


def test_run_as_non_root_with_a_root_image(pods: ClusterHandle) -> None:
    apply(pods, pod("sb-nonroot", {**SLEEP, "securityContext": {"runAsNonRoot": True}}))

    def waiting() -> dict[str, Any] | None:
        cs = (get_pod(pods, "sb-nonroot")["status"].get("containerStatuses") or [{}])[0]
        return (cs.get("state") or {}).get("waiting")
    w = wait_for(lambda: (waiting() or {}).get("reason") == "CreateContainerConfigError" and waiting())
    uid = get_pod(pods, "sb-nonroot")["metadata"]["uid"]
    want = (f'container has runAsNonRoot and image will run as root (pod: "sb-nonroot_default({uid})", '
            "container: c)")
    assert w["message"] == want
    wait_for(lambda: f"Error: {want}" in pods.kubectl("describe", "pod", "sb-nonroot").stdout)
    # with a non-root user it runs
    apply(pods, pod("sb-user", {**SLEEP, "securityContext": {"runAsNonRoot": True, "runAsUser": 1000}},
                    securityContext={"fsGroup": 2000}))
    wait_running(pods, "sb-user")
    assert kx(pods, "sb-user", "id", "-u").stdout == "1000\n"
    assert "2000" in kx(pods, "sb-user", "id", "-G").stdout.split()
    assert kx(pods, "sb-user", "grep", "CapEff", "/proc/self/status").stdout.split()[1] == "0000000000000000"


def test_a_fork_bomb_stays_in_its_pod(pods: ClusterHandle) -> None:
    apply(pods, pod("sb-bomb", SLEEP))
    wait_running(pods, "sb-bomb")
    obj = get_pod(pods, "sb-bomb")
    uid, node = obj["metadata"]["uid"], obj["spec"]["nodeName"]
    # bash: dash and busybox sh refuse ":" as a function name; output to /dev/null so exec returns
    kx(pods, "sb-bomb", "bash", "-c", "exec >/dev/null 2>&1; :(){ :|:& };:", check=False, timeout=30)
    current = Path(f"/sys/fs/cgroup/pids/kinns/{pods.name}/{node}/pod{uid}/pids.current")
    limit = int(current.with_name("pids.max").read_text())
    assert limit == 1024
    wait_for(lambda: int(current.read_text()) >= limit - 8, timeout=30)
    for _ in range(5):
        assert int(current.read_text()) <= limit
        time.sleep(0.2)
    # the node, the API and the other pods go on
    assert kx(pods, "sb-b", "sh", "-c", "echo alive; sh -c 'echo forked'").stdout == "alive\nforked\n"
    assert "Ready" in pods.kubectl("get", "nodes").stdout
    assert subprocess.run(["sh", "-c", "true"]).returncode == 0
    pods.kubectl("delete", "pod", "sb-bomb", "--grace-period=1", "--wait=true", timeout=60)
    wait_for(lambda: not current.parent.exists(), timeout=30)


def test_system_components_still_run(pods: ClusterHandle) -> None:
    """kube-proxy (privileged) and CoreDNS (capabilities dropped, read-only root)
    run kinns from its source tree and the host's Python, which stay visible."""
    items = json.loads(pods.kubectl("get", "pods", "-n", "kube-system", "-o", "json").stdout)["items"]
    for p in items:
        if p["metadata"]["name"].startswith(("kube-proxy", "coredns")):
            assert p["status"].get("phase") == "Running", p["metadata"]["name"]


# -- Pod Security Admission ------------------------------------------------------------

PRIVILEGED = pod("priv", {"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                          "securityContext": {"privileged": True}})


def test_psa_enforce_refuses_a_privileged_pod_in_a_restricted_namespace(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "sb-restricted")
    cluster.kubectl("label", "namespace", "sb-restricted", f"{L}enforce=restricted")
    r = cluster.kubectl("apply", "-n", "sb-restricted", "-f", "-", stdin=json.dumps(PRIVILEGED), check=False)
    assert r.returncode != 0
    assert ('pods "priv" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not '
            'set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set '
            'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set '
            'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
            'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")') in r.stderr, r.stderr
    # a pod that meets the restricted level is admitted and runs
    good = pod("good", {"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "runAsNonRoot": True, "runAsUser": 1000,
                                            "seccompProfile": {"type": "RuntimeDefault"}}})
    cluster.kubectl("apply", "-n", "sb-restricted", "-f", "-", stdin=json.dumps(good))
    wait_for(lambda: get_pod(cluster, "good", "sb-restricted")["status"].get("phase") == "Running")
    # a Deployment is admitted with a warning; its pods are what enforce refuses
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                           {"name": "web", "image": "nginx"}]}}}}
    r = cluster.kubectl("apply", "-n", "sb-restricted", "-f", "-", stdin=json.dumps(deploy))
    assert 'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in r.stderr
    wait_for(lambda: cluster.kubectl("get", "rs", "-n", "sb-restricted", "-l", "app=web", "-o", "name").stdout)
    time.sleep(2)
    assert cluster.kubectl("get", "pods", "-n", "sb-restricted", "-l", "app=web", "-o", "name").stdout == ""
    # a bad level is refused on the namespace
    r = cluster.kubectl("label", "namespace", "sb-restricted", f"{L}warn=strict", check=False)
    assert r.returncode != 0 and ('metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "strict": '
                                  "must be one of privileged, baseline, restricted") in r.stderr


def test_psa_warn_and_a_tightened_namespace(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "sb-warn")
    cluster.kubectl("label", "namespace", "sb-warn", f"{L}warn=baseline")
    r = cluster.kubectl("apply", "-n", "sb-warn", "-f", "-", stdin=json.dumps(PRIVILEGED))
    assert ('Warning: would violate PodSecurity "baseline:latest": privileged (container "c" must not set '
            'securityContext.privileged=true)') in r.stderr
    r = cluster.kubectl("label", "namespace", "sb-warn", f"{L}enforce=baseline")
    assert ('Warning: existing pods in namespace "sb-warn" violate the new PodSecurity enforce level '
            '"baseline:latest"') in r.stderr
    assert "Warning: priv: privileged" in r.stderr
