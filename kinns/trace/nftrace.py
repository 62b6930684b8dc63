"""The kernel side of a trace, as text: the probe-selecting table and `nft monitor trace` lines.

How only the probe is traced.  The probe leaves its socket with an unusual
DSCP (`PROBE_DSCP`), which forwarding, NAT and VXLAN leave alone.  Every node
of the cluster gets a table of its own, `inet kinns-trace`, whose chains hook
prerouting and output at priority -150: after conntrack (-200), before
kube-proxy (dstnat - 10 and later) and the NetworkPolicy table (filter).
There a connection's first packet with that DSCP gets a bit in its conntrack
mark (`CT_BIT`, which nothing else in kinns uses) and `meta nftrace set 1`;
the connection's first answer (SYN-ACK or RST for TCP, any UDP/ICMP reply or
ICMP error) is traced through the bit, as are outer VXLAN and IP-in-IP
packets whose inner header carries the probe's DSCP.  A late chain at
postrouting priority 500 holds one counting rule, so the trace also shows
each packet as it leaves (output device, addresses after SNAT).  Each
namespace needs the table: the kernel clears the trace bit when a packet
crosses into another namespace.

Division of labour: `table_script`/`delete_script` are the `nft -f` text;
`parse_line` turns one monitor line into an `Event`.  No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FAMILY = "inet"
TABLE = "kinns-trace"
PROBE_DSCP = 0x2D          # 45: no standard per-hop behaviour uses it
CT_BIT = 0x00100000
PRIORITY = -150            # conntrack is -200, kube-proxy's first chain dstnat - 10 = -110
TABLE_COMMENT = "kinns trace: marks and traces only the probe (DSCP 45); removed after each trace"
VXLAN_PORT = 8472
# Byte offsets of the inner DSCP from the outer network header: VXLAN = IP 20 + UDP 8 + VXLAN 8 +
# Ethernet 14 + 1; IP-in-IP = IP 20 + 1.  In bits, for nft's raw payload expression.
_VXLAN_INNER_TOS_BITS = (20 + 8 + 8 + 14 + 1) * 8
_IPIP_INNER_TOS_BITS = (20 + 1) * 8


def _selector_rules(chain: str) -> list[str]:
    t = f"{FAMILY} {TABLE}"
    mark = f"ct mark & {CT_BIT:#010x} == {CT_BIT:#010x}"
    return [
        f"add rule {t} {chain} udp dport {VXLAN_PORT} @nh,{_VXLAN_INNER_TOS_BITS},6 {PROBE_DSCP} "
        f"meta nftrace set 1 return",
        f"add rule {t} {chain} ip protocol 4 @nh,{_IPIP_INNER_TOS_BITS},6 {PROBE_DSCP} meta nftrace set 1 return",
        f"add rule {t} {chain} ip dscp {PROBE_DSCP} ct state new ct mark set ct mark | {CT_BIT:#010x} "
        f"meta nftrace set 1 return",
        f"add rule {t} {chain} ct direction reply {mark} tcp flags & (syn | rst) != 0 meta nftrace set 1 return",
        f"add rule {t} {chain} ct direction reply {mark} meta l4proto != tcp meta nftrace set 1",
    ]


def table_script() -> str:
    """`nft -f` text that (re)creates the trace table, replacing any leftover."""
    t = f"{FAMILY} {TABLE}"
    lines = [f'add table {t} {{ comment "{TABLE_COMMENT}" ; }}', f"delete table {t}",
             f'add table {t} {{ comment "{TABLE_COMMENT}" ; }}',
             f"add chain {t} probe-prerouting {{ type filter hook prerouting priority {PRIORITY} ; policy accept ; }}",
             f"add chain {t} probe-output {{ type filter hook output priority {PRIORITY} ; policy accept ; }}",
             f"add chain {t} probe-postrouting {{ type filter hook postrouting priority 500 ; policy accept ; }}"]
    lines += _selector_rules("probe-prerouting") + _selector_rules("probe-output")
    lines.append(f"add rule {t} probe-postrouting ct mark & {CT_BIT:#010x} == {CT_BIT:#010x} counter")
    return "\n".join(lines) + "\n"


def delete_script() -> str:
    """`nft -f` text that removes the table whether or not it exists."""
    t = f"{FAMILY} {TABLE}"
    return f"add table {t}\ndelete table {t}\n"


# ------------------------------------------------------------------ monitor lines

_LINE = re.compile(r"^trace id (?P<id>[0-9a-f]+) (?P<family>\S+) (?P<table>\S+) (?P<chain>\S+) "
                   r"(?P<kind>packet|rule|policy|verdict|unknown)\b:? ?(?P<rest>.*)$")
_VERDICT = re.compile(r"^(?P<rule>.*) \(verdict (?P<verdict>[^)]*)\)\s*$")
# packet: fields we read; nft prints `key value` pairs, names quoted
_FIELDS = {
    "iif": re.compile(r'\biif "([^"]+)"'),
    "oif": re.compile(r'\boif "([^"]+)"'),
    "saddr": re.compile(r"\bip saddr (\S+)"),
    "daddr": re.compile(r"\bip daddr (\S+)"),
    "dscp": re.compile(r"\bip dscp (\S+)"),
    "id": re.compile(r"\bip id (\d+)"),
    "protocol": re.compile(r"\bip protocol (\S+)"),
    "sport": re.compile(r"\b(?:tcp|udp|sctp) sport (\d+)"),
    "dport": re.compile(r"\b(?:tcp|udp|sctp) dport (\d+)"),
    "flags": re.compile(r"\btcp flags == (\S+)"),
    "icmp": re.compile(r"\bicmp type (\S+)"),
}
_L4 = re.compile(r"\b(tcp|udp|sctp|icmp) ")


@dataclass
class Event:
    """One line of `nft monitor trace`, with the packet its trace id last showed."""

    trace_id: str
    table: str                  # "ip kube-proxy", "inet kinns-network-policies", ...
    chain: str
    kind: str                   # packet | rule | policy
    rule: str = ""              # the rule's text as nft lists it
    verdict: str = ""           # accept, drop, continue, jump X, goto X, return
    packet: dict[str, str] = field(default_factory=dict)
    kind_of_packet: str = ""    # probe | reply | encap, from the trace table's rule that selected it

    @property
    def probe(self) -> bool:
        """The probe's own direction, not the answer (which may echo its DSCP: a RST does)."""
        return self.kind_of_packet == "probe"

    @property
    def encap(self) -> bool:
        """An outer tunnel packet (VXLAN or IP-in-IP) carrying the probe."""
        return self.kind_of_packet == "encap"


def selected_as(rule: str) -> str:
    """Which of the trace table's selector rules this is: what kind of packet it picked."""
    if "ct direction reply" in rule:
        return "reply"
    if "ct state new" in rule:
        return "probe"
    if f"dport {VXLAN_PORT}" in rule or "ipencap" in rule or "ip protocol 4" in rule:
        return "encap"
    return ""


def _guess(packet: dict[str, str]) -> str:
    """The kind from the packet alone, when the selecting rule was not seen (monitor without its text)."""
    if (packet.get("protocol") == "udp" and packet.get("dport") == str(VXLAN_PORT)) or \
            packet.get("protocol") in ("ipencap", "ipip", "4"):
        return "encap"
    return "probe" if packet.get("dscp") == f"{PROBE_DSCP:#x}" else "reply"


def packet_fields(text: str) -> dict[str, str]:
    out = {k: m.group(1) for k, rx in _FIELDS.items() if (m := rx.search(text))}
    if "protocol" not in out and (m := _L4.search(text)):
        out["protocol"] = m.group(1)   # nft leaves `ip protocol` out where the chain already matched it
    return out


class Parser:
    """Turns one namespace's monitor lines into Events; remembers each trace id's packet.

    A packet's kind comes from the trace table's rule that selected it; the
    kernel may give the same packet a new trace id later in its path (after
    NAT), so kinds are also remembered by IP id, which stays with a packet.
    """

    def __init__(self) -> None:
        self._packets: dict[str, dict[str, str]] = {}
        self._kinds: dict[str, str] = {}        # trace id -> kind
        self._by_ipid: dict[str, str] = {}      # IP id -> kind
        self._last: dict[str, Event] = {}       # trace id -> its latest packet line

    def _kind(self, tid: str) -> str:
        if tid in self._kinds:
            return self._kinds[tid]
        packet = self._packets.get(tid, {})
        return self._by_ipid.get(packet.get("id", ""), "") or _guess(packet)

    def feed(self, line: str) -> Event | None:
        m = _LINE.match(line.rstrip("\n"))
        if m is None:
            return None
        tid, rest, kind = m["id"], m["rest"], m["kind"]
        table = f"{m['family']} {m['table']}"
        if kind == "packet":
            self._packets[tid] = packet_fields(rest)
            ev = Event(tid, table, m["chain"], "packet", packet=self._packets[tid], kind_of_packet=self._kind(tid))
            self._last[tid] = ev
            return ev
        packet = self._packets.get(tid, {})
        if kind == "rule":
            v = _VERDICT.match(rest)
            rule, verdict = (v["rule"], v["verdict"]) if v else (rest, "")
            if table == f"{FAMILY} {TABLE}" and (sel := selected_as(rule)):
                self._kinds[tid] = sel
                if tid in self._last:            # the packet line came first: it is this kind too
                    self._last[tid].kind_of_packet = sel
                if packet.get("id"):
                    self._by_ipid[packet["id"]] = sel
            return Event(tid, table, m["chain"], "rule", rule.strip(), verdict.strip(), packet, self._kind(tid))
        if kind == "policy":
            return Event(tid, table, m["chain"], "policy", verdict=rest.strip(), packet=packet,
                         kind_of_packet=self._kind(tid))
        return None
