"""Announcing LoadBalancer addresses on the fabric, as MetalLB's L2 speaker does.

The service-lb controller (`kinns.controllers.servicelb`) gives every
LoadBalancer Service an address from the fabric pool and names the one
node that announces it in the annotation `kinns.io/loadbalancer-node`.
This module is the node side, run by each node's kube-proxy after its sync:

* `desired_addresses` (pure) picks the LoadBalancer IPs whose annotation
  names this node;
* `Announcer.sync` makes exactly those addresses present as `/32` on the
  node's `lo`.  A Linux node answers ARP on its fabric link for any local
  address (arp_ignore 0), so the host and the other nodes reach the
  address at this node, where kube-proxy's rules take the packets to the
  Service's endpoints.  Each new address is also announced with one
  gratuitous ARP on the fabric link, as MetalLB's speaker does on
  failover, so neighbours that cached the previous node's MAC move at once
  instead of after their ARP entry times out.

Ownership is kept in the kernel, not in memory: addresses are added with
the label `lo:kinns-lb`, and only addresses with that label are ever
removed.  A restarted kube-proxy therefore adopts what its predecessor
added and removes what is no longer wanted; an address someone else put on
`lo` (with any other label) is never touched, even when it is also wanted.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .backend import run
from .model import Obj

log = logging.getLogger(__name__)

NODE_ANNOTATION = "kinns.io/loadbalancer-node"     # as kinns.controllers.servicelb writes it
LABEL = "lo:kinns-lb"
FABRIC_IF = "eth0"                                  # a node's link to the fabric (kinns.net.desired.NODE_IF)
ETH_P_ARP = 0x0806


def desired_addresses(services: Iterable[Obj], node_name: str) -> set[str]:
    """The IPv4 LoadBalancer addresses this node announces: those of
    LoadBalancer Services whose announcer annotation names it."""
    out: set[str] = set()
    for svc in services:
        if ((svc.get("spec") or {}).get("type")) != "LoadBalancer":
            continue
        if ((svc.get("metadata") or {}).get("annotations") or {}).get(NODE_ANNOTATION) != node_name:
            continue
        for ing in (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []:
            try:
                ip = ipaddress.ip_address(ing.get("ip") or "")
            except ValueError:
                continue
            if ip.version == 4:
                out.add(str(ip))
    return out


@dataclass(frozen=True)
class Plan:
    """What one sync changes: addresses to add (labelled ours) and to remove."""

    add: tuple[str, ...]
    remove: tuple[str, ...]

    def batch(self, dev: str = "lo", label: str = LABEL) -> str:
        """The `ip -batch` input for the plan."""
        lines = [f"addr add {ip}/32 dev {dev} label {label}" for ip in self.add]
        lines += [f"addr del {ip}/32 dev {dev}" for ip in self.remove]
        return "".join(line + "\n" for line in lines)


def plan(present: dict[str, str], desired: set[str], label: str = LABEL) -> Plan:
    """From the /32s on `lo` (address -> label) and the wanted set: add what
    nobody has, remove what we labelled and nobody wants."""
    ours = {ip for ip, lab in present.items() if lab == label}
    return Plan(add=tuple(sorted(desired - present.keys(), key=ipaddress.IPv4Address)),
                remove=tuple(sorted(ours - desired, key=ipaddress.IPv4Address)))


def garp_frame(mac: bytes, ip: str) -> bytes:
    """A gratuitous ARP request (sender = target = `ip`), broadcast."""
    addr = ipaddress.IPv4Address(ip).packed
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + addr + b"\x00" * 6 + addr
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp


class Announcer:
    """Keeps this node's LoadBalancer addresses on `lo` (in `netns`; None: ours)."""

    def __init__(self, netns: str | None = None, *, dev: str = "lo", label: str = LABEL,
                 garp_dev: str | None = FABRIC_IF) -> None:
        self.netns = netns
        self.dev = dev
        self.label = label
        self.garp_dev = garp_dev

    def present(self) -> dict[str, str]:
        """The IPv4 addresses on the device with their labels; only a /32 can
        be ours, so any other prefix is reported without a label (foreign)."""
        out = run(["ip", "-j", "-4", "addr", "show", "dev", self.dev], netns=self.netns).stdout
        found: dict[str, str] = {}
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info") or []:
                if a.get("local"):
                    found[a["local"]] = a.get("label", "") if a.get("prefixlen") == 32 else ""
        return found

    def owned(self) -> set[str]:
        return {ip for ip, lab in self.present().items() if lab == self.label}

    def sync(self, desired: set[str]) -> Plan:
        """Make exactly `desired` present (ours or someone else's) and drop
        the rest of ours; returns what changed."""
        p = plan(self.present(), desired, self.label)
        if p.add or p.remove:
            run(["ip", "-batch", "-"], input=p.batch(self.dev, self.label), netns=self.netns)
            log.info("LoadBalancer addresses on %s: added %s, removed %s", self.dev,
                     ", ".join(p.add) or "none", ", ".join(p.remove) or "none")
        if p.add and self.garp_dev:
            self._announce(p.add)
        return p

    def cleanup(self) -> None:
        """Remove every address this announcer (or a predecessor) added."""
        self.sync(set())

    def _announce(self, ips: Iterable[str]) -> None:
        """One gratuitous ARP per new address on the fabric link; best effort
        (a node without that link, as in a bare test namespace, skips it)."""
        try:
            if self.netns is None:
                self._send_garp(ips)
            else:
                from ..net import netns as nsmod      # enters the namespace for the raw socket only
                with nsmod.entered(self.netns):
                    self._send_garp(ips)
        except OSError as exc:
            log.debug("gratuitous ARP on %s skipped: %s", self.garp_dev, exc)

    def _send_garp(self, ips: Iterable[str]) -> None:
        assert self.garp_dev is not None
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
            s.bind((self.garp_dev, ETH_P_ARP))
            mac: bytes = s.getsockname()[4]
            for ip in ips:
                s.send(garp_frame(mac, ip))
