"""The controllers' own RBAC roles, as kube-apiserver bootstraps them (controller_policy.go, v1.32).

kube-controller-manager runs with `--use-service-account-credentials` on
kubeadm clusters: each controller acts as the ServiceAccount
`kube-system/<name>` and may do exactly what the ClusterRole
`system:controller:<name>` allows (bound by the ClusterRoleBinding of the
same name).  kube-apiserver creates all of them at start, whichever
controllers run, so `kubectl get clusterroles | grep system:controller:`
reads as on any cluster; the rules are upstream's, for the controllers
enabled by default (feature-gated alpha ones are left out).

kinns runs two controllers upstream ships separately: the local-path
provisioner (kind's default StorageClass, with rancher's role
`local-path-provisioner-role`, plus creating that StorageClass, which
kind's manifest does instead) and the LoadBalancer address controller
(`kinns:controller:service-lb-controller`: it reads Services, nodes and
EndpointSlices, writes `status.loadBalancer` and its node annotation).
"""

from __future__ import annotations

from typing import Any

from .bootstrappolicy import (APPS, AUTHZ, AUTOSCALING, BATCH, CERTS, CORE, DISCOVERY, EXTENSIONS, POLICY, READ,
                              STORAGE, rule)
from .bootstrappolicy import _binding as cluster_role_binding
from .bootstrappolicy import _events
from .bootstrappolicy import _cluster_role as cluster_role
from .bootstrappolicy import _sa as service_account
from .rbac import GROUP as RBAC

Obj = dict[str, Any]

PREFIX = "system:controller:"
NAMESPACE = "kube-system"
ADMISSIONREGISTRATION = "admissionregistration.k8s.io"
CUSTOM_METRICS, EXTERNAL_METRICS, RESOURCE_METRICS = "custom.metrics.k8s.io", "external.metrics.k8s.io", "metrics.k8s.io"


def _upstream_rules() -> dict[str, list[Obj]]:
    """Account name → rules, in upstream's order."""
    return {
        "attachdetach-controller": [
            rule(("list", "watch"), (CORE,), ("persistentvolumes", "persistentvolumeclaims")),
            rule(READ, (CORE,), ("nodes",)),
            rule(("patch", "update"), (CORE,), ("nodes/status",)),
            rule(("list", "watch"), (CORE,), ("pods",)),
            _events(),
            rule(("get", "create", "delete", "list", "watch"), (STORAGE,), ("volumeattachments",)),
            rule(("get", "watch", "list"), (STORAGE,), ("csidrivers",)),
            rule(("get", "watch", "list"), (STORAGE,), ("csinodes",)),
        ],
        "clusterrole-aggregation-controller": [
            rule(("escalate", "get", "list", "watch", "update", "patch"), (RBAC,), ("clusterroles",)),
        ],
        "cronjob-controller": [
            rule(("get", "list", "watch", "update"), (BATCH,), ("cronjobs",)),
            rule(("get", "list", "watch", "create", "update", "delete", "patch"), (BATCH,), ("jobs",)),
            rule(("update",), (BATCH,), ("cronjobs/status",)),
            rule(("update",), (BATCH,), ("cronjobs/finalizers",)),
            rule(("list", "watch", "delete"), (CORE,), ("pods",)),
            _events(),
        ],
        "daemon-set-controller": [
            rule(READ, (EXTENSIONS, APPS), ("daemonsets",)),
            rule(("update",), (EXTENSIONS, APPS), ("daemonsets/status",)),
            rule(("update",), (EXTENSIONS, APPS), ("daemonsets/finalizers",)),
            rule(("list", "watch"), (CORE,), ("nodes",)),
            rule(("list", "watch", "create", "delete", "patch"), (CORE,), ("pods",)),
            rule(("create",), (CORE,), ("pods/binding",)),
            rule(("get", "list", "watch", "create", "delete", "update", "patch"), (APPS,), ("controllerrevisions",)),
            _events(),
        ],
        "deployment-controller": [
            rule(("get", "list", "watch", "update"), (EXTENSIONS, APPS), ("deployments",)),
            rule(("update",), (EXTENSIONS, APPS), ("deployments/status",)),
            rule(("update",), (EXTENSIONS, APPS), ("deployments/finalizers",)),
            rule(("get", "list", "watch", "create", "update", "patch", "delete"), (APPS, EXTENSIONS),
                 ("replicasets",)),
            rule(("get", "list", "watch", "update"), (CORE,), ("pods",)),
            _events(),
        ],
        "disruption-controller": [
            rule(READ, (EXTENSIONS, APPS), ("deployments",)),
            rule(READ, (APPS, EXTENSIONS), ("replicasets",)),
            rule(READ, (CORE,), ("replicationcontrollers",)),
            rule(READ, (POLICY,), ("poddisruptionbudgets",)),
            rule(READ, (APPS,), ("statefulsets",)),
            rule(("update",), (POLICY,), ("poddisruptionbudgets/status",)),
            rule(("patch", "update"), (CORE,), ("pods/status",)),
            rule(("get",), ("*",), ("*/scale",)),
            _events(),
        ],
        "endpoint-controller": [
            rule(READ, (CORE,), ("services", "pods")),
            rule(("get", "list", "watch", "create", "update", "delete"), (CORE,), ("endpoints",)),
            rule(("create",), (CORE,), ("endpoints/restricted",)),
            _events(),
        ],
        "endpointslice-controller": [
            rule(READ, (CORE,), ("services", "pods", "nodes")),
            rule(("update",), (CORE,), ("services/finalizers",)),
            rule(("get", "list", "watch", "create", "update", "delete"), (DISCOVERY,), ("endpointslices",)),
            _events(),
        ],
        "endpointslicemirroring-controller": [
            rule(READ, (CORE,), ("services", "endpoints")),
            rule(("update",), (CORE,), ("services/finalizers",)),
            rule(("update",), (CORE,), ("endpoints/finalizers",)),
            rule(("get", "list", "watch", "create", "update", "delete"), (DISCOVERY,), ("endpointslices",)),
            _events(),
        ],
        "expand-controller": [
            rule(("get", "list", "watch", "update", "patch"), (CORE,), ("persistentvolumes",)),
            rule(("update", "patch"), (CORE,), ("persistentvolumeclaims/status",)),
            rule(READ, (CORE,), ("persistentvolumeclaims",)),
            _events(),
            rule(("get",), (CORE,), ("services",)),
        ],
        "ephemeral-volume-controller": [
            rule(READ, (CORE,), ("pods",)),
            rule(("update",), (CORE,), ("pods/finalizers",)),
            rule(("get", "list", "watch", "create"), (CORE,), ("persistentvolumeclaims",)),
            _events(),
        ],
        "generic-garbage-collector": [
            rule(("get", "list", "watch", "patch", "update", "delete"), ("*",), ("*",)),
            _events(),
        ],
        "horizontal-pod-autoscaler": [
            rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers",)),
            rule(("update",), (AUTOSCALING,), ("horizontalpodautoscalers/status",)),
            rule(("get", "update"), ("*",), ("*/scale",)),
            rule(("list", "watch"), (CORE,), ("pods",)),
            rule(("list", "watch"), (RESOURCE_METRICS,), ("pods",)),
            rule(READ, (CUSTOM_METRICS,), ("*",)),
            rule(READ, (EXTERNAL_METRICS,), ("*",)),
            _events(),
        ],
        "job-controller": [
            rule(("get", "list", "watch", "update", "patch"), (BATCH,), ("jobs",)),
            rule(("update",), (BATCH,), ("jobs/status",)),
            rule(("update",), (BATCH,), ("jobs/finalizers",)),
            rule(("list", "watch", "create", "delete", "patch"), (CORE,), ("pods",)),
            _events(),
        ],
        "namespace-controller": [
            rule(("get", "list", "watch", "delete"), (CORE,), ("namespaces",)),
            rule(("update",), (CORE,), ("namespaces/finalize", "namespaces/status")),
            rule(("get", "list", "watch", "delete", "deletecollection"), ("*",), ("*",)),
        ],
        "node-controller": [
            rule(("get", "list", "watch", "update", "delete", "patch"), (CORE,), ("nodes",)),
            rule(("patch", "update"), (CORE,), ("nodes/status",)),
            rule(("patch", "update"), (CORE,), ("pods/status",)),
            rule(("list", "watch", "get", "delete"), (CORE,), ("pods",)),
            _events(),
        ],
        "persistent-volume-binder": [
            rule(("get", "list", "watch", "update", "create", "delete"), (CORE,), ("persistentvolumes",)),
            rule(("update",), (CORE,), ("persistentvolumes/status",)),
            rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumeclaims",)),
            rule(("update",), (CORE,), ("persistentvolumeclaims/status",)),
            rule(("list", "watch", "get", "create", "delete"), (CORE,), ("pods",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(("list", "watch"), (CORE,), ("nodes",)),
            _events(),
            rule(("watch",), (CORE,), ("events",)),
            rule(("get",), (CORE,), ("services",)),
        ],
        "pod-garbage-collector": [
            rule(("list", "watch", "delete"), (CORE,), ("pods",)),
            rule(READ, (CORE,), ("nodes",)),
            rule(("patch",), (CORE,), ("pods/status",)),
        ],
        "replicaset-controller": [
            rule(("get", "list", "watch", "update"), (APPS, EXTENSIONS), ("replicasets",)),
            rule(("update",), (APPS, EXTENSIONS), ("replicasets/status",)),
            rule(("update",), (APPS, EXTENSIONS), ("replicasets/finalizers",)),
            rule(("list", "watch", "patch", "create", "delete"), (CORE,), ("pods",)),
            _events(),
        ],
        "replication-controller": [
            rule(("get", "list", "watch", "update"), (CORE,), ("replicationcontrollers",)),
            rule(("update",), (CORE,), ("replicationcontrollers/status",)),
            rule(("update",), (CORE,), ("replicationcontrollers/finalizers",)),
            rule(("list", "watch", "patch", "create", "delete"), (CORE,), ("pods",)),
            _events(),
        ],
        "resourcequota-controller": [
            rule(("list", "watch"), ("*",), ("*",)),
            rule(("update",), (CORE,), ("resourcequotas/status",)),
            _events(),
        ],
        "route-controller": [
            rule(("list", "watch"), (CORE,), ("nodes",)),
            rule(("patch",), (CORE,), ("nodes/status",)),
            _events(),
        ],
        "service-account-controller": [
            rule(("create",), (CORE,), ("serviceaccounts",)),
            _events(),
        ],
        "service-controller": [
            rule(READ, (CORE,), ("services",)),
            rule(("patch", "update"), (CORE,), ("services/status",)),
            rule(("list", "watch"), (CORE,), ("nodes",)),
            _events(),
        ],
        "statefulset-controller": [
            rule(("list", "watch"), (CORE,), ("pods",)),
            rule(READ, (APPS,), ("statefulsets",)),
            rule(("update",), (APPS,), ("statefulsets/status",)),
            rule(("update",), (APPS,), ("statefulsets/finalizers",)),
            rule(("get", "create", "delete", "update", "patch"), (CORE,), ("pods",)),
            rule(("get", "create", "delete", "update", "patch", "list", "watch"), (APPS,), ("controllerrevisions",)),
            rule(("get", "create", "list", "watch"), (CORE,), ("persistentvolumeclaims",)),
            rule(("update", "delete"), (CORE,), ("persistentvolumeclaims",)),
            rule(("update",), (CORE,), ("pods/finalizers",)),
            _events(),
        ],
        "ttl-controller": [
            rule(("update", "patch", "list", "watch"), (CORE,), ("nodes",)),
            _events(),
        ],
        "certificate-controller": [
            rule(("get", "list", "watch", "delete"), (CERTS,), ("certificatesigningrequests",)),
            rule(("update",), (CERTS,), ("certificatesigningrequests/status", "certificatesigningrequests/approval")),
            rule(("approve",), (CERTS,), ("signers",), names=("kubernetes.io/kube-apiserver-client-kubelet",)),
            rule(("sign",), (CERTS,), ("signers",), names=(
                "kubernetes.io/legacy-unknown", "kubernetes.io/kube-apiserver-client",
                "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving")),
            rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
            _events(),
        ],
        "pvc-protection-controller": [
            rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumeclaims",)),
            rule(("list", "watch", "get"), (CORE,), ("pods",)),
            _events(),
        ],
        "pv-protection-controller": [
            rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumes",)),
            _events(),
        ],
        "ttl-after-finished-controller": [
            rule(("get", "list", "watch", "delete"), (BATCH,), ("jobs",)),
            _events(),
        ],
        "root-ca-cert-publisher": [
            rule(("create", "update"), (CORE,), ("configmaps",)),
            _events(),
        ],
        "validatingadmissionpolicy-status-controller": [
            rule(READ, (ADMISSIONREGISTRATION,), ("validatingadmissionpolicies",)),
            rule(("get", "patch", "update"), (ADMISSIONREGISTRATION,), ("validatingadmissionpolicies/status",)),
            _events(),
        ],
        "legacy-service-account-token-cleaner": [
            rule(("get",), (CORE,), ("configmaps",), names=("kube-apiserver-legacy-service-account-token-tracking",)),
            rule(("patch", "delete"), (CORE,), ("secrets",)),
        ],
    }


def _kinns_roles() -> list[tuple[str, str, str, list[Obj]]]:
    """(role, binding, account, rules) of the controllers kinns adds."""
    return [
        ("local-path-provisioner-role", "local-path-provisioner-bind", "local-path-provisioner", [
            rule(READ, (CORE,), ("nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log")),
            rule(("get", "list", "watch", "create", "patch", "update", "delete"), (CORE,), ("persistentvolumes",)),
            rule(("update", "patch"), (CORE,), ("persistentvolumeclaims/status",)),  # as external-resizer's role
            rule(("create", "patch"), (CORE,), ("events",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(("create",), (STORAGE,), ("storageclasses",)),
        ]),
        ("kinns:controller:service-lb-controller", "kinns:controller:service-lb-controller", "service-lb-controller", [
            rule(("get", "list", "watch", "patch", "update"), (CORE,), ("services",)),
            rule(("patch", "update"), (CORE,), ("services/status",)),
            rule(READ, (CORE,), ("nodes",)),
            rule(READ, (DISCOVERY,), ("endpointslices",)),
            _events(),
        ]),
    ]


def controller_roles() -> list[Obj]:
    out = [cluster_role(PREFIX + name, rules) for name, rules in _upstream_rules().items()]
    return out + [cluster_role(role, rules, default=False) for role, _, _, rules in _kinns_roles()]


def controller_role_bindings() -> list[Obj]:
    out = [cluster_role_binding(PREFIX + name, PREFIX + name, [service_account(NAMESPACE, name)])
           for name in _upstream_rules()]
    return out + [cluster_role_binding(binding, role, [service_account(NAMESPACE, account)], default=False)
                  for role, binding, account, _ in _kinns_roles()]
