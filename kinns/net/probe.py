"""Real packets between namespaces, for tests and diagnostics.

A server socket opened while the thread is inside a namespace stays there,
so a whole connectivity check runs in one Python process: `EchoServer`
listens (TCP or UDP) in one namespace and answers every client with the
source address it saw, `ask()` connects from another namespace, and
`IcmpWatch` records the source of every ICMP echo request a namespace
receives.  "The receiver sees the sender's real IP" is then a direct
comparison; nothing here sends to addresses outside kinns namespaces.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Self

from . import netns


class EchoServer:
    """Answers each TCP connection / UDP datagram with `<peer ip> <bytes seen>`."""

    def __init__(self, ns: str | None, proto: str = "tcp", port: int = 0, host: str = "0.0.0.0") -> None:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.proto = proto
        self.seen: list[str] = []
        self._stop = False
        if proto == "tcp":
            self.sock.listen(16)
        self.sock.settimeout(0.2 if proto == "tcp" else 0.02)   # UDP cannot be woken by shutdown
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                if self.proto == "tcp":
                    conn, peer = self.sock.accept()
                    threading.Thread(target=self._conn, args=(conn, peer[0]), daemon=True).start()
                else:
                    data, peer = self.sock.recvfrom(65535)
                    self.seen.append(peer[0])
                    self.sock.sendto(f"{peer[0]} {len(data)}".encode(), peer)
            except (TimeoutError, OSError):
                continue

    def _conn(self, conn: socket.socket, peer: str) -> None:
        self.seen.append(peer)
        total = 0
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    if b"\n" in chunk:
                        break
                conn.sendall(f"{peer} {total}\n".encode())
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)     # wakes a blocked accept/recv at once
        except OSError:
            pass
        self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ask(ns: str | None, proto: str, ip: str, port: int, payload: bytes = b"hello\n", timeout: float = 5) -> str:
    """Send `payload` from namespace `ns`; returns the server's answer
    (`<source ip it saw> <byte count>`)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, kind)
    with s:
        s.settimeout(timeout)
        if proto == "tcp":
            s.connect((ip, port))
            s.sendall(payload if payload.endswith(b"\n") else payload + b"\n")
            s.shutdown(socket.SHUT_WR)
            buf = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            return buf.decode().strip()
        s.sendto(payload, (ip, port))
        return s.recvfrom(4096)[0].decode().strip()


class IcmpWatch:
    """Sources of ICMP echo requests arriving in namespace `ns`."""

    def __init__(self, ns: str | None) -> None:
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.settimeout(0.1)

    def sources(self, wait: float = 1.0) -> Iterator[str]:
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                pkt = self.sock.recv(65535)
            except TimeoutError:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            if len(pkt) > ihl and pkt[ihl] == 8:          # echo request
                yield socket.inet_ntoa(struct.pack("!4s", pkt[12:16]))

    def close(self) -> None:
        self.sock.close()
