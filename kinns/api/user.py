"""Who a request is from: the user record authentication produces.

Upstream's `user.Info` (k8s.io/apiserver/pkg/authentication/user): a name,
a UID, groups and "extra" attributes.  Authentication (`authn.py`) makes
one from a client certificate, a ServiceAccount token or nothing at all;
impersonation replaces it; authorization (`authz.py`, `rbac.py`) and the
self-reviews (`reviews.py`) read it.  This module holds the record and the
well-known names, so those modules agree on the spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"                       # upstream's SystemPrivilegedGroup
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
KUBE_PROXY = "system:kube-proxy"
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
KUBE_SCHEDULER = "system:kube-scheduler"

SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"

# Extra keys a ServiceAccount token carries into the user record.
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) identity; frozen so it can key caches."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    @property
    def is_masters(self) -> bool:
        return MASTERS in self.groups

    def extra_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.extra}

    def to_api(self) -> dict[str, Any]:
        """The `authentication.k8s.io UserInfo` JSON form (empty fields left out)."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = self.extra_dict()
        return out


def make_extra(values: dict[str, list[str]] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`extra` as the hashable form UserInfo keeps (sorted by key)."""
    return tuple(sorted((k, tuple(v)) for k, v in (values or {}).items()))


def with_authenticated(groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Groups plus `system:authenticated`, as upstream's authenticator group adder does."""
    return tuple(groups) if AUTHENTICATED in groups else (*groups, AUTHENTICATED)


ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))


def sa_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def sa_groups(namespace: str) -> tuple[str, ...]:
    return (SA_GROUP, f"{SA_GROUP}:{namespace}")


def split_sa_username(username: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:<ns>:<name>`, else None."""
    if not username.startswith(SA_PREFIX):
        return None
    rest = username[len(SA_PREFIX):]
    ns, sep, name = rest.partition(":")
    if not sep or not ns or not name or ":" in name:
        return None
    return ns, name


def node_name_of(user: UserInfo) -> str | None:
    """The node a `system:node:<name>` user in `system:nodes` speaks for ("" if unnamed), else None."""
    if NODES not in user.groups or not user.name.startswith(NODE_PREFIX):
        return None
    return user.name[len(NODE_PREFIX):]
