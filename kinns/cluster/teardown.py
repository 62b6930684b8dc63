"""Remove everything a cluster created, found by name, with or without its daemon.

Order matters: processes first (they hold mounts and namespaces), then the
runtime's mounts and cgroups, then the network (namespaces, host link,
host route), then the state directory.  Each step is idempotent, so a
`kinns down` after a SIGKILLed daemon or a half-finished `up` just works.
"""

from __future__ import annotations

import shutil

from ..net import cleanup as net_cleanup
from ..node import runtime
from .config import ClusterConfig


def teardown(cfg: ClusterConfig) -> list[str]:
    removed = runtime.cleanup(cfg.state_dir / "runtime")
    removed += net_cleanup.teardown(cfg.name)
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    return removed
