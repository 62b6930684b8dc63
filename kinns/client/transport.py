"""How a client request reaches an API server: the transport seam.

The `Client` speaks Kubernetes REST in terms of `Request`/`Response` (the same
pair `ApiServer.dispatch` takes) and never touches a socket itself.  A
transport moves that pair:

- `InProcessTransport` hands it straight to `ApiServer.dispatch`: no TLS, no
  JSON, used by controllers running inside the cluster daemon.  Bodies go as
  Python objects; answers are copied so no caller can scribble on the
  server's own dicts.
- `HttpTransport` sends it over HTTPS with aiohttp and client certificates
  (optionally read from a kubeconfig), exactly as kubectl does; a watch is a
  chunked response of JSON lines, turned back into an async iterator of
  event dicts.  This is what remote node agents and parity tests use.
- `MockTransport` calls a test's own handler (httpx's MockTransport idea), so
  unit tests of the client, informers and controllers need no server.

Every transport returns a `Response`; turning error statuses into
`ApiError` is the client's job, so all transports fail the same way.
"""

from __future__ import annotations

import base64
import inspect
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol, Union

import orjson
import yaml

from ..api.request import Request, Response

Dispatch = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request], Union[Response, Awaitable[Response]]]


class Transport(Protocol):
    """Anything that can carry one API request and bring back its answer."""

    async def request(self, req: Request) -> Response: ...


def is_watch(req: Request) -> bool:
    return req.param("watch") in ("true", "1")


def _copy(obj: Any) -> Any:
    """A deep copy of JSON data; orjson round-trips faster than copy.deepcopy."""
    if obj is None:
        return None
    return orjson.loads(orjson.dumps(obj))


class InProcessTransport:
    """Calls `ApiServer.dispatch` directly (no sockets, no JSON encoding).

    `copy_objects` (default on) copies every answer and watch event, because
    the server may hand back the very dicts its store and watch cache hold,
    shared with every other watcher.
    """

    def __init__(self, dispatch: Dispatch, *, copy_objects: bool = True) -> None:
        self._dispatch = dispatch
        self._copy = copy_objects

    async def request(self, req: Request) -> Response:
        resp = await self._dispatch(req)
        if not self._copy:
            return resp
        if resp.stream is not None:
            return Response(resp.status, obj=_copy(resp.obj), stream=_copy_stream(resp.stream),
                            content_type=resp.content_type, headers=dict(resp.headers))
        return Response(resp.status, obj=_copy(resp.obj), raw=resp.raw,
                        content_type=resp.content_type, headers=dict(resp.headers))

    async def close(self) -> None:
        return None


async def _copy_stream(stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    try:
        async for ev in stream:
            yield _copy(ev)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class MockTransport:
    """A test double: every request goes to `handler` (sync or async).

    `requests` keeps what was sent, so tests can assert on paths, query
    parameters and bodies.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def request(self, req: Request) -> Response:
        self.requests.append(req)
        out = self.handler(req)
        if inspect.isawaitable(out):
            out = await out
        assert isinstance(out, Response)
        return out

    async def close(self) -> None:
        return None


class HttpTransport:
    """Kubernetes REST over HTTPS with aiohttp, authenticated by client cert or token.

    The aiohttp session is made on first use, because it must belong to the
    running event loop.  Plain requests have a total timeout; watches have
    none (the server ends them with `timeoutSeconds`), only a connect timeout.
    """

    def __init__(
        self,
        server_url: str,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        insecure: bool = False,
        timeout: float = 60.0,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        if ssl_context is None and self.server_url.startswith("https"):
            ssl_context = make_ssl_context(ca_file, cert_file, key_file, insecure=insecure)
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._session: Any = None  # aiohttp.ClientSession, created lazily

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, context: str | None = None) -> "HttpTransport":
        """Build a transport from a kubeconfig (default: $KUBECONFIG or ~/.kube/config)."""
        cfg = load_kubeconfig(path, context)
        return cls(cfg["server"], ssl_context=cfg["ssl_context"], token=cfg.get("token"))

    def _get_session(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                connector=aiohttp.TCPConnector(ssl=self._ssl),
            )
        return self._session

    async def request(self, req: Request) -> Response:
        import aiohttp

        session = self._get_session()
        headers = {k: v for k, v in req.headers.items()}
        headers.setdefault("accept", "application/json")
        if self.token:
            headers.setdefault("authorization", f"Bearer {self.token}")
        body: bytes | None = None
        if req.obj is not None:
            body = orjson.dumps(req.obj)
            headers.setdefault("content-type", "application/json")
        elif req.body:
            body = req.body
        params = [(k, v) for k, vals in req.query.items() for v in vals]
        url = self.server_url + req.path
        watch = is_watch(req)
        timeout = aiohttp.ClientTimeout(total=None if watch else self.timeout, sock_connect=10)
        resp = await session.request(req.method, url, params=params, data=body, headers=headers, timeout=timeout)
        ctype = resp.headers.get("Content-Type", "")
        out_headers = {k: v for k, v in resp.headers.items()}
        if watch and resp.status < 400:
            return Response(resp.status, stream=_json_lines(resp), content_type=ctype, headers=out_headers)
        try:
            data = await resp.read()
        finally:
            resp.release()
        if "json" in ctype and data:
            try:
                return Response(resp.status, obj=orjson.loads(data), content_type=ctype, headers=out_headers)
            except orjson.JSONDecodeError:
                pass
        return Response(resp.status, raw=data, content_type=ctype, headers=out_headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _json_lines(resp: Any) -> AsyncIterator[dict[str, Any]]:
    """Split a chunked watch body into JSON objects, one per line.

    Reads raw chunks rather than `readline()`, whose line-length limit a
    large object (a big ConfigMap) would exceed.
    """
    buf = b""
    try:
        async for chunk in resp.content.iter_any():
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl], buf[nl + 1:]
                if line.strip():
                    yield orjson.loads(line)
        if buf.strip():
            yield orjson.loads(buf)
    finally:
        resp.close()


# ------------------------------------------------------------------ TLS setup

def make_ssl_context(
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    *,
    ca_data: bytes | None = None,
    cert_data: bytes | None = None,
    key_data: bytes | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    """A client TLS context: trust the cluster CA, present the client certificate.

    Certificate data (as kubeconfigs embed it) is written to a private
    temporary directory only for the moment `load_cert_chain` reads it,
    because Python's ssl module loads key pairs from files only.
    """
    ctx = ssl.create_default_context(cafile=ca_file)
    if ca_data:
        ctx.load_verify_locations(cadata=ca_data.decode())
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_data and key_data:
        with tempfile.TemporaryDirectory(prefix="kinns-client-") as d:
            cp, kp = Path(d) / "cert.pem", Path(d) / "key.pem"
            cp.write_bytes(cert_data)
            kp.touch(mode=0o600)
            kp.write_bytes(key_data)
            ctx.load_cert_chain(str(cp), str(kp))
    elif cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _named(entries: list[dict[str, Any]] | None, name: str, what: str) -> dict[str, Any]:
    for e in entries or []:
        if e.get("name") == name:
            return e.get(what) or {}
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


def load_kubeconfig(path: str | os.PathLike[str] | None = None, context: str | None = None) -> dict[str, Any]:
    """Resolve one context of a kubeconfig to {server, ssl_context, token, ca_file, ca_data}."""
    if path is None:
        env = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        path = env[0] if env else Path.home() / ".kube" / "config"
    p = Path(path)
    data = yaml.safe_load(p.read_text()) or {}
    ctx_name = context or data.get("current-context")
    if not ctx_name:
        raise ValueError(f"{p}: no context given and no current-context set")
    ctx = _named(data.get("contexts"), ctx_name, "context")
    cluster = _named(data.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(data.get("users"), ctx.get("user", ""), "user") if ctx.get("user") else {}
    base = p.parent

    def file_of(key: str, src: dict[str, Any]) -> str | None:
        v = src.get(key)
        if not v:
            return None
        return str(Path(v) if os.path.isabs(v) else base / v)

    def data_of(key: str, src: dict[str, Any]) -> bytes | None:
        v = src.get(key)
        return base64.b64decode(v) if v else None

    server = cluster.get("server", "")
    ssl_ctx = None
    if server.startswith("https"):
        ssl_ctx = make_ssl_context(
            file_of("certificate-authority", cluster),
            file_of("client-certificate", user),
            file_of("client-key", user),
            ca_data=data_of("certificate-authority-data", cluster),
            cert_data=data_of("client-certificate-data", user),
            key_data=data_of("client-key-data", user),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(file_of("tokenFile", user) or "").read_text().strip()
    # The CA alone too: a client that authenticates by token must not also present the certificate.
    return {"server": server, "ssl_context": ssl_ctx, "token": token,
            "ca_file": file_of("certificate-authority", cluster),
            "ca_data": data_of("certificate-authority-data", cluster)}
