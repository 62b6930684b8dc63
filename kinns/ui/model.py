"""What the diagram draws: small view records cut from API objects, and the deltas between them.

The page never sees whole API objects.  Each object becomes a flat record
holding only what is drawn (a pod's node, IP and state; a Service's
addresses and ports), keyed by an id such as `pod/default/web-1`.  A watch
event that changes nothing drawn (a pod's status heartbeat, a managedFields
write) makes an equal record and so no push: with 2,000 pods most events
stop here, which is what keeps the page quiet and quick.

Pure functions over dicts only: no I/O, so unit tests feed them objects.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

Obj = dict[str, Any]
View = dict[str, Any]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _ns_name(obj: Obj) -> tuple[str, str]:
    m = _meta(obj)
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def node_view(obj: Obj) -> View:
    """A node box: its fabric address, pod range and the cni0 bridge's gateway in it."""
    name = _ns_name(obj)[1]
    status = obj.get("status") or {}
    ip = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    cidr = (obj.get("spec") or {}).get("podCIDR") or ""
    gateway = None
    if cidr:
        try:
            gateway = str(next(ipaddress.ip_network(cidr, strict=False).hosts()))
        except (ValueError, StopIteration):
            gateway = None
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    labels = _meta(obj).get("labels") or {}
    role = "control-plane" if "node-role.kubernetes.io/control-plane" in labels else "worker"
    return {"id": f"node/{name}", "kind": "node", "name": name, "ip": ip, "podCIDR": cidr,
            "bridge": "cni0", "gateway": gateway, "ready": ready, "role": role}


def pod_state(obj: Obj) -> str:
    """What kubectl's STATUS column would say, in short: a waiting reason, Terminating or the phase."""
    if _meta(obj).get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        reason = (state.get("waiting") or {}).get("reason") or (state.get("terminated") or {}).get("reason")
        if reason:
            return str(reason)
    return str(status.get("phase") or "Pending")


def pod_view(obj: Obj) -> View:
    ns, name = _ns_name(obj)
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return {"id": f"pod/{ns}/{name}", "kind": "pod", "ns": ns, "name": name,
            "node": spec.get("nodeName") or None, "ip": status.get("podIP") or None,
            "hostNetwork": bool(spec.get("hostNetwork")), "state": pod_state(obj), "ready": ready}


def service_view(obj: Obj) -> View:
    """A Service: every address a client can use (ClusterIP, NodePorts, LoadBalancer and external IPs)."""
    ns, name = _ns_name(obj)
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ports = [{"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
              "targetPort": p.get("targetPort", p.get("port")), "nodePort": p.get("nodePort")}
             for p in spec.get("ports") or []]
    return {"id": f"svc/{ns}/{name}", "kind": "svc", "ns": ns, "name": name,
            "type": spec.get("type") or "ClusterIP", "clusterIP": spec.get("clusterIP") or None,
            "ports": ports, "loadBalancer": [i.get("ip") or i.get("hostname") for i in ingress],
            "externalIPs": list(spec.get("externalIPs") or []), "selector": spec.get("selector") or {}}


def slice_view(obj: Obj) -> View:
    """One EndpointSlice: the endpoints it adds to its Service (the page sums a Service's slices)."""
    ns, name = _ns_name(obj)
    service = (_meta(obj).get("labels") or {}).get("kubernetes.io/service-name") or ""
    eps = []
    for ep in obj.get("endpoints") or []:
        ref = ep.get("targetRef") or {}
        cond = ep.get("conditions") or {}
        for addr in ep.get("addresses") or []:
            eps.append({"ip": addr, "pod": ref.get("name") if ref.get("kind") == "Pod" else None,
                        "node": ep.get("nodeName"), "ready": cond.get("ready") is not False})
    ports = [{"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP"}
             for p in obj.get("ports") or []]
    return {"id": f"eps/{ns}/{name}", "kind": "eps", "ns": ns, "name": name, "service": f"{ns}/{service}",
            "endpoints": eps, "ports": ports}


def _backend(b: Obj) -> str:
    svc = b.get("service") or {}
    port = svc.get("port") or {}
    return f"{svc.get('name', '?')}:{port.get('number') or port.get('name') or '?'}"


def ingress_view(obj: Obj) -> View:
    ns, name = _ns_name(obj)
    spec = obj.get("spec") or {}
    rules = []
    for r in spec.get("rules") or []:
        for p in ((r.get("http") or {}).get("paths")) or []:
            rules.append({"host": r.get("host") or "*", "path": p.get("path") or "/",
                          "backend": _backend(p.get("backend") or {})})
    if spec.get("defaultBackend"):
        rules.append({"host": "*", "path": "(default)", "backend": _backend(spec["defaultBackend"])})
    lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return {"id": f"ing/{ns}/{name}", "kind": "ing", "ns": ns, "name": name,
            "class": spec.get("ingressClassName"), "rules": rules,
            "address": [i.get("ip") or i.get("hostname") for i in lb]}


def selector_text(sel: Obj | None) -> str:
    """A label selector as kubectl prints one (`app=web,tier in (a,b)`); empty means every pod."""
    sel = sel or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        parts.append({"In": f"{key} in ({vals})", "NotIn": f"{key} notin ({vals})",
                      "Exists": str(key), "DoesNotExist": f"!{key}"}.get(str(op), f"{key} {op}"))
    return ",".join(parts)


def netpol_view(obj: Obj) -> View:
    ns, name = _ns_name(obj)
    spec = obj.get("spec") or {}
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
    return {"id": f"netpol/{ns}/{name}", "kind": "netpol", "ns": ns, "name": name,
            "podSelector": selector_text(spec.get("podSelector")) or "(all pods)", "types": list(types),
            "ingressRules": len(spec.get("ingress") or []), "egressRules": len(spec.get("egress") or [])}


# (apiVersion, kind) -> the function that draws it.
KINDS: dict[tuple[str, str], Callable[[Obj], View]] = {
    ("v1", "Node"): node_view,
    ("v1", "Pod"): pod_view,
    ("v1", "Service"): service_view,
    ("discovery.k8s.io/v1", "EndpointSlice"): slice_view,
    ("networking.k8s.io/v1", "Ingress"): ingress_view,
    ("networking.k8s.io/v1", "NetworkPolicy"): netpol_view,
}


class Diagram:
    """Every view record the page has, and the deltas that keep a page in step with it."""

    def __init__(self) -> None:
        self.views: dict[str, View] = {}

    def put(self, view: View) -> dict[str, Any] | None:
        """Record a view; the delta to push, or None when nothing drawn changed."""
        if self.views.get(view["id"]) == view:
            return None
        self.views[view["id"]] = view
        return {"op": "put", "obj": view}

    def remove(self, view_id: str) -> dict[str, Any] | None:
        if self.views.pop(view_id, None) is None:
            return None
        return {"op": "del", "id": view_id}

    def snapshot(self) -> list[View]:
        return list(self.views.values())
