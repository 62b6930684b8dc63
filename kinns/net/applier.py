"""Make the kernel match an `NsState`, idempotently, over rtnetlink.

The applier is deliberately dumb: it creates what is missing, corrects what
differs (MTU, MAC, master, up), replaces routes/neighbours/FDB entries, and
removes only what the state declares it owns (stale routes inside
`owned_routes`, stale permanent entries on `prune_neigh_on` links, links in
`absent_links`).  All requests go through one netlink socket per namespace
(`Sockets`), entered in-process, so a whole node costs a few milliseconds.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading
from typing import Any, Self

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import netns
from .desired import Link, NsState

NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 4
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
AF_INET = 2
AF_BRIDGE = 7


class Sockets:
    """One cached rtnetlink socket per namespace.

    A cached socket is keyed by the namespace file's inode too: a namespace
    deleted and re-created under the same name gets a fresh socket instead
    of silently talking to the dead one."""

    def __init__(self) -> None:
        self._socks: dict[str | None, tuple[int, IPRoute]] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> IPRoute:
        ino = os.stat(netns.path(name)).st_ino if name is not None else 0
        with self._lock:
            hit = self._socks.get(name)
            if hit is not None and hit[0] == ino:
                return hit[1]
            if hit is not None:
                hit[1].close()
            sock = netns.iproute(name)
            self._socks[name] = (ino, sock)
            return sock

    def drop(self, name: str | None) -> None:
        with self._lock:
            hit = self._socks.pop(name, None)
        if hit is not None:
            hit[1].close()

    def close(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, {}
        for _, s in socks.values():
            s.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ifindex(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _link_info(ipr: IPRoute, index: int) -> Any:
    return ipr.link("get", index=index)[0]


def _ensure_link(ipr: IPRoute, socks: Sockets, link: Link) -> int:
    idx = ifindex(ipr, link.name)
    if idx is None:
        spec: dict[str, Any] = {"ifname": link.name, "kind": link.kind}
        if link.mtu:
            spec["mtu"] = link.mtu
        if link.mac:
            spec["address"] = link.mac
        if link.master:
            spec["master"] = ifindex(ipr, link.master)
        if link.kind == "veth":
            peer: dict[str, Any] = {"ifname": link.peer or f"{link.name}p"}
            if link.peer_mtu:
                peer["mtu"] = link.peer_mtu
            fd = netns.open_fd(link.peer_netns) if link.peer_netns else None
            try:
                if fd is not None:
                    peer["net_ns_fd"] = fd
                spec["peer"] = peer
                ipr.link("add", **spec)
            finally:
                if fd is not None:
                    os.close(fd)
        elif link.kind == "vxlan":
            assert link.vxlan is not None
            under = ifindex(ipr, link.vxlan.dev)
            if under is None:
                raise RuntimeError(f"{link.name}: underlay {link.vxlan.dev} missing in {ipr}")
            spec.update(vxlan_id=link.vxlan.vni, vxlan_local=link.vxlan.local, vxlan_link=under,
                        vxlan_port=link.vxlan.port, vxlan_learning=0)
            ipr.link("add", **spec)
        else:
            ipr.link("add", **spec)
        idx = ifindex(ipr, link.name)
        assert idx is not None
    else:
        info = _link_info(ipr, idx)
        change: dict[str, Any] = {}
        if link.mtu and info.get("IFLA_MTU") != link.mtu:
            change["mtu"] = link.mtu
        if link.mac and (info.get("IFLA_ADDRESS") or "").lower() != link.mac.lower():
            change["address"] = link.mac
        if link.master:
            m = ifindex(ipr, link.master)
            if info.get("IFLA_MASTER") != m:
                change["master"] = m
        if change:
            ipr.link("set", index=idx, **change)
    ipr.link("set", index=idx, state="up")
    if link.kind == "veth" and (link.peer_master or link.peer_netns):
        pipr = socks.get(link.peer_netns) if link.peer_netns else ipr
        pidx = ifindex(pipr, link.peer or "")
        if pidx is not None:
            pchange: dict[str, Any] = {"state": "up"}
            if link.peer_master:
                pchange["master"] = ifindex(pipr, link.peer_master)
            pipr.link("set", index=pidx, **pchange)
    return idx


def _route_key(dst: str) -> str:
    return "0.0.0.0/0" if dst == "default" else str(ipaddress.ip_network(dst))


def apply(state: NsState, socks: Sockets) -> None:
    """Make namespace `state.netns` look like `state` (see module doc)."""
    if state.netns is not None:
        netns.create(state.netns)
    ipr = socks.get(state.netns)
    lo = ifindex(ipr, "lo")
    if lo is not None and state.netns is not None:
        ipr.link("set", index=lo, state="up")
    for key, value in state.sysctls.items():
        try:
            netns.sysctl(state.netns, key, value)
        except FileNotFoundError:
            if not key.startswith("net/bridge/"):     # br_netfilter may be absent; the rest is not optional
                raise
    for name in state.absent_links:
        idx = ifindex(ipr, name)
        if idx is not None:
            ipr.link("del", index=idx)
    index: dict[str, int] = {}
    for link in state.links:
        index[link.name] = _ensure_link(ipr, socks, link)
    for a in state.addrs:
        idx = index.get(a.ifname) or ifindex(ipr, a.ifname)
        ip, plen = a.cidr.split("/")
        try:
            ipr.addr("add", index=idx, address=ip, prefixlen=int(plen))
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
    wanted = set()
    for r in state.routes:
        spec: dict[str, Any] = {"dst": _route_key(r.dst), "proto": RTPROT_BOOT}   # as flannel's routes
        wanted.add(spec["dst"])
        if r.gw:
            spec["gateway"] = r.gw
        if r.dev:
            spec["oif"] = index.get(r.dev) or ifindex(ipr, r.dev)
        if r.onlink:
            spec["flags"] = RTNH_F_ONLINK
        ipr.route("replace", **spec)
    if state.owned_routes:
        owned = [ipaddress.IPv4Network(c) for c in state.owned_routes]
        for rt in ipr.get_routes(family=AF_INET, table=254):
            if rt["proto"] == RTPROT_KERNEL:
                continue
            dst = f"{rt.get('RTA_DST') or '0.0.0.0'}/{rt['dst_len']}"
            net = ipaddress.IPv4Network(dst, strict=False)
            if dst in wanted or not any(net.subnet_of(o) for o in owned):
                continue
            ipr.route("del", dst=dst, table=254)
    for n in state.neighs:
        ipr.neigh("replace", dst=n.ip, lladdr=n.mac, ifindex=index.get(n.ifname) or ifindex(ipr, n.ifname),
                  state=NUD_PERMANENT)
    for f in state.fdbs:
        ipr.fdb("replace", ifindex=index.get(f.ifname) or ifindex(ipr, f.ifname), lladdr=f.mac, dst=f.dst,
                state=NUD_PERMANENT, flags=NTF_SELF)
    for ifname in state.prune_neigh_on:
        idx = index.get(ifname) or ifindex(ipr, ifname)
        if idx is None:
            continue
        keep_ip = {n.ip for n in state.neighs if n.ifname == ifname}
        keep_mac = {(f.mac.lower(), f.dst) for f in state.fdbs if f.ifname == ifname}
        for nb in ipr.get_neighbours(family=AF_INET, ifindex=idx):
            if nb.get("NDA_DST") not in keep_ip and nb["state"] & NUD_PERMANENT:
                ipr.neigh("del", dst=nb.get("NDA_DST"), ifindex=idx)
        for fe in ipr.get_neighbours(family=AF_BRIDGE, ifindex=idx):
            mac = (fe.get("NDA_LLADDR") or "").lower()
            if mac and (mac, fe.get("NDA_DST")) not in keep_mac and mac != "00:00:00:00:00:00":
                try:
                    ipr.fdb("del", ifindex=idx, lladdr=mac, dst=fe.get("NDA_DST"))
                except NetlinkError as e:
                    if e.code != errno.ENOENT:
                        raise
