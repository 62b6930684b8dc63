"""`kubectl exec` and `kubectl attach`: streams between a client and a container.

kubectl opens exec with a protocol upgrade on the API server's
``/api/v1/namespaces/<ns>/pods/<pod>/exec?command=…&stdin=&stdout=&stderr=&tty=&container=``,
which passes the upgrade on, unchanged, to the kubelet of the pod's node
(`kinns.api.nodeproxy`) as ``/exec/<ns>/<pod>/<container>?command=…&input=1&output=1&error=1&tty=1``
on its port 10250 (`kinns.node.server`); this module is that end.
kubectl 1.30 and later ask for a WebSocket with subprotocol
``v5.channel.k8s.io`` (or ``v4``); older ones, and newer ones whose
WebSocket attempt is refused, ask for SPDY/3.1.  Both carry the same five
logical streams: 0 stdin, 1 stdout, 2 stderr, 3 error (one ``Status`` as
JSON, written when the command ends), 4 resize (``{"Width":…,"Height":…}``).

On a WebSocket every message is one frame whose first byte names the
stream; v5 adds stream 255, "close", whose second byte names the stream the
client will not write any more (stdin EOF).  SPDY gives each logical stream
its own SPDY stream, named by a ``streamType`` header; see `SpdyWire`.

Everything about the command itself is independent of the wire: `ExecSession`
starts it through the runtime (pipes, or one pseudo-terminal with a tty),
pumps its file descriptors with the event loop's readers (nothing blocks the
loop), and when it exits drains the output and reports the exit as upstream's
kubelet does: ``Success``, or ``NonZeroExitCode`` with an ``ExitCode`` cause,
from which kubectl prints ``command terminated with exit code N`` and exits
with N.

`kubectl attach` (and `kubectl run -i`) rides the same wires: input goes to
the container's stdin through the runtime's attach socket, output is the
container log followed from the moment of attaching (`AttachSession`).

Errors found before upgrading (no such pod, container not running, no
command) are answered as plain text with their HTTP code, as upstream's
kubelet does; the API server turns them into the ``Status`` kubectl shows.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import signal
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterator, Protocol

import orjson
from aiohttp import WSMsgType, web

from ..api.errors import ApiError
from ..api.request import Request
from .containers import find as find_container

if TYPE_CHECKING:
    from .kubelet import Kubelet, PodRecord
    from .runtime import ContainerStatus, ExecHandle, Runtime

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

# WebSocket subprotocols we speak, best first.
WS_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
# SPDY stream protocols (X-Stream-Protocol-Version), best first.
SPDY_PROTOCOLS = ("v4.channel.k8s.io",)

# The kubelet's paths (upstream also takes a pod UID before the container).
_PATH = re.compile(r"^/(exec|attach)/([^/]+)/([^/]+)/([^/]+)$")
_READ_SIZE = 64 * 1024


def parse_spdy_headers(inflate: Any, block: bytes) -> dict[str, str]:
    """A SPDY/3 header block (zlib with the SPDY dictionary) as lower-case name -> value."""
    raw = inflate.decompress(block)
    (count,) = struct.unpack_from(">I", raw, 0)
    pos, out = 4, {}
    for _ in range(count):
        (n,) = struct.unpack_from(">I", raw, pos)
        name = raw[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        (n,) = struct.unpack_from(">I", raw, pos)
        out[name.lower()] = raw[pos + 4:pos + 4 + n].decode(errors="replace")
        pos += 4 + n
    return out


async def read_spdy_frames(feed: "_RawFeed", on_control: Callable[[int, int, bytes], bool],
                           on_data: Callable[[int, int, bytes], None]) -> None:
    """Read SPDY/3 frames until the client closes or `on_control` says stop.

    Control frames go to `on_control(type, flags, payload)` (returning False
    ends the read, e.g. on GOAWAY), data frames to `on_data(stream id,
    flags, payload)`.  Shared by exec/attach and port-forward.
    """
    while True:
        head = await feed.read_exactly(8)
        if head is None:
            return
        word, flags_len = struct.unpack(">II", head)
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        payload = await feed.read_exactly(length)
        if payload is None:
            return
        if word & 0x80000000:
            if not on_control(word & 0xFFFF, flags, payload):
                return
        else:
            on_data(word & 0x7FFFFFFF, flags, payload)


def kubelet_pod(kubelet: "Kubelet", namespace: str, name: str) -> dict[str, Any] | None:
    """The pod as this kubelet runs it (upstream's GetPodByName): a static
    pod's own object, whose UID the kubelet's records use (its mirror in the
    API has another), else the API's pod bound to this node."""
    key = f"{namespace}/{name}"
    return kubelet.static.get(key) or kubelet.pods.get(key)


# --------------------------------------------------------------------------- options

@dataclass
class StreamOptions:
    """What the client asked for, from the query string."""

    namespace: str
    pod: str
    verb: str                 # exec | attach
    command: list[str]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _flag(req: Request, *names: str) -> bool:
    return any(req.param(name).lower() in ("true", "1") for name in names)


def parse_options(req: Request) -> StreamOptions:
    """The kubelet's exec/attach request: upstream's query names (``input``,
    ``output``, ``error``, ``tty`` = 1, as the API server sends them) or the
    API's (``stdin``, ``stdout``, ``stderr`` = true)."""
    m = _PATH.match(req.path)
    if m is None:
        raise ApiError(404, "NotFound", "404 page not found")
    verb, ns, pod, container = m.groups()
    opts = StreamOptions(ns, pod, verb, list(req.query.get("command", [])), container,
                         _flag(req, "stdin", "input"), _flag(req, "stdout", "output"),
                         _flag(req, "stderr", "error"), _flag(req, "tty"))
    if opts.tty:
        opts.stderr = False       # a terminal has one output
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise ApiError(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
    if verb == "exec" and not opts.command:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    return opts


def exit_status(code: int) -> dict[str, Any]:
    """The error-stream Status for a finished command (upstream's kubelet shape)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def error_status(message: str, code: int = 500, reason: str = "InternalError") -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def error_text(err: ApiError) -> web.Response:
    """An error before any upgrade, as upstream's kubelet writes it: the
    message as plain text with the HTTP code (the API server makes a
    ``Status`` of it)."""
    return web.Response(status=err.code, text=err.message, content_type="text/plain")


# --------------------------------------------------------------------------- wires


class Wire(Protocol):
    """One client connection carrying the logical streams."""

    async def send(self, channel: int, data: bytes) -> None: ...

    def incoming(self) -> AsyncIterator[tuple[int, bytes | None]]:
        """(channel, data) as the client writes; data None: it closed that
        stream.  Ends when the connection goes away."""
        ...

    async def finish(self) -> None:
        """Close every stream and the connection."""
        ...


class WebSocketWire:
    """The channel protocol over a WebSocket (v4, or v5 with close frames)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.v5 = ws.ws_protocol == "v5.channel.k8s.io"
        self.client_gone = asyncio.Event()

    async def send(self, channel: int, data: bytes) -> None:
        await self.ws.send_bytes(bytes([channel]) + data)

    async def incoming(self) -> AsyncIterator[tuple[int, bytes | None]]:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                data: bytes = msg.data
                if not data:
                    continue
                if data[0] == CLOSE and self.v5:
                    if len(data) > 1:
                        yield data[1], None
                    continue
                yield data[0], data[1:]
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                self.client_gone.set()
                return

    async def finish(self) -> None:
        # kubectl reads the end of every stream from the close of the
        # connection (it does not expect close frames from the server, and
        # waits for ours).  Closing at once after the exit status lost the
        # output of a quick command now and then on a loaded machine (kubectl
        # 1.32 printed nothing and returned the exit code: 1 run in 40 with
        # both cores busy); a 0.1 s grace before the close made it 0 in 120.
        # Not understood further than that; the cost is 0.1 s per exec.
        # A lead, not verified: client-go before 1.33 starts reading frames
        # before it has made its stream readers, and drops frames for a
        # stream it does not have yet (kubernetes/kubernetes#131189, fixed
        # by #131203); a quick command's output and our close can land in
        # that window, and the grace keeps the close out of it.
        try:
            await asyncio.wait_for(self.client_gone.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        try:
            await self.ws.close()
        except (ConnectionError, RuntimeError):
            pass


# --------------------------------------------------------------------------- fd helpers


def _settle(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _settle, fut)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _settle, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def read_fd(fd: int) -> bytes:
    """Up to 64 KiB from a non-blocking fd; b"" at EOF (EIO on a pty whose
    other side is gone counts as EOF)."""
    while True:
        try:
            return os.read(fd, _READ_SIZE)
        except BlockingIOError:
            await _readable(fd)
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise


async def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            await _writable(fd)


# --------------------------------------------------------------------------- exec


class ExecSession:
    """One command running in a container, pumped to and from a `Wire`."""

    def __init__(self, handle: "ExecHandle", opts: StreamOptions) -> None:
        self.handle = handle
        self.opts = opts
        self.moved = 0            # bytes of output passed on, to see when draining stalls
        proc = handle.proc
        if handle.pty_master is not None:
            self.in_fd: int | None = handle.pty_master if opts.stdin else None
            self.out_fds = {STDOUT: handle.pty_master}
            os.set_blocking(handle.pty_master, False)
        else:
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            self.in_fd = proc.stdin.fileno()
            self.out_fds = {STDOUT: proc.stdout.fileno(), STDERR: proc.stderr.fileno()}
            for fd in (self.in_fd, *self.out_fds.values()):
                os.set_blocking(fd, False)
            if not opts.stdin:
                self._close_stdin()

    def _close_stdin(self) -> None:
        if self.handle.pty_master is None and self.handle.proc.stdin is not None:
            try:
                self.handle.proc.stdin.close()
            except OSError:
                pass
        self.in_fd = None

    async def _pump_out(self, wire: Wire, channel: int, fd: int, forward: bool) -> None:
        while True:
            data = await read_fd(fd)
            if not data:
                return
            self.moved += len(data)
            if forward:
                await wire.send(channel, data)

    async def _pump_in(self, wire: Wire) -> None:
        async for channel, data in wire.incoming():
            if channel == STDIN:
                if self.in_fd is None:
                    continue
                if data is None:
                    if self.handle.pty_master is not None:
                        await write_fd(self.in_fd, b"\x04")   # EOF to the terminal's reader
                        self.in_fd = None
                    else:
                        self._close_stdin()
                elif data:
                    try:
                        await write_fd(self.in_fd, data)
                    except BrokenPipeError:
                        self._close_stdin()
            elif channel == RESIZE and data:
                try:
                    size = json.loads(data)
                    self.handle.resize(int(size.get("Height", 0)), int(size.get("Width", 0)))
                except (ValueError, TypeError, AttributeError, OSError):
                    log.debug("bad resize message %r", data)

    async def _wait_exit(self) -> int:
        proc = self.handle.proc
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            code = await asyncio.to_thread(proc.wait)
        else:
            try:
                if proc.poll() is None:
                    await _readable(pidfd)
                code = proc.wait()
            finally:
                os.close(pidfd)
        return code if code >= 0 else 128 - code

    async def run(self, wire: Wire) -> None:
        opts = self.opts
        outs = [asyncio.create_task(self._pump_out(wire, ch, fd, ch == STDOUT and opts.stdout
                                                   or ch == STDERR and opts.stderr))
                for ch, fd in self.out_fds.items()]
        inp = asyncio.create_task(self._pump_in(wire))
        exited = asyncio.create_task(self._wait_exit())
        try:
            watch: set[asyncio.Task[Any]] = {exited, inp, *outs}
            while not exited.done():
                done, watch = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                if inp in done or any(t.exception() is not None for t in done if t in outs):
                    # The client went away (its connection ended, or writing
                    # to it failed) before the command ended: end it.
                    self._kill()
                    return
            await self._drain([t for t in outs if t in watch])
            code = exited.result()
            await wire.send(ERROR, orjson.dumps(exit_status(code)))
            await wire.finish()
        except (ConnectionError, asyncio.CancelledError):
            self._kill()
            raise
        finally:
            for t in (*outs, inp, exited):
                t.cancel()
            await asyncio.gather(*outs, inp, exited, return_exceptions=True)
            self._close()

    async def _drain(self, outs: list[asyncio.Task[None]]) -> None:
        """After the command exited: pass on what is left, but stop once no
        output moved for a second (a background child may hold the pipe)."""
        pending = {t for t in outs if not t.done()}
        while pending:
            before = self.moved
            _, pending = await asyncio.wait(pending, timeout=1.0)
            if pending and self.moved == before:
                return

    def _kill(self) -> None:
        proc = self.handle.proc
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _close(self) -> None:
        proc = self.handle.proc
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if self.handle.pty_master is not None:
            try:
                os.close(self.handle.pty_master)
            except OSError:
                pass
            self.handle.pty_master = None
        if proc.poll() is None:
            self._kill()
            asyncio.get_running_loop().run_in_executor(None, proc.wait)


# --------------------------------------------------------------------------- attach


class AttachSession:
    """`kubectl attach`: the container's stdin through the runtime's attach
    socket, its output by following the container log."""

    def __init__(self, runtime: "Runtime", run_id: str, log_path: Path, opts: StreamOptions) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.log_path = log_path
        self.opts = opts

    async def run(self, wire: Wire) -> None:
        runtime, opts = self.runtime, self.opts
        # Output from now on: note where the log ends before any input can
        # make the container write.
        try:
            start = self.log_path.stat().st_size
        except OSError:
            start = 0
        handle = None
        if opts.stdin:
            try:
                handle = await asyncio.to_thread(runtime.attach, self.run_id)
            except (RuntimeError, OSError) as e:
                await wire.send(ERROR, orjson.dumps(error_status(str(e), 400, "BadRequest")))
                await wire.finish()
                return

        stopped = False

        def finished() -> bool:
            # Also ends the log-following thread once we are done.
            return stopped or runtime.status(self.run_id).state != "running"

        async def pump_out() -> None:
            it = _follow_cri_log(self.log_path, start, finished)
            while True:
                item = await asyncio.to_thread(next, it, None)
                if item is None:
                    return
                stream, data = item
                if opts.tty or stream == "stdout":
                    if opts.stdout:
                        await wire.send(STDOUT, data)
                elif opts.stderr:
                    await wire.send(STDERR, data)

        async def pump_in() -> None:
            nonlocal handle
            async for channel, data in wire.incoming():
                if handle is None:
                    continue
                if channel == STDIN:
                    if data is None:
                        # Leaving is all we do: the runtime closes the
                        # container's stdin when it has stdinOnce.
                        handle.close()
                        handle = None
                    elif data:
                        await asyncio.to_thread(handle.write, data)
                elif channel == RESIZE and data:
                    try:
                        size = json.loads(data)
                        await asyncio.to_thread(handle.resize, int(size["Height"]), int(size["Width"]))
                    except (ValueError, TypeError, KeyError, OSError):
                        pass

        out = asyncio.create_task(pump_out())
        inp = asyncio.create_task(pump_in())
        try:
            await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
            if out.done() and out.exception() is None and not inp.done():
                # The container ended; upstream's attach reports success.
                await wire.send(ERROR, orjson.dumps(exit_status(0)))
                await wire.finish()
        finally:
            stopped = True
            for t in (out, inp):
                t.cancel()
            await asyncio.gather(out, inp, return_exceptions=True)
            if handle is not None:
                handle.close()


def _follow_cri_log(path: Path, start: int, finished: Callable[[], bool]) -> Iterator[tuple[str, bytes]]:
    """(stream, bytes) from a CRI log file (``<time> <stream> <P|F> <text>``),
    following the lines written after offset `start`, until `finished()`."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        f.seek(start)
        buf = b""
        draining = False
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if not buf.endswith(b"\n"):
                    continue
                line, buf = buf, b""
                parts = line.rstrip(b"\n").split(b" ", 3)
                if len(parts) < 3:
                    continue
                text = parts[3] if len(parts) > 3 else b""
                if parts[2] == b"F":
                    text += b"\n"
                yield parts[1].decode(errors="replace"), text
                continue
            if finished():
                # One more pass: the runtime may still be writing the last
                # lines of a container that just ended.
                if draining:
                    return
                draining = True
            time.sleep(0.05)


# --------------------------------------------------------------------------- handlers


class StreamServer:
    """The kubelet's /exec and /attach handlers (upgrades, for `KubeletServer`)."""

    def __init__(self, kubelet: "Kubelet") -> None:
        self.kubelet = kubelet

    def _prepare(self, req: Request) -> tuple[StreamOptions, "PodRecord", "ContainerStatus"]:
        """Everything that can fail before the upgrade: options, pod, container."""
        opts = parse_options(req)
        pod = kubelet_pod(self.kubelet, opts.namespace, opts.pod)
        if pod is None:
            raise ApiError(404, "NotFound", "pod does not exist")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise ApiError(400, "BadRequest",
                           f"cannot {opts.verb} into a container in a completed pod; current phase is {phase}")
        rec, name = self.kubelet.container_of(pod, opts.container)
        run = rec.runs.get(name)
        if run is None or self.kubelet.runtime.status(run.id).state != "running":
            raise ApiError(400, "BadRequest", f'container not found ("{name}")')
        if opts.verb == "attach":
            found = find_container(pod, name)  # app, init or ephemeral (kubectl debug attaches)
            if opts.stdin and not (found and found[1].get("stdin")):
                raise ApiError(400, "BadRequest",
                               f"{name} in pod {opts.pod} was not started with stdin: true")
        return opts, rec, run

    async def handle(self, request: web.Request, req: Request) -> web.StreamResponse:
        try:
            opts, rec, run = self._prepare(req)
        except ApiError as e:
            return error_text(e)
        upgrade = req.header("upgrade").lower()
        if upgrade == "websocket":
            offered = [p.strip() for p in req.header("sec-websocket-protocol").split(",") if p.strip()]
            if not any(p in WS_PROTOCOLS for p in offered):
                return error_text(ApiError(
                    400, "BadRequest", f"unsupported WebSocket subprotocols {offered}; this server speaks "
                                       f"{', '.join(WS_PROTOCOLS)}"))
            ws = web.WebSocketResponse(protocols=WS_PROTOCOLS, autoping=True, timeout=2.0,
                                       max_msg_size=16 * 1024 * 1024)
            await ws.prepare(request)
            await self._serve(WebSocketWire(ws), opts, rec, run)
            return ws
        if upgrade == "spdy/3.1":
            return await serve_spdy(request, opts, lambda wire: self._serve(wire, opts, rec, run))
        if not upgrade:
            return error_text(ApiError(400, "BadRequest", "Upgrade request required"))
        return error_text(ApiError(400, "BadRequest", f"unsupported upgrade {upgrade!r}"))

    async def _serve(self, wire: Wire, opts: StreamOptions, rec: "PodRecord", run: "ContainerStatus") -> None:
        runtime = self.kubelet.runtime
        if opts.verb == "attach":
            assert rec.sandbox is not None
            path = rec.sandbox.log_path(run.name, rec.restarts.get(run.name, 0))
            try:
                await AttachSession(runtime, run.id, path, opts).run(wire)
            except ConnectionError:
                log.debug("attach client went away")
            return
        try:
            handle = await asyncio.to_thread(runtime.exec, run.id, opts.command, tty=opts.tty)
        except (RuntimeError, OSError, KeyError) as e:
            try:
                await wire.send(ERROR, orjson.dumps(error_status(
                    f"error executing command in container: {e}")))
                await wire.finish()
            except ConnectionError:
                pass
            return
        try:
            await ExecSession(handle, opts).run(wire)
        except ConnectionError:
            log.debug("exec client went away")


# --------------------------------------------------------------------------- SPDY/3.1

# The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1): the
# common header names and values, each behind a 32-bit length, then a run
# of common status lines, dates and media types.
_SPDY_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status 200_OK version HTTP/1.1 url "
    "public set-cookie keep-alive origin"
)
_SPDY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
SPDY_DICTIONARY = b"".join(
    struct.pack(">I", len(w)) + w.encode()
    for w in (x.replace("_", " ") for x in _SPDY_WORDS.split())
) + _SPDY_TAIL.encode()

_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _HEADERS, _WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
_FLAG_FIN = 0x01
_STREAM_TYPES = {"error": ERROR, "stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "resize": RESIZE}


class _RawFeed:
    """Takes the bytes after the upgrade from aiohttp's protocol (it calls
    `feed_data`/`feed_eof` like on its own WebSocket reader)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.eof = False
        self.changed = asyncio.Event()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.buf += data
        self.changed.set()
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self.changed.set()

    async def read_exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if self.eof:
                return None
            self.changed.clear()
            await self.changed.wait()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class SpdyWire:
    """The channel protocol over SPDY/3.1: the client opens one SPDY stream
    per logical stream (``streamType`` header), we reply to each and then
    move data in DATA frames; a FIN flag half-closes a stream.  The client
    (moby/spdystream) does no flow control, so neither do we."""

    def __init__(self, request: web.Request, feed: _RawFeed) -> None:
        self.request = request
        transport = request.transport
        assert transport is not None
        self.transport = transport
        self.feed = feed
        self.deflate = zlib.compressobj(zdict=SPDY_DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self.streams: dict[int, int] = {}        # logical channel -> SPDY stream id
        self.kinds: dict[int, int] = {}          # SPDY stream id -> logical channel
        self.arrived = asyncio.Event()
        self.queue: asyncio.Queue[tuple[int, bytes | None] | None] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.resize_buf = b""
        self.reader = asyncio.create_task(self._read_frames())

    # -- frames out
    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        self.transport.write(struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload)

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        self.transport.write(struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload)

    def _headers_block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for k, v in headers.items():
            raw += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    async def _drain(self) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("client went away")
        proto: Any = self.request.protocol
        if getattr(proto, "writing_paused", False):
            await proto._drain_helper()

    # -- frames in
    def _parse_headers(self, block: bytes) -> dict[str, str]:
        return parse_spdy_headers(self.inflate, block)

    async def _read_frames(self) -> None:
        try:
            await read_spdy_frames(self.feed, self._on_control, self._on_data)
        except (zlib.error, struct.error, UnicodeDecodeError) as e:
            log.warning("bad SPDY frame from exec client: %s", e)
        finally:
            self.gone.set()
            self.queue.put_nowait(None)

    def _on_control(self, kind: int, flags: int, payload: bytes) -> bool:
        if kind == _SYN_STREAM:
            (sid,) = struct.unpack_from(">I", payload, 0)
            sid &= 0x7FFFFFFF
            headers = self._parse_headers(payload[10:])
            channel = _STREAM_TYPES.get(headers.get("streamtype", ""))
            self._control(_SYN_REPLY, 0, struct.pack(">I", sid) + self._headers_block({}))
            if channel is not None:
                self.streams[channel] = sid
                self.kinds[sid] = channel
                self.arrived.set()
            if flags & _FLAG_FIN and channel is not None:
                self.queue.put_nowait((channel, None))
        elif kind == _RST_STREAM:
            (sid,) = struct.unpack_from(">I", payload, 0)
            channel = self.kinds.get(sid & 0x7FFFFFFF)
            if channel is not None:
                self.queue.put_nowait((channel, None))
        elif kind == _PING:
            self._control(_PING, 0, payload)
        elif kind == _GOAWAY:
            return False
        elif kind == _HEADERS:
            self.inflate.decompress(payload[4:])     # keep the zlib context in step
        return True

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        channel = self.kinds.get(sid)
        if channel is None:
            return
        if payload:
            if channel == RESIZE:
                # Sizes come as newline-separated JSON on one stream.
                self.resize_buf += payload
                *lines, self.resize_buf = self.resize_buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.queue.put_nowait((RESIZE, line))
            else:
                self.queue.put_nowait((channel, payload))
        if flags & _FLAG_FIN:
            self.queue.put_nowait((channel, None))

    async def wait_streams(self, wanted: set[int], timeout: float = 30.0) -> bool:
        """Until the client opened every stream the request asked for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not wanted <= set(self.streams):
            if self.gone.is_set():
                return False
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return False
        return True

    # -- Wire
    async def send(self, channel: int, data: bytes) -> None:
        sid = self.streams.get(channel)
        if sid is None:
            return
        for i in range(0, len(data), 0xFFFF):
            self._data(sid, 0, data[i:i + 0xFFFF])
        await self._drain()

    async def incoming(self) -> AsyncIterator[tuple[int, bytes | None]]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def finish(self) -> None:
        if self.transport.is_closing():
            return
        for sid in self.streams.values():
            self._data(sid, _FLAG_FIN, b"")
        # Let the client read everything and go away first (it sends GOAWAY
        # or closes); close ourselves if it does not.
        try:
            await asyncio.wait_for(self.gone.wait(), 5.0)
        except asyncio.TimeoutError:
            pass
        self.close()

    def close(self) -> None:
        self.reader.cancel()
        if not self.transport.is_closing():
            self.transport.close()


async def serve_spdy(request: web.Request, opts: StreamOptions,
                     serve: Callable[[SpdyWire], Awaitable[None]]) -> web.StreamResponse:
    """Answer the SPDY upgrade and run `serve(wire)` over the connection."""
    offered = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
               for v in h.split(",") if v.strip()]
    protocol = next((p for p in SPDY_PROTOCOLS if p in offered), None)
    if protocol is None:
        return error_text(ApiError(
            403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                              f"server supports {list(SPDY_PROTOCOLS)}"))
    resp = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": protocol})
    resp.force_close()
    await resp.prepare(request)
    feed = _RawFeed()
    proto: Any = request.protocol
    proto.set_parser(feed)
    wire = SpdyWire(request, feed)
    try:
        wanted = {ERROR} | {ch for ch, on in ((STDIN, opts.stdin), (STDOUT, opts.stdout),
                                              (STDERR, opts.stderr), (RESIZE, opts.tty)) if on}
        if await wire.wait_streams(wanted):
            await serve(wire)
    finally:
        wire.close()
    return resp
