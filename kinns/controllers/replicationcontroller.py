"""The ReplicationController manager: the ReplicaSet controller, for the core/v1 kind.

Upstream's replication manager is the ReplicaSet controller run over
ReplicationControllers through a conversion adapter (pkg/controller/
replication); here it is the same class with the kind and the selector
swapped: a ReplicationController's `selector` is a plain label map, matched
by equality.  Everything else (adoption of orphans, slow-start creation,
deletion order, expectations, status) is shared, so the two cannot drift.
"""

from __future__ import annotations

from ..api.selectors import LabelSelector
from ..client.client import Obj
from .replicaset import ReplicaSetController


class ReplicationManager(ReplicaSetController):
    name = "replication-controller"
    kind = ("v1", "ReplicationController")

    def selector(self, rc: Obj) -> LabelSelector:
        labels = rc["spec"].get("selector")
        # An empty map selects nothing here (validation refuses one anyway).
        return LabelSelector.from_spec({"matchLabels": labels} if labels else None)
