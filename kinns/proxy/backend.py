"""The seam between kube-proxy's sync loop and its modes.

A `Backend` takes the whole `ProxyState` plus the set of ServicePorts that
changed since the last successful sync (None means "full sync": rewrite
everything, which also repairs drift such as someone flushing the node's
tables) and makes the node's kernel match it.  Each mode lives in one
module that renders (pure) and applies (I/O) — `iptables.py`,
`nftables.py`, `userspace.py` — so the sync loop in `server.py` never
knows which mode it drives.

`run` is how appliers reach the kernel: they run the node's own tools
(`nft`, `iptables-restore`, `conntrack`) in the current network namespace
(kube-proxy lives in its node's namespace), or in `netns` when a test or
benchmark drives a namespace from outside.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Protocol

from .model import ProxyState, ServicePortName


class ApplyError(RuntimeError):
    """The kernel refused a ruleset; the message says which lines."""


@dataclass
class SyncResult:
    """What one sync did, for logs and metrics."""

    full: bool
    rules: int = 0               # rules written (iptables: nat+filter lines; nft: rule statements)
    services_written: int = 0    # ServicePorts whose chains were rewritten
    layout: str = ""             # rule layout, for modes that have several (nftables: "endpoint-chains"/"large-cluster")
    endpoints: int = 0           # endpoints in the state, when the layout depends on them


class Backend(Protocol):
    mode: str

    def sync(self, state: ProxyState, changed: frozenset[ServicePortName] | None) -> SyncResult:
        """Make the kernel match `state`; `changed=None` is a full sync."""
        ...

    def cleanup(self) -> None:
        """Remove everything this mode ever wrote (used when switching modes and at teardown)."""
        ...


def run(argv: list[str], *, input: str | None = None, netns: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a node tool, in `netns` (by `ip netns` name) when given."""
    cmd = (["ip", "netns", "exec", netns] if netns else []) + argv
    r = subprocess.run(cmd, input=input, text=True, capture_output=True)
    if check and r.returncode != 0:
        raise ApplyError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r
