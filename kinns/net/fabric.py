"""The node network: a fabric namespace with a bridge, one namespace per node.

`Fabric.create` is what `kinns up` calls first.  It refuses a fabric subnet
that overlaps any route the host already has (a clear `FabricOverlapError`),
then applies `desired.fabric_state`: the `kinns-<cluster>-fabric` namespace
with bridge `fabric0`, a `kinns-<cluster>-<node>` namespace per node whose
`eth0` sits on that bridge with the node's IP, and the host-access veth
`kinns-<6 hex>` holding the subnet's `.1`, whose connected route is the one
route kinns adds on the host.  Nothing else on the host is touched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from . import desired, netns
from .applier import Sockets, apply, ifindex
from .desired import NodeNet

AF_INET = 2


class FabricOverlapError(ValueError):
    """The requested fabric subnet would shadow or be shadowed by a host route."""


def host_routes(exclude_ifname: str | None = None) -> list[str]:
    """Destinations of the host's IPv4 routes in every table, except those on
    `exclude_ifname` (our own link, so re-creating a cluster is idempotent)."""
    with Sockets() as socks:
        ipr = socks.get(None)
        skip = ifindex(ipr, exclude_ifname) if exclude_ifname else None
        out = []
        for rt in ipr.route("dump", family=AF_INET):
            if skip is not None and rt.get("RTA_OIF") == skip:
                continue
            if rt["type"] not in (1, 2):      # unicast and local, not broadcast/multicast
                continue
            out.append(f"{rt.get('RTA_DST') or '0.0.0.0'}/{rt['dst_len']}")
        return out


def check_subnet(cluster: str, subnet: str) -> None:
    """Raise FabricOverlapError if `subnet` overlaps a host route."""
    try:
        net = ipaddress.ip_network(subnet)
    except ValueError as e:
        raise FabricOverlapError(f"invalid fabric subnet {subnet!r}: {e}") from None
    if net.version != 4 or net.prefixlen > 29:
        raise FabricOverlapError(f"fabric subnet {subnet} must be IPv4 and at most /29")
    hits = desired.overlaps(subnet, host_routes(desired.host_ifname(cluster)))
    if hits:
        raise FabricOverlapError(
            f"fabric subnet {subnet} overlaps host route(s) {', '.join(hits)}; "
            f"choose another with --fabric-subnet (kinns never changes host routes)")


def choose_subnet(cluster: str) -> str:
    """A free 172.18.<n>.0/24 for this cluster (see desired.pick_fabric_subnet)."""
    return desired.pick_fabric_subnet(cluster, host_routes(desired.host_ifname(cluster)))


class Fabric:
    """Entry points for the node network of one cluster."""

    @staticmethod
    def plan(cluster: str, subnet: str, n_nodes: int = 3, cluster_cidr: str = "10.244.0.0/16",
             names: Sequence[str] | None = None, node_pod_cidrs: Sequence[str] | None = None) -> list[NodeNet]:
        """The nodes' addresses without touching anything (also how a restarted
        daemon recovers its NodeNets from the saved config)."""
        names = list(names) if names is not None else desired.node_names(cluster, n_nodes)
        return desired.plan_nodes(cluster, subnet, names, cluster_cidr, node_pod_cidrs)

    @staticmethod
    def create(cluster: str, subnet: str | None = None, n_nodes: int = 3, cluster_cidr: str = "10.244.0.0/16",
               names: Sequence[str] | None = None,
               node_pod_cidrs: Sequence[str] | None = None) -> list[NodeNet]:
        """Check the subnet, then create (or repair) fabric, nodes and host link.

        On failure half-way, what exists stays; `cleanup.teardown` removes it."""
        if subnet is None:
            subnet = choose_subnet(cluster)
        else:
            check_subnet(cluster, subnet)
        nodes = Fabric.plan(cluster, subnet, n_nodes, cluster_cidr, names, node_pod_cidrs)
        for n in nodes:
            netns.create(n.netns)
        with Sockets() as socks:
            for st in desired.fabric_state(cluster, subnet, nodes):
                apply(st, socks)
        return nodes
