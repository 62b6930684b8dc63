"""The Gateway API's CRDs as `kinns up` installs them, with kinns' own GatewayClass.

`gateway.networking.k8s.io/v1` GatewayClass (cluster-scoped), Gateway and
HTTPRoute, as CustomResourceDefinitions kinns' API serves like any other:
structural schemas written here for the fields kinns' controller
implements (anything else is pruned, so nothing is silently ignored while
looking accepted), a status subresource, and the printer columns
`kubectl get` shows for them upstream:

    kubectl get gatewayclass   NAME CONTROLLER ACCEPTED AGE
    kubectl get gateway        NAME CLASS ADDRESS PROGRAMMED AGE
    kubectl get httproute      NAME HOSTNAMES AGE

The schemas are ours (shape and defaults follow the v1 API reference: a
route's rule without matches matches every path, a parentRef's group and
kind default to a Gateway's, a backendRef to a Service with weight 1).
`gateway_api_objects` is what the ingress add-on creates: the three CRDs,
then GatewayClass `kinns` whose controllerName is CONTROLLER_NAME, the
name kinns' ingress controller claims classes by.
"""

from __future__ import annotations

from typing import Any

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
CONTROLLER_NAME = "kinns.io/gateway-controller"
CLASS_NAME = "kinns"
BUNDLE_VERSION = "v1.2.1"          # the Gateway API release whose v1 fields these schemas cover
Obj = dict[str, Any]

HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME = {"type": "string", "minLength": 1, "maxLength": 253}
HEADER_NAME = {"type": "string", "minLength": 1, "maxLength": 256,
               "pattern": r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"}


def _s(type_: str, **kw: Any) -> Obj:
    return {"type": type_, **kw}


def _obj(required: list[str] | None = None, **props: Obj) -> Obj:
    out: Obj = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _list(item: Obj, max_items: int = 64) -> Obj:
    return {"type": "array", "items": item, "maxItems": max_items}


def _hostname() -> Obj:
    return _s("string", minLength=1, maxLength=253, pattern=HOSTNAME)


def _conditions() -> Obj:
    """metav1.Condition, as every Gateway API status holds them."""
    return _list(_obj(["type", "status", "reason", "message", "lastTransitionTime"],
                      type=_s("string", maxLength=316), status=_s("string", enum=["True", "False", "Unknown"]),
                      reason=_s("string", maxLength=1024), message=_s("string", maxLength=32768),
                      observedGeneration=_s("integer", format="int64", minimum=0),
                      lastTransitionTime=_s("string", format="date-time")), 8)


def _parent_ref() -> Obj:
    return _obj(["name"], group=_s("string", default=GROUP, maxLength=253),
                kind=_s("string", default="Gateway", maxLength=63), namespace=_s("string", maxLength=63),
                name=NAME, sectionName=_s("string", maxLength=253),
                port=_s("integer", format="int32", minimum=1, maximum=65535))


def _header_pairs() -> Obj:
    return _list(_obj(["name", "value"], name=HEADER_NAME, value=_s("string", minLength=1, maxLength=4096)), 16)


def _path_modifier() -> Obj:
    return _obj(["type"], type=_s("string", enum=["ReplaceFullPath", "ReplacePrefixMatch"]),
                replaceFullPath=_s("string", maxLength=1024), replacePrefixMatch=_s("string", maxLength=1024))


def _filter() -> Obj:
    return _obj(
        ["type"],
        type=_s("string", enum=["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror",
                                "RequestRedirect", "URLRewrite", "ExtensionRef"]),
        requestHeaderModifier=_obj(set=_header_pairs(), add=_header_pairs(), remove=_list(_s("string"), 16)),
        requestRedirect=_obj(scheme=_s("string", enum=["http", "https"]), hostname=_hostname(),
                             path=_path_modifier(), port=_s("integer", format="int32", minimum=1, maximum=65535),
                             statusCode=_s("integer", default=302, enum=[301, 302])),
        urlRewrite=_obj(hostname=_hostname(), path=_path_modifier()))


def _match() -> Obj:
    return _obj(
        path=_obj(type=_s("string", default="PathPrefix", enum=["Exact", "PathPrefix", "RegularExpression"]),
                  value=_s("string", default="/", maxLength=1024)),
        headers=_list(_obj(["name", "value"], type=_s("string", default="Exact", enum=["Exact", "RegularExpression"]),
                           name=HEADER_NAME, value=_s("string", maxLength=4096)), 16),
        queryParams=_list(_obj(["name", "value"], type=_s("string", default="Exact",
                                                          enum=["Exact", "RegularExpression"]),
                               name=_s("string", minLength=1, maxLength=256),
                               value=_s("string", minLength=1, maxLength=1024)), 16),
        method=_s("string", enum=["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]))


def _backend_ref() -> Obj:
    return _obj(["name"], group=_s("string", default="", maxLength=253), kind=_s("string", default="Service"),
                name=NAME, namespace=_s("string", maxLength=63),
                port=_s("integer", format="int32", minimum=1, maximum=65535),
                weight=_s("integer", format="int32", default=1, minimum=0, maximum=1000000))


def _route_parent_status() -> Obj:
    return _list(_obj(["parentRef", "controllerName"], parentRef=_parent_ref(),
                      controllerName=_s("string"), conditions=_conditions()), 32)


def _crd(kind: str, plural: str, scope: str, spec: Obj, status: Obj, columns: list[Obj],
         short_names: list[str] | None = None) -> Obj:
    names: Obj = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                  "categories": ["gateway-api"]}
    if short_names:
        names["shortNames"] = short_names
    schema = _obj(["spec"], apiVersion=_s("string"), kind=_s("string"), metadata=_s("object"), spec=spec,
                  status=status)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}",
                         "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api",
                                         "gateway.networking.k8s.io/bundle-version": BUNDLE_VERSION,
                                         "gateway.networking.k8s.io/channel": "standard"}},
            "spec": {"group": GROUP, "names": names, "scope": scope,
                     "versions": [{"name": VERSION, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}, "subresources": {"status": {}},
                                   "additionalPrinterColumns": columns + [
                                       {"name": "Age", "type": "date",
                                        "jsonPath": ".metadata.creationTimestamp"}]}]}}


def _condition_column(name: str, type_: str) -> Obj:
    return {"name": name, "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{type_}")].status'}


def gateway_class_crd() -> Obj:
    spec = _obj(["controllerName"], controllerName=_s("string", minLength=1, maxLength=253),
                description=_s("string", maxLength=64))
    status = _obj(conditions=_conditions())
    return _crd("GatewayClass", "gatewayclasses", "Cluster", spec, status,
                [{"name": "Controller", "type": "string", "jsonPath": ".spec.controllerName"},
                 _condition_column("Accepted", "Accepted"),
                 {"name": "Description", "type": "string", "jsonPath": ".spec.description", "priority": 1}],
                ["gc"])


def gateway_crd() -> Obj:
    cert_ref = _obj(["name"], group=_s("string", default=""), kind=_s("string", default="Secret"), name=NAME,
                    namespace=_s("string", maxLength=63))
    listener = _obj(["name", "port", "protocol"], name=_s("string", minLength=1, maxLength=253),
                    hostname=_hostname(), port=_s("integer", format="int32", minimum=1, maximum=65535),
                    protocol=_s("string", minLength=1, maxLength=255),
                    tls=_obj(mode=_s("string", default="Terminate", enum=["Terminate", "Passthrough"]),
                             certificateRefs=_list(cert_ref, 64)),
                    allowedRoutes=_obj(namespaces={"type": "object", "properties": {
                        "from": _s("string", default="Same", enum=["All", "Same", "Selector"])}},
                                       kinds=_list(_obj(["kind"], group=_s("string"), kind=_s("string")), 8)))
    spec = _obj(["gatewayClassName", "listeners"], gatewayClassName=NAME, listeners=_list(listener, 64),
                addresses=_list(_obj(["value"], type=_s("string", default="IPAddress"), value=_s("string")), 16))
    status = _obj(
        addresses=_list(_obj(["value"], type=_s("string"), value=_s("string")), 16),
        conditions=_conditions(),
        listeners=_list(_obj(["name", "supportedKinds", "attachedRoutes", "conditions"], name=_s("string"),
                             supportedKinds=_list(_obj(["kind"], group=_s("string"), kind=_s("string")), 8),
                             attachedRoutes=_s("integer", format="int32"), conditions=_conditions()), 64))
    return _crd("Gateway", "gateways", "Namespaced", spec, status,
                [{"name": "Class", "type": "string", "jsonPath": ".spec.gatewayClassName"},
                 {"name": "Address", "type": "string", "jsonPath": ".status.addresses[*].value"},
                 _condition_column("Programmed", "Programmed")],
                ["gtw"])


def http_route_crd() -> Obj:
    backend = _backend_ref()
    backend["properties"]["filters"] = _list(_filter(), 16)
    rule = _obj(matches=_list(_match(), 64), filters=_list(_filter(), 16), backendRefs=_list(backend, 16))
    rule["properties"]["matches"]["default"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    spec = _obj(parentRefs=_list(_parent_ref(), 32), hostnames=_list(_hostname(), 16), rules=_list(rule, 16))
    spec["properties"]["rules"]["default"] = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]
    status = _obj(["parents"], parents=_route_parent_status())
    return _crd("HTTPRoute", "httproutes", "Namespaced", spec, status,
                [{"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"}])


def kinns_gateway_class() -> Obj:
    return {"apiVersion": API_VERSION, "kind": "GatewayClass", "metadata": {"name": CLASS_NAME},
            "spec": {"controllerName": CONTROLLER_NAME,
                     "description": "Gateways served by the ingress-nginx pods' nginx"}}


def crds() -> list[Obj]:
    return [gateway_class_crd(), gateway_crd(), http_route_crd()]


def gateway_api_objects() -> list[tuple[str, Obj]]:
    """(collection path, object) in creation order: the CRDs, then GatewayClass `kinns`."""
    return ([("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c) for c in crds()]
            + [(f"/apis/{API_VERSION}/gatewayclasses", kinns_gateway_class())])
