"""Remove everything a cluster created, found by name, with or without its daemon.

Order matters: processes first (they hold mounts and namespaces): the
kubelets, then each node's runtime (its zygote, containers, mounts and
cgroups), then the network (namespaces, host link, host route), then the
state directory.  Each step is idempotent, so a `kinns down` after a
SIGKILLed daemon, a killed kubelet or a half-finished `up` just works.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from ..net import cleanup as net_cleanup
from ..node import runtime
from ..node.cgroups import Cgroups
from .config import ClusterConfig


def kill_node_process(pidfile: Path, needle: bytes = b"kinns.node", what: str = "kubelet", grace: float = 0.0) -> list[str]:
    """Stop the kubelet (or other node process whose cmdline holds `needle`) that
    `pidfile` names, if that process still is one: SIGKILL at once, or SIGTERM
    and SIGKILL after `grace` seconds (a daemon taking over lets a stale one
    finish; a power cut does not).  The pid check keeps a reused pid safe."""
    try:
        pid = int(pidfile.read_text())
        if needle not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return []
        os.kill(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    except (OSError, ValueError):
        return []
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    return [f"{what} {pid}"]


def kill_encapsulators(state_dir: Path) -> list[str]:
    """SIGKILL every user-space ipip encapsulator (overlay ipip without the kernel module)."""
    return [x for pidfile in sorted((state_dir / "ipip").glob("*/ipip.pid"))
            for x in kill_node_process(pidfile, b"ipip", "ipip encapsulator")]


def kill_kubelets(state_dir: Path) -> list[str]:
    """SIGKILL every kubelet process the cluster's pid files name."""
    return [x for pidfile in sorted((state_dir / "kubelet").glob("*/kubelet.pid")) for x in kill_node_process(pidfile)]


def runtime_dirs(state_dir: Path) -> list[Path]:
    """Each node's runtime state directory (and the single runtime of older clusters)."""
    top = state_dir / "runtime"
    return [p.parent for p in sorted(top.glob("*/runtime.json"))] + [top]


def stop_runtimes(state_dir: Path) -> list[str]:
    """Kill the kubelets, then every node's containers: what a power cut does, state kept."""
    removed = kill_kubelets(state_dir)
    for d in runtime_dirs(state_dir):
        removed += runtime.cleanup(d)
    return removed


def remove_cluster_cgroup(cfg: ClusterConfig) -> list[str]:
    """The cluster's cgroup `kinns/<name>`, parent of every node's (anything left in it is killed)."""
    cg = Cgroups(f"kinns/{cfg.name}")
    if not cg.dirs(""):
        return []
    cg.remove("")
    return [f"cgroup kinns/{cfg.name}"]


def teardown(cfg: ClusterConfig) -> list[str]:
    removed = stop_runtimes(cfg.state_dir)
    removed += kill_encapsulators(cfg.state_dir)
    removed += remove_cluster_cgroup(cfg)
    removed += net_cleanup.teardown(cfg.name)
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    return removed
