"""The `forward` plugin: names outside the cluster go to the node's resolvers.

`forward . /etc/resolv.conf` means "the nameservers listed in that file"
(in a CoreDNS pod, dnsPolicy Default copies the node's).  `Forwarder`
sends the client's query unchanged (but for its ID) to each upstream in
turn over UDP (TCP when the client used TCP and UDP came back truncated,
or with `force_tcp`), with a short per-try timeout, and returns the
upstream's reply bytes.  It answers "no upstream" at once when the file
lists none, or when every upstream refuses or is unroutable (ICMP errors
surface on a connected UDP socket as ECONNREFUSED/EHOSTUNREACH), so the
server can SERVFAIL promptly instead of holding the client for seconds.

Like CoreDNS's `loop` plugin would, an upstream that is one of this
server's own addresses is skipped (forwarding to ourselves would loop).

It is blocking by design: the server calls it from worker threads, never
from the packet loop.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
import struct
import threading
import time
from typing import Iterable

from .corefile import ForwardOptions

log = logging.getLogger("coredns.forward")

TRY_TIMEOUT = 2.0      # per upstream and try (CoreDNS forward's default read timeout)
TOTAL_TIMEOUT = 5.0    # the whole exchange (CoreDNS forward's defaultTimeout)


def parse_resolv_conf(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order."""
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def _hostport(text: str) -> tuple[str, int] | None:
    s = text.removeprefix("dns://")
    port = 53
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif s.count(":") == 1:
        host, _, p = s.partition(":")
        port = int(p)
    else:
        host = s
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return host, port


def resolve_upstreams(to: Iterable[str], local_ips: Iterable[str] = ()) -> list[tuple[str, int]]:
    """Upstream (host, port) pairs for `forward . TO...`: addresses as written, files read."""
    own = set(local_ips)
    out: list[tuple[str, int]] = []
    for t in to:
        if "/" in t and not t.startswith("dns://"):
            try:
                with open(t) as f:
                    names = parse_resolv_conf(f.read())
            except OSError as e:
                log.warning("forward: can't read %s: %s", t, e)
                continue
        else:
            names = [t]
        for n in names:
            hp = _hostport(n)
            if hp is None:
                log.warning("forward: not an IP address: %s", n)
                continue
            if hp[0] in own and hp[1] == 53:
                log.warning("forward: skipping %s, it is this server (a forwarding loop)", n)
                continue
            out.append(hp)
    return out


class Forwarder:
    def __init__(self, opts: ForwardOptions, local_ips: Iterable[str] = (),
                 upstreams: list[tuple[str, int]] | None = None) -> None:
        self.opts = opts
        self.upstreams = upstreams if upstreams is not None else resolve_upstreams(opts.to, local_ips)
        self.concurrent = 0
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.timeout = TRY_TIMEOUT
        self.total_timeout = TOTAL_TIMEOUT

    @property
    def available(self) -> bool:
        return bool(self.upstreams)

    def handles(self, name: str) -> bool:
        """Does `name` (lower-case fqdn) belong to this forwarder's FROM zone and not an `except`?"""
        from .answer import is_subdomain
        if not is_subdomain(self.opts.zone, name):
            return False
        return not any(is_subdomain(z, name) for z in self.opts.excepts)

    def acquire(self) -> bool:
        """Count one more query in flight; False when max_concurrent is reached (REFUSED)."""
        with self._lock:
            if self.opts.max_concurrent and self.concurrent >= self.opts.max_concurrent:
                return False
            self.concurrent += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.concurrent -= 1

    def exchange(self, query: bytes, tcp: bool = False) -> tuple[bytes, str] | None:
        """Send `query` upstream; (reply with the query's ID, upstream) or None when none answered."""
        deadline = time.monotonic() + self.total_timeout
        qid = query[:2]
        for host, port in self.upstreams:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            to = f"{host}:{port}"
            self.requests[to] = self.requests.get(to, 0) + 1
            try:
                if tcp or self.opts.force_tcp:
                    reply = _tcp_exchange(host, port, query, min(self.timeout, left))
                else:
                    reply = _udp_exchange(host, port, query, min(self.timeout, left))
                    if tcp and len(reply) > 2 and reply[2] & 0x02 and not self.opts.prefer_udp:
                        reply = _tcp_exchange(host, port, query, min(self.timeout, deadline - time.monotonic()))
            except (OSError, ValueError) as e:
                log.debug("forward to %s failed: %s", to, e)
                continue
            return qid + reply[2:], to
        return None


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _udp_exchange(host: str, port: int, query: bytes, timeout: float) -> bytes:
    wire_id = random.getrandbits(16)
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(struct.pack("!H", wire_id) + query[2:])
        end = time.monotonic() + timeout
        while True:
            s.settimeout(max(end - time.monotonic(), 0.001))
            reply = s.recv(65535)
            if len(reply) >= 12 and struct.unpack_from("!H", reply)[0] == wire_id and reply[2] & 0x80:
                return reply


def _tcp_exchange(host: str, port: int, query: bytes, timeout: float) -> bytes:
    with socket.create_connection((host, port), timeout=max(timeout, 0.001)) as s:
        s.sendall(struct.pack("!H", len(query)) + query)
        head = _recv_exact(s, 2)
        return _recv_exact(s, struct.unpack("!H", head)[0])


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ValueError("upstream closed the connection")
        buf += chunk
    return bytes(buf)


def local_addresses() -> tuple[str, ...]:
    """This network namespace's own unicast addresses (the pod IP), from /proc (no netlink needed)."""
    out: list[str] = []
    try:
        with open("/proc/net/fib_trie") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for i, line in enumerate(lines):
        if "/32 host LOCAL" in line and i > 0:
            ip = lines[i - 1].split()[-1]
            if not ip.startswith("127.") and ip not in out:
                out.append(ip)
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5] != "lo" and not parts[0].startswith("fe80"):
                    ip = str(ipaddress.IPv6Address(bytes.fromhex(parts[0])))
                    if ip not in out:
                        out.append(ip)
    except OSError:
        pass
    env = os.environ.get("POD_IP")
    if env and env not in out:
        out.insert(0, env)
    return tuple(out)
