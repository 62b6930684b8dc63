"""hostPort: a container port that answers on its node's address, as the CNI
`portmap` plugin does it on kind and k3s.

The kubelet calls `add_pod` once a (non-hostNetwork) pod's network is up and
`remove_pod` before it tears the network down.  The rules live in the node's
`nat` table with the plugin's names and shape, so `iptables-save` inside a
node reads as it does on a kind node:

    PREROUTING, OUTPUT   -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    CNI-HOSTPORT-DNAT    per pod and protocol: -m comment --comment 'dnat name: "kinns" id: "<pod uid>"'
                         -m multiport --dports <host ports> -j CNI-DN-<hash>
    CNI-DN-<hash>        per mapping: mark hairpin (-s <pod range>) and localhost
                         (-s 127.0.0.1) traffic for masquerade, then
                         -j DNAT --to-destination <pod IP>:<container port>
                         (`-d <hostIP>` on all three when the port names a hostIP)
    CNI-HOSTPORT-SETMARK -j MARK --set-xmark 0x2000/0x2000
    CNI-HOSTPORT-MASQ    -m mark --mark 0x2000/0x2000 -j MASQUERADE (first in POSTROUTING)

`CNI-DN-<hash>` is the plugin's name: "CNI-DN-" + sha512(network name +
container ID) in hex, cut to 28 characters.  The container ID is the pod
UID, as for the bridge attachment.

Compute, then apply: `parse_nat` reads `iptables-save -t nat`, and the pure
`render` turns it plus one pod's mappings into an `iptables-restore
--noflush` input that rewrites the shared chains in one transaction (the
other pods' jumps in CNI-HOSTPORT-DNAT are carried over verbatim) and the
pod's own chain.  Removing the last pod's mappings removes every CNI-
chain and jump, so a node without hostPorts has none.  `PortMapper` is the
applier: it reads, renders and restores in the node's namespace under a
per-node lock (the kubelet sets up a node's pods in parallel), sets
`route_localnet` on the bridge so 127.0.0.1:hostPort works inside the node,
and drops stale UDP conntrack entries for new UDP mappings, as the plugin
does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..proxy.backend import run
from . import desired, netns
from .desired import NodeNet

log = logging.getLogger(__name__)

NETWORK = "kinns"                          # the network name the pods' CNI config uses
DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
DN_PREFIX = "CNI-DN-"
MARK_BIT = 13                              # the plugin's default markMasqBit
MARK = f"{1 << MARK_BIT:#x}/{1 << MARK_BIT:#x}"
MULTIPORT_MAX = 15                         # ports per multiport match
ENTRY = "-m addrtype --dst-type LOCAL -j " + DNAT_CHAIN
MASQ_JUMP = '-m comment --comment "CNI portfwd requiring masquerade" -j ' + MASQ_CHAIN
SETMARK_RULE = f'-m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark {MARK}'
MASQ_RULE = f"-m mark --mark {MARK} -j MASQUERADE"


# ---- what a pod asks for ---------------------------------------------------------

@dataclass(frozen=True)
class PortMapping:
    """One hostPort, as the kubelet hands it to CNI (`runtimeConfig.portMappings`)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"       # lower case, as CNI carries it
    host_ip: str = ""           # "" (or 0.0.0.0): every local address


def pod_mappings(pod: dict[str, Any]) -> list[PortMapping]:
    """The hostPort mappings of a pod's containers; none for a hostNetwork pod
    (its ports are the node's already).  A second claim on the same
    (protocol, hostIP, hostPort) is dropped, as the kubelet drops it."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return []
    out: list[PortMapping] = []
    seen: set[tuple[str, str, int]] = set()
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if not p.get("hostPort"):
                continue
            m = PortMapping(int(p["hostPort"]), int(p["containerPort"]), (p.get("protocol") or "TCP").lower(),
                            p.get("hostIP") or "")
            if (m.protocol, m.host_ip, m.host_port) not in seen:
                seen.add((m.protocol, m.host_ip, m.host_port))
                out.append(m)
    return out


# ---- the rules (pure) ---------------------------------------------------------------

def dnat_chain_name(container_id: str, network: str = NETWORK) -> str:
    return (DN_PREFIX + hashlib.sha512((network + container_id).encode()).hexdigest())[:28]


def _comment(network: str, container_id: str) -> str:
    text = f'dnat name: "{network}" id: "{container_id}"'
    if len(text) > 255:
        text = text[:253] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def entry_rules(container_id: str, mappings: Sequence[PortMapping], network: str = NETWORK) -> list[str]:
    """The pod's rules in CNI-HOSTPORT-DNAT: one per protocol and 15 ports,
    written as `iptables-save` prints them back (so they compare as text)."""
    chain = dnat_chain_name(container_id, network)
    by_proto: dict[str, list[int]] = {}
    for m in mappings:
        by_proto.setdefault(m.protocol, []).append(m.host_port)
    out = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        for i in range(0, len(ports), MULTIPORT_MAX):
            chunk = ",".join(str(p) for p in ports[i:i + MULTIPORT_MAX])
            out.append(f"-p {proto} -m comment --comment {_comment(network, container_id)} "
                       f"-m multiport --dports {chunk} -j {chain}")
    return out


def _host_ip(m: PortMapping) -> str | None:
    """The `-d` address of a mapping, None for "any local address"; a
    hostIP of the other family than the pod's never matches (skipped)."""
    if not m.host_ip:
        return None
    ip = ipaddress.ip_address(m.host_ip)
    return None if ip.is_unspecified else str(ip)


def chain_rules(pod_ip: str, pod_net: str, mappings: Sequence[PortMapping]) -> list[str]:
    """The pod's own chain: per mapping, mark hairpin and localhost traffic
    for masquerade, then DNAT to the pod (the marks must come first)."""
    net = ipaddress.ip_network(pod_net, strict=False)
    out = []
    for m in mappings:
        if m.host_ip and ipaddress.ip_address(m.host_ip).version != 4:
            continue
        dst = _host_ip(m)
        base = (f"-d {dst}/32 " if dst else "") + f"-p {m.protocol} -m {m.protocol} --dport {m.host_port}"
        out.append(f"-s {net} {base} -j {SETMARK_CHAIN}")
        out.append(f"-s 127.0.0.1/32 {base} -j {SETMARK_CHAIN}")
        out.append(f"{base} -j DNAT --to-destination {pod_ip}:{m.container_port}")
    return out


@dataclass
class NatTable:
    """The `nat` table as `iptables-save -t nat` shows it: chains in order of
    appearance and each chain's rules (without the `-A CHAIN ` prefix)."""

    chains: dict[str, list[str]] = field(default_factory=dict)

    def rules(self, chain: str) -> list[str]:
        return self.chains.get(chain, [])

    def has(self, chain: str) -> bool:
        return chain in self.chains

    def jumps(self, chain: str, target: str) -> list[str]:
        return [r for r in self.rules(chain) if r.endswith(f"-j {target}")]


def parse_nat(save: str) -> NatTable:
    """Parse `iptables-save -t nat` output (other tables, if any, are skipped)."""
    t = NatTable()
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table != "nat":
            continue
        elif line.startswith(":"):
            t.chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, chain, rest = line.split(" ", 2)
            t.chains.setdefault(chain, []).append(rest)
    return t


def render(table: NatTable, container_id: str, pod_ip: str, pod_net: str, mappings: Sequence[PortMapping],
           network: str = NETWORK) -> str:
    """`iptables-restore --noflush` input that makes the pod's mappings
    `mappings` (empty: none) given the table as it is; "" when nothing
    needs to change.

    Declaring a chain (`:NAME - [0:0]`) flushes it, so every declared chain
    is written in full: the shared chains, with the other pods' jumps in
    CNI-HOSTPORT-DNAT carried over verbatim, and the pod's own chain.  The
    built-in chains are never flushed: a jump is added there only when
    missing (PREROUTING and OUTPUT appended, POSTROUTING first, as the
    plugin does) and deleted by its printed text."""
    own = dnat_chain_name(container_id, network)
    others = [r for r in table.rules(DNAT_CHAIN) if not r.endswith(f"-j {own}")]
    want_entries = entry_rules(container_id, mappings, network)
    want_chain = chain_rules(pod_ip, pod_net, mappings) if mappings else []
    if mappings:
        if (table.rules(DNAT_CHAIN) == others + want_entries and table.rules(own) == want_chain
                and table.rules(SETMARK_CHAIN) == [SETMARK_RULE] and table.rules(MASQ_CHAIN) == [MASQ_RULE]
                and table.jumps("PREROUTING", DNAT_CHAIN) and table.jumps("OUTPUT", DNAT_CHAIN)
                and table.jumps("POSTROUTING", MASQ_CHAIN)):
            return ""
        return _restore(_write_shared(table, others + want_entries) + _write_chain(own, want_chain))
    if not table.has(own) and others == table.rules(DNAT_CHAIN):
        return ""
    other_pods = [c for c in table.chains if c.startswith(DN_PREFIX) and c != own]
    if others or other_pods:
        lines = [f":{DNAT_CHAIN} - [0:0]"] + [f"-A {DNAT_CHAIN} {r}" for r in others]
        return _restore(lines + _delete_chains([own] if table.has(own) else []))
    # The last pod with hostPorts is gone: take everything away.
    lines = [f"-D {builtin} {r}" for builtin, target in (("PREROUTING", DNAT_CHAIN), ("OUTPUT", DNAT_CHAIN),
                                                         ("POSTROUTING", MASQ_CHAIN))
             for r in table.jumps(builtin, target)]
    return _restore(lines + _delete_chains([c for c in (own, DNAT_CHAIN, MASQ_CHAIN, SETMARK_CHAIN)
                                            if table.has(c)]))


def _write_shared(table: NatTable, dnat_rules: list[str]) -> list[str]:
    lines = [f":{SETMARK_CHAIN} - [0:0]", f":{MASQ_CHAIN} - [0:0]", f":{DNAT_CHAIN} - [0:0]",
             f"-A {SETMARK_CHAIN} {SETMARK_RULE}", f"-A {MASQ_CHAIN} {MASQ_RULE}"]
    lines += [f"-A {DNAT_CHAIN} {r}" for r in dnat_rules]
    for builtin in ("PREROUTING", "OUTPUT"):
        if not table.jumps(builtin, DNAT_CHAIN):
            lines.append(f"-A {builtin} {ENTRY}")
    if not table.jumps("POSTROUTING", MASQ_CHAIN):
        lines.append(f"-I POSTROUTING 1 {MASQ_JUMP}")
    return lines


def _write_chain(chain: str, rules: list[str]) -> list[str]:
    return [f":{chain} - [0:0]"] + [f"-A {chain} {r}" for r in rules]


def _delete_chains(chains: Iterable[str]) -> list[str]:
    chains = list(chains)
    return [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in chains]


def _restore(lines: list[str]) -> str:
    """Declarations first, as iptables-restore wants them, then the rules."""
    decls = [ln for ln in lines if ln.startswith(":")]
    rest = [ln for ln in lines if not ln.startswith(":")]
    return "\n".join(["*nat", *decls, *rest, "COMMIT"]) + "\n"


# ---- the applier ----------------------------------------------------------------------

class PortMapper:
    """Applies pods' hostPort mappings in one node's namespace (None: ours)."""

    def __init__(self, node_netns: str | None, *, network: str = NETWORK, bridge: str = desired.CNI_BRIDGE) -> None:
        self.node_netns = node_netns
        self.network = network
        self.bridge = bridge
        self._lock = threading.Lock()
        self._mapped: set[str] | None = None      # container IDs with rules; None until read from the kernel

    def _table(self) -> NatTable:
        table = parse_nat(run(["iptables-save", "-t", "nat"], netns=self.node_netns).stdout)
        if self._mapped is None:
            prefix = f'--comment "dnat name: \\"{self.network}\\" id: \\"'
            self._mapped = {r.split(prefix, 1)[1].split('\\"', 1)[0] for r in table.rules(DNAT_CHAIN) if prefix in r}
        return table

    def may_have(self, container_id: str) -> bool:
        """False only when this container surely has no rules (cheap, no I/O)."""
        return self._mapped is None or container_id in self._mapped

    def add(self, container_id: str, pod_ip: str, pod_net: str, mappings: Sequence[PortMapping]) -> None:
        """Make the pod's mappings exactly `mappings` (idempotent)."""
        if not mappings and not self.may_have(container_id):
            return
        with self._lock:
            text = render(self._table(), container_id, pod_ip, pod_net, mappings, self.network)
            if text:
                if mappings:
                    self._route_localnet()
                run(["iptables-restore", "--noflush"], input=text, netns=self.node_netns)
            assert self._mapped is not None
            if mappings:
                self._mapped.add(container_id)
            else:
                self._mapped.discard(container_id)
        for m in mappings:
            if m.protocol == "udp":     # a stale entry would keep sending the port elsewhere
                run(["conntrack", "-D", "-p", "udp", "--dport", str(m.host_port)], netns=self.node_netns,
                    check=False)

    def _route_localnet(self) -> None:
        """Let 127.0.0.1 cross to the bridge, so 127.0.0.1:hostPort reaches the
        pod from inside the node (the localhost rule masquerades it)."""
        try:
            netns.sysctl(self.node_netns, f"net/ipv4/conf/{self.bridge}/route_localnet", "1")
        except OSError as exc:
            log.warning("route_localnet on %s: %s (127.0.0.1:hostPort will not answer)", self.bridge, exc)

    def remove(self, container_id: str) -> None:
        """Drop the pod's mappings; a no-op for a pod that has none."""
        self.add(container_id, "", "", [])


# ---- the kubelet's entry points ------------------------------------------------------

_mappers: dict[str, PortMapper] = {}
_mappers_lock = threading.Lock()


def mapper_for(node: NodeNet) -> PortMapper:
    with _mappers_lock:
        pm = _mappers.get(node.netns)
        if pm is None:
            pm = _mappers[node.netns] = PortMapper(node.netns)
        return pm


def add_pod(node: NodeNet, container_id: str, pod_ip: str, pod: dict[str, Any]) -> list[PortMapping]:
    """After the pod's network is up: its hostPorts answer on the node.
    A pod without hostPorts costs nothing (no process is run)."""
    mappings = pod_mappings(pod)
    if mappings:
        mapper_for(node).add(container_id, pod_ip, node.pod_cidr, mappings)
    return mappings


def may_have_ports(node: NodeNet, container_id: str) -> bool:
    """Whether `remove_pod` has anything to do (no I/O: the kubelet asks on its event loop)."""
    with _mappers_lock:
        pm = _mappers.get(node.netns)
    return pm is None or pm.may_have(container_id)


def remove_pod(node: NodeNet, container_id: str) -> None:
    """Before the pod's network goes: take its hostPorts away."""
    mapper_for(node).remove(container_id)


def forget(prefix: str = "") -> None:
    """Forget mappers of namespaces starting with `prefix` (a torn-down cluster)."""
    with _mappers_lock:
        for name in [n for n in _mappers if n.startswith(prefix)]:
            del _mappers[name]
