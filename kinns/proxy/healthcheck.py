"""kube-proxy's HTTP endpoints: its own health, and per-Service health checks.

- The proxier health server (`0.0.0.0:10256` `/healthz`, `/livez`) says
  whether rules are being kept up to date: unhealthy (503) only when an
  update was queued and has not been applied within the timeout, as
  upstream's ProxierHealthServer.  The body is upstream's JSON
  (`lastUpdated`, `currentTime`, `nodeEligible`).
- A Service with `externalTrafficPolicy: Local` gets a
  `healthCheckNodePort`; every kube-proxy answers on it 200 when its node
  has local endpoints for that Service and 503 otherwise, so an external
  load balancer sends traffic only to nodes that can serve it locally.
  The body is `{"service": {"namespace", "name"}, "localEndpoints": N,
  "serviceProxyHealthy": true}`.

Both run on the kube-proxy's asyncio loop with aiohttp.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if t else ""


class ProxierHealth:
    """Tracks queued vs applied updates (upstream QueuedUpdate/Updated)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last_queued = 0.0
        self.last_updated = 0.0

    def queued(self) -> None:
        if self.last_queued <= self.last_updated:
            self.last_queued = time.time()

    def updated(self) -> None:
        self.last_updated = time.time()

    def healthy(self, now: float | None = None) -> bool:
        now = now if now is not None else time.time()
        if self.last_queued <= self.last_updated:
            return self.last_updated > 0
        return now - self.last_queued < self.timeout

    def body(self) -> dict[str, Any]:
        return {"lastUpdated": _rfc3339(self.last_updated), "currentTime": _rfc3339(time.time()),
                "nodeEligible": True}


def service_body(namespace: str, name: str, local: int) -> dict[str, Any]:
    return {"service": {"namespace": namespace, "name": name}, "localEndpoints": local,
            "serviceProxyHealthy": True}


class HealthServers:
    """The proxier health server plus one listener per health-check NodePort."""

    def __init__(self, health: ProxierHealth, metrics_text: Any, mode: str) -> None:
        self.health = health
        self.metrics_text = metrics_text
        self.mode = mode
        self.services: dict[int, tuple[str, str, int]] = {}   # port → (ns, name, local endpoints)
        self._runners: dict[int, web.AppRunner] = {}
        self._main: list[web.AppRunner] = []

    async def start(self, healthz: tuple[str, int], metrics: tuple[str, int]) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        await self._serve(app, *healthz)
        mapp = web.Application()
        mapp.router.add_get("/metrics", self._metrics)
        mapp.router.add_get("/proxyMode", self._mode)
        mapp.router.add_get("/healthz", self._healthz)
        await self._serve(mapp, *metrics)

    async def _serve(self, app: web.Application, host: str, port: int) -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        self._main.append(runner)
        return runner

    async def _healthz(self, _req: web.Request) -> web.Response:
        ok = self.health.healthy()
        return web.Response(status=200 if ok else 503, text=json.dumps(self.health.body()),
                            content_type="application/json", headers={"X-Content-Type-Options": "nosniff"})

    async def _metrics(self, _req: web.Request) -> web.Response:
        return web.Response(text=self.metrics_text(), content_type="text/plain")

    async def _mode(self, _req: web.Request) -> web.Response:
        return web.Response(text=self.mode, content_type="text/plain")

    async def sync_services(self, wanted: dict[int, tuple[str, str, int]]) -> None:
        """Open/close health-check NodePort listeners so exactly `wanted` are served."""
        self.services = dict(wanted)
        for port in list(self._runners):
            if port not in wanted:
                await self._runners.pop(port).cleanup()
        for port, (ns, name, _n) in wanted.items():
            if port in self._runners:
                continue
            app = web.Application()
            app.router.add_get("/{tail:.*}", self._service_handler(port))
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            try:
                await web.TCPSite(runner, "0.0.0.0", port, reuse_address=True).start()
            except OSError as e:
                log.error("cannot serve health check for %s/%s on port %d: %s", ns, name, port, e)
                await runner.cleanup()
                continue
            self._runners[port] = runner

    def _service_handler(self, port: int) -> Any:
        async def handle(_req: web.Request) -> web.Response:
            ns, name, local = self.services.get(port, ("", "", 0))
            return web.Response(status=200 if local > 0 else 503, text=json.dumps(service_body(ns, name, local)),
                                content_type="application/json",
                                headers={"X-Content-Type-Options": "nosniff",
                                         "X-Load-Balancing-Endpoint-Weight": str(local)})
        return handle

    async def close(self) -> None:
        for r in [*self._runners.values(), *self._main]:
            await r.cleanup()
        self._runners.clear()
        self._main.clear()
