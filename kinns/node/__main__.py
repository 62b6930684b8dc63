"""`python -m kinns.node`: the kubelet of one node, as its own process.

The cluster daemon starts one per node inside the node's network namespace
(what systemd's kubelet.service is on a kind node) and starts it again when
it dies.  It talks HTTPS to the API server with the node's identity
(`system:node:<node>`, from `--kubeconfig`), runs the static pods of
`--pod-manifest-path` (on the control-plane node: the API server itself,
the controller-manager and the scheduler), and drives the node's container
runtime, whose containers outlive it: a kubelet that is killed or stopped
leaves them running, and the next one finds them again.

Flags are upstream's where they exist (`--kubeconfig`,
`--hostname-override`, `--node-ip`, `--pod-manifest-path`, `--cluster-dns`),
plus `--kinns-state-dir` for the cluster's settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from ..klog import setup
from .kubelet import Kubelet
from .server import KubeletServer

log = logging.getLogger("kubelet")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="kubelet")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--hostname-override", required=True)
    ap.add_argument("--node-ip", default="")
    ap.add_argument("--pod-manifest-path", default="")
    ap.add_argument("--cluster-dns", default="10.96.0.10")
    ap.add_argument("--kinns-state-dir", required=True)
    ap.add_argument("--v", type=int, default=0)
    args, _unknown = ap.parse_known_args(argv)
    return args


def ready_marker(state_dir: Path, node: str) -> Path:
    """Written once the node's pod network is configured: `kinns up` waits for every node's."""
    return state_dir / "kubelet" / node / "network-ready"


def pid_file(state_dir: Path, node: str) -> Path:
    return state_dir / "kubelet" / node / "kubelet.pid"


def runtime_dir(state_dir: Path, node: str) -> Path:
    """The node's container runtime state (its zygote socket, container table)."""
    return state_dir / "runtime" / node


async def run(args: argparse.Namespace) -> int:
    from ..client import Client
    from ..client.transport import HttpTransport
    from ..cluster.config import ClusterConfig
    from ..net.fabric import Fabric
    from .runtime import ContainerStatus, Runtime

    state = Path(args.kinns_state_dir)
    cfg = ClusterConfig.load_from(state)
    nodes = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)
    index = next((i for i, n in enumerate(nodes) if n.name == args.hostname_override), None)
    if index is None:
        log.error('"Failed to run kubelet" err="node %s is not in cluster %s"', args.hostname_override, cfg.name)
        return 1
    node = nodes[index]
    marker = ready_marker(state, node.name)
    marker.unlink(missing_ok=True)
    pid_file(state, node.name).parent.mkdir(parents=True, exist_ok=True)
    pid_file(state, node.name).write_text(str(os.getpid()))
    client = Client(HttpTransport.from_kubeconfig(args.kubeconfig), user_agent="kubelet/v1.32.3 (linux/amd64) kinns")
    loop = asyncio.get_running_loop()
    kubelet: Kubelet | None = None

    def on_exit(st: ContainerStatus) -> None:
        # The runtime's reader thread: hop onto the event loop.
        if kubelet is not None:
            loop.call_soon_threadsafe(kubelet.on_container_exit, st)

    runtime = Runtime(runtime_dir(state, node.name), cgroup_parent=f"kinns/{cfg.name}/{node.name}", on_exit=on_exit)
    manifests = Path(args.pod_manifest_path) if args.pod_manifest_path else None
    kubelet = Kubelet(client, node, runtime, state_dir=state, control_plane=(index == 0),
                      overlay_mode=cfg.overlay, cluster_cidr=cfg.cluster_cidr, cluster_dns=args.cluster_dns,
                      manifest_dir=manifests, isolate_control_plane=len(nodes) > 1)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server: KubeletServer | None = None
    try:
        starting = asyncio.ensure_future(kubelet.start())
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([starting, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
        else:
            starting.result()
            server = await _serve(kubelet, state)
            log.info("kubelet %s started (node IP %s)", node.name, node.ip)
            ready = asyncio.ensure_future(kubelet.network_ready.wait())
            await asyncio.wait([ready, waiter], return_when=asyncio.FIRST_COMPLETED)
            if ready.done():
                marker.write_text("ready\n")
                await stop.wait()
    finally:
        log.info("kubelet %s stopping; its containers keep running", node.name)
        if server is not None:
            await server.stop()
        await kubelet.stop()
        # A stopped kubelet leaves its containers running, as upstream's does.
        detach = getattr(runtime, "detach", None)
        if detach is not None:
            detach()
        else:
            runtime.close()
        await client.close()
    return 0


async def _serve(kubelet: Kubelet, state: Path) -> KubeletServer:
    """The kubelet's own HTTPS server on <node IP>:10250 (logs, exec, attach, port-forward)."""
    server = KubeletServer.for_node(kubelet, state / "pki")
    await server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
