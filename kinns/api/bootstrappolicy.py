"""The RBAC objects a new cluster starts with, as kube-apiserver and kubeadm create them.

kube-apiserver's RBAC post-start hook (plugin/pkg/auth/authorizer/rbac/
bootstrappolicy/policy.go, v1.32) creates the default ClusterRoles and
ClusterRoleBindings, labelled `kubernetes.io/bootstrapping: rbac-defaults`
and annotated `rbac.authorization.kubernetes.io/autoupdate: "true"`:
`cluster-admin` for `system:masters`; `system:discovery` and
`system:basic-user` for every authenticated user;
`system:public-info-viewer` for everyone, anonymous included; the
aggregated `admin`/`edit`/`view` and their `system:aggregate-to-*` parts;
`system:node-proxier` for the user `system:kube-proxy`;
`system:kube-controller-manager` / `system:kube-scheduler` for the
same-named users; the controllers' `system:controller:*` roles
(controllerpolicy.py); `system:node` with no subjects (the Node authorizer
grants kubelets their access).  kubeadm then adds its own: the
`kubeadm:cluster-admins` group binding, `kubeadm:node-proxier` for the
kube-proxy ServiceAccount, and CoreDNS's `system:coredns` role bound to
the `kube-system/coredns` ServiceAccount (created here too).

Only the kinds kinns or its users can meet are listed; the rules of each
are upstream's.  Pure data plus `objects()`, which returns (collection
path, object) pairs in creation order for the API server's bootstrap.
"""

from __future__ import annotations

from typing import Any

from . import rbac
from .user import (AUTHENTICATED, KUBE_CONTROLLER_MANAGER, KUBE_PROXY, KUBE_SCHEDULER, MASTERS, SA_GROUP,
                   UNAUTHENTICATED)

Obj = dict[str, Any]

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE
READ_UPDATE = ("get", "list", "watch", "update", "patch")

LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

CORE, APPS, AUTHN, AUTHZ = "", "apps", "authentication.k8s.io", "authorization.k8s.io"
AUTOSCALING, BATCH, CERTS, COORD = "autoscaling", "batch", "certificates.k8s.io", "coordination.k8s.io"
DISCOVERY, EXTENSIONS, POLICY, NETWORKING = "discovery.k8s.io", "extensions", "policy", "networking.k8s.io"
STORAGE, EVENTS, NODE_K8S = "storage.k8s.io", "events.k8s.io", "node.k8s.io"


def rule(verbs: tuple[str, ...] | list[str], groups: tuple[str, ...] | list[str] = (),
         resources: tuple[str, ...] | list[str] = (), names: tuple[str, ...] = (),
         urls: tuple[str, ...] = ()) -> Obj:
    """A PolicyRule in API form (fields in upstream's serialization order)."""
    out: Obj = {"verbs": list(verbs)}
    if groups or resources:
        out["apiGroups"] = list(groups)
        out["resources"] = list(resources)
    if names:
        out["resourceNames"] = list(names)
    if urls:
        out["nonResourceURLs"] = list(urls)
    return out


def _url_rule(*urls: str) -> Obj:
    return rule(("get",), urls=urls)


def _events() -> Obj:
    return rule(("create", "update", "patch"), (CORE, EVENTS), ("events",))


def node_rules() -> list[Obj]:
    """system:node (NodeRules): what any kubelet may do before the Node authorizer narrows it."""
    return [
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, (CORE,), ("services",)),
        rule(("create", "get", "list", "watch"), (CORE,), ("nodes",)),
        rule(("update", "patch"), (CORE,), ("nodes/status",)),
        rule(("update", "patch"), (CORE,), ("nodes",)),
        rule(("create", "update", "patch"), (CORE,), ("events",)),
        rule(READ, (CORE,), ("pods",)),
        rule(("create", "delete"), (CORE,), ("pods",)),
        rule(("update", "patch"), (CORE,), ("pods/status",)),
        rule(("create",), (CORE,), ("pods/eviction",)),
        rule(("get", "list", "watch"), (CORE,), ("secrets", "configmaps")),
        rule(("get",), (CORE,), ("persistentvolumeclaims", "persistentvolumes")),
        rule(("get",), (CORE,), ("endpoints",)),
        rule(("create", "get", "list", "watch"), (CERTS,), ("certificatesigningrequests",)),
        rule(("get", "create", "update", "patch", "delete"), (COORD,), ("leases",)),
        rule(("get",), (STORAGE,), ("volumeattachments",)),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
        rule(("get", "update", "patch"), (CORE,), ("persistentvolumeclaims/status",)),
        rule(("get", "watch", "list"), (STORAGE,), ("csidrivers",)),
        rule(("get", "create", "update", "patch", "delete"), (STORAGE,), ("csinodes",)),
        rule(("get", "list", "watch"), (NODE_K8S,), ("runtimeclasses",)),
    ]


def _aggregate_to_edit() -> list[Obj]:
    return [
        rule(READ, (CORE,), ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                             "services/proxy")),
        rule(("impersonate",), (CORE,), ("serviceaccounts",)),
        rule(WRITE, (CORE,), ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
        rule(("create",), (CORE,), ("pods/eviction",)),
        rule(WRITE, (CORE,), ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                              "services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets",
                              "events")),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
        rule(WRITE, (APPS,), ("statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                              "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale")),
        rule(WRITE, (AUTOSCALING,), ("horizontalpodautoscalers",)),
        rule(WRITE, (BATCH,), ("jobs", "cronjobs")),
        rule(WRITE, (EXTENSIONS,), ("daemonsets", "deployments", "deployments/scale", "deployments/rollback",
                                    "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale",
                                    "networkpolicies")),
        rule(WRITE, (POLICY,), ("poddisruptionbudgets",)),
        rule(WRITE, (NETWORKING,), ("networkpolicies", "ingresses")),
    ]


def _aggregate_to_view() -> list[Obj]:
    return [
        rule(READ, (CORE,), ("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                             "services", "services/status", "endpoints", "persistentvolumeclaims",
                             "persistentvolumeclaims/status", "configmaps")),
        rule(READ, (CORE,), ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                             "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
                             "pods/log")),
        rule(READ, (CORE,), ("namespaces",)),
        rule(READ, (DISCOVERY,), ("endpointslices",)),
        rule(READ, (APPS,), ("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                             "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                             "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale")),
        rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
        rule(READ, (BATCH,), ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        rule(READ, (EXTENSIONS,), ("daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                   "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                   "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                   "networkpolicies")),
        rule(READ, (POLICY,), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        rule(READ, (NETWORKING,), ("networkpolicies", "ingresses", "ingresses/status")),
    ]


def _kube_scheduler() -> list[Obj]:
    return [
        _events(),
        rule(("create",), (COORD,), ("leases",)),
        rule(("get", "update", "list", "watch"), (COORD,), ("leases",), names=("kube-scheduler",)),
        rule(READ_WRITE, (COORD,), ("leasecandidates",)),
        rule(READ, (CORE,), ("nodes",)),
        rule(("get", "list", "watch", "delete"), (CORE,), ("pods",)),
        rule(("create",), (CORE,), ("pods/binding", "bindings")),
        rule(("patch", "update"), (CORE,), ("pods/status",)),
        rule(READ, (CORE,), ("services", "replicationcontrollers")),
        rule(READ, (APPS, EXTENSIONS), ("replicasets",)),
        rule(READ, (APPS,), ("statefulsets",)),
        rule(READ, (POLICY,), ("poddisruptionbudgets",)),
        rule(READ, (CORE,), ("persistentvolumeclaims", "persistentvolumes")),
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
        rule(READ, (STORAGE,), ("csinodes",)),
        rule(("get", "list", "watch"), (STORAGE,), ("volumeattachments",)),
        rule(READ, (CORE,), ("namespaces",)),
        rule(READ, (STORAGE,), ("csidrivers",)),
        rule(READ, (STORAGE,), ("csistoragecapacities",)),
    ]


def _kube_controller_manager() -> list[Obj]:
    return [
        _events(),
        rule(("create",), (COORD,), ("leases",)),
        rule(("get", "update"), (COORD,), ("leases",), names=("kube-controller-manager",)),
        rule(("create",), (CORE,), ("secrets", "serviceaccounts")),
        rule(("delete",), (CORE,), ("secrets",)),
        rule(("get",), (CORE,), ("namespaces", "secrets", "serviceaccounts", "configmaps")),
        rule(("update",), (CORE,), ("secrets", "serviceaccounts")),
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
        rule(("list", "watch"), ("*",), ("*",)),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
    ]


def _cluster_role(name: str, rules: list[Obj] | None = None, *, labels: dict[str, str] | None = None,
                  aggregate_from: str | None = None, default: bool = True) -> Obj:
    """A ClusterRole; `default` ones carry the bootstrapping label and auto-update annotation."""
    meta: Obj = {"name": name}
    if default:
        meta["labels"], meta["annotations"] = {**LABELS, **(labels or {})}, dict(AUTOUPDATE)
    elif labels:
        meta["labels"] = dict(labels)
    out: Obj = {"apiVersion": f"{rbac.GROUP}/v1", "kind": "ClusterRole", "metadata": meta}
    if aggregate_from is not None:
        out["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregate_from: "true"}}]}
    out["rules"] = rules or []
    return out


def cluster_roles() -> list[Obj]:
    """The default ClusterRoles (aggregated ones with their rules already gathered)."""
    roles = [
        _cluster_role("cluster-admin", [rule(("*",), ("*",), ("*",)), rule(("*",), urls=("*",))]),
        _cluster_role("system:discovery", [_url_rule("/livez", "/readyz", "/healthz", "/version", "/version/",
                                                     "/openapi", "/openapi/*", "/api", "/api/*", "/apis",
                                                     "/apis/*")]),
        _cluster_role("system:monitoring", [_url_rule("/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz",
                                                      "/livez/*", "/readyz/*", "/healthz/*")]),
        _cluster_role("system:basic-user", [
            rule(("create",), (AUTHZ,), ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule(("create",), (AUTHN,), ("selfsubjectreviews",))]),
        _cluster_role("system:public-info-viewer", [_url_rule("/livez", "/readyz", "/healthz", "/version",
                                                              "/version/")]),
        _cluster_role("admin", aggregate_from="admin"),
        _cluster_role("edit", labels={AGGREGATE_TO + "admin": "true"}, aggregate_from="edit"),
        _cluster_role("view", labels={AGGREGATE_TO + "edit": "true"}, aggregate_from="view"),
        _cluster_role("system:aggregate-to-admin", [
            rule(("create",), (AUTHZ,), ("localsubjectaccessreviews",)),
            rule(READ_WRITE, (rbac.GROUP,), ("roles", "rolebindings"))], labels={AGGREGATE_TO + "admin": "true"}),
        _cluster_role("system:aggregate-to-edit", _aggregate_to_edit(), labels={AGGREGATE_TO + "edit": "true"}),
        _cluster_role("system:aggregate-to-view", _aggregate_to_view(), labels={AGGREGATE_TO + "view": "true"}),
        _cluster_role("system:node", node_rules()),
        _cluster_role("system:node-problem-detector", [rule(("get",), (CORE,), ("nodes",)),
                                                       rule(("patch",), (CORE,), ("nodes/status",)), _events()]),
        _cluster_role("system:node-bootstrapper", [
            rule(("create", "get", "list", "watch"), (CERTS,), ("certificatesigningrequests",))]),
        _cluster_role("system:auth-delegator", [rule(("create",), (AUTHN,), ("tokenreviews",)),
                                                rule(("create",), (AUTHZ,), ("subjectaccessreviews",))]),
        _cluster_role("system:kube-aggregator", [rule(READ, (CORE,), ("services", "endpoints"))]),
        _cluster_role("system:kube-controller-manager", _kube_controller_manager()),
        _cluster_role("system:kube-dns", [rule(("list", "watch"), (CORE,), ("endpoints", "services"))]),
        _cluster_role("system:persistent-volume-provisioner", [
            rule(("get", "list", "watch", "create", "delete"), (CORE,), ("persistentvolumes",)),
            rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumeclaims",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(("watch",), (CORE,), ("events",)), _events()]),
        _cluster_role("system:volume-scheduler", [rule(READ_UPDATE, (CORE,), ("persistentvolumes",)),
                                                  rule(READ, (STORAGE,), ("storageclasses",)),
                                                  rule(READ_UPDATE, (CORE,), ("persistentvolumeclaims",))]),
        _cluster_role("system:service-account-issuer-discovery", [_url_rule(
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
            "/openid/v1/jwks/")]),
        _cluster_role("system:kubelet-api-admin", [
            rule(("get", "list", "watch"), (CORE,), ("nodes",)), rule(("proxy",), (CORE,), ("nodes",)),
            rule(("*",), (CORE,), ("nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"))]),
        _cluster_role("system:node-proxier", [
            rule(("list", "watch"), (CORE,), ("services", "endpoints")),
            rule(("get", "list", "watch"), (CORE,), ("nodes",)), _events(),
            rule(("list", "watch"), (DISCOVERY,), ("endpointslices",))]),
        _cluster_role("system:kube-scheduler", _kube_scheduler()),
    ]
    # What the aggregation controller converges to (view feeds edit feeds admin).
    changed = True
    while changed:
        changed = False
        for role in roles:
            gathered = rbac.aggregate(role, roles)
            if gathered is not None and gathered != role["rules"]:
                role["rules"], changed = gathered, True
    return roles


def _binding(name: str, role: str, subjects: list[Obj] | None, *, default: bool = True) -> Obj:
    """A ClusterRoleBinding; `subjects=None` leaves the field out (system:node)."""
    meta: Obj = {"name": name}
    if default:
        meta["labels"], meta["annotations"] = dict(LABELS), dict(AUTOUPDATE)
    out: Obj = {"apiVersion": f"{rbac.GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": meta,
                "roleRef": {"apiGroup": rbac.GROUP, "kind": "ClusterRole", "name": role}}
    if subjects is not None:
        out["subjects"] = subjects
    return out


def _group(name: str) -> Obj:
    return {"apiGroup": rbac.GROUP, "kind": "Group", "name": name}


def _user(name: str) -> Obj:
    return {"apiGroup": rbac.GROUP, "kind": "User", "name": name}


def _sa(namespace: str, name: str) -> Obj:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def cluster_role_bindings() -> list[Obj]:
    return [
        _binding("cluster-admin", "cluster-admin", [_group(MASTERS)]),
        _binding("system:monitoring", "system:monitoring", [_group("system:monitoring")]),
        _binding("system:discovery", "system:discovery", [_group(AUTHENTICATED)]),
        _binding("system:basic-user", "system:basic-user", [_group(AUTHENTICATED)]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [_group(AUTHENTICATED), _group(UNAUTHENTICATED)]),
        _binding("system:node-proxier", "system:node-proxier", [_user(KUBE_PROXY)]),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 [_user(KUBE_CONTROLLER_MANAGER)]),
        _binding("system:kube-dns", "system:kube-dns", [_sa("kube-system", "kube-dns")]),
        _binding("system:kube-scheduler", "system:kube-scheduler", [_user(KUBE_SCHEDULER)]),
        _binding("system:volume-scheduler", "system:volume-scheduler", [_user(KUBE_SCHEDULER)]),
        _binding("system:node", "system:node", None),   # upstream keeps it, without subjects
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 [_group(SA_GROUP)]),
    ]


def kubeadm_objects() -> list[tuple[str, Obj]]:
    """What kubeadm adds: its admin group binding, kube-proxy's and CoreDNS's RBAC."""
    crb = f"/apis/{rbac.GROUP}/v1/clusterrolebindings"
    coredns_role = {"apiVersion": f"{rbac.GROUP}/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
                    "rules": [rule(("list", "watch"), (CORE,), ("endpoints", "services", "pods", "namespaces")),
                              rule(("list", "watch"), (DISCOVERY,), ("endpointslices",))]}
    return [
        (crb, _binding("kubeadm:cluster-admins", "cluster-admin", [_group("kubeadm:cluster-admins")],
                       default=False)),
        (crb, _binding("kubeadm:node-proxier", "system:node-proxier", [_sa("kube-system", "kube-proxy")],
                       default=False)),
        ("/api/v1/namespaces/kube-system/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}}),
        (f"/apis/{rbac.GROUP}/v1/clusterroles", coredns_role),
        (crb, _binding("system:coredns", "system:coredns", [_sa("kube-system", "coredns")], default=False)),
    ]


def objects() -> list[tuple[str, Obj]]:
    """Every bootstrap RBAC object as (collection path, object), roles before bindings."""
    from .controllerpolicy import controller_role_bindings, controller_roles  # it builds on this module
    out: list[tuple[str, Obj]] = [(f"/apis/{rbac.GROUP}/v1/clusterroles", r)
                                  for r in cluster_roles() + controller_roles()]
    out += [(f"/apis/{rbac.GROUP}/v1/clusterrolebindings", b)
            for b in cluster_role_bindings() + controller_role_bindings()]
    return out + kubeadm_objects()
