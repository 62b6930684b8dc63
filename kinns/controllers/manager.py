"""Starts the control-plane controllers inside the cluster daemon.

Each controller talks to the API only through the client library, here over
the in-process transport (no sockets), exactly as it would over HTTPS.  One
informer factory is shared, so each kind is listed and watched once.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from ..api.server import ApiServer
from ..client import Client, InformerFactory, InProcessTransport
from ..cluster.config import ClusterConfig
from .base import Controller
from .clusterroleaggregation import ClusterRoleAggregationController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .endpoints import EndpointsController
from .gc import GarbageCollector
from .namespace import NamespaceController
from .nodeipam import NodeIpamController
from .provisioner import LocalPathProvisioner
from .pvbinder import PersistentVolumeBinder
from .replicaset import ReplicaSetController
from .scheduler import Scheduler
from .serviceaccount import RootCACertPublisher, ServiceAccountsController
from .servicelb import ServiceLBController
from .statefulset import StatefulSetController


async def start_controllers(api: ApiServer, cfg: ClusterConfig) -> Callable[[], Awaitable[None]]:
    client = Client(InProcessTransport(api.dispatch), user_agent="kinns-controller-manager")
    factory = InformerFactory(client)
    controllers: list[Controller] = [
        GarbageCollector(client, factory),
        NamespaceController(client, factory),
        NodeIpamController(client, factory, cluster_cidr=cfg.cluster_cidr),
        Scheduler(client, factory),
        ReplicaSetController(client, factory),
        DeploymentController(client, factory),
        DaemonSetController(client, factory),
        EndpointsController(client, factory),
        StatefulSetController(client, factory),
        PersistentVolumeBinder(client, factory),
        LocalPathProvisioner(client, factory, state_dir=cfg.state_dir),
        ServiceLBController.from_config(client, factory, cfg),
        ServiceAccountsController(client, factory),
        RootCACertPublisher(client, factory, ca_pem=(cfg.state_dir / "pki" / "ca.crt").read_text()),
        ClusterRoleAggregationController(client, factory),
    ]
    for c in controllers:
        await c.start()

    async def stop() -> None:
        for c in controllers:
            await c.stop()
        await factory.stop()
        await client.close()

    return stop
