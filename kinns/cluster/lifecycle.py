"""A cluster's processes from the outside: start, stop, node failure, and what runs.

The cluster daemon plays systemd for every node (daemon.py); the kubelets
run everything else.  This module is what the CLI does around them:

- `start_daemon`: launch the daemon (for `kinns up`, `kinns start`);
- `stop_cluster`: `kinns stop`, a clean power-off that keeps the state:
  the daemon stops the kubelets, then every container, zygote and
  namespace goes; the store, certificates, checkpoints and address records
  stay, so `kinns start` brings every object back, and pods that are
  unchanged get their IPs back;
- `stop_node` / `start_node`: `kinns node stop|start`, a node whose machine
  died: its kubelet and containers are killed, its link to the fabric goes
  down (its addresses stop answering), and the daemon does not restart its
  kubelet until `start_node`;
- `components`: every component process with its node, PID and state, for
  `kinns status`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..net.fabric import Fabric
from ..net.desired import NODE_IF, NodeNet
from .config import ClusterConfig
from .manifests import manifest_dir

STATIC_COMPONENTS = {  # static pod manifest stem → the module (or binary) its container runs
    "etcd": "etcd",
    "kube-apiserver": "kinns.api",
    "kube-controller-manager": "kinns.controllers",
    "kube-scheduler": "kinns.controllers.scheduler_main",
}


class LifecycleError(Exception):
    pass


@dataclass
class Component:
    name: str
    node: str
    pid: int | None
    state: str          # running | stopped | not running (restarting) | node stopped


def daemon_pid(cfg: ClusterConfig) -> int | None:
    """The daemon's pid if it is alive."""
    try:
        pid = int((cfg.state_dir / "daemon.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"kinns.cluster.daemon" in cmdline else None


def start_daemon(cfg: ClusterConfig) -> subprocess.Popen[bytes]:
    """Launch the cluster daemon detached; its log is `<state>/daemon.log`."""
    (cfg.state_dir / "ready").unlink(missing_ok=True)
    with open(cfg.state_dir / "daemon.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kinns.cluster.daemon", cfg.name],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    return proc   # the daemon writes daemon.pid itself, once it holds the cluster's lock


def stop_daemon(cfg: ClusterConfig, timeout: float = 15.0) -> None:
    pid = daemon_pid(cfg)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon_pid(cfg) is not None:
        time.sleep(0.05)
    if daemon_pid(cfg) is not None:
        os.kill(pid, signal.SIGKILL)


def stop_cluster(cfg: ClusterConfig) -> list[str]:
    """`kinns stop`: every process and namespace goes, the state stays."""
    from ..net import cleanup as net_cleanup
    from .teardown import remove_cluster_cgroup, stop_runtimes
    stop_daemon(cfg)
    removed = stop_runtimes(cfg.state_dir)
    removed += remove_cluster_cgroup(cfg)
    removed += net_cleanup.teardown(cfg.name)
    (cfg.state_dir / "ready").unlink(missing_ok=True)
    return removed


def _nodes(cfg: ClusterConfig) -> list[NodeNet]:
    return Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)


def node_named(cfg: ClusterConfig, name: str) -> tuple[int, NodeNet]:
    nodes = _nodes(cfg)
    for i, n in enumerate(nodes):
        if n.name == name:
            return i, n
    raise LifecycleError(f'node "{name}" not found in cluster {cfg.name} (nodes: {", ".join(n.name for n in nodes)})')


def node_stopped_marker(cfg: ClusterConfig, node: str) -> Path:
    """While this file exists the daemon does not restart the node's kubelet (its machine is 'off')."""
    return cfg.state_dir / "nodes" / node / "stopped"


def _set_link(node: NodeNet, up: bool) -> None:
    subprocess.run(["ip", "-n", node.netns, "link", "set", NODE_IF, "up" if up else "down"], check=True,
                   capture_output=True)


def stop_node(cfg: ClusterConfig, name: str) -> list[str]:
    """`kinns node stop`: the node's machine dies (kubelet, containers, link)."""
    from ..node import runtime
    from .teardown import kill_node_process, runtime_dirs
    index, node = node_named(cfg, name)
    if index == 0:
        raise LifecycleError(
            f'node "{name}" is the control-plane node: it runs kube-apiserver, kube-controller-manager and '
            "kube-scheduler, so stopping it stops the cluster's API (nothing would notice the failure). "
            f"Stop a worker, or stop the whole cluster with `kinns stop --name {cfg.name}`")
    marker = node_stopped_marker(cfg, name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    removed = kill_node_process(cfg.state_dir / "kubelet" / name / "kubelet.pid")
    for d in runtime_dirs(cfg.state_dir):
        if d.name == name:
            removed += runtime.cleanup(d)
    _set_link(node, False)
    return removed


def start_node(cfg: ClusterConfig, name: str) -> None:
    """`kinns node start`: power the node back on; the daemon starts its kubelet again."""
    _, node = node_named(cfg, name)
    _set_link(node, True)
    node_stopped_marker(cfg, name).unlink(missing_ok=True)


def _proc_args(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _static_pids(cfg: ClusterConfig) -> dict[str, int]:
    """PIDs of the control plane's processes, found by what they run and the state they use."""
    marker = str(cfg.state_dir).encode()
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        args = _proc_args(int(entry))
        if not any(marker in a for a in args):
            continue
        for name, module in STATIC_COMPONENTS.items():
            if name == "etcd":
                hit = os.path.basename(args[0]) == b"etcd"
            else:
                hit = any(args[i] == b"-m" and args[i + 1] == module.encode() for i in range(len(args) - 1))
            if hit:
                found.setdefault(name, int(entry))
    return found


def _alive(pid: int, needle: bytes) -> bool:
    return any(needle in a for a in _proc_args(pid))


def components(cfg: ClusterConfig) -> list[Component]:
    """The control plane's static pods, then each node's kubelet and container runtime."""
    nodes = _nodes(cfg)
    cp = nodes[0].name
    out: list[Component] = []
    pids = _static_pids(cfg)
    manifests = manifest_dir(cfg, cp)
    daemon = daemon_pid(cfg)
    for name in STATIC_COMPONENTS:
        listed = (manifests / f"{name}.yaml").exists()
        if name == "etcd" and not listed and name not in pids:
            continue
        pid = pids.get(name)
        state = "running" if pid else ("stopped" if daemon is None or not listed else "not running")
        if not listed and pid is None:
            state = "stopped (manifest removed)" if daemon is not None else "stopped"
        out.append(Component(name, cp, pid, state))
    for n in nodes:
        kpid = _read_pid(cfg.state_dir / "kubelet" / n.name / "kubelet.pid")
        kpid = kpid if kpid and _alive(kpid, b"kinns.node") else None
        off = node_stopped_marker(cfg, n.name).exists()
        state = "running" if kpid else ("node stopped" if off else ("stopped" if daemon is None else "restarting"))
        out.append(Component("kubelet", n.name, kpid, state))
        zpid = _read_pid(cfg.state_dir / "runtime" / n.name / "zygote.pid")
        zpid = zpid if zpid and _alive(zpid, b"kinns.node.zygote") else None
        out.append(Component("container-runtime", n.name, zpid, "running" if zpid else "stopped"))
    return out


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def components_json(cfg: ClusterConfig) -> list[dict[str, object]]:
    return [asdict(c) for c in components(cfg)]
