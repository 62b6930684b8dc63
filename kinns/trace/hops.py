"""From the kernel's trace events to hops a person reads (and the contract's JSON).

Input: per node, the `nftrace.Event`s its monitor printed, in order; the
probe's outcome; a few netlink facts (the pods' veth names).  Each node's
events are split into the probe's packet (its DSCP), the outer tunnel
packet that carried it, and the answer; retransmissions are left out (only
the first IP id of each is kept).  Then each event that decided something
becomes a hop: the interface it came in on (bridge, tunnel, fabric), the
kube-proxy rule that chose a Service and the endpoint it DNATed to (nft:
chains `service-…`/`endpoint-…`; iptables: KUBE-SVC-…/KUBE-SEP-…; userspace:
the REDIRECT to its listener), masquerade, the NetworkPolicy rule that let
it through or dropped it (its comment names the policy), the device the
routing decision chose, the encapsulation, the delivery to the pod and the
answer on its way back.  A drop verdict or an answer that refuses ends the
path with `stopped`.  Pure: no I/O, so the rules for reading a trace are
unit-tested against recorded monitor output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .nftrace import TABLE as TRACE_TABLE, Event

Hop = dict[str, Any]

_TUNNELS = {"flannel.1": "VXLAN", "tunl0": "IP-in-IP"}
_NETPOL = "inet kinns-network-policies"
_KUBE_PROXY_NFT = "ip kube-proxy"
_SVC_CHAIN = re.compile(r"^(?:service|external)-[A-Z0-9]+-(?P<ns>[^/]+)/(?P<name>[^/]+)/(?P<proto>[^/]+)/(?P<port>.*)$")
_EP_CHAIN = re.compile(r"__(?P<ip>[\d.]+)/(?P<port>\d+)$")
_DNAT = re.compile(r"\bdnat to (?P<ip>[\d.]+):(?P<port>\d+)")
_XT_DNAT = re.compile(r"--to-destination (?P<ip>[\d.]+):(?P<port>\d+)")
_COMMENT = re.compile(r'comment "(?P<c>[^"]*)"')
_REDIRECT = re.compile(r"\bredirect to :?(?P<port>\d+)|--to-ports (?P<port2>\d+)")
_POLICY_RULE = re.compile(r"^(?P<policy>[^/ ]+/[^ ]+) (?:ingress|egress)\[\d+\]$")


@dataclass
class Context:
    """What the hop builder needs besides the events."""

    protocol: str
    address: str                                  # the address the probe was sent to
    port: int
    entry_node: str | None                        # the source's own node, if it has one
    pod_names: dict[str, tuple[str, str]] = field(default_factory=dict)   # pod IP -> (namespace, name)
    node_ips: dict[str, str] = field(default_factory=dict)                # node IP -> node name
    veths: dict[str, str] = field(default_factory=dict)                   # node-side veth -> "ns/pod"
    source_label: str = ""


@dataclass
class Flow:
    """One node's events, split by packet."""

    node: str
    probe: list[Event]
    encap: list[Event]
    reply: list[Event]


def _first_packet(events: list[Event]) -> list[Event]:
    """The events of the first packet (by IP id): retransmissions are left out."""
    first = next((e.packet.get("id") for e in events if e.packet.get("id")), None)
    return [e for e in events if e.packet.get("id") == first] if first is not None else events


def split(node: str, events: list[Event]) -> Flow:
    probe: list[Event] = []
    encap: list[Event] = []
    reply: list[Event] = []
    for e in events:
        (encap if e.encap else probe if e.probe else reply).append(e)
    return Flow(node, _first_packet(probe), _first_packet(encap), _first_packet(reply))


def order(flows: list[Flow], ctx: Context) -> list[Flow]:
    """Nodes in the order the probe crossed them: the source's node (or the one it was
    addressed to), then the rest in the order they reported."""
    seen = [f for f in flows if f.probe or f.reply or f.encap]

    def entry(f: Flow) -> bool:
        if ctx.entry_node is not None:
            return f.node == ctx.entry_node
        return any(e.packet.get("daddr") == ctx.address and e.packet.get("iif") not in _TUNNELS for e in f.probe)
    first = [f for f in seen if entry(f)][:1]
    return first + [f for f in seen if f not in first]


def _iface_text(ifname: str, ctx: Context) -> str:
    if ifname in ctx.veths:
        return f"{ifname} (pod {ctx.veths[ifname]})"
    return ifname


def _who(ip: str, ctx: Context) -> str:
    if ip in ctx.pod_names:
        return f"pod {ctx.pod_names[ip][1]} ({ip})"
    if ip in ctx.node_ips:
        return f"node {ctx.node_ips[ip]} ({ip})"
    return ip


def _hop(step: str, node: str | None, summary: str, **detail: Any) -> Hop:
    return {"step": step, "node": node, "summary": summary, "detail": {k: v for k, v in detail.items() if v}}


def _service_of(chain: str) -> dict[str, str] | None:
    m = _SVC_CHAIN.match(chain)
    return m.groupdict() if m else None


class _Builder:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.hops: list[Hop] = []
        self.stopped: dict[str, Any] | None = None
        self.endpoint: dict[str, Any] | None = None

    # -------------------------------------------------------------- the probe's way
    def forward(self, flow: Flow, index: int) -> None:
        node, events = flow.node, flow.probe
        if not events and not flow.encap:
            return
        first = next((e for e in events if e.kind == "packet"), None)
        if first is not None:
            self._arrival(node, first, index)
        policies: list[str] = []
        svc_done = False
        routed = False
        for i, e in enumerate(events):
            if self.stopped is not None:
                return
            if e.kind == "rule":
                target = e.verdict.split(" ", 1)[1] if " " in e.verdict else ""
                if e.table == _NETPOL:
                    self._netpol(node, e, target, policies)
                    continue
                if e.table.startswith("ip ") and e.table != f"inet {TRACE_TABLE}":
                    svc = _service_of(target) or _iptables_service(e)
                    if svc is not None and not svc_done:
                        svc_done = True
                        self.hops.append(_hop("service", node,
                                              f"{e.chain}: matched Service {svc['ns']}/{svc['name']}"
                                              + (f" port {svc['port']}" if svc.get("port") else ""),
                                              table=e.table, chain=e.chain, rule=e.rule, verdict=e.verdict))
                    self._nat(node, e, events[i + 1:])
                    if e.verdict == "drop":
                        self._rejected(node, e, events[:i])
            elif e.kind == "policy" and e.verdict == "drop":
                self.stopped = {"step": "stop", "reason": "dropped", "policy": None,
                                "rule": f"{e.table} {e.chain} policy drop"}
                self.hops.append(_hop("stop", node, f"dropped by the default policy of {e.table} {e.chain}"))
                return
            if not routed and e.packet.get("oif") and e.kind == "packet":
                routed = True
                self._route(node, e)
        if self.stopped is not None:
            return
        for e in flow.encap[:1]:
            p = e.packet
            if p.get("iif"):        # the receiving end: the decapsulated packet's hop says it
                continue
            kind = "VXLAN" if p.get("protocol") == "udp" else "IP-in-IP"
            self.hops.append(_hop("encap", node, f"{kind} from {_who(p.get('saddr', ''), self.ctx)} to "
                                  f"{_who(p.get('daddr', ''), self.ctx)}"
                                  + (f" udp/{p.get('dport')}" if kind == "VXLAN" else ""),
                                  outer_src=p.get("saddr"), outer_dst=p.get("daddr"), oif=p.get("oif"),
                                  encapsulation=kind))
        last = next((e for e in reversed(events) if e.kind == "packet"), None)
        if last is not None:
            self._delivered(node, last, events)

    def _arrival(self, node: str, e: Event, index: int) -> None:
        p = e.packet
        iif = p.get("iif")
        src = f"{p.get('saddr')}:{p.get('sport')}" if p.get("sport") else p.get("saddr", "")
        if iif is None:
            self.hops.append(_hop("route", node, f"sent by the node itself from {src} (out {p.get('oif')})",
                                  oif=p.get("oif"), saddr=p.get("saddr"), daddr=p.get("daddr")))
        elif iif in _TUNNELS:
            self.hops.append(_hop("encap", node, f"in on {iif}: {_TUNNELS[iif]} decapsulated, inner "
                                  f"{p.get('saddr')} → {p.get('daddr')}", iif=iif, encapsulation=_TUNNELS[iif]))
        elif iif == "cni0" or iif.startswith("veth"):
            self.hops.append(_hop("bridge", node, f"in on {iif} from {_who(p.get('saddr', ''), self.ctx)}",
                                  iif=iif, saddr=p.get("saddr"), daddr=p.get("daddr"), dport=p.get("dport")))
        else:
            via = "from the fabric" if index == 0 else "directly from the previous node (host-gw)"
            self.hops.append(_hop("route", node, f"in on {iif} {via}: {src} → {p.get('daddr')}"
                                  + (f":{p.get('dport')}" if p.get("dport") else ""),
                                  iif=iif, saddr=p.get("saddr"), daddr=p.get("daddr"), dport=p.get("dport")))

    def _netpol(self, node: str, e: Event, target: str, policies: list[str]) -> None:
        if target.startswith("policy-"):
            policies.append(target.split("-", 2)[2])
            return
        comment = (_COMMENT.search(e.rule) or {"c": ""})["c"] if _COMMENT.search(e.rule) else ""
        m = _POLICY_RULE.match(comment)
        if e.verdict == "accept" and m:
            self.hops.append(_hop("policy", node, f"allowed by NetworkPolicy {m['policy']} ({comment})",
                                  policy=m["policy"], chain=e.chain, rule=e.rule))
        elif e.verdict == "drop":
            pol = policies[0] if policies else None
            names = ", ".join(policies) if policies else "none"
            self.stopped = {"step": "policy", "reason": "dropped by policy", "policy": pol, "rule": e.rule}
            self.hops.append(_hop("policy", node, f"dropped by NetworkPolicy {pol or '(isolation)'}: "
                                  f"no rule of {names} allows it", policies=policies, chain=e.chain,
                                  rule=e.rule, comment=comment))

    def _nat(self, node: str, e: Event, after: list[Event]) -> None:
        m = _DNAT.search(e.rule) or _XT_DNAT.search(e.rule)
        if m is None and e.chain.startswith("KUBE-SEP-") and "DNAT" in e.rule.upper():
            m = None   # an untranslated xt target: the address comes from the next packet line
            nxt = next((x for x in after if x.kind == "packet"), None)
            if nxt is not None:
                self._endpoint(node, nxt.packet.get("daddr", ""), int(nxt.packet.get("dport") or 0), e)
            return
        if m is not None:
            self._endpoint(node, m["ip"], int(m["port"]), e)
            return
        r = _REDIRECT.search(e.rule)
        if r is not None:
            port = r["port"] or r["port2"]
            c = _COMMENT.search(e.rule)
            if c is not None:
                self.hops.append(_hop("service", node, f"{e.chain}: matched Service {c['c']}", table=e.table,
                                      chain=e.chain, rule=e.rule))
            self.hops.append(_hop("nat", node, f"REDIRECT to port {port} on the node: kube-proxy (userspace) "
                                  "takes the connection and opens its own to an endpoint",
                                  chain=e.chain, rule=e.rule, table=e.table))
            return
        if "masquerade" in e.rule.lower() and e.verdict not in ("return",) and "MARK" not in e.rule.upper():
            nxt = next((x for x in after if x.kind == "packet" and x.packet.get("saddr")), None)
            self.hops.append(_hop("masquerade", node, "masquerade: source address becomes the node's "
                                  "(the endpoint's answer comes back here to be un-NATed)",
                                  chain=e.chain, rule=e.rule, saddr_after=nxt.packet.get("saddr") if nxt else None))

    def _endpoint(self, node: str, ip: str, port: int, e: Event) -> None:
        pod = self.ctx.pod_names.get(ip)
        self.endpoint = {"pod": pod[1] if pod else None, "namespace": pod[0] if pod else None, "ip": ip,
                         "port": port}
        who = f"pod {pod[1]} " if pod else ""
        self.hops.append(_hop("nat", node, f"{e.chain}: DNAT to {who}{ip}:{port}", table=e.table,
                              chain=e.chain, rule=e.rule))

    def _rejected(self, node: str, e: Event, before: list[Event]) -> None:
        chosen = next((b for b in reversed(before) if b.kind == "rule" and b.verdict.endswith(e.chain)), None)
        text = " ".join([e.rule, (chosen.rule if chosen else "")]).lower()
        if "no endpoints" in text or "no-endpoint" in text or e.chain == "reject-chain" or \
                (chosen is not None and "endpoints-check" in chosen.chain):
            reason = "no endpoints"
        elif "cluster-ips" in e.chain or "invalid ports" in text:
            reason = "no such port on the ClusterIP"
        else:
            reason = "rejected by kube-proxy"
        rule = f"{chosen.chain}: {chosen.rule} → {e.chain}: {e.rule}" if chosen else f"{e.chain}: {e.rule}"
        self.stopped = {"step": "service", "reason": reason, "policy": None, "rule": rule}
        self.hops.append(_hop("stop", node, f"{reason}: {e.table} {e.chain} answered with a reject",
                              table=e.table, chain=e.chain, rule=e.rule,
                              matched=chosen.rule if chosen else None))

    def _route(self, node: str, e: Event) -> None:
        p = e.packet
        oif = p.get("oif", "")
        dst = p.get("daddr", "")
        how = {"flannel.1": "over VXLAN", "tunl0": "over IP-in-IP", "eth0": "on the fabric",
               "cni0": "to a local pod on the bridge"}.get(oif, "")
        if oif == "eth0" and dst in self.ctx.pod_names:
            how = "on the fabric, to the pod's node directly (host-gw: no encapsulation)"
        self.hops.append(_hop("route", node, f"routing: {dst} out {_iface_text(oif, self.ctx)} {how}".rstrip(),
                              oif=oif, iif=p.get("iif"), daddr=dst))

    def _delivered(self, node: str, last: Event, events: list[Event]) -> None:
        p = last.packet
        oif, dst = p.get("oif"), p.get("daddr", "")
        if oif == "cni0" or (oif or "").startswith("veth"):
            pod = self.ctx.pod_names.get(dst)
            veth = next((v for v, k in self.ctx.veths.items() if pod and k == f"{pod[0]}/{pod[1]}"), None)
            port = f":{p.get('dport')}" if p.get("dport") else ""
            self.hops.append(_hop("arrive", node, f"delivered to {_who(dst, self.ctx)}{port} via {oif}"
                                  + (f" → {veth}" if veth else ""), oif=oif, veth=veth, daddr=dst,
                                  dport=p.get("dport"), saddr=p.get("saddr")))
        elif oif is None and any(x.chain in ("filter-input", "egress-to-node", "INPUT", "KUBE-FIREWALL")
                                 or x.chain.endswith("input") for x in events):
            port = f":{p.get('dport')}" if p.get("dport") else ""
            self.hops.append(_hop("arrive", node, f"delivered to the node itself ({dst}{port})",
                                  daddr=dst, dport=p.get("dport")))

    # -------------------------------------------------------------- the answer
    def reply(self, flows: list[Flow]) -> None:
        back = [f for f in reversed(flows) if f.reply]
        for f in back:
            pkts = [e for e in f.reply if e.kind == "packet"]
            if not pkts:
                continue
            a, z = pkts[0].packet, pkts[-1].packet
            what = _answer_kind(a)
            via = f"in on {a.get('iif')}" if a.get("iif") else "sent by the node"
            out = f", out {z.get('oif')}" if z.get("oif") else ""
            src = f"{z.get('saddr')}:{z.get('sport')}" if z.get("sport") else z.get("saddr", "")
            self.hops.append(_hop("reply", f.node, f"{what} {via}{out} from {src} to {z.get('daddr')}",
                                  kind=what, iif=a.get("iif"), oif=z.get("oif"), saddr=z.get("saddr"),
                                  sport=z.get("sport"), daddr=z.get("daddr"), dport=z.get("dport"),
                                  flags=a.get("flags")))


def _iptables_service(e: Event) -> dict[str, str] | None:
    """iptables mode: the KUBE-SERVICES/KUBE-NODEPORTS rule that jumps to KUBE-SVC-/KUBE-EXT-, by its comment."""
    target = e.verdict.split(" ", 1)[1] if " " in e.verdict else ""
    if not target.startswith(("KUBE-SVC-", "KUBE-EXT-", "KUBE-SVL-")):
        return None
    c = _COMMENT.search(e.rule)
    text = c["c"] if c else target
    name = text.split(" ", 1)[0]
    ns, _, rest = name.partition("/")
    svc, _, port = rest.partition(":")
    return {"ns": ns or "?", "name": svc or target, "proto": "", "port": port}


def _answer_kind(p: dict[str, str]) -> str:
    flags = p.get("flags", "")
    if p.get("protocol") == "tcp" or flags:
        if "rst" in flags or flags in ("0x14", "0x04"):
            return "TCP RST"
        if flags in ("0x12", "syn,ack", "syn|ack"):
            return "SYN-ACK"
        return f"TCP {flags}".strip()
    if p.get("icmp") or p.get("protocol") == "icmp":
        t = p.get("icmp", "")
        return f"ICMP {t}".strip()
    return p.get("protocol", "").upper() + " reply"


def build(flows: list[Flow], ctx: Context) -> tuple[list[Hop], dict[str, Any] | None, dict[str, Any] | None]:
    """Hops, `stopped` and `endpoint` from the nodes' flows (not yet ordered)."""
    b = _Builder(ctx)
    ordered = order(flows, ctx)
    for i, f in enumerate(ordered):
        b.forward(f, i)
        if b.stopped is not None:
            break
    b.reply(ordered)
    return b.hops, b.stopped, b.endpoint


def answer_stop(result: str, hops: list[Hop], ctx: Context) -> dict[str, Any] | None:
    """`stopped` when the kernel rules let the probe through but the answer was a refusal or nothing."""
    last_node = next((h["node"] for h in reversed(hops) if h.get("node")), None)
    if result == "refused":
        rst = next((h for h in hops if h["step"] == "reply" and "RST" in h["summary"]), None)
        arrived = any(h["step"] == "arrive" for h in hops)
        if ctx.protocol == "udp":
            return {"step": "arrive", "reason": "nothing listening", "policy": None,
                    "rule": "ICMP port unreachable from the destination"}
        if rst is not None or arrived:
            return {"step": "arrive", "reason": "nothing listening", "policy": None,
                    "rule": f"TCP RST from {rst['detail'].get('saddr', ctx.address)}:{rst['detail'].get('sport', ctx.port)}"
                    if rst is not None else f"TCP RST for {ctx.address}:{ctx.port}"}
        return {"step": "stop", "reason": "rejected", "policy": None, "rule": None}
    if result == "unreachable":
        return {"step": "route", "reason": "no route", "policy": None, "rule": None}
    if result in ("timeout", "error"):
        where = f" (last seen on {last_node})" if last_node else ""
        return {"step": "stop", "reason": f"no answer{where}", "policy": None, "rule": None}
    return None


_XT_TABLES = ("ip nat", "ip filter", "ip mangle", "ip raw")
_SAVED_COMMENT = re.compile(r'--comment (?:"(?P<q>[^"]*)"|(?P<w>\S+))')


def uses_iptables(events: list[Event]) -> bool:
    return any(e.table in _XT_TABLES for e in events)


def annotate_xt(events: list[Event], saved: str) -> None:
    """iptables mode: nft's trace leaves out `-m comment` (an xt match), so find each traced
    rule's line in `iptables-save` (same chain, target, address and port) and add its comment."""
    lines = saved.splitlines()
    for e in events:
        if e.kind != "rule" or e.table not in _XT_TABLES or "comment" in e.rule:
            continue
        target = e.verdict.split(" ", 1)[1] if " " in e.verdict else ""
        want = [f"-A {e.chain} "]
        if target:
            want.append(f"-j {target}")
        elif "reject" in e.rule:
            want.append("-j REJECT")
        elif "dnat to" in e.rule:
            want.append("-j DNAT")
        elif "masquerade" in e.rule:
            want.append("-j MASQUERADE")
        if (m := re.search(r"\bip daddr ([\d.]+)\b(?!/)", e.rule)):
            want.append(f"-d {m.group(1)}/32 ")
        if (m := re.search(r"\bdport (\d+)", e.rule)):
            want.append(f"--dport {m.group(1)} ")
        for ln in lines:
            if ln.startswith(want[0]) and all(w in ln + " " for w in want[1:]):
                c = _SAVED_COMMENT.search(ln)
                if c:
                    e.rule = f'{e.rule} comment "{c["q"] if c["q"] is not None else c["w"]}"'
                break


_CT_LINE = re.compile(r"^(?P<proto>\w+)\s+\d+\s+(?P<timeout>\d+)\s.*?src=(?P<src>[\d.]+) dst=(?P<dst>[\d.]+) "
                      r"sport=(?P<sport>\d+) dport=(?P<dport>\d+)")


def onward_connection(lines: list[str], ctx: Context, protocol: str,
                      src: str | None = None) -> tuple[str, int, str] | None:
    """A proxy's own connection onward to a pod, from a node's conntrack table.

    The probe ends at a proxy (userspace kube-proxy's listener on the node, or an
    ingress controller pod), which then dials a pod: a new connection without the
    probe's mark.  Of the connections from `src` (None: from an address that is not
    a pod, i.e. the node) to pods, the one with the most time left was opened last."""
    best: tuple[int, str, int, str] | None = None
    for ln in lines:
        m = _CT_LINE.match(ln)
        if m is None or m["proto"] != protocol or m["dst"] not in ctx.pod_names or m["dst"] == src:
            continue
        if (src is None and m["src"] in ctx.pod_names) or (src is not None and m["src"] != src):
            continue
        cand = (int(m["timeout"]), m["dst"], int(m["dport"]), ln)
        if best is None or cand[0] > best[0]:
            best = cand
    return (best[1], best[2], best[3]) if best else None
