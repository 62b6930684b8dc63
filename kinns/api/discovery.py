"""Discovery documents: what kubectl reads to learn which kinds exist.

Two shapes of the same facts from `resources.REGISTRY`: the legacy documents
(`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and the aggregated discovery
(`apidiscovery.k8s.io/v2` and `v2beta1` `APIGroupDiscoveryList`) that newer
clients ask for first, which saves them a request per group.  All pure data.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .resources import REGISTRY, Registry, ResourceType

# The Kubernetes release whose behaviour we follow (kubectl picks its
# matching minor from /version on these machines).
VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.3",
    "gitCommit": "kinns",
    "gitTreeState": "clean",
    "buildDate": "2025-03-11T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# Subresources whose response kind differs from the parent's.
_SUB_KINDS: dict[str, tuple[str, str, str]] = {
    "scale": ("autoscaling", "v1", "Scale"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "proxy": ("", "v1", "NodeProxyOptions"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}
_SUB_VERBS: dict[str, list[str]] = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "finalize": ["update"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "token": ["create"],
    "ephemeralcontainers": ["get", "patch", "update"],
}


def _storage_hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, reg: Registry) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in reg.versions(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list(reg: Registry = REGISTRY) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, reg) for g in reg.groups() if g],
    }


def api_group(group: str, reg: Registry = REGISTRY) -> dict[str, Any] | None:
    if not reg.versions(group) or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, reg)}


def api_resource_list(group: str, version: str, reg: Registry = REGISTRY) -> dict[str, Any] | None:
    types = reg.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular_name,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
            "storageVersionHash": _storage_hash(rt),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            g, v, k = _SUB_KINDS.get(sub, (rt.group, rt.version, rt.kind))
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": k,
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            }
            if sub in _SUB_KINDS and g != rt.group:
                sub_entry["group"] = g
                sub_entry["version"] = v
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.categories:
        out["categories"] = list(rt.categories)
    if rt.subresources:
        subs = []
        for sub in rt.subresources:
            g, v, k = _SUB_KINDS.get(sub, (rt.group, rt.version, rt.kind))
            subs.append({
                "subresource": sub,
                "responseKind": {"group": g, "version": v, "kind": k},
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            })
        out["subresources"] = subs
    return out


def aggregated(core: bool, api_version: str, reg: Registry = REGISTRY) -> dict[str, Any]:
    """The aggregated discovery answer for `/api` (core=True) or `/apis`."""
    groups = [""] if core else [g for g in reg.groups() if g]
    items = []
    for group in groups:
        versions = []
        for v in reg.versions(group):
            versions.append({
                "version": v,
                "resources": [_aggregated_resource(rt) for rt in reg.in_group_version(group, v)],
                "freshness": "Current",
            })
        meta: dict[str, Any] = {"name": group} if group else {}
        meta["creationTimestamp"] = None
        items.append({"metadata": meta, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def wants_aggregated(accept: str) -> str | None:
    """The aggregated content type the client accepts first, if any."""
    for part in accept.split(","):
        p = part.replace(" ", "")
        if "as=APIGroupDiscoveryList" in p and "g=apidiscovery.k8s.io" in p:
            if "v=v2beta1" in p:
                return AGGREGATED_V2BETA1
            if "v=v2" in p:
                return AGGREGATED_V2
    return None
