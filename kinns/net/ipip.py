"""IP-in-IP (RFC 2003) between nodes: Calico's `tunl0`, from the kernel or from user space.

The routes are the same either way (`desired.node_state(..., "ipip")`):
`<podCIDR> via <node IP> dev tunl0 onlink` per remote node, MTU 1480.  What
`tunl0` is differs:

- "kernel": the kernel's ipip device.  Its route's gateway is the outer
  destination; the kernel wraps and unwraps.
- "userspace": a persistent TUN device named `tunl0`.  The kernel hands it
  the inner packet only (a TUN device has no next hop), so `ipip_encap`, one
  process per node that the cluster daemon supervises, reads the same routes
  from the kernel, wraps each packet in an outer IPv4 header with protocol 4
  addressed to the owning node, sends it with a raw socket, and writes what
  arrives, unwrapped, back into `tunl0`.  On the fabric both look the same.
  The encapsulator is `kinns-ipip-encap` (ipip_encap.c, built by
  scripts/setup.sh) where it is built, else the Python `ipip_encap`.

This module decides which (`probe`, once per `kinns up`, in a throwaway
namespace so nothing is left on the host), makes the device in a node's
namespace (`ensure_tunnel`), and answers "how does this node reach that
pod?" for `kinns trace` (`tunnel_hop`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from . import netns
from .desired import IPIP_IF

KERNEL, USERSPACE = "kernel", "userspace"

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
TUN_FLAGS = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE
TUN_DEV = "/dev/net/tun"
COMPILED = "kinns-ipip-encap"       # built from ipip_encap.c by scripts/setup.sh, beside the venv's python
DATAPLANE_ENV = "KINNS_IPIP_DATAPLANE"   # "python" forces the Python encapsulator (for comparisons)


class IpipUnavailable(RuntimeError):
    """Neither the kernel's ipip module nor TUN is usable on this machine."""


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(["unshare", "--net", *cmd], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe() -> str:
    """KERNEL if the kernel can make an ipip device, else USERSPACE if it can
    make a TUN device, else raise IpipUnavailable.  Both tries run in a
    namespace that dies with the `ip` command, so the host keeps nothing."""
    if _ok(["ip", "link", "add", "kinnsprobe0", "type", "ipip"]):
        return KERNEL
    if _ok(["ip", "tuntap", "add", "dev", "kinnsprobe0", "mode", "tun"]):
        return USERSPACE
    raise IpipUnavailable("--overlay ipip needs the kernel's ipip module or a TUN device (/dev/net/tun); "
                          "this kernel has neither: use --overlay vxlan or host-gw")


def dataplane() -> str:
    """"compiled" when the helper is built (about 3x the Python one's
    throughput, see bench/overlay.py) and not overridden, else "python"."""
    binary = Path(sys.executable).parent / COMPILED
    return "compiled" if binary.exists() and os.environ.get(DATAPLANE_ENV, "") != "python" else "python"


def encapsulator_argv(node: str, counters: Path) -> list[str]:
    """The user-space encapsulator's command (see `dataplane`).  Both serve
    tunl0 the same way and rewrite `counters` (JSON) every few seconds."""
    if dataplane() == "compiled":
        return [str(Path(sys.executable).parent / COMPILED), str(counters)]
    return [sys.executable, "-m", "kinns.net.ipip_encap", f"--node={node}", f"--counters={counters}"]


def tun_ifreq(name: str, flags: int = TUN_FLAGS) -> bytes:
    """struct ifreq for TUNSETIFF: the name, then the flags (short)."""
    return struct.pack("16sH22x", name.encode(), flags)


def open_tun(name: str = IPIP_IF) -> int:
    """Open (creating if needed) TUN device `name` in the calling thread's
    namespace; returns the queue's file descriptor.  Offloads are switched
    off: a reader without a virtio-net header takes only plain packets (the
    compiled encapsulator, which had the device before, turns TSO on)."""
    fd = os.open(TUN_DEV, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, tun_ifreq(name))
        fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
    except OSError:
        os.close(fd)
        raise
    return fd


def _link_kind(ipr: Any, name: str) -> str | None:
    found = ipr.link_lookup(ifname=name)
    if not found:
        return None
    info = ipr.link("get", index=found[0])[0].get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    return str(kind) if kind else "unknown"


def ensure_tunnel(ns: str, path: str | None = None) -> str:
    """Make `tunl0` exist in namespace `ns` and return KERNEL or USERSPACE.

    An existing tunl0 decides (the kernel makes one in every namespace once
    ipip is loaded); otherwise `path` (the cluster's probed choice; None:
    try the kernel first).  The TUN device is persistent: it outlives the
    encapsulator, so a restarted one re-attaches and the routes stay."""
    ipr = netns.iproute(ns)
    try:
        kind = _link_kind(ipr, IPIP_IF)
        if kind == "ipip":
            return KERNEL
        if kind == "tun":
            return USERSPACE
        if kind is not None:
            raise RuntimeError(f"{ns}: {IPIP_IF} exists but is a {kind} device")
        if path != USERSPACE:
            try:
                ipr.link("add", ifname=IPIP_IF, kind="ipip")
                return KERNEL
            except NetlinkError as e:
                if path == KERNEL or e.code == errno.EEXIST:
                    raise
    finally:
        ipr.close()
    with netns.entered(ns):
        fd = open_tun(IPIP_IF)
    try:
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)
    return USERSPACE


@dataclass(frozen=True)
class TunnelHop:
    """How a node sends a packet for a pod on another node."""
    device: str          # tunl0
    outer_src: str       # this node's fabric address
    outer_dst: str       # the owning node's fabric address
    path: str            # KERNEL | USERSPACE

    def __str__(self) -> str:
        return f"ipip via {self.device} to {self.outer_dst} (outer {self.outer_src} -> {self.outer_dst}), {self.path}"


def tunnel_hop(node_ns: str, dst_ip: str) -> TunnelHop | None:
    """What node namespace `node_ns` does with a packet for `dst_ip`, asked
    of its kernel (`ip route get`): a TunnelHop when it leaves through
    tunl0, None when it does not (same node, or another overlay)."""
    ipr = netns.iproute(node_ns)
    try:
        rt = ipr.route("get", dst=dst_ip)[0]
        oif, gw = rt.get_attr("RTA_OIF"), rt.get_attr("RTA_GATEWAY")
        names = ipr.link_lookup(ifname=IPIP_IF)
        if not names or oif != names[0] or not gw:
            return None
        kind = _link_kind(ipr, IPIP_IF)
        src = ipr.route("get", dst=gw)[0].get_attr("RTA_PREFSRC") or ""
        return TunnelHop(IPIP_IF, str(src), str(gw), KERNEL if kind == "ipip" else USERSPACE)
    finally:
        ipr.close()
