"""The user-space IP-in-IP encapsulator of one node: `python -m kinns.net.ipip_encap`.

The reference data plane, and the fallback where the compiled one
(`ipip_encap.c`, same contract, about 3x the throughput) is not built.

Runs inside the node's network namespace (the daemon starts it there with
nsenter, as it starts the kubelet) where the kernel has no ipip module:

- out: the kernel routes a packet for another node's pod into the TUN
  device `tunl0` (`<podCIDR> via <node IP> dev tunl0 onlink`); we read it,
  find the owning node from those same routes, and send it through a raw
  IPPROTO_IPIP socket, so the kernel adds the outer IPv4 header (protocol 4,
  source this node's eth0 address, destination that node) and the fabric
  carries exactly what the kernel's ipip would send;
- in: the raw socket receives every protocol-4 packet addressed to this
  node, outer header included; a packet from a known node has its outer
  header stripped and the inner one is written to `tunl0`, where the kernel
  routes it to the pod as if the ipip device had decapsulated it.

The routes are the only configuration: a netlink subscription keeps a
private copy (the kubelet's `sync_routes` edits them), so there is nothing
to keep in sync by hand.  One thread per direction, each blocking in its own
syscall (they release the GIL), fixed buffers, no per-packet allocation on
the receive side.  Counters (packets each way, drops) go to `--counters`.  Exits non-zero on any unexpected error: the daemon
restarts it, and the persistent tunl0 and the routes stay meanwhile.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

from . import ipip
from .desired import IPIP_IF

log = logging.getLogger("kinns.ipip")

IPPROTO_IPIP = 4
RTNLGRP_IPV4_ROUTE = 7
BUF = 1 << 16
SOCK_BUF = 4 << 20
NICE = -10
TRANSIENT = {101, 113, 90, 105, 111}   # ENETUNREACH, EHOSTUNREACH, EMSGSIZE, ENOBUFS, ECONNREFUSED


class Routes:
    """Inner destination -> outer destination, from tunl0's routes.

    `lookup` takes the 4 destination bytes of an inner header; a dict cache
    per address makes the common case one hash lookup.  `replace` swaps in
    a new table at once (the reader threads never see half of one)."""

    def __init__(self) -> None:
        self._nets: list[tuple[int, int, str]] = []      # (network, mask, gateway), longest prefix first
        self._cache: dict[bytes, str | None] = {}
        self.peers: frozenset[bytes] = frozenset()

    def replace(self, routes: list[tuple[str, str]]) -> None:
        nets = []
        for dst, gw in routes:
            n = ipaddress.IPv4Network(dst, strict=False)
            nets.append((int(n.network_address), int(n.netmask), gw, n.prefixlen))
        nets.sort(key=lambda r: -r[3])
        self._nets = [(a, m, g) for a, m, g, _ in nets]
        self.peers = frozenset(socket.inet_aton(gw) for _, gw in routes)
        self._cache = {}

    def lookup(self, dst: bytes) -> str | None:
        hit = self._cache.get(dst, "")
        if hit != "":
            return hit
        ip = int.from_bytes(dst, "big")
        gw = next((g for a, m, g in self._nets if ip & m == a), None)
        cache = self._cache
        if len(cache) > 65536:
            cache = self._cache = {}
        cache[dst] = gw
        return gw


def tunnel_routes(ipr: Any, tun_index: int) -> list[tuple[str, str]]:
    """(destination, gateway) of every main-table route through tunl0."""
    out = []
    for rt in ipr.get_routes(family=socket.AF_INET, table=254):
        gw = rt.get_attr("RTA_GATEWAY")
        if rt.get_attr("RTA_OIF") == tun_index and gw:
            out.append((f"{rt.get_attr('RTA_DST') or '0.0.0.0'}/{rt['dst_len']}", str(gw)))
    return out


def watch_routes(routes: Routes, stop: threading.Event) -> None:
    """Keep `routes` equal to tunl0's routes: a dump on every route change."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr, IPRoute() as mon:
        mon.bind(groups=1 << (RTNLGRP_IPV4_ROUTE - 1))
        idx = ipr.link_lookup(ifname=IPIP_IF)[0]
        while not stop.is_set():
            routes.replace(tunnel_routes(ipr, idx))
            mon.get()          # blocks until the next route change


def outbound(tun: int, sock: socket.socket, routes: Routes, stats: list[int]) -> None:
    """tunl0 -> fabric: wrap each inner packet by sending it to its node."""
    buf = bytearray(BUF)
    mv = memoryview(buf)
    readv, sendto, lookup = os.readv, sock.sendto, routes.lookup
    while True:
        n = readv(tun, [buf])
        if n < 20 or buf[0] >> 4 != 4:
            continue
        gw = lookup(bytes(buf[16:20]))
        if gw is None:
            stats[2] += 1
            continue
        try:
            sendto(mv[:n], (gw, 0))
        except OSError as e:
            if e.errno not in TRANSIENT:
                raise
            stats[2] += 1
            continue
        stats[0] += 1


def inbound(tun: int, sock: socket.socket, routes: Routes, stats: list[int]) -> None:
    """fabric -> tunl0: unwrap what a known node sent us."""
    buf = bytearray(BUF)
    mv = memoryview(buf)
    recv_into, write = sock.recv_into, os.write
    while True:
        n = recv_into(buf)
        hl = (buf[0] & 15) * 4
        if n <= hl + 20 or bytes(buf[12:16]) not in routes.peers:
            stats[3] += 1
            continue
        try:
            write(tun, mv[hl:n])
        except OSError as e:
            if e.errno not in TRANSIENT:
                raise
            stats[3] += 1
            continue
        stats[1] += 1


def raw_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)
    return sock


def _run_thread(target: Any, *args: Any) -> threading.Thread:
    def guarded() -> None:
        try:
            target(*args)
        except BaseException:  # noqa: BLE001 - any failure ends the process; the supervisor restarts it
            log.exception("%s failed", target.__name__)
            os._exit(1)
    t = threading.Thread(target=guarded, name=target.__name__, daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m kinns.net.ipip_encap", description=__doc__.splitlines()[0])
    ap.add_argument("--node", default="", help="node name, for the log")
    ap.add_argument("--counters", default="", help="JSON file to rewrite with the packet counters")
    ap.add_argument("--stats-every", type=float, default=5.0, help="seconds between counter updates")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:   # it stands in for the kernel's softirq work, which runs ahead of processes (as the C helper does)
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    except OSError as e:
        log.warning("running at normal priority: %s", e)
    tun = ipip.open_tun(IPIP_IF)
    sock = raw_socket()
    routes = Routes()
    stop = threading.Event()
    stats = [0, 0, 0, 0]       # out, in, out dropped, in dropped
    _run_thread(watch_routes, routes, stop)
    _run_thread(outbound, tun, sock, routes, stats)
    _run_thread(inbound, tun, sock, routes, stats)
    log.info("ipip encapsulator on %s: %s is a TUN device, protocol 4 over a raw socket", args.node or "node", IPIP_IF)
    dropped = 0
    while True:
        time.sleep(args.stats_every)
        counters = dict(zip(("out", "in", "out_dropped", "in_dropped"), stats), peers=len(routes.peers))
        if args.counters:
            tmp = f"{args.counters}.tmp"
            with open(tmp, "w") as f:
                json.dump(counters, f)
            os.replace(tmp, args.counters)
        if stats[2] + stats[3] != dropped:    # drops are worth a line; steady traffic is not
            dropped = stats[2] + stats[3]
            log.info("packets %s", counters)


if __name__ == "__main__":
    main()
