"""A small asyncio client for etcd's v3 API through its JSON gateway.

etcd (3.4 and later) serves every v3 RPC as JSON at `/v3/<service>/<method>`
beside gRPC on its client port, with keys and values base64-encoded and
64-bit integers as strings; a watch is a POST whose response is a stream
of JSON messages, one per line.  That is all the API server needs (range,
txn, compaction, watch), so no gRPC stack and no generated code: this
module only turns the calls into HTTP and the answers into dicts, and
names the errors.  What the keys mean is `etcd.py`'s business.

Why not a library: `etcd3` (PyPI) has been unmaintained since 2020 and
breaks with protobuf 4; `etcd3gw` speaks this same gateway but with
blocking `requests`; `aetcd` is gRPC-based.  The gateway over the aiohttp
we already ship is a hundred lines.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import Any, AsyncIterator

import aiohttp
import orjson

# gRPC status codes etcd answers with (google.golang.org/grpc/codes).
OUT_OF_RANGE = 11        # "mvcc: required revision has been compacted" / "is a future revision"
UNAVAILABLE = 14


class EtcdError(Exception):
    """etcd refused a request (the gRPC status code and etcd's message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"etcd: {message} (code {code})")
        self.code = code
        self.message = message

    @property
    def compacted(self) -> bool:
        return self.code == OUT_OF_RANGE and "compacted" in self.message


class EtcdUnavailable(EtcdError):
    """etcd could not be reached; the request was not sent."""

    def __init__(self, endpoint: str, cause: BaseException) -> None:
        super().__init__(UNAVAILABLE, f"{endpoint} unreachable: {cause}")


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The `range_end` that makes a range cover every key starting with `prefix`
    (clientv3.GetPrefixRangeEnd: the prefix with its last byte incremented)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # all keys


class EtcdGateway:
    """One etcd endpoint (`http://host:2379` or `https://…`); the session is made
    lazily, inside the event loop that uses it."""

    def __init__(self, endpoint: str, *, ssl_context: ssl.SSLContext | None = None,
                 request_timeout: float = 30.0, unavailable_wait: float = 20.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._timeout = request_timeout
        # How long a request waits for an etcd that refuses connections (restarting,
        # as after a SIGKILL its kubelet starts it again), like a gRPC client
        # waiting for its connection; only requests that were never sent retry.
        self._unavailable_wait = unavailable_wait
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No cap on connections: every in-flight write is its own request.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v3/<path>; the decoded answer, or EtcdError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._unavailable_wait
        delay = 0.05
        while True:
            try:
                return await self._call_once(path, body)
            except EtcdUnavailable:
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _call_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http().post(f"{self.endpoint}/v3/{path}", data=orjson.dumps(body),
                                         timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                raw = await resp.read()
        except aiohttp.ClientError as exc:
            if _never_sent(exc):
                raise EtcdUnavailable(self.endpoint, exc) from exc
            # Sent, but the answer was lost: the outcome is unknown to us.
            raise EtcdError(UNAVAILABLE, f"{self.endpoint}/v3/{path}: {exc!r}") from exc
        except asyncio.TimeoutError as exc:
            raise EtcdError(UNAVAILABLE, f"{self.endpoint}/v3/{path}: {exc!r}") from exc
        try:
            out: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise EtcdError(resp.status, raw[:200].decode(errors="replace")) from None
        if "error" in out or resp.status != 200:
            raise EtcdError(int(out.get("code", resp.status)), str(out.get("message") or out.get("error")))
        return out

    # -- the RPCs the store uses --------------------------------------------

    async def range(self, key: bytes, range_end: bytes | None = None, *, revision: int = 0,
                    limit: int = 0, count_only: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if revision:
            body["revision"] = str(revision)
        if limit:
            body["limit"] = str(limit)
        if count_only:
            body["count_only"] = True
        return await self.call("kv/range", body)

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
                  failure: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return await self.call("kv/txn", {"compare": compare, "success": success, "failure": failure or []})

    async def compact(self, revision: int, *, physical: bool = False) -> None:
        await self.call("kv/compaction", {"revision": str(revision), "physical": physical})

    async def health(self) -> bool:
        try:
            async with self._http().get(f"{self.endpoint}/health",
                                        timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status == 200 and (await resp.json(content_type=None)).get("health") == "true"
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return False

    async def watch(self, key: bytes, range_end: bytes | None, start_revision: int, *,
                    prev_kv: bool = False, progress_notify: bool = True,
                    idle_timeout: float | None = 60.0) -> AsyncIterator[dict[str, Any]]:
        """The `result` messages of one watch stream, in order, until etcd or the
        connection ends it (a clean end returns; a broken connection raises, and
        so, with asyncio.TimeoutError, does a stream silent for `idle_timeout`:
        etcd sends progress notifications, kubeadm's every 5 s)."""
        create: dict[str, Any] = {"key": b64(key), "start_revision": str(start_revision),
                                  "prev_kv": prev_kv, "progress_notify": progress_notify}
        if range_end is not None:
            create["range_end"] = b64(range_end)
        try:
            async with self._http().post(f"{self.endpoint}/v3/watch", data=orjson.dumps({"create_request": create}),
                                         timeout=aiohttp.ClientTimeout(total=None, connect=5,
                                                                       sock_read=idle_timeout)) as resp:
                if resp.status != 200:
                    raise EtcdError(resp.status, (await resp.read())[:200].decode(errors="replace"))
                buf = bytearray()
                # Lines can be megabytes (one message carries a batch of events):
                # split them here rather than through aiohttp's bounded readline.
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while (nl := buf.find(b"\n")) >= 0:
                        line = bytes(buf[:nl])
                        del buf[: nl + 1]
                        if line.strip():
                            yield _watch_message(line)
                if buf.strip():
                    yield _watch_message(bytes(buf))
        except aiohttp.ClientConnectorError as exc:
            raise EtcdUnavailable(self.endpoint, exc) from exc


def _never_sent(exc: aiohttp.ClientError) -> bool:
    """Whether etcd cannot have acted on the request: no connection, or a pooled
    connection found closed (etcd restarted) before the whole body was written,
    so a JSON body it would need was never complete."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and str(exc.strerror or "").startswith("Can not write request body")


def _watch_message(line: bytes) -> dict[str, Any]:
    msg = orjson.loads(line)
    if "error" in msg:
        err = msg["error"]
        raise EtcdError(int(err.get("grpc_code", err.get("http_code", 0))), str(err.get("message", err)))
    result: dict[str, Any] = msg.get("result", {})
    return result
