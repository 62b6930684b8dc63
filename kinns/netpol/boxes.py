"""Everything a pod's policies allow in one direction, as disjoint (address, protocol, port) boxes.

The per-policy chains (rules.py) say *which* policy allows what, but a new
connection to a pod that 1,000 policies select would walk 1,000 of them
(about 0.1 ms on this machine).  So each isolated pod also gets one
concatenated interval set, `ip saddr . meta l4proto . th dport` (`daddr`
for egress), holding the union of what all its policies allow: one lookup
accepts an allowed connection, and only connections about to be dropped
walk the chains (to the drop rule that counts them).

nftables refuses overlapping elements in such a set, so the union is cut
into disjoint boxes: sweep the address axis over every range's ends, keep
the set of boxes covering each elementary address interval, turn that set
into per-protocol merged port intervals (a rule without ports covers every
protocol and port: 0-255 . 0-65535), and merge neighbouring address
intervals that allow the same.  Pure; rules.py renders the result.
"""

from __future__ import annotations

import functools
from typing import Iterable, NamedTuple

PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
PROTO_NAMES = {v: k.lower() for k, v in PROTO_NUMBERS.items()}
ALL_ADDRESSES = (0, 2**32 - 1)
ALL_PORTS = (0, 65535)
ANY = -1                         # "every protocol" (and then every port)


class Box(NamedTuple):
    """Addresses lo..hi (as integers), a protocol number (or ANY), ports lo..hi."""

    addr_lo: int
    addr_hi: int
    proto: int
    port_lo: int = 0
    port_hi: int = 65535

    def contains(self, addr: int, proto: int, port: int) -> bool:
        if not self.addr_lo <= addr <= self.addr_hi:
            return False
        return self.proto == ANY or (self.proto == proto and self.port_lo <= port <= self.port_hi)


def _merge(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


Signature = tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
Key = tuple[int, int, int]                      # (protocol, port lo, port hi) of a covering box


@functools.lru_cache(maxsize=65536)
def _signature(keys: frozenset[Key]) -> Signature:
    """What a set of covering boxes allows, per protocol: ((ANY, ...),) or ((proto, ports), ...)."""
    ports: dict[int, list[tuple[int, int]]] = {}
    for proto, lo, hi in keys:
        if proto == ANY:
            return ((ANY, (ALL_PORTS,)),)
        ports.setdefault(proto, []).append((lo, hi))
    return tuple((proto, _merge(iv)) for proto, iv in sorted(ports.items()))


def disjoint(boxes: Iterable[Box]) -> tuple[Box, ...]:
    """The union of `boxes` as disjoint boxes (sorted by address, then protocol and port)."""
    events: dict[int, list[tuple[int, Key]]] = {}
    for b in boxes:
        key = (b.proto, b.port_lo, b.port_hi)
        events.setdefault(b.addr_lo, []).append((1, key))
        events.setdefault(b.addr_hi + 1, []).append((-1, key))
    active: dict[Key, int] = {}                  # what covers the current address, with multiplicity
    runs: list[tuple[int, int, Signature]] = []  # address intervals with what they allow
    points = sorted(events)
    for i, at in enumerate(points):
        for delta, key in events[at]:
            active[key] = active.get(key, 0) + delta
            if not active[key]:
                del active[key]
        if not active or i + 1 == len(points):
            continue
        sig = _signature(frozenset(active))
        end = points[i + 1] - 1
        if runs and runs[-1][2] == sig and runs[-1][1] + 1 == at:
            runs[-1] = (runs[-1][0], end, sig)
        else:
            runs.append((at, end, sig))
    out: list[Box] = []
    for lo, hi, sig in runs:
        for proto, ports in sig:
            out += [Box(lo, hi, proto, plo, phi) for plo, phi in ports]
    return tuple(out)
