"""The node network: fabric namespace, node namespaces, host access, teardown.

Real namespaces and packets.  Each module uses its own cluster name and a
fabric /24 no host route covers, and checks at teardown that nothing of the
cluster is left (namespaces, mounts, host link).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinns.net import cleanup, desired, fabric, netns, probe
from kinns.net.desired import NodeNet

CLUSTER = f"nf{os.getpid() % 10000}"


def free_subnet(start: int = 200) -> str:
    """A 172.31.x.0/24 that no host route touches (other runs may hold some)."""
    routes = fabric.host_routes()
    for x in range(start, 255):
        cand = f"172.31.{x}.0/24"
        if not desired.overlaps(cand, routes):
            return cand
    raise RuntimeError("no free test subnet")


def sh(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, shell=True, check=False, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[NodeNet]]:
    subnet = free_subnet(200)
    try:
        yield fabric.Fabric.create(CLUSTER, subnet, 3)
    finally:
        cleanup.teardown(CLUSTER)
        assert cleanup.leftovers(CLUSTER) == []


# ---- pure planning (no root needed) ------------------------------------------

def test_plan_follows_address_plan() -> None:
    ns = fabric.Fabric.plan("kinns", "172.18.5.0/24", 3)
    assert [n.name for n in ns] == ["kinns-control-plane", "kinns-worker", "kinns-worker2"]
    assert [n.netns for n in ns] == ["kinns-kinns-control-plane", "kinns-kinns-worker", "kinns-kinns-worker2"]
    assert [n.ip for n in ns] == ["172.18.5.2", "172.18.5.3", "172.18.5.4"]
    assert {n.gateway for n in ns} == {"172.18.5.1"}
    assert [n.pod_cidr for n in ns] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert ns[1].pod_gateway == "10.244.1.1" and ns[1].vtep_ip == "10.244.1.0"
    mac = ns[0].vtep_mac
    assert int(mac[:2], 16) & 0b11 == 0b10      # locally administered unicast
    assert len({n.vtep_mac for n in ns}) == 3
    assert len(desired.host_ifname("a-very-long-cluster-name-indeed")) <= 15


def test_overlap_and_pick_are_pure() -> None:
    routes = ["0.0.0.0/0", "192.0.2.0/24", "172.18.0.0/16"]
    assert desired.overlaps("192.0.2.0/24", routes) == ["192.0.2.0/24"]
    assert desired.overlaps("10.9.0.0/24", routes) == []            # the default route is no overlap
    assert desired.overlaps("172.18.3.0/24", routes) == ["172.18.0.0/16"]
    assert desired.pick_fabric_subnet("x", ["172.18.0.0/17"]).startswith("172.18.")
    assert ipaddress.ip_network(desired.pick_fabric_subnet("x", ["172.18.0.0/17"])).network_address.packed[2] >= 128


def test_vxlan_state_has_flannel_entries() -> None:
    ns = fabric.Fabric.plan("c", "172.18.5.0/24", 3)
    st = desired.node_state(ns[0], ns, "vxlan")
    assert [lk.name for lk in st.links] == ["cni0", "flannel.1"]
    vx = st.links[1]
    assert vx.mtu == 1450 and vx.vxlan is not None and (vx.vxlan.vni, vx.vxlan.port) == (1, 8472)
    assert desired.Route("10.244.1.0/24", gw="10.244.1.0", dev="flannel.1", onlink=True) in st.routes
    assert desired.Neigh("flannel.1", "10.244.2.0", ns[2].vtep_mac) in st.neighs
    assert desired.Fdb("flannel.1", ns[2].vtep_mac, "172.18.5.4") in st.fdbs
    hg = desired.node_state(ns[0], ns, "host-gw")
    assert hg.routes == [desired.Route("10.244.1.0/24", gw="172.18.5.3", dev="eth0"),
                         desired.Route("10.244.2.0/24", gw="172.18.5.4", dev="eth0")]
    assert "flannel.1" in hg.absent_links and hg.links[0].mtu == 1500


# ---- the real thing ------------------------------------------------------------

def test_namespaces_visible_to_ip_netns(nodes: list[NodeNet]) -> None:
    listed = sh("ip netns list").stdout
    for n in nodes:
        assert n.netns in listed
        out = sh(f"ip netns exec {n.netns} ip -br addr show dev eth0").stdout
        assert f"{n.ip}/24" in out
        assert netns.read_sysctl(n.netns, "net/ipv4/ip_forward") == "1"
    assert desired.fabric_netns(CLUSTER) in listed
    bridges = sh(f"ip netns exec {desired.fabric_netns(CLUSTER)} ip -br link show type bridge").stdout
    assert bridges.startswith("fabric0")


def test_host_reaches_every_node(nodes: list[NodeNet]) -> None:
    for n in nodes:
        r = sh(f"busybox ping -c1 -W2 {n.ip}")
        assert r.returncode == 0, r.stdout + r.stderr
        with probe.EchoServer(n.netns, "tcp") as srv:
            seen, _ = probe.ask(None, "tcp", n.ip, srv.port).split()
        assert seen == n.gateway            # the host's end of the fabric, no NAT


def test_nodes_reach_each_other(nodes: list[NodeNet]) -> None:
    a, b = nodes[0], nodes[2]
    with probe.EchoServer(b.netns, "udp") as srv:
        assert probe.ask(a.netns, "udp", b.ip, srv.port).split()[0] == a.ip


def test_host_changes_are_one_link_and_one_route(nodes: list[NodeNet]) -> None:
    host_if = desired.host_ifname(CLUSTER)
    links = sh("ip -o link show").stdout
    assert sum(host_if in line for line in links.splitlines()) == 1
    routes = [line for line in sh("ip route show").stdout.splitlines() if f"dev {host_if}" in line]
    subnet = str(ipaddress.ip_network(f"{nodes[0].ip}/24", strict=False))
    assert len(routes) == 1 and routes[0].startswith(subnet)
    assert netns.read_sysctl(None, "net/ipv4/ip_forward") in ("0", "1")   # untouched, only read


def test_overlapping_subnet_refused(nodes: list[NodeNet]) -> None:
    host_route = next(r for r in fabric.host_routes() if not r.startswith("0.0.0.0/0")
                      and ipaddress.ip_network(r).prefixlen <= 29)
    other = CLUSTER + "x"
    with pytest.raises(fabric.FabricOverlapError, match="overlaps host route"):
        fabric.Fabric.create(other, host_route, 2)
    # another cluster's fabric is a host route too: clusters never overlap
    taken = str(ipaddress.ip_network(f"{nodes[0].ip}/24", strict=False))
    with pytest.raises(fabric.FabricOverlapError, match=taken):
        fabric.Fabric.create(other, taken, 2)
    assert cleanup.leftovers(other) == []


def test_create_is_idempotent(nodes: list[NodeNet]) -> None:
    subnet = str(ipaddress.ip_network(f"{nodes[0].ip}/24", strict=False))
    again = fabric.Fabric.create(CLUSTER, subnet, 3)
    assert again == nodes
    assert sh(f"busybox ping -c1 -W2 {nodes[1].ip}").returncode == 0


def test_default_subnet_is_chosen_free() -> None:
    name = CLUSTER + "d"
    try:
        ns = fabric.Fabric.create(name, None, 1)
        assert ns[0].ip.startswith("172.18.")
        assert sh(f"busybox ping -c1 -W2 {ns[0].ip}").returncode == 0
    finally:
        cleanup.teardown(name)
    assert cleanup.leftovers(name) == []


def test_teardown_spares_a_cluster_with_a_longer_name() -> None:
    short, longer = CLUSTER + "p", CLUSTER + "p-b"
    try:
        fabric.Fabric.create(short, free_subnet(220), 1)
        lb = fabric.Fabric.create(longer, free_subnet(221), 1)
        cleanup.teardown(short)
        assert cleanup.leftovers(short) == []
        assert netns.exists(lb[0].netns)
        assert sh(f"busybox ping -c1 -W2 {lb[0].ip}").returncode == 0
    finally:
        cleanup.teardown(short)
        cleanup.teardown(longer)
    assert cleanup.leftovers(longer) == []


def test_teardown_after_sigkill_midway(tmp_path: Path) -> None:
    """A process building a cluster is killed with SIGKILL; teardown by name
    still removes everything, twice in a row."""
    name = CLUSTER + "k"
    script = textwrap.dedent(f"""
        import os, signal
        from kinns.net import fabric, overlay, netns, pod_network, desired
        nodes = fabric.Fabric.create({name!r}, {free_subnet(230)!r}, 2)
        overlay.setup_cluster(nodes)
        netns.create(desired.pod_netns({name!r}, "p0"))
        pod_network.add_pod(nodes[0], desired.pod_netns({name!r}, "p0"), "c0", state_dir={str(tmp_path)!r})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert cleanup.leftovers(name) != []
    removed = cleanup.teardown(name)
    assert f"link {desired.host_ifname(name)}" in removed
    assert cleanup.leftovers(name) == []
    assert cleanup.teardown(name) == []


def test_teardown_is_idempotent_without_anything() -> None:
    assert cleanup.teardown(CLUSTER + "none") == []
