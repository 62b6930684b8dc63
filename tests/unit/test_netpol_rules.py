"""NetworkPolicy semantics, and the nftables rules that enforce them, held against each other.

The cluster is upstream's e2e model (test/e2e/network/netpol): namespaces
x, y, z, each with pods a, b, c labelled `pod=<name>` (namespaces `ns=<name>`),
serving 80 and 81 on TCP and UDP with the named ports `serve-80-tcp`,
`serve-81-udp`, ...  Each case writes the expected truth table the way
upstream's truthtable.go prints it (`.` reachable, `X` blocked, rows are
sources, columns destinations) and checks two things against it:

* `Cluster.allowed`, the spec written down as the docs say it (the oracle);
* the rendered rulesets: the source node's rules (egress) and the
  destination node's rules (ingress) traced for the connection's first
  packet exactly as the kernel walks them (`Ruleset.verdict`).

Then random policy sets compare the two over every pair, port and protocol,
the table text is checked for what a reader of `nft list table` relies on
(hooks, comments naming `ns/policy`, a drop counter per isolated pod), the
transaction keeps unchanged chains (and their counters), and the text goes
through the real nft in a scratch namespace.
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
from typing import Any, Iterator

import pytest

from kinns.netpol.model import (EGRESS, INGRESS, Cluster, NamedPort, Pod, Policy, cluster_from_api, policy_from_api,
                                policy_types)
from kinns.netpol.rules import TABLE, Packet, Ruleset, render, transaction
from tests.unit.test_layers import IO_MODULES, ROOT, imports

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
NODES = ("n1", "n2")
PORT_NAMES = tuple(NamedPort(f"serve-{port}-{proto.lower()}", proto, port)
                   for port in (80, 81) for proto in ("TCP", "UDP"))


def ip_of(ns: str, pod: str) -> str:
    return f"10.244.{NAMESPACES.index(ns) + 1}.{PODS.index(pod) + 10}"


def model_pods() -> list[Pod]:
    # a and c on n1, b on n2: same-node and cross-node pairs in every table
    return [Pod(ns, p, ip_of(ns, p), "n2" if p == "b" else "n1", {"pod": p}, PORT_NAMES)
            for ns in NAMESPACES for p in PODS]


NS_LABELS = {ns: {"kubernetes.io/metadata.name": ns, "ns": ns} for ns in NAMESPACES}


def policy(ns: str, name: str, spec: dict[str, Any]) -> Policy:
    obj = {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    return policy_from_api(obj)


def cluster(*policies: Policy, pods: list[Pod] | None = None) -> Cluster:
    return Cluster(pods if pods is not None else model_pods(), NS_LABELS, policies)


def rendered_allowed(rulesets: dict[str, Ruleset], c: Cluster, pkt: Packet) -> bool:
    """Source node's egress rules, then destination node's ingress rules (one node: both at once).
    The pods' allow sets (what the kernel uses) and the policy chains alone must agree."""
    src, dst = c.by_ip.get(pkt.src), c.by_ip.get(pkt.dst)
    verdicts = []
    for fast in (True, False):
        ok = src is None or rulesets[src.node].check(EGRESS, pkt, fast)[0]
        verdicts.append(ok and (dst is None or rulesets[dst.node].check(INGRESS, pkt, fast)[0]))
    assert verdicts[0] == verdicts[1], f"allow set and policy chains disagree on {pkt}"
    return verdicts[0]


def tables(c: Cluster, port: int, protocol: str, allow_set_from: int = 1) -> tuple[str, str]:
    """(oracle table, rendered-rules table) for one port/protocol, truthtable.go style.
    Rendered with allow sets for every isolated pod unless told otherwise (`check` does both)."""
    rulesets = {n: render(c, n, allow_set_from) for n in NODES}
    keys = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
    rows_o, rows_r = [], []
    for src in keys:
        o, r = [], []
        for dst in keys:
            pkt = Packet(ip_of(*src.split("/")), ip_of(*dst.split("/")), protocol, port)
            o.append("." if c.allowed(*pkt) else "X")
            r.append("." if rendered_allowed(rulesets, c, pkt) else "X")
        rows_o.append(f"{src} {''.join(o)}")
        rows_r.append(f"{src} {''.join(r)}")
    return "\n".join(rows_o), "\n".join(rows_r)


def expect(rows: str) -> str:
    """An expected table written as 9 rows of 9 marks (sources x/a..z/c, destinations likewise)."""
    keys = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
    marks = [r.replace(" ", "") for r in rows.strip().splitlines()]
    assert len(marks) == 9 and all(len(m) == 9 for m in marks)
    return "\n".join(f"{k} {m}" for k, m in zip(keys, marks))


ALL = expect("\n".join(["........."] * 9))


def check(c: Cluster, expected: str, port: int = 80, protocol: str = "TCP") -> None:
    oracle, rules = tables(c, port, protocol)
    assert oracle == expected, f"spec says:\n{oracle}\nexpected:\n{expected}"
    assert rules == expected, f"rules do:\n{rules}\nexpected:\n{expected}"
    assert tables(c, port, protocol, allow_set_from=1000)[1] == expected, "chains alone differ"


# --------------------------------------------------------------- truth tables

def test_no_policies_everything_reachable() -> None:
    for port, proto in ((80, "TCP"), (81, "UDP"), (0, "ICMP")):
        check(cluster(), ALL, port, proto)


def test_default_deny_ingress_isolates_the_namespace_only() -> None:
    c = cluster(policy("x", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    want = expect("""
        .XX ... ...
        X.X ... ...
        XX. ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...""")
    check(c, want)
    check(c, want, 81, "UDP")


def test_default_deny_egress() -> None:
    c = cluster(policy("x", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]}))
    check(c, expect("""
        .XX XXX XXX
        X.X XXX XXX
        XX. XXX XXX
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ..."""))


def test_allow_from_label_in_the_policy_namespace() -> None:
    c = cluster(policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    check(c, expect("""
        ... ... ...
        ... ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ..."""))


def test_allow_from_namespace() -> None:
    c = cluster(policy("x", "allow-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                                        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    check(c, expect("""
        ... ... ...
        X.. ... ...
        X.. ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ..."""))


def test_pod_and_namespace_selector_in_one_peer_is_and_in_two_peers_is_or() -> None:
    both = {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}
    and_ = cluster(policy("x", "and", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [both]}]}))
    check(and_, expect("""
        ... ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        ... ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ..."""))
    two = [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]
    or_ = cluster(policy("x", "or", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": two}]}))
    check(or_, expect("""
        ... ... ...
        ... ... ...
        X.. ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ..."""))


def test_ipblock_with_except() -> None:
    block = {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{ip_of('y', 'b')}/32", "10.244.3.0/24"]}}
    c = cluster(policy("x", "egress-cidr", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                            "egress": [{"to": [block]}]}))
    check(c, expect("""
        ... .X. XXX
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ..."""))


def test_egress_deny_with_dns_allowed() -> None:
    c = cluster(policy("x", "dns-only", {"podSelector": {}, "policyTypes": ["Egress"],
                                         "egress": [{"ports": [{"protocol": "UDP", "port": 53},
                                                               {"protocol": "TCP", "port": 53}]}]}))
    deny_x = expect("""
        .XX XXX XXX
        X.X XXX XXX
        XX. XXX XXX
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        ... ... ...""")
    check(c, deny_x, 80, "TCP")
    check(c, ALL, 53, "UDP")
    check(c, ALL, 53, "TCP")


def test_named_ports_resolve_on_the_destination_pod() -> None:
    c = cluster(policy("x", "udp-80", {"podSelector": {"matchLabels": {"pod": "a"}},
                                       "ingress": [{"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]}))
    check(c, ALL, 80, "UDP")
    blocked_a = expect("""
        ... ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...
        X.. ... ...""")
    check(c, blocked_a, 80, "TCP")
    check(c, blocked_a, 81, "UDP")


def test_named_port_means_a_different_number_on_each_pod() -> None:
    pods = model_pods()
    odd = Pod("y", "b", ip_of("y", "b"), "n2", {"pod": "b"}, (NamedPort("web", "TCP", 81),))
    pods = [odd if (p.namespace, p.name) == ("y", "b") else
            Pod(p.namespace, p.name, p.ip, p.node, p.labels, (NamedPort("web", "TCP", 80),)) for p in pods]
    c = cluster(policy("x", "egress-web", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                           "egress": [{"ports": [{"port": "web"}]}]}), pods=pods)
    t80, r80 = tables(c, 80, "TCP")
    t81, r81 = tables(c, 81, "TCP")
    assert t80.splitlines()[0] == r80.splitlines()[0] == "x/a ....X...."
    assert t81.splitlines()[0] == r81.splitlines()[0] == "x/a .XXX.XXXX"


def test_end_port_covers_the_range() -> None:
    c = cluster(policy("x", "range", {"podSelector": {}, "ingress": [{"ports": [{"port": 81, "endPort": 90}]}]}))
    into_x_blocked = expect("""
        .XX ... ...
        X.X ... ...
        XX. ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ...""")
    check(c, into_x_blocked, 80, "TCP")
    check(c, ALL, 81, "TCP")
    check(c, ALL, 90, "TCP")
    check(c, into_x_blocked, 91, "TCP")
    check(c, into_x_blocked, 81, "UDP")


def test_rules_are_additive_and_a_policy_selecting_nothing_changes_nothing() -> None:
    nothing = policy("x", "nobody", {"podSelector": {"matchLabels": {"pod": "nope"}}, "policyTypes": ["Ingress", "Egress"]})
    check(cluster(nothing), ALL)
    assert all(not render(cluster(nothing), n).chains for n in NODES)
    deny = policy("x", "deny", {"podSelector": {}})
    allow_y = policy("x", "allow-y", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector":
                                                                                  {"matchLabels": {"ns": "y"}}}]}]})
    check(cluster(deny, allow_y, nothing), expect("""
        .XX ... ...
        X.X ... ...
        XX. ... ...
        ... ... ...
        ... ... ...
        ... ... ...
        XXX ... ...
        XXX ... ...
        XXX ... ..."""))


def test_allow_all_rule_and_empty_from_allow_everything() -> None:
    rule: dict[str, Any]
    for rule in ({}, {"from": []}):
        c = cluster(policy("x", "deny", {"podSelector": {}}), policy("x", "all", {"podSelector": {}, "ingress": [rule]}))
        check(c, ALL)
        check(c, ALL, 0, "ICMP")


def test_ports_restrict_protocols_and_icmp_needs_a_rule_without_ports() -> None:
    c = cluster(policy("x", "tcp80", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}))
    check(c, ALL, 80, "TCP")
    none_into_x = expect("\n".join(["XXX ... ..."] * 9)).replace("x/a XXX", "x/a .XX").replace(
        "x/b XXX", "x/b X.X").replace("x/c XXX", "x/c XX.")
    check(c, none_into_x, 80, "SCTP")
    check(c, none_into_x, 0, "ICMP")


# --------------------------------------------------------------- model details

def test_policy_types_default_as_upstream() -> None:
    assert policy_types({}) == {INGRESS}
    assert policy_types({"egress": [{}]}) == {INGRESS, EGRESS}
    assert policy_types({"policyTypes": ["Egress"], "ingress": [{}]}) == {EGRESS}


def test_pods_without_ipv4_finished_and_host_network_pods_take_no_part() -> None:
    def pod(name: str, **kw: Any) -> dict[str, Any]:
        status = {"phase": kw.pop("phase", "Running"), "podIP": kw.pop("ip", None)}
        return {"metadata": {"namespace": "x", "name": name, "labels": {"pod": name}},
                "spec": {"nodeName": "n1", **kw}, "status": status}
    objs = [pod("a", ip="10.244.1.10"), pod("v6", ip="fd00::1"), pod("done", ip="10.244.1.11", phase="Succeeded"),
            pod("host", ip="192.168.0.2", hostNetwork=True), pod("pending")]
    c = cluster_from_api(objs, [{"metadata": {"name": "x"}}], [
        {"metadata": {"namespace": "x", "name": "deny"}, "spec": {"podSelector": {}}}])
    assert [p.name for p in c.pods] == ["a"]
    rs = render(c, "n1")
    assert set(rs.pods[INGRESS]) == {"10.244.1.10"}
    assert c.ns_labels("x") == {"kubernetes.io/metadata.name": "x"}


RANDOM_LABELS: tuple[dict[str, str], ...] = ({}, {"pod": "a"}, {"pod": "b"}, {"ns": "y"}, {"pod": "c"})


def random_policy(rng: random.Random, i: int) -> Policy:
    def selector() -> dict[str, Any]:
        if rng.random() < 0.2:
            return {"matchExpressions": [{"key": "pod", "operator": rng.choice(["In", "NotIn"]),
                                          "values": rng.sample(PODS, 2)}]}
        return {"matchLabels": dict(rng.choice(RANDOM_LABELS))} if rng.random() < 0.8 else {}

    def peer() -> dict[str, Any]:
        kind = rng.randrange(4)
        if kind == 0:
            return {"podSelector": selector()}
        if kind == 1:
            return {"namespaceSelector": {"matchLabels": {"ns": rng.choice(NAMESPACES)}} if rng.random() < .7 else {}}
        if kind == 2:
            return {"podSelector": selector(), "namespaceSelector": {"matchLabels": {"ns": rng.choice(NAMESPACES)}}}
        third = rng.randrange(1, 4)
        block: dict[str, Any] = {"cidr": f"10.244.{third}.0/24"}
        if rng.random() < 0.6:
            block["except"] = [f"{ip_of(NAMESPACES[third - 1], rng.choice(PODS))}/32"]
        return {"ipBlock": block}

    def port() -> dict[str, Any]:
        proto = rng.choice(["TCP", "UDP", "SCTP"])
        kind = rng.randrange(4)
        if kind == 0:
            return {"protocol": proto, "port": rng.choice([80, 81])}
        if kind == 1:
            return {"protocol": proto, "port": 80, "endPort": rng.choice([80, 81, 90])}
        if kind == 2:
            return {"protocol": proto, "port": rng.choice([n.name for n in PORT_NAMES] + ["missing"])}
        return {"protocol": proto}

    def rules() -> list[dict[str, Any]]:
        out = []
        for _ in range(rng.randrange(3)):
            rule: dict[str, Any] = {}
            if rng.random() < 0.7:
                rule["peers"] = [peer() for _ in range(rng.randrange(0, 3))]
            if rng.random() < 0.6:
                rule["ports"] = [port() for _ in range(rng.randrange(1, 3))]
            out.append(rule)
        return out

    spec: dict[str, Any] = {"podSelector": selector()}
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"], None])
    if types:
        spec["policyTypes"] = types
    for direction, key in (("ingress", "from"), ("egress", "to")):
        rs = rules()
        if rs or rng.random() < 0.5:
            spec[direction] = [{**({key: r["peers"]} if "peers" in r else {}),
                                **({"ports": r["ports"]} if "ports" in r else {})} for r in rs]
    return policy(rng.choice(NAMESPACES), f"p{i}", spec)


@pytest.mark.parametrize("seed", range(60))
def test_random_policies_rendered_rules_agree_with_the_spec(seed: int) -> None:
    rng = random.Random(seed)
    c = cluster(*(random_policy(rng, i) for i in range(rng.randrange(1, 5))))
    for port, proto in ((80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "SCTP"), (90, "TCP"), (0, "ICMP")):
        oracle, rules = tables(c, port, proto, allow_set_from=seed % 3)
        assert rules == oracle, f"seed {seed} {proto}/{port}\nspec:\n{oracle}\nrules:\n{rules}"
    outside = Packet("192.168.7.7", ip_of("x", "a"), "TCP", 80)
    assert rendered_allowed({n: render(c, n) for n in NODES}, c, outside) == c.allowed(*outside)


# --------------------------------------------------------------- the text

def test_table_text_names_policies_and_pods() -> None:
    c = cluster(policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
                                                     "ports": [{"port": "serve-80-tcp"}, {"port": 81, "endPort": 82}]}]}))
    rs = render(c, "n1", allow_set_from=1)
    text = transaction(rs, None)
    assert f"add table inet {TABLE}" in text
    assert "add chain inet kinns-network-policies ingress { type filter hook forward priority filter ; policy accept ; }" in text
    assert "egress { type filter hook forward priority filter - 1 ;" in text
    assert "egress-to-node { type filter hook input priority filter ;" in text
    assert "add element inet kinns-network-policies ingress-pods { 10.244.1.10 : jump pod-ingress-x/a }" in text
    chain = rs.chains["policy-ingress-x/allow-b"]
    assert [r.text() for r in chain] == [
        'ip daddr . meta l4proto . th dport { 10.244.1.10 . tcp . 80 } ip saddr 10.244.1.11 accept '
        'comment "x/allow-b ingress[0]"',
        'meta l4proto tcp th dport 81-82 ip saddr 10.244.1.11 accept comment "x/allow-b ingress[0]"']
    pod_chain = [r.text() for r in rs.chains["pod-ingress-x/a"]]
    assert pod_chain == ['ip saddr 10.244.1.10 accept comment "x/a may always reach itself"',
                         'ip saddr . meta l4proto . th dport @allow-ingress-x/a accept '
                         'comment "x/a ingress: allowed by a policy (the chains below say which)"',
                         "jump policy-ingress-x/allow-b",
                         'counter drop comment "x/a ingress: isolated by x/allow-b; no rule allows"']
    # the union of x/a's policies: x/b on 80 (the named port on x/a) and 81-82, merged
    assert "add element inet kinns-network-policies allow-ingress-x/a { 10.244.1.11 . tcp . 80-82 }" in text
    # n2 holds only its own pods (x/b is not isolated): nothing to write but the skeleton.
    assert not render(c, "n2").chains
    why = rs.verdict(Packet(ip_of("y", "a"), ip_of("x", "a"), "TCP", 80))
    assert why == (False, "x/a ingress: isolated by x/allow-b; no rule allows")
    ok = Packet(ip_of("x", "b"), ip_of("x", "a"), "TCP", 82)
    assert rs.verdict(ok) == (True, "x/a ingress: allowed by a policy (the chains below say which)")
    assert rs.explain(ok) == (True, "x/allow-b ingress[0]")


def test_incremental_transaction_touches_only_what_changed() -> None:
    deny = policy("x", "deny", {"podSelector": {}})
    allow = policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    old = render(cluster(deny, allow), "n1")
    assert transaction(old, old) == ""
    new = render(cluster(deny), "n1")
    text = transaction(new, old)
    # x/a's chain loses a jump, x/c's is untouched, allow-b's chain goes
    assert "flush chain inet kinns-network-policies pod-ingress-x/a\n" in text
    assert "pod-ingress-x/c" not in text
    assert text.index("flush chain inet kinns-network-policies policy-ingress-x/allow-b") < \
        text.index("delete chain inet kinns-network-policies policy-ingress-x/allow-b")
    assert "flush map" not in text        # the same pods are isolated


# --------------------------------------------------------------- the real nft

@pytest.fixture(scope="module")
def scratch_netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for a scratch network namespace")
    name = f"npt{os.getpid() % 100000}-nftunit"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def nft(netns: str, text: str) -> str:
    r = subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr + text
    return subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", TABLE],
                          text=True, capture_output=True, check=True).stdout


def test_fresh_and_incremental_transactions_apply_on_the_real_nft(scratch_netns: str) -> None:
    rng = random.Random(7)
    prev: Ruleset | None = None
    for step in range(12):
        c = cluster(*(random_policy(rng, i) for i in range(rng.randrange(0, 6))))
        rs = render(c, "n1")
        listing = nft(scratch_netns, transaction(rs, prev if step % 5 else None))
        assert sorted(line.split()[1] for line in listing.splitlines() if line.strip().startswith("chain ")) == \
            sorted(list(rs.chains) + ["egress", "ingress", "egress-to-node"])
        prev = rs
    assert prev is not None and ("counter packets 0 bytes 0 drop" in listing or not prev.chains)


def test_rule_text_parses_on_the_real_nft_with_every_match(scratch_netns: str) -> None:
    block = {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16", "10.1.2.0/24"]}}
    c = cluster(policy("x", "everything", {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [block, {"namespaceSelector": {}}], "ports": [
            {"port": 80}, {"port": 81, "endPort": 90, "protocol": "UDP"}, {"protocol": "SCTP"},
            {"port": "serve-81-udp", "protocol": "UDP"}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}], "ports": [{"port": "serve-80-tcp"}]},
                   {}]}))
    listing = nft(scratch_netns, transaction(render(c, "n1"), None))
    assert 'comment "x/everything ingress[0]"' in listing
    assert "sctp" in listing and "udp dport 81-90" in listing


# --------------------------------------------------------------- layering

@pytest.mark.parametrize("rel", ["netpol/model.py", "netpol/rules.py"])
def test_model_and_renderer_do_no_io(rel: str) -> None:
    mods = imports(ROOT / rel)
    bad = {m for m in mods if any(m == io or m.startswith(io + ".") for io in IO_MODULES)}
    assert not bad, f"{rel} imports {bad}"


def test_ip_helper_is_consistent() -> None:
    assert ipaddress.IPv4Address(ip_of("z", "c")) in ipaddress.IPv4Network("10.244.3.0/24")


# --------------------------------------------------------------- conntrack

CONNTRACK_L = """\
tcp      6 431999 ESTABLISHED src=10.244.2.11 dst=10.96.0.20 sport=40000 dport=80 src=10.244.1.10 dst=10.244.2.11 sport=80 dport=40000 [ASSURED] mark=0 use=1
tcp      6 119 TIME_WAIT src=10.244.2.11 dst=10.244.1.10 sport=40001 dport=80 src=10.244.1.10 dst=10.244.2.11 sport=80 dport=40001 [ASSURED] mark=0 use=1
udp      17 29 src=10.244.1.11 dst=10.244.1.10 sport=5000 dport=81 [UNREPLIED] src=10.244.1.10 dst=10.244.1.11 sport=81 dport=5000 mark=0 use=1
udp      17 29 src=10.244.1.10 dst=10.244.3.10 sport=5001 dport=81 src=10.244.3.10 dst=10.244.1.10 sport=81 dport=5001 mark=0 use=1
icmp     1 29 src=10.244.2.11 dst=10.244.1.10 type=8 code=0 id=7 src=10.244.1.10 dst=10.244.2.11 type=0 code=0 id=7 mark=0 use=1
sctp     132 3 ESTABLISHED src=10.244.3.10 dst=10.244.1.10 sport=9 dport=80 src=10.244.1.10 dst=10.244.3.10 sport=80 dport=9 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 6 flow entries have been shown.
"""


def test_conntrack_listing_parses_after_dnat() -> None:
    from kinns.netpol.conntrack import parse
    flows = parse(CONNTRACK_L)
    assert [(f.protocol, f.state) for f in flows] == [("TCP", "ESTABLISHED"), ("TCP", "TIME_WAIT"), ("UDP", ""),
                                                      ("UDP", ""), ("SCTP", "ESTABLISHED")]
    svc = flows[0]
    assert (svc.src, svc.dst, svc.dport, svc.backend, svc.backend_port) == \
        ("10.244.2.11", "10.96.0.20", 80, "10.244.1.10", 80)
    assert svc.delete_args() == ["-p", "tcp", "--orig-src", "10.244.2.11", "--orig-dst", "10.96.0.20",
                                 "--orig-port-src", "40000", "--orig-port-dst", "80"]


def test_conntrack_plan_cuts_only_what_the_new_rules_deny() -> None:
    from kinns.netpol.conntrack import parse, plan
    c = cluster(policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
                                                     "ports": [{"protocol": "UDP", "port": 81}]}]}))
    cut = plan(parse(CONNTRACK_L), render(c, "n1"))
    # y/b → x/a through a Service (TCP) and z/a → x/a (SCTP) are denied now; x/b → x/a UDP 81
    # is allowed, x/a's own egress is not isolated, and TIME_WAIT carries nothing.
    assert [(f.src, f.protocol) for f in cut] == [("10.244.2.11", "TCP"), ("10.244.3.10", "SCTP")]
    assert plan(parse(CONNTRACK_L), render(cluster(), "n1")) == []


# --------------------------------------------------------------- allow sets

def overlap(a: Any, b: Any) -> bool:
    protos = a.proto == b.proto or -1 in (a.proto, b.proto)
    return (a.addr_lo <= b.addr_hi and b.addr_lo <= a.addr_hi and protos
            and a.port_lo <= b.port_hi and b.port_lo <= a.port_hi)


@pytest.mark.parametrize("seed", range(40))
def test_disjoint_boxes_cover_exactly_the_union(seed: int) -> None:
    from kinns.netpol.boxes import ANY, Box, disjoint
    rng = random.Random(seed)
    boxes = []
    for _ in range(rng.randrange(1, 12)):
        lo = rng.randrange(0, 60)
        plo = rng.randrange(0, 30)
        boxes.append(Box(lo, lo + rng.randrange(0, 20), rng.choice([6, 17, 132, ANY]), plo,
                         plo + rng.randrange(0, 10)))
    out = disjoint(boxes)
    assert not any(overlap(a, b) for i, a in enumerate(out) for b in out[i + 1:]), out
    for addr in range(0, 82):
        for proto in (1, 6, 17, 132):
            for port in range(0, 42):
                assert any(b.contains(addr, proto, port) for b in out) == \
                    any(b.contains(addr, proto, port) for b in boxes), (addr, proto, port)


def test_allow_sets_are_accepted_by_the_real_nft_and_a_thousand_policies_make_one_set(scratch_netns: str) -> None:
    pols = [policy("x", f"p{i:04d}", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": f"172.{16 + i % 16}.0.0/16", "except": [f"172.{16 + i % 16}.{i % 250}.0/24"]}}],
        "ports": [{"port": 9000 + i % 100, "endPort": 9100 + i % 100}]}]}) for i in range(1000)]
    c = cluster(*pols)
    rs = render(c, "n1")
    listing = nft(scratch_netns, transaction(rs, None))
    assert "set allow-ingress-x/a {" in listing and "flags interval" in listing
    assert len(rs.chains["pod-ingress-x/a"]) == 1000 + 3
    # a packet from one of the blocks is accepted by the set rule, before any policy chain
    pkt = Packet("172.16.251.7", ip_of("x", "a"), "TCP", 9050)
    assert rs.verdict(pkt) == (True, "x/a ingress: allowed by a policy (the chains below say which)")
    assert rs.explain(pkt)[1].startswith("x/p0000 ingress[0]")
    rng = random.Random(3)
    for _ in range(300):
        pkt = Packet(f"172.{rng.randrange(15, 33)}.{rng.randrange(256)}.7", ip_of("x", "a"), "TCP",
                     rng.randrange(8990, 9210))
        assert rs.verdict(pkt)[0] == rs.explain(pkt)[0] == c.allowed(*pkt), pkt
