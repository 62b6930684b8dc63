"""The cluster daemon: what the container engine and systemd are to a kind cluster.

`kinns up` starts it detached (`python -m kinns.cluster.daemon NAME`).  It
does what happens *around* Kubernetes, never Kubernetes' own work:

- makes (or repairs, after a reboot) the fabric and one network namespace
  per node, the PKI and each component's kubeconfig, and, once per
  cluster, the control-plane node's static pod manifests;
- runs one kubelet process per node inside the node's namespace, as
  systemd runs kubelet.service on each kind node, and starts it again a
  second after it dies (`Restart=always`, `RestartSec=1s`); the kubelets
  run everything else: the control-plane node's kubelet runs the API
  server, controller-manager and scheduler as static pods;
- publishes the API server's port on the host's 127.0.0.1 (portpublish.py);
- writes `ready` once the API answers and every node's pod network is set.

SIGTERM stops the kubelets and exits; containers keep running (stopping
them is `kinns stop`'s or `kinns down`'s job, see lifecycle.py).  A
SIGKILLed daemon leaves the kubelets and containers running; the next
daemon (`kinns start`) replaces the kubelets, which find their containers.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from ..net.fabric import Fabric, choose_subnet
from ..net.desired import NodeNet
from .adminapi import admin_ssl
from .certs import component_identities, ensure_pki, ensure_sa_keypair, kubelet_serving_cert
from .config import ClusterConfig
from .manifests import API_PORT, manifest_dir, write_control_plane_manifests
from .portpublish import PortPublisher
from .progress import report
from .teardown import kill_node_process

log = logging.getLogger("kinns.daemon")

RESTART_SEC = 1.0


def kubelet_argv(cfg: ClusterConfig, node: NodeNet, control_plane: bool) -> list[str]:
    """The kubelet's command line, entered into the node's network namespace."""
    st = cfg.state_dir
    argv = ["nsenter", f"--net=/run/netns/{node.netns}", "--", sys.executable, "-m", "kinns.node",
            f"--kubeconfig={st / 'kubeconfigs' / f'kubelet-{node.name}.conf'}",
            f"--hostname-override={node.name}", f"--node-ip={node.ip}", f"--kinns-state-dir={st}"]
    if control_plane:
        argv.append(f"--pod-manifest-path={manifest_dir(cfg, node.name)}")
    return argv


class NodeService:
    """One per-node process kept running (a systemd unit with Restart=always).

    Subclasses say what runs (`argv`), where its pid and log go, and may
    react to an exit or a restart (`exited`, `restarted`)."""

    unit = "kubelet"
    needle = b"kinns.node"     # in the cmdline of a stale process of this kind

    def __init__(self, cfg: ClusterConfig, node: NodeNet) -> None:
        self.cfg, self.node = cfg, node
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.starts = 0
        self.log_path = cfg.state_dir / "logs" / f"{self.unit}-{node.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.cfg.state_dir / self.unit / self.node.name / f"{self.unit}.pid"

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def exited(self, code: int) -> None:
        """Called when the process died on its own (not stopped by us)."""

    async def restarted(self) -> None:
        """Called after a start that followed an exit."""

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A process left by an earlier daemon (SIGKILLed) stops; a kubelet's containers stay.
        kill_node_process(self.pid_path, self.needle, self.unit, grace=10)
        self.task = asyncio.ensure_future(self._keep_running())

    async def _keep_running(self) -> None:
        from .lifecycle import node_stopped_marker
        off = node_stopped_marker(self.cfg, self.node.name)
        while not self.stopping:
            if off.exists():  # `kinns node stop`: the machine is off until `kinns node start`
                await asyncio.sleep(0.2)
                continue
            with open(self.log_path, "ab") as out:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.argv(), stdin=asyncio.subprocess.DEVNULL,
                    stdout=out, stderr=out, start_new_session=True)
            self.starts += 1
            self.pid_path.parent.mkdir(parents=True, exist_ok=True)
            self.pid_path.write_text(str(self.proc.pid))
            if self.starts > 1:
                await self.restarted()
            code = await self.proc.wait()
            if self.stopping:
                return
            log.warning("%s on %s exited (%s); restarting in %.0fs", self.unit, self.node.name, code, RESTART_SEC)
            await self.exited(code)
            await asyncio.sleep(RESTART_SEC)

    async def stop(self) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class KubeletService(NodeService):
    """One node's kubelet."""

    def __init__(self, cfg: ClusterConfig, node: NodeNet, control_plane: bool) -> None:
        super().__init__(cfg, node)
        self.control_plane = control_plane

    def argv(self) -> list[str]:
        return kubelet_argv(self.cfg, self.node, self.control_plane)


class IpipEncapService(NodeService):
    """One node's user-space IP-in-IP encapsulator (`kinns.net.ipip_encap`).

    Supervised here beside the kubelet rather than by it: it is node
    plumbing, like the kernel's ipip module it replaces, so it must not
    stop with the kubelet (a kubelet restart would cut every cross-node
    flow) and `kinns down` finds it by its pid file like the kubelets.
    While it is down the node's pods are unreachable from other nodes; it
    says so with an Event on the Node, posted with the node's credentials."""

    unit = "ipip"
    needle = b"ipip"       # kinns-ipip-encap (compiled) or python -m kinns.net.ipip_encap

    def argv(self) -> list[str]:
        from ..net.ipip import encapsulator_argv
        return ["nsenter", f"--net=/run/netns/{self.node.netns}", "--",
                *encapsulator_argv(self.node.name, self.pid_path.parent / "counters.json")]

    async def exited(self, code: int) -> None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        await _node_event(self.cfg, self.node, "Warning", "IPIPTunnelDown",
                          f"ipip encapsulator {how}: pods on {self.node.name} are unreachable "
                          f"from other nodes until it restarts")

    async def restarted(self) -> None:
        await _node_event(self.cfg, self.node, "Normal", "IPIPTunnelUp",
                          f"ipip encapsulator restarted (pid {self.proc.pid if self.proc else '?'}): "
                          f"pods on {self.node.name} are reachable from other nodes again")


async def _node_event(cfg: ClusterConfig, node: NodeNet, type: str, reason: str, message: str) -> None:
    """An Event on Node `node`, as its kubelet would post it (involvedObject uid = node name,
    which `kubectl describe node` looks for); best effort, bounded in time."""
    from ..client.client import Client
    from ..client.transport import HttpTransport
    client = Client(HttpTransport.from_kubeconfig(cfg.state_dir / "kubeconfigs" / f"kubelet-{node.name}.conf"))
    involved = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": node.name, "uid": node.name}}
    try:
        await asyncio.wait_for(client.create_event(involved, reason, message, type=type, component="kinns-ipip",
                                                   host=node.name), 10)
    except asyncio.TimeoutError:
        log.warning("event %s on node %s: the API did not answer", reason, node.name)
    finally:
        await client.close()


async def ipip_services(cfg: ClusterConfig, nodes: list[NodeNet]) -> list[NodeService]:
    """tunl0 on every node; an encapsulator per node where tunl0 is a TUN device."""
    from ..net import ipip
    paths = [await asyncio.to_thread(ipip.ensure_tunnel, n.netns, cfg.ipip_path or None) for n in nodes]
    if paths[0] == ipip.KERNEL:
        report(cfg.state_dir, "ipip overlay: the kernel's ipip device tunl0 on every node")
        return []
    services: list[NodeService] = [IpipEncapService(cfg, n) for n in nodes]
    report(cfg.state_dir, f"ipip overlay: TUN device tunl0 and a user-space encapsulator ({ipip.dataplane()}) "
                          f"on every node")
    return services


async def _api_ready(cfg: ClusterConfig, ctx: ssl.SSLContext) -> bool:
    import aiohttp
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{cfg.server_url}/readyz", ssl=ctx, timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


async def _wait_ready(cfg: ClusterConfig, nodes: list[NodeNet]) -> None:
    from ..node.__main__ import ready_marker
    ctx = admin_ssl(cfg)
    said_api = said_nodes = False
    while True:
        api = await _api_ready(cfg, ctx)
        if api and not said_api:
            report(cfg.state_dir, f"API server answering on {cfg.server_url} and https://{nodes[0].ip}:{API_PORT}")
            said_api = True
        done = [n for n in nodes if ready_marker(cfg.state_dir, n.name).exists()]
        if api and len(done) == len(nodes):
            return
        if api and not said_nodes and done:
            report(cfg.state_dir, f"{len(done)}/{len(nodes)} kubelets registered, configuring pod networks "
                                  f"({cfg.overlay})")
        await asyncio.sleep(0.05)


async def run(cfg: ClusterConfig) -> None:
    state = cfg.state_dir
    ready = state / "ready"
    ready.unlink(missing_ok=True)
    if not cfg.fabric_subnet:
        cfg.fabric_subnet = choose_subnet(cfg.name)
        cfg.save()
    plan = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)
    cp = plan[0]
    ensure_pki(state / "pki", ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                               "kubernetes.default.svc.cluster.local", cp.name],
               [cfg.api_host, "127.0.0.1", "10.96.0.1", cp.ip])
    ensure_sa_keypair(state / "pki")
    component_identities(state / "pki", [n.name for n in plan], f"https://{cp.ip}:{API_PORT}", state / "kubeconfigs")
    for n in plan:  # issued here, so kubelets never need the CA's key
        kubelet_serving_cert(state / "pki", n.name, n.ip)
    nodes = await asyncio.to_thread(Fabric.create, cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)
    report(state, f"fabric {cfg.fabric_subnet} and {len(nodes)} node namespaces ready")
    write_control_plane_manifests(cfg, cp.name, cp.ip)
    publisher = PortPublisher(cfg.api_host, cfg.api_port, cp.ip, API_PORT)
    await publisher.start()
    services: list[NodeService] = [KubeletService(cfg, n, i == 0) for i, n in enumerate(nodes)]
    if cfg.overlay == "ipip":
        services += await ipip_services(cfg, nodes)
    for s in services:
        s.start()
    report(state, f"{len(nodes)} kubelets started; the control-plane node's kubelet starts the API server")
    (state / "daemon.json").write_text(json.dumps({"pid": os.getpid()}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(_wait_ready(cfg, nodes))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    if waiter.done():
        ready.write_text(str(os.getpid()))
        log.info("cluster %s serving on %s", cfg.name, cfg.server_url)
        await stop.wait()
    else:
        waiter.cancel()
    log.info("shutting down: stopping kubelets (containers keep running)")
    await asyncio.gather(*(s.stop() for s in services))
    await publisher.close()
    ready.unlink(missing_ok=True)


def _lock(cfg: ClusterConfig) -> int:
    """One daemon per cluster: hold `<state>/daemon.lock` for life (two `kinns start` at once
    would otherwise run two sets of kubelets on the same nodes)."""
    fd = os.open(cfg.state_dir / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f'another kinns daemon already runs cluster "{cfg.name}"') from None
    return fd


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = ClusterConfig.load(args[0])
    if cfg is None:
        raise SystemExit(f"no configuration for cluster {args[0]!r}")
    _lock(cfg)
    (cfg.state_dir / "daemon.pid").write_text(str(os.getpid()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    asyncio.run(run(cfg))


if __name__ == "__main__":
    main()
