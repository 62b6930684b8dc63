"""kube-proxy's backend-neutral core: the model, categorisation, change tracking,
the bounded-frequency runner, UDP conntrack planning and its configuration."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kinns.proxy import conntrack
from kinns.proxy.healthcheck import ProxierHealth, service_body
from kinns.proxy.model import (Endpoint, NodeFacts, ServicePort, ServicePortName, build_state, categorize,
                               hash_b32, service_ports)
from kinns.proxy.runner import BoundedFrequencyRunner
from kinns.proxy.server import ProxyConfig, parse_duration
from kinns.proxy.tracker import ChangeTracker


def svc(name: str = "web", ns: str = "default", **spec: Any) -> dict[str, Any]:
    base = {"clusterIP": "10.96.0.20", "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    return {"metadata": {"name": name, "namespace": ns}, "spec": {**base, **spec}}


def eps(name: str = "web", ns: str = "default", *addrs: tuple[str, str, dict[str, bool]],
        port_name: str = "http", port: int = 8080, protocol: str = "TCP") -> dict[str, Any]:
    return {"metadata": {"name": f"{name}-abc", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": cond} for ip, node, cond in addrs]}


READY = {"ready": True, "serving": True, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}
NOT_READY = {"ready": False, "serving": False, "terminating": False}


def test_upstream_hash_check_values() -> None:
    spn = str(ServicePortName("ns1", "svc1", "p80", "TCP"))
    assert spn == "ns1/svc1:p80"
    assert hash_b32(spn + "tcp")[:16] == "XPGD46QRK7WJZT7O"
    assert hash_b32(spn + "tcp" + "10.180.0.1:80")[:16] == "SXIVWICOYRO3J4NJ"


def test_service_ports_from_objects() -> None:
    sl = eps("web", "default", ("10.244.1.5", "n1", READY), ("10.244.2.5", "n2", NOT_READY))
    (sp,) = service_ports(svc(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=31000,
                              ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]), [sl])
    assert sp.name == ServicePortName("default", "web", "http", "TCP")
    assert (sp.cluster_ip, sp.port, sp.node_port, sp.health_check_node_port) == ("10.96.0.20", 80, 30080, 31000)
    assert sp.external_local and not sp.internal_local
    assert [(e.ip, e.ready) for e in sp.endpoints] == [("10.244.1.5", True), ("10.244.2.5", False)]


@pytest.mark.parametrize("spec", [{"clusterIP": "None"}, {"type": "ExternalName", "externalName": "x.org"}],
                         ids=["headless", "externalname"])
def test_services_kube_proxy_skips(spec: dict[str, Any]) -> None:
    assert service_ports(svc(**spec), []) == []


def test_external_ips_in_cluster_networks_are_dropped() -> None:
    (sp,) = service_ports(svc(externalIPs=["10.244.3.3", "192.0.2.10"]), [], excluded_cidrs=["10.244.0.0/16"])
    assert sp.external_ips == ("192.0.2.10",)


def test_loadbalancer_ips_come_from_status_and_affinity_defaults() -> None:
    s = svc(type="LoadBalancer", sessionAffinity="ClientIP")
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "172.18.0.200"}]}}
    (sp,) = service_ports(s, [])
    assert sp.load_balancer_ips == ("172.18.0.200",)
    assert sp.affinity_timeout == 10800


def _sp(*endpoints: Endpoint, **kw: Any) -> ServicePort:
    return ServicePort(ServicePortName("ns", "s", "", "TCP"), "10.96.0.5", 80, endpoints=endpoints, **kw)


def test_categorize_terminating_fallback_and_local() -> None:
    ready_remote = Endpoint("10.0.0.1", 80, "n2")
    term_local = Endpoint("10.0.0.2", 80, "n1", ready=False, serving=True, terminating=True)
    c = categorize(_sp(ready_remote, term_local), "n1")
    assert c.cluster == (ready_remote,) and c.local == () and c.has_any
    # Nothing ready anywhere: serving-and-terminating endpoints are used.
    c = categorize(_sp(term_local), "n1")
    assert c.cluster == (term_local,)
    # ETP=Local with a NodePort: local endpoints only for external traffic.
    c = categorize(_sp(ready_remote, term_local, node_port=30000, external_local=True), "n1")
    assert c.cluster == (ready_remote,) and c.local == (term_local,)
    assert set(c.all_reachable) == {ready_remote, term_local}
    # ITP=Local and nothing local: no usable endpoint here, but some exist (DROP, not REJECT).
    c = categorize(_sp(ready_remote, internal_local=True), "n1")
    assert c.all_reachable == () and c.has_any
    assert not categorize(_sp(Endpoint("10.0.0.3", 80, "n2", ready=False, serving=False)), "n1").has_any


def test_tracker_reports_only_real_changes() -> None:
    services = {("default", "web"): svc()}
    slices = {("default", "web"): [eps("web", "default", ("10.244.1.5", "n1", READY))]}
    t = ChangeTracker(lambda ns, n: services.get((ns, n)), lambda ns, n: slices.get((ns, n), []))
    t.on_service(services[("default", "web")])
    first = t.drain()
    assert first.changed == {ServicePortName("default", "web", "http", "TCP")}
    t.on_service(services[("default", "web")])          # touched, not changed
    assert t.drain().changed == frozenset()
    slices[("default", "web")] = [eps("web", "default", ("10.244.1.6", "n1", READY))]
    t.on_slice(slices[("default", "web")][0])
    ch = t.drain()
    assert len(ch.changed) == 1 and ch.pairs[0][0].endpoints[0].ip == "10.244.1.5"  # type: ignore[union-attr]
    del services[("default", "web")]
    t.on_service(svc())
    ch = t.drain()
    assert ch.current == {} and ch.pairs[0][1] is None


def test_build_state_joins_slices_to_services() -> None:
    state = build_state([svc(), svc("other")], [eps("web", "default", ("10.244.1.5", "n1", READY))],
                        NodeFacts("n1", ("172.18.0.2",)))
    assert len(state[ServicePortName("default", "web", "http", "TCP")].endpoints) == 1
    assert state[ServicePortName("default", "other", "http", "TCP")].endpoints == ()


def test_conntrack_plan_for_udp_changes() -> None:
    name = ServicePortName("ns", "dns", "dns", "UDP")
    a, b = Endpoint("10.244.1.5", 53, "n1"), Endpoint("10.244.2.5", 53, "n2")
    old = ServicePort(name, "10.96.0.10", 53, node_port=30053, endpoints=(a, b))
    new = ServicePort(name, "10.96.0.10", 53, node_port=30053, endpoints=(b,))
    assert conntrack.plan([(old, new)]) == [["-p", "udp", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.5"],
                                           ["-p", "udp", "--dport", "30053", "--dst-nat", "10.244.1.5"]]
    empty = ServicePort(name, "10.96.0.10", 53)
    assert conntrack.plan([(empty, new)]) == [["-p", "udp", "--orig-dst", "10.96.0.10"],
                                             ["-p", "udp", "--dport", "30053"]]
    tcp = ServicePort(ServicePortName("ns", "web", "", "TCP"), "10.96.0.11", 80, endpoints=(a,))
    assert conntrack.plan([(tcp, None)]) == []


def test_runner_coalesces_and_keeps_a_minimum_gap() -> None:
    now = [0.0]
    calls: list[float] = []

    async def sync() -> None:
        calls.append(now[0])

    async def main() -> None:
        r = BoundedFrequencyRunner(sync, min_interval=1.0, max_interval=30.0, clock=lambda: now[0])
        await r.run_once()
        task = asyncio.ensure_future(r.loop())
        for _ in range(5):
            r.request()
        await asyncio.sleep(0.01)
        now[0] = 0.5
        await asyncio.sleep(0.01)
        assert len(calls) == 1    # still inside the minimum gap
        task.cancel()
    asyncio.run(main())


def test_runner_retries_after_a_failure() -> None:
    now = [10.0]
    attempts = []

    async def flaky() -> None:
        attempts.append(now[0])
        raise RuntimeError("boom")

    async def main() -> None:
        r = BoundedFrequencyRunner(flaky, min_interval=0, max_interval=30, retry_interval=2, clock=lambda: now[0])
        await r.run_once()
        assert r.next_due() == 12.0
    asyncio.run(main())


def test_proxier_health() -> None:
    h = ProxierHealth(timeout=60)
    assert not h.healthy(now=0)
    h.updated()
    assert h.healthy()
    h.queued()
    assert h.healthy(now=h.last_queued + 10)
    assert not h.healthy(now=h.last_queued + 61)
    assert service_body("ns", "web", 2) == {"service": {"namespace": "ns", "name": "web"}, "localEndpoints": 2,
                                            "serviceProxyHealthy": True}


def test_config_from_kubeadm_style_file(tmp_path: Path) -> None:
    f = tmp_path / "config.conf"
    f.write_text(textwrap.dedent("""\
        apiVersion: kubeproxy.config.k8s.io/v1alpha1
        kind: KubeProxyConfiguration
        clientConnection: {kubeconfig: /var/lib/kube-proxy/kubeconfig.conf}
        clusterCIDR: 10.244.0.0/16
        mode: nftables
        nftables: {minSyncPeriod: 100ms, syncPeriod: 1m0s}
        """))
    cfg = ProxyConfig.load(f)
    assert (cfg.mode, cfg.cluster_cidr, cfg.min_sync, cfg.sync_period) == ("nftables", "10.244.0.0/16", 0.1, 60.0)
    assert cfg.healthz == ("0.0.0.0", 10256) and cfg.metrics == ("127.0.0.1", 10249)
    f.write_text("mode: bogus\n")
    with pytest.raises(ValueError, match='invalid proxy mode "bogus"'):
        ProxyConfig.load(f)
    assert parse_duration("1m30s", 0) == 90.0
