"""ServiceAccounts in the API server: the admission plugin and the TokenRequest subresource.

Two pieces of upstream live here:

- The ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount)
  runs on every pod create: the pod's ServiceAccount must exist (the
  `default` one is waited for briefly, since a controller makes it right
  after the namespace), its imagePullSecrets are copied to a pod without
  any, and unless `automountServiceAccountToken: false` (the pod's setting
  beats the account's) every container gets the projected volume
  `kube-api-access-<5>` read-only at /var/run/secrets/kubernetes.io/
  serviceaccount: a `token` (expirationSeconds 3607), `ca.crt` from the
  ConfigMap `kube-root-ca.crt`, and `namespace` from the downward API.
  Mirror pods (static pods' API copies) are left alone.

- `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (TokenRequest,
  authentication.k8s.io/v1): `kubectl create token`, and what the kubelet
  asks for each projected token.  Validation and binding follow
  pkg/registry/core/serviceaccount/storage/token.go; the JWT is made by
  `tokens.py`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from . import objects
from .errors import INVALID, TOO_LONG, ApiError, FieldError, bad_request, conflict, invalid, not_found
from .tokens import (DEFAULT_EXPIRATION, EXTENDED_SECONDS, ISSUER, MAX_SECONDS, MIN_SECONDS, WARN_ONLY_SECONDS,
                     Signer, claims)

Obj = dict[str, Any]
Getter = Callable[[str, str, str], "Obj | None"]

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_SA = "default"
# The admission plugin retries a missing `default` account 10 times, 100-200 ms apart.
DEFAULT_SA_ATTEMPTS = 10
DEFAULT_SA_INTERVAL = 0.15


def token_volume(name: str) -> Obj:
    """The projected volume the plugin adds (TokenVolumeSource, defaults applied)."""
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def should_automount(sa: Obj, pod_spec: Obj) -> bool:
    if isinstance(pod_spec.get("automountServiceAccountToken"), bool):
        return bool(pod_spec["automountServiceAccountToken"])
    if isinstance(sa.get("automountServiceAccountToken"), bool):
        return bool(sa["automountServiceAccountToken"])
    return True


def mount_token(spec: Obj, volume_name: str) -> None:
    """Add the token volume and its mount to every container lacking a mount at the token path."""
    existing = next((v["name"] for v in spec.get("volumes") or []
                     if isinstance(v, dict) and str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
    name = existing or volume_name
    needed = False
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.setdefault("volumeMounts", [])
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
            needed = True
    if needed and existing is None:
        spec.setdefault("volumes", []).append(token_volume(name))


def sa_forbidden(pod_name: str, ns: str, sa_name: str, why: str) -> ApiError:
    from .authz import forbidden_error
    return forbidden_error("pods", "", pod_name, f"error looking up service account {ns}/{sa_name}: {why}")


async def admit_pod(pod: Obj, namespace: str, get: Getter, *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
    """The ServiceAccount admission plugin on a pod being created (mutates `pod`)."""
    meta = pod.get("metadata") or {}
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return
    spec = pod.setdefault("spec", {})
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SA
    spec["serviceAccountName"] = spec["serviceAccount"] = name
    sa = get("serviceaccounts", namespace, name)
    attempts = DEFAULT_SA_ATTEMPTS if name == DEFAULT_SA else 1
    for _ in range(attempts - 1):
        if sa is not None:
            break
        await sleep(DEFAULT_SA_INTERVAL)
        sa = get("serviceaccounts", namespace, name)
    if sa is None:
        raise sa_forbidden(meta.get("name", ""), namespace, name, f'serviceaccount "{name}" not found')
    if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in sa["imagePullSecrets"] if isinstance(s, dict)]
    if should_automount(sa, spec):
        mount_token(spec, objects.generate_name(VOLUME_PREFIX))


# ------------------------------------------------------------- TokenRequest


def _tr_invalid(name: str, errs: list[FieldError]) -> ApiError:
    return invalid("TokenRequest", "authentication.k8s.io", name, errs)


def validate_token_request(name: str, spec: Obj) -> None:
    exp = spec.get("expirationSeconds")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise _tr_invalid(name, [FieldError(INVALID, "spec.expirationSeconds", exp, "must be an integer")])
    if exp < MIN_SECONDS:
        raise _tr_invalid(name, [FieldError(INVALID, "spec.expirationSeconds", exp,
                                            "may not specify a duration less than 10 minutes")])
    if exp > MAX_SECONDS:
        raise _tr_invalid(name, [FieldError(TOO_LONG, "spec.expirationSeconds",
                                            detail="may not specify a duration larger than 2^32 seconds")])


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _bound_object(ref: Obj, sa_name: str, ns: str, get: Getter) -> tuple[str, Obj]:
    """(kind, object) a boundObjectRef names, with upstream's refusals."""
    kind, api_version, name = ref.get("kind", ""), ref.get("apiVersion", "v1") or "v1", ref.get("name", "")
    if api_version != "v1" or kind not in ("Pod", "Secret", "Node"):
        group, _, version = api_version.rpartition("/")
        raise bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    resource = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}[kind]
    obj = get(resource, "" if kind == "Node" else ns, name)
    if obj is None:
        raise not_found(resource, "", name)
    if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName", DEFAULT_SA) != sa_name:
        raise bad_request(f'cannot bind token for serviceaccount "{sa_name}" to pod running with serviceaccount '
                          f'"{(obj.get("spec") or {}).get("serviceAccountName")}"')
    uid = (obj.get("metadata") or {}).get("uid", "")
    if ref.get("uid") and ref["uid"] != uid:
        raise conflict(kind, "", name, f"the UID in the bound object reference ({ref['uid']}) does not match the "
                                       f"UID in record ({uid}). The object might have been deleted and then recreated")
    return kind, obj


def create_token(body: Any, sa_name: str, ns: str, get: Getter, signer: Signer, *, issuer: str = ISSUER,
                 audiences: list[str] | None = None, now: float | None = None) -> Obj:
    """The TokenRequest answer for a POST to serviceaccounts/<sa_name>/token."""
    if not isinstance(body, dict):
        raise bad_request("Object 'Kind' is missing in the request body; expected a JSON object")
    av = body.get("apiVersion")
    if av and av != "authentication.k8s.io/v1":
        raise bad_request(f"the API version in the data ({av}) does not match the expected API version "
                          "(authentication.k8s.io/v1)")
    spec = dict(body.get("spec") or {})
    if spec.get("expirationSeconds") is None:
        spec["expirationSeconds"] = DEFAULT_EXPIRATION
    validate_token_request(sa_name, spec)
    sa = get("serviceaccounts", ns, sa_name)
    if sa is None:
        raise not_found("serviceaccounts", "", sa_name)
    bound: dict[str, Obj] = {}
    ref = spec.get("boundObjectRef")
    if isinstance(ref, dict) and (ref.get("kind") or ref.get("name")):
        kind, obj = _bound_object(ref, sa_name, ns, get)
        bound[kind] = obj
        if kind == "Pod":
            node = get("nodes", "", (obj.get("spec") or {}).get("nodeName") or "")
            if node is not None:
                bound["Node"] = node
    if not spec.get("audiences"):
        spec["audiences"] = list(audiences or [issuer])
    now = time.time() if now is None else now
    requested = exp = int(spec["expirationSeconds"])
    warnafter = None
    if "Pod" in bound and exp == WARN_ONLY_SECONDS and set(spec["audiences"]) <= set(audiences or [issuer]):
        warnafter, exp = int(now) + exp, EXTENDED_SECONDS
    c = claims(sa, issuer=issuer, audiences=spec["audiences"], expiration=exp, now=now, pod=bound.get("Pod"),
               secret=bound.get("Secret"), node=bound.get("Node"), warnafter=warnafter)
    spec.setdefault("boundObjectRef", None)
    # The status tells the requested lifetime even when the JWT was extended,
    # so the kubelet still renews the token hourly (old ones keep working).
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": _rfc3339(now)},
            "spec": spec, "status": {"token": signer.sign(c), "expirationTimestamp": _rfc3339(int(now) + requested)}}
