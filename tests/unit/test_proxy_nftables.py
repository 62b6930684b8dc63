"""kube-proxy's nftables renderer, golden: exact `nft -f` text per kind of Service.

The address plan is upstream's proxier_test.go (ClusterIPs 172.30.0.4x, pod
network 10.0.0.0/8, endpoints 10.180.x.y, node 192.168.0.2), so chain names
match the ones upstream's tests print (`service-ULMVA6XW-ns1/svc1/tcp/p80`).
Each golden test renders one ServicePort into a fresh table and compares
what follows the skeleton; the skeleton, partial syncs, removal and element
ownership have their own tests.  The last tests feed the rendered text to
the real nft (1.0.6) in a scratch network namespace, so the syntax is
proven, not assumed.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import textwrap
from typing import Any, Iterator

import pytest

from kinns.proxy.backend import ApplyError, run
from kinns.proxy.model import Endpoint, NodeFacts, ProxyState, ServicePort, ServicePortName
from kinns.proxy.nftables import (NftablesBackend, Plan, TableState, Transaction, affinity_set,
                                  hash_and_truncate, render, svc_names)

NODE = NodeFacts("node1", ("192.168.0.2",), "10.0.0.0/8")


def spn(ns: str = "ns1", name: str = "svc1", port: str = "p80", proto: str = "TCP") -> ServicePortName:
    return ServicePortName(ns, name, port, proto)


def ep(ip: str, port: int = 80, node: str = "node2", **conditions: bool) -> Endpoint:
    return Endpoint(ip, port, node, **conditions)


def svc(name: ServicePortName | None = None, cluster_ip: str = "172.30.0.41", port: int = 80,
        **kw: Any) -> ServicePort:
    return ServicePort(name or spn(), cluster_ip, port, **kw)


def state(*sps: ServicePort, node: NodeFacts = NODE) -> ProxyState:
    return ProxyState({sp.name: sp for sp in sps}, node)


def full(*sps: ServicePort, node: NodeFacts = NODE) -> Plan:
    return render(state(*sps, node=node), None, None)


SKELETON = str(full().tx)


def body(*sps: ServicePort, node: NodeFacts = NODE) -> str:
    """What a fresh full sync writes after the skeleton."""
    text = str(full(*sps, node=node).tx)
    assert text.startswith(SKELETON)
    return text[len(SKELETON):]


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


SVC = "service-ULMVA6XW-ns1/svc1/tcp/p80"
LOCAL = "local-ULMVA6XW-ns1/svc1/tcp/p80"
EXT = "external-ULMVA6XW-ns1/svc1/tcp/p80"
FW = "firewall-ULMVA6XW-ns1/svc1/tcp/p80"
R = "add rule ip kube-proxy"


# --- names and the transaction ------------------------------------------------

def test_chain_names_match_upstream() -> None:
    # Values printed by upstream's proxier_test.go for the same names.
    assert svc_names(spn()).cluster == SVC
    assert svc_names(spn("ns2", "svc2")).external == "external-42NFTM6N-ns2/svc2/tcp/p80"
    assert affinity_set(spn(), "10.180.0.1", 80) == "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    assert affinity_set(spn("ns5", "svc5"), "10.180.0.3", 80) == \
        "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"


def test_long_names_are_cut_with_dots() -> None:
    name = "n" * 63 + "/" + "s" * 63 + "/tcp/" + "p" * 63 + "__10.1.2.3/8080" + "x" * 80
    out = hash_and_truncate(name)
    assert len(out) == 240 and out.endswith("...") and out[8] == "-"
    # Names that differ only past the cut still differ in their hash prefix.
    assert hash_and_truncate(name + "y")[:237] != out[:237]


def test_transaction_is_the_nft_text() -> None:
    tx = Transaction()
    tx.add("table ip kube-proxy")
    tx.chain("c", fresh=False)
    tx.rule("c", "drop")
    tx.delete("chain ip kube-proxy d")
    assert tx.ops[0] == ("add", "table ip kube-proxy")
    assert str(tx) == golden("""
        add table ip kube-proxy
        add chain ip kube-proxy c
        flush chain ip kube-proxy c
        add rule ip kube-proxy c drop
        delete chain ip kube-proxy d
        """)
    assert tx.rules == 1 and len(tx) == 5


# --- the skeleton ---------------------------------------------------------------

def test_skeleton_replaces_the_table_when_fresh() -> None:
    assert SKELETON == golden('''
        add table ip kube-proxy { comment "rules for kube-proxy" ; }
        delete table ip kube-proxy
        add table ip kube-proxy { comment "rules for kube-proxy" ; }
        add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }
        add chain ip kube-proxy filter-output-pre-dnat { type filter hook output priority -110 ; }
        add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }
        add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }
        add chain ip kube-proxy filter-output { type filter hook output priority 0 ; }
        add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
        add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
        add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
        add chain ip kube-proxy nodeport-endpoints-check
        add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
        add chain ip kube-proxy service-endpoints-check
        add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
        add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
        add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
        add chain ip kube-proxy firewall-check
        add rule ip kube-proxy filter-prerouting-pre-dnat ct state new jump firewall-check
        add rule ip kube-proxy filter-output-pre-dnat ct state new jump firewall-check
        add chain ip kube-proxy services
        add rule ip kube-proxy nat-output jump services
        add rule ip kube-proxy nat-prerouting jump services
        add chain ip kube-proxy masquerading
        add rule ip kube-proxy nat-postrouting jump masquerading
        add chain ip kube-proxy cluster-ips-check
        add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
        add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
        add chain ip kube-proxy mark-for-masquerade
        add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
        add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
        add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
        add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
        add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
        add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
        add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
        add set ip kube-proxy hairpin-connections { type ipv4_addr . ipv4_addr . inet_proto . inet_service ; comment "service hairpin connections" ; }
        add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
        add rule ip kube-proxy masquerading ct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin-connections masquerade fully-random
        add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
        add rule ip kube-proxy masquerading mark set mark xor 0x4000
        add rule ip kube-proxy masquerading masquerade fully-random
        add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
        add rule ip kube-proxy reject-chain reject
        add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
        add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
        add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
        add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
        add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
        ''')  # noqa: E501
    assert full().tx.rules == 23


def test_skeleton_over_a_known_table_flushes_instead_of_replacing() -> None:
    text = str(render(state(), None, TableState()).tx)
    assert "delete table" not in text
    for line in ("add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }\n"
                 "flush chain ip kube-proxy nat-prerouting\n",
                 "add chain ip kube-proxy services\nflush chain ip kube-proxy services\n",
                 "flush map ip kube-proxy service-ips\n", "flush set ip kube-proxy cluster-ips\n",
                 "flush set ip kube-proxy hairpin-connections\n"):
        assert line in text


# --- one ServicePort of each kind ---------------------------------------------

def test_cluster_ip_one_endpoint() -> None:
    assert body(svc(endpoints=(ep("10.180.0.1"),))) == golden(f"""
        add chain ip kube-proxy {SVC}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)


def test_cluster_ip_two_endpoints_each_get_half() -> None:
    assert body(svc(endpoints=(ep("10.180.0.1"), ep("10.180.2.1", 8080)))) == golden(f"""
        add chain ip kube-proxy {SVC}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} numgen random mod 2 == 0 meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} meta l4proto tcp dnat to 10.180.2.1:8080
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80, 10.180.2.1 . 10.180.2.1 . tcp . 8080 }}
        """)  # noqa: E501


def test_three_endpoints_probabilities_and_udp() -> None:
    text = body(svc(spn(proto="UDP"), endpoints=(ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"))))
    chain = "service-YLEZLEQ5-ns1/svc1/udp/p80"
    assert f"{R} {chain} numgen random mod 3 == 0 meta l4proto udp dnat to 10.180.0.1:80\n" \
           f"{R} {chain} numgen random mod 2 == 0 meta l4proto udp dnat to 10.180.0.2:80\n" \
           f"{R} {chain} meta l4proto udp dnat to 10.180.0.3:80\n" in text
    assert "172.30.0.41 . udp . 80 : goto" in text


def test_node_port() -> None:
    assert body(svc(node_port=3001, endpoints=(ep("10.180.0.1"),))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)


def test_load_balancer_with_source_ranges() -> None:
    # " 203.0.113.0/25": upstream tolerates the blank; "bogus" is dropped.  No range
    # holds the node (192.168.0.2), so the LB IPs themselves are not allowed.
    lb = svc(node_port=3001, load_balancer_ips=("1.2.3.4", "5.6.7.8"),
             lb_source_ranges=("10.1.0.0/16", " 203.0.113.0/25", "bogus"), endpoints=(ep("10.180.0.1"),))
    assert body(lb) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        add chain ip kube-proxy {FW}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        {R} {FW} ip saddr != {{ 10.1.0.0/16, 203.0.113.0/25 }} drop
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 1.2.3.4 . tcp . 80 : goto {EXT}, 5.6.7.8 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy firewall-ips {{ 1.2.3.4 . tcp . 80 : goto {FW}, 5.6.7.8 . tcp . 80 : goto {FW} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)  # noqa: E501


def test_source_range_holding_the_node_also_allows_the_lb_ips() -> None:
    lb = svc(load_balancer_ips=("1.2.3.4",), lb_source_ranges=("192.168.0.0/24",), endpoints=(ep("10.180.0.1"),))
    assert f"{R} {FW} ip saddr != {{ 192.168.0.0/24, 1.2.3.4 }} drop\n" in body(lb)


def test_source_ranges_without_lb_ip_write_no_firewall() -> None:
    assert "firewall" not in body(svc(lb_source_ranges=("10.1.0.0/16",), endpoints=(ep("10.180.0.1"),)))


def test_external_ip() -> None:
    assert body(svc(external_ips=("192.168.99.11",), endpoints=(ep("10.180.0.1"),))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 192.168.99.11 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)  # noqa: E501


def test_session_affinity() -> None:
    a1, a2 = affinity_set(spn(), "10.180.0.1", 80), affinity_set(spn(), "10.180.2.1", 80)
    assert a2 == "affinity-MLKSHPWN-ns1/svc1/tcp/p80__10.180.2.1/80"
    assert body(svc(affinity_timeout=600, endpoints=(ep("10.180.0.1"), ep("10.180.2.1")))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add set ip kube-proxy {a1} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}
        add set ip kube-proxy {a2} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} ip saddr @{a1} update @{a1} {{ ip saddr }} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} ip saddr @{a2} update @{a2} {{ ip saddr }} meta l4proto tcp dnat to 10.180.2.1:80
        {R} {SVC} numgen random mod 2 == 0 update @{a1} {{ ip saddr }} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} update @{a2} {{ ip saddr }} meta l4proto tcp dnat to 10.180.2.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80, 10.180.2.1 . 10.180.2.1 . tcp . 80 }}
        """)  # noqa: E501


def test_external_traffic_policy_local() -> None:
    # One endpoint here (node1), one elsewhere: external traffic only goes to
    # the local one, unmasqueraded; pods and the node itself go cluster-wide.
    sp = svc(node_port=3001, load_balancer_ips=("1.2.3.4",), external_local=True,
             endpoints=(ep("10.180.0.1", node="node1"), ep("10.180.2.1")))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {LOCAL}
        add chain ip kube-proxy {EXT}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} numgen random mod 2 == 0 meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} meta l4proto tcp dnat to 10.180.2.1:80
        {R} {LOCAL} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EXT} ip saddr 10.0.0.0/8 goto {SVC} comment "short-circuit pod traffic"
        {R} {EXT} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
        {R} {EXT} fib saddr type local goto {SVC} comment "short-circuit local traffic"
        {R} {EXT} goto {LOCAL}
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 1.2.3.4 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80, 10.180.2.1 . 10.180.2.1 . tcp . 80 }}
        """)  # noqa: E501


def test_external_traffic_policy_local_without_local_endpoint_drops_external_traffic() -> None:
    sp = svc(node_port=3001, load_balancer_ips=("1.2.3.4",), external_local=True, endpoints=(ep("10.180.2.1"),))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} meta l4proto tcp dnat to 10.180.2.1:80
        {R} {EXT} ip saddr 10.0.0.0/8 goto {SVC} comment "short-circuit pod traffic"
        {R} {EXT} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
        {R} {EXT} fib saddr type local goto {SVC} comment "short-circuit local traffic"
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 1.2.3.4 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy no-endpoint-services {{ 1.2.3.4 . tcp . 80 comment "ns1/svc1:p80" : drop }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy no-endpoint-nodeports {{ tcp . 3001 comment "ns1/svc1:p80" : drop }}
        add element ip kube-proxy hairpin-connections {{ 10.180.2.1 . 10.180.2.1 . tcp . 80 }}
        """)  # noqa: E501


def test_internal_traffic_policy_local() -> None:
    sp = svc(internal_local=True, endpoints=(ep("10.180.0.1", node="node1"), ep("10.180.2.1")))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {LOCAL}
        {R} {LOCAL} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {LOCAL} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {LOCAL} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)


def test_internal_traffic_policy_local_without_local_endpoint_drops() -> None:
    assert body(svc(internal_local=True, endpoints=(ep("10.180.2.1"),))) == golden("""
        add element ip kube-proxy cluster-ips { 172.30.0.41 }
        add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" : drop }
        """)


def test_both_policies_local_still_send_pods_cluster_wide() -> None:
    # An externally reachable port always has the cluster chain, for the short-circuits.
    sp = svc(node_port=3001, internal_local=True, external_local=True, endpoints=(ep("10.180.0.1", node="node1"),))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {LOCAL}
        add chain ip kube-proxy {EXT}
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {LOCAL} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {LOCAL} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EXT} ip saddr 10.0.0.0/8 goto {SVC} comment "short-circuit pod traffic"
        {R} {EXT} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
        {R} {EXT} fib saddr type local goto {SVC} comment "short-circuit local traffic"
        {R} {EXT} goto {LOCAL}
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {LOCAL} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)


def test_no_endpoints_rejects_every_address() -> None:
    sp = svc(node_port=3001, external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",))
    assert body(sp) == golden("""
        add element ip kube-proxy cluster-ips { 172.30.0.41 }
        add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain, 192.168.99.11 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain, 1.2.3.4 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain }
        add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns1/svc1:p80" : goto reject-chain }
        """)  # noqa: E501


def test_terminating_endpoints_serve_only_when_nothing_is_ready() -> None:
    terminating = ep("10.180.0.1", ready=False, serving=True, terminating=True)
    gone = ep("10.180.0.2", ready=False, serving=False, terminating=True)
    assert body(svc(endpoints=(terminating, gone))) == golden(f"""
        add chain ip kube-proxy {SVC}
        {R} {SVC} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)
    with_ready = body(svc(endpoints=(terminating, ep("10.180.0.3"))))
    assert "10.180.0.1" not in with_ready and "dnat to 10.180.0.3:80" in with_ready
    # Only not-serving endpoints: nothing usable anywhere, so REJECT.
    assert "goto reject-chain" in body(svc(endpoints=(gone,)))


def test_masquerade_all_and_unknown_pod_network() -> None:
    everything = dataclasses.replace(NODE, masquerade_all=True)
    assert f"{R} {SVC} ip daddr 172.30.0.41 jump mark-for-masquerade\n" in \
        body(svc(endpoints=(ep("10.180.0.1"),)), node=everything)
    unknown = dataclasses.replace(NODE, cluster_cidr="")
    text = body(svc(node_port=3001, external_local=True, endpoints=(ep("10.180.0.1", node="node1"),)), node=unknown)
    assert "jump mark-for-masquerade\n" not in text.split(f"{R} {EXT}")[0]
    assert "short-circuit pod traffic" not in text


def test_ipv6_addresses_never_reach_the_ip_table() -> None:
    assert body(svc(cluster_ip="fd00::1", endpoints=(ep("10.180.0.1"),))) == ""
    text = body(svc(external_ips=("2001:db8::1", "192.168.99.11"), endpoints=(ep("10.180.0.1"),)))
    assert "2001:db8" not in text and "192.168.99.11 . tcp . 80" in text


# --- partial syncs, removal, ownership ----------------------------------------------

A = svc(spn("ns1", "svca"), "172.30.0.41", endpoints=(ep("10.180.0.1"),))
B = svc(spn("ns2", "svcb"), "172.30.0.42", node_port=3002, endpoints=(ep("10.180.0.2"), ep("10.180.0.3")))
SVC_A = "service-N3T3KRF6-ns1/svca/tcp/p80"
SVC_B = "service-LKDGVVP2-ns2/svcb/tcp/p80"
EXT_B = "external-LKDGVVP2-ns2/svcb/tcp/p80"


def test_partial_sync_rewrites_only_the_changed_service() -> None:
    first = full(A, B)
    b2 = dataclasses.replace(B, endpoints=(ep("10.180.0.3"), ep("10.180.0.4")))
    plan = render(state(A, b2), frozenset({B.name}), first.table)
    assert not plan.full and plan.services_written == 1
    assert str(plan.tx) == golden(f"""
        add chain ip kube-proxy {SVC_B}
        flush chain ip kube-proxy {SVC_B}
        add chain ip kube-proxy {EXT_B}
        flush chain ip kube-proxy {EXT_B}
        {R} {SVC_B} ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC_B} numgen random mod 2 == 0 meta l4proto tcp dnat to 10.180.0.3:80
        {R} {SVC_B} meta l4proto tcp dnat to 10.180.0.4:80
        {R} {EXT_B} jump mark-for-masquerade
        {R} {EXT_B} goto {SVC_B}
        delete element ip kube-proxy hairpin-connections {{ 10.180.0.2 . 10.180.0.2 . tcp . 80 }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.4 . 10.180.0.4 . tcp . 80 }}
        """)
    assert plan.tx.rules == 5


def test_partial_sync_going_to_zero_endpoints_swaps_maps_and_deletes_chains() -> None:
    first = full(A, B)
    plan = render(state(A, dataclasses.replace(B, endpoints=())), frozenset({B.name}), first.table)
    assert str(plan.tx) == golden(f"""
        delete element ip kube-proxy service-ips {{ 172.30.0.42 . tcp . 80 }}
        delete element ip kube-proxy service-nodeports {{ tcp . 3002 }}
        delete element ip kube-proxy hairpin-connections {{ 10.180.0.2 . 10.180.0.2 . tcp . 80 }}
        delete element ip kube-proxy hairpin-connections {{ 10.180.0.3 . 10.180.0.3 . tcp . 80 }}
        add element ip kube-proxy no-endpoint-services {{ 172.30.0.42 . tcp . 80 comment "ns2/svcb:p80" : goto reject-chain }}
        add element ip kube-proxy no-endpoint-nodeports {{ tcp . 3002 comment "ns2/svcb:p80" : goto reject-chain }}
        flush chain ip kube-proxy {SVC_B}
        flush chain ip kube-proxy {EXT_B}
        delete chain ip kube-proxy {SVC_B}
        delete chain ip kube-proxy {EXT_B}
        """)  # noqa: E501


def test_removed_service_loses_elements_then_chains_and_sets() -> None:
    b = dataclasses.replace(B, affinity_timeout=10800)
    first = full(A, b)
    plan = render(state(A), frozenset({B.name}), first.table)
    assert plan.services_written == 0 and B.name not in plan.table.services
    a2, a3 = affinity_set(B.name, "10.180.0.2", 80), affinity_set(B.name, "10.180.0.3", 80)
    assert str(plan.tx) == golden(f"""
        delete element ip kube-proxy cluster-ips {{ 172.30.0.42 }}
        delete element ip kube-proxy service-ips {{ 172.30.0.42 . tcp . 80 }}
        delete element ip kube-proxy service-nodeports {{ tcp . 3002 }}
        delete element ip kube-proxy hairpin-connections {{ 10.180.0.2 . 10.180.0.2 . tcp . 80 }}
        delete element ip kube-proxy hairpin-connections {{ 10.180.0.3 . 10.180.0.3 . tcp . 80 }}
        flush chain ip kube-proxy {SVC_B}
        flush chain ip kube-proxy {EXT_B}
        delete chain ip kube-proxy {SVC_B}
        delete chain ip kube-proxy {EXT_B}
        delete set ip kube-proxy {a2}
        delete set ip kube-proxy {a3}
        """)


def test_full_sync_over_a_known_table_deletes_what_is_gone() -> None:
    first = full(A, B)
    text = str(render(state(A), None, first.table).tx)
    assert f"add chain ip kube-proxy {SVC_A}\nflush chain ip kube-proxy {SVC_A}\n" in text
    assert text.endswith(f"flush chain ip kube-proxy {SVC_B}\nflush chain ip kube-proxy {EXT_B}\n"
                         f"delete chain ip kube-proxy {SVC_B}\ndelete chain ip kube-proxy {EXT_B}\n")
    assert "172.30.0.42" not in text


def test_partial_sync_of_an_unchanged_service_touches_no_element() -> None:
    first = full(A, B)
    text = str(render(state(A, B), frozenset({A.name}), first.table).tx)
    assert "element" not in text and "delete" not in text and f"flush chain ip kube-proxy {SVC_A}" in text


def test_render_does_not_modify_the_previous_table() -> None:
    first = full(A, B)
    services, claims = dict(first.table.services), {k: dict(v) for k, v in first.table.claims.items()}
    render(state(A), frozenset({B.name}), first.table)
    assert first.table.services == services and first.table.claims == claims


def test_ports_of_one_service_share_its_cluster_ip() -> None:
    http = svc(spn(port="http"), endpoints=(ep("10.180.0.1"),))
    https = svc(spn(port="https"), port=443, endpoints=(ep("10.180.0.1", 443),))
    first = full(http, https)
    assert "add element ip kube-proxy cluster-ips { 172.30.0.41 }\n" in str(first.tx)
    plan = render(state(http), frozenset({https.name}), first.table)
    assert "cluster-ips" not in str(plan.tx)          # still claimed by the http port
    plan2 = render(state(), frozenset({http.name}), plan.table)
    assert "delete element ip kube-proxy cluster-ips { 172.30.0.41 }\n" in str(plan2.tx)


def test_two_services_claiming_one_external_ip_the_least_name_wins() -> None:
    x = svc(spn("ns1", "x"), "172.30.0.41", external_ips=("192.168.99.11",), endpoints=(ep("10.180.0.1"),))
    y = svc(spn("ns1", "y"), "172.30.0.42", external_ips=("192.168.99.11",), endpoints=(ep("10.180.0.2"),))
    ext_x, ext_y = svc_names(x.name).external, svc_names(y.name).external
    first = render(state(y, x), None, None)           # order of the state does not matter
    assert f"192.168.99.11 . tcp . 80 : goto {ext_x}" in str(first.tx)
    assert str(first.tx).count("192.168.99.11 . tcp . 80") == 1
    plan = render(state(y), frozenset({x.name}), first.table)
    assert f"delete element ip kube-proxy service-ips {{ 192.168.99.11 . tcp . 80 }}\n" \
           f"add element ip kube-proxy service-ips {{ 192.168.99.11 . tcp . 80 : goto {ext_y} }}\n" in str(plan.tx)


# --- against the real nft ----------------------------------------------------------------

@pytest.fixture(scope="module")
def scratch_netns() -> Iterator[str]:
    name = f"kpt{os.getpid() % 100000}-nftunit"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def everything() -> list[ServicePort]:
    """One ServicePort of every kind, on node1."""
    local = ep("10.180.0.1", node="node1")
    far = ep("10.180.2.1")
    return [
        svc(spn("ns1", "one"), "172.30.0.41", endpoints=(far,)),
        svc(spn("ns1", "two", proto="UDP"), "172.30.0.42", endpoints=(local, far)),
        svc(spn("ns1", "np"), "172.30.0.43", node_port=30001, endpoints=(local, far)),
        svc(spn("ns1", "lb"), "172.30.0.44", node_port=30002, load_balancer_ips=("1.2.3.4",),
            lb_source_ranges=("192.168.0.0/24", "203.0.113.0/25"), endpoints=(far,)),
        svc(spn("ns1", "ext"), "172.30.0.45", external_ips=("192.168.99.11",), endpoints=(far,)),
        svc(spn("ns1", "aff"), "172.30.0.46", affinity_timeout=10800, endpoints=(local, far)),
        svc(spn("ns1", "etp"), "172.30.0.47", node_port=30003, load_balancer_ips=("1.2.3.5",), external_local=True,
            endpoints=(local, far)),
        svc(spn("ns1", "etpnone"), "172.30.0.48", node_port=30004, external_local=True, endpoints=(far,)),
        svc(spn("ns1", "itp"), "172.30.0.49", internal_local=True, endpoints=(local, far)),
        svc(spn("ns1", "both"), "172.30.0.50", node_port=30005, internal_local=True, external_local=True,
            endpoints=(local,)),
        svc(spn("ns1", "none"), "172.30.0.51", node_port=30006, external_ips=("192.168.99.12",),
            load_balancer_ips=("1.2.3.6",)),
        svc(spn("ns1", "sctp", proto="SCTP"), "172.30.0.52", endpoints=(far,)),
    ]


def nft(netns: str, text: str, *flags: str) -> None:
    r = run(["nft", *flags, "-f", "-"], input=text, netns=netns, check=False)
    assert r.returncode == 0, r.stderr


def test_rendered_text_passes_nft_check(scratch_netns: str) -> None:
    nft(scratch_netns, str(full(*everything()).tx), "--check")


def test_fresh_partial_and_full_syncs_apply_in_sequence(scratch_netns: str) -> None:
    sps = everything()
    plan = full(*sps)
    nft(scratch_netns, str(plan.tx))
    table = plan.table
    # Every kind of change, one partial sync each, applied to the real table.
    steps: list[tuple[ServicePortName, ServicePort | None]] = [
        (sps[0].name, dataclasses.replace(sps[0], endpoints=())),
        (sps[0].name, dataclasses.replace(sps[0], endpoints=(ep("10.180.3.1"),))),
        (sps[3].name, dataclasses.replace(sps[3], lb_source_ranges=())),
        (sps[5].name, dataclasses.replace(sps[5], affinity_timeout=60)),     # `add set` again, new timeout
        (sps[5].name, dataclasses.replace(sps[5], affinity_timeout=60, endpoints=(ep("10.180.0.9", node="node1"),))),
        (sps[6].name, dataclasses.replace(sps[6], endpoints=sps[6].endpoints[1:])),
        (sps[10].name, dataclasses.replace(sps[10], endpoints=(ep("10.180.0.1"),))),
        (sps[1].name, None),
        (sps[5].name, None),
        (sps[6].name, None),          # external-… refers to service-…: both go
        (sps[3].name, None),
    ]
    current = {sp.name: sp for sp in sps}
    for name, new in steps:
        if new is None:
            del current[name]
        else:
            current[name] = new
        plan = render(ProxyState(dict(current), NODE), frozenset({name}), table)
        nft(scratch_netns, str(plan.tx))
        table = plan.table
    nft(scratch_netns, str(render(ProxyState(dict(current), NODE), None, table).tx))
    listing = run(["nft", "list", "table", "ip", "kube-proxy"], netns=scratch_netns).stdout
    assert svc_names(sps[1].name).cluster not in listing and "affinity-" not in listing
    assert "10.180.3.1 . 10.180.3.1 . tcp . 80" in listing


def test_sync_result_counts_the_rules_it_wrote(scratch_netns: str) -> None:
    backend = NftablesBackend(scratch_netns)
    result = backend.sync(state(*everything()), None)
    assert result.full and result.services_written == len(everything())
    assert result.rules == backend.last_transaction.count("\nadd rule ") > 23
    backend.cleanup()


def test_backend_reports_nft_errors_with_the_offending_line(scratch_netns: str) -> None:
    backend = NftablesBackend(scratch_netns)
    good = state(A)
    assert backend.sync(good, None).full
    bad = state(A, svc(spn("ns9", "bad"), "172.30.0.99", port=70000, endpoints=(ep("10.180.0.9"),)))
    with pytest.raises(ApplyError) as err:
        backend.sync(bad, frozenset({spn("ns9", "bad")}))
    assert "partial sync" in str(err.value) and "70000" in str(err.value)
    # Our memory may be wrong now: the next sync replaces the table, whatever it is asked.
    result = backend.sync(good, frozenset({A.name}))
    assert result.full and "delete table ip kube-proxy" in backend.last_transaction
    backend.cleanup()
    assert run(["nft", "list", "tables"], netns=scratch_netns).stdout.strip() == ""
