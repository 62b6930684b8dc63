"""Routes between nodes' pod ranges: flannel-style VXLAN, host-gw or Calico-style IP-in-IP.

`setup_node` gives a node its pod side (`cni0` with the gateway address,
ip_forward on, and for vxlan the `flannel.1` VTEP); `sync_routes` makes its
routes match the current set of peers (call it whenever a node joins,
leaves or gets its podCIDR).  Both are `desired.node_state` applied; they are
idempotent, and entries for peers that are gone are removed.  Switching
mode removes flannel.1 (host-gw) or replaces the direct routes (vxlan).
For ipip, `ipip.ensure_tunnel` first makes tunl0 (the kernel's device or a
TUN device for the user-space encapsulator) since the applier only tunes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import desired, ipip
from .applier import Sockets, apply
from .desired import NodeNet


def _apply(state: desired.NsState, socks: Sockets | None) -> None:
    # A private socket set unless the caller shares one: a cached netlink
    # socket would keep a deleted node namespace alive.
    if socks is not None:
        apply(state, socks)
        return
    with Sockets() as own:
        apply(state, own)


def _state(node: NodeNet, peers: Sequence[NodeNet], mode: str, cluster_cidr: str) -> desired.NsState:
    kind = "ipip"
    if mode == "ipip":
        kind = "ipip" if ipip.ensure_tunnel(node.netns) == ipip.KERNEL else "tun"
    return desired.node_state(node, peers, mode, cluster_cidr, tunnel_kind=kind)


def setup_node(node: NodeNet, peers: Sequence[NodeNet] = (), mode: str = "vxlan",
               cluster_cidr: str = "10.244.0.0/16", socks: Sockets | None = None) -> None:
    """Bring up the node's pod network (bridge, overlay device, peer routes)."""
    _apply(_state(node, peers, mode, cluster_cidr), socks)


def sync_routes(node: NodeNet, peers: Sequence[NodeNet], mode: str = "vxlan",
                cluster_cidr: str = "10.244.0.0/16", socks: Sockets | None = None) -> None:
    """Make `node`'s routes, neighbours and FDB entries reach exactly `peers`
    (the node itself may be in the list; it is skipped)."""
    _apply(_state(node, peers, mode, cluster_cidr), socks)


def setup_cluster(nodes: Sequence[NodeNet], mode: str = "vxlan", cluster_cidr: str = "10.244.0.0/16") -> None:
    """Every node set up with every other node as a peer."""
    for n in nodes:
        setup_node(n, nodes, mode, cluster_cidr)
