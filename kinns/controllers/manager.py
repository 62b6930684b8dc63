"""Which controllers kube-controller-manager runs, with which identity, and how they start.

`CONTROLLERS` is the table upstream keeps in
cmd/kube-controller-manager/app/controllermanager.go: each controller's
canonical name (what `--controllers` and the logs say), its old aliases,
and the kube-system ServiceAccount it writes as under
`--use-service-account-credentials` (upstream's names, which the bootstrap
RBAC roles `system:controller:<account>` are made for).  Adding a controller
is one line here.

`start_controllers(builder, factory, cfg)` starts the enabled ones over
any transport: `python -m kinns.controllers` (the controller-manager
static pod) gives it an HTTPS client and a ClientBuilder (see
clientbuilder.py); tests may give it an in-process one.  One informer
factory is shared, so each kind is listed and watched once per process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable, Iterable

from ..client import Client, InformerFactory
from ..cluster.config import ClusterConfig
from ..klog import info
from .app import duration
from .base import Controller
from .clientbuilder import ClientBuilder
from .clusterroleaggregation import ClusterRoleAggregationController
from .cronjob import CronJobController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .disruption import DisruptionController
from .endpoints import EndpointsController
from .gc import GarbageCollector
from .hpa import HorizontalPodAutoscalerController
from .job import JobController
from .namespace import NamespaceController
from .nodeipam import NodeIpamController
from .nodelifecycle import NodeLifecycleController
from .podgc import PodGCController
from .provisioner import LocalPathProvisioner
from .pvbinder import PersistentVolumeBinder
from .pvprotection import PVProtectionController
from .replicaset import ReplicaSetController
from .replicationcontroller import ReplicationManager
from .scheduler import Scheduler
from .serviceaccount import RootCACertPublisher, ServiceAccountsController
from .servicelb import ServiceLBController
from .statefulset import StatefulSetController
from .tainteviction import TaintEvictionController
from .ttlafterfinished import TTLAfterFinishedController

log = logging.getLogger("kube-controller-manager")

Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ControllerOptions:
    """The kube-controller-manager flags controllers read (upstream's names, snake_cased)."""

    cluster_cidr: str
    service_cluster_ip_range: str
    root_ca_pem: str
    allocate_node_cidrs: bool = True
    node_cidr_mask_size: int = 24
    node_monitor_grace_period: float = 50.0
    horizontal_pod_autoscaler_sync_period: float = 15.0
    horizontal_pod_autoscaler_downscale_stabilization: float = 300.0

    @classmethod
    def from_config(cls, cfg: ClusterConfig) -> "ControllerOptions":
        """The options a cluster's own settings imply (flags given explicitly replace them)."""
        grace = cfg.extra.get("node-monitor-grace-period", "50s")   # a Go duration, as the flag
        return cls(cluster_cidr=cfg.cluster_cidr, service_cluster_ip_range=cfg.service_cidr,
                   root_ca_pem=(cfg.state_dir / "pki" / "ca.crt").read_text(),
                   node_monitor_grace_period=duration(grace))


@dataclass(frozen=True)
class ControllerContext:
    """What a controller's constructor may need besides its client and the informers."""

    cfg: ClusterConfig
    options: ControllerOptions
    # Clients of the spec's `extra_accounts`, by account name.
    clients: dict[str, Client] = field(default_factory=dict)


Build = Callable[[Client, InformerFactory, ControllerContext], "Controller | None"]


@dataclass(frozen=True)
class ControllerSpec:
    name: str                       # canonical, as upstream's names package
    service_account: str            # the kube-system account it acts as
    build: Build                    # None: not started with these options (upstream's "Skipping")
    aliases: tuple[str, ...] = ()   # older names still accepted by --controllers
    also: tuple[str, ...] = ()      # upstream controllers this kinns one does the work of
    extra_accounts: tuple[str, ...] = ()  # their accounts, where it writes as them
    enabled_by_default: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases, *self.also)


def _nodeipam(c: Client, f: InformerFactory, x: ControllerContext) -> Controller | None:
    if not x.options.allocate_node_cidrs:
        return None
    return NodeIpamController(c, f, cluster_cidr=x.options.cluster_cidr, node_mask=x.options.node_cidr_mask_size)


CONTROLLERS: list[ControllerSpec] = [
    ControllerSpec("garbage-collector-controller", "generic-garbage-collector",
                   lambda c, f, x: GarbageCollector(c, f), ("garbagecollector",)),
    ControllerSpec("namespace-controller", "namespace-controller",
                   lambda c, f, x: NamespaceController(c, f), ("namespace",)),
    ControllerSpec("node-ipam-controller", "node-controller", _nodeipam, ("nodeipam",)),
    ControllerSpec("node-lifecycle-controller", "node-controller", lambda c, f, x: NodeLifecycleController(
        c, f, grace=x.options.node_monitor_grace_period), ("nodelifecycle",)),
    # Upstream's taint-eviction controller writes with the node controller's role too.
    ControllerSpec("taint-eviction-controller", "node-controller", lambda c, f, x: TaintEvictionController(c, f)),
    ControllerSpec("pod-garbage-collector-controller", "pod-garbage-collector",
                   lambda c, f, x: PodGCController(c, f), ("podgc",)),
    ControllerSpec("replicaset-controller", "replicaset-controller",
                   lambda c, f, x: ReplicaSetController(c, f), ("replicaset",)),
    ControllerSpec("replicationcontroller-controller", "replication-controller",
                   lambda c, f, x: ReplicationManager(c, f), ("replicationcontroller",)),
    ControllerSpec("disruption-controller", "disruption-controller",
                   lambda c, f, x: DisruptionController(c, f), ("disruption",)),
    ControllerSpec("deployment-controller", "deployment-controller",
                   lambda c, f, x: DeploymentController(c, f), ("deployment",)),
    ControllerSpec("daemonset-controller", "daemon-set-controller",
                   lambda c, f, x: DaemonSetController(c, f), ("daemonset",)),
    ControllerSpec("endpoints-controller", "endpoint-controller",
                   lambda c, f, x: EndpointsController(c, f, slice_client=x.clients["endpointslice-controller"]),
                   ("endpoint",), also=("endpointslice-controller", "endpointslice"),
                   extra_accounts=("endpointslice-controller",)),
    ControllerSpec("statefulset-controller", "statefulset-controller",
                   lambda c, f, x: StatefulSetController(c, f), ("statefulset",)),
    ControllerSpec("horizontal-pod-autoscaler-controller", "horizontal-pod-autoscaler",
                   lambda c, f, x: HorizontalPodAutoscalerController(
                       c, f, sync_period=x.options.horizontal_pod_autoscaler_sync_period,
                       downscale_stabilization=x.options.horizontal_pod_autoscaler_downscale_stabilization),
                   ("horizontalpodautoscaling",)),
    ControllerSpec("job-controller", "job-controller", lambda c, f, x: JobController(c, f), ("job",)),
    ControllerSpec("cronjob-controller", "cronjob-controller", lambda c, f, x: CronJobController(c, f), ("cronjob",)),
    ControllerSpec("ttl-after-finished-controller", "ttl-after-finished-controller",
                   lambda c, f, x: TTLAfterFinishedController(c, f), ("ttl-after-finished",)),
    ControllerSpec("persistentvolume-binder-controller", "persistent-volume-binder",
                   lambda c, f, x: PersistentVolumeBinder(c, f), ("persistentvolume-binder",),
                   also=("persistentvolumeclaim-protection-controller", "pvc-protection")),
    ControllerSpec("persistentvolume-protection-controller", "pv-protection-controller",
                   lambda c, f, x: PVProtectionController(c, f), ("pv-protection",)),
    # What kind ships as its own Deployment (rancher's local-path-provisioner).
    ControllerSpec("local-path-provisioner", "local-path-provisioner",
                   lambda c, f, x: LocalPathProvisioner(c, f, state_dir=x.cfg.state_dir)),
    # Upstream's cloud service controller name; kinns's load balancer is the node fabric.
    ControllerSpec("service-lb-controller", "service-lb-controller",
                   lambda c, f, x: ServiceLBController.from_config(c, f, x.cfg), ("service",)),
    ControllerSpec("serviceaccount-controller", "service-account-controller",
                   lambda c, f, x: ServiceAccountsController(c, f), ("serviceaccount",)),
    ControllerSpec("root-ca-certificate-publisher-controller", "root-ca-cert-publisher",
                   lambda c, f, x: RootCACertPublisher(c, f, ca_pem=x.options.root_ca_pem),
                   ("root-ca-cert-publisher",)),
    ControllerSpec("clusterrole-aggregation-controller", "clusterrole-aggregation-controller",
                   lambda c, f, x: ClusterRoleAggregationController(c, f), ("clusterrole-aggregation",)),
]

# Upstream controllers kinns does not run: --controllers accepts their names
# (kubeadm's `*,bootstrapsigner,tokencleaner` must not fail), and the log says so.
NOT_IMPLEMENTED: dict[str, tuple[str, ...]] = {
    "serviceaccount-token-controller": ("serviceaccount-token",),
    "endpointslice-mirroring-controller": ("endpointslicemirroring",),
    "resourcequota-controller": ("resourcequota",),
    "certificatesigningrequest-signing-controller": ("csrsigning",),
    "certificatesigningrequest-approving-controller": ("csrapproving",),
    "certificatesigningrequest-cleaner-controller": ("csrcleaner",),
    "ttl-controller": ("ttl",),
    "bootstrap-signer-controller": ("bootstrapsigner",),
    "token-cleaner-controller": ("tokencleaner",),
    "persistentvolume-attach-detach-controller": ("attachdetach",),
    "persistentvolume-expander-controller": ("persistentvolume-expander",),
    "ephemeral-volume-controller": ("ephemeral-volume",),
    "storageversion-garbage-collector-controller": ("storage-version-gc",),
    "resourceclaim-controller": ("resource-claim-controller",),
    "legacy-serviceaccount-token-cleaner-controller": ("legacy-service-account-token-cleaner",),
    "validatingadmissionpolicy-status-controller": ("validatingadmissionpolicy-status",),
    "service-cidr-controller": (),
    "storage-version-migrator-controller": (),
    "node-route-controller": ("route",),
    "cloud-node-lifecycle-controller": ("cloud-node-lifecycle",),
}
# Off unless named (upstream's ControllersDisabledByDefault).
DISABLED_BY_DEFAULT = frozenset({"bootstrap-signer-controller", "token-cleaner-controller"})


def _canonical() -> dict[str, str]:
    """Every accepted name → the canonical name it stands for."""
    out: dict[str, str] = {}
    for spec in CONTROLLERS:
        for n in spec.names:
            out[n] = spec.name
    for name, aliases in NOT_IMPLEMENTED.items():
        for n in (name, *aliases):
            out.setdefault(n, name)
    return out


def validate_controllers(selection: Iterable[str]) -> list[str]:
    """`--controllers` with aliases resolved; ValueError names an unknown controller, as upstream."""
    known = _canonical()
    out = []
    for item in selection:
        neg = item.startswith("-")
        bare = item[1:] if neg else item
        if bare == "*":
            out.append(item)
            continue
        if bare not in known:
            raise ValueError(f'"{bare}" is not in the list of known controllers')
        out.append(("-" if neg else "") + known[bare])
    return out


def is_enabled(name: str, selection: list[str]) -> bool:
    """Upstream's IsControllerEnabled: an explicit name or -name wins, else `*` enables the defaults."""
    star = False
    for item in selection:
        if item == name:
            return True
        if item == "-" + name:
            return False
        star = star or item == "*"
    return star and name not in DISABLED_BY_DEFAULT


async def start_controllers(builder: ClientBuilder, factory: InformerFactory, cfg: ClusterConfig, *,
                            options: ControllerOptions | None = None,
                            selection: Iterable[str] = ("*",)) -> Stop:
    """Start every enabled controller, each with the client `builder` gives its account."""
    opts = options or ControllerOptions.from_config(cfg)
    ctx = ControllerContext(replace(cfg, cluster_cidr=opts.cluster_cidr, service_cidr=opts.service_cluster_ip_range),
                            opts)
    chosen = validate_controllers(selection)
    running: list[Controller] = []
    for spec in CONTROLLERS:
        if not is_enabled(spec.name, chosen):
            log.info("Warning: controller is disabled", extra={"source": "controllermanager.go:775",
                                                                "kv": {"controller": spec.name}})
            continue
        extra = {a: await builder.client(a) for a in spec.extra_accounts}
        c = spec.build(await builder.client(spec.service_account), factory, replace(ctx, clients=extra))
        if c is None:
            info(log, "controllermanager.go:782", "Skipping a controller", controller=spec.name)
            continue
        info(log, "controllermanager.go:763", "Starting controller", controller=spec.name)
        await c.start()
        running.append(c)
        info(log, "controllermanager.go:797", "Started controller", controller=spec.name)
    missing = [name for name in NOT_IMPLEMENTED if is_enabled(name, chosen)]
    if missing:
        log.warning("Skipping controllers kinns does not implement",
                    extra={"source": "controllermanager.go:782", "kv": {"controllers": missing}})

    async def stop() -> None:
        for c in reversed(running):
            await c.stop()
        await factory.stop()
        await builder.close()

    return stop


async def start_scheduler(client: Client, factory: InformerFactory) -> Stop:
    """The default scheduler on `client`, sharing `factory`'s informers."""
    scheduler = Scheduler(client, factory)
    await scheduler.start()
    return scheduler.stop
