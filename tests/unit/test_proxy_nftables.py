"""kube-proxy's nftables renderer, golden: exact `nft -f` text per kind of Service.

The address plan is upstream's proxier_test.go (ClusterIPs 172.30.0.4x, pod
network 10.0.0.0/8, endpoints 10.180.x.y, node 192.168.0.2), so chain names
match the ones upstream's tests print (`service-ULMVA6XW-ns1/svc1/tcp/p80`,
`endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80`).

Two layouts (see kinns/proxy/nftables.py).  The endpoint-chain layout, used
up to 1,000 endpoints, is upstream's: `test_overall_rules_match_upstream`
renders the six Services of upstream's TestOverallNFTablesRules and
compares, line for line, with the rules upstream expects.  Each golden test
renders one ServicePort into a fresh table and compares what follows the
skeleton; the large-cluster layout has its own goldens (forced with a
threshold of -1: "more than -1 endpoints"), and the switch between the two
its own tests.  The skeleton, partial syncs, removal and element ownership
have their own tests.  The last tests feed the rendered text of both
layouts to the real nft (1.0.6) in a scratch network namespace, so the
syntax is proven, not assumed.
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
from kinns.proxy.nftables import (ENDPOINT_CHAINS, LARGE_CLUSTER, NftablesBackend, Plan, TableState, Transaction,
                                  affinity_set, choose_layout, endpoint_chain, hash_and_truncate, render,
                                  svc_names)

NODE = NodeFacts("node1", ("192.168.0.2",), "10.0.0.0/8")
LARGE = -1          # a threshold every state is over: forces the large-cluster layout


def spn(ns: str = "ns1", name: str = "svc1", port: str = "p80", proto: str = "TCP") -> ServicePortName:
    return ServicePortName(ns, name, port, proto)


def ep(ip: str, port: int = 80, node: str = "node2", **conditions: bool) -> Endpoint:
    return Endpoint(ip, port, node, **conditions)


def svc(name: ServicePortName | None = None, cluster_ip: str = "172.30.0.41", port: int = 80,
        **kw: Any) -> ServicePort:
    return ServicePort(name or spn(), cluster_ip, port, **kw)


def state(*sps: ServicePort, node: NodeFacts = NODE) -> ProxyState:
    return ProxyState({sp.name: sp for sp in sps}, node)


def full(*sps: ServicePort, node: NodeFacts = NODE, threshold: int = 1000) -> Plan:
    return render(state(*sps, node=node), None, None, threshold=threshold)


SKELETON = str(full().tx)
SKELETON_LARGE = str(full(threshold=LARGE).tx)


def body(*sps: ServicePort, node: NodeFacts = NODE, large: bool = False) -> str:
    """What a fresh full sync writes after the skeleton (in the large-cluster layout with `large`)."""
    plan = full(*sps, node=node, threshold=LARGE if large else 1000)
    assert plan.layout == (LARGE_CLUSTER if large else ENDPOINT_CHAINS)
    text, skeleton = str(plan.tx), SKELETON_LARGE if large else SKELETON
    assert text.startswith(skeleton)
    return text[len(skeleton):]


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def one_per_line(text: str) -> list[str]:
    """`nft -f` lines, sorted, with every `add element … { a, b }` split into
    one line per element as upstream's tests print them."""
    out = []
    for line in text.splitlines():
        if line.startswith("add element ") and ", " in line:
            head, items = line[:-2].split(" { ", 1)
            out += [f"{head} {{ {item} }}" for item in items.split(", ")]
        elif line.strip():
            out.append(line)
    return sorted(out)


SVC = "service-ULMVA6XW-ns1/svc1/tcp/p80"
LOCAL = "local-ULMVA6XW-ns1/svc1/tcp/p80"
EXT = "external-ULMVA6XW-ns1/svc1/tcp/p80"
FW = "firewall-ULMVA6XW-ns1/svc1/tcp/p80"
EP1 = "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"       # 10.180.0.1:80
EP2 = "endpoint-MLKSHPWN-ns1/svc1/tcp/p80__10.180.2.1/80"       # 10.180.2.1:80
R = "add rule ip kube-proxy"
MASQ = "ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"


# --- names and the transaction ------------------------------------------------

def test_chain_names_match_upstream() -> None:
    # Values printed by upstream's proxier_test.go for the same names.
    assert svc_names(spn()).cluster == SVC
    assert svc_names(spn("ns2", "svc2")).external == "external-42NFTM6N-ns2/svc2/tcp/p80"
    assert endpoint_chain(spn(), "10.180.0.1", 80) == EP1
    assert endpoint_chain(spn("ns4", "svc4"), "10.180.0.5", 80) == "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"
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
        add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
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
    assert full().tx.rules == 22


def test_large_cluster_skeleton_adds_the_hairpin_set_and_its_rule() -> None:
    # Endpoint chains mark hairpin traffic themselves; without them,
    # masquerading looks the connection up in hairpin-connections, first.
    nodeports = 'add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }\n'  # noqa: E501
    mark = "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000\n"
    assert SKELETON_LARGE == SKELETON.replace(nodeports, nodeports + (
        "add set ip kube-proxy hairpin-connections { type ipv4_addr . ipv4_addr . inet_proto . inet_service ;"
        ' comment "service hairpin connections" ; }\n')).replace(mark, mark + (
            "add rule ip kube-proxy masquerading ct status dnat ip saddr . ip daddr . meta l4proto . th dport"
            " @hairpin-connections masquerade fully-random\n"))
    assert full(threshold=LARGE).tx.rules == 23


def test_skeleton_over_a_known_table_flushes_instead_of_replacing() -> None:
    for prev, sets in ((TableState(), ("cluster-ips",)),
                       (TableState(layout=LARGE_CLUSTER), ("cluster-ips", "hairpin-connections"))):
        text = str(render(state(), None, prev, threshold=LARGE if prev.layout == LARGE_CLUSTER else 1000).tx)
        assert "delete table" not in text
        for line in ("add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }\n"
                     "flush chain ip kube-proxy nat-prerouting\n",
                     "add chain ip kube-proxy services\nflush chain ip kube-proxy services\n",
                     "flush map ip kube-proxy service-ips\n", *(f"flush set ip kube-proxy {s}\n" for s in sets)):
            assert line in text


# --- upstream's TestOverallNFTablesRules ---------------------------------------

def upstream_services() -> list[ServicePort]:
    """The six Services of upstream's TestOverallNFTablesRules."""
    return [
        svc(spn("ns1", "svc1"), "172.30.0.41", endpoints=(ep("10.180.0.1"),)),
        # LoadBalancer, ETP=Local, whose one endpoint is on another node.
        svc(spn("ns2", "svc2"), "172.30.0.42", node_port=3001, load_balancer_ips=("1.2.3.4",),
            external_ips=("192.168.99.22",), external_local=True, health_check_node_port=30000,
            endpoints=(ep("10.180.0.2"),)),
        svc(spn("ns3", "svc3"), "172.30.0.43", node_port=3003, endpoints=(ep("10.180.0.3"),)),
        svc(spn("ns4", "svc4"), "172.30.0.44", external_ips=("192.168.99.33",),
            endpoints=(ep("10.180.0.4"), ep("10.180.0.5", node="node1"))),
        # LoadBalancer, ETP=Cluster, a source range, ClientIP affinity.
        svc(spn("ns5", "svc5"), "172.30.0.45", node_port=3002, load_balancer_ips=("5.6.7.8",),
            lb_source_ranges=(" 203.0.113.0/25",), affinity_timeout=10800, health_check_node_port=30000,
            endpoints=(ep("10.180.0.3"),)),
        svc(spn("ns6", "svc6"), "172.30.0.46"),
    ]


# What upstream's test expects after its base rules, one element per line.
UPSTREAM_OVERALL = golden('''
    add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
    add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
    add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
    add element ip kube-proxy cluster-ips { 172.30.0.41 }
    add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }

    add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
    add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
    add chain ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80
    add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"
    add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
    add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"
    add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
    add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80
    add element ip kube-proxy cluster-ips { 172.30.0.42 }
    add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy service-ips { 192.168.99.22 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy service-ips { 1.2.3.4 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
    add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }
    add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop }
    add element ip kube-proxy no-endpoint-services { 192.168.99.22 . tcp . 80 comment "ns2/svc2:p80" : drop }

    add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 }
    add chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 jump mark-for-masquerade
    add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto service-4AT6LBPK-ns3/svc3/tcp/p80
    add chain ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80
    add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
    add element ip kube-proxy cluster-ips { 172.30.0.43 }
    add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
    add element ip kube-proxy service-nodeports { tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80 }

    add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
    add chain ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80
    add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 jump mark-for-masquerade
    add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 goto service-LAUZTJTB-ns4/svc4/tcp/p80
    add chain ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80
    add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 ip saddr 10.180.0.5 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 meta l4proto tcp dnat to 10.180.0.5:80
    add chain ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80
    add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 ip saddr 10.180.0.4 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 meta l4proto tcp dnat to 10.180.0.4:80
    add element ip kube-proxy cluster-ips { 172.30.0.44 }
    add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
    add element ip kube-proxy service-ips { 192.168.99.33 . tcp . 80 : goto external-LAUZTJTB-ns4/svc4/tcp/p80 }

    add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
    add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
    add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
    add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
    add chain ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80
    add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 jump mark-for-masquerade
    add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 goto service-HVFWP5L3-ns5/svc5/tcp/p80
    add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
    add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
    add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
    add chain ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80
    add rule ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr != { 203.0.113.0/25 } drop
    add element ip kube-proxy cluster-ips { 172.30.0.45 }
    add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto service-HVFWP5L3-ns5/svc5/tcp/p80 }
    add element ip kube-proxy service-ips { 5.6.7.8 . tcp . 80 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
    add element ip kube-proxy service-nodeports { tcp . 3002 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
    add element ip kube-proxy firewall-ips { 5.6.7.8 . tcp . 80 : goto firewall-HVFWP5L3-ns5/svc5/tcp/p80 }

    add element ip kube-proxy cluster-ips { 172.30.0.46 }
    add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
    ''')  # noqa: E501


def test_overall_rules_match_upstream() -> None:
    # Compared as upstream compares: the same lines, in any order.
    assert one_per_line(body(*upstream_services())) == one_per_line(UPSTREAM_OVERALL)


# --- one ServicePort of each kind (endpoint-chain layout) --------------------

def test_cluster_ip_one_endpoint() -> None:
    assert body(svc(endpoints=(ep("10.180.0.1"),))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EP1}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        """)


def test_cluster_ip_two_endpoints_one_random_choice() -> None:
    ep2 = endpoint_chain(spn(), "10.180.2.1", 8080)
    assert body(svc(endpoints=(ep("10.180.0.1"), ep("10.180.2.1", 8080)))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EP1}
        add chain ip kube-proxy {ep2}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 2 vmap {{ 0 : goto {EP1} , 1 : goto {ep2} }}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {ep2} ip saddr 10.180.2.1 jump mark-for-masquerade
        {R} {ep2} meta l4proto tcp dnat to 10.180.2.1:8080
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        """)


def test_three_endpoints_and_udp() -> None:
    name = spn(proto="UDP")
    text = body(svc(name, endpoints=(ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"))))
    chain, eps = svc_names(name).cluster, [endpoint_chain(name, f"10.180.0.{i}", 80) for i in (1, 2, 3)]
    assert chain == "service-YLEZLEQ5-ns1/svc1/udp/p80"
    assert f"{R} {chain} numgen random mod 3 vmap {{ 0 : goto {eps[0]} , 1 : goto {eps[1]} , 2 : goto {eps[2]} }}\n" \
        in text
    assert f"{R} {eps[2]} meta l4proto udp dnat to 10.180.0.3:80\n" in text
    assert "172.30.0.41 . udp . 80 : goto" in text


def test_node_port() -> None:
    assert body(svc(node_port=3001, endpoints=(ep("10.180.0.1"),))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        add chain ip kube-proxy {EP1}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
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
        add chain ip kube-proxy {EP1}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {FW} ip saddr != {{ 10.1.0.0/16, 203.0.113.0/25 }} drop
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 1.2.3.4 . tcp . 80 : goto {EXT}, 5.6.7.8 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy firewall-ips {{ 1.2.3.4 . tcp . 80 : goto {FW}, 5.6.7.8 . tcp . 80 : goto {FW} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
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
        add chain ip kube-proxy {EP1}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 192.168.99.11 . tcp . 80 : goto {EXT} }}
        """)  # noqa: E501


def test_session_affinity() -> None:
    # The service chain sends a known client to its endpoint's chain; the
    # endpoint chain records every client it serves.
    a1, a2 = affinity_set(spn(), "10.180.0.1", 80), affinity_set(spn(), "10.180.2.1", 80)
    assert a2 == "affinity-MLKSHPWN-ns1/svc1/tcp/p80__10.180.2.1/80"
    assert body(svc(affinity_timeout=600, endpoints=(ep("10.180.0.1"), ep("10.180.2.1")))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EP1}
        add chain ip kube-proxy {EP2}
        add set ip kube-proxy {a1} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}
        add set ip kube-proxy {a2} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}
        {R} {SVC} {MASQ}
        {R} {SVC} ip saddr @{a1} goto {EP1}
        {R} {SVC} ip saddr @{a2} goto {EP2}
        {R} {SVC} numgen random mod 2 vmap {{ 0 : goto {EP1} , 1 : goto {EP2} }}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} update @{a1} {{ ip saddr }}
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EP2} ip saddr 10.180.2.1 jump mark-for-masquerade
        {R} {EP2} update @{a2} {{ ip saddr }}
        {R} {EP2} meta l4proto tcp dnat to 10.180.2.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        """)


def test_external_traffic_policy_local() -> None:
    # One endpoint here (node1), one elsewhere: external traffic only goes to
    # the local one, unmasqueraded; pods and the node itself go cluster-wide.
    # Both policy chains choose among the same endpoint chains.
    sp = svc(node_port=3001, load_balancer_ips=("1.2.3.4",), external_local=True,
             endpoints=(ep("10.180.0.1", node="node1"), ep("10.180.2.1")))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {LOCAL}
        add chain ip kube-proxy {EXT}
        add chain ip kube-proxy {EP1}
        add chain ip kube-proxy {EP2}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 2 vmap {{ 0 : goto {EP1} , 1 : goto {EP2} }}
        {R} {LOCAL} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EXT} ip saddr 10.0.0.0/8 goto {SVC} comment "short-circuit pod traffic"
        {R} {EXT} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
        {R} {EXT} fib saddr type local goto {SVC} comment "short-circuit local traffic"
        {R} {EXT} goto {LOCAL}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EP2} ip saddr 10.180.2.1 jump mark-for-masquerade
        {R} {EP2} meta l4proto tcp dnat to 10.180.2.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 1.2.3.4 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        """)  # noqa: E501


def test_external_traffic_policy_local_without_local_endpoint_drops_external_traffic() -> None:
    sp = svc(node_port=3001, load_balancer_ips=("1.2.3.4",), external_local=True, endpoints=(ep("10.180.2.1"),))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        add chain ip kube-proxy {EP2}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP2} }}
        {R} {EXT} ip saddr 10.0.0.0/8 goto {SVC} comment "short-circuit pod traffic"
        {R} {EXT} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
        {R} {EXT} fib saddr type local goto {SVC} comment "short-circuit local traffic"
        {R} {EP2} ip saddr 10.180.2.1 jump mark-for-masquerade
        {R} {EP2} meta l4proto tcp dnat to 10.180.2.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC}, 1.2.3.4 . tcp . 80 : goto {EXT} }}
        add element ip kube-proxy no-endpoint-services {{ 1.2.3.4 . tcp . 80 comment "ns1/svc1:p80" : drop }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy no-endpoint-nodeports {{ tcp . 3001 comment "ns1/svc1:p80" : drop }}
        """)  # noqa: E501


def test_internal_traffic_policy_local() -> None:
    # Only the local endpoint gets a chain: the other one is unreachable from here.
    sp = svc(internal_local=True, endpoints=(ep("10.180.0.1", node="node1"), ep("10.180.2.1")))
    assert body(sp) == golden(f"""
        add chain ip kube-proxy {LOCAL}
        add chain ip kube-proxy {EP1}
        {R} {LOCAL} {MASQ}
        {R} {LOCAL} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {LOCAL} }}
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
        add chain ip kube-proxy {EP1}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {LOCAL} {MASQ}
        {R} {LOCAL} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EXT} ip saddr 10.0.0.0/8 goto {SVC} comment "short-circuit pod traffic"
        {R} {EXT} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
        {R} {EXT} fib saddr type local goto {SVC} comment "short-circuit local traffic"
        {R} {EXT} goto {LOCAL}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {LOCAL} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        """)


@pytest.mark.parametrize("large", [False, True], ids=["endpoint-chains", "large-cluster"])
def test_no_endpoints_rejects_every_address(large: bool) -> None:
    sp = svc(node_port=3001, external_ips=("192.168.99.11",), load_balancer_ips=("1.2.3.4",))
    assert body(sp, large=large) == golden("""
        add element ip kube-proxy cluster-ips { 172.30.0.41 }
        add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain, 192.168.99.11 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain, 1.2.3.4 . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain }
        add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns1/svc1:p80" : goto reject-chain }
        """)  # noqa: E501


def test_terminating_endpoints_serve_only_when_nothing_is_ready() -> None:
    terminating = ep("10.180.0.1", ready=False, serving=True, terminating=True)
    gone = ep("10.180.0.2", ready=False, serving=False, terminating=True)
    assert body(svc(endpoints=(terminating, gone))) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EP1}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 1 vmap {{ 0 : goto {EP1} }}
        {R} {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade
        {R} {EP1} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        """)
    with_ready = body(svc(endpoints=(terminating, ep("10.180.0.3"))))
    assert "10.180.0.1" not in with_ready and "dnat to 10.180.0.3:80" in with_ready
    # Only not-serving endpoints: nothing usable anywhere, so REJECT.
    assert "goto reject-chain" in body(svc(endpoints=(gone,)))


@pytest.mark.parametrize("large", [False, True], ids=["endpoint-chains", "large-cluster"])
def test_masquerade_all_and_unknown_pod_network(large: bool) -> None:
    everything = dataclasses.replace(NODE, masquerade_all=True)
    assert f"{R} {SVC} ip daddr 172.30.0.41 jump mark-for-masquerade\n" in \
        body(svc(endpoints=(ep("10.180.0.1"),)), node=everything, large=large)
    unknown = dataclasses.replace(NODE, cluster_cidr="")
    text = body(svc(node_port=3001, external_local=True, endpoints=(ep("10.180.0.1", node="node1"),)), node=unknown,
                large=large)
    assert "jump mark-for-masquerade\n" not in text.split(f"{R} {EXT}")[0]
    assert "short-circuit pod traffic" not in text


@pytest.mark.parametrize("large", [False, True], ids=["endpoint-chains", "large-cluster"])
def test_ipv6_addresses_never_reach_the_ip_table(large: bool) -> None:
    assert body(svc(cluster_ip="fd00::1", endpoints=(ep("10.180.0.1"),)), large=large) == ""
    text = body(svc(external_ips=("2001:db8::1", "192.168.99.11"), endpoints=(ep("10.180.0.1"),)), large=large)
    assert "2001:db8" not in text and "192.168.99.11 . tcp . 80" in text


# --- the large-cluster layout: no endpoint chains ----------------------------------

def test_large_cluster_one_endpoint() -> None:
    assert body(svc(node_port=3001, endpoints=(ep("10.180.0.1"),)), large=True) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {EXT}
        {R} {SVC} {MASQ}
        {R} {SVC} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {EXT} jump mark-for-masquerade
        {R} {EXT} goto {SVC}
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXT} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)


def test_large_cluster_two_endpoints_each_get_half() -> None:
    assert body(svc(endpoints=(ep("10.180.0.1"), ep("10.180.2.1", 8080))), large=True) == golden(f"""
        add chain ip kube-proxy {SVC}
        {R} {SVC} {MASQ}
        {R} {SVC} numgen random mod 2 == 0 meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} meta l4proto tcp dnat to 10.180.2.1:8080
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80, 10.180.2.1 . 10.180.2.1 . tcp . 8080 }}
        """)  # noqa: E501


def test_large_cluster_three_endpoints_probabilities_and_udp() -> None:
    text = body(svc(spn(proto="UDP"), endpoints=(ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"))), large=True)
    chain = "service-YLEZLEQ5-ns1/svc1/udp/p80"
    assert f"{R} {chain} numgen random mod 3 == 0 meta l4proto udp dnat to 10.180.0.1:80\n" \
           f"{R} {chain} numgen random mod 2 == 0 meta l4proto udp dnat to 10.180.0.2:80\n" \
           f"{R} {chain} meta l4proto udp dnat to 10.180.0.3:80\n" in text
    assert " endpoint-" not in text


def test_large_cluster_session_affinity() -> None:
    a1, a2 = affinity_set(spn(), "10.180.0.1", 80), affinity_set(spn(), "10.180.2.1", 80)
    sp = svc(affinity_timeout=600, endpoints=(ep("10.180.0.1"), ep("10.180.2.1")))
    assert body(sp, large=True) == golden(f"""
        add chain ip kube-proxy {SVC}
        add set ip kube-proxy {a1} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}
        add set ip kube-proxy {a2} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}
        {R} {SVC} {MASQ}
        {R} {SVC} ip saddr @{a1} update @{a1} {{ ip saddr }} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} ip saddr @{a2} update @{a2} {{ ip saddr }} meta l4proto tcp dnat to 10.180.2.1:80
        {R} {SVC} numgen random mod 2 == 0 update @{a1} {{ ip saddr }} meta l4proto tcp dnat to 10.180.0.1:80
        {R} {SVC} update @{a2} {{ ip saddr }} meta l4proto tcp dnat to 10.180.2.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80, 10.180.2.1 . 10.180.2.1 . tcp . 80 }}
        """)  # noqa: E501


def test_large_cluster_external_traffic_policy_local() -> None:
    sp = svc(node_port=3001, load_balancer_ips=("1.2.3.4",), external_local=True,
             endpoints=(ep("10.180.0.1", node="node1"), ep("10.180.2.1")))
    assert body(sp, large=True) == golden(f"""
        add chain ip kube-proxy {SVC}
        add chain ip kube-proxy {LOCAL}
        add chain ip kube-proxy {EXT}
        {R} {SVC} {MASQ}
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


def test_large_cluster_internal_traffic_policy_local_hairpins_only_reachable_endpoints() -> None:
    sp = svc(internal_local=True, endpoints=(ep("10.180.0.1", node="node1"), ep("10.180.2.1")))
    assert body(sp, large=True) == golden(f"""
        add chain ip kube-proxy {LOCAL}
        {R} {LOCAL} {MASQ}
        {R} {LOCAL} meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips {{ 172.30.0.41 }}
        add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {LOCAL} }}
        add element ip kube-proxy hairpin-connections {{ 10.180.0.1 . 10.180.0.1 . tcp . 80 }}
        """)


# --- partial syncs, removal, ownership ----------------------------------------------

A = svc(spn("ns1", "svca"), "172.30.0.41", endpoints=(ep("10.180.0.1"),))
B = svc(spn("ns2", "svcb"), "172.30.0.42", node_port=3002, endpoints=(ep("10.180.0.2"), ep("10.180.0.3")))
SVC_A = "service-N3T3KRF6-ns1/svca/tcp/p80"
SVC_B = "service-LKDGVVP2-ns2/svcb/tcp/p80"
EXT_B = "external-LKDGVVP2-ns2/svcb/tcp/p80"
EP_B2, EP_B3, EP_B4 = (endpoint_chain(B.name, f"10.180.0.{i}", 80) for i in (2, 3, 4))


def test_partial_sync_rewrites_only_the_changed_service_and_its_endpoint_chains() -> None:
    first = full(A, B)
    b2 = dataclasses.replace(B, endpoints=(ep("10.180.0.3"), ep("10.180.0.4")))
    plan = render(state(A, b2), frozenset({B.name}), first.table)
    assert not plan.full and plan.services_written == 1 and plan.layout == ENDPOINT_CHAINS
    # 10.180.0.2 went: its chain is emptied and deleted once nothing jumps to it.
    assert str(plan.tx) == golden(f"""
        add chain ip kube-proxy {SVC_B}
        flush chain ip kube-proxy {SVC_B}
        add chain ip kube-proxy {EXT_B}
        flush chain ip kube-proxy {EXT_B}
        add chain ip kube-proxy {EP_B3}
        flush chain ip kube-proxy {EP_B3}
        add chain ip kube-proxy {EP_B4}
        flush chain ip kube-proxy {EP_B4}
        {R} {SVC_B} ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        {R} {SVC_B} numgen random mod 2 vmap {{ 0 : goto {EP_B3} , 1 : goto {EP_B4} }}
        {R} {EXT_B} jump mark-for-masquerade
        {R} {EXT_B} goto {SVC_B}
        {R} {EP_B3} ip saddr 10.180.0.3 jump mark-for-masquerade
        {R} {EP_B3} meta l4proto tcp dnat to 10.180.0.3:80
        {R} {EP_B4} ip saddr 10.180.0.4 jump mark-for-masquerade
        {R} {EP_B4} meta l4proto tcp dnat to 10.180.0.4:80
        flush chain ip kube-proxy {EP_B2}
        delete chain ip kube-proxy {EP_B2}
        """)
    assert plan.tx.rules == 8


def test_large_cluster_partial_sync_swaps_hairpin_elements() -> None:
    first = full(A, B, threshold=LARGE)
    b2 = dataclasses.replace(B, endpoints=(ep("10.180.0.3"), ep("10.180.0.4")))
    plan = render(state(A, b2), frozenset({B.name}), first.table, threshold=LARGE)
    assert not plan.full and plan.services_written == 1 and plan.layout == LARGE_CLUSTER
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
        add element ip kube-proxy no-endpoint-services {{ 172.30.0.42 . tcp . 80 comment "ns2/svcb:p80" : goto reject-chain }}
        add element ip kube-proxy no-endpoint-nodeports {{ tcp . 3002 comment "ns2/svcb:p80" : goto reject-chain }}
        flush chain ip kube-proxy {SVC_B}
        flush chain ip kube-proxy {EXT_B}
        flush chain ip kube-proxy {EP_B2}
        flush chain ip kube-proxy {EP_B3}
        delete chain ip kube-proxy {SVC_B}
        delete chain ip kube-proxy {EXT_B}
        delete chain ip kube-proxy {EP_B2}
        delete chain ip kube-proxy {EP_B3}
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
        flush chain ip kube-proxy {SVC_B}
        flush chain ip kube-proxy {EXT_B}
        flush chain ip kube-proxy {EP_B2}
        flush chain ip kube-proxy {EP_B3}
        delete chain ip kube-proxy {SVC_B}
        delete chain ip kube-proxy {EXT_B}
        delete chain ip kube-proxy {EP_B2}
        delete chain ip kube-proxy {EP_B3}
        delete set ip kube-proxy {a2}
        delete set ip kube-proxy {a3}
        """)


def test_an_endpoint_leaving_an_affinity_service_takes_its_chain_and_set() -> None:
    b = dataclasses.replace(B, affinity_timeout=10800)
    first = full(A, b)
    plan = render(state(A, dataclasses.replace(b, endpoints=b.endpoints[1:])), frozenset({B.name}), first.table)
    text = str(plan.tx)
    a2, a3 = affinity_set(B.name, "10.180.0.2", 80), affinity_set(B.name, "10.180.0.3", 80)
    # The kept endpoint's set is added again (a no-op: its clients stay), the other one goes.
    assert f"add set ip kube-proxy {a3} " in text and f"add set ip kube-proxy {a2} " not in text
    assert text.endswith(f"flush chain ip kube-proxy {EP_B2}\ndelete chain ip kube-proxy {EP_B2}\n"
                         f"delete set ip kube-proxy {a2}\n")


def test_full_sync_over_a_known_table_deletes_what_is_gone() -> None:
    first = full(A, B)
    text = str(render(state(A), None, first.table).tx)
    assert "delete table" not in text
    assert f"add chain ip kube-proxy {SVC_A}\nflush chain ip kube-proxy {SVC_A}\n" in text
    assert text.endswith(f"flush chain ip kube-proxy {SVC_B}\nflush chain ip kube-proxy {EXT_B}\n"
                         f"flush chain ip kube-proxy {EP_B2}\nflush chain ip kube-proxy {EP_B3}\n"
                         f"delete chain ip kube-proxy {SVC_B}\ndelete chain ip kube-proxy {EXT_B}\n"
                         f"delete chain ip kube-proxy {EP_B2}\ndelete chain ip kube-proxy {EP_B3}\n")
    assert "172.30.0.42" not in text


@pytest.mark.parametrize("threshold", [1000, LARGE], ids=["endpoint-chains", "large-cluster"])
def test_partial_sync_of_an_unchanged_service_touches_no_element(threshold: int) -> None:
    first = full(A, B, threshold=threshold)
    text = str(render(state(A, B), frozenset({A.name}), first.table, threshold=threshold).tx)
    assert "element" not in text and "delete" not in text and f"flush chain ip kube-proxy {SVC_A}" in text


def test_render_does_not_modify_the_previous_table() -> None:
    first = full(A, B)
    services, claims = dict(first.table.services), {k: dict(v) for k, v in first.table.claims.items()}
    render(state(A), frozenset({B.name}), first.table)
    render(state(A), frozenset({B.name}), first.table, threshold=LARGE)
    assert first.table.services == services and first.table.claims == claims
    assert first.table.layout == ENDPOINT_CHAINS


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


# --- choosing the layout -------------------------------------------------------------

def many(n: int) -> ServicePort:
    """One ServicePort with n endpoints."""
    return svc(endpoints=tuple(ep(f"10.180.{i // 250}.{i % 250 + 1}") for i in range(n)))


def test_more_than_1000_endpoints_is_a_large_cluster() -> None:
    assert choose_layout(state(many(1000))) == (ENDPOINT_CHAINS, 1000)
    assert choose_layout(state(many(1001))) == (LARGE_CLUSTER, 1001)
    # Every endpoint counts, ready or not, local or not, as upstream counts them.
    not_ready = dataclasses.replace(B, endpoints=(ep("10.180.0.2", ready=False), ep("10.180.0.3", node="node1")))
    assert choose_layout(state(A, not_ready), threshold=2) == (LARGE_CLUSTER, 3)
    assert choose_layout(state(A, not_ready), threshold=3) == (ENDPOINT_CHAINS, 3)


def test_crossing_the_threshold_replaces_the_table_both_ways() -> None:
    first = render(state(A, B), None, None, threshold=3)              # 3 endpoints: not more than 3
    assert first.layout == ENDPOINT_CHAINS and first.endpoints == 3
    grown = dataclasses.replace(B, endpoints=(*B.endpoints, ep("10.180.0.4")))
    up = render(state(A, grown), frozenset({B.name}), first.table, threshold=3)
    # Asked for a partial sync, got a fresh one in the other layout: every Service is written.
    assert up.full and up.layout == LARGE_CLUSTER and up.endpoints == 4 and up.table.layout == LARGE_CLUSTER
    assert up.services_written == 2 and str(up.tx).startswith(SKELETON_LARGE)
    assert " endpoint-" not in str(up.tx) and "10.180.0.1 . 10.180.0.1 . tcp . 80" in str(up.tx)
    # Still over: partial syncs stay partial.
    again = render(state(A, grown), frozenset({A.name}), up.table, threshold=3)
    assert not again.full and again.layout == LARGE_CLUSTER
    down = render(state(A, B), frozenset({B.name}), again.table, threshold=3)
    assert down.full and down.layout == ENDPOINT_CHAINS and str(down.tx).startswith(SKELETON)
    assert "hairpin" not in str(down.tx) and f"add chain ip kube-proxy {EP_B2}\n" in str(down.tx)
    # A full sync in the other layout replaces the table too.
    assert str(render(state(A, B), None, up.table, threshold=3).tx).startswith(SKELETON)


# --- against the real nft ----------------------------------------------------------------

LAYOUTS = pytest.mark.parametrize("threshold", [1000, LARGE], ids=["endpoint-chains", "large-cluster"])


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


def listing(netns: str) -> str:
    return run(["nft", "list", "table", "ip", "kube-proxy"], netns=netns).stdout


SKELETON_NAMES = {line.split()[4] for line in SKELETON_LARGE.splitlines()
                  if line.startswith(("add chain", "add set", "add map"))}


def per_service(text: str, kind: str) -> set[str]:
    """The chains or sets of an `nft list table` that are not the skeleton's."""
    names = {line.split()[1] for line in text.splitlines() if line.startswith(f"\t{kind} ")}
    return names - SKELETON_NAMES


@LAYOUTS
def test_rendered_text_passes_nft_check(scratch_netns: str, threshold: int) -> None:
    nft(scratch_netns, str(full(*everything(), threshold=threshold).tx), "--check")
    nft(scratch_netns, str(full(*upstream_services(), threshold=threshold).tx), "--check")


@LAYOUTS
def test_fresh_partial_and_full_syncs_apply_in_sequence(scratch_netns: str, threshold: int) -> None:
    sps = everything()
    plan = full(*sps, threshold=threshold)
    nft(scratch_netns, str(plan.tx))
    table = plan.table
    # Every kind of change, one partial sync each, applied to the real table.
    steps: list[tuple[ServicePortName, ServicePort | None]] = [
        (sps[0].name, dataclasses.replace(sps[0], endpoints=())),
        (sps[0].name, dataclasses.replace(sps[0], endpoints=(ep("10.180.3.1"),))),
        (sps[3].name, dataclasses.replace(sps[3], lb_source_ranges=())),
        (sps[5].name, dataclasses.replace(sps[5], affinity_timeout=60)),     # `add set` again, new timeout
        (sps[5].name, dataclasses.replace(sps[5], affinity_timeout=60, endpoints=sps[5].endpoints[1:])),
        (sps[5].name, dataclasses.replace(sps[5], affinity_timeout=60, endpoints=(ep("10.180.0.9", node="node1"),))),
        (sps[6].name, dataclasses.replace(sps[6], endpoints=sps[6].endpoints[1:])),
        (sps[8].name, dataclasses.replace(sps[8], endpoints=sps[8].endpoints[1:])),    # no local one left
        (sps[10].name, dataclasses.replace(sps[10], endpoints=(ep("10.180.0.1"),))),
        (sps[1].name, None),
        (sps[5].name, None),
        (sps[6].name, None),          # external-… refers to service-…, which refers to endpoint-…: all go
        (sps[3].name, None),
    ]
    current = {sp.name: sp for sp in sps}
    for name, new in steps:
        if new is None:
            del current[name]
        else:
            current[name] = new
        plan = render(ProxyState(dict(current), NODE), frozenset({name}), table, threshold=threshold)
        assert not plan.full
        nft(scratch_netns, str(plan.tx))
        table = plan.table
        # The kernel holds exactly the per-Service chains and sets we remember: nothing stale.
        text = listing(scratch_netns)
        assert per_service(text, "chain") == {c for w in table.services.values() for c in w.chains}
        assert per_service(text, "set") == {s for w in table.services.values() for s in w.sets}
    nft(scratch_netns, str(render(ProxyState(dict(current), NODE), None, table, threshold=threshold).tx))
    text = listing(scratch_netns)
    assert svc_names(sps[1].name).cluster not in text and "affinity-" not in text
    new_endpoint = endpoint_chain(sps[0].name, "10.180.3.1", 80)
    if threshold == LARGE:
        assert "10.180.3.1 . 10.180.3.1 . tcp . 80" in text and " endpoint-" not in text
    else:
        assert f"chain {new_endpoint} {{" in text and "hairpin" not in text
        # Only the endpoint chains of what is left remain.
        left = {endpoint_chain(sp.name, e.ip, e.port) for sp in current.values()
                for e in (sp.endpoints if not sp.internal_local else
                          tuple(e for e in sp.endpoints if e.node == "node1"))}
        assert {line.split()[1] for line in text.splitlines() if line.startswith("\tchain endpoint-")} == left


def test_sync_result_counts_the_rules_and_names_the_layout(scratch_netns: str) -> None:
    backend = NftablesBackend(scratch_netns)
    result = backend.sync(state(*everything()), None)
    assert result.full and result.services_written == len(everything())
    assert result.rules == backend.last_transaction.count("\nadd rule ") > 22
    assert result.layout == backend.layout == ENDPOINT_CHAINS and result.endpoints == 16
    backend.cleanup()


def test_backend_switches_layouts_both_ways_on_the_real_table(scratch_netns: str) -> None:
    backend = NftablesBackend(scratch_netns, large_cluster_threshold=3)
    assert backend.sync(state(A, B), None).layout == ENDPOINT_CHAINS
    assert f"chain {EP_B2} {{" in listing(scratch_netns)
    grown = dataclasses.replace(B, endpoints=(*B.endpoints, ep("10.180.0.4")))
    up = backend.sync(state(A, grown), frozenset({B.name}))
    assert up.full and up.layout == backend.layout == LARGE_CLUSTER and up.endpoints == 4
    assert "delete table ip kube-proxy" in backend.last_transaction
    text = listing(scratch_netns)
    assert " endpoint-" not in text and "10.180.0.4 . 10.180.0.4 . tcp . 80" in text
    assert not backend.sync(state(A, grown), frozenset({A.name})).full
    down = backend.sync(state(A, B), frozenset({B.name}))
    assert down.full and down.layout == ENDPOINT_CHAINS and down.endpoints == 3
    text = listing(scratch_netns)
    assert "hairpin" not in text and f"chain {EP_B2} {{" in text and EP_B4 not in text
    assert not backend.sync(state(A, B), frozenset({B.name})).full
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
