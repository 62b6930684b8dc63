"""The review APIs: questions about authentication and authorization, answered, never stored.

- SelfSubjectAccessReview (`kubectl auth can-i VERB RESOURCE`): may I?
- SelfSubjectRulesReview (`kubectl auth can-i --list`): what may I do in a namespace?
- SubjectAccessReview / LocalSubjectAccessReview: may this other user?
- SelfSubjectReview (`kubectl auth whoami`; authentication.k8s.io v1,
  and v1beta1 for kubectl 1.27): who am I?
- TokenReview: who does this bearer token stand for?

Each is a POST of a spec; the answer is the same object with a `status`,
status 201 as upstream.  The access reviews run the server's own
authorizer (`authz.py`), so `can-i` says exactly what a request would meet.
"""

from __future__ import annotations

from typing import Any

from .attributes import Attributes
from .authz import Authorizer
from .errors import INVALID, REQUIRED, FieldError, bad_request, invalid
from .rbac import Rule
from .request import Response
from .resources import ResourceType
from .tokens import TokenAuthenticator, TokenError
from .user import UserInfo, make_extra

Obj = dict[str, Any]
AUTHZ_GROUP = "authorization.k8s.io"


def _check_kind(rt: ResourceType, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise bad_request("Object 'Kind' is missing in the request body; expected a JSON object")
    av, kind = body.get("apiVersion"), body.get("kind") or rt.kind
    if av and av != rt.api_version:
        raise bad_request(f"the API version in the data ({av}) does not match the expected API version "
                          f"({rt.api_version})")
    if kind != rt.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    return body


def _answer(rt: ResourceType, body: Obj, status: Obj, namespace: str = "") -> Response:
    meta: Obj = {"creationTimestamp": None}
    if namespace:
        meta["namespace"] = namespace
    for k in ("name", "generateName"):
        if (body.get("metadata") or {}).get(k):
            meta[k] = body["metadata"][k]
    out: Obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
    if "spec" in body or rt.kind != "SelfSubjectReview":
        out["spec"] = body.get("spec") or {}
    out["status"] = status
    return Response(201, obj=out)


def _attributes(user: UserInfo, spec: Obj, rt: ResourceType, name: str) -> Attributes:
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (ra is None) == (nra is None):
        raise invalid(rt.kind, AUTHZ_GROUP, name, [FieldError(
            INVALID, "spec.resourceAttributes", _go_struct(ra),
            "exactly one of nonResourceAttributes or resourceAttributes must be specified")])
    if isinstance(nra, dict):
        return Attributes(user, str(nra.get("verb", "")), False, path=str(nra.get("path", "")))
    ra = ra if isinstance(ra, dict) else {}
    return Attributes(user, str(ra.get("verb", "")), True, namespace=str(ra.get("namespace", "")),
                      api_group=str(ra.get("group", "")), api_version=str(ra.get("version", "")),
                      resource=str(ra.get("resource", "")), subresource=str(ra.get("subresource", "")),
                      name=str(ra.get("name", "")))


def _go_struct(value: Any) -> str:
    return "null" if value is None else "{...}"


def _decision(authorizer: Authorizer, a: Attributes) -> Obj:
    allowed, reason = authorizer.authorize(a)
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


class Reviews:
    """Handlers for the review kinds, bound to the server's authorizer and token checker."""

    def __init__(self, authorizer: Authorizer, tokens: TokenAuthenticator | None) -> None:
        self.authorizer = authorizer
        self.tokens = tokens

    async def create(self, rt: ResourceType, namespace: str, body: Any, user: UserInfo) -> Response:
        body = _check_kind(rt, body)
        handler = {
            "SelfSubjectAccessReview": self._self_access,
            "SubjectAccessReview": self._access,
            "LocalSubjectAccessReview": self._access,
            "SelfSubjectRulesReview": self._rules,
            "SelfSubjectReview": self._whoami,
            "TokenReview": self._token,
        }[rt.kind]
        return handler(rt, namespace, body, user)

    def _self_access(self, rt: ResourceType, namespace: str, body: Obj, user: UserInfo) -> Response:
        spec = body.get("spec") or {}
        a = _attributes(user, spec, rt, "")
        return _answer(rt, body, _decision(self.authorizer, a))

    def _access(self, rt: ResourceType, namespace: str, body: Obj, user: UserInfo) -> Response:
        spec = body.get("spec") or {}
        name = (body.get("metadata") or {}).get("name", "")
        if not spec.get("user") and not spec.get("groups"):
            raise invalid(rt.kind, AUTHZ_GROUP, name, [FieldError(
                INVALID, "spec.user", "", "at least one of user or group must be specified")])
        subject = UserInfo(str(spec.get("user", "")), str(spec.get("uid", "")),
                           tuple(str(g) for g in spec.get("groups") or []), make_extra(spec.get("extra")))
        a = _attributes(subject, spec, rt, name)
        if rt.kind == "LocalSubjectAccessReview":
            if not a.resource_request and spec.get("nonResourceAttributes") is not None:
                raise invalid(rt.kind, AUTHZ_GROUP, name, [FieldError(
                    INVALID, "spec.nonResourceAttributes", "{...}", "disallowed on this kind of request")])
            if a.namespace != namespace:
                raise invalid(rt.kind, AUTHZ_GROUP, name, [FieldError(
                    INVALID, "spec.resourceAttributes.namespace", a.namespace, "must match metadata.namespace")])
        return _answer(rt, body, _decision(self.authorizer, a), namespace)

    def _rules(self, rt: ResourceType, namespace: str, body: Obj, user: UserInfo) -> Response:
        spec = body.get("spec") or {}
        ns = str(spec.get("namespace", ""))
        rules, errors = self.authorizer.rules_for(user, ns)
        status: Obj = {"resourceRules": [_resource_rule(r) for r in rules if r.resources],
                       "nonResourceRules": [_non_resource_rule(r) for r in rules if r.non_resource_urls],
                       "incomplete": False}
        if errors:
            status["evaluationError"] = ", ".join(errors)
        return _answer(rt, body, status)

    def _whoami(self, rt: ResourceType, namespace: str, body: Obj, user: UserInfo) -> Response:
        return _answer(rt, body, {"userInfo": user.to_api()})

    def _token(self, rt: ResourceType, namespace: str, body: Obj, user: UserInfo) -> Response:
        spec = body.get("spec") or {}
        token = spec.get("token")
        if not token:
            raise invalid(rt.kind, "authentication.k8s.io", "", [FieldError(REQUIRED, "spec.token")])
        wanted = list(spec.get("audiences") or [])
        status: Obj = {"user": {}}
        try:
            found = self.tokens.authenticate(str(token), wanted or None) if self.tokens else None
        except TokenError as exc:
            status["error"] = str(exc)
            found = None
        if found is not None:
            status = {"authenticated": True, "user": found.to_api(),
                      "audiences": wanted or list(self.tokens.audiences if self.tokens else [])}
        return _answer(rt, body, status)


def _resource_rule(r: Rule) -> Obj:
    out: Obj = {"verbs": list(r.verbs), "apiGroups": list(r.api_groups), "resources": list(r.resources)}
    if r.resource_names:
        out["resourceNames"] = list(r.resource_names)
    return out


def _non_resource_rule(r: Rule) -> Obj:
    return {"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)}

