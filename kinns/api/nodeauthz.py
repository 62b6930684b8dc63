"""The Node authorizer: a kubelet reads only what its own pods need.

Upstream's plugin/pkg/auth/authorizer/node: a request from
`system:node:<name>` (group `system:nodes`) to read a Secret, ConfigMap,
PersistentVolumeClaim or PersistentVolume, or to create a token for a
ServiceAccount, is allowed only when a pod bound to that node refers to
the object (through a volume, a projected source, env/envFrom,
imagePullSecrets, or its serviceAccountName; a claim's volume through the
claim); node leases only in `kube-node-lease` under the node's own name.
Everything else a node asks is judged against the static `system:node`
rules (register itself, report status, read Services, ...), which RBAC
no longer binds to anyone.  Non-node users get no opinion.

Upstream keeps a graph updated by informers; kinns computes the node's
references from the stored pods when asked (each pod's references once,
by UID).  Every kinns kubelet talks HTTPS as its node, so this authorizer
judges all of them; its reasons are upstream's.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .attributes import Attributes
from .bootstrappolicy import node_rules
from .rbac import Rule
from .user import node_name_of

Obj = dict[str, Any]
# resource -> every stored object of it ("pods", "persistentvolumeclaims", ...)
Lister = Callable[[str], Iterable[Obj]]

NODE_LEASE_NAMESPACE = "kube-node-lease"


def _names(items: Any, key: str) -> Iterable[str]:
    for item in items or []:
        if isinstance(item, dict) and item.get(key):
            yield str(item[key])


def pod_references(pod: Obj) -> dict[str, set[str]]:
    """What one pod refers to, by resource: secrets, configmaps, persistentvolumeclaims, serviceaccounts."""
    spec = pod.get("spec") or {}
    refs: dict[str, set[str]] = {"secrets": set(), "configmaps": set(), "persistentvolumeclaims": set(),
                                 "serviceaccounts": set()}
    refs["serviceaccounts"].add(spec.get("serviceAccountName") or "default")
    refs["secrets"].update(_names(spec.get("imagePullSecrets"), "name"))
    pod_name = (pod.get("metadata") or {}).get("name", "")
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        if isinstance(vol.get("secret"), dict) and vol["secret"].get("secretName"):
            refs["secrets"].add(vol["secret"]["secretName"])
        if isinstance(vol.get("configMap"), dict) and vol["configMap"].get("name"):
            refs["configmaps"].add(vol["configMap"]["name"])
        if isinstance(vol.get("persistentVolumeClaim"), dict):
            refs["persistentvolumeclaims"].add(vol["persistentVolumeClaim"].get("claimName", ""))
        if "ephemeral" in vol:
            refs["persistentvolumeclaims"].add(f"{pod_name}-{vol.get('name', '')}")
        for src in (vol.get("projected") or {}).get("sources") or []:
            if isinstance(src, dict):
                refs["secrets"].update(_names([src.get("secret")], "name"))
                refs["configmaps"].update(_names([src.get("configMap")], "name"))
        for key in ("csi", "cephfs", "rbd", "iscsi", "flexVolume", "azureFile", "scaleIO", "storageos"):
            src = vol.get(key)
            if isinstance(src, dict):
                for ref_key in ("secretRef", "nodePublishSecretRef"):
                    refs["secrets"].update(_names([src.get(ref_key)], "name"))
                if key == "azureFile" and src.get("secretName"):
                    refs["secrets"].add(src["secretName"])
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            for env in c.get("env") or []:
                vf = (env or {}).get("valueFrom") or {}
                refs["secrets"].update(_names([vf.get("secretKeyRef")], "name"))
                refs["configmaps"].update(_names([vf.get("configMapKeyRef")], "name"))
            for ef in c.get("envFrom") or []:
                refs["secrets"].update(_names([(ef or {}).get("secretRef")], "name"))
                refs["configmaps"].update(_names([(ef or {}).get("configMapRef")], "name"))
    return refs


class NodeAuthorizer:
    """Allow / no opinion for `system:node:<name>` users (see the module docstring)."""

    def __init__(self, lister: Lister) -> None:
        self.lister = lister
        self.rules = [Rule.from_api(r) for r in node_rules()]
        # What each pod refers to, by UID: a pod's spec is immutable where references live,
        # so this is computed once per pod, not once per pod per kubelet request (during a
        # rollout every kubelet read would otherwise walk every pod's volumes and env).
        self._refs: dict[str, dict[str, set[str]]] = {}

    def authorize(self, a: Attributes) -> tuple[bool | None, str]:
        """(True, "") to allow, (None, reason) for no opinion."""
        node = node_name_of(a.user)
        if node is None:
            return None, ""
        if not node:
            return None, f'unknown node for user "{a.user.name}"'
        if a.resource_request:
            decided = self._subdivided(node, a)
            if decided is not None:
                return decided
        if any(r.allows(a) for r in self.rules):
            return True, ""
        return None, ""

    def _subdivided(self, node: str, a: Attributes) -> tuple[bool | None, str] | None:
        if a.api_group == "":
            if a.resource in ("secrets", "configmaps"):
                return self._read_namespaced(node, a)
            if a.resource == "persistentvolumeclaims":
                return self._status_update(node, a) if a.subresource == "status" else self._get(node, a)
            if a.resource == "persistentvolumes":
                return self._get(node, a)
            if a.resource == "serviceaccounts":
                return self._create_token(node, a)
        if a.api_group == "coordination.k8s.io" and a.resource == "leases":
            return self._lease(node, a)
        return None

    def _read_namespaced(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        if a.verb not in ("get", "list", "watch"):
            return None, "can only read resources of this type"
        if a.subresource:
            return None, "cannot read subresource"
        if not a.namespace:
            return None, "can only read namespaced object of this type"
        return self._related(node, a)

    def _get(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        if a.verb != "get":
            return None, "can only get individual resources of this type"
        if a.subresource:
            return None, "cannot get subresource"
        return self._related(node, a)

    def _status_update(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        if a.verb not in ("update", "patch"):
            return None, "can only get/update/patch this type"
        return self._related(node, a)

    def _create_token(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        if a.verb != "create" or not a.name:
            return None, "can only create tokens for individual service accounts"
        if a.subresource != "token":
            return None, "can only create token subresource of serviceaccount"
        return self._related(node, a)

    def _lease(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return None, "can only get, create, update, patch, or delete a node lease"
        if a.namespace != NODE_LEASE_NAMESPACE:
            return None, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        if a.verb != "create" and a.name != node:
            return None, "can only access node lease with the same name as the requesting node"
        return True, ""

    def _related(self, node: str, a: Attributes) -> tuple[bool | None, str]:
        if not a.name:
            return None, "No Object name found"
        if (a.namespace, a.name) in self.references(node, a.resource):
            return True, ""
        return None, f"no relationship found between node '{node}' and this object"

    def references(self, node: str, resource: str) -> set[tuple[str, str]]:
        """(namespace, name) of every `resource` object the node's pods reach."""
        out: set[tuple[str, str]] = set()
        claims: set[tuple[str, str]] = set()
        pods = self.lister("pods")
        if not isinstance(pods, list):
            pods = list(pods)
        if len(self._refs) > 2 * len(pods) + 100:
            self._refs.clear()  # forget deleted pods
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            meta = pod.get("metadata") or {}
            ns = meta.get("namespace", "")
            uid = meta.get("uid", "")
            refs = self._refs.get(uid) if uid else None
            if refs is None:
                refs = pod_references(pod)
                if uid:
                    self._refs[uid] = refs
            claims.update((ns, n) for n in refs["persistentvolumeclaims"])
            if resource in refs:
                out.update((ns, n) for n in refs[resource])
        if resource == "persistentvolumes":
            for pvc in self.lister("persistentvolumeclaims"):
                m = pvc.get("metadata") or {}
                volume = (pvc.get("spec") or {}).get("volumeName")
                if volume and (m.get("namespace", ""), m.get("name", "")) in claims:
                    out.add(("", volume))
        return out
