"""Service cluster IPs and node ports: what `kubectl get svc` shows and what it refuses.

Each test drives `ServiceAllocator` the way the REST layer does (defaults,
then allocate/update/release) and checks what a user would see: the
addresses filled in, upstream's error sentences, and that a failed request
leaves nothing allocated.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from typing import Any

import pytest

from kinns.api.allocator import ServiceAllocator
from kinns.api.defaults import apply_defaults
from kinns.api.errors import ApiError

Obj = dict[str, Any]


def svc(name: str = "web", **spec: Any) -> Obj:
    base: Obj = {"ports": [{"port": 80}], "selector": {"app": name}}
    base.update(spec)
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": base}
    apply_defaults("Service", obj)
    return obj


@pytest.fixture
def alloc() -> ServiceAllocator:
    return ServiceAllocator("10.96.0.0/12", (30000, 32767), rng=random.Random(7))


def message(exc: pytest.ExceptionInfo[ApiError]) -> str:
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    return exc.value.message


# ------------------------------------------------------------- cluster IPs


def test_dynamic_ip_comes_from_the_upper_band(alloc: ServiceAllocator) -> None:
    """Upstream keeps the first 256 addresses of a /12 for explicit requests."""
    for i in range(50):
        s = svc(f"s{i}")
        alloc.allocate(s)
        ip = ipaddress.ip_address(s["spec"]["clusterIP"])
        assert s["spec"]["clusterIPs"] == [str(ip)]
        assert ip in ipaddress.ip_network("10.96.0.0/12")
        assert int(ip) - int(ipaddress.ip_address("10.96.0.0")) > 256
        assert s["spec"]["ipFamilies"] == ["IPv4"] and s["spec"]["ipFamilyPolicy"] == "SingleStack"
    assert alloc.ips_in_use == 50


@pytest.mark.parametrize("ip", ["10.96.0.1", "10.96.0.10", "10.111.255.254", "10.100.7.7"])
def test_requested_ip_is_honoured(alloc: ServiceAllocator, ip: str) -> None:
    s = svc(clusterIP=ip)
    alloc.allocate(s)
    assert s["spec"]["clusterIP"] == ip and s["spec"]["clusterIPs"] == [ip]
    assert alloc.ip_allocated(ip)


@pytest.mark.parametrize("ip,detail", [
    ("10.96.0.5", "failed to allocate IP 10.96.0.5: provided IP is already allocated"),
    ("10.0.0.1", "failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. "
                 "The range of valid IPs is 10.96.0.0/12"),
    ("10.96.0.0", "failed to allocate IP 10.96.0.0: the provided IP (10.96.0.0) is not in the valid range. "
                  "The range of valid IPs is 10.96.0.0/12"),
    ("10.111.255.255", "failed to allocate IP 10.111.255.255: the provided IP (10.111.255.255) is not in the "
                       "valid range. The range of valid IPs is 10.96.0.0/12"),
])
def test_bad_requested_ip(alloc: ServiceAllocator, ip: str, detail: str) -> None:
    alloc.allocate(svc("first", clusterIP="10.96.0.5"))
    with pytest.raises(ApiError) as exc:
        alloc.allocate(svc("second", clusterIP=ip))
    assert message(exc) == f'Service "second" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: {detail}'
    assert exc.value.details and exc.value.details["causes"][0]["field"] == "spec.clusterIPs"
    assert alloc.ips_in_use == 1


def test_external_name_and_headless_get_no_ip(alloc: ServiceAllocator) -> None:
    ext = svc("ext", type="ExternalName", externalName="example.com", ports=[])
    alloc.allocate(ext)
    assert "clusterIP" not in ext["spec"]
    headless = svc("db", clusterIP="None")
    alloc.allocate(headless)
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    assert alloc.ips_in_use == 0


def test_release_makes_the_ip_reusable(alloc: ServiceAllocator) -> None:
    s = svc(clusterIP="10.96.0.10")
    alloc.allocate(s)
    alloc.release(s)
    assert not alloc.ip_allocated("10.96.0.10")
    again = svc("again", clusterIP="10.96.0.10")
    alloc.allocate(again)
    assert alloc.ip_allocated("10.96.0.10")


def test_small_range_fills_up_with_an_internal_error() -> None:
    alloc = ServiceAllocator("10.96.0.0/29", (30000, 30010))
    ips = set()
    for i in range(6):                       # 8 addresses minus network and broadcast
        s = svc(f"s{i}")
        alloc.allocate(s)
        ips.add(s["spec"]["clusterIP"])
    assert ips == {f"10.96.0.{i}" for i in range(1, 7)}
    with pytest.raises(ApiError) as exc:
        alloc.allocate(svc("full"))
    assert exc.value.code == 500
    assert exc.value.message == "Internal error occurred: failed to allocate a serviceIP: range is full"


def test_load_rebuilds_state_from_stored_services(alloc: ServiceAllocator) -> None:
    a = svc("a", clusterIP="10.96.0.1")
    b = svc("b", type="NodePort", clusterIP="10.96.3.3", ports=[{"port": 80, "nodePort": 30999}])
    for s in (a, b):
        alloc.allocate(s)
    fresh = ServiceAllocator(rng=random.Random(1))
    fresh.load([copy.deepcopy(a), copy.deepcopy(b), svc("ext", type="ExternalName", externalName="x.y", ports=[])])
    assert fresh.ip_allocated("10.96.0.1") and fresh.ip_allocated("10.96.3.3") and fresh.port_allocated(30999)
    with pytest.raises(ApiError) as exc:
        fresh.allocate(svc("c", clusterIP="10.96.0.1"))
    assert "provided IP is already allocated" in message(exc)


# -------------------------------------------------------------- node ports


def test_node_port_service_gets_ports_from_the_upper_band(alloc: ServiceAllocator) -> None:
    """Upstream keeps min(max(16, 2768/32), 128) = 86 ports at the bottom for explicit requests."""
    for i in range(30):
        s = svc(f"n{i}", type="NodePort", ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}])
        alloc.allocate(s)
        ports = [p["nodePort"] for p in s["spec"]["ports"]]
        assert all(30086 <= p <= 32767 for p in ports) and len(set(ports)) == 2
        assert s["spec"]["externalTrafficPolicy"] == "Cluster"
    assert alloc.ports_in_use == 60


def test_requested_node_port_is_honoured(alloc: ServiceAllocator) -> None:
    s = svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    alloc.allocate(s)
    assert s["spec"]["ports"][0]["nodePort"] == 30080 and alloc.port_allocated(30080)


@pytest.mark.parametrize("port,detail", [
    (30080, "provided port is already allocated"),
    (20000, "provided port is not in the valid range. The range of valid ports is 30000-32767"),
    (32768, "provided port is not in the valid range. The range of valid ports is 30000-32767"),
])
def test_bad_requested_node_port(alloc: ServiceAllocator, port: int, detail: str) -> None:
    alloc.allocate(svc("taken", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    with pytest.raises(ApiError) as exc:
        alloc.allocate(svc("npt", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert message(exc) == f'Service "npt" is invalid: spec.ports[0].nodePort: Invalid value: {port}: {detail}'


def test_tcp_and_udp_of_one_port_share_a_node_port(alloc: ServiceAllocator) -> None:
    s = svc(type="NodePort", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    alloc.allocate(s)
    a, b = (p["nodePort"] for p in s["spec"]["ports"])
    assert a == b and alloc.ports_in_use == 1


def test_load_balancer_node_ports_and_health_check(alloc: ServiceAllocator) -> None:
    lb = svc(type="LoadBalancer", externalTrafficPolicy="Local")
    alloc.allocate(lb)
    assert lb["spec"]["ports"][0]["nodePort"] and lb["spec"]["healthCheckNodePort"]
    assert alloc.ports_in_use == 2
    bare = svc("bare", type="LoadBalancer", allocateLoadBalancerNodePorts=False)
    alloc.allocate(bare)
    assert "nodePort" not in bare["spec"]["ports"][0]
    alloc.release(lb)
    assert alloc.ports_in_use == 0


# -------------------------------------------------------------- atomicity


def test_failed_create_leaves_nothing_allocated(alloc: ServiceAllocator) -> None:
    alloc.allocate(svc("holder", type="NodePort", ports=[{"port": 80, "nodePort": 30999}]))
    before = (alloc.ips_in_use, alloc.ports_in_use)
    bad = svc("bad", type="NodePort", clusterIP="10.96.0.50",
              ports=[{"name": "a", "port": 80, "nodePort": 30500}, {"name": "b", "port": 81},
                     {"name": "c", "port": 82, "nodePort": 30999}])
    with pytest.raises(ApiError) as exc:
        alloc.allocate(bad)
    assert "spec.ports[2].nodePort: Invalid value: 30999: provided port is already allocated" in message(exc)
    assert (alloc.ips_in_use, alloc.ports_in_use) == before
    assert not alloc.ip_allocated("10.96.0.50") and not alloc.port_allocated(30500)


# ----------------------------------------------------------------- updates


def _updated(alloc: ServiceAllocator, old: Obj, **spec: Any) -> Obj:
    new = copy.deepcopy(old)
    new["spec"].update(spec)
    apply_defaults("Service", new)
    alloc.update(old, new)
    return new


def test_cluster_ip_to_node_port_and_back(alloc: ServiceAllocator) -> None:
    old = svc(clusterIP="10.96.0.20")
    alloc.allocate(old)
    np = _updated(alloc, old, type="NodePort")
    port = np["spec"]["ports"][0]["nodePort"]
    assert np["spec"]["clusterIP"] == "10.96.0.20" and alloc.port_allocated(port)
    back = _updated(alloc, np, type="ClusterIP")
    assert "nodePort" not in back["spec"]["ports"][0] and "externalTrafficPolicy" not in back["spec"]
    assert not alloc.port_allocated(port) and alloc.ip_allocated("10.96.0.20")


def test_update_keeps_values_the_client_left_out(alloc: ServiceAllocator) -> None:
    old = svc(type="NodePort", ports=[{"name": "http", "port": 80}])
    alloc.allocate(old)
    replaced = copy.deepcopy(old)
    for key in ("clusterIP", "clusterIPs"):
        replaced["spec"].pop(key)
    replaced["spec"]["ports"] = [{"name": "http", "port": 80}]
    apply_defaults("Service", replaced)
    alloc.update(old, replaced)
    assert replaced["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    assert replaced["spec"]["ports"][0]["nodePort"] == old["spec"]["ports"][0]["nodePort"]
    assert (alloc.ips_in_use, alloc.ports_in_use) == (1, 1)


def test_external_name_round_trip(alloc: ServiceAllocator) -> None:
    old = svc(clusterIP="10.96.0.30")
    alloc.allocate(old)
    ext = _updated(alloc, old, type="ExternalName", externalName="example.com")
    assert "clusterIP" not in ext["spec"] and not alloc.ip_allocated("10.96.0.30")
    back = _updated(alloc, ext, type="ClusterIP")
    assert alloc.ip_allocated(back["spec"]["clusterIP"]) and alloc.ips_in_use == 1


def test_changing_a_node_port_moves_it(alloc: ServiceAllocator) -> None:
    old = svc(type="NodePort", ports=[{"port": 80, "nodePort": 30100}])
    alloc.allocate(old)
    new = copy.deepcopy(old)
    new["spec"]["ports"][0]["nodePort"] = 30200
    alloc.update(old, new)
    assert alloc.port_allocated(30200) and not alloc.port_allocated(30100)


def test_failed_update_changes_nothing(alloc: ServiceAllocator) -> None:
    alloc.allocate(svc("holder", type="NodePort", ports=[{"port": 80, "nodePort": 30999}]))
    old = svc(clusterIP="10.96.0.40", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    alloc.allocate(old)
    new = copy.deepcopy(old)
    new["spec"]["type"] = "NodePort"
    new["spec"]["ports"][1]["nodePort"] = 30999
    apply_defaults("Service", new)
    before = (alloc.ips_in_use, alloc.ports_in_use)
    with pytest.raises(ApiError) as exc:
        alloc.update(old, new)
    assert "spec.ports[1].nodePort: Invalid value: 30999: provided port is already allocated" in message(exc)
    assert (alloc.ips_in_use, alloc.ports_in_use) == before
    assert alloc.ip_allocated("10.96.0.40")
