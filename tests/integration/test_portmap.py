"""hostPort with real packets: a pod's port answers on its node's address.

A scratch "node" namespace holds `cni0` (the pods' gateway) and `eth0` to
a scratch "host" namespace on the fabric; a "pod" namespace on `cni0` runs
a small TCP and UDP server that answers with the address it saw the
request come from.  The mappings go in through the kubelet's entry points
(`portmap.add_pod` / `remove_pod`), so this exercises what a kubelet does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from kinns.net import netns, portmap
from kinns.net.desired import NodeNet

P = f"kpt{os.getpid()}"
NODE, HOST, POD = f"{P}-pmnode", f"{P}-pmhost", f"{P}-pmpod"
NODE_IP, NODE_IP2, HOST_IP = "192.0.2.2", "192.0.2.3", "192.0.2.1"
POD_IP = "10.244.1.5"
UID = "0d0c0b0a-0000-4000-8000-00000000cafe"
NODE_NET = NodeNet(cluster="kpt", name="kpt-worker", index=0, netns=NODE, ip=NODE_IP, prefixlen=24,
                   gateway=HOST_IP, pod_cidr="10.244.1.0/24", vtep_mac="0e:00:00:00:00:01")
POD_OBJ = {"spec": {"containers": [{"name": "web", "ports": [
    {"containerPort": 80, "hostPort": 8080},
    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
    {"containerPort": 80, "hostPort": 8443, "hostIP": NODE_IP2},
]}]}}


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def nat(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "iptables-save", "-t", "nat"], check=True,
                          capture_output=True, text=True).stdout


def serve(ns: str) -> list[socket.socket]:
    """TCP :80 and UDP :53 in `ns`, each answering with the peer's address."""
    with netns.entered(ns):
        tcp = socket.create_server(("0.0.0.0", 80))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("0.0.0.0", 53))

    def tcp_loop() -> None:
        while True:
            try:
                conn, peer = tcp.accept()
            except OSError:
                return
            with conn:
                conn.sendall(f"{peer[0]}\n".encode())

    def udp_loop() -> None:
        while True:
            try:
                _, peer = udp.recvfrom(100)
                udp.sendto(f"{peer[0]}\n".encode(), peer)
            except OSError:
                return

    for fn in (tcp_loop, udp_loop):
        threading.Thread(target=fn, daemon=True).start()
    return [tcp, udp]


@pytest.fixture(scope="module")
def node() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.fail("these tests need root for network namespaces")
    socks: list[socket.socket] = []
    try:
        for ns in (NODE, HOST, POD):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        netns.sysctl(NODE, "net/ipv4/ip_forward", "1")
        ip("-n", NODE, "link", "add", "eth0", "type", "veth", "peer", "name", "fab0", "netns", HOST)
        ip("-n", NODE, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        ip("-n", NODE, "addr", "add", f"{NODE_IP2}/24", "dev", "eth0")
        ip("-n", HOST, "addr", "add", f"{HOST_IP}/24", "dev", "fab0")
        ip("-n", NODE, "link", "add", "cni0", "type", "bridge")
        ip("-n", NODE, "addr", "add", "10.244.1.1/24", "dev", "cni0")
        ip("-n", NODE, "link", "add", "vethpm0", "master", "cni0", "type", "veth", "peer", "name", "eth0",
           "netns", POD)
        ip("-n", POD, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        ip("-n", NODE, "link", "set", "vethpm0", "type", "bridge_slave", "hairpin", "on")   # as kinns' pods have
        for ns, dev in ((NODE, "eth0"), (NODE, "cni0"), (NODE, "vethpm0"), (HOST, "fab0"), (POD, "eth0")):
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", POD, "route", "add", "default", "via", "10.244.1.1")
        # Someone else's rules in the node (kube-proxy's): must survive everything.
        subprocess.run(["ip", "netns", "exec", NODE, "iptables-restore", "--noflush"], check=True, text=True,
                       input="*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment \"kubernetes "
                             "service portals\" -j KUBE-SERVICES\nCOMMIT\n")
        socks = serve(POD)
        yield
    finally:
        for s in socks:
            s.close()
        portmap.forget(NODE)
        for ns in (NODE, HOST, POD):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def tcp_from(ns: str, dst: str, port: int) -> str:
    """What the server said, or an error name."""
    with netns.entered(ns):
        s = socket.socket()
    with s:
        s.settimeout(1.0)
        try:
            s.connect((dst, port))
            return s.recv(100).decode().strip()
        except OSError as exc:
            return type(exc).__name__


def udp_from(ns: str, dst: str, port: int) -> str:
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(1.0)
        try:
            s.connect((dst, port))
            s.send(b"hi")
            return s.recv(100).decode().strip()
        except OSError as exc:
            return type(exc).__name__


def test_host_port_answers_then_goes(node: None) -> None:
    assert tcp_from(HOST, NODE_IP, 8080) == "ConnectionRefusedError"
    assert portmap.add_pod(NODE_NET, UID, POD_IP, POD_OBJ) == portmap.pod_mappings(POD_OBJ)
    # From outside the node: DNAT, the pod sees the client as it is.
    assert tcp_from(HOST, NODE_IP, 8080) == HOST_IP
    assert udp_from(HOST, NODE_IP, 5353) == HOST_IP
    # From inside the node, to its own address and to localhost (masqueraded to the bridge address).
    assert tcp_from(NODE, NODE_IP, 8080) == NODE_IP
    assert tcp_from(NODE, "127.0.0.1", 8080) == "10.244.1.1"
    # Hairpin: the pod reaches itself through its hostPort, masqueraded.
    assert tcp_from(POD, NODE_IP, 8080) == "10.244.1.1"
    # hostIP: only on that address.
    assert tcp_from(HOST, NODE_IP2, 8443) == HOST_IP
    assert tcp_from(HOST, NODE_IP, 8443) == "ConnectionRefusedError"

    # The kernel prints back exactly the rules we rendered (so the next add sees "nothing to do").
    table = portmap.parse_nat(nat(NODE))
    chain = portmap.dnat_chain_name(UID)
    assert table.rules(chain) == portmap.chain_rules(POD_IP, "10.244.1.0/24", portmap.pod_mappings(POD_OBJ))
    assert table.rules("CNI-HOSTPORT-DNAT") == portmap.entry_rules(UID, portmap.pod_mappings(POD_OBJ))
    before = nat(NODE)
    portmap.add_pod(NODE_NET, UID, POD_IP, POD_OBJ)            # idempotent
    assert nat(NODE).count("CNI-HOSTPORT-DNAT") == before.count("CNI-HOSTPORT-DNAT")

    assert portmap.may_have_ports(NODE_NET, UID)
    portmap.remove_pod(NODE_NET, UID)
    assert not portmap.may_have_ports(NODE_NET, UID)
    assert tcp_from(HOST, NODE_IP, 8080) == "ConnectionRefusedError"
    assert tcp_from(HOST, NODE_IP2, 8443) == "ConnectionRefusedError"
    after = nat(NODE)
    assert "CNI-" not in after
    assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES" in after
    portmap.remove_pod(NODE_NET, UID)                           # idempotent


def test_two_pods_share_the_chains_and_a_restarted_kubelet_finds_them(node: None) -> None:
    other = "0d0c0b0a-0000-4000-8000-00000000beef"
    portmap.add_pod(NODE_NET, UID, POD_IP, POD_OBJ)
    # The same server stands in for a second pod: another UID, another host port.
    portmap.add_pod(NODE_NET, other, POD_IP, {"spec": {"containers": [{"name": "b", "ports": [
        {"containerPort": 80, "hostPort": 9090}]}]}})
    assert tcp_from(HOST, NODE_IP, 8080) == tcp_from(HOST, NODE_IP, 9090) == HOST_IP
    portmap.forget(NODE)                                        # as after a kubelet restart
    assert portmap.may_have_ports(NODE_NET, "unknown")          # unknown until read from the kernel
    portmap.remove_pod(NODE_NET, UID)
    assert not portmap.may_have_ports(NODE_NET, "unknown") and portmap.may_have_ports(NODE_NET, other)
    assert tcp_from(HOST, NODE_IP, 8080) == "ConnectionRefusedError"
    assert tcp_from(HOST, NODE_IP, 9090) == HOST_IP
    portmap.remove_pod(NODE_NET, other)
    assert "CNI-" not in nat(NODE)
