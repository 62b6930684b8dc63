"""metrics.k8s.io/v1beta1 as metrics-server serves it: NodeMetrics and PodMetrics.

`kubectl top`, the HPA controller and dashboards read resource usage from
this group.  On kind it exists only once metrics-server is installed; on
kinns the API server serves it itself, registered as the `APIService`
`v1beta1.metrics.k8s.io` (Available, as `kubectl get apiservices` shows)
and listed in discovery, so clients find it as they would on any cluster.

The numbers come from the kubelets (`GET /metrics/resource` over HTTPS
with the API server's kubelet-client identity, `nodeproxy.NodeProxy.get`)
through `metricsstore.MetricsStore`, which keeps metrics-server's rules
for rates and windows.  This module is the REST half (pkg/api of
metrics-server): `get` and `list` of both kinds, label and field
selectors on the nodes and pods they describe, only Running pods, items
sorted by namespace and name, the server-side Table (`kubectl get
podmetrics`), and upstream's errors: `pods "x" not found` for a pod that
does not exist, `podmetrics.metrics.k8s.io "ns/x" not found` for one
without metrics yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Callable

from . import objects, tables
from .errors import not_found
from .metricsstore import MetricsStore, Scrape, Usage, node_usage, pod_usage
from .nodeproxy import NodeProxy
from .request import Request, Response
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store.base import Store

Obj = dict[str, Any]
GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"


# --------------------------------------------------------------------------- formatting


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(), as metav1.Duration serializes: "1.5s", "15.034s", "1m0.5s", "800ms"."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_fraction(rest, 10**9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def cpu_quantity(nanocores: int) -> str:
    """metrics-server's CPU: a DecimalSI quantity scaled to nano, canonical ("12345n", "250m", "1500m")."""
    return tables.format_quantity(f"{nanocores}n")


def memory_quantity(n: int) -> str:
    """A BinarySI quantity in its canonical form ("1234Ki", "12Mi"; bytes when not a multiple of 1024)."""
    if n >= 1024 and n % 1024 == 0:
        return tables.format_quantity(f"{n // 1024}Ki")
    return tables.format_quantity(str(n))


def _usage(u: Usage) -> Obj:
    return {"cpu": cpu_quantity(u.nanocores), "memory": memory_quantity(u.memory)}


def _metadata(obj: Obj, namespaced: bool) -> Obj:
    """metrics-server's object metadata: the name (and namespace), a creationTimestamp of now, the labels."""
    meta = obj.get("metadata") or {}
    out: Obj = {"name": meta.get("name", "")}
    if namespaced:
        out["namespace"] = meta.get("namespace", "")
    out["creationTimestamp"] = objects.now_rfc3339()
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    return out


def node_metrics(node: Obj, usage: Usage) -> Obj:
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": _metadata(node, False),
            "timestamp": _rfc3339(usage.timestamp), "window": go_duration(usage.window), "usage": _usage(usage)}


def pod_metrics(pod: Obj, info: Usage, containers: list[tuple[str, Usage]]) -> Obj:
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _metadata(pod, True),
            "timestamp": _rfc3339(info.timestamp), "window": go_duration(info.window),
            "containers": [{"name": name, "usage": _usage(u)} for name, u in containers]}


Row = tuple[Obj, int, int]   # an item with its total nanocores and bytes (a pod's summed over containers)


def _table(rows: list[Row], include: str) -> Obj:
    """metrics-server's ConvertToTable: Name, one column per resource (sorted), Window."""
    out = []
    for item, cpu, memory in rows:
        row: Obj = {"cells": [item["metadata"]["name"], cpu_quantity(cpu), memory_quantity(memory), item["window"]]}
        if include == "Object":
            row["object"] = item
        elif include != "None":
            row["object"] = objects.partial_metadata(item)
        out.append(row)
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name of the resource",
                "priority": 0}]
    columns += [{"name": n, "type": "string", "format": f, "description": "", "priority": 0}
                for n, f in (("cpu", "quantity"), ("memory", "quantity"), ("Window", "duration"))]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": ""},
            "columnDefinitions": columns, "rows": out}


# --------------------------------------------------------------------------- the API


class MetricsApi:
    """GET on /apis/metrics.k8s.io/v1beta1/{nodes,pods} (see the module docstring)."""

    def __init__(self, store: Store, metrics: MetricsStore) -> None:
        self.store = store
        self.metrics = metrics

    @classmethod
    def from_kubelets(cls, store: Store, kubelets: NodeProxy) -> MetricsApi:
        """Scraping each node's kubelet with the API server's kubelet-client identity."""
        return cls(store, MetricsStore(lambda node: kubelets.get(node, "/metrics/resource")))

    async def handle(self, rt: ResourceType, namespace: str, name: str, req: Request) -> Response:
        """A get or list (the server has already refused other verbs and subresources)."""
        pods = rt.kind == "PodMetrics"
        if name:
            row = await (self._get_pod(namespace, name) if pods else self._get_node(name))
            if "as=Table" in req.header("accept"):
                return Response(obj=_table([row], req.param("includeObject", "Metadata")))
            return Response(obj=row[0])
        ls = LabelSelector.parse(req.param("labelSelector"))
        fs = FieldSelector.parse(req.param("fieldSelector"))

        def match(o: Obj) -> bool:
            # metrics-server matches fields against the object metadata only (other fields read as "")
            meta = o.get("metadata") or {}
            fields = {"metadata": {k: meta[k] for k in ("name", "namespace") if k in meta}}
            return ls.matches(meta.get("labels")) and fs.matches(fields)

        rows = await (self._pods(namespace or None, match) if pods else self._nodes(match))
        if "as=Table" in req.header("accept"):
            return Response(obj=_table(rows, req.param("includeObject", "Metadata")))
        return Response(obj={"kind": f"{rt.kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": [
            {k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item, _, _ in rows]})

    # -- nodes

    async def _node_scrapes(self, names: set[str]) -> dict[str, tuple[Scrape, Scrape]]:
        ordered = sorted(names)
        got = await asyncio.gather(*(self.metrics.scrapes(n) for n in ordered))
        return {n: s for n, s in zip(ordered, got) if s is not None}

    async def _nodes(self, match: Callable[[Obj], bool]) -> list[Row]:
        nodes = sorted((n for n in self.store.list("nodes") if match(n)), key=lambda n: n["metadata"]["name"])
        self.metrics.forget({n["metadata"]["name"] for n in self.store.list("nodes")})
        scrapes = await self._node_scrapes({n["metadata"]["name"] for n in nodes})
        out = []
        for node in nodes:
            pair = scrapes.get(node["metadata"]["name"])
            usage = node_usage(*pair) if pair is not None else None
            if usage is not None:
                out.append((node_metrics(node, usage), usage.nanocores, usage.memory))
        return out

    async def _get_node(self, name: str) -> Row:
        node = self.store.get(("nodes", "", name))
        if node is None:
            raise not_found("nodes", "", name)
        items = await self._nodes(lambda n: n["metadata"]["name"] == name)
        if not items:
            raise not_found("nodemetrics", GROUP, name)
        return items[0]

    # -- pods

    async def _pods(self, namespace: str | None, match: Callable[[Obj], bool]) -> list[Row]:
        pods = [p for p in self.store.list("pods", namespace)
                if (p.get("status") or {}).get("phase") == "Running" and (p.get("spec") or {}).get("nodeName")
                and match(p)]
        pods.sort(key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
        scrapes = await self._node_scrapes({p["spec"]["nodeName"] for p in pods})
        out = []
        for pod in pods:
            pair = scrapes.get(pod["spec"]["nodeName"])
            if pair is None:
                continue
            got = pod_usage(pair[0], pair[1], (pod["metadata"].get("namespace", ""), pod["metadata"]["name"]))
            if got is not None:
                info, containers = got
                out.append((pod_metrics(pod, info, containers), sum(u.nanocores for _, u in containers),
                            sum(u.memory for _, u in containers)))
        return out

    async def _get_pod(self, namespace: str, name: str) -> Row:
        pod = self.store.get(("pods", namespace, name))
        if pod is None:
            raise not_found("pods", "", name)
        items = await self._pods(namespace, lambda p: p["metadata"]["name"] == name)
        if not items:
            raise not_found("podmetrics", GROUP, f"{namespace}/{name}")
        return items[0]


# --------------------------------------------------------------------------- registration


def bootstrap_objects() -> list[tuple[str, Obj]]:
    """(collection, object) the API server ensures at start: the APIService that
    registers the group, and metrics-server's reader role, aggregated to view/edit/admin."""
    service = {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": f"{VERSION}.{GROUP}", "labels": {"k8s-app": "metrics-server"}},
        "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100},
        "status": {"conditions": [{"type": "Available", "status": "True", "lastTransitionTime": objects.now_rfc3339(),
                                   "reason": "Local", "message": "Local APIServices are always available"}]},
    }
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:aggregated-metrics-reader",
                     "labels": {"k8s-app": "metrics-server",
                                "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                                "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": [GROUP], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}],
    }
    return [("/apis/apiregistration.k8s.io/v1/apiservices", service),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", reader)]
