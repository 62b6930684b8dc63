"""kube-proxy: one process per node, in the node's network namespace.

Started by the node's kubelet as the `kube-proxy` DaemonSet's container
(`python -m kinns.proxy --config=/var/lib/kube-proxy/config.conf
--hostname-override=$(NODE_NAME)`), it talks to the API server over HTTPS
with its own client certificate (`system:kube-proxy`), exactly as
upstream's cmd/kube-proxy does:

    informers (Services, EndpointSlices) ──► ChangeTracker (dirty Services)
          │ request()                              │ drain()
          ▼                                        ▼
    BoundedFrequencyRunner ──► sync ──► Backend.sync(state, changed) ──► kernel
                                  ├──► conntrack clean-up (UDP)
                                  ├──► health-check NodePorts (ETP=Local)
                                  └──► LoadBalancer addresses this node announces

The rules live in the kernel, not in this process: when the API server is
down the informers retry and the rules stay as they were; when it comes
back, the watch resumes and the next sync catches up.  A canary check
every few seconds notices someone flushing the node's tables and forces a
full sync, as upstream's iptables monitor does.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from ..api.discovery import VERSION_INFO
from ..client import Client, InformerFactory
from ..client.transport import HttpTransport
from ..klog import info
from . import conntrack
from .backend import Backend
from .healthcheck import HealthServers, ProxierHealth
from .metrics import ProxyMetrics
from .model import NodeFacts, ProxyState, categorize
from .runner import BoundedFrequencyRunner
from .tracker import ChangeTracker, slice_service

log = logging.getLogger("kube-proxy")

MODES = ("nftables", "iptables", "userspace", "ipvs")
CANARY_INTERVAL = 5.0
VERSION = VERSION_INFO["gitVersion"]


def parse_duration(text: str | int | float | None, default: float) -> float:
    """Go durations as KubeProxyConfiguration writes them: `1s`, `100ms`, `1m0s`, `30s`."""
    if text is None or text == "":
        return default
    if isinstance(text, (int, float)):
        return float(text)
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|ns|h|m|s)", text)
    if not parts:
        raise ValueError(f"invalid duration {text!r}")
    for num, unit in parts:
        total += float(num) * units[unit]
    return total


def _addr(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = (text or "").rpartition(":")
    return (host or "0.0.0.0", int(port or default_port)) if text else ("0.0.0.0", default_port)


@dataclass
class ProxyConfig:
    """The fields of KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) kinns uses."""

    mode: str = "iptables"        # upstream: "" means iptables on Linux
    cluster_cidr: str = ""
    kubeconfig: str = ""
    hostname_override: str = ""
    healthz: tuple[str, int] = ("0.0.0.0", 10256)
    metrics: tuple[str, int] = ("127.0.0.1", 10249)
    min_sync: float = 1.0
    sync_period: float = 30.0

    @classmethod
    def load(cls, path: str | Path) -> "ProxyConfig":
        doc = yaml.safe_load(Path(path).read_text()) or {}
        mode = doc.get("mode") or "iptables"
        if mode not in MODES:
            raise ValueError(f'invalid proxy mode "{mode}": must be one of {", ".join(MODES)}')
        per_mode = doc.get("nftables" if mode == "nftables" else "iptables") or {}
        return cls(
            mode=mode,
            cluster_cidr=doc.get("clusterCIDR") or "",
            kubeconfig=(doc.get("clientConnection") or {}).get("kubeconfig") or "",
            hostname_override=doc.get("hostnameOverride") or "",
            healthz=_addr(doc.get("healthzBindAddress") or "", 10256),
            metrics=_addr(doc.get("metricsBindAddress") or "127.0.0.1:10249", 10249),
            min_sync=parse_duration(per_mode.get("minSyncPeriod"), 1.0),
            sync_period=parse_duration(per_mode.get("syncPeriod"), 30.0),
        )


def make_backend(mode: str, node: NodeFacts) -> Backend:
    """The Backend for `mode` (imports are lazy: each mode pulls in only its own module)."""
    if mode == "nftables":
        from .nftables import NftablesBackend
        return NftablesBackend()
    if mode == "iptables":
        from .iptables import IptablesBackend
        return IptablesBackend()
    if mode == "userspace":
        from .userspace import UserspaceBackend
        return UserspaceBackend(node_ip=node.node_ips[0])
    raise ValueError(f"can't use the {mode.upper()} proxier: the ip_vs kernel module is not available "
                     "on this node")


def cleanup_other_modes(mode: str, node: NodeFacts) -> None:
    """Remove rules another mode left behind (upstream's CleanupLeftovers)."""
    for other in ("nftables", "iptables", "userspace"):
        if other == mode:
            continue
        try:
            b = make_backend(other, node)
            b.cleanup()
            close = getattr(b, "close", None)
            if close:
                close()
        except Exception as e:  # noqa: BLE001 - best effort, as upstream
            log.warning("cleaning up %s rules: %s", other, e)


class ProxyServer:
    def __init__(self, client: Client, cfg: ProxyConfig, node_name: str) -> None:
        self.client = client
        self.cfg = cfg
        self.node_name = node_name
        self.factory = InformerFactory(client)
        # As upstream: Services another proxy claims are not ours; headless
        # Services have no virtual IP to program.
        skip = "!service.kubernetes.io/service-proxy-name"
        self.services = self.factory.informer("v1", "Service", label_selector=skip)
        self.slices = self.factory.informer("discovery.k8s.io/v1", "EndpointSlice",
                                            label_selector=skip + ",!service.kubernetes.io/headless")
        for inf in (self.services, self.slices):
            inf.max_backoff = 5.0   # come back quickly after the control plane returns
        self.slices.add_indexer("service", lambda s: ["%s/%s" % k] if (k := slice_service(s)) else [])
        self.tracker = ChangeTracker(
            lambda ns, n: self.services.get(f"{ns}/{n}"),
            lambda ns, n: self.slices.by_index("service", f"{ns}/{n}"),
            excluded_cidrs=[cfg.cluster_cidr] if cfg.cluster_cidr else [])
        self.metrics = ProxyMetrics(cfg.mode)
        self.health = ProxierHealth(2 * cfg.sync_period)
        self.http = HealthServers(self.health, self.metrics.text, cfg.mode)
        self.runner = BoundedFrequencyRunner(self._sync, min_interval=cfg.min_sync, max_interval=cfg.sync_period)
        self.node: NodeFacts | None = None
        self.backend: Backend | None = None
        self.need_full = True
        self.last_full = 0.0
        self.announcer: Any = None
        self._layout: str | None = None

    # -- start-up ------------------------------------------------------------

    async def node_facts(self) -> NodeFacts:
        """This node's IPs from its Node object (retrying until the API answers)."""
        delay = 0.2
        while True:
            try:
                node = await self.client.get(("v1", "Node"), self.node_name)
                ips = tuple(a["address"] for a in (node.get("status") or {}).get("addresses") or []
                            if a.get("type") == "InternalIP")
                if ips:
                    info(log, "node.go:141", "Successfully retrieved node IP(s)", IPs=list(ips))
                    return NodeFacts(self.node_name, ips, self.cfg.cluster_cidr or "10.244.0.0/16")
            except Exception as e:  # noqa: BLE001 - API not up yet
                log.warning("can't get node %s: %s; retrying", self.node_name, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        info(log, "server.go:484", "Version info", version=VERSION, goVersion=VERSION_INFO["goVersion"])
        self.node = await self.node_facts()
        mode = self.cfg.mode
        info(log, "server_linux.go:132", f"Using {mode} Proxier")
        if mode == "ipvs":
            raise SystemExit("can't use the IPVS proxier: the ip_vs kernel module is not available on this node")
        await asyncio.to_thread(cleanup_other_modes, mode, self.node)
        self.backend = make_backend(mode, self.node)
        self.announcer = _announcer()
        await self.http.start(self.cfg.healthz, self.cfg.metrics)
        for inf, on in ((self.services, self.tracker.on_service), (self.slices, self.tracker.on_slice)):
            poke = self._poke(on)
            inf.add_handlers(on_add=poke, on_update=_new_only(poke), on_delete=poke)
        info(log, "config.go:199", "Starting service config controller")
        info(log, "config.go:105", "Starting endpoint slice config controller")
        self.factory.start()
        await self.services.wait_for_sync()
        await self.slices.wait_for_sync()
        info(log, "shared_informer.go:320", "Caches are synced for service config")
        info(log, "shared_informer.go:320", "Caches are synced for endpoint slice config")
        self.tracker.mark_all((s["metadata"]["namespace"], s["metadata"]["name"]) for s in self.services.list())
        await self.runner.run_once()
        await asyncio.gather(self.runner.loop(), self._canary())

    def _poke(self, on: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        def handler(obj: dict[str, Any]) -> None:
            on(obj)
            self.health.queued()
            self.metrics.last_queued = time.time()
            self.runner.request()
        return handler

    async def _canary(self) -> None:
        """Notice rules flushed behind our back (nft flush ruleset, iptables -F) and resync fully."""
        while True:
            await asyncio.sleep(CANARY_INTERVAL)
            backend = self.backend
            flushed = getattr(backend, "tables_flushed", None)
            if flushed is not None and not self.need_full and await asyncio.to_thread(flushed):
                info(log, "proxier.go:748", "Proxy rules were changed outside kube-proxy; doing a full sync",
                     mode=self.cfg.mode)
                self.need_full = True
                self.runner.request()

    # -- the sync ------------------------------------------------------------

    async def _sync(self) -> None:
        assert self.backend is not None and self.node is not None
        full = self.need_full or time.monotonic() - self.last_full >= self.cfg.sync_period
        ch = self.tracker.drain()
        state = ProxyState(ch.current, self.node)
        t0 = time.perf_counter()
        try:
            res = await asyncio.to_thread(self.backend.sync, state, None if full else ch.changed)
        except Exception:
            self.need_full = True
            self.metrics.failures += 1
            raise
        elapsed = time.perf_counter() - t0
        if full:
            self.need_full = False
            self.last_full = time.monotonic()
        self.metrics.synced(elapsed, res.full)
        self.metrics.service_changes = self.tracker.service_changes
        self.metrics.endpoint_changes = self.tracker.endpoint_changes
        self.metrics.rules = {"total": res.rules}
        self.health.updated()
        self._log_layout(state)
        log.debug("SyncProxyRules complete: full=%s rules=%d elapsed=%.3fs", res.full, res.rules, elapsed)
        stale = conntrack.plan(ch.pairs)
        if stale:
            await asyncio.to_thread(conntrack.clear, stale)
        await self.http.sync_services(self._health_check_ports(state))
        if self.announcer is not None:
            from .lbannounce import desired_addresses
            await asyncio.to_thread(self.announcer.sync, desired_addresses(self.services.list(), self.node_name))

    def _log_layout(self, state: ProxyState) -> None:
        """Say once when a backend switches between its small- and large-cluster rule layouts
        (as upstream notes its large-cluster mode)."""
        layout = getattr(self.backend, "layout", None)
        if layout is not None and layout != self._layout:
            self._layout = layout
            endpoints = sum(len(sp.endpoints) for sp in state.services.values())
            info(log, "proxier.go:1095", f"Using {layout} {self.cfg.mode} rule layout", endpoints=endpoints)

    def _health_check_ports(self, state: ProxyState) -> dict[int, tuple[str, str, int]]:
        out: dict[int, tuple[str, str, int]] = {}
        for sp in state.services.values():
            if sp.health_check_node_port and sp.external_local:
                local = len(categorize(sp, self.node_name).local)
                ns, name, n = out.get(sp.health_check_node_port, (sp.name.namespace, sp.name.name, 0))
                out[sp.health_check_node_port] = (ns, name, n + local)
        return out

    async def close(self) -> None:
        await self.factory.stop()
        await self.http.close()
        await self.client.close()
        close = getattr(self.backend, "close", None)
        if close:
            close()


def _new_only(handler: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """An update handler that looks only at the new object."""
    def on_update(_old: dict[str, Any], new: dict[str, Any]) -> None:
        handler(new)
    return on_update


def _announcer() -> Any:
    """The LoadBalancer address announcer for this node (MetalLB L2 style), if built."""
    try:
        from .lbannounce import Announcer
    except ImportError:
        return None
    return Announcer()


def build(cfg: ProxyConfig, node_name: str) -> ProxyServer:
    transport = HttpTransport.from_kubeconfig(cfg.kubeconfig)
    return ProxyServer(Client(transport, user_agent=f"kube-proxy/{VERSION} (linux/amd64) kubernetes"), cfg, node_name)
