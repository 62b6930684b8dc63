"""The control plane of a cluster daemon: API listeners and controllers, stoppable alone.

Seed 000 says a cluster keeps working while its masters are down, as long
as nothing else changes.  `kinns control-plane stop` makes that visible:
the daemon closes every API listener (the host's 127.0.0.1:<port>, and
<control-plane node IP>:6443 where nodes and pods reach the API), stops
the controllers, and refuses in-process calls too; kubelets' containers,
kube-proxy processes and the kernel rules they wrote keep running.
`kinns control-plane start` brings it all back; watchers resume and
kube-proxy resyncs.  The daemon flips between the two on SIGUSR1 (stop)
and SIGUSR2 (start) and records the state in `<state>/control-plane`.

The node-side listener is a socket opened inside the control-plane node's
network namespace (sockets stay in the namespace they were made in), so
the API really answers on the node's address, as kubeadm's
`--advertise-address=<node IP> --secure-port=6443` does.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Awaitable, Callable

from aiohttp import web

from ..api.http import make_app
from ..api.server import ApiServer
from ..net import netns
from .config import ClusterConfig

log = logging.getLogger(__name__)

NODE_API_PORT = 6443
Stop = Callable[[], Awaitable[None]]


class ControlPlane:
    def __init__(self, api: ApiServer, cfg: ClusterConfig, ssl_context: ssl.SSLContext) -> None:
        self.api = api
        self.cfg = cfg
        self.ssl = ssl_context
        self.runner: web.AppRunner | None = None
        self.sites: list[web.BaseSite] = []
        self.node: tuple[str, str] | None = None       # (netns, ip) once the fabric exists
        self._stop_controllers: Stop | None = None
        self.running = False

    @property
    def state_file(self) -> str:
        return str(self.cfg.state_dir / "control-plane")

    async def start(self) -> None:
        """Open the listeners, start the controllers, serve in-process calls."""
        if self.running:
            return
        from ..controllers.manager import start_in_process
        self.api.serving = True
        if self.runner is None:
            self.runner = web.AppRunner(make_app(self.api), access_log=None,
                                        handle_signals=False, shutdown_timeout=1.0)
            await self.runner.setup()
        site: web.BaseSite = web.TCPSite(self.runner, self.cfg.api_host, self.cfg.api_port,
                                         ssl_context=self.ssl, reuse_address=True)
        await site.start()
        self.sites = [site]
        if self.node is not None:
            await self._open_node_site()
        self._stop_controllers = await start_in_process(self.api.dispatch, self.cfg)
        self.running = True
        self._record("running")

    async def listen_in_node(self, netns_name: str, ip: str) -> None:
        """Also serve on <ip>:6443 inside the control-plane node's namespace."""
        self.node = (netns_name, ip)
        if self.running:
            await self._open_node_site()

    async def _open_node_site(self) -> None:
        assert self.node is not None and self.runner is not None
        name, ip = self.node
        with netns.entered(name):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, NODE_API_PORT))
        sock.listen(512)
        site = web.SockSite(self.runner, sock, ssl_context=self.ssl)
        await site.start()
        self.sites.append(site)

    async def stop(self) -> None:
        """Close the listeners and stop the controllers; nodes and pods stay."""
        if not self.running:
            return
        self.running = False
        self.api.serving = False
        # The runner's clean-up also drops open connections (watches), as a
        # dead API server would; `start` makes a fresh one.
        self.sites = []
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self._stop_controllers is not None:
            await self._stop_controllers()
            self._stop_controllers = None
        self._record("stopped")
        log.info("control plane stopped: API listeners closed, controllers stopped")

    async def close(self) -> None:
        await self.stop()

    def _record(self, state: str) -> None:
        with open(self.state_file, "w") as f:
            f.write(state + "\n")
