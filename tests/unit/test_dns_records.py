"""Slim records and their indexes, updated per event."""

from __future__ import annotations

from kinns.dns import fixtures
from kinns.dns.records import Address, Records, to_pod, to_service, to_slice


def test_slim_service() -> None:
    s = to_service(fixtures.service("default", "web", ["10.96.0.50", "fd00::50"], [fixtures.port("http", 80)]))
    assert s.cluster_ips == ("10.96.0.50", "fd00::50") and not s.headless
    assert s.ports[0].name == "http" and s.ports[0].port == 80 and s.ports[0].protocol == "TCP"
    assert to_service(fixtures.service("default", "h", ["None"])).headless
    assert to_service(fixtures.service("default", "p", ["10.96.0.1"])).ports[0].port == -1   # no ports: sentinel


def test_slim_slice() -> None:
    sl = to_slice(fixtures.endpoint_slice("default", "web", [fixtures.endpoint("10.0.0.1", ready=None),
                                                             fixtures.endpoint("10.0.0.2", ready=False, hostname="b")]))
    assert sl is not None and sl.service == "web"
    assert sl.addresses == (Address("10.0.0.1", "", True), Address("10.0.0.2", "b", False))
    orphan = fixtures.endpoint_slice("default", "web", [])
    del orphan["metadata"]["labels"]
    assert to_slice(orphan) is None
    assert to_slice(fixtures.endpoint_slice("default", "web", [], address_type="FQDN")) is None


def test_host_network_pod_not_indexed() -> None:
    p = fixtures.pod("kube-system", "etcd", "172.18.0.2")
    p["spec"]["hostNetwork"] = True
    assert to_pod(p).ips == ()


def test_indexes_follow_events() -> None:
    r = Records()
    r.upsert(fixtures.service("default", "web", ["10.96.0.50"]))
    r.upsert(fixtures.endpoint_slice("default", "web", [fixtures.endpoint("10.244.1.5")], name="web-1"))
    r.upsert(fixtures.endpoint_slice("default", "web", [fixtures.endpoint("10.244.1.6")], name="web-2"))
    assert [s.name for s in r.services_at("10.96.0.50")] == ["web"]
    assert [s.name for s in r.service_slices("default", "web")] == ["web-1", "web-2"]
    assert [s.name for s in r.slices_at("10.244.1.6")] == ["web-2"]
    # the slice moves to another address; then the Service loses its cluster IP
    r.upsert(fixtures.endpoint_slice("default", "web", [fixtures.endpoint("10.244.1.7")], name="web-2"))
    assert r.slices_at("10.244.1.6") == [] and [s.name for s in r.slices_at("10.244.1.7")] == ["web-2"]
    r.delete(fixtures.service("default", "web"))
    assert r.services_at("10.96.0.50") == [] and not r.namespace_exists("default")
    r.delete(fixtures.endpoint_slice("default", "web", [], name="web-1"))
    assert [s.name for s in r.service_slices("default", "web")] == ["web-2"]


def test_replace_removes_what_is_gone() -> None:
    r = Records()
    r.replace([fixtures.namespace("a"), fixtures.service("a", "x", ["10.96.0.1"]), fixtures.pod("a", "p", "10.244.0.9")])
    r.replace([fixtures.namespace("a"), fixtures.service("a", "y", ["10.96.0.2"])])
    assert list(r.services) == [("a", "y")] and not r.pods and r.pods_at("10.244.0.9") == []


def test_listeners_and_serial() -> None:
    now = [1000.0]
    r = Records(clock=lambda: now[0])
    calls: list[int] = []
    r.listeners.append(lambda: calls.append(r.version))
    now[0] = 2000.0
    assert r.upsert(fixtures.namespace("a"))
    assert not r.upsert(fixtures.namespace("a"))
    assert calls == [1] and r.modified == 2000


def test_endpoint_hostname_order() -> None:
    r = Records()
    r.upsert(fixtures.pod("default", "web-0", "10.244.1.10", hostname="web-0", subdomain="nginx"))
    a = Address("10.244.1.10", "", True, "web-0")
    assert r.endpoint_hostname("default", "nginx", a) == "web-0"          # pod hostname + subdomain
    assert r.endpoint_hostname("default", "other", a) == "10-244-1-10"    # subdomain names another Service
    assert r.endpoint_hostname("default", "other", a, endpoint_pod_names=True) == "web-0"
    assert r.endpoint_hostname("default", "x", Address("10.1.1.1", "given", True)) == "given"
    assert r.endpoint_hostname("default", "x", Address("fd00::", "", True)) == "fd00--0"
