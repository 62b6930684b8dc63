"""IP-in-IP overlay, pure parts: the desired node state (Calico's layout), the
encapsulator's route lookup, the TUN ioctl request and the refusal text."""

from __future__ import annotations

import struct

import pytest

from kinns.net import desired, ipip
from kinns.net.fabric import Fabric
from kinns.net.ipip_encap import Routes


def test_node_state_is_calicos_tunl0_layout() -> None:
    nodes = Fabric.plan("c", "172.18.5.0/24", 3)
    st = desired.node_state(nodes[1], nodes, "ipip", tunnel_kind="tun")
    tunl = next(lk for lk in st.links if lk.name == "tunl0")
    assert (tunl.kind, tunl.mtu) == ("tun", 1480)
    assert next(lk for lk in st.links if lk.name == "cni0").mtu == 1480
    assert desired.Addr("tunl0", "10.244.1.0/32") in st.addrs
    assert st.routes == [desired.Route("10.244.0.0/24", gw="172.18.5.2", dev="tunl0", onlink=True),
                         desired.Route("10.244.2.0/24", gw="172.18.5.4", dev="tunl0", onlink=True)]
    assert "flannel.1" in st.absent_links and not st.fdbs and not st.neighs
    assert desired.node_state(nodes[1], nodes, "ipip").links[1].kind == "ipip"     # the kernel's device
    assert desired.pod_mtu("ipip") == 1480 and desired.pod_mtu("vxlan") == 1450 and desired.pod_mtu("host-gw") == 1500


def test_routes_lookup_takes_the_longest_prefix_and_follows_replacement() -> None:
    r = Routes()
    r.replace([("10.244.0.0/16", "172.18.5.9"), ("10.244.2.0/24", "172.18.5.4")])
    assert r.lookup(bytes([10, 244, 2, 7])) == "172.18.5.4"
    assert r.lookup(bytes([10, 244, 3, 7])) == "172.18.5.9"
    assert r.lookup(bytes([10, 245, 0, 1])) is None
    assert r.peers == {bytes([172, 18, 5, 4]), bytes([172, 18, 5, 9])}
    r.replace([("10.244.2.0/24", "172.18.5.5")])          # a node moved: cached answers are dropped
    assert r.lookup(bytes([10, 244, 2, 7])) == "172.18.5.5"
    assert r.lookup(bytes([10, 244, 3, 7])) is None


def test_tun_request_names_tunl0_without_packet_info() -> None:
    req = ipip.tun_ifreq("tunl0")
    assert len(req) == 40 and req[:16].rstrip(b"\0") == b"tunl0"
    (flags,) = struct.unpack_from("H", req, 16)
    assert flags & ipip.IFF_TUN and flags & ipip.IFF_NO_PI


def test_probe_refuses_clearly_without_ipip_and_tun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipip, "_ok", lambda cmd: False)
    with pytest.raises(ipip.IpipUnavailable, match="neither.*--overlay vxlan or host-gw"):
        ipip.probe()
    monkeypatch.setattr(ipip, "_ok", lambda cmd: "tuntap" in cmd)
    assert ipip.probe() == ipip.USERSPACE


def test_tunnel_hop_reads_like_a_trace_line() -> None:
    hop = ipip.TunnelHop("tunl0", "172.18.5.2", "172.18.5.3", ipip.USERSPACE)
    assert str(hop) == "ipip via tunl0 to 172.18.5.3 (outer 172.18.5.2 -> 172.18.5.3), userspace"
