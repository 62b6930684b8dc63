"""A small cluster's worth of API objects for the DNS server without a cluster.

Used by the unit tests, the integration test (`python -m kinns.dns
-fixtures FILE` serves them instead of watching an API server) and the
benchmark.  The shapes follow CoreDNS's own test data
(plugin/kubernetes/handler_test.go: svc1, svcempty, hdls1, external,
external-to-service, hdlsprtls, svc-dual-stack) in namespace `testns`,
plus what a kubeadm cluster has (kube-dns, a StatefulSet behind a
headless Service, pods with hostname + subdomain) so every rule of the
specification has something to answer.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(ns: str, name: str, cluster_ips: list[str] | None = None, ports: list[Obj] | None = None, *,
            type: str = "ClusterIP", external_name: str = "", publish_not_ready: bool = False,
            labels: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"type": type, "ports": ports or []}
    if cluster_ips:
        spec["clusterIP"] = cluster_ips[0]
        spec["clusterIPs"] = cluster_ips
    if external_name:
        spec["externalName"] = external_name
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "labels": labels or {}}, "spec": spec}


def port(name: str, number: int, protocol: str = "TCP") -> Obj:
    return {"name": name, "port": number, "protocol": protocol}


def endpoint(ip: str, *, hostname: str = "", ready: bool | None = True, pod: str = "") -> Obj:
    ep: Obj = {"addresses": [ip]}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    if pod:
        ep["targetRef"] = {"kind": "Pod", "name": pod}
    return ep


def endpoint_slice(ns: str, service_name: str, endpoints: list[Obj], ports: list[Obj] | None = None, *,
                   name: str = "", address_type: str = "IPv4") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name or f"{service_name}-abcde",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports or []}


def pod(ns: str, name: str, ip: str, *, hostname: str = "", subdomain: str = "") -> Obj:
    spec: Obj = {}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name},
            "spec": spec, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def big_headless(ns: str = "default", name: str = "big", count: int = 60) -> list[Obj]:
    """A headless Service with `count` ready endpoints: its A answer does not fit in 512 bytes."""
    eps = [endpoint(f"10.244.{2 + i // 250}.{1 + i % 250}") for i in range(count)]
    return [service(ns, name, ["None"], [port("http", 80)]),
            endpoint_slice(ns, name, eps, [port("http", 80)])]


def cluster() -> list[Obj]:
    """The test cluster (see the module doc)."""
    http = [port("http", 80)]
    objs: list[Obj] = [namespace(n) for n in ("default", "kube-system", "testns", "other")]
    objs += [
        service("default", "kubernetes", ["10.96.0.1"], [port("https", 443)]),
        endpoint_slice("default", "kubernetes", [endpoint("172.18.0.2")], [port("https", 6443)], name="kubernetes"),
        service("kube-system", "kube-dns", ["10.96.0.10"],
                [port("dns", 53, "UDP"), port("dns-tcp", 53), port("metrics", 9153)]),
        endpoint_slice("kube-system", "kube-dns", [endpoint("10.244.0.2", pod="coredns-a"),
                                                   endpoint("10.244.1.2", pod="coredns-b")],
                       [port("dns", 53, "UDP"), port("dns-tcp", 53), port("metrics", 9153)]),
        # CoreDNS's test services
        service("testns", "svc1", ["10.0.0.1"], http),
        endpoint_slice("testns", "svc1", [endpoint("172.0.0.1", hostname="ep1a")], http),
        service("testns", "svcempty", ["10.0.0.1"], http),
        endpoint_slice("testns", "svcempty", [], http),
        service("testns", "svc6", ["1234:abcd::1"], http),
        service("testns", "svc-dual-stack", ["10.0.0.3", "10::3"], http),
        service("testns", "hdls1", ["None"]),
        endpoint_slice("testns", "hdls1", [
            endpoint("172.0.0.2"), endpoint("172.0.0.3"),
            endpoint("172.0.0.4", hostname="dup-name"), endpoint("172.0.0.5", hostname="dup-name"),
            endpoint("5678:abcd::1"), endpoint("5678:abcd::2")], http),
        service("testns", "hdlsprtls", ["None"]),
        endpoint_slice("testns", "hdlsprtls", [endpoint("172.0.0.20")]),
        service("testns", "external", type="ExternalName", external_name="ext.interwebs.test", ports=http),
        service("testns", "external-to-service", type="ExternalName",
                external_name="svc1.testns.svc.cluster.local.", ports=http),
        # a web app, a StatefulSet behind a headless Service, a not-ready pod, an empty headless Service
        service("default", "web", ["10.96.0.50"], [port("http", 80), port("", 8080)]),
        endpoint_slice("default", "web", [endpoint("10.244.1.5", pod="web-1"), endpoint("10.244.2.6", pod="web-2"),
                                          endpoint("10.244.2.7", ready=False, pod="web-3")],
                       [port("http", 8080), port("", 8081)]),
        service("default", "nginx", ["None"], [port("web", 80)]),
        endpoint_slice("default", "nginx", [endpoint("10.244.1.10", pod="web-0"), endpoint("10.244.2.11", pod="web-1x"),
                                            endpoint("10.244.2.12", ready=False, pod="web-2x")],
                       [port("web", 80)]),
        pod("default", "web-0", "10.244.1.10", hostname="web-0", subdomain="nginx"),
        pod("default", "web-1x", "10.244.2.11", hostname="web-1", subdomain="nginx"),
        pod("default", "web-2x", "10.244.2.12", hostname="web-2", subdomain="nginx"),
        service("default", "lonely", ["None"], [port("http", 80)]),
        endpoint_slice("default", "lonely", [endpoint("10.244.3.3", ready=False)], [port("http", 80)]),
        service("default", "eager", ["None"], [port("http", 80)], publish_not_ready=True),
        endpoint_slice("default", "eager", [endpoint("10.244.3.4", ready=False)], [port("http", 80)]),
        service("other", "db", ["10.96.0.60"], [port("postgres", 5432)]),
    ]
    return objs
