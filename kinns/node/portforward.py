"""`kubectl port-forward`: TCP connections from the client into a pod.

kubectl opens ``/api/v1/namespaces/<ns>/pods/<pod>/portforward`` with a
protocol upgrade, which the API server passes on unchanged to the pod's
kubelet as ``/portForward/<ns>/<pod>`` (`kinns.api.nodeproxy`); this module
is the kubelet's end (`kinns.node.server`).  kubectl 1.31 and later ask for a WebSocket with
subprotocol ``SPDY/3.1+portforward.k8s.io``: a SPDY/3.1 connection whose
bytes ride in binary WebSocket messages (message boundaries mean nothing).
Older ones, and newer ones whose WebSocket attempt is refused, ask for plain
SPDY/3.1 with ``X-Stream-Protocol-Version: portforward.k8s.io``.

Either way the SPDY connection then carries, per local connection kubectl
accepted, a pair of streams with headers ``streamType: error|data``,
``port: N`` and ``requestID: K`` (clients too old to send a request ID are
paired by stream id as upstream's kubelet does: the data stream is the error
stream's id + 2).  The client half-closes the error stream at once.  For each
complete pair we connect to ``localhost:N`` from inside the pod's network
namespace and copy bytes both ways: data-stream input goes to the pod (its
FIN becomes a write shutdown), pod output goes back on the data stream.
When the pod's side ends we close the data stream, then the error stream;
kubectl waits for both.  A failure (nothing listening, bad port) is written
to the error stream as plain text, upstream's kubelet wording, which kubectl
prints as ``an error occurred forwarding L -> N: …``.

Clients other than kubectl (the Python client, for one) use the older
WebSocket protocol ``v4.channel.k8s.io`` instead: ports in the query, two
channels per port, one connection per port for the whole session
(`ChannelForward`).

Errors found before upgrading (no such pod, no running sandbox) are
answered as plain text with their HTTP code, as upstream's kubelet does (the
API server makes a ``Status`` of them).  The SPDY framing (header
dictionary, raw-byte feed) is shared with `kinns.node.streams`; this module
adds a SPDY session with any number of streams.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import socket
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ..api.errors import ApiError
from ..api.request import Request
from ..net import netns
from .streams import (_FLAG_FIN, _GOAWAY, _HEADERS, _PING, _RST_STREAM, _SYN_REPLY, _SYN_STREAM,
                      SPDY_DICTIONARY, _RawFeed, error_text, kubelet_pod, parse_spdy_headers,
                      read_spdy_frames)

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
WS_TUNNEL_PROTOCOL = "SPDY/3.1+" + PORTFORWARD_PROTOCOL
# The older channel protocol over WebSocket (not kubectl), best first.
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")

# The kubelet's path (upstream also takes a pod UID after the name).
_PATH = re.compile(r"^/portForward/([^/]+)/([^/]+)$")
_READ_SIZE = 64 * 1024
_PAIR_TIMEOUT = 30.0          # seconds to wait for the other stream of a pair
_RST_PROTOCOL_ERROR, _RST_CANCEL = 1, 5


# --------------------------------------------------------------------------- byte carriers


class _TransportOut:
    """Frames out on the upgraded HTTP connection itself (plain SPDY)."""

    def __init__(self, request: web.Request) -> None:
        transport = request.transport
        assert transport is not None
        self.transport = transport
        self.request = request

    def write(self, frame: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(frame)

    async def drain(self) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("client went away")
        proto: Any = self.request.protocol
        if getattr(proto, "writing_paused", False):
            await proto._drain_helper()

    async def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class _WebSocketOut:
    """Frames out as binary WebSocket messages, in order, by one sender task
    (so that writing stays synchronous for the session)."""

    _BACKLOG = 64

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.moved = asyncio.Event()
        self.failed = False
        self.sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                self.moved.set()
                if frame is None:
                    return
                await self.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError) as e:
            log.debug("port-forward WebSocket send failed: %s", e)
        finally:
            self.failed = True
            self.moved.set()

    def write(self, frame: bytes) -> None:
        if not self.failed:
            self.queue.put_nowait(frame)

    async def drain(self) -> None:
        while self.queue.qsize() > self._BACKLOG and not self.failed:
            self.moved.clear()
            await self.moved.wait()
        if self.failed:
            raise ConnectionResetError("client went away")

    async def close(self) -> None:
        if not self.failed:
            self.queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self.sender), 5.0)
            except asyncio.TimeoutError:
                pass
        self.sender.cancel()
        try:
            await self.ws.close()
        except (ConnectionError, RuntimeError):
            pass


async def _pump_websocket(ws: web.WebSocketResponse, feed: _RawFeed) -> None:
    """The client's binary messages, as one byte stream, into `feed`."""
    try:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    feed.feed_data(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
    finally:
        feed.feed_eof()


# --------------------------------------------------------------------------- SPDY session


@dataclass(eq=False)
class SpdyStream:
    sid: int
    headers: dict[str, str]
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    remote_done: bool = False     # client sent FIN or RST
    local_done: bool = False      # we sent FIN or RST
    reset: bool = False

    async def read(self) -> bytes | None:
        """Next bytes the client wrote; None at its FIN, reset, or the end of
        the connection."""
        return await self.inbound.get()


class SpdySession:
    """The server side of a SPDY/3.1 connection carrying any number of
    client-opened streams.  `on_stream` is called for each new stream (after
    we replied to it).  Like moby/spdystream, no flow control."""

    def __init__(self, feed: _RawFeed, out: _TransportOut | _WebSocketOut,
                 on_stream: Callable[[SpdyStream], None]) -> None:
        self.feed = feed
        self.out = out
        self.on_stream = on_stream
        self.deflate = zlib.compressobj(zdict=SPDY_DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self.streams: dict[int, SpdyStream] = {}
        self.closed = False

    # -- frames out
    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        self.out.write(struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload)

    def _headers_block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for k, v in headers.items():
            raw += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    async def send(self, stream: SpdyStream, data: bytes) -> None:
        if stream.local_done or stream.reset or self.closed:
            raise ConnectionResetError("stream closed")
        for i in range(0, len(data), 0xFFFF):
            chunk = data[i:i + 0xFFFF]
            self.out.write(struct.pack(">II", stream.sid, len(chunk)) + chunk)
        await self.out.drain()

    def close_stream(self, stream: SpdyStream) -> None:
        """Half-close: FIN on our side."""
        if stream.local_done or stream.reset or self.closed:
            return
        stream.local_done = True
        self.out.write(struct.pack(">II", stream.sid, _FLAG_FIN << 24))
        self._forget(stream)

    def reset_stream(self, stream: SpdyStream, status: int = _RST_CANCEL) -> None:
        if not stream.reset and not self.closed:
            self._control(_RST_STREAM, 0, struct.pack(">II", stream.sid, status))
        stream.reset = stream.local_done = stream.remote_done = True
        stream.inbound.put_nowait(None)
        self.streams.pop(stream.sid, None)

    def _forget(self, stream: SpdyStream) -> None:
        if stream.local_done and stream.remote_done:
            self.streams.pop(stream.sid, None)

    # -- frames in
    def _parse_headers(self, block: bytes) -> dict[str, str]:
        return parse_spdy_headers(self.inflate, block)

    async def run(self) -> None:
        """Read frames until the client goes away (or sends GOAWAY)."""
        try:
            await read_spdy_frames(self.feed, self._on_control, self._on_data)
        except (zlib.error, struct.error, UnicodeDecodeError) as e:
            log.warning("bad SPDY frame from port-forward client: %s", e)
        finally:
            self.closed = True
            for s in list(self.streams.values()):
                s.remote_done = True
                s.inbound.put_nowait(None)
            self.streams.clear()

    def _on_control(self, kind: int, flags: int, payload: bytes) -> bool:
        if kind == _SYN_STREAM:
            (sid,) = struct.unpack_from(">I", payload, 0)
            sid &= 0x7FFFFFFF
            stream = SpdyStream(sid, self._parse_headers(payload[10:]))
            self.streams[sid] = stream
            self._control(_SYN_REPLY, 0, struct.pack(">I", sid) + self._headers_block({}))
            if flags & _FLAG_FIN:
                stream.remote_done = True
                stream.inbound.put_nowait(None)
            self.on_stream(stream)
        elif kind == _RST_STREAM:
            (sid,) = struct.unpack_from(">I", payload, 0)
            gone = self.streams.pop(sid & 0x7FFFFFFF, None)
            if gone is not None:
                gone.reset = gone.remote_done = gone.local_done = True
                gone.inbound.put_nowait(None)
        elif kind == _PING:
            self._control(_PING, 0, payload)
        elif kind == _GOAWAY:
            return False
        elif kind == _HEADERS:
            self.inflate.decompress(payload[4:])     # keep the zlib context in step
        return True

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        stream = self.streams.get(sid)
        if stream is None or stream.remote_done:
            return
        if payload:
            stream.inbound.put_nowait(payload)
        if flags & _FLAG_FIN:
            stream.remote_done = True
            stream.inbound.put_nowait(None)
            self._forget(stream)

    async def close(self) -> None:
        self.closed = True
        await self.out.close()


# --------------------------------------------------------------------------- forwarding


async def _socket_in(ns: str, family: int) -> socket.socket:
    """A TCP socket created inside network namespace `ns` (it stays there)."""

    def make() -> socket.socket:
        with netns.entered(ns):
            s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        return s

    return await asyncio.to_thread(make)


async def connect_in(ns: str, port: int) -> socket.socket:
    """Connect to localhost:`port` inside `ns`: 127.0.0.1, then ::1."""
    loop = asyncio.get_running_loop()
    errors = []
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = await _socket_in(ns, family)
        except OSError as e:
            errors.append(f"{addr}: {e.strerror or e}")
            continue
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (addr, port)), 10.0)
            return sock
        except (OSError, asyncio.TimeoutError) as e:
            sock.close()
            if isinstance(e, asyncio.TimeoutError):
                reason = "i/o timeout"
            else:
                reason = os.strerror(e.errno).lower() if e.errno else str(e)
            tcp = "tcp4" if family == socket.AF_INET else "tcp6"
            host = addr if family == socket.AF_INET else f"[{addr}]"
            errors.append(f"dial {tcp} {host}:{port}: connect: {reason}")
    raise ConnectionError(", ".join(errors))


async def pipe(sock: socket.socket, recv: Callable[[], Awaitable[bytes | None]],
               send: Callable[[bytes], Awaitable[None]], gone: Callable[[], bool]) -> BaseException | None:
    """Copy between a connected pod socket and a client stream until the
    pod's side ends (or the client goes away: `gone()`).  `recv()` gives the
    client's bytes, None at its end (which half-closes the pod connection);
    `send` passes the pod's bytes on.  Returns what failed, if anything did
    while the client was still there."""
    try:
        reader, writer = await asyncio.open_connection(sock=sock, limit=_READ_SIZE)
    except OSError as e:
        sock.close()
        return e

    async def up() -> None:
        while True:
            chunk = await recv()
            if chunk is None:
                break
            writer.write(chunk)
            await writer.drain()
        if not gone() and not writer.is_closing() and writer.can_write_eof():
            writer.write_eof()

    async def down() -> None:
        while True:
            chunk = await reader.read(_READ_SIZE)
            if not chunk:
                return
            await send(chunk)

    up_t = asyncio.create_task(up())
    down_t = asyncio.create_task(down())
    try:
        watch: set[asyncio.Task[None]] = {up_t, down_t}
        while down_t in watch:
            done, watch = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            if up_t in done and (up_t.exception() is not None or gone()):
                break     # the client (or the pod's receiving side) went away
        failed = down_t.exception() if down_t.done() else None
        return None if gone() else failed
    finally:
        for t in (up_t, down_t):
            t.cancel()
        await asyncio.gather(up_t, down_t, return_exceptions=True)
        writer.close()


class PortForwardSession:
    """One port-forward connection for one pod: pairs streams and forwards."""

    def __init__(self, spdy_out: _TransportOut | _WebSocketOut, feed: _RawFeed, pod: dict[str, Any],
                 ns_path: str) -> None:
        self.pod_name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.ns_path = ns_path
        self.session = SpdySession(feed, spdy_out, self._on_stream)
        self.pending: dict[str, dict[str, SpdyStream]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _on_stream(self, stream: SpdyStream) -> None:
        kind = stream.headers.get("streamtype", "")
        if kind not in ("data", "error"):
            log.debug("port-forward stream %d of unknown type %r", stream.sid, kind)
            self.session.reset_stream(stream, _RST_PROTOCOL_ERROR)
            return
        rid = stream.headers.get("requestid")
        if not rid:
            # Old clients: upstream's kubelet pairs data with error id + 2.
            rid = str(stream.sid if kind == "error" else stream.sid - 2)
        pair = self.pending.setdefault(rid, {})
        if kind in pair:
            log.debug("port-forward request %s: second %s stream", rid, kind)
            self.session.reset_stream(stream, _RST_PROTOCOL_ERROR)
            return
        pair[kind] = stream
        if len(pair) == 2:
            del self.pending[rid]
            self._spawn(self._forward(rid, pair["data"], pair["error"]))
        else:
            self._spawn(self._expire(rid))

    async def _expire(self, rid: str) -> None:
        await asyncio.sleep(_PAIR_TIMEOUT)
        pair = self.pending.pop(rid, None)
        if pair:
            log.debug("port-forward request %s: timed out waiting for its other stream", rid)
            for s in pair.values():
                self.session.reset_stream(s)

    def _fail(self, data: SpdyStream, error: SpdyStream, port: Any, why: str) -> Awaitable[None]:
        msg = f"error forwarding port {port} to pod {self.pod_name}, uid {self.uid}: {why}"
        log.info("%s", msg)

        async def report() -> None:
            try:
                await self.session.send(error, msg.encode())
            except ConnectionError:
                pass
            self.session.close_stream(data)
            self.session.close_stream(error)

        return report()

    async def _forward(self, rid: str, data: SpdyStream, error: SpdyStream) -> None:
        raw_port = data.headers.get("port", "")
        try:
            port = int(raw_port)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            await self._fail(data, error, raw_port, f'invalid port "{raw_port}"')
            return
        try:
            sock = await connect_in(self.ns_path, port)
        except ConnectionError as e:
            await self._fail(data, error, port, f'failed to connect to localhost:{port} inside namespace '
                                                f'"{self.ns_path}": {e}')
            return
        failed = await pipe(sock, data.read, lambda chunk: self.session.send(data, chunk),
                            lambda: data.reset or self.session.closed)
        if failed is not None:
            log.debug("port-forward request %s: %s", rid, failed)
        self.session.close_stream(data)
        self.session.close_stream(error)

    async def run(self) -> None:
        try:
            await self.session.run()
        finally:
            for t in list(self.tasks):
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.session.close()


class ChannelForward:
    """The older WebSocket port-forward (``v4.channel.k8s.io``, or its base64
    form), which clients other than kubectl use (the Python client, for
    one): the ports come in the query (``ports=80,8080``), each gets one
    connection for the whole session on channels 2i (data) and 2i+1
    (error); the first message on each channel is the port as two bytes,
    little-endian.  The session ends when every port's connection ended."""

    def __init__(self, ws: web.WebSocketResponse, ports: list[int], pod: dict[str, Any], ns_path: str) -> None:
        self.ws = ws
        self.base64 = ws.ws_protocol == "v4.base64.channel.k8s.io"
        self.ports = ports
        self.pod_name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.ns_path = ns_path
        self.inbound: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in ports]
        self.gone = False

    async def send(self, channel: int, data: bytes) -> None:
        if self.gone or self.ws.closed:
            raise ConnectionResetError("client went away")
        if self.base64:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    async def _receive(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.BINARY and msg.data:
                    channel, payload = msg.data[0], bytes(msg.data[1:])
                elif msg.type == WSMsgType.TEXT and msg.data:
                    channel, payload = ord(msg.data[0]) - ord("0"), base64.b64decode(msg.data[1:])
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                else:
                    continue
                if channel % 2 == 0 and channel // 2 < len(self.ports) and payload:
                    self.inbound[channel // 2].put_nowait(payload)
        except (ValueError, TypeError) as e:
            log.debug("bad port-forward WebSocket message: %s", e)
        finally:
            self.gone = True
            for q in self.inbound:
                q.put_nowait(None)

    async def _port(self, i: int, port: int) -> None:
        try:
            sock = await connect_in(self.ns_path, port)
        except ConnectionError as e:
            msg = (f"error forwarding port {port} to pod {self.pod_name}, uid {self.uid}: failed to connect "
                   f'to localhost:{port} inside namespace "{self.ns_path}": {e}')
            log.info("%s", msg)
            await self.send(2 * i + 1, msg.encode())
            return
        failed = await pipe(sock, self.inbound[i].get, lambda chunk: self.send(2 * i, chunk), lambda: self.gone)
        if failed is not None:
            log.debug("port-forward to port %d: %s", port, failed)

    async def run(self) -> None:
        receiver = asyncio.create_task(self._receive())
        try:
            for i, port in enumerate(self.ports):
                head = struct.pack("<H", port)
                await self.send(2 * i, head)
                await self.send(2 * i + 1, head)
            await asyncio.gather(*(self._port(i, p) for i, p in enumerate(self.ports)), return_exceptions=True)
        except ConnectionError:
            pass
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            try:
                await self.ws.close()
            except (ConnectionError, RuntimeError):
                pass


def _query_ports(req: Request) -> list[int]:
    """``port`` (the kubelet's name, as the API server sends it) or ``ports``
    (the API's), as upstream parses them."""
    raw = [v for name in ("ports", "port") for v in req.query.get(name, [])]
    if not raw:
        raise ApiError(400, "BadRequest", 'query parameter "port" is required')
    ports = []
    for value in raw:
        for p in value.split(","):
            try:
                port = int(p)
            except ValueError:
                raise ApiError(400, "BadRequest", f'unable to parse "{p}" as a port: invalid syntax') from None
            if not 0 < port < 65536:
                raise ApiError(400, "BadRequest", f'port "{p}" must be > 0 and < 65536')
            ports.append(port)
    return ports


# --------------------------------------------------------------------------- handler


class PortForwardServer:
    """The kubelet's /portForward handler (an upgrade, for `KubeletServer`)."""

    def __init__(self, kubelet: "Kubelet") -> None:
        self.kubelet = kubelet

    def _prepare(self, req: Request) -> tuple[dict[str, Any], str]:
        m = _PATH.match(req.path)
        if m is None:
            raise ApiError(404, "NotFound", "404 page not found")
        ns, name = m.groups()
        pod = kubelet_pod(self.kubelet, ns, name)
        if pod is None:
            raise ApiError(404, "NotFound", "pod does not exist")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise ApiError(400, "BadRequest",
                           f"cannot port-forward to a container in a completed pod; current phase is {phase}")
        rec = self.kubelet.records.get(pod["metadata"]["uid"])
        if rec is None or rec.sandbox is None or not rec.sandbox.netns:
            raise ApiError(400, "BadRequest", f'pod "{name}" has no running sandbox')
        return pod, rec.sandbox.netns

    async def handle(self, request: web.Request, req: Request) -> web.StreamResponse:
        try:
            pod, ns_path = self._prepare(req)
        except ApiError as e:
            return error_text(e)
        upgrade = req.header("upgrade").lower()
        if upgrade == "websocket":
            offered = [p.strip() for p in req.header("sec-websocket-protocol").split(",") if p.strip()]
            if WS_TUNNEL_PROTOCOL not in offered:
                if offered and not any(p in CHANNEL_PROTOCOLS for p in offered):
                    return error_text(ApiError(
                        400, "BadRequest", f"unsupported WebSocket subprotocols {offered}; this server speaks "
                                           f"{', '.join((WS_TUNNEL_PROTOCOL, *CHANNEL_PROTOCOLS))}"))
                try:
                    ports = _query_ports(req)
                except ApiError as e:
                    return error_text(e)
                ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True, compress=False,
                                           max_msg_size=16 * 1024 * 1024)
                await ws.prepare(request)
                await ChannelForward(ws, ports, pod, ns_path).run()
                return ws
            ws = web.WebSocketResponse(protocols=(WS_TUNNEL_PROTOCOL,), autoping=True, compress=False,
                                       max_msg_size=16 * 1024 * 1024)
            await ws.prepare(request)
            feed = _RawFeed()
            pump = asyncio.create_task(_pump_websocket(ws, feed))
            try:
                await PortForwardSession(_WebSocketOut(ws), feed, pod, ns_path).run()
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            return ws
        if upgrade == "spdy/3.1":
            offered = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
                       for v in h.split(",") if v.strip()]
            if PORTFORWARD_PROTOCOL not in offered:
                return error_text(ApiError(
                    403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                      f"{offered}, server supports {[PORTFORWARD_PROTOCOL]}"))
            resp = web.StreamResponse(status=101, headers={
                "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": PORTFORWARD_PROTOCOL})
            resp.force_close()
            await resp.prepare(request)
            feed = _RawFeed()
            proto: Any = request.protocol
            proto.set_parser(feed)
            await PortForwardSession(_TransportOut(request), feed, pod, ns_path).run()
            return resp
        if not upgrade:
            return error_text(ApiError(400, "BadRequest", "Upgrade request required"))
        return error_text(ApiError(400, "BadRequest", f"unsupported upgrade {upgrade!r}"))
