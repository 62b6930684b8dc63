"""The node layer of a cluster daemon: fabric, runtime, one kubelet per node.

Started after the API server: creates the fabric and node namespaces
(`kinns.net.fabric`), one container runtime shared by all nodes (one
zygote, so idle pods share its pages), and a kubelet per node over the
in-process client.  Returns when every node has registered and its pod
network is configured, so `kinns up` means "pods can start now".  Also
serves the pod subresources only a node can answer: `log` (exec is wired
in by the HTTP layer through `streams.py`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from ..api.errors import ApiError
from ..api.request import Request, Response
from ..api.rest import Target
from ..api.server import ApiServer
from ..client import Client, InformerFactory, InProcessTransport
from ..cluster.config import ClusterConfig
from ..cluster.manifests import write_control_plane_manifests
from ..cluster.progress import report
from ..net.fabric import Fabric
from . import logs
from .kubelet import Kubelet
from .portforward import PortForwardServer
from .runtime import ContainerStatus, Runtime
from .streams import StreamServer

log = logging.getLogger(__name__)


class NodeAgents:
    def __init__(self, api: ApiServer, cfg: ClusterConfig) -> None:
        self.api = api
        self.cfg = cfg
        self.kubelets: dict[str, Kubelet] = {}
        self.client = Client(InProcessTransport(api.dispatch), user_agent="kubelet")
        self.factory = InformerFactory(self.client)
        self.runtime: Runtime | None = None

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
        report(cfg.state_dir, f"{len(nodes)} kubelets registered; configuring pod networks ({cfg.overlay})")
        await asyncio.wait_for(asyncio.gather(*(k.network_ready.wait() for k in self.kubelets.values())),
                               30 + len(nodes))
        self.api.pod_subresources["log"] = self.pod_log
        # exec/attach upgrade the connection: the HTTP layer routes them here
        # through the ApiServer's `upgrade_handlers` (shared with `serve`).
        streams = StreamServer(self)
        self.api.upgrade_handlers.update(streams.handlers())
        self.api.pod_subresources["exec"] = self.api.pod_subresources["attach"] = streams.plain
        forwards = PortForwardServer(self)
        self.api.upgrade_handlers.update(forwards.handlers())
        self.api.pod_subresources["portforward"] = forwards.plain

    def _exited(self, st: ContainerStatus) -> None:
        for k in self.kubelets.values():
            if st.pod_uid in k.records:
                k.on_container_exit(st)

    async def stop(self) -> None:
        await asyncio.gather(*(k.stop() for k in self.kubelets.values()), return_exceptions=True)
        await self.factory.stop()
        if self.runtime is not None:
            self.runtime.close()
        await self.client.close()

    def kubelet_for(self, pod: dict[str, Any]) -> Kubelet:
        node = (pod.get("spec") or {}).get("nodeName")
        k = self.kubelets.get(node or "")
        if k is None:
            raise ApiError(400, "BadRequest",
                           f'pod {pod["metadata"]["name"]} does not have a host assigned')
        return k

    async def pod_log(self, t: Target, req: Request) -> Response:
        """GET pods/<name>/log: the container's log as text, or a stream with follow."""
        pod = self.api.handlers.get_object(t)
        k = self.kubelet_for(pod)
        rec, container = k.container_of(pod, req.param("container"))
        count = rec.restarts.get(container, 0)
        if req.param("previous") == "true":
            if container not in rec.previous:
                raise ApiError(400, "BadRequest",
                               f'previous terminated container "{container}" in pod "{t.name}" not found')
            count -= 1
        assert rec.sandbox is not None
        path = rec.sandbox.log_path(container, count)
        tail = int(req.param("tailLines")) if req.param("tailLines") else None
        timestamps = req.param("timestamps") == "true"
        run = rec.runs.get(container)
        follow = req.param("follow") == "true" and req.param("previous") != "true"
        assert self.runtime is not None
        runtime = self.runtime

        def finished() -> bool:
            return run is None or runtime.status(run.id).state != "running"

        if not follow:
            text = "".join(await asyncio.to_thread(
                lambda: list(logs.read_log(path, timestamps=timestamps, tail=tail))))
            return Response(raw=text.encode(), content_type="text/plain")

        async def stream() -> AsyncIterator[bytes]:
            it = logs.read_log(path, timestamps=timestamps, tail=tail, follow=True, until=finished, poll=0.1)
            sentinel = object()
            while True:
                line = await asyncio.to_thread(next, it, sentinel)
                if line is sentinel:
                    return
                yield str(line).encode()

        return Response(raw_stream=stream(), content_type="text/plain")


async def start_nodes(api: ApiServer, cfg: ClusterConfig) -> Callable[[], Awaitable[None]]:
    agents = NodeAgents(api, cfg)
    await agents.start()
    api.node_agents = agents
    return agents.stop
