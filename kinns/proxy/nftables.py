"""kube-proxy's nftables mode (the default): render a ruleset, apply it with one `nft -f`.

This follows upstream's pkg/proxy/nftables/proxier.go (see its README.md):
everything lives in one private table, `ip kube-proxy`, so nothing else on
the node is touched and `nft delete table ip kube-proxy` undoes it all.

* Base chains hook into netfilter: `filter-prerouting-pre-dnat` and
  `filter-output-pre-dnat` (priority dstnat - 10 = -110: they see the
  Service IP before DNAT, for loadBalancerSourceRanges), `filter-input`,
  `filter-forward`, `filter-output` (priority filter = 0: after DNAT, to
  reject what no Service took), `nat-prerouting`/`nat-output` (dstnat =
  -100) and `nat-postrouting` (srcnat = 100).  They only jump to regular
  chains.
* Dispatch is data, not rules: `services` does one lookup,
  `ip daddr . meta l4proto . th dport vmap @service-ips`, and one for
  NodePorts on any local address (`fib daddr type local ... vmap
  @service-nodeports`).  The maps' elements point at per-ServicePort chains:
  `service-<H>-ns/svc/proto/port` (Cluster-policy endpoints), `local-…`
  (node-local endpoints), `external-…` (NodePort, externalIP and
  LoadBalancer traffic) and `firewall-…` (loadBalancerSourceRanges).  `<H>`
  is 8 characters of base32(sha256(name)), as upstream.
* Two layouts, chosen per sync like upstream iptables'
  `largeClusterEndpointsThreshold` (more than 1,000 endpoints in total
  switches to the large-cluster one; `LARGE_CLUSTER_ENDPOINTS_THRESHOLD`):

  - *endpoint chains* (the default: upstream's nftables mode as introduced
    in 1.29 and as its TestOverallNFTablesRules shows it, so what a learner
    sees on a node running those releases): every endpoint has a chain `endpoint-<H>-ns/svc/proto/port__ip/port` that marks hairpin
    traffic (`ip saddr <its ip> jump mark-for-masquerade`) and DNATs
    (`meta l4proto tcp dnat to ip:port`); the policy chain picks one with
    `numgen random mod N vmap { 0 : goto <ep0> , 1 : goto <ep1> }`.  Under
    ClientIP affinity each endpoint has a timeout set
    `affinity-<H>-ns/svc/proto/port__ip/port`: the policy chain sends a
    known client back (`ip saddr @affinity-… goto endpoint-…`) and the
    endpoint chain records every choice (`update @affinity-… { ip saddr }`).
  - *large-cluster*: no endpoint chains and no per-Service maps.  Rule i of
    n in the policy chain matches `numgen random mod (n-i) == 0` and DNATs
    (so each endpoint gets 1/n, the last one always matches); affinity
    lookups and updates sit in those rules; hairpin traffic is found by
    `masquerading` in the set `hairpin-connections` (`ip . ip . proto .
    port` per endpoint), which only this layout has.

  Why two.  On this kernel (6.18) and nft (1.0.6), at 10,000 Services x 10
  endpoints the endpoint-chain layout is very slow: each per-Service
  anonymous vmap costs the kernel a scan of every set in the table (a full
  sync took 139 s), and every `nft` command that adds a rule or element
  first dumps all chains of the table, quadratically in their number
  (110,000 endpoint chains: 2.9 s for a one-Service change).  Measured on
  this 2-core VM (ranges: other work shares it): the large-cluster layout
  at 10,000 x 10, full sync 4.3-6.5 s, one Service changed 0.1-0.2 s; at
  2,000 x 10, 0.85-2 s and 30-70 ms; the endpoint-chain layout at its
  largest, 1,000 Services x 1 endpoint, 0.25-0.6 s and 25-50 ms.
  (Upstream's newest releases dropped endpoint chains too, for `dnat ip to
  numgen random mod N map { … }` and the same `hairpin-connections` set.)
  Switching layouts is always a table replacement, so the two never mix in
  one table.
* No endpoints: the maps `no-endpoint-services` / `no-endpoint-nodeports`
  send new connections to `reject-chain` (none anywhere) or `drop` (none
  local under a Local policy), checked from the filter hooks; `cluster-ips`
  lets `cluster-ips-check` reject traffic to ports no Service declared.
* Masquerading is a mark: `mark-for-masquerade` sets 0x4000,
  `masquerading` (postrouting) SNATs marked packets.

Division of labour: `render()` is pure.  It turns a `ProxyState` (and the
`TableState` remembering what the last successful sync wrote) into a
`Transaction` — an ordered list of (verb, object) whose `str()` is exactly
the `nft -f` input — plus the `TableState` that will be true once it is
applied.  `NftablesBackend` (the only I/O here) pipes that text into
`nft -f -` in the node's namespace and keeps the new `TableState` only when
nft succeeded; any failure makes the next sync a from-scratch one.

Full and partial syncs, as upstream's `syncProxyRules`:

* A *fresh* sync (first one, after a failure, after someone flushed the
  ruleset, and whenever the layout changes, whatever was asked) replaces
  the whole table atomically: `add table`, `delete table`, then only
  `add`s.  Affinity state is lost, nothing else is.
* A *full* sync over a table we trust rewrites the skeleton, add+flushes
  every chain it writes, flushes and refills the sets and maps, and deletes
  chains and affinity sets of ServicePorts that are gone.
* A *partial* sync (`changed` given) rewrites only the changed
  ServicePorts' chains (their endpoint chains included), adds/deletes only
  the elements whose value changed (the `TableState` remembers every
  element and who claims it), and deletes the chains and sets those
  ServicePorts no longer use: a gone endpoint's chain and affinity set, a
  gone Service's every chain.  Stale chains are all flushed before any is
  deleted, since they may jump to each other (`external-…` to `service-…`
  to `endpoint-…`).  Upstream flushes stale chains and deletes them a
  second later because kernels before 6.2 kept a deleted map element's
  chain busy for a moment; this kernel does not, so stale chains are
  deleted in the same transaction, after the elements and rules that
  pointed at them.

Other deviations from upstream: the unallocated-ClusterIP drop rule is not
written (we are not told the Service CIDRs); NodePorts are open on every
local address except 127.0.0.0/8 (upstream's `--nodeport-addresses`
unset), so there is no `nodeport-ips` set; IPv4 only.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, ip_network
from typing import Iterable, Iterator, Mapping, NamedTuple

from .backend import ApplyError, SyncResult, run
from .model import (MASQ_MARK, Categorized, Endpoint, NodeFacts, ProxyState, ServicePort,
                    ServicePortName, categorize, hash_b32)

FAMILY = "ip"
TABLE = "kube-proxy"
_T = f"{FAMILY} {TABLE}"            # what every object names after its kind
_MARK = hex(MASQ_MARK)              # 0x4000

# The two layouts (see the module docstring) and when the second one starts:
# upstream iptables' largeClusterEndpointsThreshold, over all endpoints.
ENDPOINT_CHAINS = "endpoint-chains"
LARGE_CLUSTER = "large-cluster"
LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000

# Chain and map names, as upstream.
SERVICES = "services"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
CLUSTER_IPS = "cluster-ips"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
HAIRPIN = "hairpin-connections"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

# (name, type, hook, priority): the chains netfilter calls.  Priorities are
# written as numbers: nft 1.0.6 accepts the name "dstnat" only on prerouting.
DSTNAT, FILTER, SRCNAT = -100, 0, 100
BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    ("filter-prerouting-pre-dnat", "filter", "prerouting", DSTNAT - 10),
    ("filter-output-pre-dnat", "filter", "output", DSTNAT - 10),
    ("filter-input", "filter", "input", FILTER),
    ("filter-forward", "filter", "forward", FILTER),
    ("filter-output", "filter", "output", FILTER),
    ("nat-prerouting", "nat", "prerouting", DSTNAT),
    ("nat-output", "nat", "output", DSTNAT),
    ("nat-postrouting", "nat", "postrouting", SRCNAT),
)

# (target, from base chain, match): the only rules in base chains.  reject
# is only allowed from input/forward/output, hence the endpoint checks
# there; cluster-ips-check runs after DNAT, so it only sees what no
# Service took.
JUMP_CHAINS: tuple[tuple[str, str, str], ...] = (
    (NODEPORT_ENDPOINTS_CHECK, "filter-input", "ct state new "),
    (SERVICE_ENDPOINTS_CHECK, "filter-input", "ct state new "),
    (SERVICE_ENDPOINTS_CHECK, "filter-forward", "ct state new "),
    (SERVICE_ENDPOINTS_CHECK, "filter-output", "ct state new "),
    (FIREWALL_CHECK, "filter-prerouting-pre-dnat", "ct state new "),
    (FIREWALL_CHECK, "filter-output-pre-dnat", "ct state new "),
    (SERVICES, "nat-output", ""),
    (SERVICES, "nat-prerouting", ""),
    (MASQUERADING, "nat-postrouting", ""),
    (CLUSTER_IPS_CHECK, "filter-forward", "ct state new "),
    (CLUSTER_IPS_CHECK, "filter-output", "ct state new "),
)

_IP_PROTO_PORT = "ipv4_addr . inet_proto . inet_service"
# (kind, name, type, comment): the sets and maps the per-Service elements go into.
CONTAINERS: tuple[tuple[str, str, str, str], ...] = (
    ("set", CLUSTER_IPS, "ipv4_addr", "Active ClusterIPs"),
    ("map", NO_ENDPOINT_SERVICES, f"{_IP_PROTO_PORT} : verdict",
     "vmap to drop or reject packets to services with no endpoints"),
    ("map", NO_ENDPOINT_NODEPORTS, "inet_proto . inet_service : verdict",
     "vmap to drop or reject packets to service nodeports with no endpoints"),
    ("map", FIREWALL_IPS, f"{_IP_PROTO_PORT} : verdict",
     "destinations that are subject to LoadBalancerSourceRanges"),
    ("map", SERVICE_IPS, f"{_IP_PROTO_PORT} : verdict", "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    ("map", SERVICE_NODEPORTS, "inet_proto . inet_service : verdict", "NodePort traffic"),
    ("set", HAIRPIN, f"ipv4_addr . {_IP_PROTO_PORT}", "service hairpin connections"),
)
_HAIRPIN_RULE = (MASQUERADING,
                 f"ct status dnat ip saddr . ip daddr . meta l4proto . th dport @{HAIRPIN} masquerade fully-random")

_TUPLE = "ip daddr . meta l4proto . th dport"
_NO_LOCALHOST = "ip daddr != 127.0.0.0/8"
# (chain, rule) written once per full sync, in this order.
STATIC_RULES: tuple[tuple[str, str], ...] = (
    (MARK_MASQ, f"mark set mark or {_MARK}"),
    _HAIRPIN_RULE,
    (MASQUERADING, f"mark and {_MARK} == 0 return"),
    (MASQUERADING, f"mark set mark xor {_MARK}"),
    (MASQUERADING, "masquerade fully-random"),
    (CLUSTER_IPS_CHECK, f'ip daddr @{CLUSTER_IPS} reject comment "Reject traffic to invalid ports of ClusterIPs"'),
    (REJECT_CHAIN, "reject"),
    (SERVICE_ENDPOINTS_CHECK, f"{_TUPLE} vmap @{NO_ENDPOINT_SERVICES}"),
    (NODEPORT_ENDPOINTS_CHECK, f"{_NO_LOCALHOST} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
    (FIREWALL_CHECK, f"{_TUPLE} vmap @{FIREWALL_IPS}"),
    (SERVICES, f"{_TUPLE} vmap @{SERVICE_IPS}"),
    (SERVICES, f"fib daddr type local {_NO_LOCALHOST} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
)
# What each layout's skeleton holds: only the large-cluster one finds
# hairpin traffic through `hairpin-connections`.
LAYOUT_CONTAINERS = {ENDPOINT_CHAINS: tuple(c for c in CONTAINERS if c[1] != HAIRPIN), LARGE_CLUSTER: CONTAINERS}
LAYOUT_STATIC_RULES = {ENDPOINT_CHAINS: tuple(r for r in STATIC_RULES if r != _HAIRPIN_RULE),
                       LARGE_CLUSTER: STATIC_RULES}
# Regular chains of the skeleton (the jump targets plus these), with comments.
OTHER_CHAINS: tuple[tuple[str, str], ...] = (
    (MARK_MASQ, ""),
    (REJECT_CHAIN, "helper for @no-endpoint-services / @no-endpoint-nodeports"),
)

# Upstream's limits: names are at most 256 bytes; the longest prefix
# ("affinity-") fits in 16, the rest is hash + name, cut with "...".
NAME_BASE_MAX = 256 - 16
COMMENT_MAX = 128


# --- transaction -------------------------------------------------------------

class Transaction:
    """One atomic `nft -f` batch: an ordered list of (verb, object).

    An object is the nft text after the verb, naming its kind, family and
    table, e.g. `chain ip kube-proxy services` or `rule ip kube-proxy
    services ip daddr …`, so `str()` is exactly the file nft reads.
    Building one writes nothing; `rules` counts the rules it adds.
    """

    __slots__ = ("ops", "rules")

    def __init__(self) -> None:
        self.ops: list[tuple[str, str]] = []
        self.rules = 0

    def add(self, obj: str) -> None:
        self.ops.append(("add", obj))

    def flush(self, obj: str) -> None:
        self.ops.append(("flush", obj))

    def delete(self, obj: str) -> None:
        self.ops.append(("delete", obj))

    def rule(self, chain: str, rule: str) -> None:
        """Append `rule` to `chain`."""
        self.ops.append(("add", f"rule {_T} {chain} {rule}"))
        self.rules += 1

    def rules_in(self, chain: str, rules: list[str]) -> None:
        """Append several rules to `chain`, in order."""
        prefix = f"rule {_T} {chain} "
        self.ops.extend([("add", prefix + r) for r in rules])
        self.rules += len(rules)

    def chain(self, name: str, fresh: bool) -> None:
        """Ensure `name` exists and is empty (upstream's ensureChain); in a
        fresh table it cannot hold anything, so `add` alone will do."""
        obj = f"chain {_T} {name}"
        self.ops.append(("add", obj))
        if not fresh:
            self.ops.append(("flush", obj))

    def __len__(self) -> int:
        return len(self.ops)

    def __str__(self) -> str:
        return "".join([f"{verb} {obj}\n" for verb, obj in self.ops])


# --- names (cached: computed once per ServicePort / endpoint, not per sync) --

def hash_and_truncate(name: str) -> str:
    """`<8 chars of base32(sha256(name))>-<name>`, cut to fit as upstream does."""
    out = f"{hash_b32(name)[:8]}-{name}"
    return out if len(out) <= NAME_BASE_MAX else out[:NAME_BASE_MAX - 3] + "..."


class SvcNames(NamedTuple):
    """Everything a ServicePort's rules spell, computed once."""

    cluster: str       # service-…  (Cluster-policy endpoints)
    local: str         # local-…    (node-local endpoints)
    external: str      # external-…
    firewall: str      # firewall-…
    proto: str         # "tcp"
    comment: str       # ` comment "ns/svc:port"` for no-endpoint elements


@lru_cache(maxsize=1 << 16)
def svc_names(spn: ServicePortName) -> SvcNames:
    proto = spn.protocol.lower()
    base = hash_and_truncate(f"{spn.namespace}/{spn.name}/{proto}/{spn.port}")
    return SvcNames(f"service-{base}", f"local-{base}", f"external-{base}", f"firewall-{base}", proto,
                    f' comment "{str(spn)[:COMMENT_MAX]}"')


class EpNames(NamedTuple):
    """An endpoint's names within one ServicePort (one hash for both, as upstream)."""

    chain: str         # endpoint-<H>-ns/svc/proto/port__ip/port
    affinity: str      # affinity-<H>-…, the same tail


@lru_cache(maxsize=1 << 18)
def ep_names(spn: ServicePortName, ip: str, port: int) -> EpNames:
    base = hash_and_truncate(f"{spn.namespace}/{spn.name}/{spn.protocol.lower()}/{spn.port}__{ip}/{port}")
    return EpNames(f"endpoint-{base}", f"affinity-{base}")


def affinity_set(spn: ServicePortName, ip: str, port: int) -> str:
    """`affinity-<H>-ns/svc/proto/port__ip/port`: upstream's per-endpoint set name."""
    return ep_names(spn, ip, port).affinity


def endpoint_chain(spn: ServicePortName, ip: str, port: int) -> str:
    """`endpoint-<H>-ns/svc/proto/port__ip/port`: upstream's per-endpoint chain name."""
    return ep_names(spn, ip, port).chain


# --- what the kernel holds ---------------------------------------------------

ElemKey = tuple[str, str]           # (set or map, key text)


@dataclass(frozen=True, slots=True)
class Written:
    """What one ServicePort owns in the table, to rewrite or remove it later.

    `elements` maps (container, key) to the text after the key: "" in a
    set, ` : goto <chain>` or ` comment "…" : <verdict>` in a map.
    """

    chains: tuple[str, ...]
    sets: tuple[str, ...]
    elements: Mapping[ElemKey, str]


@dataclass
class TableState:
    """The renderer's memory of the table after a successful sync.

    `claims` records, per element key, which ServicePorts want it and with
    what value: a ClusterIP in `cluster-ips` is shared by all ports of a
    Service, and two Services may (wrongly) claim one externalIP:port.  The
    kernel holds the value of the least ServicePortName, so full and
    partial syncs agree on who wins.  `layout` is the table's layout: a sync
    wanting the other one replaces the table.
    """

    services: dict[ServicePortName, Written] = field(default_factory=dict)
    claims: dict[ElemKey, dict[ServicePortName, str]] = field(default_factory=dict)
    layout: str = ENDPOINT_CHAINS


def _winner(owners: Mapping[ServicePortName, str]) -> str | None:
    if not owners:
        return None
    if len(owners) == 1:
        return next(iter(owners.values()))
    return owners[min(owners)]


def _element(container: str, key: str, value: str = "") -> str:
    return f"element {_T} {container} {{ {key}{value} }}"


ELEMENTS_PER_LINE = 1000


def _add_elements(tx: Transaction, elems: Iterable[tuple[ElemKey, str]]) -> None:
    """Add many elements, grouped per set or map, up to ELEMENTS_PER_LINE per
    command: nft parses one long command much faster than many short ones."""
    by_container: dict[str, list[str]] = {}
    for (container, key), value in elems:
        by_container.setdefault(container, []).append(f"{key}{value}")
    for container, items in by_container.items():
        for i in range(0, len(items), ELEMENTS_PER_LINE):
            tx.add(f"element {_T} {container} {{ {', '.join(items[i:i + ELEMENTS_PER_LINE])} }}")


# --- rendering ---------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What `render` produced: the batch, and the table once it is applied,
    with the layout it uses and the endpoint count that chose it."""

    tx: Transaction
    table: TableState
    full: bool
    services_written: int
    layout: str
    endpoints: int


def choose_layout(state: ProxyState, threshold: int = LARGE_CLUSTER_ENDPOINTS_THRESHOLD) -> tuple[str, int]:
    """(layout, endpoints): large-cluster when the Services have more than
    `threshold` endpoints in all, counted as upstream iptables counts them
    (every endpoint of every ServicePort, ready or not)."""
    total = sum([len(sp.endpoints) for sp in state.services.values()])
    return (LARGE_CLUSTER if total > threshold else ENDPOINT_CHAINS), total


def render(state: ProxyState, changed: Iterable[ServicePortName] | None,
           prev: TableState | None, *, threshold: int = LARGE_CLUSTER_ENDPOINTS_THRESHOLD) -> Plan:
    """The transaction that makes the table match `state`.

    `prev` is the table as the last successful sync left it (None: unknown,
    so replace the table).  `changed=None` rewrites everything; otherwise
    only the named ServicePorts (present or removed) are rewritten — unless
    the layout `threshold` picks differs from `prev`'s, which replaces the
    table.  Pure: `prev` is not modified.
    """
    layout, endpoints = choose_layout(state, threshold)
    if prev is not None and prev.layout != layout:
        prev = None
    if prev is None or changed is None:
        return _render_full(state, prev, layout, endpoints)
    return _render_partial(state, frozenset(changed), prev, endpoints)


def _render_full(state: ProxyState, prev: TableState | None, layout: str, endpoints: int) -> Plan:
    """Skeleton, every ServicePort, every element; then delete what `prev`
    had that is gone.  Without `prev` the table is replaced outright."""
    tx = Transaction()
    fresh = prev is None
    _skeleton(tx, fresh, layout)
    table = TableState(layout=layout)
    for name, sp in state.services.items():
        w = _render_service(tx, sp, state.node, fresh, layout)
        table.services[name] = w
        for ek, value in w.elements.items():
            table.claims.setdefault(ek, {})[name] = value
    _add_elements(tx, ((ek, _winner(owners) or "") for ek, owners in table.claims.items()))
    if prev is not None:
        _delete_stale(tx, prev.services.items(), table.services)
    return Plan(tx, table, True, len(state.services), layout, endpoints)


def _render_partial(state: ProxyState, changed: frozenset[ServicePortName], prev: TableState,
                    endpoints: int) -> Plan:
    """Only the `changed` ServicePorts, in `prev`'s layout: their chains, the
    elements whose value changed, and deletion of what they no longer use."""
    tx = Transaction()
    names = sorted(changed)
    layout = prev.layout
    table = TableState(dict(prev.services), dict(prev.claims), layout)
    before: dict[ElemKey, str | None] = {}     # kernel value of every touched key, before
    written = 0
    for name in names:
        old = prev.services.get(name)
        sp = state.services.get(name)
        new = _render_service(tx, sp, state.node, False, layout) if sp is not None else None
        if new is None:
            table.services.pop(name, None)
        else:
            table.services[name] = new
            written += 1
        old_elems = old.elements if old is not None else {}
        new_elems = new.elements if new is not None else {}
        for ek in old_elems:
            if ek not in new_elems:
                _claim(table, prev, before, ek, name, None)
        for ek, value in new_elems.items():
            _claim(table, prev, before, ek, name, value)
    for ek, was in before.items():
        now = _winner(table.claims.get(ek, {}))
        if now is None:
            table.claims.pop(ek, None)
        if now == was:
            continue
        if was is not None:
            tx.delete(_element(*ek))
        if now is not None:
            tx.add(_element(ek[0], ek[1], now))
    _delete_stale(tx, ((n, prev.services[n]) for n in names if n in prev.services), table.services)
    return Plan(tx, table, False, written, layout, endpoints)


def _claim(table: TableState, prev: TableState, before: dict[ElemKey, str | None], key: ElemKey,
           name: ServicePortName, value: str | None) -> None:
    """Set (or with None drop) `name`'s claim on `key`, copying on first touch
    so `prev` stays as it was."""
    if key not in before:
        owners = prev.claims.get(key, {})
        before[key] = _winner(owners)
        table.claims[key] = dict(owners)
    if value is None:
        table.claims[key].pop(name, None)
    else:
        table.claims[key][name] = value


def _delete_stale(tx: Transaction, old: Iterable[tuple[ServicePortName, Written]],
                  now: Mapping[ServicePortName, Written]) -> None:
    """Delete chains, then affinity sets, that a ServicePort had and no longer
    uses.  This comes last: the elements and rules that referred to them are
    already gone or rewritten earlier in the same transaction; the chains
    are flushed before any is deleted because they refer to each other
    (`external-…` → `service-…` → `endpoint-…` → `affinity-…`)."""
    chains: list[str] = []
    sets: list[str] = []
    for name, w in old:
        cur = now.get(name)
        keep_c = set(cur.chains) if cur else set()
        keep_s = set(cur.sets) if cur else set()
        chains.extend(c for c in w.chains if c not in keep_c)
        sets.extend(s for s in w.sets if s not in keep_s)
    for c in chains:      # first empty them all: one may still jump to another
        tx.flush(f"chain {_T} {c}")
    for c in chains:
        tx.delete(f"chain {_T} {c}")
    for s in sets:
        tx.delete(f"set {_T} {s}")


def _skeleton(tx: Transaction, fresh: bool, layout: str) -> None:
    """The table, base chains, jump rules, maps and static rules (upstream's
    setupNFTables) of `layout`.  Fresh: the table is replaced in the same
    transaction."""
    table = f'table {_T} {{ comment "rules for kube-proxy" ; }}'
    tx.add(table)
    if fresh:
        tx.delete(f"table {_T}")
        tx.add(table)
    for name, typ, hook, prio in BASE_CHAINS:
        tx.add(f"chain {_T} {name} {{ type {typ} hook {hook} priority {prio} ; }}")
        if not fresh:
            tx.flush(f"chain {_T} {name}")
    created: set[str] = set()
    for target, base, match in JUMP_CHAINS:
        if target not in created:
            created.add(target)
            tx.chain(target, fresh)
        tx.rule(base, f"{match}jump {target}")
    for name, comment in OTHER_CHAINS:
        if comment:
            tx.add(f'chain {_T} {name} {{ comment "{comment}" ; }}')
            if not fresh:
                tx.flush(f"chain {_T} {name}")
        else:
            tx.chain(name, fresh)
    for kind, name, typ, comment in LAYOUT_CONTAINERS[layout]:
        tx.add(f'{kind} {_T} {name} {{ type {typ} ; comment "{comment}" ; }}')
        if not fresh:
            tx.flush(f"{kind} {_T} {name}")
    for chain, rule in LAYOUT_STATIC_RULES[layout]:
        tx.rule(chain, rule)


def _source_ranges(sp: ServicePort, node: NodeFacts) -> list[str]:
    """loadBalancerSourceRanges as nft set members.  Invalid (or IPv6) ones
    are skipped, as upstream's parsing drops them; when a range admits the
    node itself, the LB IPs are allowed too, since a node reaching its own
    LB VIP shows up with that VIP as source."""
    nets = []
    for cidr in sp.lb_source_ranges:
        try:
            net = ip_network(cidr.strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4:
            nets.append(net)
    out = [str(n) for n in nets]
    node_ips = [IPv4Address(ip) for ip in node.node_ips if _ipv4(ip)]
    if any(ip in n for n in nets for ip in node_ips):
        out.extend(ip for ip in sp.load_balancer_ips if _ipv4(ip))
    return out


def _ipv4(ip: str) -> bool:
    """This table is `ip` (IPv4); IPv6 addresses must not reach its rules."""
    return bool(ip) and ":" not in ip


class _Decision(NamedTuple):
    """Upstream's per-ServicePort decisions: which chains exist and where
    each kind of traffic goes, from the policies and `categorize`."""

    has_any: bool                 # some usable endpoint exists somewhere (else REJECT)
    has_internal: bool            # ClusterIP traffic has endpoints (else DROP under ITP=Local)
    has_external: bool            # external traffic has endpoints (else DROP under ETP=Local)
    uses_cluster: bool            # service-… chain exists
    uses_local: bool              # local-… chain exists
    uses_external: bool           # external-… chain exists
    ext_local: bool
    internal_chain: str
    external_policy_chain: str
    lb_ips: list[str]
    ranges: list[str]             # source ranges; non-empty iff firewall-… exists


def _decide(sp: ServicePort, n: SvcNames, c: Categorized, node: NodeFacts) -> _Decision:
    has_any = c.has_any
    ext_local = sp.external_local and sp.externally_accessible
    lb_ips = [ip for ip in sp.load_balancer_ips if _ipv4(ip)]
    return _Decision(
        has_any=has_any,
        has_internal=has_any and (not sp.internal_local or bool(c.local)),
        has_external=has_any and (not ext_local or bool(c.local)),
        uses_cluster=bool(c.cluster) and sp.uses_cluster_endpoints,
        uses_local=bool(c.local) and sp.uses_local_endpoints,
        uses_external=has_any and sp.externally_accessible,
        ext_local=ext_local,
        internal_chain=n.local if sp.internal_local else n.cluster,
        external_policy_chain=n.local if ext_local else n.cluster,
        lb_ips=lb_ips,
        ranges=_source_ranges(sp, node) if lb_ips and sp.lb_source_ranges else [],
    )


def _service_elements(sp: ServicePort, n: SvcNames, c: Categorized, d: _Decision,
                      hairpin: bool) -> dict[ElemKey, str]:
    """The set and map elements of one ServicePort.

    Its IPs dispatch to its chains when it has endpoints; otherwise (or when
    a Local policy leaves one kind of traffic without endpoints) they go
    into the no-endpoint maps: `goto reject-chain` when nothing exists
    anywhere, `drop` when only local endpoints are missing.  With `hairpin`
    (the large-cluster layout) its endpoints go into `hairpin-connections`.
    """
    proto, port = n.proto, sp.port
    verdict = "drop" if d.has_any else f"goto {REJECT_CHAIN}"
    elems: dict[ElemKey, str] = {(CLUSTER_IPS, sp.cluster_ip): ""}
    key = f"{sp.cluster_ip} . {proto} . {port}"
    if d.has_internal:
        elems[(SERVICE_IPS, key)] = f" : goto {d.internal_chain}"
    else:
        elems[(NO_ENDPOINT_SERVICES, key)] = f"{n.comment} : {verdict}"
    to_external = f" : goto {n.external}"
    no_external = f"{n.comment} : {verdict}"
    for ip in (*(ip for ip in sp.external_ips if _ipv4(ip)), *d.lb_ips):
        key = f"{ip} . {proto} . {port}"
        if d.has_any:
            elems[(SERVICE_IPS, key)] = to_external
        if not d.has_external:
            elems[(NO_ENDPOINT_SERVICES, key)] = no_external
    if d.ranges:
        for ip in d.lb_ips:
            elems[(FIREWALL_IPS, f"{ip} . {proto} . {port}")] = f" : goto {n.firewall}"
    if sp.node_port:
        key = f"{proto} . {sp.node_port}"
        if d.has_any:
            elems[(SERVICE_NODEPORTS, key)] = to_external
        if not d.has_external:
            elems[(NO_ENDPOINT_NODEPORTS, key)] = no_external
    if hairpin:
        for e in c.all_reachable:
            elems[(HAIRPIN, f"{e.ip} . {e.ip} . {proto} . {e.port}")] = ""
    return elems


def _render_service(tx: Transaction, sp: ServicePort, node: NodeFacts, fresh: bool, layout: str) -> Written:
    """One ServicePort's chains, affinity sets and rules into `tx`, in
    `layout`; returns what it owns, including the elements the caller
    reconciles.  All chains come first: a rule may only name a chain that
    exists by then."""
    if not _ipv4(sp.cluster_ip):
        return Written((), (), {})
    n = svc_names(sp.name)
    c = categorize(sp, node.name)
    d = _decide(sp, n, c, node)
    chains = [ch for ch, used in ((n.cluster, d.uses_cluster), (n.local, d.uses_local),
                                  (n.external, d.uses_external), (n.firewall, bool(d.ranges))) if used]
    per_endpoint = layout == ENDPOINT_CHAINS          # a chain per endpoint
    eps = [ep_names(sp.name, e.ip, e.port) for e in c.all_reachable] if per_endpoint or sp.affinity_timeout else []
    if per_endpoint:
        chains += [names.chain for names in eps]
    for ch in chains:
        tx.chain(ch, fresh)
    sets = [names.affinity for names in eps] if sp.affinity_timeout else []
    for s in sets:
        tx.add(f"set {_T} {s} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {sp.affinity_timeout}s ; }}")
    policy_rules = _dispatch_rules if per_endpoint else _inline_endpoint_rules
    masq = _masq_rule(sp, node) if d.has_internal else None
    if d.uses_cluster:
        tx.rules_in(n.cluster, policy_rules(c.cluster, sp, masq if d.internal_chain == n.cluster else None))
    if d.uses_local:
        tx.rules_in(n.local, policy_rules(c.local, sp, masq if d.internal_chain == n.local else None))
    if d.uses_external:
        _external_rules(tx, n, node, d)
    if per_endpoint:
        _endpoint_chains(tx, sp, zip(c.all_reachable, eps))
    if d.ranges:
        tx.rule(n.firewall, f"ip saddr != {{ {', '.join(d.ranges)} }} drop")
    return Written(tuple(chains), tuple(sets), _service_elements(sp, n, c, d, not per_endpoint))


def _masq_rule(sp: ServicePort, node: NodeFacts) -> str | None:
    """Masquerade ClusterIP traffic from outside the pod network (it may have
    been routed here by anyone and must come back through this node), or all
    of it under masqueradeAll; nothing when the pod network is unknown."""
    if node.masquerade_all:
        return f"ip daddr {sp.cluster_ip} jump {MARK_MASQ}"
    if node.cluster_cidr:
        return f"ip daddr {sp.cluster_ip} ip saddr != {node.cluster_cidr} jump {MARK_MASQ}"
    return None


def _dispatch_rules(endpoints: tuple[Endpoint, ...], sp: ServicePort, masq: str | None) -> list[str]:
    """A policy chain in the endpoint-chain layout (upstream's
    writeServiceToEndpointRules): [masquerade], [affinity: a known client
    goes back to its endpoint's chain], then one random endpoint chain."""
    eps = [ep_names(sp.name, e.ip, e.port) for e in endpoints]
    rules = [masq] if masq else []
    if sp.affinity_timeout > 0:
        rules += [f"ip saddr @{names.affinity} goto {names.chain}" for names in eps]
    choices = " , ".join([f"{i} : goto {names.chain}" for i, names in enumerate(eps)])
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


def _endpoint_chains(tx: Transaction, sp: ServicePort, eps: Iterable[tuple[Endpoint, EpNames]]) -> None:
    """Each endpoint's chain: mark hairpin traffic (the endpoint calling its
    own Service) for masquerade, [record the client for affinity], DNAT."""
    proto = sp.name.protocol.lower()
    for e, names in eps:
        rules = [f"ip saddr {e.ip} jump {MARK_MASQ}"]
        if sp.affinity_timeout > 0:
            rules.append(f"update @{names.affinity} {{ ip saddr }}")
        rules.append(f"meta l4proto {proto} dnat to {e.ip}:{e.port}")
        tx.rules_in(names.chain, rules)


def _inline_endpoint_rules(endpoints: tuple[Endpoint, ...], sp: ServicePort, masq: str | None) -> list[str]:
    """A policy chain in the large-cluster layout: [masquerade], [affinity
    hits], then a random endpoint, one DNAT rule per endpoint.

    Rule i of n fires with probability 1/(n-i) among packets that reach it,
    so each endpoint gets 1/n (iptables' `statistic` scheme); NAT statements
    end the chain, so the first rule that fires decides.  Under affinity a
    returning client goes to its endpoint, and every choice refreshes it.
    """
    proto = sp.name.protocol.lower()
    dnat = [f"meta l4proto {proto} dnat to {e.ip}:{e.port}" for e in endpoints]
    rules = [masq] if masq else []
    if sp.affinity_timeout > 0:
        sets = [affinity_set(sp.name, e.ip, e.port) for e in endpoints]
        dnat = [f"update @{s} {{ ip saddr }} {d}" for s, d in zip(sets, dnat)]
        rules += [f"ip saddr @{s} {d}" for s, d in zip(sets, dnat)]
    n = len(dnat)
    rules += [f"numgen random mod {n - i} == 0 {d}" for i, d in enumerate(dnat[:-1])]
    rules.append(dnat[-1])
    return rules


def _external_rules(tx: Transaction, n: SvcNames, node: NodeFacts, d: _Decision) -> None:
    """The external-… chain (NodePort, externalIP, LB traffic).

    Cluster policy: masquerade (the endpoint may be on another node).  Local
    policy keeps the client address, except that pods and the node itself
    are sent to the cluster chain, as if they had gone out to a load
    balancer and back (an externally reachable port always has one: see
    `ServicePort.uses_cluster_endpoints`).  Without local endpoints nothing
    else matches and the filter hooks drop the packet.
    """
    chain = n.external
    if not d.ext_local:
        tx.rule(chain, f"jump {MARK_MASQ}")
    else:
        if node.cluster_cidr:
            tx.rule(chain, f'ip saddr {node.cluster_cidr} goto {n.cluster} comment "short-circuit pod traffic"')
        tx.rule(chain, f'fib saddr type local jump {MARK_MASQ} comment "masquerade local traffic"')
        tx.rule(chain, f'fib saddr type local goto {n.cluster} comment "short-circuit local traffic"')
    if d.has_external:
        tx.rule(chain, f"goto {d.external_policy_chain}")


# --- applying ----------------------------------------------------------------

_ERR_LINE = re.compile(r"^/dev/stdin:(\d+):", re.M)


def _explain(stderr: str, text: str) -> str:
    """nft's complaint plus the transaction lines it points at."""
    lines = text.splitlines()
    cited = []
    for num in dict.fromkeys(int(m) for m in _ERR_LINE.findall(stderr)):
        if 0 < num <= len(lines):
            cited.append(f"  line {num}: {lines[num - 1]}")
        if len(cited) >= 5:
            break
    return stderr.strip() + ("\n" + "\n".join(cited) if cited else "")


@contextmanager
def _no_gc() -> Iterator[None]:
    """Rendering 10,000 Services allocates a million small objects and no
    cycles; the cyclic GC would spend 40% of the time finding none."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class NftablesBackend:
    """kube-proxy's nftables mode for one node (the Backend protocol).

    `netns` names the node's namespace when driving it from outside (tests,
    benchmarks); None runs `nft` where we are, as kube-proxy in its node.
    `large_cluster_threshold` is the endpoint count above which the
    large-cluster layout is used (tests lower it).  `layout` is the layout
    the table has after the last successful sync ("" before the first), for
    kube-proxy to log when it changes; SyncResult carries it too.
    """

    mode = "nftables"

    def __init__(self, netns: str | None = None, *,
                 large_cluster_threshold: int = LARGE_CLUSTER_ENDPOINTS_THRESHOLD) -> None:
        self.netns = netns
        self.large_cluster_threshold = large_cluster_threshold
        self._table: TableState | None = None    # None: replace the table next time
        self.layout = ""
        self.last_transaction = ""

    def sync(self, state: ProxyState, changed: frozenset[ServicePortName] | None) -> SyncResult:
        """Render and apply in one `nft -f -`; on failure raise ApplyError and
        make the next sync replace the table (our memory may be wrong)."""
        with _no_gc():
            plan = render(state, changed, self._table, threshold=self.large_cluster_threshold)
            text = str(plan.tx)
        self.last_transaction = text
        self._table = None
        r = run(["nft", "-f", "-"], input=text, netns=self.netns, check=False)
        if r.returncode != 0:
            kind = "full" if plan.full else "partial"
            raise ApplyError(f"nft -f ({kind} sync, {len(plan.tx)} commands) failed: {_explain(r.stderr, text)}")
        self._table = plan.table
        self.layout = plan.layout
        return SyncResult(full=plan.full, rules=plan.tx.rules, services_written=plan.services_written,
                          layout=plan.layout, endpoints=plan.endpoints)

    def tables_flushed(self) -> bool:
        """True when our table is gone or emptied behind our back (`nft flush
        ruleset`, `nft flush table`): the next sync then rebuilds it from
        scratch whatever it is asked.

        The probe asks the kernel, without committing (`--check`), to delete
        the `services` chain: while nat-prerouting/nat-output still jump to
        it the answer is "busy"; "no such file" means the table or chain is
        gone, success means nothing refers to it any more.  Listing a chain
        instead would make nft fetch the whole table (0.6 s at 10,000
        Services); this costs what starting nft costs.
        """
        if self._table is None:
            return False
        r = run(["nft", "--check", "-f", "-"], input=f"delete chain {_T} {SERVICES}\n", netns=self.netns,
                check=False)
        if r.returncode != 0 and "busy" in r.stderr:
            return False
        self._table = None
        return True

    def cleanup(self) -> None:
        """Delete the table (add first, so a missing table is no error)."""
        self._table = None
        run(["nft", "-f", "-"], input=f"add table {_T}\ndelete table {_T}\n", netns=self.netns)
