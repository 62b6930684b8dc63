"""Userspace mode without sockets: the round-robin balancer and the portal rules.

The balancer (kinns.proxy.roundrobin) is stepped with a fake clock and a
fixed shuffle; the renderer (kinns.proxy.userspace.render and the
iptables-save readers) is compared with golden text.  Real packets are in
tests/integration/test_proxy_userspace.py.
"""

from __future__ import annotations

import textwrap

import pytest

from kinns.proxy.model import Endpoint, NodeFacts, ProxyState, ServicePort, ServicePortName
from kinns.proxy.roundrobin import NoEndpoints, RoundRobin, eligible_endpoints
from kinns.proxy.userspace import (
    ListenerKey,
    jump_fixes,
    listener_specs,
    missing,
    render,
    render_cleanup,
)

A = Endpoint("10.244.0.2", 80, "node1")
B = Endpoint("10.244.0.3", 80, "node1")
C = Endpoint("10.244.1.2", 80, "node2")
NODE = NodeFacts("node1", ("172.31.0.2",), cluster_cidr="10.244.0.0/16")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_shuffle(eps: list[Endpoint]) -> None:
    """Keep the given order, so the rotation is predictable."""


def balancer(clock: Clock | None = None) -> RoundRobin[str]:
    return RoundRobin(clock=clock or Clock(), shuffle=no_shuffle)


# --- round robin ---------------------------------------------------------------

def test_round_robin_hands_out_endpoints_in_turn() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B, C])
    assert [rr.next_endpoint("svc", f"10.0.0.{i}") for i in range(7)] == [A, B, C, A, B, C, A]


def test_a_new_endpoint_set_is_shuffled_and_restarts_the_rotation() -> None:
    rr: RoundRobin[str] = RoundRobin(clock=Clock(), shuffle=lambda eps: eps.reverse())
    rr.set_endpoints("svc", [A, B])
    assert rr.endpoints("svc") == (B, A)
    rr.next_endpoint("svc", "c")
    rr.set_endpoints("svc", [A, B, C])
    assert [rr.next_endpoint("svc", "c") for _ in range(3)] == [C, B, A]


def test_resync_with_the_same_addresses_keeps_the_rotation() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B, C])
    assert rr.next_endpoint("svc", "c") == A
    # Same set in another order, and B now terminating but still serving: nothing restarts.
    b_term = Endpoint(B.ip, B.port, B.node, ready=False, serving=True, terminating=True)
    rr.set_endpoints("svc", [C, b_term, A])
    assert rr.next_endpoint("svc", "c") == b_term
    assert rr.next_endpoint("svc", "c") == C


def test_no_endpoints_raises() -> None:
    rr = balancer()
    with pytest.raises(NoEndpoints):
        rr.next_endpoint("unknown", "c")
    rr.set_endpoints("svc", [])
    assert not rr.has_endpoints("svc")
    with pytest.raises(NoEndpoints):
        rr.next_endpoint("svc", "c")


def test_reset_without_affinity_just_moves_on() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B])
    assert rr.next_endpoint("svc", "c") == A
    assert rr.next_endpoint("svc", "c", reset=True) == B


# --- ClientIP affinity -------------------------------------------------------------

def test_affinity_sticks_per_client_and_others_keep_rotating() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B, C], affinity_timeout=10)
    assert rr.next_endpoint("svc", "10.0.0.1") == A
    assert rr.next_endpoint("svc", "10.0.0.2") == B
    assert [rr.next_endpoint("svc", "10.0.0.1") for _ in range(5)] == [A] * 5
    assert rr.next_endpoint("svc", "10.0.0.3") == C


def test_affinity_expires_after_the_timeout_and_each_use_restarts_it() -> None:
    clock = Clock()
    rr = balancer(clock)
    rr.set_endpoints("svc", [A, B], affinity_timeout=10)
    assert rr.next_endpoint("svc", "x") == A
    clock.now += 9
    assert rr.next_endpoint("svc", "x") == A        # used again: timeout restarts
    clock.now += 9
    assert rr.next_endpoint("svc", "x") == A
    clock.now += 10                                  # idle a full timeout: the record is stale
    assert rr.next_endpoint("svc", "x") == B
    assert rr.next_endpoint("svc", "x") == B


def test_reset_moves_a_sticky_client_to_the_next_endpoint_and_it_sticks_there() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B, C], affinity_timeout=60)
    assert rr.next_endpoint("svc", "x") == A
    assert rr.next_endpoint("svc", "x", reset=True) == B   # dialling A failed
    assert rr.next_endpoint("svc", "x") == B


def test_an_endpoint_leaving_releases_its_clients() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B], affinity_timeout=60)
    assert rr.next_endpoint("svc", "x") == A
    assert rr.next_endpoint("svc", "y") == B
    rr.set_endpoints("svc", [B, C], affinity_timeout=60)
    assert rr.next_endpoint("svc", "y") == B             # B stayed: y keeps it
    assert rr.next_endpoint("svc", "x") in (B, C)        # A left: x is balanced afresh
    assert rr.next_endpoint("svc", "x") == rr.next_endpoint("svc", "x")


def test_changing_the_affinity_setting_forgets_sticky_clients() -> None:
    rr = balancer()
    rr.set_endpoints("svc", [A, B], affinity_timeout=60)
    assert rr.next_endpoint("svc", "x") == A
    rr.set_endpoints("svc", [A, B], affinity_timeout=0)
    assert rr.next_endpoint("svc", "x") == B
    assert rr.next_endpoint("svc", "x") == A


def test_expire_affinity_drops_only_stale_records() -> None:
    clock = Clock()
    rr = balancer(clock)
    rr.set_endpoints("svc", [A, B], affinity_timeout=10)
    rr.next_endpoint("svc", "old")
    clock.now += 5
    rr.next_endpoint("svc", "new")
    clock.now += 6
    assert rr.expire_affinity() == 1
    assert rr.expire_affinity() == 0


# --- eligibility (traffic policies, terminating fallback) -------------------------

def sp(**kw: object) -> ServicePort:
    base: dict[str, object] = dict(name=ServicePortName("ns", "svc", "http", "TCP"), cluster_ip="10.96.0.10",
                                   port=80)
    base.update(kw)
    return ServicePort(**base)  # type: ignore[arg-type]


def test_eligible_endpoints_follow_the_traffic_policies() -> None:
    both = sp(node_port=30080, endpoints=(A, C), external_local=True)
    assert eligible_endpoints(both, "node1", external=False) == (A, C)
    assert eligible_endpoints(both, "node1", external=True) == (A,)
    itp = sp(endpoints=(A, C), internal_local=True)
    assert eligible_endpoints(itp, "node2", external=False) == (C,)


def test_terminating_endpoints_only_when_nothing_is_ready() -> None:
    term = Endpoint("10.244.0.9", 80, "node1", ready=False, serving=True, terminating=True)
    assert eligible_endpoints(sp(endpoints=(A, term)), "node1", external=False) == (A,)
    assert eligible_endpoints(sp(endpoints=(term,)), "node1", external=False) == (term,)


# --- listeners and portal rules ---------------------------------------------------

WEB = sp(name=ServicePortName("ns", "web", "http", "TCP"), cluster_ip="10.96.0.10", node_port=30080,
         endpoints=(A, B, C))
DNS = sp(name=ServicePortName("kube-system", "dns", "", "UDP"), cluster_ip="10.96.0.53", port=53, endpoints=())
LB = sp(name=ServicePortName("ns", "lb", "", "TCP"), cluster_ip="10.96.0.20", node_port=30090,
        external_ips=("192.0.2.10",), load_balancer_ips=("172.31.0.200",), external_local=True,
        affinity_timeout=60, endpoints=(C,))
STREAM = sp(name=ServicePortName("ns", "sctp", "", "SCTP"), cluster_ip="10.96.0.30", endpoints=(A,))


def state(*sps: ServicePort) -> ProxyState:
    return ProxyState({s.name: s for s in sps}, NODE)


def test_listener_specs_split_only_when_the_policies_differ() -> None:
    specs = listener_specs(state(WEB, DNS, LB, STREAM))
    assert sorted(map(str, specs)) == ["kube-system/dns", "ns/lb", "ns/lb (external)", "ns/web:http"]
    assert specs[ListenerKey(LB.name)].endpoints == (C,)                # pods and node: cluster-wide
    assert specs[ListenerKey(LB.name, True)].endpoints == ()            # outside: local only, none here
    assert specs[ListenerKey(LB.name)].affinity_timeout == 60
    assert specs[ListenerKey(WEB.name)].protocol == "TCP"


PORTS = {ListenerKey(WEB.name): 40001, ListenerKey(DNS.name): 40002,
         ListenerKey(LB.name): 40003, ListenerKey(LB.name, True): 40004}


def test_render_golden() -> None:
    rules = render(state(WEB, DNS, LB, STREAM), PORTS, "172.31.0.2")
    assert rules.restore_text() == textwrap.dedent("""\
        *nat
        :KUBE-PORTALS-CONTAINER - [0:0]
        :KUBE-PORTALS-HOST - [0:0]
        :KUBE-NODEPORT-CONTAINER - [0:0]
        :KUBE-NODEPORT-HOST - [0:0]
        -A KUBE-PORTALS-CONTAINER -d 10.96.0.53/32 -p udp -m comment --comment "kube-system/dns" -m udp --dport 53 -j REDIRECT --to-ports 40002
        -A KUBE-PORTALS-CONTAINER -d 10.96.0.20/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j REDIRECT --to-ports 40003
        -A KUBE-PORTALS-CONTAINER -s 10.244.0.0/16 -d 192.0.2.10/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j REDIRECT --to-ports 40003
        -A KUBE-PORTALS-CONTAINER -d 192.0.2.10/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j REDIRECT --to-ports 40004
        -A KUBE-PORTALS-CONTAINER -s 10.244.0.0/16 -d 172.31.0.200/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j REDIRECT --to-ports 40003
        -A KUBE-PORTALS-CONTAINER -d 172.31.0.200/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j REDIRECT --to-ports 40004
        -A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http" -m tcp --dport 80 -j REDIRECT --to-ports 40001
        -A KUBE-PORTALS-HOST -d 10.96.0.53/32 -p udp -m comment --comment "kube-system/dns" -m udp --dport 53 -j DNAT --to-destination 172.31.0.2:40002
        -A KUBE-PORTALS-HOST -d 10.96.0.20/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j DNAT --to-destination 172.31.0.2:40003
        -A KUBE-PORTALS-HOST -d 192.0.2.10/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j DNAT --to-destination 172.31.0.2:40003
        -A KUBE-PORTALS-HOST -d 172.31.0.200/32 -p tcp -m comment --comment "ns/lb" -m tcp --dport 80 -j DNAT --to-destination 172.31.0.2:40003
        -A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http" -m tcp --dport 80 -j DNAT --to-destination 172.31.0.2:40001
        -A KUBE-NODEPORT-CONTAINER -s 10.244.0.0/16 -p tcp -m comment --comment "ns/lb" -m tcp --dport 30090 -j REDIRECT --to-ports 40003
        -A KUBE-NODEPORT-CONTAINER -p tcp -m comment --comment "ns/lb" -m tcp --dport 30090 -j REDIRECT --to-ports 40004
        -A KUBE-NODEPORT-CONTAINER -p tcp -m comment --comment "ns/web:http" -m tcp --dport 30080 -j REDIRECT --to-ports 40001
        -A KUBE-NODEPORT-HOST -p tcp -m comment --comment "ns/lb" -m tcp --dport 30090 -j DNAT --to-destination 172.31.0.2:40003
        -A KUBE-NODEPORT-HOST -p tcp -m comment --comment "ns/web:http" -m tcp --dport 30080 -j DNAT --to-destination 172.31.0.2:40001
        COMMIT
        *filter
        :KUBE-PORTALS-FILTER - [0:0]
        -A KUBE-PORTALS-FILTER -p udp -m comment --comment "kube-system/dns has no endpoints" -m udp --dport 40002 -j REJECT
        -A KUBE-PORTALS-FILTER -p tcp -m comment --comment "ns/lb has no local endpoints" -m tcp --dport 40004 -j DROP
        COMMIT
        """)
    assert rules.rules == 19


def test_internal_policy_local_without_local_endpoints_drops() -> None:
    itp = sp(name=ServicePortName("ns", "itp", "", "TCP"), internal_local=True, endpoints=(C,))
    rules = render(state(itp), {ListenerKey(itp.name): 40010}, "172.31.0.2")
    assert rules.filter == ['-A KUBE-PORTALS-FILTER -p tcp -m comment --comment "ns/itp has no local endpoints"'
                            ' -m tcp --dport 40010 -j DROP']


def test_cluster_external_policy_with_local_internal_policy_sends_all_external_traffic_cluster_wide() -> None:
    mixed = sp(name=ServicePortName("ns", "mixed", "", "TCP"), node_port=30100, internal_local=True, endpoints=(C,))
    ports = {ListenerKey(mixed.name): 40020, ListenerKey(mixed.name, True): 40021}
    nat = render(state(mixed), ports, "172.31.0.2").nat
    assert [line.split()[1] + " " + line.split()[-1] for line in nat] == [
        "KUBE-PORTALS-CONTAINER 40020", "KUBE-PORTALS-HOST 172.31.0.2:40020",
        "KUBE-NODEPORT-CONTAINER 40021", "KUBE-NODEPORT-HOST 172.31.0.2:40021"]


def test_a_listener_that_did_not_open_gets_no_rules() -> None:
    rules = render(state(WEB), {}, "172.31.0.2")
    assert rules.nat == [] and rules.filter == []


# --- jumps, drift and clean-up (reading iptables-save) -----------------------------

SAVED = textwrap.dedent("""\
    # Generated by iptables-save v1.8.9 (nf_tables)
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :KUBE-PORTALS-FILTER - [0:0]
    :KUBE-SERVICES - [0:0]
    -A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals without endpoints" -j KUBE-PORTALS-FILTER
    -A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals without endpoints" -j KUBE-PORTALS-FILTER
    -A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    -A KUBE-PORTALS-FILTER -p tcp -m comment --comment "ns/x has no endpoints" -m tcp --dport 40002 -j REJECT --reject-with icmp-port-unreachable
    COMMIT
    *nat
    :PREROUTING ACCEPT [0:0]
    :INPUT ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    :KUBE-NODEPORTS - [0:0]
    :KUBE-PORTALS-CONTAINER - [0:0]
    :KUBE-PORTALS-HOST - [0:0]
    -A PREROUTING -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" -j KUBE-PORTALS-CONTAINER
    -A OUTPUT -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" -j KUBE-PORTALS-HOST
    -A OUTPUT -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http" -m tcp --dport 80 -j REDIRECT --to-ports 40001
    COMMIT
    """)


def test_jump_fixes_add_missing_jumps_and_delete_duplicates() -> None:
    assert jump_fixes(SAVED) == {
        "nat": [
            '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must'
            ' be the last rule in the chain" -j KUBE-NODEPORT-CONTAINER',
            '-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must'
            ' be the last rule in the chain" -j KUBE-NODEPORT-HOST',
        ],
        "filter": [
            '-D INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals without endpoints"'
            ' -j KUBE-PORTALS-FILTER',
        ],
    }


def test_jump_fixes_on_a_clean_node_insert_portals_first() -> None:
    fixes = jump_fixes("")
    assert fixes["nat"][0].startswith("-I PREROUTING 1 -m comment")
    assert fixes["filter"] == ['-I INPUT 1 -m conntrack --ctstate NEW -m comment --comment'
                               ' "kubernetes service portals without endpoints" -j KUBE-PORTALS-FILTER']


def test_missing_names_what_was_flushed() -> None:
    assert missing(SAVED) == [
        "nat KUBE-NODEPORT-CONTAINER", "nat KUBE-NODEPORT-HOST",
        "nat PREROUTING -j KUBE-NODEPORT-CONTAINER", "nat OUTPUT -j KUBE-NODEPORT-HOST"]


def test_cleanup_removes_only_our_chains_and_jumps() -> None:
    assert render_cleanup(SAVED) == textwrap.dedent("""\
        *nat
        -D PREROUTING -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" -j KUBE-PORTALS-CONTAINER
        -D OUTPUT -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" -j KUBE-PORTALS-HOST
        :KUBE-PORTALS-CONTAINER - [0:0]
        :KUBE-PORTALS-HOST - [0:0]
        -X KUBE-PORTALS-CONTAINER
        -X KUBE-PORTALS-HOST
        COMMIT
        *filter
        -D INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals without endpoints" -j KUBE-PORTALS-FILTER
        -D INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals without endpoints" -j KUBE-PORTALS-FILTER
        :KUBE-PORTALS-FILTER - [0:0]
        -X KUBE-PORTALS-FILTER
        COMMIT
        """)
    assert render_cleanup("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n") == ""
