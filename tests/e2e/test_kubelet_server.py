"""The kubelet's own HTTPS server on <node IP>:10250, and the API server reaching it.

A kubelet answers only clients with a certificate from the cluster CA that
may use it (the API server's `apiserver-kubelet-client` identity, cluster
admins); the API server passes `kubectl logs/exec` on to the pod's kubelet
and says clearly when it cannot (no node, node unreachable).
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kinns.testing import ClusterHandle, kubectl_binary, wait_for

from .helpers import apply, kexec, pod

TICKER = {"name": "c", "image": "busybox",
          "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]}


@pytest.fixture(scope="module")
def ticker(cluster: ClusterHandle) -> dict[str, Any]:
    """A running pod that prints a line every 0.3 s, and where it runs."""
    apply(cluster, pod("ticker", TICKER, terminationGracePeriodSeconds=1))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=90s", timeout=120)
    p = json.loads(cluster.kubectl("get", "pod", "ticker", "-o", "json").stdout)
    node = p["spec"]["nodeName"]
    ip = cluster.kubectl("get", "node", node, "-o", "jsonpath={.status.addresses[?(@.type=='InternalIP')].address}"
                         ).stdout
    port = cluster.kubectl("get", "node", node, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"
                           ).stdout
    return {"node": node, "ip": ip, "port": int(port)}


def curl(cluster: ClusterHandle, where: str | None, url: str, identity: str | None) -> tuple[int, str]:
    """(HTTP code, body) of a GET with the cluster CA and, if named, a client
    certificate from the cluster pki; from inside node `where`, or the host."""
    pki = cluster.state_dir / "pki"
    args = ["curl", "-s", "--max-time", "10", "--cacert", str(pki / "ca.crt"), "-w", "\n%{http_code}"]
    if identity:
        args += ["--cert", str(pki / f"{identity}.crt"), "--key", str(pki / f"{identity}.key")]
    args.append(url)
    if where is None:
        r = subprocess.run(args, text=True, capture_output=True, timeout=30)
        out = r.stdout
    else:
        out = kexec(cluster, f"node/{where}", *args).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_node_publishes_kubelet_port(ticker: dict[str, Any]) -> None:
    assert ticker["port"] == 10250


def test_kubelet_refuses_clients_without_certificate(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    code, body = curl(cluster, f"{cluster.name}-worker", f"https://{ticker['ip']}:10250/pods", None)
    assert (code, body) == (401, "Unauthorized")


def test_kubelet_forbids_other_identities(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    code, body = curl(cluster, f"{cluster.name}-worker", f"https://{ticker['ip']}:10250/pods", "kube-proxy")
    assert code == 403
    assert body == "Forbidden (user=system:kube-proxy, verb=get, resource=nodes, subresource=proxy)"


@pytest.mark.parametrize("where", ["control-plane", "worker2", None], ids=["cp-node", "other-node", "host"])
def test_kubelet_lists_its_pods_for_the_apiserver(cluster: ClusterHandle, ticker: dict[str, Any],
                                                  where: str | None) -> None:
    """The API server's identity lists the node's pods, from any node or the
    host (the serving certificate names the node's IP, so no -k)."""
    node = f"{cluster.name}-{where}" if where else None
    code, body = curl(cluster, node, f"https://{ticker['ip']}:10250/pods", "apiserver-kubelet-client")
    assert code == 200, body
    doc = json.loads(body)
    assert doc["kind"] == "PodList"
    names = {p["metadata"]["name"] for p in doc["items"]}
    assert "ticker" in names
    assert all(p["spec"]["nodeName"] == ticker["node"] for p in doc["items"] if p["metadata"]["name"] == "ticker")


def test_kubelet_serves_container_logs(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    url = f"https://{ticker['ip']}:10250/containerLogs/default/ticker/c?tailLines=2"
    code, body = curl(cluster, f"{cluster.name}-worker", url, "apiserver-kubelet-client")
    assert code == 200
    assert [line.split()[0] for line in body.splitlines()] == ["tick", "tick"]
    code, body = curl(cluster, None, f"https://{ticker['ip']}:10250/containerLogs/default/ticker/zz",
                      "apiserver-kubelet-client")
    assert (code, body) == (404, 'container "zz" not found in pod "ticker"')


def _kubelet_connections(cluster: ClusterHandle, node: str) -> int:
    out = kexec(cluster, f"node/{node}", "ss", "-Htn", "state", "established", "( sport = :10250 )").stdout
    return len([line for line in out.splitlines() if line.strip()])


def test_logs_follow_streams_through_the_api_server(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    """`kubectl logs -f` shows lines as the container writes them (not when it
    ends: it never does), and leaving lets go of the kubelet's stream."""
    proc = subprocess.Popen([kubectl_binary("1.32"), "--kubeconfig", str(cluster.kubeconfig), "logs", "-f",
                             "ticker", "--tail=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen: list[tuple[float, int]] = []
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                assert line.startswith("tick "), line
                seen.append((time.monotonic(), int(line.split()[1])))
        assert len(seen) == 4, (seen, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        assert [n for _, n in seen] == list(range(seen[0][1], seen[0][1] + 4))
        assert seen[-1][0] - seen[0][0] > 0.5      # they came one by one, as written
        assert _kubelet_connections(cluster, ticker["node"]) >= 1
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: _kubelet_connections(cluster, ticker["node"]) == 0, timeout=10)


def test_logs_options_reach_the_kubelet(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    out = cluster.kubectl("logs", "ticker", "--tail=3", "--timestamps").stdout.splitlines()
    assert len(out) == 3
    assert all(line.split()[0].endswith("Z") and line.split()[1] == "tick" for line in out)
    out = cluster.kubectl("logs", "ticker", "--limit-bytes=5").stdout
    assert out == "tick "
    out = cluster.kubectl("logs", "ticker", "--since=1s").stdout.splitlines()
    assert 1 <= len(out) <= 5


def test_exec_through_the_api_server(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    r = cluster.kubectl("exec", "ticker", "--", "sh", "-c", "echo in $(hostname); exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "in ticker\n")


def test_pod_without_a_node(cluster: ClusterHandle) -> None:
    apply(cluster, pod("nohost", TICKER, schedulerName="nobody"))
    r = cluster.kubectl("exec", "nohost", "--", "true", check=False)
    assert r.returncode == 1
    assert "pod nohost does not have a host assigned" in r.stderr
    r = cluster.kubectl("logs", "nohost", check=False)     # upstream: an empty log
    assert (r.returncode, r.stdout) == (0, "")
    cluster.kubectl("delete", "pod", "nohost", "--grace-period=0", "--force", check=False)


def test_node_unreachable(cluster: ClusterHandle, ticker: dict[str, Any]) -> None:
    """A pod bound to a node whose kubelet does not answer: upstream's 500 naming the dial error."""
    ghost = "ghost-node"
    apply(cluster, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": ghost},
                    "status": {"addresses": [{"type": "InternalIP", "address": ticker["ip"]}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}})
    try:
        apply(cluster, pod("stranded", TICKER, nodeName=ghost))
        dial = f"dial tcp {ticker['ip']}:1: connect: connection refused"
        r = cluster.kubectl("logs", "stranded", check=False)
        assert r.returncode == 1
        assert f'Error from server: Get "https://{ticker["ip"]}:1/containerLogs/default/stranded/c": {dial}' \
            in r.stderr, r.stderr
        r = cluster.kubectl("exec", "stranded", "--", "true", check=False)
        assert r.returncode == 1
        assert f"error dialing backend: {dial}" in r.stderr, r.stderr
    finally:
        cluster.kubectl("delete", "pod", "stranded", "--grace-period=0", "--force", check=False)
        cluster.kubectl("delete", "node", ghost, check=False)


def test_apiserver_kubelet_client_identity(cluster: ClusterHandle) -> None:
    """As kubeadm issues it: CN kube-apiserver-kubelet-client in kubeadm:cluster-admins."""
    r = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                        str(Path(cluster.state_dir) / "pki" / "apiserver-kubelet-client.crt")],
                       text=True, capture_output=True, check=True)
    assert "O = kubeadm:cluster-admins" in r.stdout and "CN = kube-apiserver-kubelet-client" in r.stdout
