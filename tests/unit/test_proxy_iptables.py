"""kube-proxy iptables mode: golden restore input, partial syncs, the applier's calls.

The goldens follow upstream's proxier_test.go address plan (cluster IPs
172.30.0.4x, endpoints 10.180.0.x, pod network 10.0.0.0/8) so the chain
names can be checked against upstream's TestOverallIPTablesRules.  Every
golden is the whole restore input: `golden()` wraps a test's own lines in
the fixed top-level chains and rules that every sync writes.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from typing import Any

import pytest

from kinns.proxy import iptables
from kinns.proxy.backend import ApplyError
from kinns.proxy.iptables import (ChainNames, IptablesBackend, chains_in, cleanup_input, endpoint_chain,
                                  ensure_script, error_context, probability, render, service_names)
from kinns.proxy.model import Endpoint, NodeFacts, ProxyState, ServicePort, ServicePortName

NODE = NodeFacts("node1", ("192.168.0.2",), "10.0.0.0/8")


def sp(ns: str, name: str, ip: str, *eps: Endpoint, port_name: str = "p80", proto: str = "TCP",
       **kw: Any) -> ServicePort:
    return ServicePort(ServicePortName(ns, name, port_name, proto), ip, kw.pop("port", 80), endpoints=eps, **kw)


def ep(ip: str, node: str = "", **kw: Any) -> Endpoint:
    return Endpoint(ip, 80, node, **kw)


def state(*sps: ServicePort, node: NodeFacts = NODE) -> ProxyState:
    return ProxyState({s.name: s for s in sps}, node)


def block(text: str) -> list[str]:
    return [line for line in textwrap.dedent(text).splitlines() if line.strip()]


def golden(filter_rules: str = "", nat_chains: str = "", nat_rules: str = "") -> str:
    """The full restore input around one test's own lines."""
    return "\n".join([
        "*filter", *block("""
            :KUBE-SERVICES - [0:0]
            :KUBE-EXTERNAL-SERVICES - [0:0]
            :KUBE-FORWARD - [0:0]
            :KUBE-NODEPORTS - [0:0]
            :KUBE-PROXY-FIREWALL - [0:0]
            """), *block(filter_rules), *block("""
            -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
            -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
            -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
            """), "COMMIT",
        "*nat", *block("""
            :KUBE-SERVICES - [0:0]
            :KUBE-NODEPORTS - [0:0]
            :KUBE-POSTROUTING - [0:0]
            :KUBE-MARK-MASQ - [0:0]
            """), *block(nat_chains), *block("""
            -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
            -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
            -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
            -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
            """), *block(nat_rules),
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        "COMMIT", ""])


def assert_text(got: str, want: str) -> None:
    assert got.splitlines() == want.splitlines()


# --- names ------------------------------------------------------------------------

def test_chain_names_match_upstream() -> None:
    n = service_names(ServicePortName("ns1", "svc1", "p80", "TCP"))
    assert (n.text, n.proto) == ("ns1/svc1:p80", "tcp")
    assert n.svc == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert (n.svl, n.ext, n.fw) == ("KUBE-SVL-XPGD46QRK7WJZT7O", "KUBE-EXT-XPGD46QRK7WJZT7O", "KUBE-FW-XPGD46QRK7WJZT7O")
    assert endpoint_chain(n, ep("10.180.0.1")) == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    # An unnamed port hashes "ns/svc" alone.
    assert service_names(ServicePortName("ns1", "svc1", "", "UDP")).text == "ns1/svc1"


def test_chain_names_cache_and_retain() -> None:
    names = ChainNames()
    a, b = ServicePortName("ns", "a", "", "TCP"), ServicePortName("ns", "b", "", "TCP")
    assert names.service(a) is names.service(a)
    assert names.endpoint(a, ep("10.0.0.1")) == endpoint_chain(names.service(a), ep("10.0.0.1"))
    names.service(b)
    names.retain({a})
    assert set(names._svc) == {a} and set(names._sep) == {a}


def test_probability_format() -> None:
    assert [probability(n) for n in (2, 3, 10)] == ["0.5000000000", "0.3333333333", "0.1000000000"]


# --- goldens ---------------------------------------------------------------------

def test_cluster_ip_one_endpoint_is_upstreams_10_nat_rules() -> None:
    r = render(state(sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1"))))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
        """))
    assert (r.nat_rules, r.filter_rules, r.services_written) == (10, 3, 1)


def test_cluster_ip_two_endpoints_is_upstreams_13_nat_rules() -> None:
    r = render(state(sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1"), ep("10.180.0.2"))))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
        :KUBE-SEP-LXVODXWDISEETFEF - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
        -A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
        """))
    assert r.nat_rules == 13


def test_ten_services_ten_endpoints_is_upstreams_325_nat_rules() -> None:
    # TestNumberIptablesRules' third case, minus nothing: 4 fixed + 1 tail + 10 * (1 + 1 + 10 + 20).
    sps = [sp("ns", f"svc{i}", f"172.30.1.{i}", *(ep(f"10.180.{i}.{j}") for j in range(10))) for i in range(10)]
    assert render(state(*sps)).nat_rules == 325


def test_nodeport() -> None:
    r = render(state(sp("ns3", "svc3", "172.30.0.43", ep("10.180.0.3"), node_port=3003)))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
        :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
        :KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
        -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
        -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        """))


def test_load_balancer_with_source_ranges_and_affinity() -> None:
    # Upstream's svc5: the range arrives with stray whitespace and must still parse;
    # health-check node ports only count with externalTrafficPolicy=Local.
    r = render(state(sp("ns5", "svc5", "172.30.0.45", ep("10.180.0.3"), node_port=3002,
                        load_balancer_ips=("5.6.7.8",), lb_source_ranges=(" 203.0.113.0/25",),
                        affinity_timeout=10800, health_check_node_port=30000)))
    assert_text(r.text, golden(filter_rules="""
        -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
        """, nat_chains="""
        :KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
        :KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
        :KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
        :KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
        -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
        -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
        -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
        -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
        -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
        -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        """))


def test_source_range_containing_the_node_admits_the_vip_itself() -> None:
    r = render(state(sp("ns5", "svc5", "172.30.0.45", ep("10.180.0.3"), load_balancer_ips=("5.6.7.8",),
                        lb_source_ranges=("192.168.0.0/24", "not-a-cidr"))))
    fw = [line for line in r.text.splitlines() if line.startswith("-A KUBE-FW-")]
    assert fw == block("""
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 192.168.0.0/24 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 5.6.7.8 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
        """)


def test_external_ip() -> None:
    r = render(state(sp("ns4", "svc4", "172.30.0.44", ep("10.180.0.4"), ep("10.180.0.5", "node1"),
                        external_ips=("192.168.99.33",))))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
        :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
        :KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
        :KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
        -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
        -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
        -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
        -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
        -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
        """))


def test_session_affinity_three_endpoints() -> None:
    r = render(state(sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"),
                        affinity_timeout=300)))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
        :KUBE-SEP-LXVODXWDISEETFEF - [0:0]
        :KUBE-SEP-ICDUIKC33SFI6ZPR - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --rcheck --seconds 300 --reap -j KUBE-SEP-SXIVWICOYRO3J4NJ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m recent --name KUBE-SEP-LXVODXWDISEETFEF --rcheck --seconds 300 --reap -j KUBE-SEP-LXVODXWDISEETFEF
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-ICDUIKC33SFI6ZPR --rcheck --seconds 300 --reap -j KUBE-SEP-ICDUIKC33SFI6ZPR
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-SXIVWICOYRO3J4NJ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-LXVODXWDISEETFEF
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.3:80" -j KUBE-SEP-ICDUIKC33SFI6ZPR
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
        -A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-LXVODXWDISEETFEF --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
        -A KUBE-SEP-ICDUIKC33SFI6ZPR -m comment --comment ns1/svc1:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-ICDUIKC33SFI6ZPR -m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-ICDUIKC33SFI6ZPR --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        """))


def test_external_traffic_policy_local_with_a_local_endpoint() -> None:
    r = render(state(sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2"), ep("10.180.0.3", "node1"),
                        node_port=3001, external_local=True)))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SVL-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
        :KUBE-SEP-2GOKER2KF7NAANZN - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -j KUBE-SVL-GNZBNJ2PO5MGZ6GT
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-RS4RBKLTHTF2IUXJ
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.3:80" -j KUBE-SEP-2GOKER2KF7NAANZN
        -A KUBE-SVL-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.3:80" -j KUBE-SEP-2GOKER2KF7NAANZN
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
        -A KUBE-SEP-2GOKER2KF7NAANZN -m comment --comment ns2/svc2:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-2GOKER2KF7NAANZN -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        """))


def test_external_traffic_policy_local_without_local_endpoints_drops() -> None:
    # Upstream's svc2: the only endpoint is elsewhere.  External traffic is
    # DROPped in filter; pod and node traffic still short-circuits to KUBE-SVC.
    r = render(state(sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2"), node_port=3001,
                        load_balancer_ips=("1.2.3.4",), external_ips=("192.168.99.22",), external_local=True,
                        health_check_node_port=30000)))
    assert_text(r.text, golden(filter_rules="""
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
        -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
        """, nat_chains="""
        :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
        """))


def test_internal_traffic_policy_local() -> None:
    r = render(state(sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.2"), ep("10.180.0.3", "node1"), internal_local=True)))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
        :KUBE-SEP-ICDUIKC33SFI6ZPR - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVL-XPGD46QRK7WJZT7O
        -A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.3:80" -j KUBE-SEP-ICDUIKC33SFI6ZPR
        -A KUBE-SEP-ICDUIKC33SFI6ZPR -m comment --comment ns1/svc1:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-ICDUIKC33SFI6ZPR -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        """))


def test_internal_traffic_policy_local_without_local_endpoints_drops() -> None:
    r = render(state(sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.2", "node2"), internal_local=True)))
    assert_text(r.text, golden(filter_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP
        """))


def test_no_endpoints_rejects_every_address() -> None:
    r = render(state(sp("ns6", "svc6", "172.30.0.46", node_port=3001, external_ips=("192.168.99.11",),
                        load_balancer_ips=("1.2.3.4",))))
    assert_text(r.text, golden(filter_rules="""
        -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT
        """))


def test_only_unready_endpoints_is_no_endpoints() -> None:
    r = render(state(sp("ns6", "svc6", "172.30.0.46", ep("10.180.0.1", ready=False, serving=False))))
    assert_text(r.text, golden(filter_rules="""
        -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
        """))


def test_terminating_fallback_uses_serving_terminating_endpoints_only() -> None:
    r = render(state(sp("ns1", "svc1", "172.30.0.41",
                        ep("10.180.0.1", ready=False, serving=True, terminating=True),
                        ep("10.180.0.2", ready=False, serving=False, terminating=True))))
    assert_text(r.text, golden(nat_chains="""
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
        """))


def test_terminating_fallback_is_per_policy_for_local() -> None:
    # ITP=Local: the ready endpoint is on another node, so the local serving
    # terminating one is used.
    r = render(state(sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1", "node2"),
                        ep("10.180.0.2", "node1", ready=False, serving=True, terminating=True), internal_local=True)))
    assert [line for line in r.text.splitlines() if line.startswith("-A KUBE-SVL-")][-1] == (
        '-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF')


def test_masquerade_all_and_udp() -> None:
    node = NodeFacts("node1", ("192.168.0.2",), "10.0.0.0/8", masquerade_all=True)
    r = render(state(sp("ns1", "dns", "172.30.0.10", ep("10.180.0.1"), port_name="dns", proto="UDP", port=53),
                     node=node))
    svc = service_names(ServicePortName("ns1", "dns", "dns", "UDP")).svc
    assert (f'-A {svc} -m comment --comment "ns1/dns:dns cluster IP" -m udp -p udp -d 172.30.0.10 --dport 53 '
            "-j KUBE-MARK-MASQ") in r.text.splitlines()
    assert "-m udp -p udp -j DNAT --to-destination 10.180.0.1:80" in r.text


def test_large_cluster_drops_per_endpoint_comments() -> None:
    sps = [sp("ns", f"svc{i}", f"172.30.{i}.1", *(ep(f"10.{i}.0.{j}") for j in range(101))) for i in range(10)]
    r = render(state(*sps))
    sep = endpoint_chain(service_names(sps[0].name), sps[0].endpoints[0])
    svc = service_names(sps[0].name).svc
    lines = r.text.splitlines()
    assert f"-A {sep} -s 10.0.0.0 -j KUBE-MARK-MASQ" in lines
    assert f"-A {svc} -m statistic --mode random --probability 0.0099009901 -j {sep}" in lines
    # Service-level comments stay.
    assert '-A KUBE-SERVICES -m comment --comment "ns/svc0:p80 cluster IP"' in r.text


# --- upstream's overall test ------------------------------------------------------------

def by_chain(text: str) -> dict[str, tuple[set[str], dict[str, list[str]]]]:
    """Restore input → per table: declared chains, and rules per chain in order
    (upstream's tests compare this way: order between chains is free)."""
    out: dict[str, tuple[set[str], dict[str, list[str]]]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            out[table] = (set(), {})
        elif line.startswith(":"):
            out[table][0].add(line.split()[0][1:])
        elif line.startswith("-A "):
            out[table][1].setdefault(line.split()[1], []).append(line)
    return out


def test_upstream_overall_iptables_rules() -> None:
    """TestOverallIPTablesRules' six services.  Our expected output differs from
    upstream's only where kinns runs kube-proxy differently: no nfacct (the
    localhost NodePort rules and counter matches), no kubelet KUBE-FIREWALL
    chain, and MASQUERADE --random-fully (upstream's fake lacks it)."""
    node = NodeFacts("test-node", ("192.168.0.2",), "10.0.0.0/8")
    sps = [
        sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1")),
        sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2"), node_port=3001, load_balancer_ips=("1.2.3.4",),
           external_ips=("192.168.99.22",), external_local=True, health_check_node_port=30000),
        sp("ns3", "svc3", "172.30.0.43", ep("10.180.0.3"), node_port=3003),
        sp("ns4", "svc4", "172.30.0.44", ep("10.180.0.4"), ep("10.180.0.5", "test-node"),
           external_ips=("192.168.99.33",)),
        sp("ns5", "svc5", "172.30.0.45", ep("10.180.0.3"), node_port=3002, load_balancer_ips=("5.6.7.8",),
           lb_source_ranges=(" 203.0.113.0/25",), affinity_timeout=10800, health_check_node_port=30000),
        sp("ns6", "svc6", "172.30.0.46"),
    ]
    want = textwrap.dedent("""\
        *filter
        :KUBE-NODEPORTS - [0:0]
        :KUBE-SERVICES - [0:0]
        :KUBE-EXTERNAL-SERVICES - [0:0]
        :KUBE-FORWARD - [0:0]
        :KUBE-PROXY-FIREWALL - [0:0]
        -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
        -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
        -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
        -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
        -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
        COMMIT
        *nat
        :KUBE-NODEPORTS - [0:0]
        :KUBE-SERVICES - [0:0]
        :KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
        :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
        :KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
        :KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
        :KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
        :KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
        :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
        :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
        :KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
        :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
        :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
        :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
        -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
        -A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
        -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
        -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
        -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
        -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
        -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
        -A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
        -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
        -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
        -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
        -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
        -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
        -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
        -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
        -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
        -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
        -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
        -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
        -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
        -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
        -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
        -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
        COMMIT
        """)
    assert by_chain(render(state(*sps, node=node)).text) == by_chain(want)


# --- partial syncs and stale chains --------------------------------------------------------

SVC1 = sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1"))
SVC2 = sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2"), ep("10.180.0.3"))


def test_partial_sync_writes_only_the_changed_service() -> None:
    first = render(state(SVC1, SVC2))
    svc2 = sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2"))          # 10.180.0.3 went away
    r = render(state(SVC1, svc2), frozenset({svc2.name}), previous=first.chains)
    # svc1's KUBE-SERVICES rule is rewritten, its own chains are not; svc2's
    # lost endpoint chain is flushed and deleted.
    assert_text(r.text, golden(nat_chains="""
        :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
        :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
        :KUBE-SEP-2GOKER2KF7NAANZN - [0:0]
        """, nat_rules="""
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
        -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
        -X KUBE-SEP-2GOKER2KF7NAANZN
        """))
    assert (r.services_written, r.deleted) == (1, ("KUBE-SEP-2GOKER2KF7NAANZN",))
    assert r.chains[SVC1.name] == first.chains[SVC1.name]
    assert r.chains[svc2.name] == {"KUBE-SVC-GNZBNJ2PO5MGZ6GT", "KUBE-SEP-RS4RBKLTHTF2IUXJ"}


def test_partial_sync_deletes_a_removed_services_chains() -> None:
    first = render(state(SVC1, SVC2))
    r = render(state(SVC1), frozenset({SVC2.name}), previous=first.chains)
    assert r.deleted == tuple(sorted(first.chains[SVC2.name]))
    assert r.services_written == 0 and set(r.chains) == {SVC1.name}
    for chain in first.chains[SVC2.name]:
        assert f":{chain} - [0:0]" in r.text and f"-X {chain}" in r.text.splitlines()
    assert "KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]" not in r.text


def test_partial_sync_writes_a_service_it_never_wrote() -> None:
    first = render(state(SVC1))
    r = render(state(SVC1, SVC2), frozenset(), previous=first.chains)
    assert r.services_written == 1 and ":KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]" in r.text


def test_full_sync_deletes_stale_chains_found_in_the_table() -> None:
    existing = ["PREROUTING", "KUBE-SERVICES", "KUBE-SVC-XPGD46QRK7WJZT7O", "KUBE-SVC-OLDOLDOLDOLDOLDO",
                "KUBE-SEP-OLDOLDOLDOLDOLDO", "KUBE-FW-OLDOLDOLDOLDOLDO", "CNI-abc123", "KUBE-FIREWALL", "KUBE-KUBELET-CANARY"]
    r = render(state(SVC1), previous={SVC2.name: frozenset({"KUBE-SVC-GNZBNJ2PO5MGZ6GT"})}, existing=existing)
    assert r.deleted == ("KUBE-FW-OLDOLDOLDOLDOLDO", "KUBE-SEP-OLDOLDOLDOLDOLDO", "KUBE-SVC-GNZBNJ2PO5MGZ6GT",
                         "KUBE-SVC-OLDOLDOLDOLDOLDO")
    tail = r.text.splitlines()[-6:-2]
    assert tail == [f"-X {c}" for c in r.deleted]


def test_render_is_fast_for_ten_thousand_services() -> None:
    sps = {}
    for i in range(10000):
        s = sp(f"ns{i % 50}", f"svc{i}", f"172.16.{i >> 8}.{i & 255}",
               *(Endpoint(f"10.{i >> 8}.{i & 255}.{j}", 8080, f"node{j % 3}") for j in range(10)),
               port_name="http", node_port=30000 + i % 2000 if i % 4 == 0 else 0)
        sps[s.name] = s
    st = ProxyState(sps, NODE)
    t = time.perf_counter()
    r = render(st)
    cold = time.perf_counter() - t
    assert r.services_written == 10000 and r.nat_rules > 320000
    assert cold < 4.0, f"render took {cold:.2f}s"


# --- the applier -----------------------------------------------------------------------------

class FakeRun:
    """Stands in for backend.run: records argv/input, answers iptables-save and sh."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.restore_rc = 0
        self.save = ":PREROUTING ACCEPT [0:0]\n:KUBE-SVC-STALESTALESTALE - [0:0]\n:CNI-x - [0:0]\n"
        self.sh_out = ""

    def __call__(self, argv: list[str], *, input: str | None = None, netns: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        assert netns == "kpt-node"
        self.calls.append((argv, input))
        if argv[0] == "iptables-save":
            return subprocess.CompletedProcess(argv, 0, self.save, "")
        if argv[0] == "iptables-restore" and self.restore_rc:
            return subprocess.CompletedProcess(argv, self.restore_rc, "", "iptables-restore: line 3 failed: boom")
        return subprocess.CompletedProcess(argv, 0, self.sh_out, "")

    def tools(self) -> list[str]:
        return [argv[0] for argv, _ in self.calls]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    f = FakeRun()
    monkeypatch.setattr(iptables, "run", f)
    return f


def test_backend_full_then_partial(fake: FakeRun) -> None:
    b = IptablesBackend(netns="kpt-node")
    res = b.sync(state(SVC1, SVC2), None)
    assert fake.tools() == ["sh", "iptables-save", "iptables-restore"]
    assert fake.calls[2][0] == ["iptables-restore", "--noflush", "--counters"]
    assert "-X KUBE-SVC-STALESTALESTALE" in (fake.calls[2][1] or "")
    assert "CNI-x" not in (fake.calls[2][1] or "")
    assert (res.full, res.services_written) == (True, 2)
    assert res.rules == render(state(SVC1, SVC2)).nat_rules + 3
    fake.calls.clear()
    res = b.sync(state(SVC1), frozenset({SVC2.name}))
    assert fake.tools() == ["iptables-restore"]
    assert (res.full, res.services_written) == (False, 0)
    assert set(b.written) == {SVC1.name}


def test_backend_first_sync_is_full_even_when_asked_partial(fake: FakeRun) -> None:
    res = IptablesBackend(netns="kpt-node").sync(state(SVC1), frozenset())
    assert res.full and fake.tools()[0] == "sh"


def test_backend_restore_failure_raises_with_context_and_forces_full(fake: FakeRun) -> None:
    b = IptablesBackend(netns="kpt-node")
    b.sync(state(SVC1), None)
    fake.restore_rc = 1
    with pytest.raises(ApplyError) as e:
        b.sync(state(SVC1, SVC2), frozenset({SVC2.name}))
    assert "line 3 failed" in str(e.value) and ">     3 :KUBE-EXTERNAL-SERVICES - [0:0]" in str(e.value)
    fake.restore_rc = 0
    fake.calls.clear()
    assert b.sync(state(SVC1, SVC2), frozenset({SVC2.name})).full
    assert fake.tools()[0] == "sh"


def test_backend_tables_flushed_reads_the_canary_script(fake: FakeRun) -> None:
    b = IptablesBackend(netns="kpt-node")
    assert not b.tables_flushed()
    fake.sh_out = "nat\n"
    assert b.tables_flushed()
    script = fake.calls[-1][0][2]
    assert "iptables -w -t nat -S KUBE-PROXY-CANARY" in script and "mangle" in script and "filter" in script


def test_ensure_script_checks_before_inserting() -> None:
    s = ensure_script()
    assert ("iptables -w -t nat -C PREROUTING -m comment --comment 'kubernetes service portals' -j KUBE-SERVICES "
            "2>/dev/null || iptables -w -t nat -I PREROUTING -m comment --comment 'kubernetes service portals' "
            "-j KUBE-SERVICES") in s
    assert ("-C FORWARD -m conntrack --ctstate NEW -m comment --comment 'kubernetes externally-visible service "
            "portals' -j KUBE-EXTERNAL-SERVICES") in s
    for t in ("mangle", "nat", "filter"):
        assert f"iptables -w -t {t} -N KUBE-PROXY-CANARY" in s
    assert s.startswith("set -e\n")


def test_cleanup_input_touches_only_our_chains() -> None:
    nat = ["PREROUTING", "KUBE-SERVICES", "KUBE-SVC-AAAAAAAAAAAAAAAA", "KUBE-MARK-MASQ", "CNI-1", "KUBE-PROXY-CANARY",
           "KUBE-KUBELET-CANARY"]
    flt = ["INPUT", "KUBE-FORWARD", "KUBE-FIREWALL", "KUBE-PROXY-FIREWALL"]
    assert cleanup_input(nat, flt) == textwrap.dedent("""\
        *filter
        :KUBE-FORWARD - [0:0]
        :KUBE-PROXY-FIREWALL - [0:0]
        -X KUBE-FORWARD
        -X KUBE-PROXY-FIREWALL
        COMMIT
        *nat
        :KUBE-SERVICES - [0:0]
        :KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-PROXY-CANARY - [0:0]
        -X KUBE-SERVICES
        -X KUBE-SVC-AAAAAAAAAAAAAAAA
        -X KUBE-MARK-MASQ
        -X KUBE-PROXY-CANARY
        COMMIT
        """)
    assert cleanup_input(["PREROUTING"], ["INPUT"]) == ""


def test_error_context_and_chains_in() -> None:
    text = "\n".join(f"l{i}" for i in range(1, 11))
    assert error_context(text, "Error occurred at line: 2").splitlines() == [
        "      1 l1", ">     2 l2", "      3 l3", "      4 l4", "      5 l5"]
    assert error_context(text, "no line here") == ""
    assert chains_in("# x\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j DROP\n") == [
        "PREROUTING", "KUBE-SVC-X"]
