"""Publish the API server's port on the host, as kind's docker port mapping does.

kind maps a free 127.0.0.1 port on the host to port 6443 of the
control-plane container (docker-proxy, a user-space TCP relay), and its
kubeconfig names `https://127.0.0.1:<port>`.  kinns does the same: the
cluster daemon listens on the host's `127.0.0.1:<port>` and relays each
connection, bytes unchanged (TLS stays end to end between kubectl and the
API server), to `<control-plane node IP>:6443` over the host's route to the
fabric.  While nothing answers there (the API server is down), a
connection is accepted and closed at once, as docker-proxy does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

log = logging.getLogger(__name__)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


class PortPublisher:
    """A TCP relay from host:port to target:target_port."""

    def __init__(self, host: str, port: int, target: str, target_port: int) -> None:
        self.host, self.port = host, port
        self.target, self.target_port = target, target_port
        self.server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.server = await asyncio.start_server(self._relay, sock=sock, backlog=1024)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(self.target, self.target_port), 5)
            except (OSError, asyncio.TimeoutError):
                return
            up_w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
            up_w.close()
        finally:
            writer.close()
            self._conns.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
