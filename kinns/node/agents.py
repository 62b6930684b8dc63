"""The node layer of a cluster daemon: fabric, runtime, one kubelet per node.

Started after the API server: creates the fabric and node namespaces
(`kinns.net.fabric`), one container runtime shared by all nodes (one
zygote, so idle pods share its pages), and a kubelet per node over the
in-process client.  Returns when every node has registered and its pod
network is configured, so `kinns up` means "pods can start now".  Each
kubelet serves its node's :10250 (`server.KubeletServer`: logs, exec,
attach, port-forward), which the API server reaches through its node proxy
with the kubelet-client certificate set here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Awaitable, Callable

from ..api.nodeproxy import KubeletClientConfig
from ..api.server import ApiServer
from ..client import Client, InformerFactory, InProcessTransport
from ..cluster.certs import kubelet_client_cert, paths
from ..cluster.config import ClusterConfig
from ..cluster.manifests import write_control_plane_manifests
from ..cluster.progress import report
from ..net.fabric import Fabric
from .kubelet import Kubelet
from .runtime import ContainerStatus, Runtime
from .server import KubeletServer

log = logging.getLogger(__name__)


class NodeAgents:
    def __init__(self, api: ApiServer, cfg: ClusterConfig) -> None:
        self.api = api
        self.cfg = cfg
        self.kubelets: dict[str, Kubelet] = {}
        self.client = Client(InProcessTransport(api.dispatch), user_agent="kubelet")
        self.factory = InformerFactory(self.client)
        self.runtime: Runtime | None = None
        self.servers: list[KubeletServer] = []

    async def start(self) -> None:
        cfg = self.cfg
        nodes = await asyncio.to_thread(Fabric.create, cfg.name, cfg.fabric_subnet or None, cfg.nodes,
                                        cfg.cluster_cidr)
        if not cfg.fabric_subnet:
            cfg.fabric_subnet = str(ipaddress.ip_interface(f"{nodes[0].ip}/{nodes[0].prefixlen}").network)
            cfg.save()
        report(cfg.state_dir, f"fabric {cfg.fabric_subnet} and {len(nodes)} node namespaces created")
        write_control_plane_manifests(cfg, nodes[0].name, nodes[0].ip)
        if self.api.listen_in_node is not None:
            await self.api.listen_in_node(nodes[0].netns, nodes[0].ip)
        loop = asyncio.get_running_loop()

        def on_exit(st: ContainerStatus) -> None:
            # Called from the runtime's reader thread: hop onto the event loop.
            loop.call_soon_threadsafe(self._exited, st)

        self.runtime = Runtime(cfg.state_dir / "runtime", cgroup_parent=f"kinns/{cfg.name}", on_exit=on_exit)
        for i, node in enumerate(nodes):
            self.kubelets[node.name] = Kubelet(
                self.client, node, self.runtime, state_dir=cfg.state_dir, control_plane=(i == 0),
                overlay_mode=cfg.overlay, cluster_cidr=cfg.cluster_cidr, factory=self.factory)
        await asyncio.gather(*(k.start() for k in self.kubelets.values()))
        # kube-apiserver's --kubelet-client-certificate/-key and --kubelet-certificate-authority.
        pki = cfg.state_dir / "pki"
        self.api.node_proxy.configure(KubeletClientConfig(*kubelet_client_cert(pki), paths(pki).ca_cert))
        self.servers = [KubeletServer.for_node(k, pki) for k in self.kubelets.values()]
        await asyncio.gather(*(s.start() for s in self.servers))
        report(cfg.state_dir, f"{len(nodes)} kubelets registered; configuring pod networks ({cfg.overlay})")
        await asyncio.wait_for(asyncio.gather(*(k.network_ready.wait() for k in self.kubelets.values())),
                               30 + len(nodes))

    def _exited(self, st: ContainerStatus) -> None:
        for k in self.kubelets.values():
            if st.pod_uid in k.records:
                k.on_container_exit(st)

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers), return_exceptions=True)
        await asyncio.gather(*(k.stop() for k in self.kubelets.values()), return_exceptions=True)
        await self.factory.stop()
        if self.runtime is not None:
            self.runtime.close()
        await self.client.close()


async def start_nodes(api: ApiServer, cfg: ClusterConfig) -> Callable[[], Awaitable[None]]:
    agents = NodeAgents(api, cfg)
    await agents.start()
    api.node_agents = agents
    return agents.stop
