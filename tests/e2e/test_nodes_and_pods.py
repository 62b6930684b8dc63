"""A multi-node cluster as the notes describe it, checked with real tools.

Nodes are namespaces on a fabric bridge; pods get IPs from their node's
/24; traffic between pods on different nodes crosses the VXLAN overlay and
the receiver sees the sender's own pod IP (no NAT).  Checks use kubectl,
`kinns exec` and real packets.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import time
from typing import Any

import pytest

from kinns.testing import ClusterHandle, wait_for

from tests.e2e.helpers import NETEXEC, apply, deployment, kexec, pod, pods, running


def test_nodes_as_kind_names_them(cluster: ClusterHandle) -> None:
    out = cluster.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert out[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    rows = [line.split() for line in out[1:]]
    assert [r[0] for r in rows] == [f"{cluster.name}-control-plane", f"{cluster.name}-worker",
                                    f"{cluster.name}-worker2"]
    assert all(r[1] == "Ready" for r in rows)
    assert rows[0][2] == "control-plane" and rows[1][2] == "<none>"
    ips = [ipaddress.ip_address(r[5]) for r in rows]
    assert len({ipaddress.ip_network(f"{ip}/24", strict=False) for ip in ips}) == 1  # one fabric /24
    # The host reaches node IPs through its one host-access link.
    for ip in ips:
        assert subprocess.run(["ping", "-c1", "-W2", str(ip)], capture_output=True).returncode == 0


def test_each_node_has_its_own_pod_range(cluster: ClusterHandle) -> None:
    cidrs = cluster.kubectl("get", "nodes", "-o", "jsonpath={..podCIDR}").stdout.split()
    nets = [ipaddress.ip_network(c) for c in cidrs]
    assert len(set(nets)) == 3 and all(n.prefixlen == 24 and n.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
                                       for n in nets)
    grep = kexec(cluster, f"node/{cluster.name}-control-plane", "grep", "-h", "-e", "cluster-cidr", "-e",
                 "service-cluster-ip-range", "/etc/kubernetes/manifests/kube-controller-manager.yaml",
                 "/etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    assert "--cluster-cidr=10.244.0.0/16" in grep and "--service-cluster-ip-range=10.96.0.0/12" in grep


def test_pod_ips_come_from_their_nodes_range_and_spread(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("spread", 4, NETEXEC))
    items = running(cluster, "app=spread", 4)
    ranges = {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"])
              for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    for p in items:
        assert ipaddress.ip_address(p["status"]["podIP"]) in ranges[p["spec"]["nodeName"]]
    assert {p["spec"]["nodeName"] for p in items} == {f"{cluster.name}-worker", f"{cluster.name}-worker2"}
    wide = cluster.kubectl("get", "pods", "-l", "app=spread", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:7] == ["IP", "NODE"]


def test_cross_node_pod_to_pod_without_nat(cluster: ClusterHandle) -> None:
    items = running(cluster, "app=spread", 4)
    a = next(p for p in items if p["spec"]["nodeName"].endswith("-worker"))
    b = next(p for p in items if p["spec"]["nodeName"].endswith("-worker2"))
    out = kexec(cluster, f"pod/{a['metadata']['name']}", "busybox", "wget", "-qO-",
                f"http://{b['status']['podIP']}:8080/clientip").stdout
    assert out.rsplit(":", 1)[0] == a["status"]["podIP"]
    hostname = kexec(cluster, f"pod/{b['metadata']['name']}", "busybox", "wget", "-qO-",
                     f"http://{a['status']['podIP']}:8080/hostname").stdout
    assert hostname.strip() == a["metadata"]["name"]


def test_node_to_pod_and_pod_to_node(cluster: ClusterHandle) -> None:
    items = running(cluster, "app=spread", 4)
    target = items[0]
    node_out = kexec(cluster, f"node/{cluster.name}-control-plane", "curl", "-s", "-m", "5",
                     f"http://{target['status']['podIP']}:8080/clientip").stdout
    cp_ip = json.loads(cluster.kubectl("get", "node", f"{cluster.name}-control-plane", "-o", "json").stdout)[
        "status"]["addresses"][0]["address"]
    # From a node, the pod sees either the node's fabric IP or its cni0/flannel address, never a NAT'd one.
    seen = node_out.rsplit(":", 1)[0]
    assert seen == cp_ip or seen.startswith("10.244.")
    ping = kexec(cluster, f"pod/{target['metadata']['name']}", "busybox", "ping", "-c1", "-W2", cp_ip)
    assert "1 packets received" in ping.stdout


def test_containers_of_a_pod_share_localhost(cluster: ClusterHandle) -> None:
    apply(cluster, pod("duo", {"name": "web", "image": "nginx"},
                       {"name": "side", "image": "busybox",
                        "command": ["sh", "-c", "while true; do wget -qO- http://localhost:80/; sleep 0.5; done"]}))
    wait_for(lambda: "duo" in cluster.kubectl("logs", "duo", "-c", "side", check=False).stdout)
    line = cluster.kubectl("logs", "duo", "-c", "side", "--tail=1").stdout.split()
    assert line[0] == "duo"


def test_pod_files_hostname_and_resolv_conf(cluster: ClusterHandle) -> None:
    items = running(cluster, "app=spread", 4)
    name = items[0]["metadata"]["name"]
    assert kexec(cluster, f"pod/{name}", "hostname").stdout.strip() == name
    resolv = kexec(cluster, f"pod/{name}", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    node_resolv = kexec(cluster, f"node/{cluster.name}-worker", "cat", "/etc/resolv.conf").stdout
    assert "10.96.0.10" not in node_resolv  # the node resolves elsewhere, as the notes say


def test_service_environment_variables(cluster: ClusterHandle) -> None:
    apply(cluster, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "envsvc"},
                    "spec": {"selector": {"app": "none"}, "ports": [{"port": 8080}]}})
    ip = cluster.kubectl("get", "svc", "envsvc", "-o", "jsonpath={.spec.clusterIP}").stdout
    apply(cluster, pod("envpod", {"name": "c", "image": "busybox", "command": ["sh", "-c", "env; sleep 3600"]}))
    wait_for(lambda: "ENVSVC_SERVICE_HOST" in cluster.kubectl("logs", "envpod", check=False).stdout)
    env = cluster.kubectl("logs", "envpod").stdout
    assert f"ENVSVC_SERVICE_HOST={ip}" in env and "ENVSVC_SERVICE_PORT=8080" in env
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in env


def test_recreated_pod_gets_a_new_ip(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("churn", 1, {"name": "web", "image": "nginx"}))
    first = running(cluster, "app=churn", 1)[0]
    cluster.kubectl("delete", "pod", first["metadata"]["name"], "--wait=true", timeout=60)

    def replaced() -> dict[str, Any] | None:
        items = [p for p in running(cluster, "app=churn", 1) if p["metadata"]["uid"] != first["metadata"]["uid"]]
        return items[0] if items else None
    second = wait_for(replaced)
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert second["status"]["podIP"] != first["status"]["podIP"]


def test_crash_loop_exit_codes_and_logs(cluster: ClusterHandle) -> None:
    apply(cluster, pod("crash", {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo bye; exit 3"]}))

    def looping() -> dict[str, Any] | None:
        st = pods(cluster)
        p = next((x for x in st if x["metadata"]["name"] == "crash"), None)
        cs = (p or {}).get("status", {}).get("containerStatuses") or [{}]
        return cs[0] if cs[0].get("restartCount", 0) >= 1 and "waiting" in cs[0].get("state", {}) else None
    cs = wait_for(looping)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    row = cluster.kubectl("get", "pod", "crash").stdout.splitlines()[1].split()
    assert row[2] == "CrashLoopBackOff"
    assert cluster.kubectl("logs", "crash", "--previous").stdout == "bye\n"


def test_completed_pod_and_restart_never(cluster: ClusterHandle) -> None:
    apply(cluster, pod("once", {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo done"]},
                       restartPolicy="Never"))
    wait_for(lambda: cluster.kubectl("get", "pod", "once", "-o", "jsonpath={.status.phase}").stdout == "Succeeded")
    assert cluster.kubectl("get", "pod", "once").stdout.splitlines()[1].split()[2] == "Completed"


def test_language_images_have_their_commands(cluster: ClusterHandle) -> None:
    """A python image runs `python` (and has `pip`) as a user of the image expects;
    a node image runs `node` when the host has one, else it is refused with what
    to install, rather than failing with "executable file not found"."""
    apply(cluster, pod("py", {"name": "c", "image": "python:3.12-slim",
                              "command": ["sh", "-c", "python -c 'print(6*7)' && command -v pip"]},
                       restartPolicy="Never"))
    apply(cluster, pod("js", {"name": "c", "image": "node:22", "command": ["node", "-e", "console.log(6*7)"]},
                       restartPolicy="Never"))
    wait_for(lambda: cluster.kubectl("get", "pod", "py", "-o", "jsonpath={.status.phase}").stdout == "Succeeded",
             timeout=60)
    assert cluster.kubectl("logs", "py").stdout.split() == ["42", "/usr/local/bin/pip"]
    if shutil.which("node", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"):
        wait_for(lambda: cluster.kubectl("get", "pod", "js", "-o", "jsonpath={.status.phase}").stdout == "Succeeded",
                 timeout=60)
        assert cluster.kubectl("logs", "js").stdout.strip() == "42"
    else:
        def waiting() -> dict[str, Any]:
            st = json.loads(cluster.kubectl("get", "pod", "js", "-o", "json").stdout)["status"]
            return ((st.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}
        state = wait_for(lambda: waiting() or None, timeout=60)
        assert state["reason"] == "ErrImagePull" and "apt install nodejs" in state["message"]
    cluster.kubectl("delete", "pod", "py", "js", "--now")


def test_bad_pods_get_clear_reasons(cluster: ClusterHandle) -> None:
    apply(cluster, pod("noimg", {"name": "c", "image": "example.com/mystery:1.0"}))
    apply(cluster, pod("nocmd", {"name": "c", "image": "busybox", "command": ["/no/such/binary"]}))
    apply(cluster, pod("picky", {"name": "c", "image": "nginx"}, nodeSelector={"disk": "ssd"}))

    def state(name: str) -> dict[str, Any]:
        p = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)
        return (p["status"].get("containerStatuses") or [{}])[0].get("state", {})

    wait_for(lambda: "waiting" in state("noimg"))
    assert state("noimg")["waiting"]["reason"] == "ErrImagePull"
    assert "no built-in behaviour for image" in state("noimg")["waiting"]["message"]
    wait_for(lambda: cluster.kubectl("get", "pod", "nocmd", "-o",
                                     "jsonpath={.status.containerStatuses[0].restartCount}").stdout not in ("", "0"))
    term = json.loads(cluster.kubectl("get", "pod", "nocmd", "-o", "json").stdout)["status"][
        "containerStatuses"][0]["lastState"]["terminated"]
    assert term["exitCode"] == 128 and term["reason"] == "StartError"
    wait_for(lambda: "FailedScheduling" in cluster.kubectl("describe", "pod", "picky").stdout)
    out = cluster.kubectl("describe", "pod", "picky").stdout
    assert "didn't match Pod's node affinity/selector" in out
    assert cluster.kubectl("get", "pod", "picky", "-o", "jsonpath={.status.phase}").stdout == "Pending"


def _delete_seconds(cluster: ClusterHandle, name: str, script: str, grace: int) -> float:
    apply(cluster, pod(name, {"name": "c", "image": "busybox", "command": ["sh", "-c", script]},
                       terminationGracePeriodSeconds=grace))
    wait_for(lambda: cluster.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout == "Running")
    time.sleep(0.5)  # let the shell install its trap
    started = time.time()
    cluster.kubectl("delete", "pod", name, "--wait=true", timeout=60)
    return time.time() - started


def test_graceful_termination_sigterm_then_sigkill(cluster: ClusterHandle) -> None:
    # A container that exits on SIGTERM goes at once, well within its grace period ...
    polite = _delete_seconds(cluster, "polite", "trap 'exit 0' TERM; while true; do sleep 0.2; done", 10)
    assert polite < 5
    # ... one that ignores SIGTERM is killed when the grace period ends.
    stubborn = _delete_seconds(cluster, "stubborn", "trap '' TERM; while true; do sleep 0.2; done", 2)
    assert 2 <= stubborn < 8


def test_readiness_probe_gates_ready(cluster: ClusterHandle) -> None:
    c = {"name": "c", "image": "busybox",
         "command": ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 3600"],
         "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}}
    apply(cluster, pod("probed", c))
    wait_for(lambda: cluster.kubectl("get", "pod", "probed", "-o", "jsonpath={.status.phase}").stdout == "Running")
    early = cluster.kubectl("get", "pod", "probed", "-o", "jsonpath={.status.containerStatuses[0].ready}").stdout
    assert early == "false"
    wait_for(lambda: cluster.kubectl("get", "pod", "probed", "-o",
                                     "jsonpath={.status.containerStatuses[0].ready}").stdout == "true", timeout=20)


def test_rollout_status_completes(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("roll", 3, {"name": "web", "image": "nginx:1.25"}))
    cluster.kubectl("rollout", "status", "deploy/roll", "--timeout=60s", timeout=70)
    cluster.kubectl("set", "image", "deploy/roll", "web=nginx:1.26")
    out = cluster.kubectl("rollout", "status", "deploy/roll", "--timeout=90s", timeout=100).stdout
    assert 'deployment "roll" successfully rolled out' in out
    images = {c["image"] for p in running(cluster, "app=roll", 3) for c in p["spec"]["containers"]}
    assert images == {"nginx:1.26"}


@pytest.mark.parametrize("kind", ["node", "pod"])
def test_exec_into_unknown_target_is_clear(cluster: ClusterHandle, kind: str) -> None:
    r = kexec(cluster, f"{kind}/nope", "true", check=False)
    assert r.returncode == 1 and "nope" in r.stderr and "not found" in r.stderr


def test_daemonset_runs_one_pod_per_node(cluster: ClusterHandle) -> None:
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "everywhere"},
          "spec": {"selector": {"matchLabels": {"app": "everywhere"}},
                   "template": {"metadata": {"labels": {"app": "everywhere"}},
                                "spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane",
                                                          "operator": "Exists", "effect": "NoSchedule"}],
                                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}
    apply(cluster, ds)
    items = running(cluster, "app=everywhere", 3)
    assert sorted(p["spec"]["nodeName"] for p in items) == [
        f"{cluster.name}-control-plane", f"{cluster.name}-worker", f"{cluster.name}-worker2"]
    wait_for(lambda: cluster.kubectl("get", "ds", "everywhere").stdout.splitlines()[1].split()[1:6]
             == ["3", "3", "3", "3", "3"])


def test_liveness_probe_failure_restarts_the_container(cluster: ClusterHandle) -> None:
    c = {"name": "c", "image": "busybox", "command": ["sleep", "3600"],
         "livenessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2},
         }
    apply(cluster, pod("unlively", c, terminationGracePeriodSeconds=1))
    wait_for(lambda: cluster.kubectl("get", "pod", "unlively", "-o",
                                     "jsonpath={.status.containerStatuses[0].restartCount}").stdout
             not in ("", "0"), timeout=30)


def test_logs_follow_streams_new_lines(cluster: ClusterHandle) -> None:
    apply(cluster, pod("ticker", {"name": "c", "image": "busybox",
                                  "command": ["sh", "-c", "i=0; while [ $i -lt 5 ]; do echo tick $i; i=$((i+1)); "
                                              "sleep 0.4; done"]}, restartPolicy="Never"))
    wait_for(lambda: cluster.kubectl("get", "pod", "ticker", "-o", "jsonpath={.status.phase}").stdout
             in ("Running", "Succeeded"))
    out = cluster.kubectl("logs", "-f", "ticker", timeout=30).stdout
    assert out.splitlines() == [f"tick {i}" for i in range(5)]


def test_two_containers_on_one_port_clash(cluster: ClusterHandle) -> None:
    apply(cluster, pod("clash", {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                       {"name": "b", "image": "nginx", "ports": [{"containerPort": 80}]}))

    def one_crashing() -> bool:
        p = json.loads(cluster.kubectl("get", "pod", "clash", "-o", "json").stdout)
        cs = p["status"].get("containerStatuses") or []
        return any(c.get("restartCount", 0) >= 1 or "terminated" in c.get("lastState", {}) for c in cs) and \
            any(c.get("ready") for c in cs)
    wait_for(one_crashing, timeout=30)
    logs = cluster.kubectl("logs", "clash", "-c", "b", "--previous", check=False).stdout + \
        cluster.kubectl("logs", "clash", "-c", "a", "--previous", check=False).stdout
    assert "in use" in logs.lower()


def test_endpoints_follow_pods(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("backend", 2, NETEXEC))
    apply(cluster, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
                    "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]}})

    def endpoint_ips() -> list[str]:
        ep = json.loads(cluster.kubectl("get", "endpoints", "backend", "-o", "json", check=False).stdout or "{}")
        return sorted(a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", []))

    def pod_ips() -> list[str]:
        return sorted(p["status"]["podIP"] for p in running(cluster, "app=backend", len(pods(cluster, "app=backend"))))

    wait_for(lambda: len(endpoint_ips()) == 2 and endpoint_ips() == pod_ips())
    out = cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=backend").stdout.splitlines()
    assert out[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert out[1].split()[1:3] == ["IPv4", "8080"]
    cluster.kubectl("scale", "deploy", "backend", "--replicas=3")
    wait_for(lambda: len(endpoint_ips()) == 3 and endpoint_ips() == pod_ips())
    victim = pods(cluster, "app=backend")[0]
    cluster.kubectl("delete", "pod", victim["metadata"]["name"], "--wait=true", timeout=60)
    wait_for(lambda: victim["status"]["podIP"] not in endpoint_ips() and len(endpoint_ips()) == 3)
    cluster.kubectl("delete", "svc", "backend")
    wait_for(lambda: cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=backend",
                                     "-o", "name").stdout == "")


def test_volumes_emptydir_shared_and_configmap(cluster: ClusterHandle) -> None:
    apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "greeting"},
                    "data": {"text": "hello-from-configmap"}})
    apply(cluster, pod(
        "vols",
        {"name": "writer", "image": "busybox", "command": ["sh", "-c", "echo from-writer > /data/msg; sleep 3600"],
         "volumeMounts": [{"name": "shared", "mountPath": "/data"}]},
        {"name": "reader", "image": "busybox",
         "command": ["sh", "-c", "while [ ! -f /shared/msg ]; do sleep 0.1; done; cat /shared/msg /etc/cfg/text; "
                                 "echo; touch /etc/cfg/x 2>&1 || echo read-only; sleep 3600"],
         "volumeMounts": [{"name": "shared", "mountPath": "/shared"},
                          {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}]},
        volumes=[{"name": "shared", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "greeting"}}]))
    wait_for(lambda: "read-only" in cluster.kubectl("logs", "vols", "-c", "reader", check=False).stdout)
    out = cluster.kubectl("logs", "vols", "-c", "reader").stdout
    assert out.splitlines()[:2] == ["from-writer", "hello-from-configmap"]


def test_statefulset_stable_names_and_unbound_claims(cluster: ClusterHandle) -> None:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ordered"},
           "spec": {"serviceName": "ordered", "replicas": 3, "selector": {"matchLabels": {"app": "ordered"}},
                    "template": {"metadata": {"labels": {"app": "ordered"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    apply(cluster, sts)
    items = running(cluster, "app=ordered", 3)
    assert sorted(p["metadata"]["name"] for p in items) == ["ordered-0", "ordered-1", "ordered-2"]
    assert all(p["spec"]["hostname"] == p["metadata"]["name"] and p["spec"]["subdomain"] == "ordered"
               for p in items)
    assert kexec(cluster, "pod/ordered-1", "hostname").stdout.strip() == "ordered-1"
    cluster.kubectl("scale", "sts", "ordered", "--replicas=1")
    wait_for(lambda: [p["metadata"]["name"] for p in pods(cluster, "app=ordered")
                      if not p["metadata"].get("deletionTimestamp")] == ["ordered-0"], timeout=60)
    # A pod whose claim is not bound waits, with the scheduler's reason.
    apply(cluster, pod("claimant", {"name": "c", "image": "nginx"},
                       volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "nowhere"}}]))
    wait_for(lambda: "FailedScheduling" in cluster.kubectl("describe", "pod", "claimant").stdout)
    assert 'persistentvolumeclaim "nowhere" not found' in cluster.kubectl("describe", "pod", "claimant").stdout
