"""What kube-proxy knows: Services and endpoints as small frozen values.

kube-proxy's job splits in three, as upstream's pkg/proxy does:

1. *This module*: API objects (Services, EndpointSlices) become
   `ServicePort` values, one per (service, port, protocol), each carrying
   the endpoints behind it.  Equal inputs give equal values, so a change
   tracker can tell "changed" from "touched" by comparing them.
2. A backend's renderer (`iptables.py`, `nftables.py`, `userspace.py`)
   turns a `ProxyState` (all ServicePorts + this node's facts) into rule
   text.  Renderers are pure: no I/O, golden-tested.
3. The backend's applier writes that text into the node's kernel
   atomically (`iptables-restore --noflush`, `nft -f`).

`categorize` is upstream's topology.go `CategorizeEndpoints`: which
endpoints cluster-wide traffic and node-local traffic may use, given the
traffic policies and the terminating-endpoint fallback.  Every backend
calls it, so all modes agree on semantics.

Nothing here imports I/O; `kinns.proxy` renderers and their tests build on it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

Obj = dict[str, Any]

# Upstream's defaults: the masquerade mark is bit 14 (0x4000); affinity
# lasts 10800 s unless the Service says otherwise.
MASQ_MARK = 0x4000
DEFAULT_AFFINITY_TIMEOUT = 10800
SUPPORTED_PROTOCOLS = ("TCP", "UDP", "SCTP")


class ServicePortName(NamedTuple):
    """Upstream's `proxy.ServicePortName`: a Service port's identity."""

    namespace: str
    name: str
    port: str          # the port's name, "" when the Service has one unnamed port
    protocol: str      # "TCP", "UDP", "SCTP"

    def __str__(self) -> str:
        """`ns/svc:port` (or `ns/svc`), the string upstream hashes and prints in comments."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint address:port from an EndpointSlice, with its conditions."""

    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """Everything kube-proxy needs about one port of one Service.

    `cluster_ip` is "" for headless Services (which kube-proxy skips, so
    `service_ports` never yields them).  `load_balancer_ips` come from the
    Service's status.  `affinity_timeout` is 0 without ClientIP affinity.
    `external_local`/`internal_local` are the traffic policies;
    `external_local` only matters when the port is reachable from outside
    (`externally_accessible`).
    """

    name: ServicePortName
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    lb_source_ranges: tuple[str, ...] = ()
    affinity_timeout: int = 0
    external_local: bool = False
    internal_local: bool = False
    health_check_node_port: int = 0
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def protocol(self) -> str:
        return self.name.protocol

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """Upstream `UsesClusterEndpoints`: some traffic goes cluster-wide.  Any
        externally reachable port needs them, even with ETP=Local: pods and
        the node itself reach its external addresses cluster-wide."""
        return not self.internal_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        """Upstream `UsesLocalEndpoints`: some traffic goes to local endpoints only."""
        return self.internal_local or (self.externally_accessible and self.external_local)


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """This node as kube-proxy sees it."""

    name: str
    node_ips: tuple[str, ...]
    cluster_cidr: str = "10.244.0.0/16"
    masquerade_all: bool = False


@dataclass(frozen=True)
class ProxyState:
    """The renderer's whole input: every ServicePort, keyed by name, and the node."""

    services: Mapping[ServicePortName, ServicePort]
    node: NodeFacts
    # Health-check NodePorts the proxy serves (for ETP=Local): port → local endpoints.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Categorized:
    """Upstream `CategorizeEndpoints`' four results."""

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    all_reachable: tuple[Endpoint, ...]
    has_any: bool


def categorize(sp: ServicePort, node: str) -> Categorized:
    """Which endpoints each kind of traffic may use on `node`.

    Cluster traffic uses ready endpoints; only when none is ready does it
    fall back to endpoints that are serving and terminating.  Local traffic
    (ITP/ETP=Local) does the same among endpoints on this node.
    `has_any` is false only when no usable endpoint exists anywhere, which
    is when the backends REJECT instead of DROP.
    """
    eps = sp.endpoints
    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    if sp.uses_cluster_endpoints:
        cluster = tuple(e for e in eps if e.ready) or tuple(e for e in eps if e.serving and e.terminating)
    if not sp.uses_local_endpoints:
        return Categorized(cluster, (), cluster, bool(cluster))
    mine = [e for e in eps if e.node == node]
    local = tuple(e for e in mine if e.ready) or tuple(e for e in mine if e.serving and e.terminating)
    if not sp.uses_cluster_endpoints:
        all_reachable = local
    else:
        seen = set(cluster)
        all_reachable = cluster + tuple(e for e in local if e not in seen)
    # has_any: is there any usable endpoint anywhere (so "no local endpoint"
    # means DROP, and "none at all" means REJECT)?
    anywhere = any(e.ready for e in eps) or any(e.serving and e.terminating for e in eps)
    return Categorized(cluster, local, all_reachable, bool(cluster) or bool(local) or anywhere)


# --- API objects → ServicePorts -------------------------------------------

def _in_any(ip: str, cidrs: Iterable[str]) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return True  # not an address: treat as unusable
    return any(a in ipaddress.ip_network(c, strict=False) for c in cidrs)


def slice_endpoints(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Endpoint]]:
    """EndpointSlices of one Service → endpoints per (port name, protocol).

    Duplicates across slices (an address moving between slices) collapse,
    preferring the ready copy, as upstream's endpoint slice cache does.
    """
    out: dict[tuple[str, str], dict[tuple[str, int], Endpoint]] = {}
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        for p in sl.get("ports") or []:
            if p.get("port") is None:
                continue
            key = (p.get("name") or "", p.get("protocol") or "TCP")
            bucket = out.setdefault(key, {})
            for ep in sl.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                ready = cond.get("ready") is not False  # nil means ready
                serving = cond.get("serving", ready) is not False
                terminating = bool(cond.get("terminating"))
                for addr in ep.get("addresses") or []:
                    e = Endpoint(addr, int(p["port"]), ep.get("nodeName") or "", ready, serving, terminating)
                    old = bucket.get((addr, e.port))
                    if old is None or (e.ready and not old.ready):
                        bucket[(addr, e.port)] = e
    return {k: sorted(v.values(), key=lambda e: (ipaddress.ip_address(e.ip), e.port)) for k, v in out.items()}


def service_ports(svc: Obj, slices: Iterable[Obj], *, excluded_cidrs: Iterable[str] = ()) -> list[ServicePort]:
    """One Service (+ its EndpointSlices) → its ServicePorts.

    Headless Services, ExternalName Services and ports whose protocol is
    unknown yield nothing, as upstream skips them.  External IPs inside
    `excluded_cidrs` (the pod and service networks) are dropped: kube-proxy
    would otherwise hijack in-cluster traffic; the caller reports them.
    """
    spec = svc.get("spec") or {}
    meta = svc["metadata"]
    stype = spec.get("type", "ClusterIP")
    cluster_ip = spec.get("clusterIP") or ""
    if stype == "ExternalName" or not cluster_ip or cluster_ip == "None":
        return []
    external_ips = tuple(ip for ip in spec.get("externalIPs") or [] if not _in_any(ip, excluded_cidrs))
    lb_ips: tuple[str, ...] = ()
    if stype == "LoadBalancer":
        lb_ips = tuple(i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                       if i.get("ip"))
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    by_port = slice_endpoints(slices)
    out = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if proto not in SUPPORTED_PROTOCOLS:
            continue
        name = ServicePortName(meta.get("namespace", "default"), meta["name"], p.get("name") or "", proto)
        out.append(ServicePort(
            name=name,
            cluster_ip=cluster_ip,
            port=int(p["port"]),
            node_port=int(p.get("nodePort") or 0) if stype in ("NodePort", "LoadBalancer") else 0,
            external_ips=external_ips,
            load_balancer_ips=lb_ips,
            lb_source_ranges=tuple(spec.get("loadBalancerSourceRanges") or ()) if lb_ips else (),
            affinity_timeout=affinity,
            external_local=spec.get("externalTrafficPolicy") == "Local",
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
            endpoints=tuple(by_port.get((name.port, proto), ())),
        ))
    return out


def build_state(services: Iterable[Obj], slices: Iterable[Obj], node: NodeFacts, *,
                excluded_cidrs: Iterable[str] = ()) -> dict[ServicePortName, ServicePort]:
    """All Services and EndpointSlices → ServicePorts by name (a full snapshot)."""
    by_svc: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        owner = ((sl.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            by_svc.setdefault((sl["metadata"].get("namespace", "default"), owner), []).append(sl)
    excluded = tuple(excluded_cidrs)
    out: dict[ServicePortName, ServicePort] = {}
    for svc in services:
        key = (svc["metadata"].get("namespace", "default"), svc["metadata"]["name"])
        for sp in service_ports(svc, by_svc.get(key, ()), excluded_cidrs=excluded):
            out[sp.name] = sp
    return out


# --- names -------------------------------------------------------------------

def hash_b32(text: str) -> str:
    """base32(sha256(text)) as upstream names chains (callers cut it)."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()
