"""ServiceAccount tokens: ES256 JWTs with upstream's claims, and their checks
(signature, issuer, audience, expiry, the bound objects still existing),
and the TokenRequest subresource's answers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kinns.api.errors import ApiError
from kinns.api.serviceaccounts import create_token
from kinns.api.tokens import (EXTENDED_SECONDS, ISSUER, Signer, TokenAuthenticator, TokenError, Verifier, claims,
                              key_id)

Obj = dict[str, Any]
NOW = 1_700_000_000.0

SA = {"metadata": {"name": "default", "namespace": "default", "uid": "sa-uid"}}
POD = {"metadata": {"name": "web", "namespace": "default", "uid": "pod-uid"},
       "spec": {"serviceAccountName": "default", "nodeName": "n1"}}
NODE = {"metadata": {"name": "n1", "uid": "node-uid"}}
SECRET = {"metadata": {"name": "s", "namespace": "default", "uid": "secret-uid"}}


def _unb64(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class World:
    """A tiny object store and a clock the tests can move."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {
            ("serviceaccounts", "default", "default"): SA, ("pods", "default", "web"): POD,
            ("nodes", "", "n1"): NODE, ("secrets", "default", "s"): SECRET}
        self.now = NOW

    def get(self, resource: str, ns: str, name: str) -> Obj | None:
        return self.objects.get((resource, ns, name))


@pytest.fixture()
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def authenticator(world: World, key: ec.EllipticCurvePrivateKey) -> TokenAuthenticator:
    return TokenAuthenticator(Verifier([key.public_key()]), world.get, clock=lambda: world.now)


def test_claims_are_upstreams(key: ec.EllipticCurvePrivateKey) -> None:
    c = claims(SA, issuer=ISSUER, audiences=["api"], expiration=3600, now=NOW, pod=POD, node=NODE,
               warnafter=int(NOW) + 3607, jti="j")
    assert c == {"aud": ["api"], "exp": int(NOW) + 3600, "iat": int(NOW), "iss": ISSUER, "jti": "j", "nbf": int(NOW),
                 "sub": "system:serviceaccount:default:default",
                 "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "default", "uid": "sa-uid"},
                                   "pod": {"name": "web", "uid": "pod-uid"},
                                   "node": {"name": "n1", "uid": "node-uid"}, "warnafter": int(NOW) + 3607}}
    token = Signer(key).sign(c)
    header, payload, sig = token.split(".")
    assert _unb64(header) == {"alg": "ES256", "kid": key_id(key.public_key())}
    assert _unb64(payload) == c
    assert len(base64.urlsafe_b64decode(sig + "==")) == 64          # raw r||s, as JWS wants


def test_valid_token_gives_the_service_account_user(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    token = Signer(key).sign(claims(SA, issuer=ISSUER, audiences=[ISSUER], expiration=3600, now=NOW, pod=POD,
                                    node=NODE, jti="abc"))
    user = authenticator(world, key).authenticate(token)
    assert user is not None
    assert user.name == "system:serviceaccount:default:default" and user.uid == "sa-uid"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
    assert user.extra_dict() == {
        "authentication.kubernetes.io/credential-id": ["JTI=abc"],
        "authentication.kubernetes.io/node-name": ["n1"], "authentication.kubernetes.io/node-uid": ["node-uid"],
        "authentication.kubernetes.io/pod-name": ["web"], "authentication.kubernetes.io/pod-uid": ["pod-uid"]}


def test_not_ours_is_not_an_error(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    auth = authenticator(world, key)
    assert auth.authenticate("not-a-jwt") is None
    foreign = Signer(key).sign(claims(SA, issuer="https://elsewhere", audiences=["x"], expiration=3600, now=NOW))
    assert auth.authenticate(foreign) is None


@pytest.mark.parametrize("change, message", [
    (lambda w: setattr(w, "now", NOW + 3600 + 61), "service account token has expired"),
    (lambda w: setattr(w, "now", NOW - 120), "service account token is not valid yet"),
    (lambda w: w.objects.pop(("pods", "default", "web")), "service account token has been invalidated"),
    (lambda w: w.objects.__setitem__(("pods", "default", "web"),
                                     {"metadata": {"name": "web", "uid": "new-uid"}}),
     "pod UID (new-uid) does not match service account pod ref claim (pod-uid)"),
    (lambda w: w.objects.__setitem__(("pods", "default", "web"),
                                     {"metadata": {"name": "web", "uid": "pod-uid",
                                                   "deletionTimestamp": "2023-11-14T22:00:00Z"}}),
     "service account token has been invalidated"),
    (lambda w: w.objects.pop(("serviceaccounts", "default", "default")), 'serviceaccounts "default" not found'),
    (lambda w: w.objects.__setitem__(("serviceaccounts", "default", "default"),
                                     {"metadata": {"name": "default", "uid": "other"}}),
     "service account UID (other) does not match claim (sa-uid)"),
])
def test_bad_tokens(world: World, key: ec.EllipticCurvePrivateKey, change: Any, message: str) -> None:
    token = Signer(key).sign(claims(SA, issuer=ISSUER, audiences=[ISSUER], expiration=3600, now=NOW, pod=POD))
    change(world)
    with pytest.raises(TokenError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        authenticator(world, key).authenticate(token)


def test_secret_bound_token(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    token = Signer(key).sign(claims(SA, issuer=ISSUER, audiences=[ISSUER], expiration=3600, now=NOW, secret=SECRET))
    assert authenticator(world, key).authenticate(token) is not None
    del world.objects[("secrets", "default", "s")]
    with pytest.raises(TokenError, match="invalidated"):
        authenticator(world, key).authenticate(token)


def test_forged_and_foreign_signatures(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    c = claims(SA, issuer=ISSUER, audiences=[ISSUER], expiration=3600, now=NOW)
    token = Signer(key).sign(c)
    head, payload, sig = token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(dict(c, sub="system:admin")).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="invalid signature"):
        authenticator(world, key).authenticate(f"{head}.{forged_payload}.{sig}")
    other = Signer(ec.generate_private_key(ec.SECP256R1())).sign(c)
    with pytest.raises(TokenError, match="invalid signature"):
        authenticator(world, key).authenticate(other)
    none_alg = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(TokenError):
        authenticator(world, key).authenticate(f"{none_alg}.{payload}.")


def test_audience(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    token = Signer(key).sign(claims(SA, issuer=ISSUER, audiences=["vault"], expiration=3600, now=NOW))
    with pytest.raises(TokenError, match=r'token audiences \["vault"\] is invalid for the target audiences'):
        authenticator(world, key).authenticate(token)
    assert authenticator(world, key).authenticate(token, ["vault"]) is not None


# ------------------------------------------------------------------ TokenRequest


def test_token_request_defaults_and_binding(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    out = create_token({"spec": {}}, "default", "default", world.get, Signer(key), now=NOW)
    assert out["kind"] == "TokenRequest" and out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["metadata"] == {"name": "default", "namespace": "default", "creationTimestamp": "2023-11-14T22:13:20Z"}
    assert out["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600, "boundObjectRef": None}
    assert out["status"]["expirationTimestamp"] == "2023-11-14T23:13:20Z"
    payload = _unb64(out["status"]["token"].split(".")[1])
    assert payload["exp"] - payload["iat"] == 3600 and "pod" not in payload["kubernetes.io"]
    # A pod's 3607 s token lasts a year, warning after the hour; the node is named too.
    bound = create_token({"spec": {"expirationSeconds": 3607, "boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "pod-uid"}}}, "default", "default", world.get,
        Signer(key), now=NOW)
    payload = _unb64(bound["status"]["token"].split(".")[1])
    assert payload["exp"] - payload["iat"] == EXTENDED_SECONDS
    assert payload["kubernetes.io"]["warnafter"] == int(NOW) + 3607
    assert payload["kubernetes.io"]["pod"] == {"name": "web", "uid": "pod-uid"}
    assert payload["kubernetes.io"]["node"] == {"name": "n1", "uid": "node-uid"}
    assert bound["spec"]["expirationSeconds"] == 3607
    # ... while the answer tells the requested hour, so the kubelet renews it hourly.
    assert bound["status"]["expirationTimestamp"] == "2023-11-14T23:13:27Z"


@pytest.mark.parametrize("body, code, message", [
    ({"spec": {"expirationSeconds": 60}}, 422, 'TokenRequest.authentication.k8s.io "default" is invalid: '
     "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
    ({"spec": {"expirationSeconds": 1 << 33}}, 422, "may not specify a duration larger than 2^32 seconds"),
    ({"spec": {"boundObjectRef": {"kind": "Pod", "name": "nope"}}}, 404, 'pods "nope" not found'),
    ({"spec": {"boundObjectRef": {"kind": "Pod", "name": "web", "uid": "x"}}}, 409,
     'Operation cannot be fulfilled on Pod "web": the UID in the bound object reference (x) does not match the UID '
     "in record (pod-uid). The object might have been deleted and then recreated"),
    ({"spec": {"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "web"}}}, 400,
     "cannot bind token to object of type apps/v1, Kind=Deployment"),
])
def test_token_request_refusals(world: World, key: ec.EllipticCurvePrivateKey, body: Obj, code: int,
                                message: str) -> None:
    with pytest.raises(ApiError) as exc:
        create_token(body, "default", "default", world.get, Signer(key), now=NOW)
    assert exc.value.code == code and message in exc.value.message


def test_token_request_for_another_accounts_pod(world: World, key: ec.EllipticCurvePrivateKey) -> None:
    world.objects[("serviceaccounts", "default", "robot")] = {"metadata": {"name": "robot", "uid": "r"}}
    with pytest.raises(ApiError, match='cannot bind token for serviceaccount "robot" to pod running with '
                                       'serviceaccount "default"'):
        create_token({"spec": {"boundObjectRef": {"kind": "Pod", "name": "web"}}}, "robot", "default", world.get,
                     Signer(key), now=NOW)
    with pytest.raises(ApiError, match='serviceaccounts "ghost" not found'):
        create_token({"spec": {}}, "ghost", "default", world.get, Signer(key), now=NOW)
