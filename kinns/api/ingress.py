"""networking.k8s.io/v1 Ingress and IngressClass: the API server's half.

What a user sees before any controller runs, with upstream's words
(pkg/apis/networking/validation, plugin/pkg/admission/network/
defaultingressclass, v1.32):

* validation: `pathType` required and one of Exact/Prefix/
  ImplementationSpecific; Exact and Prefix paths absolute and free of
  `//`, `/./`, `/../`, `%2f`, and not ending in `/..` or `/.`; hosts DNS
  names (not IPs), a wildcard only as `*.` + subdomain; a backend is a
  Service (name + port name *or* number) or a resource, never both; rules
  or a defaultBackend; TLS hosts and Secret names; the
  `kubernetes.io/ingress.class` annotation must agree with
  `ingressClassName`.  IngressClass: `spec.controller` a domain-prefixed
  path, immutable; parameters with a scope;
* defaulting: an IngressClass's `parameters.scope` is `Cluster` when unset;
* admission (`DefaultIngressClass`): an Ingress created with neither
  `ingressClassName` nor the class annotation gets the IngressClass
  annotated `ingressclass.kubernetes.io/is-default-class: "true"` (the
  newest if several, as upstream since 1.30);
* `kubectl get ingress` / `get ingressclass` rows.

The routing itself (what the paths mean) is the controller's, kinns/ingress.
Shared checks come from validation.py, imported inside the functions: that
module imports this one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any, Awaitable, Callable

from .errors import INVALID, REQUIRED, FieldError

Obj = dict[str, Any]
Errs = list[FieldError]

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
SCOPES = ("Cluster", "Namespace")
_WILDCARD_FMT = "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"


def _dicts(value: Any) -> list[Obj]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


# ================================================================ defaulting

def default_class(obj: Obj) -> None:
    """SetDefaults_IngressClass: parameters without a scope are cluster-scoped."""
    params = _d(_d(obj.get("spec")).get("parameters"))
    if params and not params.get("scope"):
        params["scope"] = "Cluster"


# ================================================================ validation

def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    """validation.IsWildcardDNS1123Subdomain."""
    from . import validation as v
    errs = []
    if len(value) > 253:
        errs.append(v.max_len_error(253))
    if not re.fullmatch(_WILDCARD_FMT, value):
        errs.append(v.regex_error("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                                  "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' "
                                  "and end with an alphanumeric character", _WILDCARD_FMT, "*.example.com"))
    return errs


def _host_errors(host: str, path: str) -> Errs:
    from . import validation as v
    if "*" in host:
        return v._each(path, host, is_wildcard_dns1123_subdomain(host))
    return v._each(path, host, v.is_dns1123_subdomain(host))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _backend(backend: Obj, path: str) -> Errs:
    """validateIngressBackend."""
    from . import validation as v
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [FieldError(INVALID, path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_reference(_d(resource), f"{path}.resource")
    if service is None:
        return [FieldError(INVALID, path, "", "resource or service backend is required")]
    svc = _d(service)
    errs: Errs = []
    name = svc.get("name") or ""
    if not name:
        errs.append(FieldError(REQUIRED, f"{path}.service.name"))
    else:
        errs += v._each(f"{path}.service.name", name, v.is_dns1035_label(str(name)))
    port = _d(svc.get("port"))
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        errs.append(FieldError(INVALID, path, "", "cannot set both port name & port number"))
    elif port_name:
        errs += v._each(f"{path}.service.port.name", port_name, v.is_port_name(str(port_name)))
    elif number:
        errs += v._port_num(f"{path}.service.port.number", number)
    else:
        errs.append(FieldError(REQUIRED, path, detail="port name or number is required"))
    return errs


def _typed_reference(ref: Obj, path: str) -> Errs:
    """validateIngressTypedLocalObjectReference (and the shared part of the class's parameters check)."""
    from . import validation as v
    errs: Errs = []
    if ref.get("apiGroup") is not None:
        errs += v._each(f"{path}.apiGroup", ref["apiGroup"], v.is_dns1123_subdomain(str(ref["apiGroup"])))
    for key in ("kind", "name"):
        if not ref.get(key):
            errs.append(FieldError(REQUIRED, f"{path}.{key}"))
        else:
            errs += v._each(f"{path}.{key}", ref[key], v.is_path_segment_name(str(ref[key])))
    return errs


def validate_path(p: Obj, path: str) -> Errs:
    """validateHTTPIngressPath: the pathType and what it allows, then the backend."""
    from . import validation as v
    ptype = p.get("pathType")
    if ptype is None:
        return [FieldError(REQUIRED, f"{path}.pathType", detail="pathType must be specified")]
    text = p.get("path") or ""
    errs: Errs = []
    if ptype in ("Exact", "Prefix"):
        if not text.startswith("/"):
            errs.append(FieldError(INVALID, f"{path}.path", text, "must be an absolute path"))
        if text:
            errs += [FieldError(INVALID, f"{path}.path", text, f"must not contain '{s}'")
                     for s in INVALID_PATH_SEQUENCES if s in text]
            errs += [FieldError(INVALID, f"{path}.path", text, f"cannot end with '{s}'")
                     for s in INVALID_PATH_SUFFIXES if text.endswith(s)]
    elif ptype == "ImplementationSpecific":
        if text and not text.startswith("/"):
            errs.append(FieldError(INVALID, f"{path}.path", text, "must be an absolute path"))
    else:
        errs.append(v._not_supported(f"{path}.pathType", ptype, PATH_TYPES))
    return errs + _backend(_d(p.get("backend")), f"{path}.backend")


def _rules(rules: list[Obj], path: str) -> Errs:
    """validateIngressRules."""
    from . import validation as v
    errs: Errs = []
    for i, rule in enumerate(rules):
        rpath = f"{path}[{i}]"
        host = rule.get("host") or ""
        if host:
            if _is_ip(host):
                errs.append(FieldError(INVALID, f"{rpath}.host", host, "must be a DNS name, not an IP address"))
            errs += _host_errors(host, f"{rpath}.host")
        http = rule.get("http")
        if http is None:
            continue
        paths = _dicts(_d(http).get("paths"))
        if not paths:
            errs.append(v._required(f"{rpath}.http.paths"))
        for j, p in enumerate(paths):
            errs += validate_path(p, f"{rpath}.http.paths[{j}]")
    return errs


def _go_rules(rules: Any) -> str:
    return "[]networking.IngressRule(nil)" if rules is None else "[]networking.IngressRule{}"


def validate_spec(spec: Obj, path: str = "spec") -> Errs:
    """ValidateIngressSpec."""
    from . import validation as v
    errs: Errs = []
    rules = _dicts(spec.get("rules"))
    if not rules and spec.get("defaultBackend") is None:
        errs.append(v._raw(INVALID, path, _go_rules(spec.get("rules")),
                           "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        errs += _backend(_d(spec["defaultBackend"]), f"{path}.defaultBackend")
    errs += _rules(rules, f"{path}.rules")
    for i, tls in enumerate(_dicts(spec.get("tls"))):
        for j, host in enumerate(tls.get("hosts") or []):
            errs += _host_errors(str(host), f"{path}.tls[{i}].hosts[{j}]")
        secret = tls.get("secretName") or ""
        if secret:
            errs += v._each(f"{path}.tls[{i}].secretName", secret, v.is_dns1123_subdomain(str(secret)))
    name = spec.get("ingressClassName")
    if name is not None:
        errs += v._each(f"{path}.ingressClassName", name, v.is_dns1123_subdomain(str(name)))
    return errs


def validate(obj: Obj) -> Errs:
    """ValidateIngressCreate's spec part (metadata is validation.py's for every kind)."""
    errs = validate_spec(_d(obj.get("spec")))
    annotation = (_d(_d(obj.get("metadata")).get("annotations"))).get(CLASS_ANNOTATION)
    name = _d(obj.get("spec")).get("ingressClassName")
    if annotation is not None and name is not None and annotation != name:
        errs.append(FieldError(INVALID, f"annotations.{CLASS_ANNOTATION}", annotation,
                               "must match `ingressClassName` when both are specified"))
    return errs


def _domain_prefixed_path(value: str, path: str) -> Errs:
    """validation.IsDomainPrefixedPath."""
    from . import validation as v
    if not value:
        return [FieldError(REQUIRED, path)]
    parts = value.split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return [FieldError(INVALID, path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errs = v._each(path, parts[0], v.is_dns1123_subdomain(parts[0]))
    if not re.fullmatch(_HTTP_PATH_FMT, parts[1]):
        errs.append(FieldError(INVALID, path, parts[1], v.regex_error("Invalid path", _HTTP_PATH_FMT)))
    return errs


def validate_class(obj: Obj) -> Errs:
    """validateIngressClassSpec."""
    from . import validation as v
    spec = _d(obj.get("spec"))
    controller = spec.get("controller") or ""
    errs: Errs = []
    if len(controller) > 250:
        errs.append(FieldError("FieldValueTooLong", "spec.controller", detail="may not be more than 250 bytes"))
    else:
        errs += _domain_prefixed_path(str(controller), "spec.controller")
    params = spec.get("parameters")
    if params is None:
        return errs
    params = _d(params)
    ppath = "spec.parameters"
    errs += _typed_reference(params, ppath)
    scope = params.get("scope")
    if scope is None:
        return errs + [FieldError(REQUIRED, f"{ppath}.scope")]
    if scope not in SCOPES:
        return errs + [v._not_supported(f"{ppath}.scope", scope, SCOPES)]
    ns = params.get("namespace")
    if scope == "Namespace":
        if ns is None:
            errs.append(FieldError(REQUIRED, f"{ppath}.namespace", detail="`parameters.scope` is set to 'Namespace'"))
        else:
            errs += v._each(f"{ppath}.namespace", ns, v.is_dns1123_label(str(ns)))
    elif ns is not None:
        errs.append(FieldError("FieldValueForbidden", f"{ppath}.namespace",
                               detail="`parameters.scope` is set to 'Cluster'"))
    return errs


def validate_class_update(new: Obj, old: Obj) -> Errs:
    """validateIngressClassSpecUpdate: the controller is fixed at creation."""
    from . import validation as v
    if _d(new.get("spec")).get("controller") != _d(old.get("spec")).get("controller"):
        return [FieldError(INVALID, "spec.controller", _d(new.get("spec")).get("controller"), v.IMMUTABLE)]
    return []


# ================================================================ admission

def default_class_name(classes: list[Obj]) -> str | None:
    """The IngressClass a class-less Ingress gets: the one annotated default,
    the newest (then the first by name) when several are."""
    marked = [c for c in classes
              if _d(_d(c.get("metadata")).get("annotations")).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if not marked:
        return None
    newest = max(c["metadata"].get("creationTimestamp") or "" for c in marked)
    return min(str(c["metadata"]["name"]) for c in marked if (c["metadata"].get("creationTimestamp") or "") == newest)


def admit_default_class(list_classes: Callable[[], list[Obj]], ingress: Obj) -> None:
    """DefaultIngressClass on create: fill `spec.ingressClassName` unless the
    user chose a class (the field, even "", or the legacy annotation)."""
    spec = ingress.setdefault("spec", {})
    if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
        return
    if CLASS_ANNOTATION in _d(_d(ingress.get("metadata")).get("annotations")):
        return
    name = default_class_name(list_classes())
    if name is not None:
        spec["ingressClassName"] = name


def hook(store: Any) -> Callable[[Any, Obj, "Obj | None", Any], Awaitable[None]]:
    """The admission step for the REST handlers: creates of Ingresses only."""
    async def run(t: Any, obj: Obj, old: Obj | None, _req: Any) -> None:
        if old is None and not t.subresource and t.rt.kind == "Ingress" and t.rt.group == "networking.k8s.io":
            admit_default_class(lambda: store.list("ingressclasses.networking.k8s.io"), obj)
    return run


# ================================================================ kubectl columns

def _hosts(ing: Obj) -> str:
    """HOSTS as kubectl's formatHosts: up to three rule hosts (host-less rules
    skipped), `*` when none, `+ N more...` counting every rule past three."""
    rules = _dicts(_d(ing.get("spec")).get("rules"))
    shown: list[str] = []
    more = False
    for rule in rules:
        if len(shown) == 3:
            more = True
        if not more and rule.get("host"):
            shown.append(str(rule["host"]))
    if not shown:
        return "*"
    return ",".join(shown) + (f" + {len(rules) - 3} more..." if more else "")


def _addresses(ing: Obj) -> str:
    """ADDRESS: the distinct IPs (else hostnames), sorted, cut at 16 characters."""
    lbs = _dicts(_d(_d(ing.get("status")).get("loadBalancer")).get("ingress"))
    text = ",".join(sorted({str(lb.get("ip") or lb.get("hostname")) for lb in lbs
                            if lb.get("ip") or lb.get("hostname")}))
    return text if len(text) <= 16 else text[:13] + "..."


def cells(ing: Obj, now: dt.datetime) -> list[Any]:
    """NAME CLASS HOSTS ADDRESS PORTS AGE, as kubectl's printer (printIngress)."""
    from .tables import _age, _name
    spec = _d(ing.get("spec"))
    cls = spec.get("ingressClassName") or "<none>"
    ports = "80, 443" if _dicts(spec.get("tls")) else "80"
    return [_name(ing), cls, _hosts(ing), _addresses(ing), ports, _age(ing, now)]


def class_cells(ic: Obj, now: dt.datetime) -> list[Any]:
    """NAME CONTROLLER PARAMETERS AGE (printIngressClass)."""
    from .tables import _age, _name
    spec = _d(ic.get("spec"))
    params = spec.get("parameters")
    shown = "<none>"
    if isinstance(params, dict):
        shown = str(params.get("kind", "")) + (f".{params['apiGroup']}" if params.get("apiGroup") is not None else "")
        shown += f"/{params.get('name', '')}"
    return [_name(ic), spec.get("controller") or "", shown, _age(ic, now)]
