"""`kinns trace`: a real probe followed hop by hop through what the kernel did.

`run(cfg, source, dest, namespace=..., timeout=...)` returns the JSON object
described in /work/briefs/trace-contract.md (source, dest, protocol, ok,
resolved, endpoint, hops, stopped; plus probe, conntrack and seconds).
Modules: `targets` (what SOURCE/DEST name), `nftrace` (the trace table and
the monitor's lines), `kernel` (tables, monitors, conntrack in the nodes),
`probe` (the packet), `hops` (events to hops), `text` (for people),
`command` (the CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..cluster.config import ClusterConfig


def run(cfg: "ClusterConfig", source: str, dest: str, namespace: str = "default", timeout: float = 2.0,
        protocol: str | None = None) -> dict[str, Any]:
    """Trace one probe; see kinns.trace.tracer.run."""
    from .tracer import run as _run
    return _run(cfg, source, dest, namespace=namespace, timeout=timeout, protocol=protocol)
