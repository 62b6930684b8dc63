"""RBAC as pure functions: rule matching, rule resolution and its reasons,
escalation checks with upstream's messages, aggregation, the bootstrap
policy, request attributes, and the Node authorizer."""

from __future__ import annotations

from typing import Any

import pytest

from kinns.api import bootstrappolicy
from kinns.api.attributes import Attributes, from_request
from kinns.api.authz import forbidden
from kinns.api.nodeauthz import NodeAuthorizer, pod_references
from kinns.api.rbac import (FULL_AUTHORITY, Policy, Rule, aggregate, breakdown, compact, covers, escalation_error,
                            rules_of)
from kinns.api.user import ANONYMOUS_USER, UserInfo, sa_groups, with_authenticated

Obj = dict[str, Any]
G = "rbac.authorization.k8s.io"

BOB = UserInfo("bob", groups=with_authenticated(["devs"]))
SA = UserInfo("system:serviceaccount:default:default", groups=with_authenticated(sa_groups("default")))


def rule(verbs: list[str], groups: list[str] | None = None, resources: list[str] | None = None,
         names: list[str] | None = None, urls: list[str] | None = None) -> Obj:
    out: Obj = {"verbs": verbs}
    if groups is not None:
        out["apiGroups"] = groups
    if resources is not None:
        out["resources"] = resources
    if names:
        out["resourceNames"] = names
    if urls:
        out["nonResourceURLs"] = urls
    return out


def res(user: UserInfo, verb: str, resource: str, ns: str = "", group: str = "", name: str = "",
        sub: str = "") -> Attributes:
    return Attributes(user, verb, True, namespace=ns, api_group=group, resource=resource, subresource=sub,
                      name=name)


def role(name: str, rules: list[Obj], ns: str = "", labels: dict[str, str] | None = None,
         agg: list[Obj] | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": labels or {}}
    if ns:
        meta["namespace"] = ns
    out: Obj = {"kind": "Role" if ns else "ClusterRole", "metadata": meta, "rules": rules}
    if agg is not None:
        out["aggregationRule"] = {"clusterRoleSelectors": agg}
    return out


def binding(name: str, kind: str, role_name: str, subjects: list[Obj], ns: str = "") -> Obj:
    meta: Obj = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "roleRef": {"apiGroup": G, "kind": kind, "name": role_name}, "subjects": subjects}


# ------------------------------------------------------------ rule matching


@pytest.mark.parametrize("r, a, want", [
    (rule(["get"], [""], ["pods"]), res(BOB, "get", "pods", "ns"), True),
    (rule(["get"], [""], ["pods"]), res(BOB, "list", "pods", "ns"), False),
    (rule(["*"], ["*"], ["*"]), res(BOB, "delete", "deployments", "ns", "apps"), True),
    (rule(["get"], ["apps"], ["pods"]), res(BOB, "get", "pods", "ns"), False),
    (rule(["get"], [""], ["pods"]), res(BOB, "get", "pods", "ns", sub="log"), False),
    (rule(["get"], [""], ["pods/log"]), res(BOB, "get", "pods", "ns", sub="log"), True),
    (rule(["get"], [""], ["*/log"]), res(BOB, "get", "pods", "ns", sub="log"), True),
    (rule(["get"], [""], ["*/log"]), res(BOB, "get", "pods", "ns"), False),
    (rule(["get"], [""], ["pods"], names=["web"]), res(BOB, "get", "pods", "ns", name="web"), True),
    (rule(["get"], [""], ["pods"], names=["web"]), res(BOB, "get", "pods", "ns", name="db"), False),
    (rule(["list"], [""], ["pods"], names=["web"]), res(BOB, "list", "pods", "ns"), False),
    (rule(["get"], urls=["/healthz"]), Attributes(BOB, "get", False, path="/healthz"), True),
    (rule(["get"], urls=["/apis/*"]), Attributes(BOB, "get", False, path="/apis/apps/v1"), True),
    (rule(["get"], urls=["/apis/*"]), Attributes(BOB, "get", False, path="/api"), False),
    (rule(["get"], urls=["*"]), Attributes(BOB, "get", False, path="/anything"), True),
    (rule(["get"], [""], ["pods"]), Attributes(BOB, "get", False, path="/api/v1/pods"), False),
])
def test_rule_allows(r: Obj, a: Attributes, want: bool) -> None:
    assert Rule.from_api(r).allows(a) is want


def test_rule_round_trip_and_compact_string() -> None:
    r = rule(["get", "list"], [""], ["pods", "pods/log"], names=["a"])
    assert Rule.from_api(r).to_api() == {"verbs": ["get", "list"], "apiGroups": [""],
                                         "resources": ["pods", "pods/log"], "resourceNames": ["a"]}
    assert Rule.from_api(r).compact_string() == \
        '{APIGroups:[""], Resources:["pods" "pods/log"], ResourceNames:["a"], Verbs:["get" "list"]}'
    assert Rule.from_api(rule(["get"], urls=["/x"])).compact_string() == '{NonResourceURLs:["/x"], Verbs:["get"]}'


# ------------------------------------------------------------ request attributes


@pytest.mark.parametrize("method, path, query, want", [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "default", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": ["true"]}, ("watch", "default", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": ["metadata.name=web"]},
     ("list", "default", "", "pods", "", "web")),
    ("GET", "/api/v1/namespaces/default/pods/web/log", {}, ("get", "default", "", "pods", "log", "web")),
    ("POST", "/api/v1/namespaces/default/pods", {}, ("create", "default", "", "pods", "", "")),
    ("DELETE", "/api/v1/namespaces/default/pods", {}, ("deletecollection", "default", "", "pods", "", "")),
    ("PATCH", "/apis/apps/v1/namespaces/x/deployments/web/scale", {},
     ("patch", "x", "apps", "deployments", "scale", "web")),
    ("GET", "/api/v1/namespaces/foo", {}, ("get", "foo", "", "namespaces", "", "foo")),
    ("PUT", "/api/v1/namespaces/foo/finalize", {}, ("update", "foo", "", "namespaces", "finalize", "foo")),
    ("GET", "/api/v1/nodes", {}, ("list", "", "", "nodes", "", "")),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, ("watch", "default", "", "pods", "", "")),
])
def test_request_attributes(method: str, path: str, query: dict[str, list[str]], want: tuple[str, ...]) -> None:
    a = from_request(BOB, method, path, query)
    assert a.resource_request
    assert (a.verb, a.namespace, a.api_group, a.resource, a.subresource, a.name) == want


@pytest.mark.parametrize("path", ["/version", "/healthz", "/api", "/api/v1", "/apis", "/apis/apps",
                                  "/apis/apps/v1", "/openapi/v3", "/"])
def test_non_resource_paths(path: str) -> None:
    a = from_request(BOB, "GET", path)
    assert not a.resource_request and a.verb == "get" and a.path == path


# ------------------------------------------------------------ policy


def test_policy_resolution_and_reasons() -> None:
    p = Policy(
        roles=[role("reader", [rule(["get", "list"], [""], ["pods"])], ns="team")],
        cluster_roles=[role("view", [rule(["get", "list", "watch"], [""], ["pods", "services"])])],
        role_bindings=[
            binding("r1", "Role", "reader", [{"kind": "User", "name": "bob"}], ns="team"),
            binding("sa-view", "ClusterRole", "view", [{"kind": "ServiceAccount", "name": "default"}], ns="default"),
            binding("ghost", "ClusterRole", "missing", [{"kind": "Group", "name": "devs"}], ns="team"),
        ],
        cluster_role_bindings=[binding("all-view", "ClusterRole", "view", [{"kind": "Group", "name": "viewers"}])],
    )
    assert p.authorize(res(BOB, "list", "pods", "team")) == \
        (True, 'RBAC: allowed by RoleBinding "r1/team" of Role "reader" to User "bob"')
    # The SA subject's namespace defaults to the binding's.
    assert p.authorize(res(SA, "watch", "services", "default")) == (
        True, 'RBAC: allowed by RoleBinding "sa-view/default" of ClusterRole "view" to ServiceAccount '
              '"default/default"')
    assert p.authorize(res(SA, "watch", "services", "other")) == (False, "")
    # A binding to a missing role grants nothing, and says why when asked.
    assert p.authorize(res(BOB, "delete", "pods", "team")) == \
        (False, 'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found')
    viewer = UserInfo("carol", groups=("viewers", "system:authenticated"))
    ok, why = p.authorize(res(viewer, "get", "pods", "anywhere"))
    assert ok and why == 'RBAC: allowed by ClusterRoleBinding "all-view" of ClusterRole "view" to Group "viewers"'
    assert p.authorize(res(viewer, "get", "pods"))[0]          # cluster-wide too
    assert not p.authorize(res(BOB, "list", "pods"))[0]        # a RoleBinding is not cluster-wide
    rules, errors = p.rules_for(BOB, "team")
    assert [r.verbs for r in rules] == [("get", "list")] and errors == [
        'clusterrole.rbac.authorization.k8s.io "missing" not found']


def test_service_account_subject_needs_a_namespace_in_cluster_bindings() -> None:
    p = Policy(cluster_roles=[role("view", [rule(["get"], [""], ["pods"])])],
               cluster_role_bindings=[binding("b", "ClusterRole", "view", [{"kind": "ServiceAccount",
                                                                           "name": "default"}])])
    assert not p.authorize(res(SA, "get", "pods", "default"))[0]


def test_forbidden_messages() -> None:
    anon = res(ANONYMOUS_USER, "list", "pods", "default")
    assert forbidden(anon).message == ('pods is forbidden: User "system:anonymous" cannot list resource "pods" in '
                                       'API group "" in the namespace "default"')
    named = res(SA, "get", "deployments", "default", group="apps", name="web", sub="scale")
    assert forbidden(named).message == ('deployments.apps "web" is forbidden: User "system:serviceaccount:default:'
                                        'default" cannot get resource "deployments/scale" in API group "apps" in the '
                                        'namespace "default"')
    cluster = res(BOB, "list", "nodes")
    assert forbidden(cluster, "RBAC: x").message.endswith('cannot list resource "nodes" in API group "" at the '
                                                          'cluster scope: RBAC: x')
    path = Attributes(ANONYMOUS_USER, "get", False, path="/api")
    err = forbidden(path)
    assert (err.code, err.reason, err.message) == (403, "Forbidden",
                                                   'forbidden: User "system:anonymous" cannot get path "/api"')


# ------------------------------------------------------------ escalation


def test_covers_breaks_rules_down_and_reports_what_is_missing() -> None:
    owner = [Rule.from_api(rule(["get", "list"], [""], ["pods", "*/status"]))]
    ok, missing = covers(owner, [Rule.from_api(rule(["get"], [""], ["pods", "services/status"]))])
    assert ok and not missing
    ok, missing = covers(owner, [Rule.from_api(rule(["get", "delete"], [""], ["pods"]))])
    assert not ok and missing == [Rule(("delete",), ("",), ("pods",))]
    # Names: an owner limited to names covers only those names.
    named_owner = [Rule.from_api(rule(["get"], [""], ["secrets"], names=["a"]))]
    assert covers(named_owner, [Rule.from_api(rule(["get"], [""], ["secrets"], names=["a"]))])[0]
    assert not covers(named_owner, [Rule.from_api(rule(["get"], [""], ["secrets"]))])[0]
    assert covers(FULL_AUTHORITY, [Rule.from_api(rule(["get"], urls=["/metrics"]))])[0]
    assert covers([Rule.from_api(rule(["get"], urls=["/api/*"]))], [Rule.from_api(rule(["get"], urls=["/api/v1"]))])[0]
    assert len(breakdown(Rule.from_api(rule(["get", "list"], ["", "apps"], ["a", "b"], names=["x", "y"])))) == 16


def test_compact_merges_verbs_of_single_resource_rules() -> None:
    rules = [Rule(("get",), ("",), ("pods",)), Rule(("list",), ("",), ("pods",)), Rule(("get",), ("",), ("nodes",))]
    assert compact(rules) == [Rule(("get", "list"), ("",), ("pods",)), Rule(("get",), ("",), ("nodes",))]


def test_escalation_message_is_upstreams() -> None:
    owner = [Rule.from_api(rule(["get"], [""], ["pods"]))]
    wanted = rules_of({"rules": [rule(["get", "list"], [""], ["pods", "nodes"])]})
    msg = escalation_error(SA, owner, wanted, [])
    assert msg == ('user "system:serviceaccount:default:default" (groups=["system:serviceaccounts" '
                   '"system:serviceaccounts:default" "system:authenticated"]) is attempting to grant RBAC permissions '
                   'not currently held:\n'
                   '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}\n'
                   '{APIGroups:[""], Resources:["pods"], Verbs:["list"]}')
    assert escalation_error(SA, FULL_AUTHORITY, wanted, []) is None


# ------------------------------------------------------------ aggregation


def test_aggregation_gathers_selected_roles_in_name_order_without_repeats() -> None:
    a = rule(["get"], [""], ["pods"])
    b = rule(["list"], [""], ["services"])
    roles = [
        role("view", [], agg=[{"matchLabels": {"agg": "view"}}]),
        role("z-extra", [b, a], labels={"agg": "view"}),
        role("a-base", [a], labels={"agg": "view"}),
        role("other", [rule(["*"], ["*"], ["*"])]),
    ]
    assert aggregate(roles[0], roles) == [a, b]
    assert aggregate(roles[1], roles) is None


def test_bootstrap_policy_facts() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrappolicy.cluster_roles()}
    bindings = {b["metadata"]["name"]: b for b in bootstrappolicy.cluster_role_bindings()}
    assert roles["cluster-admin"]["rules"] == [rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])]
    assert {s["name"] for s in bindings["system:public-info-viewer"]["subjects"]} == \
        {"system:authenticated", "system:unauthenticated"}
    assert [s["name"] for s in bindings["system:discovery"]["subjects"]] == ["system:authenticated"]
    assert [s["name"] for s in bindings["system:node-proxier"]["subjects"]] == ["system:kube-proxy"]
    assert "subjects" not in bindings["system:node"]
    assert all(r["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults" for r in roles.values())
    # Aggregated: view ⊂ edit ⊂ admin.
    view, edit, admin = (rules_of(roles[n]) for n in ("view", "edit", "admin"))
    assert covers(edit, view)[0] and covers(admin, edit)[0] and not covers(view, edit)[0]
    p = Policy(cluster_roles=roles.values(), cluster_role_bindings=bindings.values())
    proxy = UserInfo("system:kube-proxy", groups=("system:authenticated",))
    for verb in ("list", "watch"):
        assert p.authorize(res(proxy, verb, "services"))[0]
        assert p.authorize(res(proxy, verb, "endpointslices", group="discovery.k8s.io"))[0]
    assert p.authorize(res(proxy, "get", "nodes", name="n1"))[0]
    assert not p.authorize(res(proxy, "list", "secrets"))[0]
    kubeadm = {(o["kind"], o["metadata"]["name"]): o for _, o in bootstrappolicy.kubeadm_objects()}
    p2 = Policy(cluster_roles=[kubeadm[("ClusterRole", "system:coredns")]],
                cluster_role_bindings=[kubeadm[("ClusterRoleBinding", "system:coredns")]])
    dns = UserInfo("system:serviceaccount:kube-system:coredns", groups=("system:authenticated",))
    for resource, group in (("services", ""), ("pods", ""), ("namespaces", ""), ("endpoints", ""),
                            ("endpointslices", "discovery.k8s.io")):
        assert p2.authorize(res(dns, "watch", resource, group=group))[0], resource
    assert not p2.authorize(res(dns, "get", "secrets", "kube-system"))[0]
    anon = Policy(cluster_roles=roles.values(), cluster_role_bindings=bindings.values())
    assert anon.authorize(Attributes(ANONYMOUS_USER, "get", False, path="/version"))[0]
    assert not anon.authorize(Attributes(ANONYMOUS_USER, "get", False, path="/api"))[0]
    assert anon.authorize(Attributes(BOB, "get", False, path="/apis/apps/v1"))[0]
    assert anon.authorize(res(BOB, "create", "selfsubjectaccessreviews", group="authorization.k8s.io"))[0]


# ------------------------------------------------------------ node authorizer


def _pod(name: str, node: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c"}], **spec}}


NODE1 = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))


def test_pod_references() -> None:
    pod = _pod("p", "n1", serviceAccountName="robot", imagePullSecrets=[{"name": "pull"}],
               volumes=[{"name": "s", "secret": {"secretName": "sec"}},
                        {"name": "c", "configMap": {"name": "cm"}},
                        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                        {"name": "p", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}},
                                                                {"secret": {"name": "psec"}}]}}],
               containers=[{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "envsec"}}}],
                            "envFrom": [{"configMapRef": {"name": "envcm"}}]}])
    refs = pod_references(pod)
    assert refs["secrets"] == {"sec", "pull", "psec", "envsec"}
    assert refs["configmaps"] == {"cm", "kube-root-ca.crt", "envcm"}
    assert refs["persistentvolumeclaims"] == {"data"}
    assert refs["serviceaccounts"] == {"robot"}


def test_node_authorizer() -> None:
    store = {"pods": [_pod("mine", "n1", volumes=[{"name": "s", "secret": {"secretName": "sec"}},
                                                  {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]),
                      _pod("theirs", "n2", volumes=[{"name": "s", "secret": {"secretName": "other"}}])],
             "persistentvolumeclaims": [{"metadata": {"name": "data", "namespace": "default"},
                                         "spec": {"volumeName": "pv-1"}}]}
    n = NodeAuthorizer(lambda resource: store.get(resource, []))
    assert n.authorize(res(NODE1, "get", "secrets", "default", name="sec")) == (True, "")
    assert n.authorize(res(NODE1, "get", "secrets", "default", name="other")) == \
        (None, "no relationship found between node 'n1' and this object")
    assert n.authorize(res(NODE1, "list", "secrets", "default")) == (None, "No Object name found")
    assert n.authorize(res(NODE1, "delete", "secrets", "default", name="sec")) == \
        (None, "can only read resources of this type")
    assert n.authorize(res(NODE1, "get", "persistentvolumes", name="pv-1")) == (True, "")
    assert n.authorize(res(NODE1, "create", "serviceaccounts", "default", name="default", sub="token")) == (True, "")
    assert n.authorize(res(NODE1, "update", "leases", "kube-node-lease", "coordination.k8s.io", "n1")) == (True, "")
    assert n.authorize(res(NODE1, "update", "leases", "kube-node-lease", "coordination.k8s.io", "n2")) == \
        (None, "can only access node lease with the same name as the requesting node")
    # The static node rules: register, report status, read services.
    assert n.authorize(res(NODE1, "create", "nodes")) == (True, "")
    assert n.authorize(res(NODE1, "patch", "pods", "default", name="mine", sub="status")) == (True, "")
    assert n.authorize(res(NODE1, "list", "services")) == (True, "")
    assert n.authorize(res(NODE1, "create", "deployments", "default", "apps")) == (None, "")
    assert n.authorize(res(BOB, "get", "secrets", "default", name="sec")) == (None, "")
    nameless = UserInfo("system:node:", groups=("system:nodes",))
    assert n.authorize(res(nameless, "get", "nodes")) == (None, 'unknown node for user "system:node:"')
