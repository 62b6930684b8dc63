"""The node side of LoadBalancer addresses: which to announce, and `lo` in a real namespace.

The namespace tests build a scratch "node" (`lo`, and `eth0` on a veth) and
a scratch "host" on the other end, as the fabric connects them, and check
what users would: the address is on the node's `lo`, the host reaches it
(the node answers ARP), it goes away again, addresses kinns did not add
stay, and a gratuitous ARP moves the host's cached MAC.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kinns.proxy.lbannounce import LABEL, Announcer, Plan, desired_addresses, garp_frame, plan

Obj = dict[str, Any]


def lb(name: str, ip: str, node: str | None, type: str = "LoadBalancer") -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if node:
        meta["annotations"] = {"kinns.io/loadbalancer-node": node}
    return {"metadata": meta, "spec": {"type": type},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}] if ip else []}}}


def test_desired_addresses_are_those_annotated_for_this_node() -> None:
    services = [lb("a", "172.18.5.200", "k-worker"), lb("b", "172.18.5.201", "k-worker2"),
                lb("c", "", "k-worker"), lb("d", "172.18.5.203", None),
                lb("e", "172.18.5.204", "k-worker", type="ClusterIP"),      # no longer a LoadBalancer
                lb("f", "fd00::1", "k-worker")]
    assert desired_addresses(services, "k-worker") == {"172.18.5.200"}
    assert desired_addresses(services, "k-worker2") == {"172.18.5.201"}
    assert desired_addresses([], "k-worker") == set()


def test_plan_touches_only_our_label() -> None:
    present = {"127.0.0.1": "lo", "10.0.0.9": LABEL, "10.0.0.10": LABEL, "10.0.0.99": "lo", "10.0.0.50": "lo"}
    p = plan(present, {"10.0.0.10", "10.0.0.11", "10.0.0.2", "10.0.0.50"})
    assert p == Plan(add=("10.0.0.2", "10.0.0.11"), remove=("10.0.0.9",))
    assert p.batch() == ("addr add 10.0.0.2/32 dev lo label lo:kinns-lb\n"
                         "addr add 10.0.0.11/32 dev lo label lo:kinns-lb\n"
                         "addr del 10.0.0.9/32 dev lo\n")
    assert plan(present, set()).remove == ("10.0.0.9", "10.0.0.10")


def test_garp_frame() -> None:
    mac = bytes.fromhex("0a0b0c0d0e0f")
    assert garp_frame(mac, "172.18.5.200").hex() == (
        "ffffffffffff" "0a0b0c0d0e0f" "0806"                   # broadcast from us, ARP
        "0001" "0800" "06" "04" "0001"                          # Ethernet/IPv4, request
        "0a0b0c0d0e0f" "ac1205c8" "000000000000" "ac1205c8")   # sender = target = the address


# ---- in scratch namespaces ------------------------------------------------------

NODE_NS = f"kpt{os.getpid()}-lbnode"
HOST_NS = f"kpt{os.getpid()}-lbhost"


def sh(*argv: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


@pytest.fixture(scope="module")
def fabric() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.fail("these tests need root for network namespaces")
    try:
        for ns in (NODE_NS, HOST_NS):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", NODE_NS, "link", "add", "eth0", "type", "veth", "peer", "name", "h0", "netns", HOST_NS)
        sh("ip", "-n", NODE_NS, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        sh("ip", "-n", HOST_NS, "addr", "add", "192.0.2.1/24", "dev", "h0")
        sh("ip", "-n", NODE_NS, "link", "set", "eth0", "up")
        sh("ip", "-n", HOST_NS, "link", "set", "h0", "up")
        # an address someone else put on the node's lo: never ours to remove
        sh("ip", "-n", NODE_NS, "addr", "add", "192.0.2.99/32", "dev", "lo")
        yield
    finally:
        for ns in (NODE_NS, HOST_NS):
            sh("ip", "netns", "del", ns, check=False)


def lo_addrs() -> dict[str, str]:
    out = json.loads(sh("ip", "-j", "-4", "addr", "show", "dev", "lo", ns=NODE_NS).stdout)
    return {a["local"]: a["label"] for a in out[0]["addr_info"]}


def reachable(ip: str) -> bool:
    return sh("ping", "-c1", "-W1", ip, ns=HOST_NS, check=False).returncode == 0


def test_addresses_appear_on_lo_answer_and_go(fabric: None) -> None:
    ann = Announcer(NODE_NS)
    ann.sync({"192.0.2.200", "192.0.2.201"})
    have = lo_addrs()
    assert have["192.0.2.200"] == have["192.0.2.201"] == LABEL
    assert reachable("192.0.2.200")                  # the node answers ARP for it on eth0
    assert ann.sync({"192.0.2.200", "192.0.2.201"}) == Plan((), ())   # idempotent
    ann.sync({"192.0.2.201"})
    assert "192.0.2.200" not in lo_addrs()
    sh("ip", "-n", HOST_NS, "neigh", "flush", "dev", "h0")
    assert not reachable("192.0.2.200")
    # A new announcer (a restarted kube-proxy) adopts and removes by label.
    Announcer(NODE_NS).cleanup()
    assert set(lo_addrs()) == {"127.0.0.1", "192.0.2.99"}


def test_foreign_addresses_are_left_alone(fabric: None) -> None:
    ann = Announcer(NODE_NS)
    p = ann.sync({"192.0.2.99", "192.0.2.202"})
    assert p.add == ("192.0.2.202",)                # .99 is there already, not ours
    assert ann.owned() == {"192.0.2.202"}
    ann.cleanup()
    assert lo_addrs() == {"127.0.0.1": "lo", "192.0.2.99": "lo"}


def test_gratuitous_arp_moves_the_hosts_cached_mac(fabric: None) -> None:
    node_mac = json.loads(sh("ip", "-j", "link", "show", "eth0", ns=NODE_NS).stdout)[0]["address"]
    # The host cached another node's MAC for the address (the previous announcer).
    sh("sysctl", "-qw", "net.ipv4.neigh.h0.locktime=0", ns=HOST_NS)
    sh("ip", "-n", HOST_NS, "neigh", "replace", "192.0.2.203", "lladdr", "02:00:00:00:00:01", "dev", "h0",
       "nud", "stale")
    ann = Announcer(NODE_NS)
    try:
        ann.sync({"192.0.2.203"})
        deadline = time.monotonic() + 2
        while True:
            neigh = json.loads(sh("ip", "-j", "neigh", "show", "192.0.2.203", "dev", "h0", ns=HOST_NS).stdout)
            if neigh and neigh[0].get("lladdr") == node_mac:
                break
            assert time.monotonic() < deadline, neigh
            time.sleep(0.02)
    finally:
        ann.cleanup()
