"""Batched rtnetlink for the pod hot path: several requests per syscall.

pyroute2 is the general tool here (applier, fabric, overlay), but each of its
synchronous calls costs a few hundred microseconds of Python around a few
microseconds of kernel work.  Attaching a pod is a fixed recipe of about ten
requests, so `pod_network` encodes them itself and sends them in two or
three batches: the kernel processes every message of one sendmsg in order
and acknowledges each, so a batch costs one round trip.  Only the handful of
messages and attributes that recipe needs are encoded (constants from
linux/rtnetlink.h, if_link.h, if_addr.h, veth.h).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Self

from . import netns

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE = 20, 22, 24
NLM_F_DUMP = 0x300
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
AF_INET = socket.AF_INET
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HDR = struct.Struct("=IHHII")
_IFI = struct.Struct("=BxHiII")
_IFA = struct.Struct("=BBBBI")
_RTM = struct.Struct("=BBBBBBBBI")


def attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def s(text: str) -> bytes:
    return text.encode() + b"\0"


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def ifinfo(index: int = 0, up: bool | None = None) -> bytes:
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    return _IFI.pack(0, 0, index, flags, change)


def veth_create(name: str, peer: str, mtu: int, master: int, peer_ns_fd: int) -> tuple[int, int, bytes]:
    """RTM_NEWLINK creating an up veth on `master` whose peer is born in the
    namespace of `peer_ns_fd` (down: the kernel refuses, ENOTCONN, to open a
    peer before the pair is registered; bring it up from inside the pod)."""
    peer_msg = ifinfo() + attr(IFLA_IFNAME, s(peer)) + attr(IFLA_MTU, u32(mtu)) + \
        attr(IFLA_NET_NS_FD, u32(peer_ns_fd))
    body = ifinfo(up=True) + attr(IFLA_IFNAME, s(name)) + attr(IFLA_MTU, u32(mtu)) + \
        attr(IFLA_MASTER, u32(master)) + \
        nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, s("veth")),
               nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def bridge_create(name: str, mtu: int) -> tuple[int, int, bytes]:
    body = ifinfo(up=True) + attr(IFLA_IFNAME, s(name)) + attr(IFLA_MTU, u32(mtu)) + \
        nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, s("bridge")))
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def hairpin(name: str) -> tuple[int, int, bytes]:
    """Turn hairpin mode on for bridge port `name` (bridge slave data)."""
    body = ifinfo() + attr(IFLA_IFNAME, s(name)) + \
        nested(IFLA_LINKINFO, nested(IFLA_INFO_SLAVE_DATA, attr(IFLA_BRPORT_MODE, b"\x01")))
    return RTM_NEWLINK, 0, body


def link_up(index: int = 0, name: str | None = None) -> tuple[int, int, bytes]:
    body = ifinfo(index, up=True) + (attr(IFLA_IFNAME, s(name)) if name else b"")
    return RTM_NEWLINK, 0, body


def get_link(name: str) -> tuple[int, int, bytes]:
    return RTM_GETLINK, 0, ifinfo() + attr(IFLA_IFNAME, s(name))


def del_link(name: str) -> tuple[int, int, bytes]:
    return RTM_DELLINK, 0, ifinfo() + attr(IFLA_IFNAME, s(name))


def add_addr(index: int, ip: str, prefixlen: int) -> tuple[int, int, bytes]:
    raw = socket.inet_aton(ip)
    body = _IFA.pack(AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body


def replace_route(dst: str, gw: str | None, oif: int) -> tuple[int, int, bytes]:
    net, _, plen = dst.partition("/")
    dst_len = int(plen or 32)
    body = _RTM.pack(AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    if dst_len:
        body += attr(RTA_DST, socket.inet_aton(net))
    if gw:
        body += attr(RTA_GATEWAY, socket.inet_aton(gw))
    body += attr(RTA_OIF, u32(oif))
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body


@dataclass
class Link:
    index: int
    flags: int = 0
    name: str = ""
    mac: str = ""
    master: int = 0
    attrs: dict[int, bytes] = field(default_factory=dict)


def parse_link(payload: bytes) -> Link:
    _, _, index, flags, _ = _IFI.unpack_from(payload)
    link = Link(index, flags)
    off = _IFI.size
    while off + 4 <= len(payload):
        ln, kind = struct.unpack_from("=HH", payload, off)
        if ln < 4:
            break
        data = payload[off + 4:off + ln]
        kind &= 0x3FFF
        link.attrs[kind] = data
        if kind == IFLA_IFNAME:
            link.name = data.rstrip(b"\0").decode()
        elif kind == IFLA_ADDRESS:
            link.mac = ":".join(f"{b:02x}" for b in data)
        elif kind == IFLA_MASTER:
            link.master = struct.unpack("=I", data)[0]
        off += (ln + 3) & ~3
    return link


class NetlinkError(OSError):
    pass


class Rtnl:
    """A raw NETLINK_ROUTE socket opened in namespace `ns` (None: ours)."""

    def __init__(self, ns: str | None = None) -> None:
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.seq = 0

    def batch(self, *msgs: tuple[int, int, bytes], check: bool = True) -> list[tuple[int, list[bytes]]]:
        """Send all requests in one datagram; return (errno, payloads) per
        request, in order.  With `check`, the first failure raises."""
        out = bytearray()
        first = self.seq + 1
        for kind, flags, body in msgs:
            self.seq += 1
            out += _HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body
        self.sock.send(bytes(out))
        results: dict[int, tuple[int, list[bytes]]] = {}
        payloads: dict[int, list[bytes]] = {}
        while len(results) < len(msgs):
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _HDR.size <= len(data):
                ln, kind, _, seq, _ = _HDR.unpack_from(data, off)
                body = data[off + _HDR.size:off + ln]
                if first <= seq <= self.seq:
                    if kind == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", body)[0]
                        results[seq] = (err, payloads.pop(seq, []))
                    elif kind != NLMSG_DONE:
                        payloads.setdefault(seq, []).append(bytes(body))
                off += (ln + 3) & ~3
        ordered = [results[first + i] for i in range(len(msgs))]
        if check:
            for (kind, _, _), (err, _) in zip(msgs, ordered):
                if err:
                    raise NetlinkError(err, f"rtnetlink request {kind}: {os.strerror(err)}")
        return ordered

    def addresses(self, index: int) -> list[str]:
        """IPv4 addresses ("ip/len") of link `index`, by an RTM_GETADDR dump."""
        self.seq += 1
        seq = self.seq
        body = _IFA.pack(AF_INET, 0, 0, 0, 0)
        self.sock.send(_HDR.pack(_HDR.size + len(body), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        out: list[str] = []
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _HDR.size <= len(data):
                ln, kind, _, mseq, _ = _HDR.unpack_from(data, off)
                msg = data[off + _HDR.size:off + ln]
                off += (ln + 3) & ~3
                if mseq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", msg)[0]
                    if err:
                        raise NetlinkError(err, f"address dump: {os.strerror(err)}")
                    return out
                _, plen, _, _, idx = _IFA.unpack_from(msg)
                if idx != index:
                    continue
                aoff = _IFA.size
                addr = None
                while aoff + 4 <= len(msg):
                    aln, akind = struct.unpack_from("=HH", msg, aoff)
                    if aln < 4:
                        break
                    if akind in (IFA_LOCAL, IFA_ADDRESS) and aln == 8:
                        addr = socket.inet_ntoa(msg[aoff + 4:aoff + 8])
                        if akind == IFA_LOCAL:
                            break
                    aoff += (aln + 3) & ~3
                if addr:
                    out.append(f"{addr}/{plen}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
