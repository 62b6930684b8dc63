"""ServiceAccount tokens: signed JWTs, issued and checked as kube-apiserver does.

A pod proves who it is with the token the kubelet put in its
`kube-api-access-xxxxx` volume; `kubectl create token` prints one.  Both
come from the TokenRequest subresource (`serviceaccounts.py`), which asks
`Signer.sign` for a compact JWS over upstream's claims
(pkg/serviceaccount/claims.go):

    iss  https://kubernetes.default.svc.cluster.local   (--service-account-issuer)
    sub  system:serviceaccount:<ns>:<name>
    aud  the requested audiences (default: the issuer)
    exp, iat, nbf, jti
    kubernetes.io: {namespace, serviceaccount {name, uid},
                    pod {name, uid} | secret {name, uid}, node {name, uid},
                    warnafter}

Signatures are ES256 with the cluster's `pki/sa.key` (an EC P-256 key, like
every other kinns key; upstream accepts RSA or ECDSA), and the header
names the key by `kid`, the unpadded base64url SHA-256 of its public key.

`TokenAuthenticator.authenticate` is the other half, run for every request
that carries `Authorization: Bearer`: a token that is not a JWT or not
ours is "not mine" (None); one that is ours must have a good signature, a
matching audience, be inside exp/nbf, and still name a ServiceAccount (by
UID) and, when bound, a Pod or Secret (by UID) that exists and is not
being deleted.  Only the cryptographic part is cached (by token string),
so deleting a pod invalidates its tokens at once.

Pure apart from the key files: the caller passes a getter for stored
objects and, in tests, a clock.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .user import (EXTRA_CREDENTIAL_ID, EXTRA_NODE_NAME, EXTRA_NODE_UID, EXTRA_POD_NAME, EXTRA_POD_UID,
                   UserInfo, make_extra, sa_groups, sa_username, with_authenticated)

Obj = dict[str, Any]
# (resource, namespace, name) -> the stored object or None; resource as the
# store keys it ("pods", "serviceaccounts", "secrets", "nodes").
Getter = Callable[[str, str, str], "Obj | None"]

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
# A pod's token asked for exactly this long is issued for a year instead,
# with `warnafter` at the hour (--service-account-extend-token-expiration).
WARN_ONLY_SECONDS = 3607
EXTENDED_SECONDS = 365 * 24 * 3600
MIN_SECONDS = 600
MAX_SECONDS = 1 << 32
LEEWAY = 60.0          # go-jose's DefaultLeeway, for exp/nbf/iat and deletion times


class TokenError(Exception):
    """A token that is ours but not acceptable; the text is what TokenReview reports."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Upstream's `kid`: base64url(SHA-256(PKIX DER of the public key)), unpadded."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


class Signer:
    """Makes ES256 compact JWS tokens with one private key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key
        self.kid = key_id(key.public_key())
        self._header = _b64(orjson.dumps({"alg": "ES256", "kid": self.kid}))

    def sign(self, claims: Obj) -> str:
        signing_input = f"{self._header}.{_b64(orjson.dumps(claims))}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Verifier:
    """Checks ES256 signatures against the public keys the server trusts."""

    def __init__(self, keys: list[ec.EllipticCurvePublicKey]) -> None:
        self.keys = {key_id(k): k for k in keys}

    def verify(self, token: str) -> Obj | None:
        """The claims of a well-signed token; None for something that is not a
        JWT at all; TokenError for a JWT with a bad or unknown signature."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = orjson.loads(_unb64(parts[0]))
            claims = orjson.loads(_unb64(parts[1]))
            sig = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        if header.get("alg") != "ES256" or len(sig) != 64:
            raise TokenError("invalid signature")
        candidates = [self.keys[header["kid"]]] if header.get("kid") in self.keys else list(self.keys.values())
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        for key in candidates:
            try:
                key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
                return claims
            except InvalidSignature:
                continue
        raise TokenError("invalid signature")


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: the service-account signing key must be an EC key")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"{path}: the service-account public key must be an EC key")
    return key


# ------------------------------------------------------------------ claims


def _ref(obj: Obj | None) -> Obj | None:
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return {"name": meta.get("name", ""), "uid": meta.get("uid", "")}


def claims(sa: Obj, *, issuer: str, audiences: list[str], expiration: int, now: float,
           pod: Obj | None = None, secret: Obj | None = None, node: Obj | None = None,
           warnafter: int | None = None, jti: str | None = None) -> Obj:
    """The JWT claims for a token of ServiceAccount `sa`, bound to `pod` or
    `secret` (and the pod's `node`) when given, valid `expiration` seconds."""
    meta = sa.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    iat = int(now)
    k8s: Obj = {"namespace": ns, "serviceaccount": {"name": name, "uid": meta.get("uid", "")}}
    for key, obj in (("pod", pod), ("secret", secret), ("node", node)):
        ref = _ref(obj)
        if ref is not None:
            k8s[key] = ref
    if warnafter is not None:
        k8s["warnafter"] = warnafter
    return {"aud": list(audiences), "exp": iat + int(expiration), "iat": iat, "iss": issuer,
            "jti": jti or str(uuid.uuid4()), "kubernetes.io": k8s, "nbf": iat,
            "sub": sa_username(ns, name)}


@dataclass(frozen=True)
class ServiceAccountInfo:
    """What a valid token says (upstream's apiserverserviceaccount.ServiceAccountInfo)."""

    namespace: str
    name: str
    uid: str
    pod_name: str = ""
    pod_uid: str = ""
    node_name: str = ""
    node_uid: str = ""
    credential_id: str = ""

    def user(self) -> UserInfo:
        extra: dict[str, list[str]] = {}
        if self.pod_name:
            extra[EXTRA_POD_NAME], extra[EXTRA_POD_UID] = [self.pod_name], [self.pod_uid]
        if self.node_name:
            extra[EXTRA_NODE_NAME] = [self.node_name]
            if self.node_uid:
                extra[EXTRA_NODE_UID] = [self.node_uid]
        if self.credential_id:
            extra[EXTRA_CREDENTIAL_ID] = [self.credential_id]
        return UserInfo(sa_username(self.namespace, self.name), self.uid,
                        with_authenticated(sa_groups(self.namespace)), make_extra(extra))


def _deleted_before(obj: Obj, cutoff: float) -> bool:
    """True when `obj` is being deleted since before `cutoff` (epoch seconds)."""
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not isinstance(stamp, str) or not stamp:
        return False
    try:
        return dt.datetime.fromisoformat(stamp).timestamp() < cutoff
    except ValueError:
        return True


class TokenAuthenticator:
    """Bearer-token authentication for ServiceAccount JWTs (kube-apiserver's
    jwtTokenAuthenticator with the legacy-free validator of claims.go)."""

    CACHE_SIZE = 4096

    def __init__(self, verifier: Verifier, getter: Getter, *, issuer: str = ISSUER,
                 audiences: list[str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.verifier = verifier
        self.getter = getter
        self.issuer = issuer
        self.audiences = audiences or [issuer]
        self.clock = clock
        self._verified: dict[str, Obj] = {}

    def _claims(self, token: str) -> Obj | None:
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        # Peek at the issuer before paying for the signature: foreign JWTs are "not mine".
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            peek = orjson.loads(_unb64(parts[1]))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(peek, dict) or peek.get("iss") != self.issuer:
            return None
        verified = self.verifier.verify(token)
        if verified is None:
            return None
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = verified
        return verified

    def authenticate(self, token: str, audiences: list[str] | None = None) -> UserInfo | None:
        """The user a token stands for; None if it is not one of ours; TokenError if it is bad."""
        c = self._claims(token)
        if c is None:
            return None
        return self.validate(c, audiences).user()

    def validate(self, c: Obj, audiences: list[str] | None = None) -> ServiceAccountInfo:
        wanted = audiences or self.audiences
        aud = c.get("aud")
        token_auds = [aud] if isinstance(aud, str) else list(aud or [])
        if not set(token_auds) & set(wanted):
            raise TokenError(f"token audiences {_go_quote(token_auds)} is invalid for the target audiences "
                             f"{_go_quote(wanted)}")
        now = self.clock()
        if _num(c.get("exp")) is not None and now > _num(c.get("exp")) + LEEWAY:  # type: ignore[operator]
            raise TokenError("service account token has expired")
        if _num(c.get("nbf")) is not None and now < _num(c.get("nbf")) - LEEWAY:  # type: ignore[operator]
            raise TokenError("service account token is not valid yet")
        if _num(c.get("iat")) is not None and now < _num(c.get("iat")) - LEEWAY:  # type: ignore[operator]
            raise TokenError("service account token is issued in the future")
        private = c.get("kubernetes.io")
        if not isinstance(private, dict):
            raise TokenError("service account token claims could not be validated due to unexpected private claim")
        return self._check_objects(private, now, c.get("jti"))

    def _check_objects(self, k8s: Obj, now: float, jti: Any) -> ServiceAccountInfo:
        cutoff = now - LEEWAY
        ns = str(k8s.get("namespace", ""))
        saref = k8s.get("serviceaccount") or {}
        sa = self.getter("serviceaccounts", ns, str(saref.get("name", "")))
        if sa is None:
            raise TokenError(f'serviceaccounts "{saref.get("name", "")}" not found')
        if _deleted_before(sa, cutoff):
            raise TokenError(f"service account {ns}/{saref.get('name')} has been deleted")
        sa_uid = (sa.get("metadata") or {}).get("uid", "")
        if sa_uid != saref.get("uid"):
            raise TokenError(f"service account UID ({sa_uid}) does not match claim ({saref.get('uid')})")
        secref, podref, noderef = k8s.get("secret"), k8s.get("pod"), k8s.get("node")
        if isinstance(secref, dict):
            self._bound("secrets", ns, secref, cutoff, "secret", "service account secret ref claim")
        pod_name = pod_uid = ""
        if isinstance(podref, dict):
            self._bound("pods", ns, podref, cutoff, "pod", "service account pod ref claim")
            pod_name, pod_uid = str(podref.get("name", "")), str(podref.get("uid", ""))
        node_name = node_uid = ""
        if isinstance(noderef, dict):
            node_name, node_uid = str(noderef.get("name", "")), str(noderef.get("uid", ""))
            if not isinstance(podref, dict):   # a token bound to the node itself
                self._bound("nodes", "", noderef, cutoff, "node", "service account node ref claim")
        return ServiceAccountInfo(ns, str(saref.get("name", "")), sa_uid, pod_name, pod_uid, node_name, node_uid,
                                  f"JTI={jti}" if jti else "")

    def _bound(self, resource: str, ns: str, ref: Obj, cutoff: float, what: str, claim: str) -> None:
        obj = self.getter(resource, ns, str(ref.get("name", "")))
        if obj is None or _deleted_before(obj, cutoff):
            raise TokenError("service account token has been invalidated")
        uid = (obj.get("metadata") or {}).get("uid", "")
        if uid != ref.get("uid"):
            raise TokenError(f"{what} UID ({uid}) does not match {claim} ({ref.get('uid')})")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _go_quote(items: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(orjson.dumps(i).decode() for i in items) + "]"
