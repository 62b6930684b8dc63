"""Authentication: who sent an HTTPS request, and who it may act as.

kube-apiserver's chain, in its order and with its failure rules:

1. x509 client certificates: the TLS layer already checked the chain to the
   cluster CA (`http.server_ssl_context`); here the certificate must also
   be meant for client auth, and its subject gives the user: CN is the
   name, each O a group (`kubernetes-admin` in `system:masters`;
   `system:kube-proxy`; `system:node:<node>` in `system:nodes`).
2. `Authorization: Bearer <token>`: a ServiceAccount JWT (`tokens.py`).
   A bearer token nobody accepts is an error, not anonymity.
3. Nothing at all: `system:anonymous` in `system:unauthenticated`
   (anonymous auth is on by default upstream); what it may do is RBAC's
   business (`system:public-info-viewer`: `/version`, `/healthz`, ...).

Every authenticated user also gets `system:authenticated`.  Failures are
401 with upstream's bare `Unauthorized` Status, which kubectl prints as
`error: You must be logged in to the server (Unauthorized)`.

`impersonate` is the impersonation filter that follows (kubectl `--as`,
`--as-group`): the real user needs the `impersonate` verb on `users`,
`groups`, `serviceaccounts` (or `uids`, `userextras/<key>`), checked through
the same authorizer as everything else.
"""

from __future__ import annotations

from typing import Callable, Mapping

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .attributes import Attributes
from .errors import ApiError, bad_request
from .tokens import TokenAuthenticator, TokenError
from .user import (ANONYMOUS, ANONYMOUS_USER, AUTHENTICATED, UNAUTHENTICATED, UserInfo, make_extra, sa_groups,
                   split_sa_username, with_authenticated)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class AuthenticationError(Exception):
    """Credentials were presented and rejected (answered with 401)."""


def user_from_certificate(der: bytes) -> UserInfo:
    """The user a verified client certificate names (CN, O...), as upstream's x509 CommonNameUserConversion."""
    cert = x509.load_der_x509_certificate(der)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            raise AuthenticationError("x509: certificate specifies an incompatible key usage")
    except x509.ExtensionNotFound:
        pass
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(cns[0].value) if cns else ""
    if not name:
        raise AuthenticationError("x509: subject with cn= is required")
    groups = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return UserInfo(name, groups=with_authenticated(groups))


class Authenticator:
    """Turns a request's credentials into a UserInfo (see the module docstring)."""

    CACHE_SIZE = 1024

    def __init__(self, tokens: TokenAuthenticator | None = None, *, anonymous: bool = True) -> None:
        self.tokens = tokens
        self.anonymous = anonymous
        self._certs: dict[bytes, UserInfo | AuthenticationError] = {}

    def from_certificate(self, der: bytes) -> UserInfo:
        hit = self._certs.get(der)
        if hit is None:
            try:
                hit = user_from_certificate(der)
            except AuthenticationError as exc:
                hit = exc
            if len(self._certs) >= self.CACHE_SIZE:
                self._certs.clear()
            self._certs[der] = hit
        if isinstance(hit, AuthenticationError):
            raise hit
        return hit

    def from_token(self, token: str) -> UserInfo:
        if self.tokens is None:
            raise AuthenticationError("invalid bearer token")
        try:
            user = self.tokens.authenticate(token)
        except TokenError as exc:
            raise AuthenticationError(str(exc)) from None
        if user is None:
            raise AuthenticationError("invalid bearer token")
        return user

    def authenticate(self, cert_der: bytes | None, authorization: str) -> UserInfo:
        """The request's user; AuthenticationError (→ 401) for rejected credentials."""
        if cert_der:
            return self.from_certificate(cert_der)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
            if not token:
                raise AuthenticationError("invalid bearer token")
            return self.from_token(token)
        if not self.anonymous:
            raise AuthenticationError("no credentials")
        return ANONYMOUS_USER


# ----------------------------------------------------------- impersonation

Authorize = Callable[[Attributes], tuple[bool, str]]
# Builds the 403 for a refused impersonation from its attributes and reason.
Forbid = Callable[[Attributes, str], ApiError]

_EXTRA_PREFIX = "impersonate-extra-"


def impersonation_requested(headers: Mapping[str, object]) -> bool:
    """Whether any Impersonate-* header is present (names lower-case)."""
    return any(k == "impersonate-user" or k == "impersonate-group" or k == "impersonate-uid"
               or k.startswith(_EXTRA_PREFIX) for k in headers)


def impersonate(requester: UserInfo, headers: dict[str, list[str]], authorize: Authorize,
                forbid: Forbid) -> UserInfo:
    """The user to act as, after checking the requester may impersonate it
    (k8s.io/apiserver endpoints/filters/impersonation.go).  `headers` maps
    lower-case names to all their values."""
    username = (headers.get("impersonate-user") or [""])[-1]
    groups = [g for g in headers.get("impersonate-group") or [] if g]
    uid = (headers.get("impersonate-uid") or [""])[-1]
    extra: dict[str, list[str]] = {}
    for key, values in headers.items():
        if key.startswith(_EXTRA_PREFIX):
            extra.setdefault(_unescape_extra_key(key[len(_EXTRA_PREFIX):]), []).extend(values)
    if not username:
        if groups or uid or extra:
            raise bad_request("requested impersonation without impersonating a user")
        return requester

    def check(resource: str, name: str, namespace: str = "", subresource: str = "",
              group: str = "") -> None:
        a = Attributes(requester, "impersonate", True, namespace=namespace, api_group=group,
                       resource=resource, subresource=subresource, name=name)
        allowed, reason = authorize(a)
        if not allowed:
            raise forbid(a, reason)

    sa = split_sa_username(username)
    if sa is not None:
        check("serviceaccounts", sa[1], namespace=sa[0])
        if not groups:
            groups = list(sa_groups(sa[0]))
    else:
        check("users", username)
    for g in groups:
        check("groups", g)
    if uid:
        check("uids", uid, group="authentication.k8s.io")
    for key, values in extra.items():
        for v in values:
            check("userextras", v, subresource=key, group="authentication.k8s.io")
    if username != ANONYMOUS:
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return UserInfo(username, uid, tuple(groups), make_extra(extra))


def _unescape_extra_key(key: str) -> str:
    """Impersonate-Extra-<key> keys are URL-escaped (percent-decoding)."""
    from urllib.parse import unquote
    return unquote(key).lower()
