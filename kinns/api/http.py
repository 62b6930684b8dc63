"""The HTTPS front end: aiohttp in, `ApiServer.dispatch` behind.

Thin on purpose: it turns a socket request into a `Request`, and a
`Response` back into bytes: JSON, raw documents, or a watch stream written
as one JSON object per line with chunked encoding, which is what kubectl and
client-go read.  Protocol upgrades of pods' exec, attach and portforward
(SPDY/3.1 or WebSocket) leave `dispatch` aside: once authorized here they go
to the pod's kubelet through `nodeproxy.NodeProxy.upgrade`.

It is also where requests are authenticated, because only here is the TLS
connection at hand: the verified client certificate or the bearer token
becomes `Request.user` (`authn.py`), with kubectl's `--as` impersonation
applied; bad credentials are answered 401 here.  `ApiServer.dispatch`
authorizes; upgrades, which bypass it, are authorized here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import web

from .authn import AuthenticationError, impersonate, impersonation_requested, unauthorized
from .authz import forbidden
from .codec import MAX_BODY
from .errors import ApiError
from .nodeproxy import UPGRADE_PATH
from .request import Request, Response
from .server import ApiServer

log = logging.getLogger(__name__)

# How often a stream with nothing to send checks that its client is still there.
CLIENT_CHECK_SECONDS = 1.0

def make_app(api: ApiServer) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY + 1024 * 1024)

    async def handle(request: web.Request) -> web.StreamResponse:
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await request.read() if request.can_read_body else b""
        except web.HTTPRequestEntityTooLarge:
            err = ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
            return _json(err.code, err.status())
        req = Request(request.method, request.path, query, headers, body)
        if api.authenticator is not None:
            try:
                req.user = _authenticate(api, request, headers)
            except ApiError as err:
                return _json(err.code, err.status())
        if headers.get("upgrade", "").lower() in ("websocket", "spdy/3.1") and UPGRADE_PATH.match(request.path):
            # A WebSocket upgrade is a GET: `get pods/exec` suffices, as upstream
            # before 1.35's AuthorizePodWebsocketUpgradeCreatePermission.
            if req.user is not None and not req.user.is_masters:
                try:
                    api.authorize(req)
                except ApiError as err:
                    return _json(err.code, err.status())
            return await api.node_proxy.upgrade(request, req)
        resp = await api.dispatch(req)
        if resp.stream is not None or resp.raw_stream is not None:
            return await _stream(request, resp)
        if resp.raw is not None:
            r = web.Response(status=resp.status, body=resp.raw, content_type=None, headers=resp.headers)
            r.headers["Content-Type"] = resp.content_type
            return r
        return _json(resp.status, resp.obj, resp.content_type, resp.headers)

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _peer_certificate(request: web.Request) -> bytes | None:
    """The client certificate the TLS layer verified, DER-encoded, if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def _authenticate(api: ApiServer, request: web.Request, headers: dict[str, str]) -> Any:
    """The request's user (after impersonation); ApiError 401/403/400 when refused."""
    assert api.authenticator is not None
    try:
        user = api.authenticator.authenticate(_peer_certificate(request), headers.get("authorization", ""))
    except AuthenticationError as exc:
        log.debug("authentication failed for %s %s: %s", request.method, request.path, exc)
        raise unauthorized() from None
    if impersonation_requested(headers):
        multi: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            multi.setdefault(k.lower(), []).append(v)
        user = impersonate(user, multi, api.authorizer.authorize, forbidden)
    return user


def _json(status: int, obj: object, content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> web.Response:
    r = web.Response(status=status, body=orjson.dumps(obj), headers=headers or {})
    r.headers["Content-Type"] = content_type
    return r


async def _cancel_when_gone(request: web.Request, streaming: asyncio.Task[Any] | None) -> None:
    """Cancel a streaming handler once its client has gone.  aiohttp does not
    cancel handlers, and a stream learns of the loss only when it writes: a
    quiet `logs -f` would hold its kubelet connection (and a watch its
    watcher) until the next line came, maybe never."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(CLIENT_CHECK_SECONDS)
    if streaming is not None:
        streaming.cancel()


STREAM_BUFFER_BYTES = 1 << 20  # a producer this far ahead of a slow client waits for it


class EncodedEvents:
    """One JSON encoding of a watch event for every watch that sends it.

    Every watch of pods gets the same stored object for an event (the
    scheduler, the controllers, each node's network-policy agent...), and
    encoding it once per watch made fan-out cost grow with the number of
    nodes: upstream's watch cache serializes once per event too
    (`cachingObject`).  Keyed by the object's identity and the event type;
    the entry holds the object, so the identity is not reused while cached.
    Objects the API serves are never changed in place, only replaced."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._cache: OrderedDict[tuple[int, str], tuple[object, bytes]] = OrderedDict()

    def encode(self, item: Any) -> bytes:
        obj = item.get("object") if isinstance(item, dict) and len(item) == 2 else None
        if not isinstance(obj, dict):
            return orjson.dumps(item) + b"\n"
        key = (id(obj), str(item.get("type")))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        data = orjson.dumps(item) + b"\n"
        self._cache[key] = (obj, data)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return data


_EVENTS = EncodedEvents()


async def _stream(request: web.Request, resp: Response) -> web.StreamResponse:
    """Stream a watch or a log: what the producer has ready goes out in one write.

    The producer runs as its own task and appends encoded items; this task
    writes whatever has accumulated since its last write as one chunk.  When
    a committed batch wakes a watch with several events, they cost one
    chunk, one TLS record and one send() instead of one each (those were a
    quarter of the API server's CPU in a 300-pod rollout)."""
    out = web.StreamResponse(status=200)
    out.headers["Content-Type"] = resp.content_type
    out.enable_chunked_encoding()
    await out.prepare(request)
    stream: Any = resp.stream if resp.stream is not None else resp.raw_stream
    raw = resp.stream is None
    pending: list[bytes] = []
    size = 0
    ready, room = asyncio.Event(), asyncio.Event()

    async def produce() -> None:
        nonlocal size
        async for item in stream:
            data = item if raw else _EVENTS.encode(item)
            pending.append(data)
            size += len(data)
            ready.set()
            if size > STREAM_BUFFER_BYTES:
                room.clear()
                await room.wait()

    producer = asyncio.create_task(produce())
    producer.add_done_callback(lambda _t: ready.set())
    watcher = asyncio.create_task(_cancel_when_gone(request, asyncio.current_task()))
    try:
        while True:
            if not pending:
                if producer.done():
                    break
                await ready.wait()
                ready.clear()
                continue
            data = b"".join(pending)
            pending.clear()
            size = 0
            room.set()
            await out.write(data)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watcher.cancel()
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if producer.done() and not producer.cancelled() and producer.exception() is not None:
        raise producer.exception()  # type: ignore[misc]
    try:
        await out.write_eof()
    except ConnectionResetError:
        pass
    return out


def server_ssl_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    """TLS for the API: our serving cert; client certs are verified when sent."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def serve(api: ApiServer, host: str, port: int, ssl_context: ssl.SSLContext | None) -> web.AppRunner:
    """Start listening; returns the runner so the caller can clean up."""
    app = make_app(api)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    return runner
