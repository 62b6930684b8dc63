"""LoadBalancer addresses from the fabric pool and the node that announces each.

The pool and the election are pure functions; the controller runs against
the fake API as a user would see it: `status.loadBalancer.ingress` (what
`kubectl get svc` prints as EXTERNAL-IP), the `kinns.io/loadbalancer-node`
annotation, and the Events `kubectl describe svc` lists.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Awaitable, Callable

import pytest

from kinns.client import Client, MockTransport
from kinns.client.fake import FakeApi
from kinns.cluster.config import ClusterConfig
from kinns.controllers.servicelb import (NODE_ANNOTATION, Allocator, Pool, ServiceLBController, announcing_node,
                                         choose_node, default_pool, parse_pool, pool_from_config)

Obj = dict[str, Any]


# ---- the pool ----------------------------------------------------------------

@pytest.mark.parametrize("subnet,nodes,want,size", [
    ("172.18.5.0/24", 3, "172.18.5.200-172.18.5.254", 55),
    ("172.18.0.0/16", 3, "172.18.200.0-172.18.255.254", 14335),
    ("172.18.5.128/25", 3, "172.18.5.228-172.18.5.254", 27),
    ("172.18.5.16/28", 3, "172.18.5.28-172.18.5.30", 3),
    ("172.18.5.8/29", 3, "172.18.5.14-172.18.5.14", 1),
    ("172.18.5.16/28", 12, "172.18.5.30-172.18.5.30", 1),   # 12 nodes take .2-.13: the pool starts after them
    ("172.18.5.0/24", 250, "172.18.5.252-172.18.5.254", 3),  # 250 nodes take .2-.251
])
def test_default_pool_is_the_top_of_the_fabric(subnet: str, nodes: int, want: str, size: int) -> None:
    pool = default_pool(subnet, nodes)
    assert (str(pool), len(pool)) == (want, size)


def test_default_pool_never_holds_host_or_node_addresses() -> None:
    for plen in range(16, 31):
        subnet = f"10.9.0.0/{plen}"
        for nodes in (0, 1, 3, 5):
            pool = default_pool(subnet, nodes)
            taken = {f"10.9.0.{i}" for i in range(0, 2 + nodes)}
            assert not taken & set(pool), (subnet, nodes)
            assert all(ip.startswith("10.9.") for ip in pool)
    assert len(default_pool("10.9.0.0/30", 1)) == 0


def test_parse_pool() -> None:
    assert str(parse_pool("10.0.0.5 - 10.0.0.9")) == "10.0.0.5-10.0.0.9"
    assert str(parse_pool("10.0.0.5")) == "10.0.0.5-10.0.0.5"
    assert str(parse_pool("10.0.0.0/29")) == "10.0.0.1-10.0.0.6"
    for bad in ("10.0.0.9-10.0.0.5", "nope", "fd00::1-fd00::2"):
        with pytest.raises(ValueError, match="invalid LoadBalancer pool"):
            parse_pool(bad)


def test_pool_from_config() -> None:
    assert pool_from_config(ClusterConfig()) is None                  # fabric not chosen yet
    assert str(pool_from_config(ClusterConfig(fabric_subnet="172.18.7.0/24"))) == "172.18.7.200-172.18.7.254"
    assert str(pool_from_config(ClusterConfig(fabric_subnet="172.18.7.0/24", lb_pool="172.18.7.50-172.18.7.60"))) \
        == "172.18.7.50-172.18.7.60"


def test_allocator_claims_and_releases() -> None:
    a = Allocator()
    pool = parse_pool("10.0.0.1-10.0.0.3")
    assert a.next_free(pool, {"10.0.0.1"}) == "10.0.0.2"
    assert a.claim("ns/a", "10.0.0.2") and not a.claim("ns/b", "10.0.0.2")
    assert a.claim("ns/a", "10.0.0.3") and a.owner("10.0.0.2") is None      # moving drops the old one
    assert a.release("ns/a") == "10.0.0.3" and len(a) == 0


# ---- the election ----------------------------------------------------------------

def node(name: str, ready: bool = True, ip: str = "", labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


def endpoint_slice(svc: str, *eps: tuple[str, bool], name: str = "") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{svc}-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.244.{i}.9"], "nodeName": n, "conditions": {"ready": r}}
                          for i, (n, r) in enumerate(eps)]}


def test_choose_node_is_metallbs_hash_election() -> None:
    nodes = ["k-control-plane", "k-worker", "k-worker2"]
    ip = "172.18.5.200"
    want = min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())
    assert choose_node(ip, nodes) == choose_node(ip, list(reversed(nodes))) == want
    assert choose_node(ip, []) is None
    # Different addresses spread over the nodes.
    assert len({choose_node(f"172.18.5.{i}", nodes) for i in range(200, 255)}) == 3


def test_announcing_node_skips_unready_and_excluded_and_honours_local() -> None:
    nodes = [node("a"), node("b", ready=False), node("c", labels={
        "node.kubernetes.io/exclude-from-external-load-balancers": ""}), node("d")]
    cluster = {"spec": {"externalTrafficPolicy": "Cluster"}}
    local = {"spec": {"externalTrafficPolicy": "Local"}}
    for i in range(200, 220):
        assert announcing_node(cluster, f"10.0.0.{i}", nodes, []) in ("a", "d")
    slices = [endpoint_slice("web", ("b", True), ("d", True), ("a", False))]
    assert announcing_node(local, "10.0.0.200", nodes, slices) == "d"   # b has one but is not Ready
    assert announcing_node(local, "10.0.0.200", nodes, [endpoint_slice("web", ("a", False))]) is None


# ---- the controller against the fake API ------------------------------------------

POOL = "172.18.5.200-172.18.5.202"


def service(name: str, type: str = "LoadBalancer", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": type, "clusterIP": "10.96.0.50", "ports": [{"port": 80, "protocol": "TCP"}], **spec}}


async def eventually(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def run_with(body: Callable[[FakeApi, Client, ServiceLBController], Awaitable[None]], *, pool: str = POOL,
             setup: Callable[[FakeApi], None] | None = None) -> None:
    async def go() -> None:
        fake = FakeApi()
        for n in ("k-control-plane", "k-worker", "k-worker2"):
            fake.put(node(n, ip=f"172.18.5.{2 + len(fake.all('v1', 'Node'))}"))
        if setup:
            setup(fake)
        client = Client(MockTransport(fake.handle))
        ctl = ServiceLBController(client, pool=parse_pool(pool), cluster_cidr="10.244.0.0/16",
                                  service_cidr="10.96.0.0/12")
        try:
            await ctl.start()
            await body(fake, client, ctl)
        finally:
            await ctl.stop()
    asyncio.run(go())


def svc_of(fake: FakeApi, name: str) -> Obj:
    got = fake.lookup("v1", "Service", name, "default")
    assert got is not None
    return got


def lb_ip(fake: FakeApi, name: str) -> str | None:
    ingress = ((svc_of(fake, name).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ingress[0]["ip"] if ingress else None


def announcer(fake: FakeApi, name: str) -> str | None:
    return (svc_of(fake, name)["metadata"].get("annotations") or {}).get(NODE_ANNOTATION)


def events(fake: FakeApi, name: str, reason: str) -> list[Obj]:
    return [e for e in fake.all("v1", "Event", "default")
            if e["involvedObject"]["name"] == name and e["reason"] == reason]


def test_allocates_writes_status_and_announcer() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("web"))
        await c.create(service("db"))
        await c.create(service("plain", type="ClusterIP"))
        await eventually(lambda: bool(lb_ip(fake, "web") and lb_ip(fake, "db") and announcer(fake, "db")
                                      and announcer(fake, "web")))
        assert {lb_ip(fake, "web"), lb_ip(fake, "db")} == {"172.18.5.200", "172.18.5.201"}
        assert svc_of(fake, "web")["status"]["loadBalancer"]["ingress"] == [{"ip": lb_ip(fake, "web"),
                                                                            "ipMode": "VIP"}]
        ip = lb_ip(fake, "web")
        assert ip is not None
        want = choose_node(ip, ["k-control-plane", "k-worker", "k-worker2"])
        assert announcer(fake, "web") == want
        await eventually(lambda: bool(events(fake, "web", "nodeAssigned")))
        assert events(fake, "web", "nodeAssigned")[0]["message"] == \
            f'announcing from node "{want}" with protocol "layer2"'
        assert events(fake, "web", "IPAllocated")[0]["message"] == f'Assigned IP ["{ip}"]'
        plain = svc_of(fake, "plain")
        assert "annotations" not in plain["metadata"] and not (plain.get("status") or {}).get("loadBalancer")
    run_with(body)


def test_exhausted_pool_stays_pending_with_event_until_an_address_frees() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("a"))
        await eventually(lambda: lb_ip(fake, "a") is not None)
        await c.create(service("b"))
        await eventually(lambda: bool(events(fake, "b", "AllocationFailed")))
        (ev,) = events(fake, "b", "AllocationFailed")
        assert ev["type"] == "Warning"
        assert ev["message"] == ('Failed to allocate IP for "default/b": no available IPs: '
                                 "the pool 172.18.5.200-172.18.5.200 (1 address) is exhausted")
        assert lb_ip(fake, "b") is None and announcer(fake, "b") is None
        await c.patch(("v1", "Service"), "b", {"metadata": {"labels": {"touch": "1"}}}, "default")
        await asyncio.sleep(0.1)
        assert events(fake, "b", "AllocationFailed")[0]["count"] == 1     # not re-emitted per reconcile
        await c.delete(("v1", "Service"), "a", "default")
        await eventually(lambda: lb_ip(fake, "b") == "172.18.5.200")
    run_with(body, pool="172.18.5.200-172.18.5.200")


def test_requested_load_balancer_ip() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("want", loadBalancerIP="172.18.5.202"))
        await eventually(lambda: lb_ip(fake, "want") == "172.18.5.202")
        await c.create(service("outside", loadBalancerIP="172.18.5.9"))
        await c.create(service("taken", loadBalancerIP="172.18.5.202"))
        await eventually(lambda: bool(events(fake, "outside", "AllocationFailed")
                                      and events(fake, "taken", "AllocationFailed")))
        assert "is not in the pool 172.18.5.200-172.18.5.202" in events(fake, "outside", "AllocationFailed")[0]["message"]
        assert 'already in use by Service "default/want"' in events(fake, "taken", "AllocationFailed")[0]["message"]
        assert lb_ip(fake, "outside") is None and lb_ip(fake, "taken") is None
        # The user fixes the request: the Service gets it.
        await c.patch(("v1", "Service"), "outside", {"spec": {"loadBalancerIP": "172.18.5.201"}}, "default")
        await eventually(lambda: lb_ip(fake, "outside") == "172.18.5.201")
    run_with(body)


def test_type_change_releases_and_clears() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("a"))
        await eventually(lambda: lb_ip(fake, "a") is not None and announcer(fake, "a") is not None)
        await c.create(service("b"))
        await eventually(lambda: bool(events(fake, "b", "AllocationFailed")))
        await c.patch(("v1", "Service"), "a", {"spec": {"type": "ClusterIP"}}, "default")
        await eventually(lambda: lb_ip(fake, "b") == "172.18.5.200")
        await eventually(lambda: lb_ip(fake, "a") is None and announcer(fake, "a") is None)
        assert ctl.alloc.owner("172.18.5.200") == "default/b"
    run_with(body, pool="172.18.5.200-172.18.5.200")


def test_restart_takes_back_addresses_from_status() -> None:
    def setup(fake: FakeApi) -> None:
        for name, ip, created in (("old", "172.18.5.200", "2026-01-01T00:00:00Z"),
                                  ("mid", "172.18.5.202", "2026-01-02T00:00:00Z"),
                                  ("dup", "172.18.5.200", "2026-01-03T00:00:00Z")):   # a conflict: younger loses
            s = service(name)
            s["metadata"]["creationTimestamp"] = created
            s["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
            fake.put(s)

    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await eventually(lambda: lb_ip(fake, "dup") == "172.18.5.201")
        assert (lb_ip(fake, "old"), lb_ip(fake, "mid")) == ("172.18.5.200", "172.18.5.202")
        await c.create(service("new"))
        await eventually(lambda: bool(events(fake, "new", "AllocationFailed")))
        assert lb_ip(fake, "new") is None
    run_with(body, setup=setup)


def test_local_policy_announces_from_a_node_with_a_ready_endpoint() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("local", externalTrafficPolicy="Local"))
        await eventually(lambda: lb_ip(fake, "local") is not None)
        await asyncio.sleep(0.05)
        assert announcer(fake, "local") is None            # no endpoints anywhere: nobody announces
        await c.create(endpoint_slice("local", ("k-worker2", True), ("k-worker", False)))
        await eventually(lambda: announcer(fake, "local") == "k-worker2")
        # The endpoint moves: so does the announcement.
        await c.patch(("discovery.k8s.io/v1", "EndpointSlice"), "local-abc",
                      {"endpoints": [{"addresses": ["10.244.1.9"], "nodeName": "k-worker",
                                      "conditions": {"ready": True}}]}, "default")
        await eventually(lambda: announcer(fake, "local") == "k-worker")
    run_with(body)


def test_node_going_not_ready_moves_the_announcement() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("web"))
        await eventually(lambda: announcer(fake, "web") is not None)
        first = announcer(fake, "web")
        assert first is not None
        await c.patch(("v1", "Node"), first, {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
                      subresource="status")
        await eventually(lambda: announcer(fake, "web") not in (None, first))
    run_with(body)


def test_node_addresses_are_never_handed_out() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("web"))
        await eventually(lambda: lb_ip(fake, "web") is not None)
        assert lb_ip(fake, "web") == "172.18.5.5"          # .2-.4 are the nodes
    run_with(body, pool="172.18.5.2-172.18.5.9")


def test_external_ips_in_cluster_networks_get_a_warning() -> None:
    async def body(fake: FakeApi, c: Client, ctl: ServiceLBController) -> None:
        await c.create(service("ext", type="ClusterIP", externalIPs=["10.244.3.3", "172.18.5.77", "10.96.5.5"]))
        await c.create(service("fine", type="ClusterIP", externalIPs=["172.18.5.77"]))
        await eventually(lambda: bool(events(fake, "ext", "ExternalIPInClusterNetwork")))
        (ev,) = events(fake, "ext", "ExternalIPInClusterNetwork")
        assert ev["type"] == "Warning"
        assert "10.244.3.3 is inside the pod network 10.244.0.0/16" in ev["message"]
        assert "10.96.5.5 is inside the service network 10.96.0.0/12" in ev["message"]
        assert "172.18.5.77" not in ev["message"] and "kube-proxy ignores" in ev["message"]
        await asyncio.sleep(0.05)
        assert not events(fake, "fine", "ExternalIPInClusterNetwork")
    run_with(body)


def test_pool_unknown_until_the_fabric_exists() -> None:
    async def go() -> None:
        fake = FakeApi()
        client = Client(MockTransport(fake.handle))
        cfg = ClusterConfig(name="t")
        ctl = ServiceLBController.from_config(client, None, cfg)
        try:
            await ctl.start()
            await client.create(service("web"))
            await asyncio.sleep(0.1)
            assert lb_ip(fake, "web") is None
            cfg.fabric_subnet = "172.18.9.0/24"               # start_nodes sets it later
            await eventually(lambda: lb_ip(fake, "web") == "172.18.9.200", timeout=4)
        finally:
            await ctl.stop()
    asyncio.run(go())
