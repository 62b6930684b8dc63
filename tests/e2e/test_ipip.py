"""The flat pod network over IP-in-IP (`--overlay ipip`), checked as a Calico user would.

Every node has `tunl0` (MTU 1480) and a route `<podCIDR> via <node IP> dev
tunl0 onlink` per other node; pods on different nodes talk TCP, UDP and ICMP
without NAT; the fabric carries protocol-4 packets with node addresses
outside and pod addresses inside; Services reach pods across nodes in every
kube-proxy mode.  This kernel has no ipip module, so tunl0 is a TUN device and
a per-node encapsulator process carries the packets: killing it cuts the
node's pods off until the daemon restarts it, and the Node's Events say so.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kinns.net.ipip import dataplane, probe as ipip_probe
from kinns.testing import ClusterHandle, new_cluster_name, wait_for
from tests.e2e.helpers import NETEXEC, apply, kexec, pod, running

PORTS = [{"name": "http", "containerPort": 8080}, {"name": "udp", "containerPort": 8081, "protocol": "UDP"}]


def everywhere(name: str) -> dict[str, Any]:
    """agnhost netexec on every node, control plane included: one pod per node."""
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"tolerations": [{"operator": "Exists"}],
                                           "containers": [{**NETEXEC, "ports": PORTS}]}}}}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


UP_OUTPUT: dict[str, str] = {}      # cluster name -> what `kinns up` printed


def start(state_root: Path, proxy_mode: str, nodes: int) -> ClusterHandle:
    c = ClusterHandle(new_cluster_name("ip"), state_root,
                      ["--overlay", "ipip", "--proxy-mode", proxy_mode, "--nodes", str(nodes), "--disable", "ingress"])
    r = c.up()
    UP_OUTPUT[c.name] = r.stdout + r.stderr
    return c


@pytest.fixture(scope="module")
def ipip(state_root: Path) -> Iterator[ClusterHandle]:
    c = start(state_root, "nftables", 3)
    try:
        apply(c, everywhere("net"))
        apply(c, service("net"))
        running(c, "app=net", 3)
        yield c
    finally:
        c.down()


def nodes(c: ClusterHandle) -> dict[str, tuple[str, str]]:
    """Node name -> (fabric IP, podCIDR)."""
    items = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: (n["status"]["addresses"][0]["address"], n["spec"]["podCIDR"]) for n in items}


def sh(c: ClusterHandle, pod: dict[str, Any], script: str, check: bool = True) -> str:
    return kexec(c, f"pod/{pod['metadata']['name']}", "busybox", "sh", "-c", script, check=check).stdout


def test_up_says_which_ipip_is_in_use(ipip: ClusterHandle) -> None:
    said = " ".join(UP_OUTPUT[ipip.name].split())
    expected = ("the kernel's ipip module" if ipip_probe() == "kernel"
                else f"a user-space encapsulator per node ({dataplane()}; this kernel has no ipip module)")
    assert f"Overlay ipip: tunl0 by {expected}" in said, said


def test_each_node_has_calicos_tunl0_layout(ipip: ClusterHandle) -> None:
    net = nodes(ipip)
    for name, (_, cidr) in net.items():
        routes = kexec(ipip, f"node/{name}", "ip", "route").stdout
        for other, (ip, ocidr) in net.items():
            if other != name:
                assert f"{ocidr} via {ip} dev tunl0 onlink" in routes, routes
        assert f"{cidr} dev cni0" in routes
        link = kexec(ipip, f"node/{name}", "ip", "-d", "link", "show", "tunl0").stdout
        assert "mtu 1480" in link and "UP" in link
        addr = kexec(ipip, f"node/{name}", "ip", "-4", "addr", "show", "tunl0").stdout
        assert f"inet {cidr.split('/')[0]}/32" in addr
        assert "flannel.1" not in kexec(ipip, f"node/{name}", "ip", "link").stdout
    pod = running(ipip, "app=net", 3)[0]
    assert "mtu 1480" in sh(ipip, pod, "ip link show eth0")


def test_every_pod_pair_talks_tcp_udp_icmp_without_nat(ipip: ClusterHandle) -> None:
    items = running(ipip, "app=net", 3)
    assert len({p["spec"]["nodeName"] for p in items}) == 3
    for a, b in itertools.permutations(items, 2):
        src, dst = a["status"]["podIP"], b["status"]["podIP"]
        out = sh(ipip, a, f"wget -qO- http://{dst}:8080/clientip; echo; "
                          f"wget -qO- 'http://localhost:8080/dial?request=clientip&host={dst}&port=8081"
                          f"&protocol=udp&tries=1'; echo; ping -c1 -W2 {dst}")
        tcp, udp, *ping = out.splitlines()
        assert tcp.rsplit(":", 1)[0] == src, out
        assert json.loads(udp)["responses"][0].rsplit(":", 1)[0] == src, out
        assert "1 received" in "\n".join(ping), out


def test_fabric_carries_ip_in_ip_with_node_and_pod_addresses(ipip: ClusterHandle) -> None:
    net = nodes(ipip)
    a, b = [p for p in running(ipip, "app=net", 3) if p["spec"]["nodeName"] != f"{ipip.name}-control-plane"]
    na, nb = net[a["spec"]["nodeName"]][0], net[b["spec"]["nodeName"]][0]
    pa, pb = a["status"]["podIP"], b["status"]["podIP"]
    # protocol 4 between the two nodes, carrying ICMP (byte 9 of the inner header, after a 20-byte outer one)
    capture = subprocess.Popen(["ip", "netns", "exec", f"kinns-{ipip.name}-fabric", "tcpdump", "-nli", "fabric0",
                                "-c", "2", f"ip proto 4 and ip[29] = 1 and host {na} and host {nb}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "listening" in (capture.stderr.readline() if capture.stderr else ""), timeout=10)
        sh(ipip, a, f"ping -c2 -W2 {pb}")
        out, _ = capture.communicate(timeout=10)
    finally:
        capture.kill()
    assert f"IP {na} > {nb}: IP {pa} > {pb}: ICMP echo request" in out, out
    assert f"IP {nb} > {na}: IP {pb} > {pa}: ICMP echo reply" in out, out


def test_service_reaches_pods_on_every_node_without_snat(ipip: ClusterHandle) -> None:
    items = running(ipip, "app=net", 3)
    ip = json.loads(ipip.kubectl("get", "svc", "net", "-o", "json").stdout)["spec"]["clusterIP"]
    client = items[0]
    names = {p["metadata"]["name"] for p in items}
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while seen != names and time.monotonic() < deadline:
        seen |= set(sh(ipip, client, f"for i in $(seq 20); do wget -qO- http://{ip}/hostname; echo; done").split())
    assert seen == names
    # A backend on another node sees the client pod's own address; the client
    # answering itself (hairpin) sees its node's bridge, as kube-proxy masquerades hairpin.
    gateway = client["status"]["podIP"].rsplit(".", 1)[0] + ".1"
    seen_ips = {sh(ipip, client, f"wget -qO- http://{ip}/clientip").rsplit(":", 1)[0] for _ in range(10)}
    assert client["status"]["podIP"] in seen_ips and seen_ips <= {client["status"]["podIP"], gateway}, seen_ips


def test_trace_names_the_ip_in_ip_hop_and_its_outer_addresses(ipip: ClusterHandle) -> None:
    """`kinns trace` across nodes: the kernel's own trace shows the packet leave by
    tunl0, wrapped from one node's fabric address to the other's, and arrive."""
    net = nodes(ipip)
    a, b = [p for p in running(ipip, "app=net", 3) if p["spec"]["nodeName"] != f"{ipip.name}-control-plane"]
    r = ipip.cli("trace", "--name", ipip.name, f"pod/{a['metadata']['name']}", f"pod/{b['metadata']['name']}:8080",
                 "-o", "json")
    got = json.loads(r.stdout)
    assert got["ok"] and got["endpoint"]["ip"] == b["status"]["podIP"]
    encap = [h for h in got["hops"] if h["step"] == "encap"]
    outer_src, outer_dst = net[a["spec"]["nodeName"]][0], net[b["spec"]["nodeName"]][0]
    assert encap and encap[0]["node"] == a["spec"]["nodeName"]
    assert "IP-in-IP" in encap[0]["summary"] and outer_src in encap[0]["summary"] and outer_dst in encap[0]["summary"]
    assert any(h["step"] == "arrive" and h["node"] == b["spec"]["nodeName"] for h in got["hops"])


def test_network_policy_judges_pod_addresses_across_the_tunnel(ipip: ClusterHandle) -> None:
    """A policy admits a cross-node client by its labels: possible only because
    the receiving node sees the client pod's own address out of tunl0."""
    guarded = pod("guarded", {**NETEXEC, "ports": PORTS}, nodeName=f"{ipip.name}-worker2")
    guarded["metadata"]["labels"] = {"app": "guarded"}
    apply(ipip, guarded)
    apply(ipip, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "friends-only"},
                 "spec": {"podSelector": {"matchLabels": {"app": "guarded"}}, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}]}]}})
    client = next(p for p in running(ipip, "app=net", 3) if p["spec"]["nodeName"] == f"{ipip.name}-worker")
    name = client["metadata"]["name"]
    try:
        (target,) = running(ipip, "app=guarded", 1)
        url = f"http://{target['status']['podIP']}:8080/clientip"
        wait_for(lambda: sh(ipip, client, f"timeout 2 wget -qO- {url}", check=False) == "")       # not a friend: dropped
        ipip.kubectl("label", "pod", name, "role=friend")
        seen = wait_for(lambda: sh(ipip, client, f"timeout 2 wget -qO- {url}", check=False))
        assert seen.rsplit(":", 1)[0] == client["status"]["podIP"]
    finally:
        ipip.kubectl("label", "pod", name, "role-", check=False)
        ipip.kubectl("delete", "networkpolicy", "friends-only", "--wait=false", check=False)
        ipip.kubectl("delete", "pod", "guarded", "--wait=false", check=False)


def test_killed_encapsulator_cuts_its_node_off_until_restarted(ipip: ClusterHandle) -> None:
    worker = f"{ipip.name}-worker"
    pidfile = ipip.state_dir / "ipip" / worker / "ipip.pid"
    old = int(pidfile.read_text())
    items = running(ipip, "app=net", 3)
    target = next(p for p in items if p["spec"]["nodeName"] == worker)
    client = next(p for p in items if p["spec"]["nodeName"] != worker)
    ping = [*kexec_argv(ipip, client), "busybox", "ping"]

    def answers() -> bool:
        return subprocess.run([*ping, "-c", "1", "-W", "1", target["status"]["podIP"]], capture_output=True,
                              env=ipip.env()).returncode == 0
    assert wait_for(answers, timeout=20), "no answer across the tunnel before the kill"
    pinger = subprocess.Popen([*ping, "-c", "40", "-i", "0.2", "-W", "1", target["status"]["podIP"]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ipip.env())
    time.sleep(1.5)
    subprocess.run(["kill", "-9", str(old)], check=True)
    out, err = pinger.communicate(timeout=60)
    replies = [int(line.split("seq=")[1].split()[0]) for line in out.splitlines() if "seq=" in line]
    assert len(replies) < 38, out + err                         # not while it was down (restart after 1 s)
    assert wait_for(lambda: (p := pidfile.read_text().strip()) and int(p) != old and p)
    assert wait_for(answers, timeout=20), f"no answer after the restart\n{ipip.daemon_log()}"
    events = ipip.kubectl("describe", "node", worker).stdout
    assert "IPIPTunnelDown" in events and "was killed by signal 9" in events, events
    assert "IPIPTunnelUp" in events, events


def kexec_argv(c: ClusterHandle, pod: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "kinns.cli", "exec", "--name", c.name, f"pod/{pod['metadata']['name']}", "--"]


@pytest.mark.parametrize("mode", ["iptables", "userspace", "ipvs"])
def test_services_across_nodes_in_other_proxy_modes(state_root: Path, mode: str) -> None:
    """Two nodes: a client on the control plane, the only backend on the worker."""
    try:
        c = start(state_root, mode, 2)
    except RuntimeError as exc:     # ClusterHandle.up failed: ipvs needs a kernel module this machine may lack
        if mode == "ipvs" and "ipvs" in str(exc):
            pytest.skip(f"kinns up refuses --proxy-mode ipvs here: {exc}")
        raise
    try:
        apply(c, everywhere("net"))
        backend = {**everywhere("back"), "spec": {**everywhere("back")["spec"]}}
        backend["spec"]["template"]["spec"] = {"containers": [{**NETEXEC, "ports": PORTS}]}   # not on the control plane
        apply(c, backend)
        apply(c, service("back"))
        client = next(p for p in running(c, "app=net", 2) if p["spec"]["nodeName"].endswith("-control-plane"))
        (back,) = running(c, "app=back", 1)
        ip = json.loads(c.kubectl("get", "svc", "back", "-o", "json").stdout)["spec"]["clusterIP"]
        got = wait_for(lambda: sh(c, client, f"timeout 3 wget -qO- http://{ip}/hostname", check=False).strip())
        assert got == back["metadata"]["name"]
        if mode != "userspace":   # the userspace proxy connects from the node itself, as upstream's did
            seen = sh(c, client, f"timeout 3 wget -qO- http://{ip}/clientip").rsplit(":", 1)[0]
            assert seen == client["status"]["podIP"]
    finally:
        c.down()
