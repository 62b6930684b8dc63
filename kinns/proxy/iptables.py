"""kube-proxy's iptables mode: Services as `iptables-restore` input, applied in one shot.

Upstream's pkg/proxy/iptables/proxier.go, re-told in Python.  The job
splits in two halves, as everywhere in `kinns.proxy`:

* `render()` is pure.  It turns a `ProxyState` into the text that
  `iptables-restore --noflush` reads: `*filter … COMMIT *nat … COMMIT`.
  The chains and their names are upstream's, byte for byte where it
  matters: `KUBE-SERVICES` dispatches ClusterIPs, external IPs and
  LoadBalancer IPs to per-service chains (`KUBE-SVC-`, `KUBE-SVL-` for
  Local policy, `KUBE-EXT-` for external traffic, `KUBE-FW-` for
  loadBalancerSourceRanges) and ends with the jump to `KUBE-NODEPORTS`;
  each endpoint has a `KUBE-SEP-` chain that masquerades hairpin traffic
  and DNATs.  The filter table REJECTs services without endpoints and
  DROPs Local-policy traffic when no local endpoint exists.  Which
  endpoints each kind of traffic may use is `model.categorize`'s answer;
  this module only turns that answer into rules.
* `IptablesBackend` is the applier: on a full sync it makes sure the
  built-in chains jump to ours (one shell script of `iptables -C || -I`
  pairs, as upstream's `EnsureRule`), reads the existing chain names with
  `iptables-save` so stale ones get deleted, then writes everything with
  one `iptables-restore --noflush`.  It remembers which chains it wrote per
  ServicePort, so a partial sync (only the `changed` ServicePorts' chains
  are written; `KUBE-SERVICES` and friends always are) can still delete
  the chains of services and endpoints that went away.

A rule in the `KUBE-PROXY-CANARY` chains (mangle, nat, filter) lets
`tables_flushed()` notice both `iptables -F` and chain deletion
(`-X`, `nft flush ruleset`); upstream's canary is an empty chain and only
notices deletion.

Left out on purpose: nfacct counters (and so upstream's extra
`-d 127.0.0.0/8` NodePort rules), and kubelet's `KUBE-FIREWALL` chain;
NodePorts match every local address (`--dst-type LOCAL`), as upstream
does with localhost NodePorts enabled.  The stale-chain clean-up runs on
every full sync, not on upstream's large-cluster timer.

Speed: rules are f-strings appended to four lists and joined once; chain
names (sha256 + base32) are memoised in `ChainNames`, which the backend
keeps across syncs.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Collection, Iterable, Mapping, NamedTuple

from .backend import ApplyError, SyncResult, run
from .model import MASQ_MARK, Endpoint, NodeFacts, ProxyState, ServicePort, ServicePortName, categorize, hash_b32

if TYPE_CHECKING:
    from subprocess import CompletedProcess

# --- upstream's names -----------------------------------------------------------

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"

SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX = "KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX)

FILTER_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL)
NAT_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)

# Upstream drops per-endpoint comments above this many endpoints (largeClusterMode).
LARGE_CLUSTER_ENDPOINTS = 1000

MARK = f"{MASQ_MARK:#x}"
NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
CANARY_RULE = '-m comment --comment "kube-proxy canary" -j RETURN'


class Jump(NamedTuple):
    """A rule in a built-in chain that leads into one of ours (upstream's iptablesJumpChain)."""

    table: str
    chain: str       # the built-in chain holding the rule
    target: str      # our chain
    comment: str
    new_only: bool   # "-m conntrack --ctstate NEW"

    def args(self) -> list[str]:
        extra = ["-m", "conntrack", "--ctstate", "NEW"] if self.new_only else []
        return extra + ["-m", "comment", "--comment", self.comment, "-j", self.target]


JUMPS = (
    Jump("filter", "INPUT", KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", True),
    Jump("filter", "FORWARD", KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", True),
    Jump("filter", "INPUT", KUBE_NODEPORTS, "kubernetes health check service ports", False),
    Jump("filter", "FORWARD", KUBE_SERVICES, "kubernetes service portals", True),
    Jump("filter", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", True),
    Jump("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules", False),
    Jump("filter", "INPUT", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", True),
    Jump("filter", "OUTPUT", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", True),
    Jump("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", True),
    Jump("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", False),
    Jump("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals", False),
    Jump("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules", False),
)
CANARY_TABLES = ("mangle", "nat", "filter")


def is_service_chain(chain: str) -> bool:
    """A per-service or per-endpoint chain (the only kind a sync ever deletes)."""
    return chain.startswith(SERVICE_CHAIN_PREFIXES)


# --- names ---------------------------------------------------------------------

class ServiceNames(NamedTuple):
    """Everything about one ServicePort's naming the renderer needs on every sync."""

    text: str      # "ns/svc:port", as printed in comments and hashed
    proto: str     # "tcp"
    svc: str       # KUBE-SVC-…  (Cluster policy endpoints)
    svl: str       # KUBE-SVL-…  (Local policy endpoints)
    ext: str       # KUBE-EXT-…  (external traffic)
    fw: str        # KUBE-FW-…   (loadBalancerSourceRanges)


def service_names(name: ServicePortName) -> ServiceNames:
    """Upstream's chain names: prefix + 16 chars of base32(sha256("ns/svc:port" + "tcp"))."""
    text, proto = str(name), name.protocol.lower()
    h = hash_b32(text + proto)[:16]
    return ServiceNames(text, proto, SVC_PREFIX + h, SVL_PREFIX + h, EXT_PREFIX + h, FW_PREFIX + h)


def endpoint_chain(names: ServiceNames, ep: Endpoint) -> str:
    """KUBE-SEP- + 16 chars of base32(sha256("ns/svc:port" + "tcp" + "ip:port"))."""
    return SEP_PREFIX + hash_b32(f"{names.text}{names.proto}{ep.ip}:{ep.port}")[:16]


class ChainNames:
    """Memoised names (hashing is the renderer's hottest step), as upstream caches
    them in its servicePortInfo/endpointInfo.  Keep one per backend; `retain`
    forgets ServicePorts that no longer exist."""

    def __init__(self) -> None:
        self._svc: dict[ServicePortName, ServiceNames] = {}
        self._sep: dict[ServicePortName, dict[tuple[str, int], str]] = {}

    def service(self, name: ServicePortName) -> ServiceNames:
        n = self._svc.get(name)
        if n is None:
            n = self._svc[name] = service_names(name)
        return n

    def endpoint(self, name: ServicePortName, ep: Endpoint) -> str:
        per = self._sep.get(name)
        if per is None:
            per = self._sep[name] = {}
        c = per.get((ep.ip, ep.port))
        if c is None:
            c = per[(ep.ip, ep.port)] = endpoint_chain(self.service(name), ep)
        return c

    def retain(self, live: Collection[ServicePortName]) -> None:
        for cache in (self._svc, self._sep):
            for k in [k for k in cache if k not in live]:
                del cache[k]


@lru_cache(maxsize=4096)
def probability(n: int) -> str:
    """`1/n` as upstream prints it (`%0.10f`): 0.5000000000, 0.3333333333."""
    return f"{1.0 / n:0.10f}"


# --- rendering -----------------------------------------------------------------

@dataclass(frozen=True)
class Rendered:
    """One sync's restore input and what the applier must remember about it."""

    text: str
    chains: dict[ServicePortName, frozenset[str]]   # nat chains per ServicePort, after this sync
    nat_rules: int
    filter_rules: int
    services_written: int
    deleted: tuple[str, ...]                          # stale chains flushed and deleted


class _Buffers:
    """Upstream's four line buffers."""

    def __init__(self) -> None:
        self.filter_chains = [f":{c} - [0:0]" for c in FILTER_CHAINS]
        self.filter_rules: list[str] = []
        self.nat_chains = [f":{c} - [0:0]" for c in NAT_CHAINS]
        self.nat_rules: list[str] = []

    def text(self) -> str:
        return "\n".join(["*filter", *self.filter_chains, *self.filter_rules, "COMMIT",
                          "*nat", *self.nat_chains, *self.nat_rules, "COMMIT", ""])


class _Plan(NamedTuple):
    """Upstream's per-service decisions (proxier.go's local variables), from `categorize`."""

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]
    has: bool                     # usable endpoints anywhere (else REJECT)
    uses_cluster: bool            # write KUBE-SVC-
    uses_local: bool              # write KUBE-SVL-
    internal_chain: str
    has_internal: bool
    external_policy_chain: str
    has_external: bool
    uses_ext: bool                # write KUBE-EXT-
    uses_fw: bool                 # write KUBE-FW-
    internal_filter: tuple[str, str]   # (target, comment) when internal traffic is refused
    external_filter: tuple[str, str]


def _plan(sp: ServicePort, n: ServiceNames, node: str) -> _Plan:
    c = categorize(sp, node)
    uses_cluster = bool(c.cluster) and sp.uses_cluster_endpoints
    uses_local = bool(c.local) and sp.uses_local_endpoints
    has = c.has_any
    has_internal = has and (not sp.internal_local or bool(c.local))
    ext_local = sp.external_local and sp.externally_accessible
    has_external = has and (not ext_local or bool(c.local))
    if not has:
        none = ("REJECT", f'"{n.text} has no endpoints"')
        internal_filter = external_filter = none
    else:
        no_local = ("DROP", f'"{n.text} has no local endpoints"')
        internal_filter = no_local if not has_internal else ("", "")
        external_filter = no_local if not has_external else ("", "")
    return _Plan(c.cluster, c.local, c.all_reachable, has, uses_cluster, uses_local,
                 n.svl if sp.internal_local else n.svc, has_internal,
                 n.svl if ext_local else n.svc, has_external,
                 has and sp.externally_accessible,
                 has and bool(sp.load_balancer_ips) and bool(sp.lb_source_ranges),
                 internal_filter, external_filter)


def _dispatch(b: _Buffers, sp: ServicePort, n: ServiceNames, p: _Plan) -> None:
    """KUBE-SERVICES / KUBE-NODEPORTS entries and filter rules: written on every sync."""
    pm = f"-m {n.proto} -p {n.proto}"
    port = sp.port
    if p.has_internal:
        b.nat_rules.append(f'-A {KUBE_SERVICES} -m comment --comment "{n.text} cluster IP" {pm} '
                           f'-d {sp.cluster_ip} --dport {port} -j {p.internal_chain}')
    else:
        target, comment = p.internal_filter
        b.filter_rules.append(f"-A {KUBE_SERVICES} -m comment --comment {comment} {pm} "
                              f"-d {sp.cluster_ip} --dport {port} -j {target}")
    ext_target, ext_comment = p.external_filter
    for ip in sp.external_ips:
        if p.has:
            b.nat_rules.append(f'-A {KUBE_SERVICES} -m comment --comment "{n.text} external IP" {pm} '
                               f'-d {ip} --dport {port} -j {n.ext}')
        if not p.has_external:
            b.filter_rules.append(f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} {pm} "
                                  f"-d {ip} --dport {port} -j {ext_target}")
    lb_target = n.fw if p.uses_fw else n.ext
    for ip in sp.load_balancer_ips:
        if p.has:
            b.nat_rules.append(f'-A {KUBE_SERVICES} -m comment --comment "{n.text} loadbalancer IP" {pm} '
                               f'-d {ip} --dport {port} -j {lb_target}')
        if p.uses_fw:
            b.filter_rules.append(f'-A {KUBE_PROXY_FIREWALL} -m comment --comment '
                                  f'"{n.text} traffic not accepted by {n.fw}" {pm} -d {ip} --dport {port} -j DROP')
    if not p.has_external:
        for ip in sp.load_balancer_ips:
            b.filter_rules.append(f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} {pm} "
                                  f"-d {ip} --dport {port} -j {ext_target}")
    if sp.node_port:
        if p.has:
            b.nat_rules.append(f"-A {KUBE_NODEPORTS} -m comment --comment {n.text} {pm} "
                               f"--dport {sp.node_port} -j {n.ext}")
        if not p.has_external:
            b.filter_rules.append(f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} "
                                  f"-m addrtype --dst-type LOCAL {pm} --dport {sp.node_port} -j {ext_target}")
    if sp.health_check_node_port and sp.external_local:
        b.filter_rules.append(f'-A {KUBE_NODEPORTS} -m comment --comment "{n.text} health check node port" '
                              f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT")


def _service_chains(out: list[str], chains: list[str], sp: ServicePort, n: ServiceNames, p: _Plan,
                    node: NodeFacts, names: ChainNames, large: bool) -> None:
    """The service's own chains (EXT, FW, SVC, SVL, SEPs), in upstream's order.

    `chains` collects the chain names (the caller declares and remembers
    them); `out` receives the rules.
    """
    cidr = node.cluster_cidr
    if p.has_internal and (node.masquerade_all or cidr):
        not_local = "" if node.masquerade_all else f" ! -s {cidr}"
        out.append(f'-A {p.internal_chain} -m comment --comment "{n.text} cluster IP" -m {n.proto} -p {n.proto} '
                   f"-d {sp.cluster_ip} --dport {sp.port}{not_local} -j {KUBE_MARK_MASQ}")
    if p.uses_ext:
        chains.append(n.ext)
        _external_chain(out, n, p, cidr, sp.external_local)
    if p.uses_fw:
        chains.append(n.fw)
        _firewall_chain(out, sp, n, node)
    if p.uses_cluster:
        chains.append(n.svc)
        _balance(out, sp, n, n.svc, p.cluster, names, large)
    if p.uses_local:
        chains.append(n.svl)
        _balance(out, sp, n, n.svl, p.local, names, large)
    comment = "" if large else f" -m comment --comment {n.text}"
    recent_set = ""
    for ep in p.reachable:
        sep = names.endpoint(sp.name, ep)
        chains.append(sep)
        if sp.affinity_timeout:
            recent_set = f" -m recent --name {sep} --set"
        out.append(f"-A {sep}{comment} -s {ep.ip} -j {KUBE_MARK_MASQ}")
        out.append(f"-A {sep}{comment}{recent_set} -m {n.proto} -p {n.proto} -j DNAT --to-destination {ep.ip}:{ep.port}")


def _external_chain(out: list[str], n: ServiceNames, p: _Plan, cidr: str, external_local: bool) -> None:
    """KUBE-EXT-: masquerade (Cluster policy) or short-circuit pod and node traffic (Local)."""
    if not external_local:
        out.append(f'-A {n.ext} -m comment --comment "masquerade traffic for {n.text} external destinations" '
                   f"-j {KUBE_MARK_MASQ}")
    else:
        # Pod and node traffic to an external address behaves as if it went out
        # to the load balancer and came back: cluster-wide endpoints.  The model's
        # `uses_cluster_endpoints` is false for ITP=Local+ETP=Local (upstream: true
        # whenever externally accessible); then no KUBE-SVC- exists and the local
        # chain is the only place to go.
        short = n.svc if p.uses_cluster else (n.svl if p.uses_local else "")
        if cidr and short:
            out.append(f'-A {n.ext} -m comment --comment "pod traffic for {n.text} external destinations" '
                       f"-s {cidr} -j {short}")
        out.append(f'-A {n.ext} -m comment --comment "masquerade LOCAL traffic for {n.text} external destinations" '
                   f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}")
        if short:
            out.append(f'-A {n.ext} -m comment --comment "route LOCAL traffic for {n.text} external destinations" '
                       f"-m addrtype --src-type LOCAL -j {short}")
    if p.has_external:
        out.append(f"-A {n.ext} -j {p.external_policy_chain}")


def _firewall_chain(out: list[str], sp: ServicePort, n: ServiceNames, node: NodeFacts) -> None:
    """KUBE-FW-: loadBalancerSourceRanges; what falls off the end is dropped by KUBE-PROXY-FIREWALL."""
    head = f'-A {n.fw} -m comment --comment "{n.text} loadbalancer IP"'
    node_ips = [ipaddress.ip_address(ip) for ip in node.node_ips]
    allow_from_node = False
    for raw in sp.lb_source_ranges:
        try:
            net = ipaddress.ip_network(raw.strip(), strict=False)
        except ValueError:
            continue   # upstream ignores unparsable ranges
        out.append(f"{head} -s {net} -j {n.ext}")
        allow_from_node = allow_from_node or any(ip in net for ip in node_ips)
    if allow_from_node:
        # A VIP that is also a local address loops back with the VIP as source.
        out.extend(f"{head} -s {ip} -j {n.ext}" for ip in sp.load_balancer_ips)
    out.append(f'-A {n.fw} -m comment --comment "other traffic to {n.text} will be dropped by {KUBE_PROXY_FIREWALL}"')


def _balance(out: list[str], sp: ServicePort, n: ServiceNames, chain: str, eps: tuple[Endpoint, ...],
             names: ChainNames, large: bool) -> None:
    """SVC/SVL → SEP: affinity checks first, then 1/(n-i) random picks, the last unconditional."""
    seps = [names.endpoint(sp.name, ep) for ep in eps]
    comments = [""] * len(eps) if large else [f' -m comment --comment "{n.text} -> {ep.ip}:{ep.port}"' for ep in eps]
    if sp.affinity_timeout:
        out.extend(f"-A {chain}{c} -m recent --name {s} --rcheck --seconds {sp.affinity_timeout} --reap -j {s}"
                   for c, s in zip(comments, seps))
    last = len(eps) - 1
    for i, (c, s) in enumerate(zip(comments, seps)):
        stat = f" -m statistic --mode random --probability {probability(len(eps) - i)}" if i < last else ""
        out.append(f"-A {chain}{c}{stat} -j {s}")


def _fixed_rules(b: _Buffers) -> None:
    """KUBE-POSTROUTING and KUBE-MARK-MASQ, written first as upstream does."""
    b.nat_rules += [
        f"-A {KUBE_POSTROUTING} -m mark ! --mark {MARK}/{MARK} -j RETURN",
        f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {MARK}",
        f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {MARK}",
    ]


def _tail_rules(b: _Buffers) -> None:
    """The NodePort tail-call (last in nat KUBE-SERVICES) and KUBE-FORWARD."""
    b.nat_rules.append(f"-A {KUBE_SERVICES} -m comment --comment {NODEPORTS_COMMENT} "
                       f"-m addrtype --dst-type LOCAL -j {KUBE_NODEPORTS}")
    b.filter_rules += [
        f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP",
        f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {MARK}/{MARK} -j ACCEPT',
        f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]


def _stale(previous: Mapping[ServicePortName, frozenset[str]], now: Mapping[ServicePortName, frozenset[str]],
           touched: Iterable[ServicePortName], existing: Iterable[str] | None) -> list[str]:
    """Service chains to flush and delete.

    Partial sync: chains the touched ServicePorts had and no longer have.
    Full sync (`existing` from iptables-save): every service chain in the
    table that this sync did not write.
    """
    if existing is None:
        gone: set[str] = set()
        for name in touched:
            gone |= previous[name] - now.get(name, frozenset())
        return sorted(gone)
    active: set[str] = set().union(*now.values()) if now else set()
    candidates = set(existing).union(*previous.values()) if previous else set(existing)
    return sorted(c for c in candidates - active if is_service_chain(c))


def render(state: ProxyState, changed: Collection[ServicePortName] | None = None, *,
           previous: Mapping[ServicePortName, frozenset[str]] | None = None,
           existing: Iterable[str] | None = None, names: ChainNames | None = None) -> Rendered:
    """The `iptables-restore --noflush` input for `state`.

    `changed=None` is a full sync: every ServicePort's chains are written.
    Otherwise only ServicePorts in `changed` (or unknown to `previous`, the
    chains the last sync wrote) get their SVC/SVL/EXT/FW/SEP chains written;
    the top-level chains are always rewritten, as upstream does.  `existing`
    (nat chain names from iptables-save) lets a full sync delete stale
    chains the backend never knew about.
    """
    previous = previous or {}
    names = names or ChainNames()
    node = state.node
    b = _Buffers()
    _fixed_rules(b)
    large = sum(len(sp.endpoints) for sp in state.services.values()) > LARGE_CLUSTER_ENDPOINTS
    chains_now: dict[ServicePortName, frozenset[str]] = {}
    written = 0
    for name in sorted(state.services):
        sp = state.services[name]
        n = names.service(name)
        p = _plan(sp, n, node.name)
        _dispatch(b, sp, n, p)
        if changed is not None and name not in changed and name in previous:
            chains_now[name] = previous[name]
            continue
        chains: list[str] = []
        _service_chains(b.nat_rules, chains, sp, n, p, node, names, large)
        b.nat_chains.extend(f":{c} - [0:0]" for c in chains)
        chains_now[name] = frozenset(chains)
        written += 1
    if changed is None:
        touched: Iterable[ServicePortName] = previous
    else:
        touched = (previous.keys() & set(changed)) | (previous.keys() - state.services.keys())
    deleted = _stale(previous, chains_now, touched, existing)
    b.nat_chains.extend(f":{c} - [0:0]" for c in deleted)
    b.nat_rules.extend(f"-X {c}" for c in deleted)
    _tail_rules(b)
    return Rendered(b.text(), chains_now, len(b.nat_rules) - len(deleted), len(b.filter_rules), written,
                    tuple(deleted))


# --- applying --------------------------------------------------------------------

def error_context(text: str, stderr: str, around: int = 3) -> str:
    """The restore input's lines around the one iptables-restore complains about
    (upstream's ExtractLines), numbered as iptables-restore counts them."""
    m = re.search(r"line:? (\d+)", stderr)
    if not m:
        return ""
    bad = int(m.group(1))
    lines = text.splitlines()
    lo, hi = max(1, bad - around), min(len(lines), bad + around)
    return "\n".join(f"{'>' if i == bad else ' '}{i:6} {lines[i - 1]}" for i in range(lo, hi + 1))


def chains_in(save_output: str) -> list[str]:
    """Chain names declared in iptables-save output (`:NAME POLICY [p:b]`)."""
    return [line[1:].split(None, 1)[0] for line in save_output.splitlines() if line.startswith(":")]


def _ipt(table: str, *args: str) -> str:
    return " ".join(["iptables -w -t", table, *(shlex.quote(a) for a in args)])


def ensure_script() -> str:
    """One shell script that creates our top-level chains, the jumps into them
    (upstream's EnsureChain + EnsureRule(Prepend), `-C || -I`) and the canaries."""
    lines = ["set -e"]
    for j in JUMPS:
        lines.append(f"{_ipt(j.table, '-N', j.target)} 2>/dev/null || true")
        lines.append(f"{_ipt(j.table, '-C', j.chain, *j.args())} 2>/dev/null || {_ipt(j.table, '-I', j.chain, *j.args())}")
    canary = shlex.split(CANARY_RULE)
    for t in CANARY_TABLES:
        lines.append(f"{_ipt(t, '-N', KUBE_PROXY_CANARY)} 2>/dev/null || true")
        lines.append(f"{_ipt(t, '-C', KUBE_PROXY_CANARY, *canary)} 2>/dev/null || {_ipt(t, '-A', KUBE_PROXY_CANARY, *canary)}")
    return "\n".join(lines) + "\n"


def canary_script() -> str:
    """Prints each table whose canary chain is gone or was flushed."""
    return "".join(f"{_ipt(t, '-S', KUBE_PROXY_CANARY)} 2>/dev/null | grep -q -- '^-A {KUBE_PROXY_CANARY} ' "
                   f"|| echo {t}\n" for t in CANARY_TABLES)


def unjump_script() -> str:
    """Deletes every copy of our jump rules from the built-in chains."""
    return "".join(f"while {_ipt(j.table, '-D', j.chain, *j.args())} 2>/dev/null; do :; done\n" for j in JUMPS)


def cleanup_input(nat_chains: Iterable[str], filter_chains: Iterable[str]) -> str:
    """Restore input flushing and deleting our nat and filter chains (upstream's
    cleanupLeftovers); other chains (CNI-*, KUBE-FIREWALL of kubelet) stay."""
    ours_nat = set(NAT_CHAINS) | {KUBE_PROXY_CANARY}
    ours_filter = set(FILTER_CHAINS) | {KUBE_PROXY_CANARY}
    out: list[str] = []
    for table, present, ours in (("filter", filter_chains, ours_filter), ("nat", nat_chains, ours_nat)):
        mine = [c for c in present if c in ours or (table == "nat" and is_service_chain(c))]
        if mine:
            out += [f"*{table}", *(f":{c} - [0:0]" for c in mine), *(f"-X {c}" for c in mine), "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


class IptablesBackend:
    """The iptables mode behind the `Backend` seam, in the current netns or `netns`."""

    mode = "iptables"

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.names = ChainNames()
        self.written: dict[ServicePortName, frozenset[str]] = {}
        self.last_input = ""          # the last restore input, for debugging
        self._need_full = True        # nothing written yet, or the last sync failed

    def sync(self, state: ProxyState, changed: frozenset[ServicePortName] | None) -> SyncResult:
        full = changed is None or self._need_full
        existing: list[str] | None = None
        if full:
            self._sh(ensure_script())
            existing = chains_in(self._run(["iptables-save", "-t", "nat"]).stdout)
        r = render(state, None if full else changed, previous=self.written, existing=existing, names=self.names)
        self.last_input = r.text
        self._need_full = True
        self._restore(r.text)
        self._need_full = False
        self.written = r.chains
        if full:
            self.names.retain(state.services.keys())
        return SyncResult(full=full, rules=r.nat_rules + r.filter_rules, services_written=r.services_written)

    def tables_flushed(self) -> bool:
        """True when a canary chain is gone or empty: someone flushed or deleted
        our rules (iptables -F/-X, nft flush ruleset); the caller resyncs fully."""
        return bool(self._sh(canary_script(), check=False).stdout.strip())

    def cleanup(self) -> None:
        """Remove our jumps, every chain we own, and the canaries; leave all else."""
        self._sh(unjump_script(), check=False)
        nat = chains_in(self._run(["iptables-save", "-t", "nat"], check=False).stdout)
        flt = chains_in(self._run(["iptables-save", "-t", "filter"], check=False).stdout)
        text = cleanup_input(nat, flt)
        if text:
            self._restore(text)
        self._sh(f"{_ipt('mangle', '-F', KUBE_PROXY_CANARY)} 2>/dev/null && "
                 f"{_ipt('mangle', '-X', KUBE_PROXY_CANARY)}", check=False)
        self.written = {}
        self._need_full = True

    # -- plumbing --------------------------------------------------------------

    def _run(self, argv: list[str], *, input: str | None = None, check: bool = True) -> "CompletedProcess[str]":
        return run(argv, input=input, netns=self.netns, check=check)

    def _sh(self, script: str, check: bool = True) -> "CompletedProcess[str]":
        return self._run(["sh", "-c", script], check=check)

    def _restore(self, text: str) -> None:
        r = self._run(["iptables-restore", "--noflush", "--counters"], input=text, check=False)
        if r.returncode != 0:
            ctx = error_context(text, r.stderr)
            raise ApplyError(f"iptables-restore failed ({r.returncode}): {r.stderr.strip()}"
                             + (f"\n{ctx}" if ctx else ""))
