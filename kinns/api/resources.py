"""The kinds this API server serves, as data.

One `ResourceType` per kind says everything the generic REST machinery needs:
where it lives in the URL space, whether it is namespaced, its short names
for kubectl, and which subresources it has.  Discovery, OpenAPI, tables and
validation all key off this table, so adding a kind is one entry here plus
its validation and printer columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # crdkind imports this module
    from .crdkind import CustomKind


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )
    singular: str = ""
    # The OpenAPI definition name, e.g. io.k8s.api.core.v1.Pod.
    schema: str = ""
    # A kind that is answered, never stored (the access and token reviews):
    # the server hands its POSTs to `reviews.py`.
    virtual: bool = False
    # A CustomResourceDefinition's kind (crdkind.py): its validation, defaults,
    # printer columns and scale paths, where built-in kinds use the tables.
    custom: "CustomKind | None" = field(default=None, compare=False, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, or `pods` for the core group: used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


_ALL = ("all",)
_CORE_SCHEMA = "io.k8s.api.core.v1."
_RBAC = "rbac.authorization.k8s.io"
_RBAC_SCHEMA = "io.k8s.api.rbac.v1."
_AUTHN = "authentication.k8s.io"
_AUTHZ = "authorization.k8s.io"
_CREATE_ONLY = ("create",)

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",), subresources=("status", "finalize"),
                 schema=_CORE_SCHEMA + "Namespace"),
    ResourceType("", "v1", "Node", "nodes", False, ("no",), subresources=("status", "proxy"),
                 schema=_CORE_SCHEMA + "Node"),
    ResourceType("", "v1", "Pod", "pods", True, ("po",), _ALL,
                 ("status", "log", "exec", "attach", "portforward", "binding", "eviction", "ephemeralcontainers"),
                 schema=_CORE_SCHEMA + "Pod"),
    ResourceType("", "v1", "Service", "services", True, ("svc",), _ALL, ("status", "proxy"),
                 verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
                 schema=_CORE_SCHEMA + "Service"),
    ResourceType("", "v1", "Endpoints", "endpoints", True, ("ep",), singular="endpoints",
                 schema=_CORE_SCHEMA + "Endpoints"),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",), schema=_CORE_SCHEMA + "ConfigMap"),
    ResourceType("", "v1", "Secret", "secrets", True, schema=_CORE_SCHEMA + "Secret"),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), subresources=("token",),
                 schema=_CORE_SCHEMA + "ServiceAccount"),
    ResourceType("", "v1", "Event", "events", True, ("ev",), schema=_CORE_SCHEMA + "Event"),
    ResourceType("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), subresources=("status",),
                 schema=_CORE_SCHEMA + "PersistentVolume"),
    ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",),
                 subresources=("status",), schema=_CORE_SCHEMA + "PersistentVolumeClaim"),
    ResourceType("", "v1", "ReplicationController", "replicationcontrollers", True, ("rc",), _ALL,
                 ("status", "scale"), schema=_CORE_SCHEMA + "ReplicationController"),
    ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL, ("status", "scale"),
                 schema="io.k8s.api.apps.v1.Deployment"),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, ("status", "scale"),
                 schema="io.k8s.api.apps.v1.ReplicaSet"),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL, ("status", "scale"),
                 schema="io.k8s.api.apps.v1.StatefulSet"),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL, ("status",),
                 schema="io.k8s.api.apps.v1.DaemonSet"),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True,
                 schema="io.k8s.api.apps.v1.ControllerRevision"),
    ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
                 subresources=("status",), schema="io.k8s.api.policy.v1.PodDisruptionBudget"),
    ResourceType("batch", "v1", "Job", "jobs", True, (), _ALL, ("status",), schema="io.k8s.api.batch.v1.Job"),
    ResourceType("batch", "v1", "CronJob", "cronjobs", True, ("cj",), _ALL, ("status",),
                 schema="io.k8s.api.batch.v1.CronJob"),
    # autoscaling/v2 is stored; v1 is served by conversion (`autoscaling.py`).
    ResourceType("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), _ALL,
                 ("status",), schema="io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"),
    ResourceType("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), _ALL,
                 ("status",), schema="io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True,
                 schema="io.k8s.api.discovery.v1.EndpointSlice"),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",),
                 schema="io.k8s.api.networking.v1.NetworkPolicy"),
    ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), subresources=("status",),
                 schema="io.k8s.api.networking.v1.Ingress"),
    ResourceType("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False,
                 schema="io.k8s.api.networking.v1.IngressClass"),
    ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",),
                 schema="io.k8s.api.storage.v1.StorageClass"),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True,
                 schema="io.k8s.api.coordination.v1.Lease"),
    ResourceType(_RBAC, "v1", "ClusterRole", "clusterroles", False, schema=_RBAC_SCHEMA + "ClusterRole"),
    ResourceType(_RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", False,
                 schema=_RBAC_SCHEMA + "ClusterRoleBinding"),
    ResourceType(_RBAC, "v1", "Role", "roles", True, schema=_RBAC_SCHEMA + "Role"),
    ResourceType(_RBAC, "v1", "RoleBinding", "rolebindings", True, schema=_RBAC_SCHEMA + "RoleBinding"),
    ResourceType(_AUTHN, "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authentication.v1.SelfSubjectReview", virtual=True),
    ResourceType(_AUTHN, "v1", "TokenReview", "tokenreviews", False, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authentication.v1.TokenReview", virtual=True),
    # kubectl 1.27's `auth whoami` asks v1beta1 (then v1alpha1 on 404).
    ResourceType(_AUTHN, "v1beta1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authentication.v1beta1.SelfSubjectReview", virtual=True),
    ResourceType(_AUTHZ, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authorization.v1.LocalSubjectAccessReview", virtual=True),
    ResourceType(_AUTHZ, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authorization.v1.SelfSubjectAccessReview", virtual=True),
    ResourceType(_AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authorization.v1.SelfSubjectRulesReview", virtual=True),
    ResourceType(_AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=_CREATE_ONLY,
                 schema="io.k8s.api.authorization.v1.SubjectAccessReview", virtual=True),
    # Served for real: crd.py turns each established CRD into kinds of its own.
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
                 ("crd", "crds"), ("api-extensions",), ("status",),
                 schema="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"),
    ResourceType("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, (), ("api-extensions",),
                 ("status",), schema="io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService"),
    # What metrics-server serves, answered from the kubelets (`metricsapi.py`); nothing stored.
    ResourceType("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, verbs=("get", "list")),
    ResourceType("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list")),
)

# Group preference order for discovery (as upstream lists them).
GROUP_ORDER: tuple[str, ...] = (
    "", "apiregistration.k8s.io", "apps", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
    "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io",
    "discovery.k8s.io", "metrics.k8s.io",
)


@dataclass
class Registry:
    """Lookup of resource types by URL parts or by apiVersion/kind."""

    types: tuple[ResourceType, ...] = RESOURCES
    _by_path: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _by_kind: dict[tuple[str, str], ResourceType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rt in self.types:
            self._by_path[(rt.group, rt.version, rt.plural)] = rt
            self._by_kind[(rt.api_version, rt.kind)] = rt

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def groups(self) -> list[str]:
        known = [g for g in GROUP_ORDER if any(rt.group == g for rt in self.types)]
        extra = sorted({rt.group for rt in self.types} - set(GROUP_ORDER))  # CRD groups, after the built-in ones
        return known + extra

    def versions(self, group: str) -> list[str]:
        seen: list[str] = []
        for rt in self.types:
            if rt.group == group and rt.version not in seen:
                seen.append(rt.version)
        return seen

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.types if rt.group == group and rt.version == version]


REGISTRY = Registry()
