"""Endpoints and EndpointSlices: which pod IPs stand behind each Service.

As upstream's endpoint and endpointslice controllers: for every Service
with a selector, the pods in its namespace whose labels match and that have
an IP are its endpoints; a ready pod is "ready", a pod being deleted is
"terminating" (and still "serving" while it is ready).  Named target ports
resolve per pod from its container ports.  The core/v1 `Endpoints` object
(what `kubectl get endpoints` and `describe svc` show) lists ready
addresses and not-ready ones; the `EndpointSlice`s (what kube-proxy and
cluster DNS read) carry the conditions, node names and pod references,
at most 100 endpoints per slice, labelled `kubernetes.io/service-name`.

The desired objects are computed by pure functions; the controller only
compares and writes.
"""

from __future__ import annotations

from typing import Any

from ..api.errors import ApiError
from ..api.selectors import LabelSelector
from ..client.client import Client, Obj, object_key
from ..client.informer import InformerFactory
from . import podutil
from .base import Controller

MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"
MAX_PER_SLICE = 100

PortKey = tuple[tuple[str, int, str], ...]  # ((name, port, protocol), ...)


def resolve_ports(svc: Obj, pod: Obj) -> PortKey | None:
    """The endpoint ports for `pod`: each Service port's targetPort, resolved.

    A named targetPort the pod does not declare leaves that port out, as
    upstream; None when no port resolves at all.
    """
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        target = sp.get("targetPort", sp.get("port"))
        proto = sp.get("protocol", "TCP")
        if isinstance(target, str) and not target.isdigit():
            number = next((int(p["containerPort"]) for c in (pod.get("spec") or {}).get("containers", [])
                           for p in c.get("ports") or []
                           if p.get("name") == target and p.get("protocol", "TCP") == proto), None)
            if number is None:
                continue
        else:
            number = int(target)
        out.append((sp.get("name", ""), number, proto))
    return tuple(out) if out else None


def _endpoint(pod: Obj, svc: Obj) -> dict[str, Any]:
    meta = pod["metadata"]
    terminating = bool(meta.get("deletionTimestamp"))
    # publishNotReadyAddresses: every endpoint counts as ready (DNS for
    # StatefulSet peers before they are ready), as upstream.
    ready = podutil.is_ready(pod) or bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: dict[str, Any] = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    spec = pod.get("spec") or {}
    # Upstream's ShouldSetHostname: only a pod whose subdomain names this Service.
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        ep["hostname"] = spec["hostname"]
    return ep


def selected_pods(svc: Obj, pods: list[Obj]) -> list[Obj]:
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return []
    sel = LabelSelector.from_spec({"matchLabels": selector})
    return sorted(
        (p for p in pods
         if sel.matches(p["metadata"].get("labels")) and (p.get("status") or {}).get("podIP")
         and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")),
        key=lambda p: p["metadata"]["name"])


def desired_slices(svc: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """The EndpointSlices' content (endpoints and ports), without names."""
    groups: dict[PortKey, list[dict[str, Any]]] = {}
    for pod in selected_pods(svc, pods):
        ports = resolve_ports(svc, pod)
        if ports is not None:
            groups.setdefault(ports, []).append(_endpoint(pod, svc))
    if not groups:
        # Upstream keeps one empty slice carrying the ports, so consumers see the Service.
        ports = tuple((sp.get("name", ""), int(sp["targetPort"]) if str(sp.get("targetPort", "")).isdigit()
                       else int(sp.get("port", 0)), sp.get("protocol", "TCP"))
                      for sp in (svc.get("spec") or {}).get("ports") or [])
        groups[ports] = []
    out = []
    for ports, eps in sorted(groups.items()):
        for i in range(0, max(len(eps), 1), MAX_PER_SLICE):
            out.append({
                "addressType": "IPv4",
                "endpoints": eps[i:i + MAX_PER_SLICE],
                "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            })
    return out


def desired_endpoints(svc: Obj, pods: list[Obj]) -> dict[str, Any]:
    """The core/v1 Endpoints object for `svc` (subsets grouped by port set)."""
    publish_all = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    subsets: dict[PortKey, dict[str, list[dict[str, Any]]]] = {}
    for pod in selected_pods(svc, pods):
        ports = resolve_ports(svc, pod)
        if ports is None or (pod["metadata"].get("deletionTimestamp") and not publish_all):
            continue
        addr: dict[str, Any] = {"ip": pod["status"]["podIP"],
                                "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                                              "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}
        if (pod.get("spec") or {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        bucket = "addresses" if (podutil.is_ready(pod) or publish_all) else "notReadyAddresses"
        subsets.setdefault(ports, {}).setdefault(bucket, []).append(addr)
    meta = svc["metadata"]
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                     "labels": dict(meta.get("labels") or {})},
    }
    if subsets:
        obj["subsets"] = [
            {**addrs, "ports": [({"name": n} if n else {}) | {"port": p, "protocol": proto}
                                for n, p, proto in ports]}
            for ports, addrs in sorted(subsets.items())]
    return obj


class EndpointsController(Controller):
    """Keeps each selector Service's Endpoints and EndpointSlices in step with its pods."""

    name = "endpoints-controller"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 slice_client: Client | None = None) -> None:
        super().__init__(client, factory)
        # Upstream runs two controllers with two identities (endpoint-controller,
        # endpointslice-controller); this one writes slices with the second.
        self.slice_client = slice_client or client

    def setup(self) -> None:
        self.services = self.factory.informer("v1", "Service")
        self.pods = self.factory.informer("v1", "Pod")
        self.slices = self.factory.informer("discovery.k8s.io/v1", "EndpointSlice")
        self.endpoints = self.factory.informer("v1", "Endpoints")
        self.slices.add_indexer("service", lambda s: [
            f"{s['metadata']['namespace']}/{(s['metadata'].get('labels') or {}).get(SERVICE_NAME, '')}"]
            if (s["metadata"].get("labels") or {}).get("endpointslice.kubernetes.io/managed-by") == MANAGED_BY
            else [])
        self.services.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                                   on_delete=self.enqueue_obj)
        self.pods.add_handlers(on_add=self._pod_event, on_update=self._pod_changed, on_delete=self._pod_event)
        self._created: dict[str, list[str]] = {}

    def _pod_changed(self, old: Obj, new: Obj) -> None:
        self._pod_event(old)
        self._pod_event(new)

    def _pod_event(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels") or {}
        for svc in self.services.list(pod["metadata"].get("namespace")):
            selector = (svc.get("spec") or {}).get("selector")
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                self.enqueue(object_key(svc))

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.get(key)
        ns, _, name = key.partition("/")
        if svc is None:
            # The garbage collector removes the slices (they are owned); the
            # Endpoints object has no owner, so it goes here, as upstream.
            if self.endpoints.get(key) is not None:
                try:
                    await self.client.delete(("v1", "Endpoints"), name, ns)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return None
        if not (svc.get("spec") or {}).get("selector"):
            return None  # a Service without selector: its endpoints are the user's
        if any(self.slices.get(f"{ns}/{n}") is None for n in self._created.get(key, ())):
            return 0.1  # slices we just created are not in the cache yet
        self._created.pop(key, None)
        pods = self.pods.list(ns)
        await self._sync_endpoints(svc, desired_endpoints(svc, pods))
        await self._sync_slices(svc, desired_slices(svc, pods))
        return None

    async def _sync_endpoints(self, svc: Obj, want: dict[str, Any]) -> None:
        key = object_key(svc)
        have = self.endpoints.get(key)
        if have is None:
            try:
                await self.client.create(want)
            except ApiError as exc:
                if exc.code != 409:
                    raise
            return
        if have.get("subsets") == want.get("subsets") and \
                (have["metadata"].get("labels") or {}) == want["metadata"]["labels"]:
            return
        new = {**have, "metadata": {**have["metadata"], "labels": want["metadata"]["labels"]}}
        new.pop("subsets", None)
        if "subsets" in want:
            new["subsets"] = want["subsets"]
        await self.client.update(new)

    async def _sync_slices(self, svc: Obj, want: list[dict[str, Any]]) -> None:
        meta = svc["metadata"]
        have = sorted(self.slices.by_index("service", f"{meta['namespace']}/{meta['name']}"),
                      key=lambda s: s["metadata"]["name"])
        labels = {SERVICE_NAME: meta["name"], "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
        for i, content in enumerate(want):
            if i < len(have):
                cur = have[i]
                if all(cur.get(k) == v for k, v in content.items()):
                    continue
                await self.slice_client.update({**cur, **content})
            else:
                created = await self.slice_client.create({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                                 "labels": labels,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                                      "uid": meta["uid"], "controller": True,
                                                      "blockOwnerDeletion": True}]},
                    **content})
                self._created.setdefault(object_key(svc), []).append(created["metadata"]["name"])
        for extra in have[len(want):]:
            try:
                await self.slice_client.delete(("discovery.k8s.io/v1", "EndpointSlice"),
                                               extra["metadata"]["name"], meta["namespace"])
            except ApiError as exc:
                if exc.code != 404:
                    raise
