"""Pod subresources a kubelet answers: the API server's half, a proxy.

`kubectl logs`, `exec`, `attach` and `port-forward` reach
``/api/v1/namespaces/<ns>/pods/<pod>/{log,exec,attach,portforward}``; as in
kube-apiserver, the API server authorizes the request (RBAC on
``pods/exec`` and the rest, done by the caller), validates what it can see
in the Pod (container name, a node assigned), finds the node's kubelet
(``status.addresses`` InternalIP and ``status.daemonEndpoints
.kubeletEndpoint.Port``) and passes the request on to it over HTTPS, with
the API server's kubelet-client certificate (kube-apiserver's
--kubelet-client-certificate/--kubelet-client-key, checking the kubelet's
serving certificate against --kubelet-certificate-authority):

- ``log`` becomes ``GET /containerLogs/<ns>/<pod>/<container>?…`` whose
  body is streamed back as it comes (``-f`` follows);
- ``exec``/``attach``/``portforward`` with a protocol upgrade (SPDY/3.1, or
  a WebSocket with the channel protocols) become ``/exec/…``, ``/attach/…``,
  ``/portForward/…``: the client's upgrade request is sent on, the kubelet's
  101 is sent back, and then bytes are copied both ways until either side
  closes (upstream's UpgradeAwareHandler).  The wire protocols themselves
  are only spoken at the two ends (kubectl, `kinns.node.streams`).

The kubelet's errors are plain text; they come back as a ``Status`` (a 400
as BadRequest with the kubelet's text, as upstream's response checker
does), and a kubelet that cannot be reached is upstream's 500 naming the
dial error.  Only IP routing to the node's address is assumed, so this
works from the host (through its route to the fabric) as from inside the
control-plane node.

Because the upgrade path needs the raw connection after the response head,
one small HTTP/1.1 client (`_KubeletConnection`) serves both paths.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from .errors import ApiError
from .request import Request, Response

log = logging.getLogger(__name__)

NODE_SUBRESOURCES = ("log", "exec", "attach", "portforward")
UPGRADE_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/(exec|attach|portforward)$")
DEFAULT_KUBELET_PORT = 10250
# kube-apiserver's --kubelet-preferred-address-types as kubeadm sets it.
PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
DIAL_TIMEOUT = 10.0
MAX_ERROR_BODY = 50_000          # upstream's response checker reads this much of an error
_READ_SIZE = 64 * 1024
_BACKLOG = 1 << 20               # bytes queued towards the kubelet before the client is paused
# Not passed on: the client's credentials are for the API server (the kubelet
# sees the API server's), and per-connection headers of the first hop.
_DROPPED_HEADERS = {"host", "authorization", "content-length", "transfer-encoding", "keep-alive", "te",
                    "trailer", "proxy-authorization", "proxy-connection"}
# The log options the kubelet reads (PodLogOptions but `container`, which goes in the path).
_LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")

PodGetter = Callable[[str, str], dict[str, Any]]
NodeGetter = Callable[[str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class KubeletClientConfig:
    """The API server's credentials towards kubelets, and the CA their serving certificates chain to."""

    cert: Path
    key: Path
    ca: Path

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


@dataclass(frozen=True)
class Location:
    """Where on which kubelet a request goes."""

    host: str
    port: int
    path: str
    query: str

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}{self.target}"


# --------------------------------------------------------------------------- errors


def _go_dial_error(host: str, port: int, exc: BaseException) -> str:
    """A failed dial as Go's net package words it (kubectl users know these)."""
    where = f"dial tcp {host}:{port}"
    if isinstance(exc, asyncio.TimeoutError):
        return f"{where}: i/o timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"remote error: tls: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return f"{where}: connect: {os.strerror(exc.errno).lower()}"
    return f"{where}: {exc}"


def _unknown(message: str) -> ApiError:
    """The 500 kube-apiserver sends for an error that is not a Status (reason left empty)."""
    return ApiError(500, "", message)


def kubelet_error(code: int, text: str) -> ApiError:
    """A kubelet's error answer as the Status the API server returns
    (apiserver's GenericHttpResponseChecker)."""
    text = text.strip()
    if code == 400:
        return ApiError(400, "BadRequest", text)
    if code == 500:
        return ApiError(500, "InternalError", f"Internal error occurred: {text}",
                        {"causes": [{"message": text}]})
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 429: "TooManyRequests",
               503: "ServiceUnavailable", 504: "Timeout"}
    return ApiError(code, reasons.get(code, ""),
                    text or f"the server responded with the status code {code} but did not return more information")


def _status(err: ApiError) -> web.Response:
    r = web.Response(status=err.code, body=orjson.dumps(err.status()))
    r.headers["Content-Type"] = "application/json"
    return r


# --------------------------------------------------------------------------- client


class _KubeletConnection:
    """One HTTPS connection to a kubelet: a request head out, a response head in, then raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, loc: Location, ctx: ssl.SSLContext) -> _KubeletConnection:
        """Connected and TLS-verified; the dial error in Go's words (ConnectionError) if not."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(loc.host, loc.port, ssl=ctx, server_hostname=loc.host,
                                        limit=_READ_SIZE), DIAL_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectionError(_go_dial_error(loc.host, loc.port, exc)) from None
        return cls(reader, writer)

    def send_head(self, method: str, loc: Location, headers: list[tuple[str, str]]) -> None:
        lines = [f"{method} {loc.target} HTTP/1.1", f"Host: {loc.host}:{loc.port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def read_head(self) -> tuple[int, str, list[tuple[str, str]]]:
        """(status, reason, headers) of the response."""
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise ConnectionError(f"malformed HTTP response from the kubelet: {exc}") from None
        status_line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"malformed HTTP response {status_line!r} from the kubelet")
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    async def body(self, headers: list[tuple[str, str]]) -> AsyncIterator[bytes]:
        """The response body as it arrives (chunked, sized, or up to the close)."""
        names = {k.lower(): v for k, v in headers}
        if "chunked" in names.get("transfer-encoding", "").lower():
            while True:
                size_line = await self.reader.readline()
                if not size_line:
                    return
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    return
                yield await self.reader.readexactly(size)
                await self.reader.readexactly(2)
        elif "content-length" in names:
            left = int(names["content-length"])
            while left > 0:
                chunk = await self.reader.read(min(left, _READ_SIZE))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        else:
            while chunk := await self.reader.read(_READ_SIZE):
                yield chunk

    async def error_text(self, headers: list[tuple[str, str]]) -> str:
        out = b""
        try:
            async for chunk in self.body(headers):
                out += chunk
                if len(out) >= MAX_ERROR_BODY:
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        return out[:MAX_ERROR_BODY].decode(errors="replace")

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class _ToKubelet:
    """What the client sends after the upgrade, written straight on to the
    kubelet (aiohttp feeds it like its own WebSocket reader).  Reading from
    the client pauses while too much waits for the kubelet."""

    def __init__(self, kubelet: asyncio.StreamWriter, client: asyncio.Transport) -> None:
        self.kubelet = kubelet
        self.client = client
        self.closed = asyncio.Event()
        self._resuming: asyncio.Task[None] | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.kubelet.is_closing():
            return False, b""
        self.kubelet.write(data)
        if self._resuming is None and self.kubelet.transport.get_write_buffer_size() > _BACKLOG:
            self.client.pause_reading()
            self._resuming = asyncio.ensure_future(self._resume())
        return False, b""

    async def _resume(self) -> None:
        try:
            await self.kubelet.drain()
        except ConnectionError:
            self.closed.set()
        finally:
            self._resuming = None
            if not self.client.is_closing():
                self.client.resume_reading()

    def feed_eof(self) -> None:
        self.closed.set()


# --------------------------------------------------------------------------- proxy


class NodeProxy:
    """The API server's kubelet client for the four pod subresources."""

    def __init__(self, pod: PodGetter, node: NodeGetter) -> None:
        self._pod = pod          # raises the API's 404 for a missing pod
        self._node = node
        self._ssl: ssl.SSLContext | None = None

    def configure(self, config: KubeletClientConfig) -> None:
        """Set the kubelet-client credentials (before any request reaches a kubelet)."""
        self._ssl = config.ssl_context()

    # -- where

    def location(self, sub: str, namespace: str, name: str, req: Request) -> Location | None:
        """The kubelet URL for a pod subresource request (kube-apiserver's
        LogLocation/ExecLocation/...); None for the log of a pod not yet
        on a node, which upstream answers with an empty log."""
        pod = self._pod(namespace, name)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        container = ""
        if sub != "portforward":
            container = _container(pod, req.param("container"))
        if not node_name:
            if sub == "log":
                return None
            raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned")
        host, port = self._kubelet_address(node_name)
        ns, pod_name = quote(namespace, safe=""), quote(name, safe="")
        query: list[tuple[str, str]] = []
        if sub == "log":
            path = f"/containerLogs/{ns}/{pod_name}/{quote(container, safe='')}"
            query = [(k, req.param(k)) for k in _LOG_PARAMS if req.param(k)]
        elif sub == "portforward":
            path = f"/portForward/{ns}/{pod_name}"
            query = [("port", p) for k in ("ports", "port") for v in req.query.get(k, []) for p in v.split(",")]
        else:
            path = f"/{sub}/{ns}/{pod_name}/{quote(container, safe='')}"
            query = [("command", c) for c in req.query.get("command", [])]
            for api_name, kubelet_name in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"),
                                           ("tty", "tty")):
                if req.param(api_name).lower() in ("true", "1"):
                    query.append((kubelet_name, "1"))
        return Location(host, port, path, urlencode(query))

    def _kubelet_address(self, node_name: str) -> tuple[str, int]:
        node = self._node(node_name)
        if node is None:
            raise ApiError(404, "NotFound", f'nodes "{node_name}" not found',
                           {"name": node_name, "kind": "nodes"})
        status = node.get("status") or {}
        addresses = status.get("addresses") or []
        host = next((a.get("address") for t in PREFERRED_ADDRESS_TYPES for a in addresses
                     if a.get("type") == t and a.get("address")), None)
        if not host:
            known = [f"{a.get('type')}/{a.get('address')}" for a in addresses]
            raise _unknown(f"no preferred addresses found; known addresses: {known}")
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
        return str(host), int(port) if int(port) > 0 else DEFAULT_KUBELET_PORT

    async def _connect(self, loc: Location) -> _KubeletConnection:
        if self._ssl is None:
            raise ConnectionError("the API server has no kubelet client certificate "
                                  "(--kubelet-client-certificate)")
        return await _KubeletConnection.open(loc, self._ssl)

    async def get(self, node_name: str, path: str) -> str:
        """GET `path` from a node's kubelet for the API server's own use (the
        resource metrics of `metricsapi`); the body, or the kubelet's refusal as
        an ApiError, or a dial failure (ConnectionError) in Go's words."""
        host, port = self._kubelet_address(node_name)
        loc = Location(host, port, path, "")
        conn = await self._connect(loc)
        try:
            conn.send_head("GET", loc, [("Accept", "text/plain"), ("Connection", "close")])
            status, _, headers = await conn.read_head()
            if status != 200:
                raise kubelet_error(status, await conn.error_text(headers))
            return b"".join([chunk async for chunk in conn.body(headers)]).decode()
        finally:
            conn.close()

    # -- plain requests (through `ApiServer.dispatch`)

    async def plain(self, sub: str, namespace: str, name: str, req: Request) -> Response:
        """A pod subresource without an upgrade: the log, or upstream's refusal."""
        loc = self.location(sub, namespace, name, req)
        if sub != "log":
            raise ApiError(400, "BadRequest", "Upgrade request required")
        if loc is None:
            return Response(raw=b"", content_type="text/plain")
        try:
            conn = await self._connect(loc)
        except ConnectionError as exc:
            raise _unknown(f'Get "{loc.url}": {exc}') from None
        try:
            conn.send_head("GET", loc, [("Accept", "*/*"), ("Connection", "close")])
            status, _, headers = await conn.read_head()
            if status != 200:
                raise kubelet_error(status, await conn.error_text(headers))
        except ConnectionError as exc:
            conn.close()
            raise _unknown(f'Get "{loc.url}": {exc}') from None
        except ApiError:
            conn.close()
            raise

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in conn.body(headers):
                    yield chunk
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                log.debug("log stream from %s ended: %s", loc.host, exc)
            finally:
                conn.close()

        content_type = next((v for k, v in headers if k.lower() == "content-type"), "text/plain")
        return Response(raw_stream=stream(), content_type=content_type)

    # -- upgrades (from the HTTPS front end, which authorized them)

    async def upgrade(self, request: web.Request, req: Request) -> web.StreamResponse:
        """Pass an upgrade request to the pod's kubelet and splice the two connections."""
        m = UPGRADE_PATH.match(req.path)
        assert m is not None, req.path
        namespace, name, sub = m.groups()
        try:
            loc = self.location(sub, namespace, name, req)
            assert loc is not None
            conn = await self._connect(loc)
        except ApiError as err:
            return _status(err)
        except ConnectionError as exc:
            return _status(_unknown(f"error dialing backend: {exc}"))
        try:
            headers = [(k, v) for k, v in request.headers.items()
                       if k.lower() not in _DROPPED_HEADERS and not k.lower().startswith("impersonate-")]
            conn.send_head(request.method, loc, headers)
            status, reason, answer = await conn.read_head()
            if status != 101:
                refused = kubelet_error(status, await conn.error_text(answer))
                conn.close()
                return _status(refused)
        except ConnectionError as exc:
            conn.close()
            return _status(_unknown(f"error proxying to the kubelet at {loc.host}:{loc.port}: {exc}"))
        resp = web.StreamResponse(status=101, reason=reason or "Switching Protocols")
        for k, v in answer:
            if k.lower() not in ("content-length", "transfer-encoding", "date", "server"):
                resp.headers.add(k, v)
        resp.force_close()
        await resp.prepare(request)
        try:
            await _splice(request, conn)
        finally:
            conn.close()
        return resp


async def _splice(request: web.Request, conn: _KubeletConnection) -> None:
    """Copy bytes both ways between the client and the kubelet until either side closes."""
    transport = request.transport
    if transport is None:
        return
    proto: Any = request.protocol
    up = _ToKubelet(conn.writer, transport)
    proto.set_parser(up)

    async def down() -> None:
        while chunk := await conn.reader.read(_READ_SIZE):
            if transport.is_closing():
                return
            transport.write(chunk)
            if getattr(proto, "writing_paused", False):
                await proto._drain_helper()

    down_task = asyncio.create_task(down())
    up_task = asyncio.create_task(up.closed.wait())
    try:
        await asyncio.wait({down_task, up_task}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        pass
    finally:
        for t in (down_task, up_task):
            t.cancel()
        await asyncio.gather(down_task, up_task, return_exceptions=True)
        if not transport.is_closing():
            transport.close()


def _container(pod: dict[str, Any], name: str) -> str:
    """The container a request means (kube-apiserver's ValidateContainer)."""
    spec = pod.get("spec") or {}
    pod_name = str(pod["metadata"]["name"])
    containers = [str(c["name"]) for c in spec.get("containers") or []]
    every = ([c["name"] for c in spec.get("initContainers") or []] + containers
             + [c["name"] for c in spec.get("ephemeralContainers") or []])
    if not name:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise ApiError(400, "BadRequest", f"a container name must be specified for pod {pod_name}")
        raise ApiError(400, "BadRequest", f"a container name must be specified for pod {pod_name}, "
                                          f"choose one of: [{' '.join(every)}]")
    if name not in every:
        raise ApiError(400, "BadRequest", f"container {name} is not valid for pod {pod_name}")
    return name

