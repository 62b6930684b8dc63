"""The kubelet's own HTTPS server on <node IP>:10250, as upstream's.

Pod subresources (`kubectl logs`, `exec`, `attach`, `port-forward`) are
answered by the kubelet of the pod's node; the API server only authorizes
them and passes them on (`kinns.api.nodeproxy`), as kube-apiserver does.
So every kubelet listens on its node's address, inside the node's network
namespace (a socket made there stays there), with upstream's paths:

    GET /healthz                                   "ok"
    GET /pods                                      PodList of this node's pods
    GET /metrics/resource                          CPU and memory from cgroups (`resourcemetrics.py`)
    GET /containerLogs/<ns>/<pod>/<container>      follow, previous, timestamps,
                                                   tailLines, sinceSeconds, sinceTime, limitBytes
    *   /exec/<ns>/<pod>/<container>?command=..    upgrades (`streams.py`)
    *   /attach/<ns>/<pod>/<container>
    *   /portForward/<ns>/<pod>                    upgrades (`portforward.py`)

Clients authenticate with a certificate signed by the cluster CA
(kubelet --client-ca-file); without one the answer is 401, as with
kubeadm's `anonymous: false`.  Upstream's kubelet then asks the API server
(Webhook authorization) whether the user may `get nodes/proxy`; kubeadm
binds that for the API server's kubelet-client identity through
`kubeadm:cluster-admins`.  This server decides the same question
locally for the two groups that hold it on every kubeadm cluster
(`system:masters`, `kubeadm:cluster-admins`), so it needs no API round
trip; anyone else gets upstream's 403 text.  Errors are plain text with
their HTTP code, as upstream's kubelet writes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Iterator

import orjson
from aiohttp import web

from ..api.authn import AuthenticationError, user_from_certificate
from ..api.errors import ApiError
from ..api.request import Request
from ..api.user import MASTERS, UserInfo
from ..cluster.certs import KUBELET_CLIENT_GROUP, kubelet_serving_cert, paths
from ..net import netns
from . import logs, resourcemetrics
from .containers import find as find_container
from .portforward import PortForwardServer
from .streams import StreamServer, error_text, kubelet_pod

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger(__name__)

KUBELET_PORT = 10250
# The groups RBAC gives `nodes/proxy` on every kubeadm cluster (cluster-admin).
ALLOWED_GROUPS = frozenset({MASTERS, KUBELET_CLIENT_GROUP})
# Upstream's kubelet authorizes a path as this `nodes/<subresource>`.
_SUBRESOURCES = {"stats": "stats", "metrics": "metrics", "logs": "log", "spec": "spec", "checkpoint": "checkpoint"}
_VERBS = {"POST": "create", "GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def serving_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS for :10250 (--tls-cert-file, --client-ca-file): client certificates
    are checked against the cluster CA when sent; a missing one is the 401 of
    the handler, not a failed handshake, so clients read why."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(str(ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def _request(request: web.Request) -> Request:
    """The aiohttp request as the transport-neutral one the stream handlers parse."""
    query: dict[str, list[str]] = {}
    for k, v in request.query.items():
        query.setdefault(k, []).append(v)
    return Request(request.method, request.path, query, {k.lower(): v for k, v in request.headers.items()})


def _peer_user(request: web.Request) -> UserInfo | None:
    """The user of the verified client certificate, None without one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    try:
        return user_from_certificate(der)
    except AuthenticationError:
        return None


def forbidden_message(user: UserInfo, method: str, path: str) -> str:
    """Upstream's kubelet 403 text, naming the `nodes/<sub>` it checked."""
    first = path.strip("/").split("/", 1)[0]
    return (f"Forbidden (user={user.name}, verb={_VERBS.get(method, method.lower())}, resource=nodes, "
            f"subresource={_SUBRESOURCES.get(first, 'proxy')})")


# --------------------------------------------------------------------------- logs


@dataclass
class LogOptions:
    """The query of /containerLogs (upstream's PodLogOptions)."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail: int | None = None
    since: float | None = None       # Unix time
    limit_bytes: int | None = None

    @classmethod
    def parse(cls, req: Request) -> LogOptions:
        def flag(name: str) -> bool:
            return req.param(name).lower() in ("true", "1")

        def number(name: str, low: int) -> int | None:
            raw = req.param(name)
            if not raw:
                return None
            try:
                value = int(raw)
            except ValueError:
                raise ApiError(400, "BadRequest", '{"message": "Unable to decode query."}') from None
            if value < low:
                raise ApiError(400, "BadRequest", f"{name}: Invalid value: {value}: must be greater than "
                                                  f"{'or equal to ' if low == 0 else ''}{max(low - 1, 0)}")
            return value

        opts = cls(follow=flag("follow"), previous=flag("previous"), timestamps=flag("timestamps"),
                   tail=number("tailLines", 0), limit_bytes=number("limitBytes", 1))
        seconds = number("sinceSeconds", 1)
        if seconds is not None:
            opts.since = time.time() - seconds
        elif req.param("sinceTime"):
            try:
                opts.since = dt.datetime.fromisoformat(req.param("sinceTime")).timestamp()
            except ValueError:
                raise ApiError(400, "BadRequest", '{"message": "Unable to decode query."}') from None
        opts.follow = opts.follow and not opts.previous      # a finished run has nothing more to say
        return opts


def _limited(lines: Iterator[str], limit: int | None) -> Iterator[bytes]:
    """The log's bytes, cut after `limit` (limitBytes)."""
    left = limit
    for line in lines:
        data = line.encode()
        if left is not None:
            data = data[:left]
            left -= len(data)
        if data:
            yield data
        if left is not None and left <= 0:
            return


# --------------------------------------------------------------------------- server


class KubeletServer:
    """One kubelet's :10250 (see the module docstring)."""

    def __init__(self, kubelet: "Kubelet", ssl_context: ssl.SSLContext, port: int = KUBELET_PORT) -> None:
        self.kubelet = kubelet
        self.ssl = ssl_context
        self.port = port
        self.streams = StreamServer(kubelet)
        self.forwards = PortForwardServer(kubelet)
        self.runner: web.AppRunner | None = None

    @classmethod
    def for_node(cls, kubelet: "Kubelet", pki_dir: Path) -> KubeletServer:
        """With the node's serving certificate from the cluster pki (made if missing)."""
        cert, key = kubelet_serving_cert(pki_dir, kubelet.node.name, kubelet.node.ip)
        return cls(kubelet, serving_context(cert, key, paths(pki_dir).ca_cert))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize])
        r = app.router
        r.add_get("/healthz", self._healthz)
        r.add_get("/pods", self._pods)
        r.add_get(resourcemetrics.PATH, self._resource_metrics)
        r.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        for verb in ("exec", "attach"):
            r.add_route("*", f"/{verb}/{{namespace}}/{{pod}}/{{container}}", self._stream)
        r.add_route("*", "/portForward/{namespace}/{pod}", self._port_forward)
        r.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self) -> None:
        """Listen on <node IP>:port inside the node's network namespace."""
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        node = self.kubelet.node
        with netns.entered(node.netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((node.ip, self.port))
            sock.listen(512)
        except OSError:
            sock.close()
            raise
        await web.SockSite(self.runner, sock, ssl_context=self.ssl).start()
        log.info("kubelet %s serving on https://%s:%d", node.name, node.ip, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- authentication and authorization

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        user = _peer_user(request)
        if user is None:
            return _text(401, "Unauthorized")
        if not ALLOWED_GROUPS.intersection(user.groups):
            log.info("kubelet %s refused %s %s for %s", self.kubelet.node.name, request.method, request.path,
                     user.name)
            return _text(403, forbidden_message(user, request.method, request.path))
        return await handler(request)

    # -- handlers

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return _text(404, "404 page not found")

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return _text(200, "ok")

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        static = self.kubelet.static
        from_api = [p for p in self.kubelet.pods.list()
                   if f'{p["metadata"]["namespace"]}/{p["metadata"]["name"]}' not in static]
        doc = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": from_api + list(static.values())}
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def _resource_metrics(self, request: web.Request) -> web.StreamResponse:
        text = await resourcemetrics.serve(self.kubelet)
        return web.Response(body=text.encode(), headers={"Content-Type": resourcemetrics.CONTENT_TYPE})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        return await self.streams.handle(request, _request(request))

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        return await self.forwards.handle(request, _request(request))

    def _log_source(self, ns: str, name: str, container: str,
                    previous: bool) -> tuple[Path | None, Callable[[], bool]]:
        """The log file a request means and a test for "that run has ended"
        (the file is None while the pod has no sandbox yet)."""
        pod = kubelet_pod(self.kubelet, ns, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pod "{name}" does not exist')
        if find_container(pod, container) is None:
            raise ApiError(404, "NotFound", f'container "{container}" not found in pod "{name}"')
        rec, container = self.kubelet.container_of(pod, container)
        count = rec.restarts.get(container, 0)
        run = rec.runs.get(container)
        # Waiting after a run (CrashLoopBackOff): that run is lastState, and what --previous reads.
        ended = run is not None and container in rec.waiting and run.state == "exited"
        if previous:
            if container not in rec.previous and not ended:
                raise ApiError(400, "BadRequest",
                               f'previous terminated container "{container}" in pod "{name}" not found')
            count -= 0 if ended else 1
        if run is None and not previous:
            reason = rec.waiting.get(container, ("ContainerCreating", ""))[0]
            raise ApiError(400, "BadRequest",
                           f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        runtime = self.kubelet.runtime

        def finished() -> bool:
            return previous or run is None or runtime.status(run.id).state != "running"

        return (rec.sandbox.log_path(container, count) if rec.sandbox is not None else None), finished

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            opts = LogOptions.parse(_request(request))
            path, finished = self._log_source(info["namespace"], info["pod"], info["container"], opts.previous)
        except ApiError as e:
            return error_text(e)
        if path is None:
            return _text(200, "")
        if not opts.follow:
            body = b"".join(await asyncio.to_thread(lambda: list(_limited(logs.read_log(
                path, timestamps=opts.timestamps, tail=opts.tail, since=opts.since), opts.limit_bytes))))
            return web.Response(body=body, content_type="text/plain")
        transport = request.transport

        def done() -> bool:
            # Also ends the following thread once the reader went away.
            return finished() or transport is None or transport.is_closing()

        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunks = _limited(logs.read_log(path, timestamps=opts.timestamps, tail=opts.tail, since=opts.since,
                                        follow=True, until=done, poll=0.1), opts.limit_bytes)
        try:
            while (data := await asyncio.to_thread(next, chunks, None)) is not None:
                await resp.write(data)
            await resp.write_eof()
        except ConnectionError:
            log.debug("log follower of %s/%s went away", info["namespace"], info["pod"])
        return resp
