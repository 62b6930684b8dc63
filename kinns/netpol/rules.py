"""One node's NetworkPolicy ruleset: rendered from a `Cluster`, written with one `nft -f`.

Everything lives in a table of its own, `inet kinns-network-policies`, so
kube-proxy's syncs (table `ip kube-proxy`, or iptables) never touch it and
`nft delete table inet kinns-network-policies` undoes it all.  The table
only ever drops: an `accept` here ends this table's verdict, not another
table's, so kube-proxy's rules still run.

Where packets are seen.  A node is a network namespace with a bridge `cni0`
for its pods and `flannel.1` (VXLAN) or plain routes via `eth0` (host-gw)
to the other nodes.  Every pod-to-pod packet crosses the FORWARD hook of
the nodes it passes, after Service DNAT (kube-proxy's `nat-prerouting`
runs at dstnat, before forwarding), so the rules see backend pod IPs:

* cross-node (VXLAN or host-gw): routed `cni0` → `flannel.1`/`eth0` on the
  source node, routed `flannel.1`/`eth0` → `cni0` on the destination node;
* same-node: pod to pod through a Service is routed (`cni0` → `cni0`);
  pod to pod IP is *bridged* on `cni0`, which reaches the inet FORWARD hook
  only through br_netfilter with `net.bridge.bridge-nf-call-iptables=1`
  (kinns/net/desired.py sets it in every node; the agent checks it);
* pod to its own node (node IPs, hostNetwork pods, a Service backed by
  them): the INPUT hook;
* the node to its pods (kubelet probes, hostNetwork pods, kube-proxy's
  userspace mode) leaves through OUTPUT, which this table does not hook:
  the pod's own node may always connect in, as upstream requires.

So each node's table holds only its own pods: the source node checks the
source pod's egress, the destination node the destination pod's ingress
(on one node both, in the same pass).

The table:

    chain egress          forward, priority filter - 1
    chain ingress         forward, priority filter
    chain egress-to-node  input,   priority filter
        ct state established,related accept           replies, and connections already allowed
        [ingress only] TCP without SYN from/to @isolated-pods: drop
        ip saddr vmap @egress-pods  /  ip daddr vmap @ingress-pods
    map egress-pods / ingress-pods   pod IP : jump pod-<dir>-<ns>/<pod>   (isolated local pods)
    set allow-ingress-<ns>/<pod>  ipv4_addr . inet_proto . inet_service, intervals
        the union of everything the pod's policies allow (boxes.py), for pods
        many policies select
    chain pod-ingress-<ns>/<pod>
        ip saddr <itself> accept                      a pod may always reach itself
        [ip saddr . meta l4proto . th dport @allow-ingress-<ns>/<pod> accept]
        jump policy-ingress-<ns>/<policy>             for every policy isolating it, by name
        counter drop comment "<ns>/<pod> ingress: ..." what nothing allowed
    chain policy-ingress-<ns>/<policy>
        meta l4proto tcp th dport 80 ip saddr { peers } accept comment "<ns>/<policy> ingress[0]"

A pod that many policies select (ALLOW_SET_FROM) gets an allow set in
front of their chains: an allowed connection is then accepted by one
lookup, however many policies there are, and only a connection about to be
dropped walks the policy chains (which decide exactly as the set does) to
the drop rule that counts it; `Ruleset.explain` walks them to name the
policy that allowed one.  With fewer policies the chains are walked
directly, so the kernel's own trace names the allowing rule.

Every allow carries its policy's `ns/name` and rule index, every drop its
pod, so `nft list table inet kinns-network-policies` (and a packet trace)
says which policy let a packet through and which pod's isolation dropped
it.  A policy chain is shared by all local pods the policy selects; a named
port is matched as `ip daddr . meta l4proto . th dport { pod . proto . port }`
over the destination pods that have it (the selected pods for ingress, the
peers for egress).  Peers become one address set: selected pods' IPs and
ipBlocks with their excepts cut out (so `except` needs no rule of its own).

The TCP rule is what makes a cut stick: when a policy starts to deny an
existing connection the agent deletes its conntrack entry; the next packet
is then NEW without SYN, and would otherwise be taken up as a new
connection in the reverse direction if the other end spoke first.

Division of labour: `render(cluster, node)` is pure and returns a `Ruleset`
(chains of structured `NftRule`s and the pod maps); `transaction(new, old)`
is the `nft -f` text that turns the table from `old` (None: unknown) into
`new`, atomically: a fresh table, or only the chains and maps that changed
(so unchanged chains keep their counters).  `Ruleset.verdict` traces a new
connection through the rules as the kernel would, for the agent's conntrack
clean-up and for tests that hold the rules against the spec (model.allowed).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from ..proxy.model import hash_b32
from .boxes import ALL_ADDRESSES, ANY, PROTO_NAMES, PROTO_NUMBERS, Box, disjoint
from .model import EGRESS, INGRESS, Cluster, Net, Policy, Pod, PortMatch, Rule

FAMILY = "inet"
TABLE = "kinns-network-policies"
_T = f"{FAMILY} {TABLE}"
TABLE_COMMENT = "NetworkPolicy enforcement (kube-network-policies, kinns.netpol)"
ISOLATED_SET = "isolated-pods"
POD_MAPS = {INGRESS: "ingress-pods", EGRESS: "egress-pods"}
COMMENT_MAX = 127          # nft refuses longer comments
NAME_MAX = 200             # chain names may be 256 bytes; leave room

# (name, hook, priority, address the pod map is keyed on)
BASE_CHAINS = (
    ("egress", "forward", "filter - 1", EGRESS),
    ("ingress", "forward", "filter", INGRESS),
    ("egress-to-node", "input", "filter", EGRESS),
)
# From how many policies on one pod an allow set goes in front of their chains: below it a new
# connection walks a few chains (~0.1 µs each here) and the kernel's own trace shows the rule
# and policy that let it in; above it one lookup replaces the walk.
ALLOW_SET_FROM = 8
MIDSTREAM_COMMENT = "TCP without SYN to/from an isolated pod: no connection a policy allows (cut or expired)"
_DIR = {INGRESS: "ingress", EGRESS: "egress"}


class Packet(NamedTuple):
    """The first packet of a connection, after DNAT: what the rules decide on."""

    src: str
    dst: str
    protocol: str          # "TCP", "UDP", "SCTP", or e.g. "ICMP"
    port: int = 0


@dataclass(frozen=True)
class NftRule:
    """One rule: its matches (all must hold), verdict and comment; `text` is its nft syntax."""

    verdict: str                                     # "accept", "drop", "jump <chain>"
    comment: str = ""
    saddr: tuple[Net, ...] | None = None
    daddr: tuple[Net, ...] | None = None
    protocol: str | None = None                      # "TCP", "UDP", "SCTP"
    dport: tuple[int, int] | None = None
    dst_ports: tuple[tuple[str, str, int], ...] | None = None   # (pod IP, protocol, port)
    counter: bool = False
    lookup: str | None = None                        # a set of Boxes: `ip <lookup_addr> . proto . port @set`
    lookup_addr: str = "saddr"
    boxes: tuple[Box, ...] = field(default=(), compare=False)   # the set's elements, for `matches`

    def text(self) -> str:
        # Cheap comparisons first: most rules a packet meets are for other ports, and then
        # the address-set lookup is never made.
        parts: list[str] = []
        if self.lookup is not None:
            parts.append(f"ip {self.lookup_addr} . meta l4proto . th dport @{self.lookup}")
        if self.protocol is not None:
            parts.append(f"meta l4proto {self.protocol.lower()}")
        if self.dport is not None:
            lo, hi = self.dport
            parts.append(f"th dport {lo}" if lo == hi else f"th dport {lo}-{hi}")
        if self.dst_ports is not None:
            elems = ", ".join(f"{ip} . {proto.lower()} . {port}" for ip, proto, port in self.dst_ports)
            parts.append(f"ip daddr . meta l4proto . th dport {{ {elems} }}")
        if self.saddr is not None:
            parts.append(f"ip saddr {_addrs(self.saddr)}")
        if self.daddr is not None:
            parts.append(f"ip daddr {_addrs(self.daddr)}")
        if self.counter:
            parts.append("counter")
        parts.append(self.verdict)
        if self.comment:
            parts.append(f"comment {_quote(self.comment)}")
        return " ".join(parts)

    def matches(self, pkt: Packet) -> bool:
        if self.lookup is not None:
            addr = int(ipaddress.IPv4Address(pkt.src if self.lookup_addr == "saddr" else pkt.dst))
            proto = PROTO_NUMBERS.get(pkt.protocol, 1)
            if not any(b.contains(addr, proto, pkt.port) for b in self.boxes):
                return False
        if self.saddr is not None and not _in(pkt.src, self.saddr):
            return False
        if self.daddr is not None and not _in(pkt.dst, self.daddr):
            return False
        if self.dst_ports is not None and (pkt.dst, pkt.protocol, pkt.port) not in self.dst_ports:
            return False
        if self.protocol is not None and pkt.protocol != self.protocol:
            return False
        if self.dport is not None and not self.dport[0] <= pkt.port <= self.dport[1]:
            return False
        return True


def _quote(text: str) -> str:
    text = text.replace('"', "'")
    return '"' + (text if len(text) <= COMMENT_MAX else text[:COMMENT_MAX - 3] + "...") + '"'


def _addr(net: Net) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def _addrs(nets: tuple[Net, ...]) -> str:
    return _addr(nets[0]) if len(nets) == 1 else "{ " + ", ".join(_addr(n) for n in nets) + " }"


def _in(ip: str, nets: tuple[Net, ...]) -> bool:
    addr = ipaddress.IPv4Address(ip)
    return any(addr in n for n in nets)


def _host(ip: str) -> Net:
    return ipaddress.IPv4Network(ip)


def chain_name(kind: str, direction: str, key: str) -> str:
    """`pod-ingress-x/a`, `policy-egress-x/allow-dns`; hashed and cut only if too long."""
    name = f"{kind}-{_DIR[direction]}-{key}"
    if len(name) <= NAME_MAX:
        return name
    return f"{kind}-{_DIR[direction]}-{hash_b32(key)[:8]}-{key}"[:NAME_MAX]


@dataclass
class Ruleset:
    """One node's desired table: regular chains, pod maps and the isolated set."""

    chains: dict[str, tuple[NftRule, ...]] = field(default_factory=dict)
    sets: dict[str, tuple[Box, ...]] = field(default_factory=dict)      # per-pod allow sets
    pods: dict[str, dict[str, str]] = field(default_factory=lambda: {INGRESS: {}, EGRESS: {}})
    isolated: frozenset[str] = frozenset()

    @property
    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values())

    # ---- the kernel's walk, for one new connection

    def _run(self, chain: str, pkt: Packet, fast: bool) -> tuple[str, str] | None:
        for rule in self.chains.get(chain, ()):
            if (rule.lookup is not None and not fast) or not rule.matches(pkt):
                continue
            if rule.verdict.startswith("jump "):
                out = self._run(rule.verdict[5:], pkt, fast)
                if out is not None:
                    return out
                continue
            return rule.verdict, rule.comment
        return None

    def check(self, direction: str, pkt: Packet, fast: bool = True) -> tuple[bool, str]:
        """This node's verdict on `pkt` in one direction: (allowed, comment of the deciding rule).
        `fast=False` skips the pods' allow sets, so an allowed packet is attributed to the
        policy rule that allows it (the kernel takes the set; both must agree)."""
        ip = pkt.dst if direction == INGRESS else pkt.src
        chain = self.pods[direction].get(ip)
        if chain is None:
            return True, ""
        out = self._run(chain, pkt, fast)
        if out is None:
            return True, ""
        return out[0] == "accept", out[1]

    def verdict(self, pkt: Packet, fast: bool = True) -> tuple[bool, str]:
        """What this node does with the first packet of `pkt`'s connection (egress, then ingress)."""
        ok, why = self.check(EGRESS, pkt, fast)
        if not ok:
            return ok, why
        return self.check(INGRESS, pkt, fast)

    def explain(self, pkt: Packet) -> tuple[bool, str]:
        """The verdict with the deciding policy rule named: what `kinns trace` should print."""
        return self.verdict(pkt, fast=False)


# ---------------------------------------------------------------- rendering

def _named_targets(pm: PortMatch, candidates: Iterable[Pod]) -> tuple[tuple[str, str, int], ...]:
    out = []
    for pod in candidates:
        number = pod.named_port(str(pm.port), pm.protocol)
        if number is not None:
            out.append((pod.ip, pm.protocol, number))
    return tuple(sorted(set(out), key=lambda t: (ipaddress.IPv4Address(t[0]), t[1], t[2])))


def _allow(direction: str, comment: str, nets: tuple[Net, ...] | None, protocol: str | None = None,
           dport: tuple[int, int] | None = None,
           dst_ports: tuple[tuple[str, str, int], ...] | None = None) -> NftRule:
    """An allow rule whose peers (`nets`, None = any) are sources for ingress, destinations for egress."""
    return NftRule("accept", comment, saddr=nets if direction == INGRESS else None,
                   daddr=nets if direction == EGRESS else None, protocol=protocol, dport=dport, dst_ports=dst_ports)


@functools.lru_cache(maxsize=8192)
def _collapse(nets: tuple[Net, ...]) -> tuple[Net, ...]:
    """Disjoint, merged networks (cached: the same ipBlocks come back every sync)."""
    return tuple(ipaddress.collapse_addresses(nets))


def _ranges(nets: tuple[Net, ...] | None) -> list[tuple[int, int]]:
    if nets is None:
        return [ALL_ADDRESSES]
    return [(int(n.network_address), int(n.broadcast_address)) for n in nets]


class _Renderer:
    """One render: the cluster plus what several pods' chains and sets share (peer addresses,
    egress named-port targets), computed once."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._nets: dict[tuple[str, str, int], tuple[Net, ...] | None] = {}
        self._targets: dict[tuple[str, int, PortMatch], tuple[tuple[str, str, int], ...]] = {}

    def peer_nets(self, pol: Policy, direction: str, i: int, rule: Rule) -> tuple[Net, ...] | None:
        """The addresses a rule's peers cover, as disjoint networks; None = every address."""
        if rule.block_nets is not None:
            return rule.block_nets
        key = (pol.key, direction, i)
        if key not in self._nets:
            nets: list[Net] | None = None
            if rule.peers:
                nets = []
                for peer in rule.peers:
                    if peer.ip_block is not None:
                        nets.extend(peer.ip_block.networks())
                    else:
                        nets.extend(_host(p.ip) for p in self.cluster.peer_pods(pol, peer))
            self._nets[key] = None if nets is None else _collapse(tuple(nets))
        return self._nets[key]

    def egress_targets(self, pol: Policy, i: int, pm: PortMatch,
                       nets: tuple[Net, ...] | None) -> tuple[tuple[str, str, int], ...]:
        """For egress a name means a number on each destination pod among the peers (non-pods
        have no named ports), so the (pod, protocol, port) tuples say which destinations qualify."""
        key = (pol.key, i, pm)
        if key not in self._targets:
            pods = self.cluster.pods
            cands = pods if nets is None else [p for p in pods if _in(p.ip, nets)]
            self._targets[key] = _named_targets(pm, cands)
        return self._targets[key]

    def policy_chain(self, pol: Policy, direction: str, local: list[Pod]) -> tuple[NftRule, ...]:
        """The allow rules of one policy in one direction (shared by the local pods it selects)."""
        out: list[NftRule] = []
        for i, rule in enumerate(pol.rules(direction)):
            comment = f"{pol.key} {_DIR[direction]}[{i}]"
            nets = self.peer_nets(pol, direction, i, rule)
            if nets is not None and not nets:
                continue                             # peers that match nothing allow nothing
            if not rule.ports:
                out.append(_allow(direction, comment, nets))
                continue
            for pm in rule.ports:
                if pm.port is None:
                    out.append(_allow(direction, comment, nets, pm.protocol))
                elif isinstance(pm.port, int):
                    hi = pm.end_port if pm.end_port is not None else pm.port
                    out.append(_allow(direction, comment, nets, pm.protocol, (pm.port, hi)))
                elif direction == INGRESS:
                    # A name means a number on each destination pod: here the selected (local) pods.
                    targets = _named_targets(pm, local)
                    if targets:
                        out.append(_allow(direction, comment, nets, dst_ports=targets))
                else:
                    targets = self.egress_targets(pol, i, pm, nets)
                    if targets:
                        out.append(_allow(direction, comment, None, dst_ports=targets))
        return tuple(out)

    def pod_boxes(self, pod: Pod, direction: str, pols: list[Policy]) -> tuple[Box, ...]:
        """Everything `pols` allow `pod` in `direction`, as disjoint boxes (boxes.py)."""
        boxes: list[Box] = []
        for pol in pols:
            for i, rule in enumerate(pol.rules(direction)):
                nets = self.peer_nets(pol, direction, i, rule)
                ranges = _ranges(nets)
                if not rule.ports:
                    boxes += [Box(lo, hi, ANY) for lo, hi in ranges]
                    continue
                for pm in rule.ports:
                    proto = PROTO_NUMBERS.get(pm.protocol)
                    if proto is None:
                        continue
                    if pm.port is None:
                        boxes += [Box(lo, hi, proto) for lo, hi in ranges]
                    elif isinstance(pm.port, int):
                        end = pm.end_port if pm.end_port is not None else pm.port
                        boxes += [Box(lo, hi, proto, pm.port, end) for lo, hi in ranges]
                    elif direction == INGRESS:
                        number = pod.named_port(pm.port, pm.protocol)
                        if number is not None:
                            boxes += [Box(lo, hi, proto, number, number) for lo, hi in ranges]
                    else:
                        for ip, _, number in self.egress_targets(pol, i, pm, nets):
                            a = int(ipaddress.IPv4Address(ip))
                            boxes.append(Box(a, a, proto, number, number))
        return disjoint(boxes)


def _pod_chain(pod: Pod, direction: str, pols: list[Policy], allow_set: str,
               boxes: tuple[Box, ...]) -> tuple[NftRule, ...]:
    me = (_host(pod.ip),)
    rules = [NftRule("accept", f"{pod.key} may always reach itself", saddr=me if direction == INGRESS else None,
                     daddr=me if direction == EGRESS else None)]
    if boxes:
        rules.append(NftRule("accept", f"{pod.key} {_DIR[direction]}: allowed by a policy (the chains below say which)",
                             lookup=allow_set, lookup_addr="saddr" if direction == INGRESS else "daddr", boxes=boxes))
    rules += [NftRule(f"jump {chain_name('policy', direction, pol.key)}") for pol in pols]
    names = ", ".join(p.key for p in pols)
    rules.append(NftRule("drop", f"{pod.key} {_DIR[direction]}: isolated by {names}; no rule allows", counter=True))
    return tuple(rules)


def render(cluster: Cluster, node: str, allow_set_from: int = ALLOW_SET_FROM) -> Ruleset:
    """The ruleset of `node`: chains for its isolated pods and the policies that isolate them.
    Pods on other nodes and policies selecting none of this node's pods cost nothing here.
    A pod that `allow_set_from` or more policies isolate gets an allow set in front of them."""
    rs = Ruleset()
    r = _Renderer(cluster)
    local = [p for p in cluster.pods if p.node == node]
    isolated: set[str] = set()
    for direction in (EGRESS, INGRESS):
        users: dict[str, tuple[Policy, list[Pod]]] = {}
        for pod in sorted(local, key=lambda p: p.key):
            pols = cluster.selecting(pod, direction)
            if not pols:
                continue
            chain = chain_name("pod", direction, pod.key)
            allow_set = chain_name("allow", direction, pod.key)
            boxes = r.pod_boxes(pod, direction, pols) if len(pols) >= allow_set_from else ()
            if boxes:
                rs.sets[allow_set] = boxes
            rs.chains[chain] = _pod_chain(pod, direction, pols, allow_set, boxes)
            rs.pods[direction][pod.ip] = chain
            isolated.add(pod.ip)
            for pol in pols:
                users.setdefault(pol.key, (pol, []))[1].append(pod)
        for key in sorted(users):
            pol, pods = users[key]
            rs.chains[chain_name("policy", direction, key)] = r.policy_chain(pol, direction, pods)
    rs.isolated = frozenset(isolated)
    return rs


# ---------------------------------------------------------------- nft text

def _skeleton() -> list[str]:
    lines = [f"add set {_T} {ISOLATED_SET} {{ type ipv4_addr ; comment {_quote('local pods some policy isolates')} ; }}"]
    for direction in (EGRESS, INGRESS):
        lines.append(f"add map {_T} {POD_MAPS[direction]} {{ type ipv4_addr : verdict ; "
                     f"comment {_quote('local pods isolated for ' + _DIR[direction])} ; }}")
    return lines


def _base_chains() -> list[str]:
    lines = []
    for name, hook, prio, direction in BASE_CHAINS:
        lines.append(f"add chain {_T} {name} {{ type filter hook {hook} priority {prio} ; policy accept ; }}")
        lines.append(f"add rule {_T} {name} ct state established,related accept")
        if name == "ingress":
            for a in ("saddr", "daddr"):
                lines.append(f"add rule {_T} {name} meta l4proto tcp ip {a} @{ISOLATED_SET} "
                             f"tcp flags & (syn | ack) != syn counter drop comment {_quote(MIDSTREAM_COMMENT)}")
        key = "daddr" if direction == INGRESS else "saddr"
        lines.append(f"add rule {_T} {name} ip {key} vmap @{POD_MAPS[direction]}")
    return lines


def _elements(name: str, items: Iterable[str], chunk: int = 1000) -> list[str]:
    items = list(items)
    return [f"add element {_T} {name} {{ {', '.join(items[i:i + chunk])} }}" for i in range(0, len(items), chunk)]


def _ip_range(lo: int, hi: int) -> str:
    a, b = ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)
    if lo == hi:
        return str(a)
    nets = list(ipaddress.summarize_address_range(a, b))
    return str(nets[0]) if len(nets) == 1 else f"{a}-{b}"


def _box_text(b: Box) -> str:
    if b.proto == ANY:
        return f"{_ip_range(b.addr_lo, b.addr_hi)} . 0-255 . 0-65535"
    ports = str(b.port_lo) if b.port_lo == b.port_hi else f"{b.port_lo}-{b.port_hi}"
    return f"{_ip_range(b.addr_lo, b.addr_hi)} . {PROTO_NAMES[b.proto]} . {ports}"


def _set_lines(name: str, boxes: tuple[Box, ...]) -> list[str]:
    return _elements(name, (_box_text(b) for b in boxes))


def _add_set(name: str) -> str:
    return (f"add set {_T} {name} {{ type ipv4_addr . inet_proto . inet_service ; flags interval ; "
            f"comment {_quote('what the policies of ' + name.split('-', 2)[2] + ' allow')} ; }}")


def _map_lines(rs: Ruleset) -> list[str]:
    lines = _elements(ISOLATED_SET, sorted(rs.isolated, key=ipaddress.IPv4Address))
    for direction in (EGRESS, INGRESS):
        items = sorted(rs.pods[direction].items(), key=lambda kv: ipaddress.IPv4Address(kv[0]))
        lines += _elements(POD_MAPS[direction], (f"{ip} : jump {chain}" for ip, chain in items))
    return lines


def _chain_lines(name: str, rules: tuple[NftRule, ...]) -> list[str]:
    return [f"add rule {_T} {name} {r.text()}" for r in rules]


def transaction(new: Ruleset, old: Ruleset | None) -> str:
    """`nft -f` input turning the table from `old` (None: unknown, start afresh) into `new`."""
    lines: list[str]
    if old is None:
        lines = [f"add table {_T} {{ comment {_quote(TABLE_COMMENT)} ; }}", f"delete table {_T}",
                 f"add table {_T} {{ comment {_quote(TABLE_COMMENT)} ; }}"]
        lines += _skeleton()
        for name, boxes in new.sets.items():
            lines += [_add_set(name)] + _set_lines(name, boxes)
        lines += [f"add chain {_T} {name}" for name in new.chains]
        for name, rules in new.chains.items():
            lines += _chain_lines(name, rules)
        lines += _map_lines(new)
        lines += _base_chains()
        return "\n".join(lines) + "\n"
    lines = []
    for name, boxes in new.sets.items():
        if name not in old.sets:
            lines += [_add_set(name)] + _set_lines(name, boxes)
        elif old.sets[name] != boxes:
            lines += [f"flush set {_T} {name}"] + _set_lines(name, boxes)
    lines += [f"add chain {_T} {name}" for name in new.chains if name not in old.chains]
    for name, rules in new.chains.items():
        if old.chains.get(name) != rules:
            if name in old.chains:
                lines.append(f"flush chain {_T} {name}")
            lines += _chain_lines(name, rules)
    if (new.isolated, new.pods) != (old.isolated, old.pods):
        lines += [f"flush set {_T} {ISOLATED_SET}"] + [f"flush map {_T} {POD_MAPS[d]}" for d in (EGRESS, INGRESS)]
        lines += _map_lines(new)
    stale = [name for name in old.chains if name not in new.chains]
    lines += [f"flush chain {_T} {name}" for name in stale]
    lines += [f"delete chain {_T} {name}" for name in stale]
    lines += [f"delete set {_T} {name}" for name in old.sets if name not in new.sets]
    return "\n".join(lines) + "\n" if lines else ""
