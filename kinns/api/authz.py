"""Authorization: may this user do this?  kube-apiserver's `--authorization-mode=Node,RBAC`.

The chain upstream builds, in order, first "allow" wins:
1. the privileged group `system:masters` may do anything (its members are
   also bound to `cluster-admin`, but this answer costs nothing);
2. the Node authorizer (`nodeauthz.py`) for `system:node:<name>` users;
3. RBAC (`rbac.py`) over the stored Roles, ClusterRoles and bindings.
Nobody allowing means 403, with upstream's sentence
(`pods is forbidden: User "system:serviceaccount:default:default" cannot
list resource "pods" in API group "" in the namespace "default"`) and the
authorizers' reasons appended after a colon.

The RBAC snapshot (`rbac.Policy`) is rebuilt from the store only after an
RBAC object changed (`invalidate`, called by the API server on every write
to the rbac group), and caches rules per user and namespace, so a request
costs a dictionary look-up and a few rule checks.
"""

from __future__ import annotations

from typing import Any

from .attributes import Attributes
from .errors import ApiError
from .nodeauthz import NodeAuthorizer
from .rbac import GROUP, Policy, Rule
from .store.base import Store
from .user import UserInfo, node_name_of

Obj = dict[str, Any]
RBAC_RESOURCES = tuple(f"{r}.{GROUP}" for r in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"))


def forbidden_message(a: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    user = a.user.name
    if not a.resource_request:
        return f'User "{user}" cannot {a.verb} path "{a.path}"'
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{user}" cannot {a.verb} resource "{a.full_resource}" in API group "{a.api_group}" {where}'


def forbidden(a: Attributes, reason: str = "") -> ApiError:
    """The 403 Status for refused attributes (ForbiddenStatusError + NewForbidden)."""
    msg = forbidden_message(a)
    if reason:
        msg = f"{msg}: {reason}"
    return forbidden_error(a.resource if a.resource_request else "", a.api_group, a.name, msg)


def forbidden_error(resource: str, group: str, name: str, why: str) -> ApiError:
    """apierrors.NewForbidden(GroupResource{group, resource}, name, why)."""
    qualified = f"{resource}.{group}" if group and resource else resource
    if not qualified and not group:
        text = f"forbidden: {why}"
    elif not name:
        text = f"{qualified} is forbidden: {why}"
    else:
        text = f'{qualified} "{name}" is forbidden: {why}'
    return ApiError(403, "Forbidden", text, {"name": name, "group": group, "kind": resource})


class Authorizer:
    """The Node,RBAC chain over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.node = NodeAuthorizer(lambda resource: store.list(resource))
        self._policy: Policy | None = None

    def invalidate(self) -> None:
        """An RBAC object changed: the next decision rebuilds the snapshot."""
        self._policy = None

    @property
    def policy(self) -> Policy:
        p = self._policy
        if p is None:
            roles, cluster_roles, bindings, cluster_bindings = (self.store.list(r) for r in RBAC_RESOURCES)
            p = self._policy = Policy(roles, cluster_roles, bindings, cluster_bindings)
        return p

    def authorize(self, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason) from the chain; the reason explains a refusal or names the grant."""
        if a.user.is_masters:
            return True, ""
        reasons = []
        allowed, reason = self.node.authorize(a)
        if allowed:
            return True, reason
        if reason:
            reasons.append(reason)
        ok, reason = self.policy.authorize(a)
        if ok:
            return True, reason
        if reason:
            reasons.append(reason)
        return False, "\n".join(reasons)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """Every rule `user` holds in `namespace` (for SelfSubjectRulesReview and escalation checks)."""
        if user.is_masters:
            return [Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",))], []
        rules, errors = self.policy.rules_for(user, namespace)
        if node_name_of(user):
            rules = rules + self.node.rules   # the static part of the Node authorizer
        return rules, errors

    def check(self, a: Attributes) -> None:
        """Raise upstream's 403 unless the chain allows `a`."""
        allowed, reason = self.authorize(a)
        if not allowed:
            raise forbidden(a, reason)
