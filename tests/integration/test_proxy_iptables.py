"""kube-proxy iptables mode with real packets: rules applied inside node1 of the
two-node namespace testbed (tests/integration/proxy_testbed.py), probed from
pods and from the outside client.

One testbed and one `IptablesBackend(netns=node1)` serve the whole module;
each test applies the Services it needs with a full sync (or a partial one,
when that is the point) and checks answers `<pod> <client-ip>`.

The testbed gives node1 no default route, so a packet to a Service IP
without a DNAT would die at routing ("unreachable") before iptables' filter
FORWARD chain, where upstream REJECTs; `node1_default_route` adds one
(towards `ext`, which does not forward) so the REJECT path is what a real
node would see.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from kinns.proxy.iptables import IptablesBackend
from kinns.proxy.model import ProxyState, ServicePort
from tests.integration import proxy_testbed
from tests.integration.proxy_testbed import service_port as svc
from tests.integration.proxy_testbed import testbed  # noqa: F401 - the module's fixture

# `Testbed` is used through its module: bound by name in a test module, pytest
# would try to collect it as a test class (and warnings are errors here).
Bed = proxy_testbed.Testbed

WEB_IP, STICKY_IP, EMPTY_IP, DNS_IP, REMOTE_IP, LOCAL_IP = (
    "10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.13", "10.96.0.14", "10.96.0.15")


def services(tb: Bed) -> list[ServicePort]:
    return [
        svc("web", WEB_IP, tb.endpoints("pa", "pb", "pc"), node_port=30080),
        svc("sticky", STICKY_IP, tb.endpoints("pa", "pb", "pc"), affinity_timeout=60),
        svc("empty", EMPTY_IP, (), node_port=30082),
        svc("dns", DNS_IP, tb.endpoints("pc", port=9000), port=53, proto="UDP"),
        svc("remote", REMOTE_IP, tb.endpoints("pc"), node_port=30084),
        svc("local", LOCAL_IP, tb.endpoints("pa", "pc"), node_port=30085, external_local=True),
    ]


def state(tb: Bed, sps: list[ServicePort]) -> ProxyState:
    return ProxyState({s.name: s for s in sps}, tb.node_facts("node1"))


@pytest.fixture(scope="module")
def node1_default_route(testbed: Bed) -> None:  # noqa: F811
    testbed.run("node1", f"ip route replace default via {testbed.ext_ip}")


@pytest.fixture(scope="module")
def proxy(testbed: Bed, node1_default_route: None) -> Iterator[IptablesBackend]:  # noqa: F811
    b = IptablesBackend(netns=testbed.node1)
    b.sync(state(testbed, services(testbed)), None)
    yield b
    b.cleanup()


@pytest.fixture
def tb(testbed: Bed, proxy: IptablesBackend) -> Bed:  # noqa: F811
    """The testbed with every Service of `services()` applied by a full sync."""
    proxy.sync(state(testbed, services(testbed)), None)
    return testbed


def who(answers: list[str]) -> set[str]:
    return {a.split()[0] for a in answers if a}


def test_iptables_save_shows_our_chains_and_comments(tb: Bed) -> None:
    saved = tb.run("node1", "iptables-save").stdout
    assert ":KUBE-SERVICES - " in saved and ":KUBE-PROXY-CANARY - " in saved
    assert '--comment "default/web:http cluster IP"' in saved
    assert '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in saved
    assert "-j MASQUERADE --random-fully" in saved


def test_cluster_ip_reaches_every_endpoint(tb: Bed) -> None:
    answers = tb.many_http("pa", WEB_IP, 80, 40)
    assert who(answers) == {"pa", "pb", "pc"}
    by_pod = {a.split()[0]: a.split()[1] for a in answers if a}
    assert by_pod["pb"] == "10.244.0.2"            # pod to pod: client address kept
    assert by_pod["pc"] == "10.244.0.2"            # across nodes, too
    assert by_pod["pa"] == "10.244.0.1"            # hairpin: masqueraded to the bridge address


def test_cluster_ip_from_the_node_itself(tb: Bed) -> None:
    assert tb.http("node1", REMOTE_IP, 80) is not None


def test_udp_cluster_ip(tb: Bed) -> None:
    assert tb.udp("pb", DNS_IP, 53) == "pc 10.244.0.3"


def test_nodeport_from_outside_is_masqueraded(tb: Bed) -> None:
    assert tb.http("ext", tb.node1_ip, 30084) == f"pc {tb.node1_ip}"


def test_nodeport_local_policy_keeps_client_ip_and_stays_local(tb: Bed) -> None:
    answers = tb.many_http("ext", tb.node1_ip, 30085, 10)
    assert set(answers) == {f"pa {tb.ext_ip}"}


def test_nodeport_local_policy_drops_without_local_endpoints(tb: Bed, proxy: IptablesBackend) -> None:
    sps = [s for s in services(tb) if s.name.name != "local"]
    sps.append(svc("local", LOCAL_IP, tb.endpoints("pc"), node_port=30085, external_local=True))
    proxy.sync(state(tb, sps), frozenset({sps[-1].name}))
    assert tb.connect_result("ext", tb.node1_ip, 30085, timeout=1)[0] == "timeout"
    # Pods still reach it: pod traffic to external destinations short-circuits to the cluster chain.
    assert who(tb.many_http("pa", tb.node1_ip, 30085, 3)) == {"pc"}


def test_no_endpoints_is_refused_at_once(tb: Bed) -> None:
    result, seconds = tb.connect_result("pa", EMPTY_IP, 80)
    assert result == "refused" and seconds < 1
    assert tb.connect_result("ext", tb.node1_ip, 30082)[0] == "refused"


def test_session_affinity_sticks(tb: Bed) -> None:
    answers = tb.many_http("pb", STICKY_IP, 80, 15)
    assert len(who(answers)) == 1 and all(answers)


def test_partial_sync_rewrites_only_the_changed_service(tb: Bed, proxy: IptablesBackend) -> None:
    sps = [s for s in services(tb) if s.name.name != "web"]
    web = svc("web", WEB_IP, tb.endpoints("pa", "pb"), node_port=30080)
    res = proxy.sync(state(tb, [web, *sps]), frozenset({web.name}))
    assert not res.full and res.services_written == 1
    assert who(tb.many_http("pa", WEB_IP, 80, 20)) == {"pa", "pb"}
    saved = tb.run("node1", "iptables-save -t nat").stdout
    assert "default/web:http -> 10.244.1.2:8080" not in saved
    assert "default/remote:http -> 10.244.1.2:8080" in saved      # untouched service kept its chains


def test_flush_is_detected_and_repaired_by_a_full_sync(tb: Bed, proxy: IptablesBackend) -> None:
    assert not proxy.tables_flushed()
    tb.run("node1", "iptables -t nat -F")
    assert proxy.tables_flushed()
    assert tb.http("pa", REMOTE_IP, 80, timeout=1) is None
    proxy.sync(state(tb, services(tb)), None)
    assert not proxy.tables_flushed()
    assert tb.http("pa", REMOTE_IP, 80) == "pc 10.244.0.2"


def test_nft_flush_ruleset_is_detected_and_repaired(tb: Bed, proxy: IptablesBackend) -> None:
    tb.run("node1", "nft flush ruleset")
    assert proxy.tables_flushed()
    proxy.sync(state(tb, services(tb)), None)
    assert not proxy.tables_flushed()
    assert tb.http("ext", tb.node1_ip, 30084) == f"pc {tb.node1_ip}"


def test_cleanup_leaves_no_kube_chain_and_keeps_others(tb: Bed, proxy: IptablesBackend) -> None:
    tb.run("node1", "iptables -t nat -N CNI-TESTCHAIN && iptables -t nat -A POSTROUTING -j CNI-TESTCHAIN")
    try:
        proxy.cleanup()
        saved = tb.run("node1", "iptables-save").stdout
        assert "KUBE-" not in saved
        assert ":CNI-TESTCHAIN" in saved and "-A POSTROUTING -j CNI-TESTCHAIN" in saved
        assert tb.http("pa", REMOTE_IP, 80, timeout=1) is None
    finally:
        tb.run("node1", "iptables -t nat -D POSTROUTING -j CNI-TESTCHAIN; iptables -t nat -X CNI-TESTCHAIN",
               check=False)
