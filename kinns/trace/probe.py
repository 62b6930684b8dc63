"""The probe itself: one real TCP SYN, UDP datagram or ICMP echo, sent from the source's namespace.

The socket is opened inside the source's network namespace (the calling
thread enters it with setns and comes back; the socket stays there) and
carries the trace DSCP, which is how the nodes' trace tables pick it out.
TCP connects and, once answered, closes with a reset, so the trace is one
SYN and its answer; with an HTTP path (an Ingress), a GET follows and the
status line is the reply.  UDP sends agnhost's `hostname` command, which
its netexec server answers with the pod's name.  `cancel` lets the caller
stop waiting once the kernel has already said the packet was dropped.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from ..net import netns as nsmod
from .nftrace import PROBE_DSCP

TOS = PROBE_DSCP << 2


@dataclass
class Outcome:
    ok: bool
    result: str                    # connected | refused | reply | timeout | unreachable | error
    local: tuple[str, int] = ("", 0)
    answer: str = ""               # HTTP status line, UDP reply text, ICMP reply source
    error: str = ""
    seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


def _wait(sock: socket.socket, for_write: bool, timeout: float, cancel: threading.Event | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or (cancel is not None and cancel.is_set()):
            return False
        r, w, _ = select.select([] if for_write else [sock], [sock] if for_write else [], [], min(left, 0.02))
        if r or w:
            return True


def _errno_result(e: int) -> str:
    if e == errno.ECONNREFUSED:
        return "refused"
    if e in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if e == errno.ETIMEDOUT:
        return "timeout"
    return "error"


def _tcp(sock: socket.socket, dst: tuple[str, int], timeout: float, cancel: threading.Event | None,
         http: tuple[str, str] | None) -> Outcome:
    sock.setblocking(False)
    sock.bind(("0.0.0.0", 0))
    local = sock.getsockname()
    rc = sock.connect_ex(dst)
    if rc not in (0, errno.EINPROGRESS):
        return Outcome(False, _errno_result(rc), local, error=os.strerror(rc))
    if not _wait(sock, True, timeout, cancel):
        return Outcome(False, "timeout", local, error="no answer")
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        return Outcome(False, _errno_result(err), local, error=os.strerror(err))
    if http is None:
        return Outcome(True, "connected", local)
    host, path = http
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        return Outcome(False, "error", local, error=str(e))
    status = data.split(b"\r\n", 1)[0].decode("latin-1")
    code = status.split(" ")[1] if status.count(" ") >= 1 else ""
    return Outcome(code[:1] in ("2", "3"), "reply", local, answer=status)


def _udp(sock: socket.socket, dst: tuple[str, int], timeout: float, cancel: threading.Event | None) -> Outcome:
    sock.bind(("0.0.0.0", 0))
    local = sock.getsockname()
    sock.connect(dst)
    sock.setblocking(False)
    sock.send(b"hostname")
    if not _wait(sock, False, timeout, cancel):
        return Outcome(False, "timeout", local, error="no answer")
    try:
        data = sock.recv(4096)
    except OSError as e:
        return Outcome(False, _errno_result(e.errno or 0), local, error=os.strerror(e.errno or 0))
    return Outcome(True, "reply", local, answer=data.decode("utf-8", "replace").strip())


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return int(~s & 0xFFFF)


def _icmp(sock: socket.socket, dst: str, timeout: float, cancel: threading.Event | None) -> Outcome:
    ident = os.getpid() & 0xFFFF
    body = struct.pack("!HH", ident, 1) + b"kinns-trace"
    header = struct.pack("!BBH", 8, 0, 0)
    packet = struct.pack("!BBH", 8, 0, _checksum(header + body)) + body
    sock.setblocking(False)
    sock.sendto(packet, (dst, 0))
    deadline = time.monotonic() + timeout
    while _wait(sock, False, max(0.0, deadline - time.monotonic()), cancel):
        data, addr = sock.recvfrom(4096)
        ihl = (data[0] & 0x0F) * 4
        kind, code = data[ihl], data[ihl + 1]
        if kind == 0 and struct.unpack("!H", data[ihl + 4:ihl + 6])[0] == ident:
            return Outcome(True, "reply", answer=f"echo reply from {addr[0]}")
        if kind == 3 and len(data) >= ihl + 8 + 28:
            inner = data[ihl + 8:]
            iihl = (inner[0] & 0x0F) * 4
            if socket.inet_ntoa(inner[16:20]) == dst and struct.unpack("!H", inner[iihl + 4:iihl + 6])[0] == ident:
                return Outcome(False, "unreachable", answer=f"destination unreachable (code {code}) from {addr[0]}",
                               error="unreachable")
    return Outcome(False, "timeout", error="no answer")


def send(ns: str | None, protocol: str, dst: str, port: int, timeout: float,
         cancel: threading.Event | None = None, http: tuple[str, str] | None = None) -> Outcome:
    """Send the probe from namespace `ns` (None: the host) and wait for its answer."""
    t0 = time.monotonic()
    with nsmod.entered(ns):
        if protocol == "tcp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        elif protocol == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS)
        try:
            if protocol == "tcp":
                out = _tcp(sock, (dst, port), timeout, cancel, http)
            elif protocol == "udp":
                out = _udp(sock, (dst, port), timeout, cancel)
            else:
                out = _icmp(sock, dst, timeout, cancel)
        except OSError as e:
            out = Outcome(False, _errno_result(e.errno or 0), error=str(e))
    finally:
        if protocol == "tcp":   # a reset, not a FIN exchange: the connection ends here
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    out.seconds = time.monotonic() - t0
    return out
