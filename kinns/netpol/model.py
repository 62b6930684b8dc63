"""What the NetworkPolicy agent knows: pods, namespaces and policies as plain values.

The agent's job splits in three, as kube-proxy's does (kinns/proxy):

1. *This module*: API objects become small values (`Pod`, `Policy`,
   `Rule`, `Peer`, `PortMatch`) and `Cluster` answers the questions the
   NetworkPolicy spec asks: which pods a policy selects, whether a pod is
   isolated in a direction, whether a peer matches an address, what a
   named port means on a given pod.  `allowed` is the spec itself, written
   as directly as the docs say it (concepts/services-networking/
   network-policies): the oracle the renderer's tests compare against.
2. `rules.py` turns a `Cluster` into one node's nftables ruleset (pure).
3. `agent.py` keeps the kernel in line with it (`nft -f`, conntrack).

Semantics, as upstream (and as kube-network-policies implements them):

* A pod is isolated for ingress (egress) when some policy in its namespace
  selects it and lists `Ingress` (`Egress`) in `policyTypes`, which
  defaults to `Ingress`, plus `Egress` when the policy has egress rules.
  What is allowed is the union of the rules of every such policy; a
  connection needs the source's egress and the destination's ingress.
* Peers: `podSelector` alone = pods of the policy's namespace;
  `namespaceSelector` alone = every pod of the selected namespaces; both in
  one peer = pods matching both (AND); separate peers are alternatives
  (OR).  `ipBlock` = addresses in `cidr` and in none of `except`.  No
  peers at all (`from`/`to` missing or empty) = everything.
* Ports: no ports = every protocol and port; a port entry = its protocol
  (TCP by default) and a number, a range (`endPort`), a name, or nothing
  (every port of the protocol).  A name is resolved on the *destination*
  pod's containers (`ports[].name` with the same protocol), so it can mean
  different numbers on different pods and nothing for non-pod addresses.
* hostNetwork pods share their node's address: they are never selected,
  never isolated and never a pod peer (their traffic is the node's, which
  `ipBlock` can name).  Pods without an IPv4 address, and finished pods,
  are left out.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

from ..api.errors import ApiError
from ..api.selectors import DOUBLE_EQUALS, EQUALS, IN, LabelSelector

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Net = ipaddress.IPv4Network
PROTOCOLS = ("TCP", "UDP", "SCTP")
INGRESS, EGRESS = "Ingress", "Egress"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class NamedPort(NamedTuple):
    """A containerPort with a name, as a named policy port resolves it."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: where it is, what it is called, how it is labelled."""

    namespace: str
    name: str
    ip: str
    node: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[NamedPort, ...] = ()
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        """The number `name` means on this pod for `protocol`, or None."""
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


@dataclass(frozen=True)
class IPBlock:
    """`ipBlock`: `cidr` minus every `except`."""

    cidr: Net
    excepts: tuple[Net, ...] = ()

    def contains(self, ip: str) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return addr in self.cidr and not any(addr in e for e in self.excepts)

    def networks(self) -> list[Net]:
        """The block as disjoint networks (cidr with the excepts cut out)."""
        return list(_cut(self.cidr, self.excepts))

    def __str__(self) -> str:
        return str(self.cidr) + "".join(f" except {e}" for e in self.excepts)


@functools.lru_cache(maxsize=4096)
def _cut(cidr: Net, excepts: tuple[Net, ...]) -> tuple[Net, ...]:
    """`cidr` without `excepts`, as sorted disjoint networks (cached: address_exclude is slow
    and the same blocks come back every sync)."""
    parts = [cidr]
    for exc in excepts:
        nxt: list[Net] = []
        for p in parts:
            if exc.subnet_of(p):
                nxt.extend(p.address_exclude(exc))
            elif not p.subnet_of(exc):
                nxt.append(p)
        parts = nxt
    return tuple(sorted(parts))


@dataclass(frozen=True)
class Peer:
    """One `from`/`to` entry.  Selectors are None when absent (not the same as `{}`)."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PortMatch:
    """One `ports` entry: `port` is a number, a name, or None (every port of the protocol)."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return self.protocol
        rng = f"{self.port}-{self.end_port}" if self.end_port is not None else str(self.port)
        return f"{self.protocol}/{rng}"


@dataclass(frozen=True)
class Rule:
    """One ingress/egress rule: `peers` empty = every address; `ports` empty = every port."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PortMatch, ...] = ()

    @functools.cached_property
    def block_nets(self) -> tuple[Net, ...] | None:
        """For a rule whose peers are all ipBlocks: their addresses as disjoint networks,
        computed once per parsed policy (they do not depend on pods); else None."""
        if not self.peers or any(p.ip_block is None for p in self.peers):
            return None
        return tuple(ipaddress.collapse_addresses(n for p in self.peers if p.ip_block for n in p.ip_block.networks()))


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    types: frozenset[str] = frozenset({INGRESS})
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress


# ----------------------------------------------------------- from API objects

def _selector(spec: Any, what: str) -> LabelSelector:
    """A LabelSelector; one the API server should have refused selects nothing (and is logged)."""
    try:
        return LabelSelector.from_spec(spec if isinstance(spec, dict) else {})
    except ApiError as e:
        log.warning("ignoring invalid %s: %s", what, e)
        return LabelSelector(nothing=True)


def _network(text: Any) -> Net | None:
    try:
        net = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def _peer(obj: Obj, where: str) -> Peer | None:
    """A peer; None when it can match nothing here (an IPv6 or broken ipBlock)."""
    block = obj.get("ipBlock")
    if isinstance(block, dict):
        cidr = _network(block.get("cidr"))
        if cidr is None:
            return None
        excepts = tuple(n for n in (_network(e) for e in block.get("except") or []) if n is not None)
        return Peer(ip_block=IPBlock(cidr, excepts))
    pods = obj.get("podSelector")
    nss = obj.get("namespaceSelector")
    return Peer(pod_selector=_selector(pods, f"{where} podSelector") if pods is not None else None,
                namespace_selector=_selector(nss, f"{where} namespaceSelector") if nss is not None else None)


def _port(obj: Obj) -> PortMatch:
    port = obj.get("port")
    end = obj.get("endPort")
    return PortMatch(str(obj.get("protocol") or "TCP"),
                     port if isinstance(port, (int, str)) and not isinstance(port, bool) else None,
                     end if isinstance(end, int) and isinstance(port, int) else None)


def _rules(items: Any, peers_key: str, where: str) -> tuple[Rule, ...]:
    out: list[Rule] = []
    for rule in items if isinstance(items, list) else []:
        if not isinstance(rule, dict):
            continue
        raw_peers = [p for p in rule.get(peers_key) or [] if isinstance(p, dict)]
        peers = tuple(p for p in (_peer(x, where) for x in raw_peers) if p is not None)
        if raw_peers and not peers:
            # Every peer was one this IPv4 cluster cannot match: the rule allows nothing.
            peers = (Peer(pod_selector=LabelSelector(nothing=True)),)
        ports = tuple(_port(p) for p in rule.get("ports") or [] if isinstance(p, dict))
        out.append(Rule(peers, ports))
    return tuple(out)


def policy_types(spec: Obj) -> frozenset[str]:
    """`policyTypes`, or upstream's default for a policy stored without it."""
    types = [t for t in spec.get("policyTypes") or [] if t in (INGRESS, EGRESS)]
    if not spec.get("policyTypes"):
        types = [INGRESS] + ([EGRESS] if spec.get("egress") else [])
    return frozenset(types)


def policy_from_api(obj: Obj) -> Policy:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return Policy(meta.get("namespace", "default"), meta.get("name", ""),
                  _selector(spec.get("podSelector"), f"{where} podSelector"), policy_types(spec),
                  _rules(spec.get("ingress"), "from", where), _rules(spec.get("egress"), "to", where))


def pod_from_api(obj: Obj) -> Pod | None:
    """The pod, or None when it has no IPv4 address or has finished (it holds no address then)."""
    status = obj.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)] or [status.get("podIP")]
    ip = next((i for i in ips if i and ":" not in i), None)
    if not ip:
        return None
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ports = tuple(NamedPort(p["name"], str(p.get("protocol") or "TCP"), int(p["containerPort"]))
                  for c in spec.get("containers") or [] for p in c.get("ports") or []
                  if p.get("name") and p.get("containerPort"))
    return Pod(meta.get("namespace", "default"), meta.get("name", ""), ip, spec.get("nodeName") or "",
               dict(meta.get("labels") or {}), ports, bool(spec.get("hostNetwork")))


def slim_pod(obj: Obj) -> Obj:
    """What the agent's pod cache keeps of a pod: the fields `pod_from_api` reads
    (and the key and resourceVersion the informer needs).  Every agent holds
    every pod of the cluster; whole pods cost 50 agents 2.4 GB at 2,000 pods."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ports = [{"ports": [p for p in c.get("ports") or [] if p.get("name")]}
             for c in spec.get("containers") or [] if any(p.get("name") for p in c.get("ports") or [])]
    return {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Pod"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "labels")
                         if k in meta},
            "spec": {"nodeName": spec.get("nodeName"), "hostNetwork": spec.get("hostNetwork", False),
                     "containers": ports},
            "status": {k: status[k] for k in ("phase", "podIP", "podIPs") if k in status}}


def namespace_labels(obj: Obj) -> dict[str, str]:
    """A namespace's labels, with the name label every namespace carries (set by the API server)."""
    meta = obj.get("metadata") or {}
    return {NAMESPACE_NAME_LABEL: meta.get("name", ""), **(meta.get("labels") or {})}


# ---------------------------------------------------------------- the cluster

class Cluster:
    """Pods, namespaces and policies, with the spec's questions answered over them."""

    def __init__(self, pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
                 policies: Iterable[Policy]) -> None:
        self.pods = tuple(p for p in pods if not p.host_network)
        self.namespaces = {ns: dict(labels) for ns, labels in namespaces.items()}
        self.policies = tuple(sorted(policies, key=lambda p: (p.namespace, p.name)))
        self.by_ip = {p.ip: p for p in self.pods}
        self._by_ns: dict[str, list[Policy]] = {}
        for pol in self.policies:
            self._by_ns.setdefault(pol.namespace, []).append(pol)
        # Indexes for selector peers: a selector with an `=`/`in` requirement only needs
        # the pods carrying one of those values, in the namespaces it can match.
        self._pods_in: dict[str, list[Pod]] = {}
        self._pods_with: dict[tuple[str, str, str], list[Pod]] = {}
        for pod in self.pods:
            self._pods_in.setdefault(pod.namespace, []).append(pod)
            for kv in pod.labels.items():
                self._pods_with.setdefault((pod.namespace, *kv), []).append(pod)

    def ns_labels(self, ns: str) -> dict[str, str]:
        return self.namespaces.get(ns) or {NAMESPACE_NAME_LABEL: ns}

    def selecting(self, pod: Pod, direction: str) -> list[Policy]:
        """Policies that select `pod` and isolate it in `direction` (sorted by name)."""
        return [pol for pol in self._by_ns.get(pod.namespace, ())
                if direction in pol.types and pol.pod_selector.matches(pod.labels)]

    def selected_pods(self, pol: Policy) -> list[Pod]:
        return [p for p in self.pods if p.namespace == pol.namespace and pol.pod_selector.matches(p.labels)]

    def peer_pods(self, pol: Policy, peer: Peer) -> list[Pod]:
        """The pods a selector peer names (none for an ipBlock peer), in cluster order."""
        if peer.ip_block is not None:
            return []
        if peer.namespace_selector is None:
            namespaces = [pol.namespace]
        else:
            namespaces = [ns for ns in self._pods_in if peer.namespace_selector.matches(self.ns_labels(ns))]
        out: list[Pod] = []
        for ns in namespaces:
            out += [p for p in self._candidates(ns, peer.pod_selector)
                    if peer.pod_selector is None or peer.pod_selector.matches(p.labels)]
        return out

    def _candidates(self, ns: str, sel: LabelSelector | None) -> list[Pod]:
        """Pods of `ns` that may match `sel`: by the first `=`/`in` requirement's values, else all."""
        for req in sel.requirements() if sel is not None else ():
            if req.op in (EQUALS, DOUBLE_EQUALS, IN):
                found = [p for v in req.values for p in self._pods_with.get((ns, req.key, v), ())]
                return found if len(req.values) == 1 else list({id(p): p for p in found}.values())
        return self._pods_in.get(ns, [])

    def peer_matches_pod(self, pol: Policy, peer: Peer, pod: Pod) -> bool:
        if peer.ip_block is not None:
            return False
        if peer.namespace_selector is None:
            ns_ok = pod.namespace == pol.namespace
        else:
            ns_ok = peer.namespace_selector.matches(self.ns_labels(pod.namespace))
        if not ns_ok:
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)

    def peer_matches(self, pol: Policy, peer: Peer, ip: str) -> bool:
        if peer.ip_block is not None:
            return peer.ip_block.contains(ip)
        pod = self.by_ip.get(ip)
        return pod is not None and self.peer_matches_pod(pol, peer, pod)

    def port_matches(self, pm: PortMatch, protocol: str, port: int, dst_ip: str) -> bool:
        if pm.protocol != protocol:
            return False
        if pm.port is None:
            return True
        if isinstance(pm.port, int):
            return pm.port <= port <= (pm.end_port if pm.end_port is not None else pm.port)
        dst = self.by_ip.get(dst_ip)
        return dst is not None and dst.named_port(pm.port, protocol) == port

    def rule_allows(self, pol: Policy, rule: Rule, peer_ip: str, protocol: str, port: int, dst_ip: str) -> bool:
        if rule.peers and not any(self.peer_matches(pol, peer, peer_ip) for peer in rule.peers):
            return False
        return not rule.ports or any(self.port_matches(pm, protocol, port, dst_ip) for pm in rule.ports)

    def direction_allows(self, pod_ip: str, direction: str, peer_ip: str, protocol: str, port: int,
                         dst_ip: str) -> bool:
        """Does the pod at `pod_ip` let this connection pass in `direction`?  Non-pods and
        pods no policy isolates in that direction let everything pass."""
        pod = self.by_ip.get(pod_ip)
        if pod is None:
            return True
        pols = self.selecting(pod, direction)
        if not pols:
            return True
        return any(self.rule_allows(pol, rule, peer_ip, protocol, port, dst_ip)
                   for pol in pols for rule in pol.rules(direction))

    def allowed(self, src_ip: str, dst_ip: str, protocol: str, port: int) -> bool:
        """The spec's answer for a new connection `src_ip` → `dst_ip`:`port`/`protocol`
        (after Service DNAT): the source's egress and the destination's ingress must allow it.
        `protocol` is "TCP", "UDP", "SCTP" or anything else (e.g. "ICMP", port 0)."""
        if src_ip == dst_ip:
            return True      # a pod talking to itself never leaves it
        return (self.direction_allows(src_ip, EGRESS, dst_ip, protocol, port, dst_ip)
                and self.direction_allows(dst_ip, INGRESS, src_ip, protocol, port, dst_ip))


def cluster_from_api(pods: Iterable[Obj], namespaces: Iterable[Obj], policies: Iterable[Obj]) -> Cluster:
    """A Cluster from informer caches."""
    return Cluster((p for p in (pod_from_api(o) for o in pods) if p is not None),
                   {(o.get("metadata") or {}).get("name", ""): namespace_labels(o) for o in namespaces},
                   (policy_from_api(o) for o in policies))
