"""Where kube-apiserver keeps each object in etcd, both ways.

Keys are `<prefix>/<resource prefix>/<namespace>/<name>`, or without the
namespace for cluster-scoped kinds, under `--etcd-prefix` (`/registry`).
The resource prefix is the plural of the stored resource, not qualified
by its group (`/registry/deployments/default/web`), except for the few
names upstream kept from its first days (`SpecialDefaultResourcePrefixes`,
pkg/kubeapiserver/default_storage_factory_builder.go): Services under
`services/specs`, Endpoints under `services/endpoints`, Nodes under
`minions`, ReplicationControllers under `controllers`, Ingresses under
`ingress`.  Groups served by the API extensions server and the aggregator
(custom resources, CRDs, APIServices) keep their group in the key:
`/registry/apiextensions.k8s.io/customresourcedefinitions/<name>`,
`/registry/<group>/<plural>/<ns>/<name>`.

Reading a key back, a built-in resource prefix names the plural but not
the group (`deployments` could be any group's); the group comes from the
stored object's `apiVersion`, as upstream's storage version decides it.
"""

from __future__ import annotations

from typing import Any

from .base import Key

# (group, plural) -> resource prefix; upstream's SpecialDefaultResourcePrefixes.
_SPECIAL: dict[tuple[str, str], str] = {
    ("", "replicationcontrollers"): "controllers",
    ("", "endpoints"): "services/endpoints",
    ("", "nodes"): "minions",
    ("", "services"): "services/specs",
    ("extensions", "ingresses"): "ingress",
    ("networking.k8s.io", "ingresses"): "ingress",
}
_SPECIAL_PLURAL = {prefix: plural for (_, plural), prefix in _SPECIAL.items()}

# Groups kube-apiserver itself serves (their keys omit the group).  Any other
# group is a custom resource's or the aggregator's and is kept in the key.
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "extensions", "networking.k8s.io",
    "discovery.k8s.io", "storage.k8s.io", "coordination.k8s.io", "rbac.authorization.k8s.io",
    "scheduling.k8s.io", "node.k8s.io", "certificates.k8s.io", "admissionregistration.k8s.io",
    "events.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io", "storagemigration.k8s.io",
    "internal.apiserver.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
})

# Keys under the prefix that hold no API object (upstream's allocator bitmaps
# and endpoint-reconciler leases); a shared etcd may have them.
_NOT_OBJECTS = frozenset({"ranges", "masterleases", "peerserverleases"})


def split_resource(resource: str) -> tuple[str, str]:
    """`deployments.apps` -> ("apps", "deployments"); `pods` -> ("", "pods")."""
    plural, _, group = resource.partition(".")
    return group, plural


class KeyLayout:
    """The mapping between store keys and etcd keys under one prefix."""

    def __init__(self, prefix: str = "/registry") -> None:
        self.prefix = "/" + prefix.strip("/")

    def resource_prefix(self, resource: str) -> str:
        group, plural = split_resource(resource)
        if (group, plural) in _SPECIAL:
            return _SPECIAL[(group, plural)]
        return plural if group in BUILTIN_GROUPS else f"{group}/{plural}"

    def key(self, key: Key) -> bytes:
        resource, namespace, name = key
        parts = [self.prefix, self.resource_prefix(resource)] + ([namespace] if namespace else []) + [name]
        return "/".join(parts).encode()

    def range_prefix(self, resource: str | None = None, namespace: str | None = None) -> bytes:
        """The key prefix of a whole resource, of one namespace of it, or of everything."""
        if resource is None:
            return (self.prefix + "/").encode()
        parts = [self.prefix, self.resource_prefix(resource)] + ([namespace] if namespace else [])
        return ("/".join(parts) + "/").encode()

    def parse(self, etcd_key: bytes, obj: dict[str, Any]) -> Key | None:
        """The store key of an etcd key holding `obj`, or None for keys that hold
        no object of ours."""
        text = etcd_key.decode(errors="replace")
        if not text.startswith(self.prefix + "/"):
            return None
        parts = text[len(self.prefix) + 1:].split("/")
        if len(parts) >= 3 and "/".join(parts[:2]) in _SPECIAL_PLURAL:
            plural, group, rest = _SPECIAL_PLURAL["/".join(parts[:2])], _group_of(obj), parts[2:]
        elif len(parts) >= 3 and "." in parts[0]:
            plural, group, rest = parts[1], parts[0], parts[2:]
        elif parts[0] in _NOT_OBJECTS:
            return None
        else:
            plural, group, rest = _SPECIAL_PLURAL.get(parts[0], parts[0]), _group_of(obj), parts[1:]
        if len(rest) == 1:
            namespace, name = "", rest[0]
        elif len(rest) == 2:
            namespace, name = rest
        else:
            return None
        if not name:
            return None
        return (f"{plural}.{group}" if group else plural, namespace, name)


def _group_of(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", "v1"))
    return api_version.rpartition("/")[0]
