"""Stale UDP conntrack entries: what kube-proxy deletes after a sync.

UDP has no connection to reset, so the kernel keeps sending a client's
datagrams wherever its conntrack entry says, even after that endpoint is
gone, or on to the REJECT that answered while a Service had no endpoints.
Upstream therefore deletes entries (a) that were DNATed to a UDP endpoint
that was removed, and (b) for a UDP Service that went from no endpoints to
some.  `plan` computes the `conntrack -D` argument lists (pure, tested);
`clear` runs them (a missing entry is not an error).
"""

from __future__ import annotations

from typing import Iterable

from .backend import run
from .model import ServicePort


def _service_ips(sp: ServicePort) -> list[str]:
    return [sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips]


def plan(pairs: Iterable[tuple[ServicePort | None, ServicePort | None]]) -> list[list[str]]:
    """`conntrack -D` arguments for each (before, after) change of a ServicePort."""
    out: list[list[str]] = []
    for old, new in pairs:
        sp = new or old
        if sp is None or sp.protocol != "UDP":
            continue
        old_eps = {(e.ip, e.port) for e in (old.endpoints if old else ()) if e.ready or e.serving}
        new_eps = {(e.ip, e.port) for e in (new.endpoints if new else ()) if e.ready or e.serving}
        for ip, _port in sorted(old_eps - new_eps):
            src = old or sp
            for vip in _service_ips(src):
                out.append(["-p", "udp", "--orig-dst", vip, "--dst-nat", ip])
            if src.node_port:
                out.append(["-p", "udp", "--dport", str(src.node_port), "--dst-nat", ip])
        if new is not None and new_eps and not old_eps:
            for vip in _service_ips(new):
                out.append(["-p", "udp", "--orig-dst", vip])
            if new.node_port:
                out.append(["-p", "udp", "--dport", str(new.node_port)])
    return out


def clear(commands: list[list[str]], netns: str | None = None) -> int:
    """Run each deletion; returns how many succeeded (conntrack exits 1 when nothing matched)."""
    done = 0
    for args in commands:
        r = run(["conntrack", "-D", *args], netns=netns, check=False)
        if r.returncode == 0:
            done += 1
    return done
