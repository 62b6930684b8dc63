"""What a request asks to do, in the terms authorizers decide on.

Upstream's `authorizer.Attributes`, filled by the RequestInfo resolver
(k8s.io/apiserver/pkg/endpoints/request/requestinfo.go): a resource request
has a verb (get, list, watch, create, update, patch, delete,
deletecollection), an API group and version, a resource, an optional
subresource and name, and a namespace; everything else (`/version`,
`/healthz`, discovery documents such as `/api` or `/apis/apps/v1`) is a
non-resource request with the HTTP method as its verb and the path.

`from_request` reproduces upstream's parsing rules, including the ones that
matter for RBAC: `GET` of a collection is `list` (`watch` with
`?watch=true`), a list narrowed by `fieldSelector=metadata.name=x` names
`x`, `DELETE` of a collection is `deletecollection`, and in
`/api/v1/namespaces/<ns>` the namespace is the object itself.  Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .user import UserInfo

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_NAME_IN_SELECTOR = re.compile(r"^metadata\.name==?([^,]+)$")


@dataclass(frozen=True)
class Attributes:
    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def full_resource(self) -> str:
        """`pods/log`-style resource, as RBAC rules and messages name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def non_resource(user: UserInfo, verb: str, path: str) -> Attributes:
    return Attributes(user, verb, False, path=path)


def from_request(user: UserInfo, method: str, path: str, query: dict[str, list[str]] | None = None) -> Attributes:
    """The authorization attributes of an HTTP request (upstream's RequestInfo rules)."""
    query = query or {}
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource(user, method.lower(), path)
    if parts[0] == "api":
        if len(parts) < 3:
            return non_resource(user, method.lower(), path)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return non_resource(user, method.lower(), path)
        group, version, rest = parts[1], parts[2], parts[3:]
    verb = _METHOD_VERBS.get(method, method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
        if not rest:
            return non_resource(user, method.lower(), path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    watch_param = (query.get("watch") or [""])[-1] in ("true", "1")
    if not name and verb == "get":
        verb = "watch" if watch_param else "list"
        selector = (query.get("fieldSelector") or [""])[-1]
        m = _NAME_IN_SELECTOR.match(selector)
        if m:
            name = m.group(1)
    elif verb == "get" and watch_param:
        verb = "watch"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, True, path=path, namespace=namespace, api_group=group, api_version=version,
                      resource=resource, subresource=subresource, name=name)
