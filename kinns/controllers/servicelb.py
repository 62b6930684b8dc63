"""LoadBalancer Services on the fabric: what a cloud plus MetalLB's L2 mode do.

kinns has no cloud; its fabric network (the /24 the nodes and the host sit
on) plays the cloud's part.  This controller is the cloud's service
controller and MetalLB's controller in one:

* every Service of type LoadBalancer (without a `loadBalancerClass`, which
  would name another implementation) gets an IPv4 address from the pool,
  written to `status.loadBalancer.ingress` as `{ip, ipMode: VIP}` through
  the status subresource, so `kubectl get svc` shows it as EXTERNAL-IP (and
  `<pending>` until then);
* `spec.loadBalancerIP` is honoured when it is in the pool and free; else
  the Service stays pending with a Warning Event `AllocationFailed`, as
  MetalLB does (it never falls back to another address);
* an exhausted pool leaves the Service pending with a Warning Event that
  names the pool, shown by `kubectl describe svc`; the Service gets an
  address as soon as another releases one;
* the address is released when the Service is deleted or stops being a
  LoadBalancer;
* one node announces each address (MetalLB L2: one node answers ARP per
  IP).  With `externalTrafficPolicy: Local` only nodes with a ready local
  endpoint qualify; otherwise any Ready node.  The choice is MetalLB's: the
  node whose sha256(node + "#" + ip) is lowest, so it is stable and moves
  only the addresses a joining node wins.  It is recorded in the annotation
  `kinns.io/loadbalancer-node`, which each node's kube-proxy reads
  (`kinns.proxy.lbannounce`) to put the address on its `lo`;
* a Service whose `spec.externalIPs` fall inside the pod or service network
  gets a Warning Event: kube-proxy ignores those addresses.

The allocation lives in memory and is rebuilt from the Services' status the
first time the controller reconciles (after its informers synced), so a
restarted controller keeps every Service's address.  The pool and the node
choice are pure functions, unit-tested apart from the controller.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..api.errors import ApiError
from ..client.client import Client, Obj, object_key
from ..client.informer import InformerFactory
from .base import Controller

if TYPE_CHECKING:
    from ..cluster.config import ClusterConfig

log = logging.getLogger(__name__)

NODE_ANNOTATION = "kinns.io/loadbalancer-node"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
COMPONENT = "service-lb-controller"
_SLICE_INDEX = "servicelb-service"


# ---- the pool ---------------------------------------------------------------

@dataclass(frozen=True)
class Pool:
    """An inclusive range of IPv4 addresses, printed as `first-last`
    (empty when `last` < `first`)."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __len__(self) -> int:
        return max(0, int(self.last) - int(self.first) + 1)

    def __contains__(self, ip: object) -> bool:
        try:
            addr = ipaddress.IPv4Address(str(ip))
        except ValueError:
            return False
        return self.first <= addr <= self.last

    def __iter__(self) -> Iterator[str]:
        for n in range(int(self.first), int(self.last) + 1):
            yield str(ipaddress.IPv4Address(n))


def parse_pool(text: str) -> Pool:
    """`first-last`, a single address or a CIDR (its usable hosts) → Pool.

    Raises ValueError with a message fit for an Event."""
    text = text.strip()
    try:
        if "-" in text:
            a, b = (ipaddress.IPv4Address(p.strip()) for p in text.split("-", 1))
        elif "/" in text:
            net = ipaddress.IPv4Network(text, strict=False)
            hosts = list(net.hosts()) or list(net)
            a, b = hosts[0], hosts[-1]
        else:
            a = b = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ValueError(f'invalid LoadBalancer pool "{text}": {exc}; use "first-last" IPv4 addresses') from None
    if a > b:
        raise ValueError(f'invalid LoadBalancer pool "{text}": {a} comes after {b}')
    return Pool(a, b)


def default_pool(fabric_subnet: str, nodes: int = 0) -> Pool:
    """The top of the fabric subnet: .200-.254 of a /24.

    Proportionally for other sizes: from offset size*200/256 up to the last
    address before the broadcast (a /16 gives x.y.200.0-x.y.255.254, a /25
    .100-.126, a /28 .12-.14, a /29 .6-.6).  Offsets .0 (network), .1 (the
    host end) and .2 upward (one per node, in order) are never in it: the
    start moves up past the nodes when they reach that far, so a pool can
    be empty (a /30, or a /24 with 250 nodes), and then every LoadBalancer
    Service stays pending with an Event saying so.
    """
    net = ipaddress.IPv4Network(fabric_subnet, strict=False)
    size = net.num_addresses
    start = max(size * 200 // 256, 2 + max(nodes, 0))
    end = size - 2
    first = net.network_address + start
    last = net.network_address + end if end >= start else first - 1
    return Pool(first, last)


def pool_from_config(cfg: ClusterConfig) -> Pool | None:
    """The cluster's pool: `cfg.lb_pool` if set, else the default of its
    fabric; None while the fabric subnet is not chosen yet (the daemon
    starts the controllers before it creates the fabric)."""
    if cfg.lb_pool:
        return parse_pool(cfg.lb_pool)
    if cfg.fabric_subnet:
        return default_pool(cfg.fabric_subnet, cfg.nodes)
    return None


# ---- pure facts about Services and nodes -------------------------------------

def wants_lb(svc: Obj | None) -> bool:
    """A LoadBalancer Service that is ours to serve (no other class named)."""
    spec = (svc or {}).get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(svc: Obj) -> list[str]:
    ingress = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
    return [i["ip"] for i in ingress if i.get("ip")]


def eligible_nodes(nodes: Iterable[Obj]) -> list[str]:
    """Ready nodes not labelled out of external load balancers, by name."""
    out = []
    for n in nodes:
        if EXCLUDE_LABEL in (n["metadata"].get("labels") or {}):
            continue
        conds = (n.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            out.append(n["metadata"]["name"])
    return sorted(out)


def nodes_with_ready_endpoints(slices: Iterable[Obj]) -> set[str]:
    """Nodes that host a ready endpoint in these EndpointSlices (nil ready = ready)."""
    out = set()
    for sl in slices:
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False and ep.get("nodeName"):
                out.add(ep["nodeName"])
    return out


def choose_node(ip: str, candidates: Iterable[str]) -> str | None:
    """MetalLB's L2 election: the candidate with the lowest sha256(node#ip)."""
    return min(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest(), default=None)


def announcing_node(svc: Obj, ip: str, nodes: Iterable[Obj], slices: Iterable[Obj]) -> str | None:
    """Which node should answer ARP for `ip`, or None (nobody may: a Local
    Service without a ready endpoint on any Ready node)."""
    candidates = eligible_nodes(nodes)
    if ((svc.get("spec") or {}).get("externalTrafficPolicy")) == "Local":
        local = nodes_with_ready_endpoints(slices)
        candidates = [n for n in candidates if n in local]
    return choose_node(ip, candidates)


def cluster_network_external_ips(svc: Obj, cidrs: dict[str, str]) -> list[tuple[str, str, str]]:
    """(ip, network name, cidr) for each external IP inside a named cluster network."""
    nets = [(what, ipaddress.ip_network(c, strict=False)) for what, c in cidrs.items() if c]
    out = []
    for ip in ((svc.get("spec") or {}).get("externalIPs")) or []:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        for what, net in nets:
            if addr.version == net.version and addr in net:
                out.append((ip, what, str(net)))
                break
    return out


# ---- the allocation ------------------------------------------------------------

class Allocator:
    """Which Service holds which address; no I/O, no pool knowledge."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self._ip: dict[str, str] = {}

    def ip_of(self, key: str) -> str | None:
        return self._ip.get(key)

    def owner(self, ip: str) -> str | None:
        return self._owner.get(ip)

    def claim(self, key: str, ip: str) -> bool:
        """Give `ip` to `key` (dropping what it held); False if another key has it."""
        if self._owner.get(ip, key) != key:
            return False
        self.release(key)
        self._owner[ip] = key
        self._ip[key] = ip
        return True

    def release(self, key: str) -> str | None:
        ip = self._ip.pop(key, None)
        if ip is not None:
            self._owner.pop(ip, None)
        return ip

    def next_free(self, pool: Pool, reserved: set[str]) -> str | None:
        """The lowest address of `pool` nobody holds."""
        return next((ip for ip in pool if ip not in self._owner and ip not in reserved), None)

    def __len__(self) -> int:
        return len(self._ip)


# ---- the controller --------------------------------------------------------------

class ServiceLBController(Controller):
    """Gives LoadBalancer Services an address from the pool and a node to announce it."""

    name = "service-lb-controller"
    workers = 2     # safe: allocation never awaits between looking and claiming

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 pool: Callable[[], Pool | None] | Pool | None,
                 cluster_cidr: str = "", service_cidr: str = "") -> None:
        super().__init__(client, factory)
        self._pool_source = pool
        self.cidrs = {"pod network": cluster_cidr, "service network": service_cidr}
        self.alloc = Allocator()
        self._rebuilt = False
        self._pending: set[str] = set()                 # keys waiting for a free address
        self._said: dict[str, dict[str, str]] = {}      # key -> reason -> message (Event de-dup)
        self._eligible: list[str] | None = None

    @classmethod
    def from_config(cls, client: Client, factory: InformerFactory | None, cfg: ClusterConfig) -> ServiceLBController:
        """As the controller manager starts it: the pool is read from `cfg` when
        needed, because the fabric subnet is chosen after controllers start."""
        return cls(client, factory, pool=lambda: pool_from_config(cfg),
                   cluster_cidr=cfg.cluster_cidr, service_cidr=cfg.service_cidr)

    # -------------------------------------------------------------- informers

    def setup(self) -> None:
        self.services = self.factory.informer("v1", "Service")
        self.nodes = self.factory.informer("v1", "Node")
        self.slices = self.factory.informer("discovery.k8s.io/v1", "EndpointSlice")
        self.slices.add_indexer(_SLICE_INDEX, lambda s: [
            f"{s['metadata'].get('namespace')}/{(s['metadata'].get('labels') or {}).get(SERVICE_NAME_LABEL, '')}"])
        self.services.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                                   on_delete=self.enqueue_obj)
        self.slices.add_handlers(on_add=self._slice_event, on_update=lambda o, n: self._slice_event(n),
                                 on_delete=self._slice_event)
        self.nodes.add_handlers(on_add=self._node_event, on_update=lambda o, n: self._node_event(n),
                                on_delete=self._node_event)

    def _slice_event(self, sl: Obj) -> None:
        """A slice only matters to Local LoadBalancers (which nodes have endpoints)."""
        name = (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
        key = f"{sl['metadata'].get('namespace')}/{name}"
        svc = self.services.get(key) if name else None
        if svc is not None and wants_lb(svc) and (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local":
            self.enqueue(key)

    def _node_event(self, _node: Obj) -> None:
        """Re-elect announcers when the set of eligible nodes changed (not on heartbeats)."""
        eligible = eligible_nodes(self.nodes.list())
        if eligible == self._eligible:
            return
        self._eligible = eligible
        for svc in self.services.list():
            if wants_lb(svc):
                self.enqueue_obj(svc)

    # -------------------------------------------------------------- helpers

    def _pool(self) -> Pool | None:
        src = self._pool_source
        return src() if callable(src) else src

    def _rebuild(self) -> None:
        """Take back the addresses Services already show, oldest Service first
        (a duplicate stays with the older; the younger's reconcile re-allocates)."""
        for svc in sorted(self.services.list(), key=lambda s: (s["metadata"].get("creationTimestamp", ""),
                                                                object_key(s))):
            if wants_lb(svc):
                for ip in ingress_ips(svc)[:1]:
                    self.alloc.claim(object_key(svc), ip)
        self._rebuilt = True
        log.info("%s: took back %d LoadBalancer addresses from Service status", self.name, len(self.alloc))

    def _release(self, key: str) -> None:
        """Free `key`'s address and wake the Services waiting for one."""
        if self.alloc.release(key) is not None:
            for waiting in sorted(self._pending - {key}):
                self.enqueue(waiting)

    def _say(self, svc: Obj, reason: str, message: str, type: str = "Normal") -> None:
        """Emit an Event once per (Service, reason, message) while it stays true:
        reconciles repeat on every Service update, and an Event per repeat
        would only bump a count users cannot read anything from."""
        said = self._said.setdefault(object_key(svc), {})
        if said.get(reason) == message:
            return
        said[reason] = message
        self.client.emit_event(svc, reason, message, type=type, component=COMPONENT)

    def _unsay(self, key: str, reason: str) -> None:
        self._said.get(key, {}).pop(reason, None)

    def _reserved(self) -> set[str]:
        """Addresses nodes hold on the fabric: never handed out, whatever the pool says."""
        return {a.get("address", "") for n in self.nodes.list()
                for a in (n.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"}

    # -------------------------------------------------------------- reconcile

    async def reconcile(self, key: str) -> float | None:
        if not self._rebuilt:
            self._rebuild()
        svc = self.services.get(key)
        if svc is None:
            self._release(key)
            self._pending.discard(key)
            self._said.pop(key, None)
            return None
        self._check_external_ips(svc)
        if not wants_lb(svc):
            self._release(key)
            self._pending.discard(key)
            self._unsay(key, "AllocationFailed")
            if (svc.get("spec") or {}).get("type") != "LoadBalancer":
                await self._write(svc, None, None)      # type changed: take back what we wrote
            return None                                 # another loadBalancerClass: not ours to touch
        try:
            pool = self._pool()
        except ValueError as exc:
            self._say(svc, "AllocationFailed", f'Failed to allocate IP for "{key}": {exc}', "Warning")
            return None
        if pool is None:
            return 1.0          # the fabric subnet is not chosen yet
        ip, problem = self._allocate(key, svc, pool)
        if problem:
            self._pending.add(key)
            self._say(svc, "AllocationFailed", f'Failed to allocate IP for "{key}": {problem}', "Warning")
        else:
            self._pending.discard(key)
            self._unsay(key, "AllocationFailed")
        node = announcing_node(svc, ip, self.nodes.list(), self.slices.by_index(_SLICE_INDEX, key)) if ip else None
        await self._write(svc, ip, node)
        return None

    def _allocate(self, key: str, svc: Obj, pool: Pool) -> tuple[str | None, str]:
        """The address `svc` should have, claimed; or (None, why not)."""
        requested = ((svc.get("spec") or {}).get("loadBalancerIP")) or ""
        reserved = self._reserved()
        if requested:
            owner = self.alloc.owner(requested)
            if requested not in pool:
                problem = f'requested loadBalancerIP "{requested}" is not in the pool {pool}'
            elif requested in reserved:
                problem = f'requested loadBalancerIP "{requested}" is a node address'
            elif owner not in (None, key):
                problem = f'requested loadBalancerIP "{requested}" is already in use by Service "{owner}"'
            else:
                self.alloc.claim(key, requested)
                return requested, ""
            self._release(key)
            return None, problem
        have = self.alloc.ip_of(key)
        if have is not None and have in pool and have not in reserved:
            return have, ""
        self._release(key)
        ip = self.alloc.next_free(pool, reserved)
        if ip is None:
            n = len(pool)
            return None, f"no available IPs: the pool {pool} ({n} address{'es' if n != 1 else ''}) is exhausted"
        self.alloc.claim(key, ip)
        return ip, ""

    async def _write(self, svc: Obj, ip: str | None, node: str | None) -> None:
        """Make the status say `ip` and the annotation `node`; an Event for each change."""
        meta = svc["metadata"]
        ref = ("v1", "Service")
        want = [{"ip": ip, "ipMode": "VIP"}] if ip else []
        have = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
        try:
            if have != want:
                await self.client.patch(ref, meta["name"], {"status": {"loadBalancer": {"ingress": want or None}}},
                                        meta["namespace"], subresource="status")
                if ip:
                    self._say(svc, "IPAllocated", f'Assigned IP ["{ip}"]')
            if (meta.get("annotations") or {}).get(NODE_ANNOTATION) != node:
                await self.client.patch(ref, meta["name"], {"metadata": {"annotations": {NODE_ANNOTATION: node}}},
                                        meta["namespace"])
                if node:
                    self._say(svc, "nodeAssigned", f'announcing from node "{node}" with protocol "layer2"')
        except ApiError as exc:
            if exc.code != 404:     # deleted meanwhile: its delete event releases the address
                raise

    def _check_external_ips(self, svc: Obj) -> None:
        """Warn about external IPs kube-proxy will drop (see proxy.model.service_ports)."""
        bad = cluster_network_external_ips(svc, self.cidrs)
        if not bad:
            self._unsay(object_key(svc), "ExternalIPInClusterNetwork")
            return
        text = "; ".join(f"{ip} is inside the {what} {cidr}" for ip, what, cidr in bad)
        self._say(svc, "ExternalIPInClusterNetwork",
                  f"spec.externalIPs: {text}. kube-proxy ignores external IPs in the cluster's pod and service "
                  "networks (they would capture in-cluster traffic); use addresses outside both, e.g. on the "
                  "node network, or a Service of type LoadBalancer", "Warning")
