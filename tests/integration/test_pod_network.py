"""Pods on three nodes, in both overlays: every pod reaches every pod and
node over real bridges, veths and VXLAN, and the receiver sees the sender's
own IP (no NAT).  Also IPAM persistence and the flannel-style entries a user
sees with `ip route` / `bridge fdb` inside a node.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kinns.net import cleanup, desired, fabric, netns, overlay, pod_network, probe
from kinns.net.desired import NodeNet
from kinns.net.ipam import HostLocalStore
from kinns.net.pod_network import CniError

from .test_net_fabric import free_subnet, sh


@dataclass
class Pod:
    name: str
    netns: str
    node: NodeNet
    ip: str
    result: dict


@dataclass
class Net:
    cluster: str
    mode: str
    nodes: list[NodeNet]
    pods: list[Pod]
    state_dir: Path

    def add(self, node: NodeNet, key: str) -> Pod:
        ns = desired.pod_netns(self.cluster, key)
        netns.create(ns)
        r = pod_network.add_pod(node, ns, f"cid-{key}", state_dir=self.state_dir, mode=self.mode)
        return Pod(key, ns, node, r["ips"][0]["address"].split("/")[0], r)


@pytest.fixture(scope="module", params=["vxlan", "host-gw"])
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    mode = request.param
    cluster = f"pn{os.getpid() % 10000}{mode[0]}"
    state = tmp_path_factory.mktemp(f"state-{mode}")
    try:
        nodes = fabric.Fabric.create(cluster, free_subnet(205), 3)
        overlay.setup_cluster(nodes, mode)
        n = Net(cluster, mode, nodes, [], state)
        # two pods on the first node, one on each of the others
        n.pods = [n.add(nodes[0], "a0"), n.add(nodes[0], "a1"), n.add(nodes[1], "b0"), n.add(nodes[2], "c0")]
        yield n
    finally:
        cleanup.teardown(cluster)
        assert cleanup.leftovers(cluster) == []


def pairs(net: Net) -> list[tuple[Pod, Pod]]:
    return [(a, b) for a in net.pods for b in net.pods if a is not b]


def test_pods_get_ips_from_their_node_range(net: Net) -> None:
    for p in net.pods:
        assert ipaddress.ip_address(p.ip) in ipaddress.ip_network(p.node.pod_cidr)
        assert p.result["ips"][0]["gateway"] == p.node.pod_gateway
    assert len({p.ip for p in net.pods}) == len(net.pods)
    a0 = sh(f"ip netns exec {net.pods[0].netns} ip -o addr show dev eth0").stdout
    assert f"{net.pods[0].ip}/24" in a0
    mtu = 1450 if net.mode == "vxlan" else 1500
    assert f"mtu {mtu}" in sh(f"ip netns exec {net.pods[0].netns} ip link show dev eth0").stdout
    route = sh(f"ip netns exec {net.pods[0].netns} ip route show default").stdout
    assert f"default via {net.nodes[0].pod_gateway} dev eth0" in route


def test_tcp_every_pod_to_every_pod_sees_sender_ip(net: Net) -> None:
    for a, b in pairs(net):
        with probe.EchoServer(b.netns, "tcp") as srv:
            seen, count = probe.ask(a.netns, "tcp", b.ip, srv.port, payload=b"x" * 200_000).split()
        assert seen == a.ip, f"{a.name}->{b.name} seen as {seen}"
        assert int(count) == 200_001            # a large transfer: the MTU is right


def test_tcp_with_busybox_nc_through_ip_netns_exec(net: Net) -> None:
    a, c = net.pods[0], net.pods[3]
    with probe.EchoServer(c.netns, "tcp") as srv:
        r = sh(f"echo hi | ip netns exec {a.netns} busybox nc -w 3 {c.ip} {srv.port}")
    assert r.stdout.split()[0] == a.ip, r.stdout + r.stderr


def test_udp_cross_node_sees_sender_ip(net: Net) -> None:
    for a, b in pairs(net):
        with probe.EchoServer(b.netns, "udp") as srv:
            assert probe.ask(a.netns, "udp", b.ip, srv.port).split()[0] == a.ip


def test_icmp_cross_node_sees_sender_ip(net: Net) -> None:
    a, b = net.pods[0], net.pods[2]
    watch = probe.IcmpWatch(b.netns)
    try:
        r = sh(f"ip netns exec {a.netns} busybox ping -c1 -W2 {b.ip}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert a.ip in set(watch.sources(0.5))
    finally:
        watch.close()


def test_pod_to_node_and_node_to_pod(net: Net) -> None:
    # pod -> every node (own and remote), the node sees the pod IP
    a = net.pods[0]
    for n in net.nodes:
        with probe.EchoServer(n.netns, "tcp") as srv:
            assert probe.ask(a.netns, "tcp", n.ip, srv.port).split()[0] == a.ip
    # node -> pod on another node; the pod sees one of that node's own addresses
    src = net.nodes[1]
    with probe.EchoServer(a.netns, "tcp") as srv:
        seen = probe.ask(src.netns, "tcp", a.ip, srv.port).split()[0]
    assert seen in {src.ip, src.vtep_ip, src.pod_gateway}
    assert sh(f"ip netns exec {src.netns} busybox ping -c1 -W2 {a.ip}").returncode == 0


def test_flannel_style_entries_in_a_node(net: Net) -> None:
    me, peers = net.nodes[0], net.nodes[1:]
    routes = sh(f"ip netns exec {me.netns} ip route").stdout
    link = sh(f"ip netns exec {me.netns} ip -d link show").stdout
    if net.mode == "vxlan":
        fdb = sh(f"ip netns exec {me.netns} bridge fdb show dev flannel.1").stdout
        neigh = sh(f"ip netns exec {me.netns} ip neigh show dev flannel.1").stdout
        assert "vxlan id 1 local " + me.ip in link and "dstport 8472 nolearning" in link
        assert f"inet {me.vtep_ip}/32" in sh(f"ip netns exec {me.netns} ip addr show flannel.1").stdout
        for p in peers:
            assert f"{p.pod_cidr} via {p.vtep_ip} dev flannel.1" in routes and "onlink" in routes
            assert f"{p.vtep_mac} dst {p.ip} self permanent" in fdb
            assert f"{p.vtep_ip} lladdr {p.vtep_mac} PERMANENT" in neigh
    else:
        assert "flannel.1" not in link
        for p in peers:
            assert f"{p.pod_cidr} via {p.ip} dev eth0" in routes
    assert f"{me.pod_cidr} dev cni0" in routes
    bridge_links = sh(f"ip netns exec {me.netns} bridge link").stdout
    assert bridge_links.count("master cni0") == 2         # two pods on this node


def test_sync_routes_follows_peers(net: Net) -> None:
    me, gone = net.nodes[0], net.nodes[2]
    overlay.sync_routes(me, net.nodes[:2], net.mode)
    routes = sh(f"ip netns exec {me.netns} ip route").stdout
    assert gone.pod_cidr not in routes and net.nodes[1].pod_cidr in routes
    if net.mode == "vxlan":
        assert gone.vtep_mac not in sh(f"ip netns exec {me.netns} bridge fdb show dev flannel.1").stdout
        assert gone.vtep_ip not in sh(f"ip netns exec {me.netns} ip neigh show dev flannel.1").stdout
    overlay.sync_routes(me, net.nodes, net.mode)
    with probe.EchoServer(net.pods[3].netns, "udp") as srv:
        assert probe.ask(net.pods[0].netns, "udp", net.pods[3].ip, srv.port).split()[0] == net.pods[0].ip


def test_ipam_is_persisted_in_host_local_format(net: Net) -> None:
    node = net.nodes[0]
    cfg = pod_network.node_config(node, net.state_dir, net.mode)
    d = Path(cfg.data_dir) / cfg.network
    for p in net.pods[:2]:
        assert (d / p.ip).read_bytes() == f"cid-{p.name}\r\neth0".encode()
    assert (d / "last_reserved_ip.0").read_text() in {p.ip for p in net.pods[:2]}
    assert (d / "lock").exists()


def test_no_duplicate_after_restart(net: Net) -> None:
    """A fresh process (a restarted daemon) allocates around what is taken."""
    node = net.nodes[0]
    ns = desired.pod_netns(net.cluster, "r0")
    script = textwrap.dedent(f"""
        from kinns.net import desired, netns, pod_network
        node = desired.NodeNet(**{node.__dict__!r})
        netns.create({ns!r})
        r = pod_network.add_pod(node, {ns!r}, "cid-r0", state_dir={str(net.state_dir)!r}, mode={net.mode!r})
        print(r["ips"][0]["address"])
    """)
    pod_network.forget(desired.ns_prefix(net.cluster))
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ip = out.stdout.strip().split("/")[0]
    assert ip not in {p.ip for p in net.pods}
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node.pod_cidr)
    pod_network.del_pod(node, ns, "cid-r0", state_dir=net.state_dir, mode=net.mode)
    netns.delete(ns)


def test_add_twice_fails_and_delete_releases(net: Net) -> None:
    node = net.nodes[1]
    p = net.add(node, "d0")
    with pytest.raises(CniError) as e:
        pod_network.add_pod(node, p.netns, "cid-d0", state_dir=net.state_dir, mode=net.mode)
    assert e.value.code >= 100
    store = HostLocalStore(pod_network.node_config(node, net.state_dir).data_dir, "kinns")
    assert store.find("cid-d0", "eth0") == [p.ip]
    veth = desired.veth_name("cid-d0", "eth0")
    assert veth in sh(f"ip netns exec {node.netns} ip -br link").stdout
    pod_network.del_pod(node, p.netns, "cid-d0", state_dir=net.state_dir, mode=net.mode)
    assert store.find("cid-d0", "eth0") == []
    assert veth not in sh(f"ip netns exec {node.netns} ip -br link").stdout
    assert "eth0" not in sh(f"ip netns exec {p.netns} ip -br link").stdout
    pod_network.del_pod(node, p.netns, "cid-d0", state_dir=net.state_dir, mode=net.mode)   # idempotent
    netns.delete(p.netns)


def test_delete_after_pod_namespace_vanished(net: Net) -> None:
    node = net.nodes[2]
    p = net.add(node, "v0")
    netns.delete(p.netns)
    pod_network.del_pod(node, None, "cid-v0", state_dir=net.state_dir, mode=net.mode)
    store = HostLocalStore(pod_network.node_config(node, net.state_dir).data_dir, "kinns")
    assert store.find("cid-v0", "eth0") == []
    assert desired.veth_name("cid-v0", "eth0") not in sh(f"ip netns exec {node.netns} ip -br link").stdout


def test_check_pod(net: Net) -> None:
    p = net.pods[2]
    pod_network.check_pod(p.node, p.netns, "cid-b0", p.result, state_dir=net.state_dir, mode=net.mode)
    with pytest.raises(CniError):
        pod_network.check_pod(p.node, p.netns, "cid-other", p.result, state_dir=net.state_dir, mode=net.mode)


def test_switching_overlay_keeps_pods_connected(net: Net) -> None:
    """Re-running setup with the other mode (a restarted daemon with another
    --overlay) converges: flannel.1 appears or goes, routes are replaced."""
    other = "host-gw" if net.mode == "vxlan" else "vxlan"
    try:
        for mode in (other, net.mode):
            overlay.setup_cluster(net.nodes, mode)
            link = sh(f"ip netns exec {net.nodes[0].netns} ip -br link").stdout
            assert ("flannel.1" in link) == (mode == "vxlan")
            a, c = net.pods[0], net.pods[3]
            with probe.EchoServer(c.netns, "tcp") as srv:
                assert probe.ask(a.netns, "tcp", c.ip, srv.port, payload=b"y" * 100_000).split() == [a.ip, "100001"]
    finally:
        overlay.setup_cluster(net.nodes, net.mode)


# ---- IPAM on its own (files only) --------------------------------------------

def test_ipam_round_robin_skips_gateway_and_wraps(tmp_path: Path) -> None:
    from kinns.net.ipam import IpamError, Range
    store = HostLocalStore(tmp_path, "n")
    rng = Range("10.9.0.0/29")                       # .1 gateway, .2-.6 usable
    got = [str(store.allocate(f"c{i}", "eth0", rng).ip.ip) for i in range(5)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(IpamError) as e:
        store.allocate("c9", "eth0", rng)
    assert e.value.code == 11
    assert store.release("c1", "eth0") == ["10.9.0.3"]
    assert store.release("c1", "eth0") == []
    assert str(store.allocate("c10", "eth0", rng).ip.ip) == "10.9.0.3"    # wraps round to the free one
    with pytest.raises(IpamError):
        store.allocate("c10", "eth0", rng)           # same container + ifname twice
    fresh = HostLocalStore(tmp_path, "n")           # "after a restart"
    assert fresh.find("c10", "eth0") == ["10.9.0.3"]
    assert (tmp_path / "n" / "last_reserved_ip.0").read_text() == "10.9.0.3"


def test_setup_and_teardown_pod_sandbox(net: Net) -> None:
    node = net.nodes[1]
    att = pod_network.setup_pod(node, "uid-s1", state_dir=net.state_dir, mode=net.mode)
    assert att.netns == desired.pod_netns(net.cluster, "uid-s1") and netns.exists(att.netns)
    assert ipaddress.ip_address(att.ip) in ipaddress.ip_network(node.pod_cidr)
    again = pod_network.setup_pod(node, "uid-s1", state_dir=net.state_dir, mode=net.mode)
    assert again.ip == att.ip                                     # a restarted kubelet re-attaches
    with probe.EchoServer(att.netns, "udp") as srv:
        assert probe.ask(net.pods[0].netns, "udp", att.ip, srv.port).split()[0] == net.pods[0].ip
    veth = desired.veth_name("uid-s1", "eth0")
    pod_network.teardown_pod(node, "uid-s1", state_dir=net.state_dir, mode=net.mode)
    pod_network.teardown_pod(node, "uid-s1", state_dir=net.state_dir, mode=net.mode)
    assert not netns.exists(att.netns)
    store = HostLocalStore(pod_network.node_config(node, net.state_dir).data_dir, "kinns")
    assert store.find("uid-s1", "eth0") == []
    for _ in range(100):                  # the kernel frees the namespace asynchronously
        if veth not in sh(f"ip netns exec {node.netns} ip -br link").stdout:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"{veth} still on {node.name}")
