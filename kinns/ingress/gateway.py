"""The Gateway API as the ingress data plane's routes, and the statuses that say so.

Pure: GatewayClasses, Gateways, HTTPRoutes, Services and Secrets in (the
controller's caches), a `Translation` out: the `routing.Route`s and
certificates the same nginx serves beside the Ingresses, and the status
each object should carry.  Semantics (Gateway API v1):

- a GatewayClass is ours when its `controllerName` is; it is `Accepted`;
- a Gateway of one of our classes gets the ingress LoadBalancer's address
  (`status.addresses`) and `Accepted`/`Programmed`.  Its listeners are
  HTTP on 80 and HTTPS on 443 (the ports nginx listens on; others are
  `PortUnavailable`, other protocols `UnsupportedProtocol`).  An HTTPS
  listener terminates TLS with its `certificateRefs`, Secrets of the
  Gateway's namespace holding a certificate and its key; anything else is
  `ResolvedRefs False InvalidCertificateRef` (`RefNotPermitted` across
  namespaces) and the listener serves nothing.  Each listener counts its
  `attachedRoutes`;
- an HTTPRoute attaches to the listeners its `parentRefs` name (all of a
  Gateway's, or the `sectionName` one) that allow its namespace and share
  a hostname with it (`*.example.com` covers any number of labels; the
  intersection of the route's and the listener's names is what is
  served).  Per parent: `Accepted` (False: `NoMatchingParent`,
  `NotAllowedByListeners`, `NoMatchingListenerHostname`, or
  `UnsupportedValue` for what kinns does not implement: regular
  expressions, mirroring, response headers, path redirects) and
  `ResolvedRefs` (False `BackendNotFound` for a Service or port that is
  not there, `InvalidKind`, `RefNotPermitted`; such a backend's share of
  the requests is answered 500, the rest still flows).

A route that is not accepted adds nothing to the data plane; nothing else
changes because of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .certs import Certificate, InvalidCertificate, parse_secret
from .gatewayapi_crds import GROUP
from .routing import EXACT, GATEWAY_WILDCARD, PREFIX, Filters, Match, Redirect, Route, ServiceRef, Weighted, \
    age_order, ingress_key

Obj = dict[str, Any]
HTTP_PORT, HTTPS_PORT = 80, 443
ROUTE_KIND = "HTTPRoute"


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Obj]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def condition(type_: str, ok: bool, reason: str, message: str, generation: Any) -> Obj:
    """A metav1.Condition without its transition time (the writer keeps or stamps that)."""
    return {"type": type_, "status": "True" if ok else "False", "reason": reason, "message": message,
            "observedGeneration": generation or 0}


class Unsupported(ValueError):
    """A field value kinns does not implement (the route's Accepted False UnsupportedValue)."""


# ---------------------------------------------------------------- hostnames

def _covers(wildcard: str, host: str) -> bool:
    """`*.example.com` covers `a.example.com` and `a.b.example.com`, not `example.com`."""
    suffix = wildcard[1:]
    return host.endswith(suffix) and len(host) > len(suffix)


def intersect(listener: str, route_hosts: Sequence[str]) -> list[str]:
    """The hostnames a route serves through a listener ("" alone: every host)."""
    if not route_hosts:
        return [listener]
    if not listener:
        return list(route_hosts)
    out = []
    for h in route_hosts:
        if h == listener:
            out.append(h)
        elif listener.startswith("*.") and (_covers(listener, h) or (h.startswith("*.") and _covers(listener, h[1:]))):
            out.append(h)           # the route's name is the narrower one
        elif h.startswith("*.") and _covers(h, listener.lstrip("*")):
            out.append(listener)
    return sorted(set(out))


def host_key(host: str) -> str:
    """A Gateway hostname as the routing model's server name (wildcards of any depth marked)."""
    return GATEWAY_WILDCARD + host[2:] if host.startswith("*.") else host


# ---------------------------------------------------------------- listeners

@dataclass
class Listener:
    gateway: str                     # namespace/name
    name: str
    hostname: str
    port: int
    protocol: str
    allowed: str                     # allowedRoutes.namespaces.from
    conditions: list[Obj] = field(default_factory=list)
    certificate: tuple[str, Certificate] | None = None
    attached: int = 0
    hosts: set[str] = field(default_factory=set)

    @property
    def valid(self) -> bool:
        return all(c["status"] == "True" for c in self.conditions if c["type"] in ("Accepted", "ResolvedRefs"))


def _check_certificate(gw_ns: str, ref: Obj, secrets: Mapping[str, Obj]) -> tuple[str, Certificate] | str:
    """A certificateRef as (file, certificate), or why it is not one."""
    if (ref.get("group") or "") != "" or (ref.get("kind") or "Secret") != "Secret":
        return f'certificateRef {ref.get("group") or "core"}/{ref.get("kind")} "{ref.get("name")}" is not a Secret'
    ns = ref.get("namespace") or gw_ns
    key = f"{ns}/{ref.get('name')}"
    if ns != gw_ns:
        return f'Secret "{key}" is in another namespace (no ReferenceGrant support)'
    secret = secrets.get(key)
    if secret is None:
        return f'Secret "{key}" not found'
    try:
        return f"{ns}-{ref.get('name')}.pem", parse_secret(secret)
    except InvalidCertificate as e:
        return f'Secret "{key}" is not a valid TLS certificate: {e}'


def listener_of(gw: Obj, spec: Obj, secrets: Mapping[str, Obj]) -> Listener:
    meta, gen = _d(gw.get("metadata")), _d(gw.get("metadata")).get("generation")
    protocol, port = str(spec.get("protocol") or ""), int(spec.get("port") or 0)
    lst = Listener(ingress_key(gw), str(spec.get("name") or ""), str(spec.get("hostname") or "").lower(), port,
                   protocol, str(_d(_d(spec.get("allowedRoutes")).get("namespaces")).get("from") or "Same"))
    want = {"HTTP": HTTP_PORT, "HTTPS": HTTPS_PORT}.get(protocol)
    if want is None:
        accepted = condition("Accepted", False, "UnsupportedProtocol",
                             f"protocol {protocol} is not supported (HTTP and HTTPS are)", gen)
    elif port != want:
        accepted = condition("Accepted", False, "PortUnavailable",
                             f"{protocol} listeners are served on port {want} only", gen)
    else:
        accepted = condition("Accepted", True, "Accepted", "listener accepted", gen)
    resolved = condition("ResolvedRefs", True, "ResolvedRefs", "references resolved", gen)
    if protocol == "HTTPS":
        tls = _d(spec.get("tls"))
        refs = _dicts(tls.get("certificateRefs"))
        if (tls.get("mode") or "Terminate") != "Terminate":
            accepted = condition("Accepted", False, "UnsupportedValue", "TLS mode Passthrough is not supported", gen)
        if not refs:
            resolved = condition("ResolvedRefs", False, "InvalidCertificateRef", "an HTTPS listener needs a "
                                 "certificateRef", gen)
        else:
            got = _check_certificate(str(meta.get("namespace") or ""), refs[0], secrets)
            if isinstance(got, str):
                reason = "RefNotPermitted" if "another namespace" in got else "InvalidCertificateRef"
                resolved = condition("ResolvedRefs", False, reason, got, gen)
            else:
                lst.certificate = got
    lst.conditions = [accepted, resolved,
                      condition("Conflicted", False, "NoConflicts", "no conflicts", gen)]
    ok = lst.valid
    lst.conditions.append(condition("Programmed", ok, "Programmed" if ok else "Invalid",
                                    "listener programmed" if ok else "listener is not valid", gen))
    return lst


# ---------------------------------------------------------------- routes

def _match(m: Obj) -> tuple[str, str, Match]:
    """(path type, path, conditions) of one HTTPRouteMatch."""
    path = _d(m.get("path"))
    ptype = str(path.get("type") or "PathPrefix")
    if ptype == "RegularExpression":
        raise Unsupported("path match type RegularExpression is not supported")
    headers, query = [], []
    for h in _dicts(m.get("headers")):
        if (h.get("type") or "Exact") != "Exact":
            raise Unsupported("header match type RegularExpression is not supported")
        headers.append((str(h.get("name")).lower(), str(h.get("value") or "")))
    for q in _dicts(m.get("queryParams")):
        if (q.get("type") or "Exact") != "Exact":
            raise Unsupported("query parameter match type RegularExpression is not supported")
        query.append((str(q.get("name")), str(q.get("value") or "")))
    return (EXACT if ptype == "Exact" else PREFIX, str(path.get("value") or "/"),
            Match(str(m.get("method") or ""), tuple(sorted(headers)), tuple(sorted(query))))


def _filters(items: list[Obj]) -> Filters:
    f = Filters()
    for item in items:
        kind = item.get("type")
        if kind == "RequestHeaderModifier":
            mod = _d(item.get("requestHeaderModifier"))
            f = replace(f, set_headers=tuple((str(h["name"]), str(h["value"])) for h in _dicts(mod.get("set"))),
                        add_headers=tuple((str(h["name"]), str(h["value"])) for h in _dicts(mod.get("add"))),
                        remove_headers=tuple(str(x) for x in mod.get("remove") or []))
        elif kind == "RequestRedirect":
            r = _d(item.get("requestRedirect"))
            if r.get("path"):
                raise Unsupported("RequestRedirect with a path is not supported")
            f = replace(f, redirect=Redirect(str(r.get("scheme") or ""), str(r.get("hostname") or ""),
                                             int(r.get("port") or 0), int(r.get("statusCode") or 302)))
        elif kind == "URLRewrite":
            r = _d(item.get("urlRewrite"))
            path = _d(r.get("path"))
            full = path.get("replaceFullPath") if path.get("type") == "ReplaceFullPath" else None
            prefix = path.get("replacePrefixMatch") if path.get("type") == "ReplacePrefixMatch" else None
            f = replace(f, rewrite_full=None if full is None else str(full),
                        rewrite_prefix=None if prefix is None else str(prefix),
                        rewrite_host=str(r.get("hostname") or ""))
        else:
            raise Unsupported(f"filter type {kind} is not supported")
    return f


def _backend(ns: str, ref: Obj, services: Mapping[str, Obj]) -> tuple[Weighted, tuple[str, str] | None]:
    """A backendRef as a weighted ServiceRef (None when it does not resolve) and the problem, if any."""
    raw = ref.get("weight")
    weight = int(raw) if isinstance(raw, int) else 1
    if ref.get("filters"):
        raise Unsupported("filters on a backendRef are not supported")
    if (ref.get("group") or "") != "" or (ref.get("kind") or "Service") != "Service":
        return Weighted(None, weight), ("InvalidKind", f'backendRef kind {ref.get("kind")} is not a Service')
    key = f"{ref.get('namespace') or ns}/{ref.get('name')}"
    if (ref.get("namespace") or ns) != ns:
        return Weighted(None, weight), ("RefNotPermitted", f'Service "{key}" is in another namespace '
                                                          "(no ReferenceGrant support)")
    svc = services.get(key)
    if svc is None:
        return Weighted(None, weight), ("BackendNotFound", f'Service "{key}" not found')
    port = ref.get("port")
    if not port or not any(p.get("port") == port for p in _dicts(_d(svc.get("spec")).get("ports"))):
        return Weighted(None, weight), ("BackendNotFound", f'Service "{key}" has no port {port}')
    return Weighted(ServiceRef(ns, str(ref.get("name")), int(port)), weight), None


@dataclass
class Translation:
    routes: list[Route] = field(default_factory=list)                              # oldest first
    certificates: dict[str, tuple[str, Certificate]] = field(default_factory=dict)  # host → (file, cert)
    classes: dict[str, Obj] = field(default_factory=dict)        # name → status
    gateways: dict[str, Obj] = field(default_factory=dict)       # ns/name → status
    http_routes: dict[str, Obj] = field(default_factory=dict)    # ns/name → status


def _parent_ref(route_ns: str, ref: Obj) -> Obj:
    out = {"group": ref.get("group") or GROUP, "kind": ref.get("kind") or "Gateway",
           "namespace": ref.get("namespace") or route_ns, "name": ref.get("name")}
    if ref.get("sectionName"):
        out["sectionName"] = ref["sectionName"]
    return out


def _rules(route: Obj, services: Mapping[str, Obj]) -> tuple[list[tuple[str, str, Match, Filters, tuple[Weighted, ...]]],
                                                                list[tuple[str, str]]]:
    """A route's rules as (path type, path, match, filters, backends), and its backend problems."""
    ns = str(_d(route.get("metadata")).get("namespace") or "")
    out, problems = [], []
    for rule in _dicts(_d(route.get("spec")).get("rules")):
        filters = _filters(_dicts(rule.get("filters")))
        backends = []
        for ref in _dicts(rule.get("backendRefs")):
            w, problem = _backend(ns, ref, services)
            backends.append(w)
            if problem:
                problems.append(problem)
        for m in _dicts(rule.get("matches")) or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            ptype, path, match = _match(m)
            out.append((ptype, path, match, filters, tuple(backends)))
    return out, problems


def translate(controller: str, classes: Sequence[Obj], gateways: Sequence[Obj], routes: Sequence[Obj],
              services: Mapping[str, Obj], secrets: Mapping[str, Obj], addresses: Sequence[str]) -> Translation:
    """Everything the Gateway API objects of our classes say (see the module docstring)."""
    out = Translation()
    ours = set()
    for gc in classes:
        meta = _d(gc.get("metadata"))
        if _d(gc.get("spec")).get("controllerName") == controller:
            ours.add(str(meta.get("name")))
            out.classes[str(meta.get("name"))] = {"conditions": [condition(
                "Accepted", True, "Accepted", "handled by kinns' ingress controller", meta.get("generation"))]}
    listeners: dict[str, list[Listener]] = {}
    our_gateways: dict[str, Obj] = {}
    for gw in sorted(gateways, key=age_order):
        if _d(gw.get("spec")).get("gatewayClassName") in ours:
            key = ingress_key(gw)
            our_gateways[key] = gw
            listeners[key] = [listener_of(gw, spec, secrets) for spec in _dicts(_d(gw.get("spec")).get("listeners"))]
    for route in sorted(routes, key=age_order):
        _attach(route, our_gateways, listeners, services, controller, out)
    for key, gw in our_gateways.items():
        gen = _d(gw.get("metadata")).get("generation")
        lsts = listeners[key]
        bad = [lst.name for lst in lsts if not lst.valid]
        accepted = condition("Accepted", True, "ListenersNotValid" if bad else "Accepted",
                             f"invalid listeners: {', '.join(bad)}" if bad else "gateway accepted", gen)
        programmed = condition("Programmed", bool(addresses), "Programmed" if addresses else "AddressNotAssigned",
                               "served by the ingress-nginx pods" if addresses else
                               "the ingress LoadBalancer has no address yet", gen)
        out.gateways[key] = {
            "addresses": [{"type": "IPAddress", "value": a} for a in addresses],
            "conditions": [accepted, programmed],
            "listeners": [{"name": lst.name, "supportedKinds": [{"group": GROUP, "kind": ROUTE_KIND}],
                           "attachedRoutes": lst.attached, "conditions": lst.conditions} for lst in lsts]}
        for lst in lsts:
            if lst.certificate is not None and lst.valid:
                for host in sorted(lst.hosts | ({host_key(lst.hostname)} if lst.hostname else set())):
                    if host not in out.certificates:
                        out.certificates[host] = lst.certificate
    return out


def _attach(route: Obj, gateways: Mapping[str, Obj], listeners: Mapping[str, list[Listener]],
            services: Mapping[str, Obj], controller: str, out: Translation) -> None:
    """One HTTPRoute: its routes per attached listener and its parents' status."""
    meta = _d(route.get("metadata"))
    ns, key, gen = str(meta.get("namespace") or ""), ingress_key(route), meta.get("generation")
    hosts = [str(h).lower() for h in _d(route.get("spec")).get("hostnames") or []]
    try:
        rules, problems = _rules(route, services)
        unsupported = ""
    except Unsupported as e:
        rules, problems, unsupported = [], [], str(e)
    parents = []
    for ref in _dicts(_d(route.get("spec")).get("parentRefs")):
        pref = _parent_ref(ns, ref)
        if pref["group"] != GROUP or pref["kind"] != "Gateway":
            continue
        gkey = f"{pref['namespace']}/{pref['name']}"
        if gkey not in gateways:
            accepted = condition("Accepted", False, "NoMatchingParent", f'Gateway "{gkey}" not found', gen)
        elif unsupported:
            accepted = condition("Accepted", False, "UnsupportedValue", unsupported, gen)
        else:
            accepted = _attach_to(route, ns, key, hosts, pref, listeners[gkey], rules, out, gen)
        if problems:
            reason, message = problems[0]
            resolved = condition("ResolvedRefs", False, reason, "; ".join(m for _r, m in problems), gen)
        else:
            resolved = condition("ResolvedRefs", True, "ResolvedRefs", "all references resolved", gen)
        parents.append({"parentRef": pref, "controllerName": controller, "conditions": [accepted, resolved]})
    if parents:
        out.http_routes[key] = {"parents": parents}


def _attach_to(route: Obj, ns: str, key: str, hosts: list[str], pref: Obj, lsts: list[Listener],
               rules: list[tuple[str, str, Match, Filters, tuple[Weighted, ...]]], out: Translation, gen: Any) -> Obj:
    section = pref.get("sectionName")
    candidates = [lst for lst in lsts if not section or lst.name == section]
    if not candidates:
        return condition("Accepted", False, "NoMatchingParent", f'Gateway "{pref["namespace"]}/{pref["name"]}" has '
                         f'no listener "{section}"', gen)
    gw_ns = pref["namespace"]
    allowed = [lst for lst in candidates if lst.valid and (lst.allowed == "All" or (lst.allowed == "Same" and
                                                                                      ns == gw_ns))]
    if not allowed:
        return condition("Accepted", False, "NotAllowedByListeners", "no valid listener allows routes from "
                         f'namespace "{ns}"', gen)
    attached = 0
    for lst in allowed:
        served = intersect(lst.hostname, hosts)
        if not served:
            continue
        attached += 1
        lst.attached += 1
        for host in served:
            hk = host_key(host)
            lst.hosts.add(hk)
            out.routes += [Route(hk, path, ptype, None, key, match, filters, backends, ROUTE_KIND)
                           for ptype, path, match, filters, backends in rules]
    if not attached:
        return condition("Accepted", False, "NoMatchingListenerHostname",
                         "no listener hostname intersects the route's hostnames", gen)
    return condition("Accepted", True, "Accepted", "route accepted", gen)
