"""The ingress controller process: informers in, nginx reloads and API writes out.

    informers (Ingress, IngressClass, Service, EndpointSlice, Secret, ConfigMap)
        │ any change marks the config dirty
        ▼
    sync: Snapshot ─► routing.build ─► Plan ─► nginxconf.render ─► Nginx.apply
             │                          └─► Events (Warning: missing backend,
             │                               conflict, bad TLS Secret; each once)
             └─ at most one sync per `min_interval`, so a burst of writes is one reload
    status (the leader of Lease `<election-id>`): the publish Service's
        `status.loadBalancer.ingress` copied to every Ingress of our class

With `--gateway-controller-name` the same loop serves the Gateway API:
GatewayClasses naming that controller, their Gateways and the HTTPRoutes
attached to them are translated (gateway.py) into routes of the same plan,
and the leader writes their status (class Accepted; Gateway addresses =
the publish Service's, Accepted/Programmed, listeners' attachedRoutes;
each route's parents).

Every replica renders and reloads its own nginx (they all serve traffic);
only the leader writes Ingress status, as upstream's status syncer.  The
first sync waits for the informers, so nginx never starts with a partial
view of the cluster.  When nginx exits on its own the controller exits
too and the kubelet restarts the container, as ingress-nginx's does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from ..api.crd import set_condition
from ..api.crdkind import resource_types
from ..api.errors import ApiError
from ..api.resources import Registry
from ..client import Client, InformerFactory
from ..client.informer import Informer
from ..client.leaderelection import LeaderElector, LeaseLock
from ..klog import info
from . import certs, gateway, routing
from .gatewayapi_crds import API_VERSION as GATEWAY_API, crds as gateway_crds
from .nginx import ConfigError, Nginx
from .nginxconf import Settings, render

log = logging.getLogger("ingress-nginx")

INGRESS = ("networking.k8s.io/v1", "Ingress")
COMPONENT = "nginx-ingress-controller"


@dataclass(frozen=True)
class Options:
    """ingress-nginx's flags, the ones kinns honours."""

    ingress_class: str = "nginx"
    controller_class: str = "k8s.io/ingress-nginx"
    watch_without_class: bool = False
    publish_service: str = ""            # namespace/name of the LoadBalancer Service
    configmap: str = ""                  # namespace/name of the controller's ConfigMap
    election_id: str = "ingress-nginx-leader"
    namespace: str = "ingress-nginx"     # the pod's (POD_NAMESPACE)
    pod_name: str = ""
    healthz_port: int = 10254
    min_interval: float = 0.2            # seconds between two syncs
    gateway_controller: str = ""         # serve GatewayClasses of this controllerName ("": no Gateway API)


class _CacheView(Mapping[str, Any]):
    """An informer's cache as a read-only mapping keyed `namespace/name`."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer

    def __getitem__(self, key: str) -> Any:
        obj = self.informer.get(key)
        if obj is None:
            raise KeyError(key)
        return obj

    def __iter__(self) -> Iterator[str]:
        return iter(self.informer.keys())

    def __len__(self) -> int:
        return len(self.informer)


def _slice_service(s: dict[str, Any]) -> list[str]:
    meta = s.get("metadata") or {}
    name = (meta.get("labels") or {}).get(routing.SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{name}"] if name else []


def gateway_registry(base: Registry) -> Registry:
    """`base` plus the Gateway API kinds as kinns installs their CRDs (names accepted as written)."""
    types = [rt for crd in gateway_crds()
             for rt in resource_types({**crd, "status": {"acceptedNames": crd["spec"]["names"]}})]
    return Registry(types=base.types + tuple(types))


def _stamp(status: Any, old: Any) -> Any:
    """Every condition list in `status` with the transition times `old` already has for the same status."""
    if isinstance(status, dict):
        out = {k: _stamp(v, (old or {}).get(k) if isinstance(old, dict) else None) for k, v in status.items()}
        conds = status.get("conditions")
        if isinstance(conds, list):
            merged: dict[str, Any] = {"conditions": list((old or {}).get("conditions") or [])
                                      if isinstance(old, dict) else []}
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for c in conds:
                set_condition(merged, {**c, "lastTransitionTime": now})
            types = [c["type"] for c in conds]
            out["conditions"] = [c for c in merged["conditions"] if c.get("type") in types]
        return out
    if isinstance(status, list):
        olds = old if isinstance(old, list) else []
        return [_stamp(v, olds[i] if i < len(olds) else None) for i, v in enumerate(status)]
    return status


def _split(key: str, default_ns: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return (ns or default_ns, name)


class IngressController:
    def __init__(self, client: Client, opts: Options, nginx: Nginx) -> None:
        self.client = client
        self.opts = opts
        self.nginx = nginx
        self.base_settings = nginx.settings
        f = InformerFactory(client)
        self.factory = f
        self.ingresses = f.informer(*INGRESS)
        self.classes = f.informer("networking.k8s.io/v1", "IngressClass")
        self.services = f.informer("v1", "Service")
        self.slices = f.informer("discovery.k8s.io/v1", "EndpointSlice")
        self.slices.add_indexer("service", _slice_service)
        self.secrets = f.informer("v1", "Secret")
        self.gateway_informers: tuple[Informer, Informer, Informer] | None = None
        if opts.gateway_controller:
            client.registry = gateway_registry(client.registry)
            self.gateway_informers = (f.informer(GATEWAY_API, "GatewayClass"), f.informer(GATEWAY_API, "Gateway"),
                                      f.informer(GATEWAY_API, "HTTPRoute"))
        self.configmaps: Informer | None = None
        if opts.configmap:
            ns, name = _split(opts.configmap, opts.namespace)
            self.configmaps = f.informer("v1", "ConfigMap", namespace=ns, field_selector=f"metadata.name={name}")
        for inf in f.informers():
            inf.max_backoff = 5.0
            inf.add_handlers(on_add=self._changed, on_update=self._updated, on_delete=self._changed)
        self.dirty = asyncio.Event()
        self.status_dirty = asyncio.Event()
        self.ready = False
        self.reported: set[routing.Event] = set()
        self.seen: dict[str, Any] = {}           # uid → generation of the Ingresses taken
        self.last_reload = 0.0

    # ------------------------------------------------------------ handlers

    def _changed(self, _obj: Any) -> None:
        self.dirty.set()
        self.status_dirty.set()

    def _updated(self, _old: Any, _new: Any) -> None:
        self.dirty.set()
        self.status_dirty.set()

    def _ours(self, ing: dict[str, Any]) -> bool:
        classes = {c["metadata"]["name"]: c for c in self.classes.list()}
        return routing.is_ours(ing, self.opts.ingress_class, self.opts.controller_class, classes,
                               self.opts.watch_without_class)

    def _scheduled(self, ours: list[dict[str, Any]]) -> None:
        """`Normal Sync "Scheduled for sync"` on each Ingress this controller takes, new or with a new
        generation, as upstream says it (from the sync, when every informer has the classes)."""
        seen: dict[str, Any] = {}
        for ing in ours:
            meta = ing.get("metadata") or {}
            uid, gen = meta.get("uid", ""), meta.get("generation")
            seen[uid] = gen
            if uid not in self.seen or self.seen[uid] != gen:
                self.client.emit_event(ing, "Sync", "Scheduled for sync", component=COMPONENT)
        self.seen = seen

    # ------------------------------------------------------------ the plan

    def settings(self) -> Settings:
        """The base settings with the ConfigMap's keys applied (disable-access-log, worker-processes)."""
        data: dict[str, str] = {}
        if self.configmaps is not None:
            for cm in self.configmaps.list():
                data.update(cm.get("data") or {})
        s = self.base_settings
        if "disable-access-log" in data:
            s = replace(s, access_log=data["disable-access-log"].lower() != "true")
        if data.get("worker-processes"):
            s = replace(s, worker_processes=data["worker-processes"])
        return s

    def translation(self) -> gateway.Translation:
        """The Gateway API objects of our classes as routes and statuses (empty without them)."""
        if self.gateway_informers is None:
            return gateway.Translation()
        classes, gateways, routes = (i.list() for i in self.gateway_informers)
        return gateway.translate(self.opts.gateway_controller, classes, gateways, routes, _CacheView(self.services),
                                 _CacheView(self.secrets), [a.get("ip") or a.get("hostname", "")
                                                            for a in self.addresses()])

    def snapshot(self) -> routing.Snapshot:
        ours = [i for i in self.ingresses.list() if self._ours(i)]
        t = self.translation()
        return routing.Snapshot(ours, _CacheView(self.services), lambda key: self.slices.by_index("service", key),
                                _CacheView(self.secrets), t.routes, t.certificates)

    async def sync(self) -> None:
        """Render the cluster's Ingresses and make nginx run them (reload only on a change)."""
        start = time.monotonic()
        snap = self.snapshot()
        self._scheduled(list(snap.ingresses))
        plan = routing.build(snap)
        text = render(plan, self.settings())
        self._report(plan.events)
        if text == self.nginx.live:
            return
        self.nginx.write_certificates(plan.certificates)
        info(log, "controller.go:193", "Configuration changes detected, backend reload required")
        try:
            if self.nginx.proc is None:
                await asyncio.to_thread(self.nginx.start, text)
            else:
                await asyncio.to_thread(self.nginx.apply, text)
        except ConfigError as e:
            log.error("Unexpected failure reloading the backend", extra={"source": "controller.go:205",
                                                                          "kv": {"err": str(e)}})
            return
        self.nginx.prune_certificates(set(plan.certificates))
        self.last_reload = time.monotonic() - start
        info(log, "controller.go:213", "Backend successfully reloaded", seconds=round(self.last_reload, 3),
             servers=len(plan.servers), upstreams=len(plan.upstreams))

    def _report(self, events: list[routing.Event]) -> None:
        """Events for problems that are new since the last sync (a standing one is told once)."""
        now = set(events)
        for ev in events:
            if ev in self.reported:
                continue
            ing = self.ingresses.get(ev.ingress)
            if ing is not None:
                self.client.emit_event(ing, ev.reason, ev.message, type=ev.type, component=COMPONENT)
                log.warning("%s", ev.message, extra={"source": "controller.go:1010",
                                                     "kv": {"ingress": ev.ingress, "reason": ev.reason}})
        self.reported = now

    async def _sync_loop(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            try:
                await self.sync()
                self.ready = self.nginx.running()
            except Exception:  # noqa: BLE001 - the next change retries; the process must stay up
                log.exception("sync failed")
            await asyncio.sleep(self.opts.min_interval)

    # ------------------------------------------------------------ status

    def addresses(self) -> list[dict[str, str]]:
        """The publish Service's load-balancer addresses, as IngressLoadBalancerIngress entries."""
        if not self.opts.publish_service:
            return []
        svc = self.services.get("/".join(_split(self.opts.publish_service, self.opts.namespace)))
        lbs = (((svc or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        out = []
        for lb in lbs:
            if lb.get("ip"):
                out.append({"ip": lb["ip"]})
            elif lb.get("hostname"):
                out.append({"hostname": lb["hostname"]})
        return sorted(out, key=lambda a: a.get("ip") or a.get("hostname") or "")

    async def update_status(self) -> None:
        want = self.addresses()
        for ing in self.ingresses.list():
            if not self._ours(ing):
                continue
            have = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if have == want:
                continue
            meta = ing["metadata"]
            info(log, "status.go:304", "updating Ingress status", namespace=meta["namespace"],
                 ingress=meta["name"], currentValue=have, newValue=want)
            try:   # a PUT of the cached object, as upstream's UpdateStatus: a stale one is a 409, retried
                await self.client.update_status({**ing, "status": {**(ing.get("status") or {}),
                                                                   "loadBalancer": {"ingress": want}}})
            except ApiError as e:
                log.warning("error updating ingress status: %s", e.message, extra={"source": "status.go:318"})
                if e.code == 409:
                    self.status_dirty.set()

    async def update_gateway_status(self) -> None:
        """Write each Gateway API object's status where it differs from the translation's."""
        if self.gateway_informers is None:
            return
        t = self.translation()
        classes, gateways, routes = self.gateway_informers
        for inf, want in ((classes, t.classes), (gateways, t.gateways), (routes, t.http_routes)):
            for key, status in want.items():
                obj = inf.get(key)
                if obj is None:
                    continue
                have = obj.get("status") or {}
                if inf is routes:   # other controllers' parents stay
                    others = [p for p in have.get("parents") or []
                              if p.get("controllerName") != self.opts.gateway_controller]
                    status = {"parents": others + status["parents"]}
                new = _stamp(status, have)
                if new == have:
                    continue
                try:
                    await self.client.update_status({**obj, "status": new})
                except ApiError as e:
                    log.warning("error updating %s status: %s", obj.get("kind"), e.message,
                                extra={"source": "status.go:318"})
                    if e.code == 409:
                        self.status_dirty.set()

    async def _status_loop(self) -> None:
        """While leading: keep every Ingress's status on the publish Service's addresses."""
        info(log, "status.go:85", "new leader elected", identity=self.opts.pod_name)
        self.status_dirty.set()
        while True:
            await self.status_dirty.wait()
            self.status_dirty.clear()
            try:
                await self.update_status()
                await self.update_gateway_status()
            except Exception:  # noqa: BLE001 - retried on the next change
                log.exception("status sync failed")
            await asyncio.sleep(self.opts.min_interval)

    async def _elect(self) -> None:
        identity = self.opts.pod_name or socket.gethostname()
        while True:
            lock = LeaseLock(self.client, self.opts.namespace, self.opts.election_id, identity)
            await LeaderElector(lock, on_started_leading=self._status_loop).run()

    # ------------------------------------------------------------ health

    async def _healthz(self, _req: web.Request) -> web.Response:
        if self.ready and self.nginx.running():
            return web.Response(text="ok")
        return web.Response(status=500, text="nginx is not running" if self.ready else "not synced yet")

    async def _serve_health(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", self.opts.healthz_port, reuse_address=True).start()
        return runner

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        info(log, "main.go:205", "Creating API client", host=getattr(self.client.transport, "server_url", ""))
        self.nginx.prepare(certs.default_certificate().pem)
        runner = await self._serve_health()
        self.factory.start()
        while not all(i.has_synced for i in self.factory.informers()):
            await asyncio.sleep(0.05)
        self.dirty.set()
        tasks = [asyncio.ensure_future(self._sync_loop()), asyncio.ensure_future(self._elect())]
        try:
            while True:
                await asyncio.sleep(1.0)
                if self.nginx.proc is not None and not self.nginx.running():
                    raise SystemExit(f"nginx exited (code {self.nginx.proc.returncode})")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            await self.factory.stop()


def pod_identity() -> tuple[str, str]:
    """(POD_NAME, POD_NAMESPACE) from the downward API env, as upstream reads them."""
    return os.environ.get("POD_NAME", ""), os.environ.get("POD_NAMESPACE", "")
