"""Authentication and authorization through the real ApiServer: in-process with
explicit users, and over HTTPS on a loopback socket with client certificates,
bearer tokens, anonymity and impersonation.  Also the ServiceAccount
admission plugin, the review kinds, RBAC escalation checks, and the
ServiceAccount / root-CA / aggregation controllers."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp

from kinns.api.http import make_app, server_ssl_context
from kinns.api.request import Request
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.api.user import ANONYMOUS_USER, UserInfo, sa_groups, with_authenticated
from kinns.client import Client, InformerFactory, InProcessTransport
from kinns.cluster.certs import client_cert, ensure_pki, paths
from kinns.controllers.clusterroleaggregation import ClusterRoleAggregationController
from kinns.controllers.serviceaccount import DESCRIPTION, RootCACertPublisher, ServiceAccountsController

Obj = dict[str, Any]
G = "rbac.authorization.k8s.io"
SA = UserInfo("system:serviceaccount:default:default", groups=with_authenticated(sa_groups("default")))
BOB = UserInfo("bob", groups=("system:authenticated",))


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def server(tmp: Path) -> ApiServer:
    api = ApiServer(SqliteStore(tmp / "state.db", durable=False))
    api.configure_auth()
    await api.bootstrap()
    return api


async def call(api: ApiServer, method: str, path: str, user: UserInfo | None, obj: Any = None,
               query: dict[str, list[str]] | None = None) -> tuple[int, Any]:
    r = await api.dispatch(Request(method, path, query or {}, {}, b"", obj, user))
    return r.status, json.loads(json.dumps(r.obj))     # a copy: the server may hand out its own dicts


def rolebinding(name: str, role_kind: str, role: str, subject: Obj, ns: str = "default") -> Obj:
    return {"apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
            "roleRef": {"kind": role_kind, "name": role}, "subjects": [subject]}


SA_SUBJECT = {"kind": "ServiceAccount", "name": "default", "namespace": "default"}
CAN_LIST_PODS = {"spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}}


# ------------------------------------------------------------ in-process


def test_anonymous_and_authenticated_defaults(tmp_path: Path) -> None:
    async def go() -> None:
        api = await server(tmp_path)
        st, obj = await call(api, "GET", "/api/v1/namespaces/kube-system/secrets", ANONYMOUS_USER)
        assert st == 403 and obj["message"] == ('secrets is forbidden: User "system:anonymous" cannot list resource '
                                                '"secrets" in API group "" in the namespace "kube-system"')
        assert obj["details"] == {"name": "", "group": "", "kind": "secrets"}
        for path in ("/version", "/healthz", "/livez", "/readyz"):
            assert (await call(api, "GET", path, ANONYMOUS_USER))[0] == 200, path
        st, obj = await call(api, "GET", "/api", ANONYMOUS_USER)
        assert st == 403 and obj["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'
        for path in ("/api", "/apis", "/apis/apps/v1", "/openapi/v3", "/version"):
            assert (await call(api, "GET", path, BOB))[0] == 200, path
        st, obj = await call(api, "GET", "/api/v1/namespaces/default/pods", SA)
        assert st == 403 and obj["message"] == ('pods is forbidden: User "system:serviceaccount:default:default" '
                                                'cannot list resource "pods" in API group "" in the namespace '
                                                '"default"')
        # In-process callers (the daemon's components) are trusted.
        assert (await call(api, "GET", "/api/v1/namespaces/kube-system/secrets", None))[0] == 200
    run(go())


def test_rolebinding_grants_and_can_i_follows(tmp_path: Path) -> None:
    async def go() -> None:
        api = await server(tmp_path)
        ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        st, obj = await call(api, "POST", ssar, SA, CAN_LIST_PODS)
        assert st == 201 and obj["status"] == {"allowed": False}
        assert obj["kind"] == "SelfSubjectAccessReview" and obj["spec"] == CAN_LIST_PODS["spec"]
        st, _ = await call(api, "POST", f"/apis/{G}/v1/namespaces/default/rolebindings", None,
                           rolebinding("sa-view", "ClusterRole", "view", SA_SUBJECT))
        assert st == 201
        st, obj = await call(api, "POST", ssar, SA, CAN_LIST_PODS)
        assert obj["status"] == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "sa-view/default" of '
                                                            'ClusterRole "view" to ServiceAccount "default/default"'}
        assert (await call(api, "GET", "/api/v1/namespaces/default/pods", SA))[0] == 200
        assert (await call(api, "GET", "/api/v1/namespaces/default/secrets", SA))[0] == 403
        # Deleting the binding takes the grant away at once.
        assert (await call(api, "DELETE", f"/apis/{G}/v1/namespaces/default/rolebindings/sa-view", None))[0] == 200
        assert (await call(api, "GET", "/api/v1/namespaces/default/pods", SA))[0] == 403
        # A binding to a missing ClusterRole is allowed and grants nothing; can-i says why.
        st, _ = await call(api, "POST", f"/apis/{G}/v1/namespaces/default/rolebindings", None,
                           rolebinding("ghost", "ClusterRole", "does-not-exist", SA_SUBJECT))
        assert st == 201
        st, obj = await call(api, "POST", ssar, SA, CAN_LIST_PODS)
        assert obj["status"] == {"allowed": False,
                                 "reason": 'RBAC: clusterrole.rbac.authorization.k8s.io "does-not-exist" not found'}
        st, obj = await call(api, "GET", "/api/v1/namespaces/default/pods", SA)
        assert obj["message"].endswith('in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io '
                                       '"does-not-exist" not found')
    run(go())


def test_reviews(tmp_path: Path) -> None:
    async def go() -> None:
        api = await server(tmp_path)
        for version in ("v1", "v1beta1"):
            st, obj = await call(api, "POST", f"/apis/authentication.k8s.io/{version}/selfsubjectreviews", SA,
                                 {"apiVersion": f"authentication.k8s.io/{version}", "kind": "SelfSubjectReview"})
            assert st == 201 and obj["apiVersion"] == f"authentication.k8s.io/{version}"
            assert obj["status"]["userInfo"] == {"username": "system:serviceaccount:default:default",
                                                 "groups": ["system:serviceaccounts", "system:serviceaccounts:default",
                                                            "system:authenticated"]}
        st, obj = await call(api, "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", SA,
                             {"spec": {"namespace": "default"}})
        rules = obj["status"]["resourceRules"]
        assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in rules
        assert obj["status"]["incomplete"] is False
        # SubjectAccessReview needs its own permission (create subjectaccessreviews) and a subject.
        sar = {"spec": {"user": "system:kube-proxy", "resourceAttributes": {"verb": "watch",
                                                                          "resource": "services"}}}
        assert (await call(api, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", SA, sar))[0] == 403
        st, obj = await call(api, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", None, sar)
        assert obj["status"]["allowed"] is True
        st, obj = await call(api, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", None,
                             {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}})
        assert st == 422 and "at least one of user or group must be specified" in obj["message"]
        st, obj = await call(api, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", SA, {"spec": {}})
        assert st == 422 and "exactly one of nonResourceAttributes or resourceAttributes" in obj["message"]
        st, obj = await call(api, "POST", "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews",
                             None, {"spec": {"user": "bob", "resourceAttributes": {"namespace": "other", "verb": "get",
                                                                                  "resource": "pods"}}})
        assert st == 422 and "must match metadata.namespace" in obj["message"]
        assert (await call(api, "GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", None))[0] == 405
        # TokenReview
        _, tr = await call(api, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token", None, {"spec": {}})
        st, obj = await call(api, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", None,
                             {"spec": {"token": tr["status"]["token"]}})
        assert st == 201 and obj["status"]["authenticated"] is True
        assert obj["status"]["user"]["username"] == "system:serviceaccount:default:default"
        st, obj = await call(api, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", None,
                             {"spec": {"token": tr["status"]["token"][:-6] + "AAAAAA"}})
        assert obj["status"] == {"user": {}, "error": "invalid signature"}
    run(go())


def test_escalation_checks(tmp_path: Path) -> None:
    async def go() -> None:
        api = await server(tmp_path)
        roles = f"/apis/{G}/v1/namespaces/default/roles"
        bindings = f"/apis/{G}/v1/namespaces/default/rolebindings"
        await call(api, "POST", bindings, None, rolebinding("bob-admin", "ClusterRole", "admin",
                                                            {"kind": "User", "name": "bob"}))
        ok_role = {"apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "pods"},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
        assert (await call(api, "POST", roles, BOB, ok_role))[0] == 201
        too_much = {"apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "nodes"},
                    "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}
        st, obj = await call(api, "POST", roles, BOB, too_much)
        assert st == 403 and obj["message"] == (
            'roles.rbac.authorization.k8s.io "nodes" is forbidden: user "bob" (groups=["system:authenticated"]) is '
            'attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["nodes"], '
            'Verbs:["get"]}')
        assert api.store.get((f"roles.{G}", "default", "nodes")) is None      # nothing else changed
        # Binding cluster-admin needs its permissions, or `bind` on it.
        st, obj = await call(api, "POST", bindings, BOB, rolebinding("x", "ClusterRole", "cluster-admin",
                                                                     {"kind": "User", "name": "eve"}))
        assert st == 403 and "is attempting to grant RBAC permissions not currently held" in obj["message"]
        st, obj = await call(api, "POST", bindings, BOB, rolebinding("y", "ClusterRole", "missing",
                                                                     {"kind": "User", "name": "eve"}))
        assert st == 403 and obj["message"] == ('rolebindings.rbac.authorization.k8s.io "y" is forbidden: '
                                                'clusterrole.rbac.authorization.k8s.io "missing" not found')
        assert (await call(api, "POST", bindings, BOB, rolebinding("z", "ClusterRole", "view",
                                                                   {"kind": "User", "name": "eve"})))[0] == 201
        # The `escalate` verb lifts the check.
        await call(api, "POST", f"/apis/{G}/v1/clusterroles", None, {
            "apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": "escalator"},
            "rules": [{"apiGroups": [G], "resources": ["roles"], "verbs": ["escalate"]}]})
        await call(api, "POST", bindings, None, rolebinding("bob-esc", "ClusterRole", "escalator",
                                                            {"kind": "User", "name": "bob"}))
        assert (await call(api, "POST", roles, BOB, too_much))[0] == 201
        # roleRef is immutable.
        _, rb = await call(api, "GET", f"{bindings}/z", None)
        rb["roleRef"]["name"] = "edit"
        st, obj = await call(api, "PUT", f"{bindings}/z", None, rb)
        assert st == 422 and obj["message"] == ('RoleBinding.rbac.authorization.k8s.io "z" is invalid: roleRef: '
                                                'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                                                'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef')
    run(go())


def test_service_account_admission(tmp_path: Path) -> None:
    async def go() -> None:
        api = await server(tmp_path)
        pods = "/api/v1/namespaces/default/pods"

        def pod(name: str, **spec: Any) -> Obj:
            return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}

        st, obj = await call(api, "POST", pods, None, pod("a"))
        vol = obj["spec"]["volumes"][0]
        assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
        assert vol["projected"]["defaultMode"] == 420
        assert vol["projected"]["sources"][0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
        assert obj["spec"]["containers"][0]["volumeMounts"] == [
            {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
        assert obj["spec"]["serviceAccountName"] == obj["spec"]["serviceAccount"] == "default"
        st, obj = await call(api, "POST", pods, None, pod("b", automountServiceAccountToken=False))
        assert "volumes" not in obj["spec"] or not obj["spec"]["volumes"]
        await call(api, "POST", "/api/v1/namespaces/default/serviceaccounts", None, {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
            "automountServiceAccountToken": False, "imagePullSecrets": [{"name": "reg"}]})
        st, obj = await call(api, "POST", pods, None, pod("c", serviceAccountName="quiet"))
        assert not obj["spec"].get("volumes") and obj["spec"]["imagePullSecrets"] == [{"name": "reg"}]
        st, obj = await call(api, "POST", pods, None, pod("d", serviceAccountName="quiet",
                                                          automountServiceAccountToken=True))
        assert obj["spec"]["volumes"][0]["name"].startswith("kube-api-access-")   # the pod beats the account
        st, obj = await call(api, "POST", pods, None, pod("e", serviceAccountName="nope"))
        assert st == 403 and obj["message"] == ('pods "e" is forbidden: error looking up service account default/nope: '
                                                'serviceaccount "nope" not found')
        mirror = pod("f")
        mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
        st, obj = await call(api, "POST", pods, None, mirror)
        assert st == 201 and not obj["spec"].get("volumes")
    run(go())


def test_controllers(tmp_path: Path) -> None:
    async def go() -> None:
        api = await server(tmp_path)
        client = Client(InProcessTransport(api.dispatch))
        factory = InformerFactory(client)
        ctrls = [ServiceAccountsController(client, factory), RootCACertPublisher(client, factory, ca_pem="CA"),
                 ClusterRoleAggregationController(client, factory)]
        for c in ctrls:
            await c.start()
        try:
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})

            async def eventually(cond: Callable[[], Awaitable[bool]]) -> None:
                for _ in range(200):
                    if await cond():
                        return
                    await asyncio.sleep(0.02)
                raise AssertionError("condition not met")

            async def exists(path: str) -> bool:
                return (await call(api, "GET", path, None))[0] == 200

            await eventually(lambda: exists("/api/v1/namespaces/team/serviceaccounts/default"))
            await eventually(lambda: exists("/api/v1/namespaces/team/configmaps/kube-root-ca.crt"))
            _, cm = await call(api, "GET", "/api/v1/namespaces/team/configmaps/kube-root-ca.crt", None)
            assert cm["data"] == {"ca.crt": "CA"}
            assert cm["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
            # Deleted or edited, they come back.
            await call(api, "DELETE", "/api/v1/namespaces/team/serviceaccounts/default", None)
            await eventually(lambda: exists("/api/v1/namespaces/team/serviceaccounts/default"))
            cm["data"] = {"ca.crt": "tampered"}
            await call(api, "PUT", "/api/v1/namespaces/team/configmaps/kube-root-ca.crt", None, cm)

            async def restored() -> bool:
                return (await call(api, "GET", "/api/v1/namespaces/team/configmaps/kube-root-ca.crt", None))[1][
                    "data"] == {"ca.crt": "CA"}
            await eventually(restored)
            # A new ClusterRole labelled aggregate-to-view reaches view, edit and admin.
            await call(api, "POST", f"/apis/{G}/v1/clusterroles", None, {
                "apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {
                    "name": "widgets", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]})

            async def aggregated() -> bool:
                for name in ("view", "edit", "admin"):
                    _, role = await call(api, "GET", f"/apis/{G}/v1/clusterroles/{name}", None)
                    if {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]} not in role["rules"]:
                        return False
                return True
            await eventually(aggregated)
        finally:
            for c in ctrls:
                await c.stop()
            await factory.stop()
    run(go())


# ------------------------------------------------------------ over HTTPS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _https(tmp: Path) -> AsyncIterator[tuple[ApiServer, str, Path]]:
    pki = tmp / "pki"
    certs = ensure_pki(pki, ["localhost"], ["127.0.0.1"])
    api = await server(tmp)
    from aiohttp import web
    runner = web.AppRunner(make_app(api), access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ssl_context(
        str(certs.server_cert), str(certs.server_key), str(certs.ca_cert))).start()
    try:
        yield api, f"https://127.0.0.1:{port}", pki
    finally:
        await runner.cleanup()


def _ctx(pki: Path, stem: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(paths(pki).ca_cert))
    if stem == "admin":
        ctx.load_cert_chain(str(paths(pki).admin_cert), str(paths(pki).admin_key))
    elif stem:
        ctx.load_cert_chain(str(pki / f"{stem}.crt"), str(pki / f"{stem}.key"))
    return ctx


async def _get(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None,
               method: str = "GET", body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.request(method, url, headers={"Content-Type": "application/json", **(headers or {})},
                             data=json.dumps(body) if body else None) as r:
            return r.status, json.loads(await r.read() or b"null")


def test_https_authentication(tmp_path: Path) -> None:
    async def go() -> None:
        async for api, url, pki in _https(tmp_path):
            whoami = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            st, obj = await _get(url + whoami, _ctx(pki, "admin"), method="POST", body=body)
            assert st == 201 and obj["status"]["userInfo"] == {
                "username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
            client_cert(pki, "kube-proxy", "system:kube-proxy")
            client_cert(pki, "node-n1", "system:node:n1", "system:nodes")
            st, obj = await _get(url + whoami, _ctx(pki, "kube-proxy"), method="POST", body=body)
            assert obj["status"]["userInfo"] == {"username": "system:kube-proxy", "groups": ["system:authenticated"]}
            assert (await _get(url + "/api/v1/services", _ctx(pki, "kube-proxy")))[0] == 200
            assert (await _get(url + "/apis/discovery.k8s.io/v1/endpointslices?watch=false",
                               _ctx(pki, "kube-proxy")))[0] == 200
            st, obj = await _get(url + "/api/v1/secrets", _ctx(pki, "kube-proxy"))
            assert st == 403 and obj["message"] == ('secrets is forbidden: User "system:kube-proxy" cannot list '
                                                    'resource "secrets" in API group "" at the cluster scope')
            st, obj = await _get(url + "/api/v1/namespaces/default/secrets/x", _ctx(pki, "node-n1"))
            assert st == 403 and obj["message"].endswith(
                ": no relationship found between node 'n1' and this object")
            # No credentials: anonymous.  Bad ones: 401.
            assert (await _get(url + "/version", _ctx(pki)))[0] == 200
            st, obj = await _get(url + "/api/v1/namespaces/kube-system/secrets", _ctx(pki))
            assert st == 403 and 'User "system:anonymous"' in obj["message"]
            st, obj = await _get(url + "/version", _ctx(pki), {"Authorization": "Bearer nonsense"})
            assert (st, obj) == (401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                       "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            # A ServiceAccount token.
            _, tr = await call(api, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token", None,
                               {"spec": {}})
            bearer = {"Authorization": "Bearer " + tr["status"]["token"]}
            st, obj = await _get(url + whoami, _ctx(pki), bearer, "POST", body)
            assert obj["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"
            st, obj = await _get(url + "/api/v1/namespaces/default/pods", _ctx(pki), bearer)
            assert st == 403 and 'User "system:serviceaccount:default:default" cannot list' in obj["message"]
            # Impersonation: the admin may; the ServiceAccount may not.
            as_sa = {"Impersonate-User": "system:serviceaccount:default:default"}
            st, obj = await _get(url + whoami, _ctx(pki, "admin"), as_sa, "POST", body)
            assert obj["status"]["userInfo"] == {
                "username": "system:serviceaccount:default:default",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]}
            st, obj = await _get(url + whoami, _ctx(pki, "admin"),
                                 {"Impersonate-User": "jane", "Impersonate-Group": "devs"}, "POST", body)
            assert obj["status"]["userInfo"] == {"username": "jane", "groups": ["devs", "system:authenticated"]}
            st, obj = await _get(url + whoami, _ctx(pki), {**bearer, "Impersonate-User": "jane"}, "POST", body)
            assert st == 403 and obj["message"] == (
                'users "jane" is forbidden: User "system:serviceaccount:default:default" cannot impersonate resource '
                '"users" in API group "" at the cluster scope')
            st, obj = await _get(url + whoami, _ctx(pki, "admin"), {"Impersonate-Group": "devs"}, "POST", body)
            assert st == 400
    run(go())
