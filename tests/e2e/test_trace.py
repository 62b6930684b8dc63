"""`kinns trace`: a real probe, followed through the nodes' kernels, as a user runs it.

One 3-node VXLAN cluster (nftables kube-proxy) carries most cases: a
ClusterIP across nodes and on one node, a pod IP, a NodePort, a
LoadBalancer and an Ingress path from the host, a DNS name and NXDOMAIN, a
Service without endpoints, a pod behind a deny policy, nothing listening.
Two smaller clusters check host-gw with iptables mode, and userspace mode.  Every trace must leave no
trace table behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kinns.net.desired import node_netns
from kinns.testing import ClusterHandle, new_cluster_name, wait_for
from kinns.trace import kernel
from tests.e2e.helpers import NETEXEC, apply, deployment, pod, running

CLIENT = {"name": "c", "image": "busybox", "command": ["sleep", "100000"]}


def _service(name: str, selector: str, kind: str = "ClusterIP", **port: Any) -> dict[str, Any]:
    p = {"name": "http", "port": 80, "targetPort": 8080, **port}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": selector}, "ports": [p]}}


def _setup(c: ClusterHandle, replicas: int) -> None:
    apply(c, deployment("web", replicas, NETEXEC))
    apply(c, pod("client", CLIENT))
    apply(c, _service("web", "web"))
    apply(c, _service("empty", "nothing"))
    running(c, "app=web", replicas)
    wait_for(lambda: "Running" in c.kubectl("get", "pod", "client", "-o", "jsonpath={.status.phase}").stdout)
    # Every node's kube-proxy has the Service before the first trace (a trace of a
    # Service whose rules are still being written would report what it saw: no answer).
    ip = json.loads(c.kubectl("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    wait_for(lambda: c.cli("exec", "--name", c.name, "pod/client", "--", "wget", "-qO-", "-T", "1",
                           f"http://{ip}/hostname", check=False).stdout.startswith("web-"), timeout=60)


def _up(state_root: Path, prefix: str, args: list[str], replicas: int) -> Iterator[ClusterHandle]:
    c = ClusterHandle(new_cluster_name(prefix), state_root, ["--disable", "ingress", *args])
    c.up()
    try:
        _setup(c, replicas)
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def vx(state_root: Path) -> Iterator[ClusterHandle]:
    c = ClusterHandle(new_cluster_name("tr"), state_root)      # with the ingress controller
    c.up()
    try:
        _setup(c, 2)
        apply(c, _service("webnp", "web", "NodePort", nodePort=30080))
        apply(c, _service("weblb", "web", "LoadBalancer"))
        yield c
    finally:
        c.down()


def trace(c: ClusterHandle, src: str, dst: str, *extra: str) -> tuple[int, dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "kinns.cli", "trace", "--name", c.name, src, dst, "-o", "json",
                        *extra], env=c.env(), text=True, capture_output=True, timeout=60)
    assert r.stdout, r.stderr
    out = json.loads(r.stdout)
    nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for n in nodes:      # nothing left behind in any node
        assert not kernel.table_left(node_netns(c.name, n["metadata"]["name"]))
    return r.returncode, out


def steps(out: dict[str, Any]) -> list[str]:
    return [h["step"] for h in out["hops"]]


def _pods(c: ClusterHandle) -> dict[str, dict[str, Any]]:
    items = json.loads(c.kubectl("get", "pods", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in items}


def test_clusterip_across_nodes_over_vxlan(vx: ClusterHandle) -> None:
    pods = _pods(vx)
    client_node = pods["client"]["spec"]["nodeName"]
    other = next(p for n, p in pods.items() if n.startswith("web-") and p["spec"]["nodeName"] != client_node)
    # A pod on another node, by its IP: bridge, route into flannel.1, VXLAN to its node, arrival, SYN-ACK.
    rc, out = trace(vx, "pod/client", f"pod/{other['metadata']['name']}:8080")
    assert rc == 0 and out["ok"], out
    assert out["endpoint"]["pod"] == other["metadata"]["name"]
    encap = [h for h in out["hops"] if h["step"] == "encap" and h["detail"].get("outer_dst")]
    assert encap and encap[0]["node"] == client_node
    assert encap[0]["detail"]["encapsulation"] == "VXLAN"
    arrive = next(h for h in out["hops"] if h["step"] == "arrive")
    assert arrive["node"] == other["spec"]["nodeName"]
    assert any(h["step"] == "reply" and "SYN-ACK" in h["summary"] for h in out["hops"])


def test_clusterip_names_the_rule_and_endpoint(vx: ClusterHandle) -> None:
    rc, out = trace(vx, "pod/client", "svc/web")
    assert rc == 0 and out["ok"], out.get("stopped")
    assert out["resolved"]["address"] and out["dest"] == "svc/web:80"
    svc = next(h for h in out["hops"] if h["step"] == "service")
    assert "default/web" in svc["summary"]
    nat = next(h for h in out["hops"] if h["step"] == "nat")
    assert "dnat to" in nat["detail"]["rule"] and "conntrack" in nat["detail"]
    assert out["endpoint"]["pod"].startswith("web-") and out["endpoint"]["port"] == 8080
    assert steps(out)[:3] == ["veth", "bridge", "service"]


def test_nodeport_and_loadbalancer_from_the_host(vx: ClusterHandle) -> None:
    nodes = json.loads(vx.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ip = nodes[-1]["status"]["addresses"][0]["address"]
    rc, out = trace(vx, "host", f"{ip}:30080")
    assert rc == 0 and out["ok"], out
    assert out["hops"][0]["node"] == nodes[-1]["metadata"]["name"]
    assert "masquerade" in steps(out) and "default/webnp" in next(
        h["summary"] for h in out["hops"] if h["step"] == "service")
    lb = wait_for(lambda: (json.loads(vx.kubectl("get", "svc", "weblb", "-o", "json").stdout)["status"]
                           .get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip"))
    rc, out = trace(vx, "host", f"{lb}:80")
    assert rc == 0 and out["ok"], out
    assert "default/weblb" in next(h["summary"] for h in out["hops"] if h["step"] == "service")
    assert out["endpoint"]["pod"].startswith("web-")


def test_ingress_path_from_the_host(vx: ClusterHandle) -> None:
    apply(vx, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
               "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [
                   {"path": "/hostname", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    lb = wait_for(lambda: (json.loads(vx.kubectl("get", "svc", "-n", "ingress-nginx", "ingress-nginx-controller",
                                                 "-o", "json").stdout)["status"].get("loadBalancer", {})
                           .get("ingress") or [{}])[0].get("ip"), timeout=60)
    # the controller reloads after the write: a user would try again until the path answers
    out = wait_for(lambda: (lambda r: r[1] if r[0] == 0 else None)(trace(vx, "host", f"http://{lb}/hostname")),
                   timeout=60)
    assert out["answer"].startswith("HTTP/1.1 200")
    assert "ingress-nginx/ingress-nginx-controller" in next(h["summary"] for h in out["hops"]
                                                           if h["step"] == "service")
    proxied = next(h for h in out["hops"] if "proxied GET /hostname" in h["summary"])
    assert out["endpoint"]["pod"].startswith("web-") and out["endpoint"]["pod"] in proxied["summary"]


def test_dns_name_and_nxdomain(vx: ClusterHandle) -> None:
    rc, out = trace(vx, "pod/client", "web:80")
    assert rc == 0 and out["ok"], out
    assert out["hops"][0]["step"] == "dns"
    assert out["resolved"]["name"] == "web.default.svc.cluster.local"
    # an absolute name under the cluster domain: CoreDNS answers NXDOMAIN itself, nothing leaves the host
    rc, out = trace(vx, "pod/client", "nope.default.svc.cluster.local.:80")
    assert rc == 1 and not out["ok"]
    assert out["stopped"]["reason"] == "NXDOMAIN"


def test_service_without_endpoints_reports_the_reject_rule(vx: ClusterHandle) -> None:
    rc, out = trace(vx, "pod/client", "svc/empty")
    assert rc == 1 and not out["ok"]
    assert out["stopped"]["reason"] == "no endpoints"
    assert "reject" in out["stopped"]["rule"] and "no-endpoint-services" in out["stopped"]["rule"]


def test_nothing_listening(vx: ClusterHandle) -> None:
    name = next(n for n in _pods(vx) if n.startswith("web-"))
    rc, out = trace(vx, "pod/client", f"pod/{name}:9999")
    assert rc == 1 and out["stopped"]["reason"] == "nothing listening"
    assert "arrive" in steps(out)


def test_deny_policy_is_named(vx: ClusterHandle) -> None:
    apply(vx, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-web"},
               "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}})
    try:
        def dropped() -> dict[str, Any] | None:
            rc, out = trace(vx, "pod/client", "svc/web", "--timeout", "1")
            return out if rc == 1 and out["stopped"] and out["stopped"]["reason"] == "dropped by policy" else None
        out = wait_for(dropped)
        assert out["stopped"]["policy"] == "default/deny-web"
        assert "arrive" not in steps(out)
    finally:
        vx.kubectl("delete", "networkpolicy", "deny-web")


def test_interrupted_trace_leaves_no_rules(vx: ClusterHandle) -> None:
    pods = _pods(vx)
    silent = pods["client"]["status"]["podIP"].rsplit(".", 1)[0] + ".250"     # no pod there: no answer
    p = subprocess.Popen([sys.executable, "-m", "kinns.cli", "trace", "--name", vx.name, "pod/client",
                          f"{silent}:80", "--timeout", "20"], env=vx.env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    nodes = [node_netns(vx.name, n) for n in {p["spec"]["nodeName"] for p in pods.values()}]
    wait_for(lambda: any(kernel.table_left(ns) for ns in nodes))      # armed
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 1 and "interrupted" in err
    assert not any(kernel.table_left(ns) for ns in nodes)


def test_text_output_and_bad_input(vx: ClusterHandle) -> None:
    r = vx.cli("trace", "--name", vx.name, "pod/client", "svc/web", check=False)
    assert r.returncode == 0 and "endpoint: default/web-" in r.stdout and "OK in" in r.stdout
    r = vx.cli("trace", "--name", vx.name, "pod/client", "svc/nope", check=False)
    assert r.returncode == 1 and "nope" in r.stderr
    r = vx.cli("trace", "--name", vx.name, "elsewhere", "svc/web", check=False)
    assert r.returncode == 1 and "pod/NAME, node/NAME or host" in r.stderr


@pytest.fixture(scope="module")
def hostgw_ipt(state_root: Path) -> Iterator[ClusterHandle]:
    yield from _up(state_root, "tg", ["--nodes", "3", "--overlay", "host-gw", "--proxy-mode", "iptables"], 2)


def test_host_gw_and_iptables(hostgw_ipt: ClusterHandle) -> None:
    pods = _pods(hostgw_ipt)
    client_node = pods["client"]["spec"]["nodeName"]
    other = next((p for n, p in pods.items() if n.startswith("web-") and p["spec"]["nodeName"] != client_node),
                 None)
    # kube-proxy may not have written the new endpoints yet: a user would try again too
    out = wait_for(lambda: (lambda r: r[1] if r[0] == 0 else None)(trace(hostgw_ipt, "pod/client", "svc/web")))
    svc = next(h for h in out["hops"] if h["step"] == "service")
    assert svc["detail"]["chain"] == "KUBE-SERVICES" and "default/web" in svc["summary"]
    assert next(h for h in out["hops"] if h["step"] == "nat")["detail"]["chain"].startswith("KUBE-SEP-")
    if other is not None:
        rc, out = trace(hostgw_ipt, "pod/client", f"pod/{other['metadata']['name']}:8080")
        assert rc == 0 and out["ok"], out
        route = next(h for h in out["hops"] if h["step"] == "route" and h["node"] == client_node
                     and h["detail"].get("oif"))
        assert route["detail"]["oif"] == "eth0" and "host-gw" in route["summary"]
        assert not any(h["step"] == "encap" for h in out["hops"])
    rc, out = trace(hostgw_ipt, "pod/client", "svc/empty")
    assert rc == 1 and out["stopped"]["reason"] == "no endpoints"
    assert "has no endpoints" in out["stopped"]["rule"]


@pytest.fixture(scope="module")
def userspace(state_root: Path) -> Iterator[ClusterHandle]:
    yield from _up(state_root, "tu", ["--nodes", "2", "--proxy-mode", "userspace"], 2)


def test_userspace_proxy(userspace: ClusterHandle) -> None:
    out = wait_for(lambda: (lambda r: r[1] if r[0] == 0 else None)(trace(userspace, "pod/client", "svc/web")))
    nat = [h for h in out["hops"] if h["step"] == "nat"]
    assert "REDIRECT" in nat[0]["summary"] and "redirect to" in nat[0]["detail"]["rule"]
    assert "default/web" in next(h["summary"] for h in out["hops"] if h["step"] == "service")
    assert out["endpoint"]["pod"].startswith("web-") and out["endpoint"]["port"] == 8080
