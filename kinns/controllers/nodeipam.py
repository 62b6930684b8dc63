"""Node IPAM: gives each Node a pod range (`spec.podCIDR`) from the cluster CIDR.

As kube-controller-manager's range allocator with `--allocate-node-cidrs`:
a /24 per node from 10.244.0.0/16 by default, in order, never two nodes
the same range.  When the cluster CIDR is used up, the node gets a Warning
Event `CIDRNotAvailable` and no range, so its pods cannot start, and
`kubectl describe node` says why.
"""

from __future__ import annotations

import ipaddress

from ..client.client import Client, Obj
from ..client.informer import InformerFactory
from .base import Controller


def next_free(cluster_cidr: str, mask: int, taken: set[str]) -> str | None:
    net = ipaddress.ip_network(cluster_cidr)
    for sub in net.subnets(new_prefix=mask):
        if str(sub) not in taken:
            return str(sub)
    return None


class NodeIpamController(Controller):
    name = "node-ipam-controller"
    workers = 1  # allocation must see its own previous answers

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 cluster_cidr: str = "10.244.0.0/16", node_mask: int = 24) -> None:
        super().__init__(client, factory)
        self.cluster_cidr = cluster_cidr
        self.node_mask = node_mask
        self._given: dict[str, str] = {}

    def setup(self) -> None:
        self.nodes = self.factory.informer("v1", "Node")
        self.nodes.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                                on_delete=self._released)

    def _released(self, node: Obj) -> None:
        self._given.pop(node["metadata"]["name"], None)

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return None
        taken = {(n.get("spec") or {}).get("podCIDR") for n in self.nodes.list()} | set(self._given.values())
        cidr = next_free(self.cluster_cidr, self.node_mask, {t for t in taken if t})
        if cidr is None:
            self.client.emit_event(
                node, "CIDRNotAvailable",
                f"Node {key} status is now: CIDRNotAvailable (no /{self.node_mask} left in {self.cluster_cidr})",
                type="Warning", component="cidrAllocator")
            return None
        self._given[key] = cidr
        await self.client.patch(("v1", "Node"), node["metadata"]["name"],
                                {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        return None

