"""The web server behind `kinns ui`: informers in, server-sent events out.

One informer per drawn kind (Nodes, Pods, Services, EndpointSlices,
Ingresses, NetworkPolicies) keeps a `Diagram` of view records current.  A page
opens `/api/events` (server-sent events): it gets a `snapshot` of every record,
then `delta` events, each a batch of puts and deletes of records that changed.
Everything the API says arrives through the watches, so the page follows
`kubectl scale`, a node going NotReady, or a Service getting its
LoadBalancer address, without polling.

The details a click asks for are read when asked: a Service's rules on each
node (the node's netns entered as `kinns exec node/X` does), a pod's
interfaces and routes (its container's namespaces, as `kinns exec pod/X`),
its events from the API, and a trace (`kinns trace -o json`, the CLI's own
output, so the page and the terminal agree).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from ..api.errors import ApiError
from ..client import Client, Informer
from ..cluster.config import ClusterConfig
from ..cluster.nodeexec import ExecError, node_command, pod_command
from .model import KINDS, Diagram, View
from .rules import iptables_rules, nft_rules

log = logging.getLogger(__name__)

STATIC = resources.files("kinns.ui") / "static"
EXEC_TIMEOUT = 20.0
TRACE_TIMEOUT = 90.0


async def run_command(argv: list[str], env: dict[str, str] | None = None,
                      timeout: float = EXEC_TIMEOUT) -> tuple[int, str, str]:
    """Run a command; (exit code, stdout, stderr).  A command that hangs is killed at `timeout`."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, "", f"{argv[0]} did not finish within {timeout:.0f}s"
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def rules_command(proxy_mode: str) -> list[str]:
    """The command that lists what kube-proxy wrote on a node in this mode."""
    if proxy_mode in ("iptables", "userspace"):   # userspace's portals are iptables rules too
        return ["iptables-save"]                  # nat and filter: DNATs, and REJECTs for no endpoints
    return ["nft", "list", "table", "ip", "kube-proxy"]


class UiServer:
    """The diagram's state, its subscribers, and the HTTP handlers."""

    def __init__(self, cfg: ClusterConfig, client: Client) -> None:
        self.cfg = cfg
        self.client = client
        self.diagram = Diagram()
        self.informers: list[Informer] = []
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    # ------------------------------------------------------------ watching

    def meta(self) -> dict[str, Any]:
        """What the page draws once: the cluster's networks and proxy mode."""
        return {"cluster": self.cfg.name, "proxyMode": self.cfg.proxy_mode, "overlay": self.cfg.overlay,
                "fabric": self.cfg.fabric_subnet, "podNetwork": self.cfg.cluster_cidr,
                "serviceNetwork": self.cfg.service_cidr, "store": self.cfg.store}

    def _publish(self, delta: dict[str, Any] | None) -> None:
        if delta is None:
            return
        for q in self._subscribers:
            q.put_nowait(delta)

    def _watch(self, api_version: str, kind: str) -> Informer:
        draw = KINDS[(api_version, kind)]
        inf = Informer(self.client, api_version, kind)
        inf.add_handlers(
            on_add=lambda obj: self._publish(self.diagram.put(draw(obj))),
            on_update=lambda _old, new: self._publish(self.diagram.put(draw(new))),
            on_delete=lambda obj: self._publish(self.diagram.remove(draw(obj)["id"])),
        )
        return inf

    async def start(self, sync_timeout: float = 30.0) -> None:
        self.informers = [self._watch(av, kind) for av, kind in KINDS]
        for inf in self.informers:
            inf.start()
        await asyncio.gather(*(inf.wait_for_sync(sync_timeout) for inf in self.informers))

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self.informers))

    # ------------------------------------------------------------ HTTP

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{file}", self.static)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/services/{ns}/{name}/rules", self.service_rules)
        app.router.add_get("/api/pods/{ns}/{name}", self.pod_detail)
        app.router.add_post("/api/trace", self.trace)
        return app

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        ext = os.path.splitext(name)[1]
        path = STATIC / name
        if "/" in name or ext not in types or not path.is_file():
            raise web.HTTPNotFound(text=f"no static file {name}")
        return web.Response(body=path.read_bytes(), content_type=types[ext])

    async def state(self, request: web.Request) -> web.Response:
        """The snapshot as one JSON document (scripts, and the benchmark's page-size figure)."""
        body = orjson.dumps({"meta": self.meta(), "objects": self.diagram.snapshot()})
        return web.Response(body=body, content_type="application/json")

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `snapshot` once, then `delta` batches as the watches report."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # Subscribe and take the snapshot with no await between: no change falls in the gap.
        self._subscribers.add(queue)
        snapshot = orjson.dumps({"meta": self.meta(), "objects": self.diagram.snapshot()})
        try:
            await resp.write(b"event: snapshot\ndata: " + snapshot + b"\n\n")
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), 15.0)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                batch = [first]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                await resp.write(b"event: delta\ndata: " + orjson.dumps(batch) + b"\n\n")
        except ConnectionResetError:
            pass        # the page went away
        finally:
            self._subscribers.discard(queue)
        return resp

    def _view(self, view_id: str) -> View:
        view = self.diagram.views.get(view_id)
        if view is None:
            raise web.HTTPNotFound(text=f"{view_id} is not in the cluster")
        return view

    async def service_rules(self, request: web.Request) -> web.Response:
        """The Service's kube-proxy rules on every node, cut from each node's listing."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        svc = self._view(f"svc/{ns}/{name}")
        addresses = [a for a in [svc["clusterIP"], *svc["loadBalancer"], *svc["externalIPs"]]
                     if a and a != "None"]
        argv = rules_command(self.cfg.proxy_mode)
        nodes = sorted(v["name"] for v in self.diagram.views.values() if v["kind"] == "node")

        async def one(node: str) -> dict[str, Any]:
            try:
                cmd, extra = node_command(self.cfg, node, argv)
            except ExecError as exc:
                return {"node": node, "rules": "", "error": str(exc)}
            code, out, err = await run_command(cmd, {**os.environ, **extra})
            if code != 0:
                return {"node": node, "rules": "", "error": err.strip() or f"exit code {code}"}
            text = iptables_rules(out, ns, name) if argv[0] == "iptables-save" else \
                nft_rules(out, ns, name, addresses)
            return {"node": node, "rules": text, "error": None}

        results = await asyncio.gather(*(one(n) for n in nodes))
        return web.json_response({"service": f"{ns}/{name}", "proxyMode": self.cfg.proxy_mode,
                                  "command": " ".join(argv), "nodes": results})

    async def pod_detail(self, request: web.Request) -> web.Response:
        """A pod's interfaces and routes (read inside its namespaces) and its recent events."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self._view(f"pod/{ns}/{name}")
        out: dict[str, Any] = {"pod": pod, "interfaces": "", "routes": "", "error": None, "events": []}
        try:
            addr_cmd = await asyncio.to_thread(pod_command, self.cfg, ns, name, None, ["ip", "addr"])
            route_cmd = addr_cmd[:-2] + ["ip", "route"]
            (c1, addrs, e1), (c2, routes, e2) = await asyncio.gather(run_command(addr_cmd),
                                                                     run_command(route_cmd))
            out["interfaces"], out["routes"] = addrs, routes
            if c1 or c2:
                out["error"] = (e1 or e2).strip()
        except (ExecError, OSError, KeyError, ValueError) as exc:  # no runtime state yet: say why, keep going
            out["error"] = str(exc) or type(exc).__name__
        try:
            events, _ = await self.client.list(("v1", "Event"), ns,
                                               field_selector=f"involvedObject.name={name},involvedObject.kind=Pod")
        except ApiError as exc:
            events = []
            out["error"] = out["error"] or f"events: {exc.message}"
        events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        out["events"] = [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
                          "count": e.get("count") or 1,
                          "from": (e.get("source") or {}).get("component") or e.get("reportingComponent"),
                          "time": e.get("lastTimestamp") or e.get("eventTime")} for e in events[-15:]]
        return web.json_response(out)

    async def trace(self, request: web.Request) -> web.Response:
        """`kinns trace SOURCE DEST -o json`, run as the user would; its JSON as it printed it."""
        try:
            body = await request.json()
            source, dest = str(body["source"]).strip(), str(body["dest"]).strip()
            namespace = str(body.get("namespace") or "default").strip()
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='send {"source": "pod/NAME", "dest": "svc/NAME:PORT"}') from None
        if not source or not dest:
            raise web.HTTPBadRequest(text="both a source and a destination are needed")
        argv = [sys.executable, "-m", "kinns.cli", "trace", "--name", self.cfg.name, "-n", namespace, source, dest,
                "-o", "json"]
        code, out, err = await run_command(argv, dict(os.environ), timeout=TRACE_TIMEOUT)
        try:
            result = orjson.loads(out)
        except orjson.JSONDecodeError:
            msg = (err.strip().splitlines() or [f"kinns trace exited {code} without JSON"])[-1]
            return web.json_response({"error": msg, "command": " ".join(argv[2:])}, status=502)
        result["command"] = "kinns " + " ".join(argv[3:])
        return web.json_response(result)
