"""`kinns ui`'s pure parts and its event stream against the fake API.

View records hold what the diagram draws and nothing else (so status
heartbeats push nothing); the rule cutters keep exactly one Service's part of
a node's ruleset; the server sends a snapshot and then deltas as the watches
report, over real HTTP (aiohttp's test server) from a fake API.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from kinns.client import Client, MockTransport
from kinns.client.fake import FakeApi
from kinns.cluster.config import ClusterConfig
from kinns.ui.model import Diagram, ingress_view, netpol_view, node_view, pod_view, service_view, slice_view
from kinns.ui.rules import iptables_rules, nft_rules
from kinns.ui.server import UiServer, rules_command


def _pod(name: str, node: str = "w1", ip: str = "10.244.1.5", ready: bool = True, **status: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": ip, **status,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pod_view_keeps_what_is_drawn_and_ignores_the_rest() -> None:
    a = pod_view(_pod("web-1"))
    assert a == {"id": "pod/default/web-1", "kind": "pod", "ns": "default", "name": "web-1", "node": "w1",
                 "ip": "10.244.1.5", "hostNetwork": False, "state": "Running", "ready": True}
    noisy = _pod("web-1", startTime="2026-01-01T00:00:00Z")
    noisy["metadata"]["resourceVersion"] = "99"
    d = Diagram()
    assert d.put(a) == {"op": "put", "obj": a}
    assert d.put(pod_view(noisy)) is None          # nothing drawn changed: nothing pushed
    assert d.put(pod_view(_pod("web-1", ready=False)))["obj"]["ready"] is False  # type: ignore[index]
    assert d.remove("pod/default/web-1") == {"op": "del", "id": "pod/default/web-1"}
    assert d.remove("pod/default/web-1") is None


def test_pod_state_says_why_a_pod_waits() -> None:
    crash = _pod("c", containerStatuses=[{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
    assert pod_view(crash)["state"] == "CrashLoopBackOff"
    gone = _pod("g")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_view(gone)["state"] == "Terminating"


def test_node_view_has_the_bridge_gateway_of_its_range() -> None:
    n = node_view({"metadata": {"name": "k-worker", "labels": {}}, "spec": {"podCIDR": "10.244.2.0/24"},
                   "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}],
                              "conditions": [{"type": "Ready", "status": "True"}]}})
    assert (n["ip"], n["gateway"], n["bridge"], n["ready"], n["role"]) == \
        ("172.18.0.3", "10.244.2.1", "cni0", True, "worker")


def test_service_and_slice_views() -> None:
    svc = service_view({"metadata": {"name": "web", "namespace": "default"},
                        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.42",
                                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": 31000, "protocol": "TCP"}]},
                        "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.240"}]}}})
    assert svc["loadBalancer"] == ["172.18.0.240"] and svc["ports"][0]["nodePort"] == 31000
    eps = slice_view({"metadata": {"name": "web-abc", "namespace": "default",
                                   "labels": {"kubernetes.io/service-name": "web"}},
                      "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": False},
                                     "nodeName": "w1", "targetRef": {"kind": "Pod", "name": "web-1"}}]})
    assert eps["service"] == "default/web"
    assert eps["endpoints"] == [{"ip": "10.244.1.5", "pod": "web-1", "node": "w1", "ready": False}]


def test_netpol_view_prints_its_selector() -> None:
    v = netpol_view({"metadata": {"name": "deny", "namespace": "prod"},
                     "spec": {"podSelector": {"matchLabels": {"app": "db"},
                                              "matchExpressions": [{"key": "tier", "operator": "In",
                                                                    "values": ["a", "b"]}]},
                              "ingress": [{}]}})
    assert v["podSelector"] == "app=db,tier in (a,b)" and v["types"] == ["Ingress"] and v["ingressRules"] == 1


def test_ingress_view_lists_each_path_and_its_backend() -> None:
    v = ingress_view({"metadata": {"name": "paths", "namespace": "default"},
                      "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [
                          {"path": "/hostname", "backend": {"service": {"name": "echo", "port": {"number": 80}}}},
                          {"path": "/", "backend": {"service": {"name": "hello", "port": {"name": "http"}}}}]}}]},
                      "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.200"}]}}})
    assert v["rules"] == [{"host": "*", "path": "/hostname", "backend": "echo:80"},
                          {"host": "*", "path": "/", "backend": "hello:http"}]
    assert (v["class"], v["address"]) == ("nginx", ["172.18.0.200"])


NFT = """table ip kube-proxy {
\tcomment "rules for kube-proxy"
\tset cluster-ips {
\t\ttype ipv4_addr
\t\tcomment "Active ClusterIPs"
\t\telements = { 10.96.0.1, 10.96.0.42,
\t\t\t     10.96.0.142 }
\t}
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.1 . tcp . 443 : goto service-AAAA-default/kubernetes/tcp/https,
\t\t\t     10.96.0.42 . tcp . 80 : goto service-BBBB-default/web/tcp/,
\t\t\t     10.96.0.142 . tcp . 80 : goto service-CCCC-default/web2/tcp/ }
\t}
\tchain services {
\t\tip daddr . meta l4proto . th dport vmap @service-ips
\t}
\tchain service-BBBB-default/web/tcp/ {
\t\tip daddr 10.96.0.42 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-DDDD-default/web/tcp/__10.244.1.5/80 }
\t}
\tchain endpoint-DDDD-default/web/tcp/__10.244.1.5/80 {
\t\tip saddr 10.244.1.5 jump mark-for-masquerade
\t\tmeta l4proto tcp dnat to 10.244.1.5:80
\t}
\tchain service-CCCC-default/web2/tcp/ {
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-EEEE-default/web2/tcp/__10.244.2.5/80 }
\t}
}
"""


def test_nft_rules_keep_only_the_services_chains_and_elements() -> None:
    out = nft_rules(NFT, "default", "web", ["10.96.0.42"])
    assert "chain service-BBBB-default/web/tcp/ {" in out
    assert "meta l4proto tcp dnat to 10.244.1.5:80" in out
    assert "elements = { 10.96.0.42 }" in out                     # the set, only its own address
    assert "10.96.0.42 . tcp . 80 : goto service-BBBB-default/web/tcp/" in out
    assert "web2" not in out and "10.96.0.142" not in out and "kubernetes" not in out
    assert "chain services" not in out
    assert out.startswith("set cluster-ips {")                    # one level of indentation removed


IPT = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAA - [0:0]
:KUBE-SEP-BBBB - [0:0]
:KUBE-SVC-CCCC - [0:0]
:KUBE-SEP-DDDD - [0:0]
-A KUBE-SERVICES -m comment --comment "default/web cluster IP" -m tcp -p tcp -d 10.96.0.42 --dport 80 -j KUBE-SVC-AAAA
-A KUBE-SERVICES -m comment --comment "default/web2 cluster IP" -m tcp -p tcp -d 10.96.0.142 --dport 80 -j KUBE-SVC-CCCC
-A KUBE-SVC-AAAA -m comment --comment "default/web -> 10.244.1.5:80" -j KUBE-SEP-BBBB
-A KUBE-SEP-BBBB -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-BBBB -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:80
-A KUBE-SVC-CCCC -j KUBE-SEP-DDDD
-A KUBE-SEP-DDDD -m tcp -p tcp -j DNAT --to-destination 10.244.2.5:80
COMMIT
"""


def test_iptables_rules_follow_jumps_from_the_services_comments() -> None:
    out = iptables_rules(IPT, "default", "web").splitlines()
    assert out[0] == "*nat"
    assert ":KUBE-SVC-AAAA - [0:0]" in out and ":KUBE-SEP-BBBB - [0:0]" in out
    # The endpoint chain has no comment (large clusters drop them): found through the jump.
    assert "-A KUBE-SEP-BBBB -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:80" in out
    assert not [line for line in out if "CCCC" in line or "DDDD" in line or "web2" in line]


def test_each_proxy_mode_is_listed_with_its_own_tool() -> None:
    assert rules_command("nftables") == ["nft", "list", "table", "ip", "kube-proxy"]
    assert rules_command("iptables") == rules_command("userspace") == ["iptables-save"]


def _node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}]}}


async def _read_event(resp: aiohttp.ClientResponse) -> tuple[str, Any]:
    kind, data = "", b""
    while True:
        line = await asyncio.wait_for(resp.content.readline(), 5)
        if line.startswith(b"event: "):
            kind = line[7:].strip().decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif line == b"\n" and kind:
            return kind, json.loads(data)


def test_event_stream_sends_a_snapshot_then_deltas_from_the_watches() -> None:
    async def run() -> None:
        fake = FakeApi()
        fake.put(_node("w1"))
        fake.put(_pod("web-1"))
        client = Client(MockTransport(fake.handle))
        ui = UiServer(ClusterConfig(name="t", fabric_subnet="172.18.0.0/24"), client)
        await ui.start(sync_timeout=5)
        server = TestServer(ui.app())
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(server.make_url("/api/events")) as resp:
                    kind, snap = await _read_event(resp)
                    assert kind == "snapshot" and snap["meta"]["cluster"] == "t"
                    assert {o["id"] for o in snap["objects"]} == {"node/w1", "pod/default/web-1"}
                    fake.put(_pod("web-2", ip="10.244.1.6"))
                    kind, delta = await _read_event(resp)
                    assert kind == "delta"
                    assert [(d["op"], d["obj"]["id"], d["obj"]["ip"]) for d in delta] == \
                        [("put", "pod/default/web-2", "10.244.1.6")]
                    await client.delete(("v1", "Pod"), "web-1", "default")
                    kind, delta = await _read_event(resp)
                    assert delta == [{"op": "del", "id": "pod/default/web-1"}]
                async with http.get(server.make_url("/api/services/default/nope/rules")) as r404:
                    assert r404.status == 404
                async with http.post(server.make_url("/api/trace"), data=b"not json") as bad:
                    assert bad.status == 400
                async with http.get(server.make_url("/static/app.js")) as js:
                    assert js.status == 200 and "EventSource" in await js.text()
        finally:
            await server.close()
            await ui.stop()
    asyncio.run(run())
