"""ClusterRole aggregation: `admin`, `edit` and `view` grow with the roles labelled for them.

Upstream's clusterrole-aggregation controller: a ClusterRole with an
`aggregationRule` holds the union of the rules of every ClusterRole its
`clusterRoleSelectors` select (e.g. label
`rbac.authorization.k8s.io/aggregate-to-view: "true"`), in name order and
without repeats; `rules` written by hand on such a role are overwritten.
Any ClusterRole change re-checks every aggregated role, since a new label
or rule anywhere may change them; the computation is `rbac.aggregate`.
"""

from __future__ import annotations

from ..api.errors import ApiError
from ..api.rbac import aggregate
from ..client.client import Obj
from .base import Controller

API_VERSION = "rbac.authorization.k8s.io/v1"


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation-controller"
    workers = 1

    def setup(self) -> None:
        self.roles = self.factory.informer(API_VERSION, "ClusterRole")
        self.roles.add_handlers(on_add=self._changed, on_update=lambda o, n: self._changed(n),
                                on_delete=self._changed)

    def _changed(self, _role: Obj) -> None:
        for role in self.roles.list():
            if isinstance(role.get("aggregationRule"), dict):
                self.enqueue_obj(role)

    async def reconcile(self, key: str) -> float | None:
        role = self.roles.get(key)
        if role is None:
            return None
        rules = aggregate(role, self.roles.list())
        if rules is None or rules == (role.get("rules") or []):
            return None
        try:
            await self.client.update(dict(role, rules=rules))
        except ApiError as exc:
            if exc.code != 404:
                raise       # 409: retried with the newer object from the informer
        return None
