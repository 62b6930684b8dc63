"""Existing connections a new policy denies: find them in conntrack and delete them.

The rules only look at a connection's first packet (`ct state
established,related accept` comes first), so a policy that starts to deny
a connection already open would not stop it.  Upstream leaves this to the
implementation; kube-network-policies' strict mode re-checks established
flows, and kinns does the same after every sync that changed the table:
list the node's conntrack table, trace each flow's first packet through
the new rules (`Ruleset.verdict`, the kernel's own walk) and delete the
entries that would now be dropped.  The next packet of such a connection
is NEW without SYN and is dropped (see rules.py), so the cut sticks.

Flows are judged after DNAT, as the rules see them: the destination is
the reply's source (a Service's backend pod), the port the reply's source
port.  Only flows from or to a pod this node isolates can change verdict.

`parse` and `plan` are pure (tested); `list_flows` runs the node's
`conntrack -L`; `delete` talks netlink (pyroute2) in the agent's own
namespace, its node's: `conntrack -D` with a filter walks the whole table
for every call, which a cut of hundreds of flows cannot afford.  With
`netns` (a test or benchmark driving a namespace from outside) both run
the conntrack tool there.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Iterable

from .rules import Packet, Ruleset

PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}
IPPROTO = {"TCP": 6, "UDP": 17, "SCTP": 132}
# TCP states in which a connection can still carry data.
_LIVE_TCP = {"SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK"}


@dataclass(frozen=True)
class Flow:
    """One conntrack entry: the original tuple and where DNAT sent it."""

    protocol: str          # "TCP", "UDP", "SCTP"
    src: str
    dst: str               # as the client addressed it (maybe a Service IP)
    sport: int
    dport: int
    backend: str           # the reply's source: the destination after DNAT
    backend_port: int
    state: str = ""

    @property
    def packet(self) -> Packet:
        return Packet(self.src, self.backend, self.protocol, self.backend_port)

    def delete_args(self) -> list[str]:
        return ["-p", self.protocol.lower(), "--orig-src", self.src, "--orig-dst", self.dst,
                "--orig-port-src", str(self.sport), "--orig-port-dst", str(self.dport)]


def parse(text: str) -> list[Flow]:
    """`conntrack -L` output (IPv4 TCP/UDP/SCTP entries; the rest is skipped)."""
    flows = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "ipv4":       # `-o extended` puts the family first
            words = words[2:]
        if not words or words[0] not in PROTOCOLS:
            continue
        state = words[3] if len(words) > 3 and "=" not in words[3] else ""
        seen: dict[str, list[str]] = {}
        for w in words:
            key, eq, value = w.partition("=")
            if eq and key in ("src", "dst", "sport", "dport"):
                seen.setdefault(key, []).append(value)
        try:
            (src, rsrc), (dst, _), (sport, rsport), (dport, _) = (seen[k][:2] for k in ("src", "dst", "sport", "dport"))
            flows.append(Flow(PROTOCOLS[words[0]], src, dst, int(sport), int(dport), rsrc, int(rsport), state))
        except (KeyError, ValueError):
            continue
    return flows


def plan(flows: Iterable[Flow], rules: Ruleset) -> list[Flow]:
    """The flows `rules` would not let start now."""
    out = []
    for f in flows:
        if f.protocol == "TCP" and f.state and f.state not in _LIVE_TCP:
            continue
        if f.src == f.backend or (f.src not in rules.isolated and f.backend not in rules.isolated):
            continue
        if not rules.verdict(f.packet)[0]:
            out.append(f)
    return out


def _run(argv: list[str], netns: str | None) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + argv
    return subprocess.run(cmd, text=True, capture_output=True)


def list_flows(netns: str | None = None) -> list[Flow]:
    r = _run(["conntrack", "-L"], netns)
    return parse(r.stdout) if r.returncode == 0 else []


def delete(flows: Iterable[Flow], netns: str | None = None) -> int:
    """Delete each flow's entry; how many were deleted (a vanished entry is not an error)."""
    if netns is None:
        return _delete_netlink(flows)
    return sum(_run(["conntrack", "-D", *f.delete_args()], netns).returncode == 0 for f in flows)


def _delete_netlink(flows: Iterable[Flow]) -> int:
    from pyroute2 import Conntrack
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple
    done = 0
    with Conntrack() as ct:
        for f in flows:
            orig = NFCTAttrTuple(saddr=f.src, daddr=f.dst, proto=IPPROTO[f.protocol], sport=f.sport, dport=f.dport)
            try:
                ct.entry("del", tuple_orig=orig)
                done += 1
            except NetlinkError:
                pass                       # gone already
    return done
