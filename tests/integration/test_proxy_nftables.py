"""kube-proxy nftables mode with real packets: the `ip kube-proxy` table applied
inside node1 of the two-node namespace testbed (tests/integration/
proxy_testbed.py), probed from pods, from node1 itself and from the outside
client.

One testbed serves the whole module, and every test runs twice: with one
`NftablesBackend(netns=node1)` in the endpoint-chain layout (upstream's,
the default for a cluster this small), then with another forced into the
large-cluster layout (threshold -1).  The `tb` fixture re-applies every
Service of `services()` with a full sync before each test, so tests that
change things (partial syncs, flushes, layout switches) do not leak into
the next.  Answers are `<pod> <client-ip>`, so a test sees
both which endpoint answered and whether the client was masqueraded.

The outside client reaches node1's externalIP and LoadBalancer IP through
routes this module adds in `ext` (`ext_routes`): the testbed has no
load balancer, and these addresses are nobody's.

The last tests measure syncs of 1,000 Services x 1 endpoint (endpoint-chain
layout) and 2,000 Services x 10 endpoints (large-cluster layout) in a
scratch namespace and print the figures (bounds are loose: this is a
2-core VM).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from typing import Iterator

import pytest

from kinns.proxy.backend import run
from kinns.proxy.model import Endpoint, NodeFacts, ProxyState, ServicePort, ServicePortName
from kinns.proxy.nftables import (ENDPOINT_CHAINS, LARGE_CLUSTER, NftablesBackend, choose_layout, endpoint_chain,
                                  svc_names)
from tests.integration.proxy_testbed import service_port as svc
from tests.integration.proxy_testbed import Testbed, testbed  # noqa: F401 - the module's fixture

WEB_IP, STICKY_IP, EMPTY_IP, DNS_IP, REMOTE_IP, LOCAL_IP, SELF_IP, EDGE_IP = (
    "10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.13", "10.96.0.14", "10.96.0.15", "10.96.0.16",
    "10.96.0.17")
EXTERNAL_IP, LB_OPEN, LB_CLOSED = "172.31.5.5", "172.31.9.1", "172.31.9.2"


def services(tb: Testbed) -> list[ServicePort]:
    return [
        svc("web", WEB_IP, tb.endpoints("pa", "pb", "pc"), node_port=30080),
        svc("sticky", STICKY_IP, tb.endpoints("pa", "pb", "pc"), affinity_timeout=60),
        svc("empty", EMPTY_IP, (), node_port=30082),
        svc("dns", DNS_IP, tb.endpoints("pc", port=9000), port=53, proto="UDP"),
        svc("remote", REMOTE_IP, tb.endpoints("pc"), node_port=30084),
        svc("local", LOCAL_IP, tb.endpoints("pa", "pc"), node_port=30085, external_local=True),
        svc("self", SELF_IP, tb.endpoints("pa")),
        svc("edge", EDGE_IP, tb.endpoints("pc"), external_ips=(EXTERNAL_IP,), load_balancer_ips=(LB_OPEN,)),
        svc("guarded", "10.96.0.18", tb.endpoints("pc"), load_balancer_ips=(LB_CLOSED,),
            lb_source_ranges=("192.0.2.0/24",)),
    ]


def state(tb: Testbed, sps: list[ServicePort]) -> ProxyState:
    return ProxyState({s.name: s for s in sps}, tb.node_facts("node1"))


def replace(tb: Testbed, new: ServicePort) -> list[ServicePort]:
    """`services()` with `new` in place of the one of the same name."""
    return [new if s.name == new.name else s for s in services(tb)]


@pytest.fixture(scope="module")
def ext_routes(testbed: Testbed) -> None:  # noqa: F811
    for ip in (EXTERNAL_IP, LB_OPEN, LB_CLOSED):
        testbed.run("ext", f"ip route replace {ip}/32 via {testbed.node1_ip}")


THRESHOLDS = {ENDPOINT_CHAINS: 1000, LARGE_CLUSTER: -1}


@pytest.fixture(scope="module", params=[ENDPOINT_CHAINS, LARGE_CLUSTER])
def proxy(request: pytest.FixtureRequest, testbed: Testbed, ext_routes: None) -> Iterator[NftablesBackend]:  # noqa: F811
    b = NftablesBackend(netns=testbed.node1, large_cluster_threshold=THRESHOLDS[request.param])
    assert b.sync(state(testbed, services(testbed)), None).layout == request.param
    yield b
    b.cleanup()


@pytest.fixture
def tb(testbed: Testbed, proxy: NftablesBackend) -> Testbed:  # noqa: F811
    """The testbed with every Service of `services()` applied by a full sync."""
    proxy.sync(state(testbed, services(testbed)), None)
    return testbed


def who(answers: list[str]) -> set[str]:
    return {a.split()[0] for a in answers if a}


def test_nft_lists_our_table_maps_and_chains(tb: Testbed, proxy: NftablesBackend) -> None:
    listing = tb.run("node1", "nft list table ip kube-proxy").stdout
    assert 'comment "rules for kube-proxy"' in listing
    for name in ("map service-ips", "map service-nodeports", "map no-endpoint-services", "set cluster-ips",
                 "chain nat-prerouting", "chain services", "chain masquerading"):
        assert name in listing
    name = ServicePortName("default", "web", "http", "TCP")
    web = svc_names(name)
    assert f"chain {web.cluster}" in listing and f"chain {web.external}" in listing
    assert f"{WEB_IP} . tcp . 80 : goto {web.cluster}" in listing
    assert "ip daddr . meta l4proto . th dport vmap @service-ips" in listing
    pa = endpoint_chain(name, tb.endpoints("pa")[0].ip, 8080)
    if proxy.layout == ENDPOINT_CHAINS:      # as `nft list` shows upstream's
        assert f"chain {pa} {{" in listing and "set hairpin-connections" not in listing
        assert f"numgen random mod 3 vmap {{ 0 : goto {pa}, 1 : goto " in listing
    else:
        assert "set hairpin-connections" in listing and "chain endpoint-" not in listing


def test_cluster_ip_from_a_pod_reaches_every_endpoint(tb: Testbed) -> None:
    answers = tb.many_http("pb", WEB_IP, 80, 40)
    assert all(answers) and who(answers) == {"pa", "pb", "pc"}
    by_pod = {a.split()[0]: a.split()[1] for a in answers}
    assert by_pod["pa"] == by_pod["pc"] == "10.244.0.3"     # pod to pod, on and across nodes: address kept
    assert by_pod["pb"] == "10.244.0.1"                     # hairpin: masqueraded to the bridge address


def test_hairpin_is_masqueraded(tb: Testbed) -> None:
    assert tb.http("pa", SELF_IP, 80) == "pa 10.244.0.1"


def test_cluster_ip_from_the_node_itself(tb: Testbed) -> None:
    assert tb.http("node1", REMOTE_IP, 80) is not None


def test_udp_cluster_ip(tb: Testbed) -> None:
    assert tb.udp("pb", DNS_IP, 53) == "pc 10.244.0.3"


def test_nodeport_from_outside_reaches_the_other_node_masqueraded(tb: Testbed) -> None:
    assert tb.http("ext", tb.node1_ip, 30084) == f"pc {tb.node1_ip}"
    assert who(tb.many_http("ext", tb.node1_ip, 30080, 30)) == {"pa", "pb", "pc"}


def test_external_ip_and_load_balancer_ip_from_outside(tb: Testbed) -> None:
    assert tb.http("ext", EXTERNAL_IP, 80) == f"pc {tb.node1_ip}"
    assert tb.http("ext", LB_OPEN, 80) == f"pc {tb.node1_ip}"


def test_load_balancer_source_ranges_drop_other_clients(tb: Testbed) -> None:
    assert tb.connect_result("ext", LB_CLOSED, 80, timeout=1)[0] == "timeout"


def test_nodeport_local_policy_keeps_client_ip_and_stays_local(tb: Testbed) -> None:
    answers = tb.many_http("ext", tb.node1_ip, 30085, 10)
    assert set(answers) == {f"pa {tb.ext_ip}"}


def test_nodeport_local_policy_drops_without_local_endpoints(tb: Testbed, proxy: NftablesBackend) -> None:
    local = svc("local", LOCAL_IP, tb.endpoints("pc"), node_port=30085, external_local=True)
    proxy.sync(state(tb, replace(tb, local)), frozenset({local.name}))
    assert tb.connect_result("ext", tb.node1_ip, 30085, timeout=1)[0] == "timeout"
    # Pods still reach it: pod traffic to external destinations short-circuits to the cluster chain.
    assert who(tb.many_http("pa", tb.node1_ip, 30085, 3)) == {"pc"}


def test_no_endpoints_is_refused_at_once(tb: Testbed) -> None:
    result, seconds = tb.connect_result("pa", EMPTY_IP, 80)
    assert result == "refused" and seconds < 1
    assert tb.connect_result("ext", tb.node1_ip, 30082)[0] == "refused"
    assert tb.connect_result("node1", EMPTY_IP, 80)[0] == "refused"


def test_undeclared_port_of_a_cluster_ip_is_refused(tb: Testbed) -> None:
    assert tb.connect_result("pa", WEB_IP, 81)[0] == "refused"


def test_session_affinity_sticks(tb: Testbed) -> None:
    answers = tb.many_http("pb", STICKY_IP, 80, 15)
    assert all(answers) and len(who(answers)) == 1
    listing = tb.run("node1", "nft list table ip kube-proxy").stdout
    assert "set affinity-" in listing and "10.244.0.3 expires" in listing


def test_partial_sync_rewrites_only_the_changed_service(tb: Testbed, proxy: NftablesBackend) -> None:
    web = svc("web", WEB_IP, tb.endpoints("pa", "pb"), node_port=30080)
    res = proxy.sync(state(tb, replace(tb, web)), frozenset({web.name}))
    assert not res.full and res.services_written == 1
    assert "remote" not in proxy.last_transaction and "10.96.0.14" not in proxy.last_transaction
    assert who(tb.many_http("pa", WEB_IP, 80, 20)) == {"pa", "pb"}
    assert tb.http("pa", REMOTE_IP, 80) == "pc 10.244.0.2"      # an untouched Service still works


def test_partial_sync_removes_a_service(tb: Testbed, proxy: NftablesBackend) -> None:
    gone = services(tb)[4]
    res = proxy.sync(state(tb, [s for s in services(tb) if s.name != gone.name]), frozenset({gone.name}))
    assert not res.full
    listing = tb.run("node1", "nft list table ip kube-proxy").stdout
    assert svc_names(gone.name).cluster not in listing and REMOTE_IP not in listing
    assert "default/remote/" not in listing                  # nor any chain of it, endpoint chains included
    # Its ClusterIP is now nobody's: routed out (to ext, which does not answer) rather than served.
    assert tb.http("pa", REMOTE_IP, 80, timeout=1) is None


def test_nft_flush_ruleset_is_detected_and_repaired_by_a_full_sync(tb: Testbed, proxy: NftablesBackend) -> None:
    assert not proxy.tables_flushed()
    tb.run("node1", "nft flush ruleset")
    assert tb.http("pa", REMOTE_IP, 80, timeout=1) is None
    assert proxy.tables_flushed()
    res = proxy.sync(state(tb, services(tb)), frozenset())   # the loop asks for a partial sync...
    assert res.full                                          # ...and gets the table rebuilt
    assert not proxy.tables_flushed()
    assert tb.http("pa", REMOTE_IP, 80) == "pc 10.244.0.2"


def test_flushing_only_our_table_is_detected(tb: Testbed, proxy: NftablesBackend) -> None:
    tb.run("node1", "nft flush table ip kube-proxy")
    assert proxy.tables_flushed()
    proxy.sync(state(tb, services(tb)), None)
    assert tb.http("ext", tb.node1_ip, 30084) == f"pc {tb.node1_ip}"


def test_switching_layouts_keeps_services_working(tb: Testbed, proxy: NftablesBackend) -> None:
    """Cross the threshold one way and back, by partial syncs: each crossing
    replaces the table, and traffic flows in both layouts."""
    st = state(tb, services(tb))
    start, total = proxy.layout, choose_layout(st)[1]
    other = LARGE_CLUSTER if start == ENDPOINT_CHAINS else ENDPOINT_CHAINS
    kept = proxy.large_cluster_threshold
    try:
        for layout, threshold in ((other, total - 1 if other == LARGE_CLUSTER else total), (start, kept)):
            proxy.large_cluster_threshold = threshold
            web = svc("web", WEB_IP, tb.endpoints("pa", "pb", "pc"), node_port=30080)
            res = proxy.sync(st, frozenset({web.name}))
            assert res.full and res.layout == proxy.layout == layout and res.endpoints == total
            assert "delete table ip kube-proxy" in proxy.last_transaction
            assert who(tb.many_http("pb", WEB_IP, 80, 30)) == {"pa", "pb", "pc"}
            assert tb.http("pa", SELF_IP, 80) == "pa 10.244.0.1"                  # hairpin, either way
            assert tb.http("ext", tb.node1_ip, 30084) == f"pc {tb.node1_ip}"
    finally:
        proxy.large_cluster_threshold = kept


def test_cleanup_removes_the_table_and_keeps_others(tb: Testbed, proxy: NftablesBackend) -> None:
    tb.run("node1", "nft add table ip other && nft add chain ip other keep")
    try:
        proxy.cleanup()
        tables = tb.run("node1", "nft list tables").stdout
        assert "kube-proxy" not in tables and "table ip other" in tables
        assert tb.http("pa", REMOTE_IP, 80, timeout=1) is None
        proxy.cleanup()                                       # twice is fine
    finally:
        tb.run("node1", "nft delete table ip other", check=False)


# --- scale ----------------------------------------------------------------------

def scale_state(n: int, per: int) -> ProxyState:
    node = NodeFacts("node1", ("172.31.0.2",), "10.244.0.0/16")
    sps = {}
    for s in range(n):
        name = ServicePortName(f"ns{s % 50}", f"svc{s}", "http", "TCP")
        eps = tuple(Endpoint(f"10.244.{(s * per + e) // 250 % 256}.{(s * per + e) % 250 + 1}", 8080,
                             f"node{e % 3}") for e in range(per))
        sps[name] = ServicePort(name, f"10.96.{s // 256}.{s % 256}", 80, endpoints=eps)
    return ProxyState(sps, node)


def measure(n: int, per: int, layout: str, capsys: pytest.CaptureFixture[str]) -> tuple[float, float]:
    """Full sync of n Services x per endpoints into a fresh namespace, then a
    partial sync of one Service whose last endpoint moved; prints and
    returns both durations."""
    netns = f"kpt{os.getpid() % 100000}-nftscale"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        st = scale_state(n, per)
        backend = NftablesBackend(netns)
        t0 = time.perf_counter()
        full = backend.sync(st, None)
        t1 = time.perf_counter()
        name = next(iter(st.services))
        sp = st.services[name]
        moved = (*sp.endpoints[:-1], dataclasses.replace(sp.endpoints[-1], ip="10.245.0.1"))
        st2 = ProxyState({**st.services, name: dataclasses.replace(sp, endpoints=moved)}, st.node)
        t2 = time.perf_counter()
        part = backend.sync(st2, frozenset({name}))
        t3 = time.perf_counter()
        with capsys.disabled():
            print(f"\nnftables {n}x{per} ({full.layout}): full sync {t1 - t0:.2f}s ({full.rules} rules), "
                  f"one-service partial sync {1000 * (t3 - t2):.0f}ms ({part.rules} rules)")
        assert full.full and full.layout == layout and full.endpoints == n * per
        assert not part.full and part.services_written == 1 and part.layout == layout
        assert run(["nft", "list", "set", "ip", "kube-proxy", "cluster-ips"], netns=netns).returncode == 0
        return t1 - t0, t3 - t2
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def test_scale_1000_services_one_endpoint_each_in_endpoint_chains(capsys: pytest.CaptureFixture[str]) -> None:
    full, partial = measure(1000, 1, ENDPOINT_CHAINS, capsys)
    assert full < 15 and partial < 2


def test_scale_2000_services_ten_endpoints_each_in_large_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    full, partial = measure(2000, 10, LARGE_CLUSTER, capsys)
    assert full < 15 and partial < 2
