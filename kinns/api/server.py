"""The API server: routes a `Request` to discovery, OpenAPI or a resource verb.

`ApiServer.dispatch` is transport-neutral (see request.py): the HTTPS front
end in `http.py` and the in-process client transport both call it.  It owns
the store, the Service allocator and the bootstrap objects every cluster has
from the start (the four system namespaces, the `kubernetes` Service, the
default RBAC roles and bindings).

Requests that carry a user (everything from the HTTPS front end, which
authenticates them) are authorized first (`authz.py`: Node, RBAC); the
in-process callers (unit tests, the API server's own bootstrap) are trusted.  The
server also owns the pieces of ServiceAccounts and RBAC that sit in the
write path: the ServiceAccount admission plugin and the TokenRequest
subresource (`serviceaccounts.py`), the escalation check on roles and
bindings (`rbac.py`), and the review kinds (`reviews.py`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from . import (bootstrappolicy, codec, conversion, crdkind, crdopenapi, discovery, metricsapi, openapi, rbac,
               serviceaccounts, storagechecks)
from .allocator import ServiceAllocator
from .attributes import Attributes, from_request
from .authn import Authenticator
from .authz import Authorizer, forbidden_error
from .crd import CustomResources
from .crdkind import CRD_KIND
from .errors import ApiError, method_not_allowed
from .ingress import hook as ingress_admission
from .metricsapi import MetricsApi
from .nodeproxy import NODE_SUBRESOURCES, NodeProxy
from .request import Request, Response
from .resources import REGISTRY, Registry
from .rest import ResourceHandlers, Target
from .reviews import Reviews
from .store.base import Store
from .tokens import ISSUER, Signer, TokenAuthenticator, Verifier, load_public_key, load_signing_key
from .user import AUTHENTICATED, MASTERS, UserInfo

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# Who the in-process callers are when someone asks (a self-review): upstream's
# loopback identity.
LOOPBACK_USER = UserInfo("system:apiserver", groups=(MASTERS, AUTHENTICATED))
_RBAC_PATH = f"/apis/{rbac.GROUP}/"
_CRD_PATH = f"/apis/{crdkind.GROUP}/"


class ApiServer:
    def __init__(
        self,
        store: Store,
        *,
        service_cidr: str = "10.96.0.0/12",
        node_port_range: tuple[int, int] = (30000, 32767),
        advertise_address: str = "127.0.0.1",
        secure_port: int = 6443,
        registry: Registry = REGISTRY,
    ) -> None:
        self.store = store
        self.service_cidr = service_cidr
        self.allocator = ServiceAllocator(service_cidr, node_port_range)
        self.allocator.load(store.list("services"))
        self.handlers = ResourceHandlers(store, self.allocator)
        # CustomResourceDefinitions: their kinds join `registry`, their lifecycle runs here (crd.py).
        self.crds = CustomResources(store, self.handlers, self.dispatch, registry.types)
        self.handlers.admission.append(self.crds.admit)
        self.advertise_address = advertise_address
        self.secure_port = secure_port
        # log, exec, attach, portforward: passed on to the pod's kubelet.
        self.node_proxy = NodeProxy(self._pod, lambda name: self._get("nodes", "", name))
        # metrics.k8s.io, from the kubelets' resource metrics (what metrics-server serves elsewhere).
        self.metrics = MetricsApi.from_kubelets(store, self.node_proxy)
        self.authorizer = Authorizer(store)
        # Set by `configure_auth` (the daemon does, from the cluster pki); the
        # HTTPS front end authenticates only when there is one.
        self.authenticator: Authenticator | None = None
        self.tokens: TokenAuthenticator | None = None
        self.signer: Signer | None = None
        self.issuer = ISSUER
        self.reviews = Reviews(self.authorizer, None)
        self.handlers.admission.append(self._admit)
        self.handlers.admission.append(storagechecks.hook(store))  # storage protection, PVC resize
        self.handlers.admission.append(ingress_admission(store))  # DefaultIngressClass

    @property
    def registry(self) -> Registry:
        """The kinds served right now: the built-in ones and every established CRD's."""
        return self.crds.registry()

    # ------------------------------------------------------------ auth setup

    def configure_auth(self, signing_key: ec.EllipticCurvePrivateKey | None = None,
                       public_keys: list[ec.EllipticCurvePublicKey] | None = None, *,
                       issuer: str = ISSUER, anonymous: bool = True) -> None:
        """Turn on authentication: ServiceAccount tokens signed with `signing_key`
        (a fresh key if None, for servers without a pki) and accepted when
        signed by any of `public_keys` (default: the signing key's)."""
        key = signing_key or ec.generate_private_key(ec.SECP256R1())
        self.issuer = issuer
        self.signer = Signer(key)
        self.tokens = TokenAuthenticator(Verifier(public_keys or [key.public_key()]), self._get, issuer=issuer)
        self.authenticator = Authenticator(self.tokens, anonymous=anonymous)
        self.reviews.tokens = self.tokens

    def configure_auth_from_files(self, sa_key: Path, sa_pub: Path, **kw: Any) -> None:
        """kube-apiserver's --service-account-signing-key-file / --service-account-key-file."""
        self.configure_auth(load_signing_key(sa_key), [load_public_key(sa_pub)], **kw)

    def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get((resource, namespace, name))

    def _pod(self, namespace: str, name: str) -> dict[str, Any]:
        """A pod, or the API's 404 for it."""
        rt = self.registry.by_path("", "v1", "pods")
        assert rt is not None
        return self.handlers.get_object(Target(rt, namespace, name, ""))

    # --------------------------------------------------------------- bootstrap

    async def bootstrap(self) -> None:
        """Create the objects a fresh cluster has; a no-op when they exist."""
        for ns in SYSTEM_NAMESPACES:
            await self._ensure("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await self._ensure("/api/v1/namespaces/default/services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": str(ipaddress.ip_network(self.service_cidr)[1]), "type": "ClusterIP", "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.secure_port}]},
        })
        await self._ensure("/api/v1/namespaces/default/endpoints", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": self.advertise_address}],
                         "ports": [{"name": "https", "port": self.secure_port, "protocol": "TCP"}]}],
        })
        await self._ensure("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes",
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.advertise_address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": self.secure_port, "protocol": "TCP"}],
        })
        for ns in SYSTEM_NAMESPACES:
            await self._ensure(f"/api/v1/namespaces/{ns}/serviceaccounts", {
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})
        # The RBAC post-start hook and kubeadm's objects; one group commit.
        await asyncio.gather(*(self._ensure(path, obj) for path, obj in bootstrappolicy.objects()))
        await asyncio.gather(*(self._ensure(path, obj) for path, obj in metricsapi.bootstrap_objects()))
        await self.crds.start()  # names and deletions of CRDs stored before a restart

    async def _ensure(self, collection: str, obj: dict[str, Any]) -> None:
        resp = await self.dispatch(Request("POST", collection, obj=obj))
        if resp.status >= 400 and resp.obj.get("reason") != "AlreadyExists":
            raise RuntimeError(f"bootstrap of {collection} failed: {resp.obj.get('message')}")

    # ---------------------------------------------------------------- dispatch

    async def dispatch(self, req: Request) -> Response:
        try:
            if req.user is not None and not req.user.is_masters:
                self.authorize(req)
            resp = await self._route(req)
            if req.method != "GET" and req.path.startswith(_CRD_PATH) and resp.status < 400:
                await self.crds.changed()  # served (or unserved) before the answer goes out
            return resp
        except ApiError as exc:
            return Response(exc.code, obj=exc.status())
        finally:
            if req.method != "GET" and req.path.startswith(_RBAC_PATH):
                self.authorizer.invalidate()

    def authorize(self, req: Request) -> None:
        """Raise upstream's 403 unless the request's user may do what it asks."""
        if req.user is not None:
            self.authorizer.check(from_request(req.user, req.method, req.path, req.query))

    async def _route(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        method = req.method.upper()
        if not parts:
            return Response(obj={"paths": self._root_paths()})
        head = parts[0]
        if head == "version" and len(parts) == 1:
            return Response(obj=discovery.VERSION_INFO)
        if head in ("healthz", "livez", "readyz"):
            return Response(raw=b"ok", content_type="text/plain; charset=utf-8")
        if head == "openapi":
            return self._openapi(req, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return self._discovery_root(req, core=True)
            if len(parts) == 2:
                return self._resource_list("", parts[1])
            return await self._resource(req, method, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery_root(req, core=False)
            if len(parts) == 2:
                doc = discovery.api_group(parts[1], self.registry)
                if doc is None:
                    raise _no_route()
                return Response(obj=doc)
            if len(parts) == 3:
                return self._resource_list(parts[1], parts[2])
            return await self._resource(req, method, parts[1], parts[2], parts[3:])
        raise _no_route()

    def _root_paths(self) -> list[str]:
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/openapi/v2", "/openapi/v3", "/version"]
        for g in self.registry.groups():
            if g:
                paths.append(f"/apis/{g}")
                paths.extend(f"/apis/{g}/{v}" for v in self.registry.versions(g))
        return sorted(paths)

    def _discovery_root(self, req: Request, core: bool) -> Response:
        agg = discovery.wants_aggregated(req.header("accept"))
        if agg:
            api_version = "apidiscovery.k8s.io/v2beta1" if agg.endswith("v2beta1;as=APIGroupDiscoveryList") else "apidiscovery.k8s.io/v2"
            return Response(obj=discovery.aggregated(core, api_version, self.registry), content_type=agg)
        if core:
            return Response(obj=discovery.api_versions(f"{self.advertise_address}:{self.secure_port}"))
        return Response(obj=discovery.api_group_list(self.registry))

    def _resource_list(self, group: str, version: str) -> Response:
        doc = discovery.api_resource_list(group, version, self.registry)
        if doc is None:
            raise _no_route()
        return Response(obj=doc)

    def _openapi(self, req: Request, rest: list[str]) -> Response:
        custom = crdopenapi.serve(req, rest, [rt for rt in self.registry.types if rt.custom is not None])
        if custom is not None:
            return custom
        if rest == ["v2"]:
            if "protobuf" in req.header("accept"):
                return Response(raw=openapi.openapi_v2_protobuf(), content_type=openapi.V2_PROTOBUF_CONTENT_TYPE)
            return Response(raw=openapi.openapi_v2_json())
        if rest == ["v3"]:
            return Response(obj=openapi.openapi_v3_index())
        if rest and rest[0] == "v3":
            doc = openapi.openapi_v3_document("/".join(rest[1:]))
            if doc is not None:
                return Response(raw=doc)
        raise _no_route()

    async def _resource(self, req: Request, method: str, group: str, version: str, rest: list[str]) -> Response:
        t = self._target(group, version, rest)
        conv = conversion.conversion_for(t.rt)
        if conv is not None:   # e.g. autoscaling/v1 HPAs: served through the stored autoscaling/v2
            return await conversion.serve(conv, t.rt, req, self._route)
        if t.rt.kind == CRD_KIND and t.rt.group == crdkind.GROUP and method == "DELETE" and not t.subresource:
            await (self.crds.prepare_delete(t.name, req) if t.name else self.crds.prepare_delete_collection(req))
        resp = await self._serve(req, method, t)
        return crdkind.convert_response(resp, t.rt) if t.rt.custom is not None else resp

    async def _serve(self, req: Request, method: str, t: Target) -> Response:
        h = self.handlers
        sub = t.subresource
        verb = _verb(method, bool(t.name), req.param("watch") in ("true", "1"))
        if not sub and verb not in t.rt.verbs:
            raise method_not_allowed()
        if t.rt.group == metricsapi.GROUP:
            if sub:
                raise _no_route()
            return await self.metrics.handle(t.rt, t.namespace, t.name, req)
        if t.rt.virtual:
            if t.name or sub:
                raise _no_route()
            return await self.reviews.create(t.rt, t.namespace, codec.decode_body(req), req.user or LOOPBACK_USER)
        if sub:
            return await self._subresource(req, method, t)
        if t.name:
            if method == "GET":
                if req.param("watch") in ("true", "1"):
                    return await h.watch(t, req)
                return await h.get(t, req)
            if method == "PUT":
                return await h.update(t, req)
            if method == "PATCH":
                return await h.patch(t, req)
            if method == "DELETE":
                return await h.delete(t, req)
            raise method_not_allowed()
        if method == "GET":
            if req.param("watch") in ("true", "1"):
                return await h.watch(t, req)
            return await h.list(t, req)
        if method == "POST":
            return await h.create(t, req)
        if method == "DELETE":
            return await h.delete_collection(t, req)
        raise method_not_allowed()

    async def _subresource(self, req: Request, method: str, t: Target) -> Response:
        h = self.handlers
        sub = t.subresource
        if sub not in t.rt.subresources:
            raise _no_route()
        if sub in ("status", "finalize"):
            if method == "GET" and sub == "status":
                return await h.get(t, req)
            if method == "PUT":
                return await h.update(t, req)
            if method == "PATCH" and sub == "status":
                return await h.patch(t, req)
        elif sub == "scale":
            if method == "GET":
                return await h.get_scale(t, req)
            if method == "PUT":
                return await h.update(t, req)
            if method == "PATCH":
                return await h.patch(t, req)
        elif sub == "binding" and method == "POST":
            return await h.bind(t, req)
        elif sub == "eviction" and method == "POST":
            return await h.evict(t, req)
        elif sub == "token" and method == "POST":
            return self._create_token(t, req)
        elif sub == "ephemeralcontainers" and method in ("GET", "PUT", "PATCH"):  # kubectl debug (ephemeral.py)
            return await {"GET": h.get, "PUT": h.update, "PATCH": h.patch}[method](t, req)
        elif t.rt.kind == "Pod" and sub in NODE_SUBRESOURCES:
            return await self.node_proxy.plain(sub, t.namespace, t.name, req)
        raise method_not_allowed()

    # ------------------------------------------------------ ServiceAccounts

    def _create_token(self, t: Target, req: Request) -> Response:
        if self.signer is None:
            self.configure_auth()
        assert self.signer is not None
        audiences = self.tokens.audiences if self.tokens is not None else None
        out = serviceaccounts.create_token(codec.decode_body(req), t.name, t.namespace, self._get, self.signer,
                                           issuer=self.issuer, audiences=audiences)
        return Response(201, obj=out)

    # ------------------------------------------------------------ admission

    async def _admit(self, t: Target, obj: dict[str, Any], old: dict[str, Any] | None, req: Request) -> None:
        """The admission steps kinns runs on writes (see the module docstring)."""
        kind = t.rt.kind
        if kind == "Pod" and old is None and t.rt.custom is None:
            if self.store.get(("namespaces", "", t.namespace)) is not None:  # else the create answers 404
                await serviceaccounts.admit_pod(obj, t.namespace, self._get)
        elif t.rt.group == rbac.GROUP and req.user is not None and not req.user.is_masters:
            self._confirm_no_escalation(t, obj, old, req.user)

    def _confirm_no_escalation(self, t: Target, obj: dict[str, Any], old: dict[str, Any] | None,
                               user: UserInfo) -> None:
        """Roles and bindings may not grant more than their author holds (pkg/registry/rbac/*/policybased)."""
        kind, plural = t.rt.kind, t.rt.plural
        name = (obj.get("metadata") or {}).get("name", "")
        ns = t.namespace if t.rt.namespaced else ""
        if kind in ("Role", "ClusterRole"):
            if old is not None and obj.get("rules") == old.get("rules") and \
                    obj.get("aggregationRule") == old.get("aggregationRule"):
                return
            if self.authorizer.authorize(Attributes(user, "escalate", True, namespace=ns, api_group=rbac.GROUP,
                                                    resource=plural, name=name))[0]:
                return
            owner, errors = self.authorizer.rules_for(user, ns)
            msg = rbac.escalation_error(user, owner, rbac.rules_of(obj), errors)
            if msg is None and isinstance(obj.get("aggregationRule"), dict):
                if rbac.escalation_error(user, owner, rbac.FULL_AUTHORITY, errors) is not None:
                    msg = "must have cluster-admin privileges to use the aggregationRule"
        else:
            if old is not None and obj.get("subjects") == old.get("subjects") and \
                    obj.get("roleRef") == old.get("roleRef"):
                return
            ref = obj.get("roleRef") or {}
            resource = {"Role": "roles", "ClusterRole": "clusterroles"}.get(ref.get("kind", ""))
            if resource and self.authorizer.authorize(Attributes(
                    user, "bind", True, namespace=ns, api_group=ref.get("apiGroup", ""), resource=resource,
                    name=ref.get("name", "")))[0]:
                return
            try:
                wanted = self.authorizer.policy.role_ref_rules(ref, ns)
            except LookupError as exc:
                raise forbidden_error(plural, rbac.GROUP, name, str(exc)) from None
            owner, errors = self.authorizer.rules_for(user, ns)
            msg = rbac.escalation_error(user, owner, wanted, errors)
        if msg is not None:
            raise forbidden_error(plural, rbac.GROUP, name, msg)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        """Parse `[namespaces/<ns>/]<plural>[/<name>[/<sub>]]`."""
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.registry.by_path(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = self.registry.by_path(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise _no_route()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if not rt.namespaced and namespace:
            raise _no_route()
        if rt.namespaced and name and not namespace:
            raise _no_route()
        return Target(rt, namespace, name, sub)


def _verb(method: str, named: bool, watch: bool) -> str:
    """The Kubernetes verb of a request on a resource (for the verbs a kind allows)."""
    if method == "GET":
        return "watch" if watch else ("get" if named else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
