"""OpenAPI documents for kubectl, and strict field validation.

kubectl learns the shape of every kind from the server's OpenAPI:
`kubectl explain` prints its descriptions, client-side validation (`apply
--validate`, the default) checks manifests against it, and the PATCH
operations tell kubectl whether the server validates fields itself (the
`fieldValidation` query parameter).  Which document a client reads depends
on its age: current kubectl reads `/openapi/v3` (an index of group-versions,
then one OpenAPI 3.0 document per group-version), while 1.27-era kubectl
reads `/openapi/v2` and only in gnostic's protobuf encoding.

Division of labour: `schemas.py` loads the upstream type definitions (JSON
Schema dialect, shipped by `kubernetes-validate`), `resources.py` says which
kinds we serve.  This module turns the two into

* one neutral list of paths and operations per served resource (list,
  create, read, replace, patch, delete, deletecollection, watch, and the
  status/scale/log subresources),
* rendered as Swagger 2.0 JSON, as the same Swagger document in protobuf
  (`protobuf.py` writes the wire format), and as OpenAPI 3.0 per
  group-version with an index whose URLs carry a content hash, and
* `unknown_fields`, the walk behind `fieldValidation=Strict|Warn`.

Every document is built once (`functools.cache`) and returned as bytes so
the server can send it as is.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from . import protobuf as pb
from .resources import REGISTRY, ResourceType
from .schemas import SCHEMA_VERSION, definitions, ref_name

# Content type to answer /openapi/v2 with when the client asked for protobuf.
# Clients ask with the older `...spec.v2@v1.0+protobuf`, but `@` is not a
# valid media-type character and client-go rejects such an answer while
# parsing the Content-Type; upstream answers with the dotted form.
V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

_V2_REF = "#/definitions/"
_V3_REF = "#/components/schemas/"

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_WATCH_EVENT = _META + "WatchEvent"
_PATCH = _META + "Patch"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"

_PRODUCES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_PRODUCES_STREAM = _PRODUCES + ("application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


# --------------------------------------------------------------------------
# Schema conversion: the JSON Schema dialect of kubernetes-validate -> OpenAPI
# --------------------------------------------------------------------------

def _primary_type(types: Any) -> str | None:
    """`["object", "null"]` -> "object": OpenAPI 2 has one type and no null."""
    if isinstance(types, str):
        return types
    if isinstance(types, list):
        real = [t for t in types if t != "null"]
        return real[0] if real else None
    return None


def _one_of_as_string(options: list[Any]) -> dict[str, Any]:
    """IntOrString and Quantity arrive as `oneOf` of primitives; upstream
    serves them as strings (IntOrString with format int-or-string), which is
    what kubectl's validators and explain expect."""
    kinds = {_primary_type(o.get("type")) for o in options if isinstance(o, dict)}
    if kinds == {"string", "integer"}:
        return {"type": "string", "format": "int-or-string"}
    return {"type": "string"}


def _convert(schema: Any, v3: bool, prop: str = "") -> Any:
    """Convert one schema node; `prop` is the property name it sits under."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema":
            continue
        if key == "$ref":
            continue  # handled below, with its siblings
        if key == "type":
            t = _primary_type(value)
            if t:
                out["type"] = t
        elif key == "oneOf":
            out.update(_one_of_as_string(value))
        elif key == "enum" and prop in ("apiVersion", "kind") and len(value) == 1:
            continue  # added by kubernetes-validate; upstream has no such enum
        elif key == "properties":
            out["properties"] = {k: _convert(v, v3, k) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = [_convert(v, v3) for v in value] if isinstance(value, list) else _convert(value, v3)
        elif key in ("allOf", "anyOf"):
            out[key] = [_convert(v, v3) for v in value]
        else:
            out[key] = value
    if not v3:
        out.pop("anyOf", None)
        out.pop("not", None)
    if "$ref" in schema:
        target = (_V3_REF if v3 else _V2_REF) + ref_name(schema["$ref"])
        if not out:
            return {"$ref": target}
        if v3:
            # OpenAPI 3.0 ignores siblings of $ref; upstream wraps the ref in
            # allOf so the field's own description survives.
            return {"allOf": [{"$ref": target}], **out}
        return {"$ref": target, **out}
    return out


def _refs(schema: Any) -> Iterable[str]:
    """Names of all definitions a raw schema refers to directly."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield ref_name(value)
            elif key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    yield from _refs(sub)
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _closure(roots: Iterable[str]) -> list[str]:
    """The given definitions plus everything they reach, in a stable order."""
    defs = definitions()
    seen: set[str] = set()
    stack = [r for r in roots if r in defs]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(r for r in _refs(defs[name]) if r in defs and r not in seen)
    return sorted(seen)


# --------------------------------------------------------------------------
# Paths and operations, independent of the OpenAPI version
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Param:
    name: str
    where: str  # "path" | "query" | "body"
    description: str
    type: str = "string"
    required: bool = False
    schema: str = ""  # body parameters: definition name


@dataclass
class _Op:
    method: str
    op_id: str
    action: str
    description: str
    gvk: dict[str, str]
    tag: str
    params: list[_Param]
    responses: dict[str, str]  # status code -> definition name ("" = plain string)
    consumes: tuple[str, ...] = ("*/*",)
    produces: tuple[str, ...] = _PRODUCES
    has_body: bool = False


@dataclass
class _Path:
    path: str
    params: list[_Param]
    ops: list[_Op] = field(default_factory=list)


_PRETTY = _Param("pretty", "query", "If 'true', the output is pretty printed.")
_DRY_RUN = _Param("dryRun", "query",
                  "When present, the changes are not persisted. Valid value: All (run every dry-run stage).")
_FIELD_MANAGER = _Param("fieldManager", "query",
                        "The name of the actor making these changes, recorded in managedFields. "
                        "Required for apply patches; at most 128 printable characters.")
_FIELD_VALIDATION = _Param(
    "fieldValidation", "query",
    "How the server treats unknown or duplicate fields in the request body. Ignore: drop them silently. "
    "Warn: drop them and report each in a Warning header. Strict: reject the request with a "
    "BadRequest error naming them.")
_FORCE = _Param("force", "query",
                "Force an apply patch to take over fields owned by other managers. Only for apply patches.",
                type="boolean")
_NAMESPACE = _Param("namespace", "path", "object name and auth scope, such as for teams and projects",
                    required=True)
_LIST_PARAMS = [
    _Param("allowWatchBookmarks", "query", "Ask for BOOKMARK watch events; the server may ignore it.",
           type="boolean"),
    _Param("continue", "query", "The continue token of a previous, limited list, to fetch the next chunk."),
    _Param("fieldSelector", "query", "Restrict the returned objects by their fields."),
    _Param("labelSelector", "query", "Restrict the returned objects by their labels."),
    _Param("limit", "query", "The maximum number of objects to return in one chunk.", type="integer"),
    _Param("resourceVersion", "query", "The resource version the list or watch starts from."),
    _Param("resourceVersionMatch", "query", "How resourceVersion applies to list calls."),
    _Param("sendInitialEvents", "query",
           "With watch: send the current state as synthetic ADDED events first, then a bookmark.",
           type="boolean"),
    _Param("timeoutSeconds", "query", "Timeout for the list or watch call.", type="integer"),
    _Param("watch", "query", "Watch for changes instead of listing.", type="boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _Param("gracePeriodSeconds", "query", "Seconds before the object is deleted; 0 means immediately.",
           type="integer"),
    _Param("orphanDependents", "query", "Deprecated: use propagationPolicy.", type="boolean"),
    _Param("propagationPolicy", "query", "Whether and how dependents are garbage collected: "
                                         "Orphan, Background or Foreground."),
]


def _tag(rt: ResourceType) -> str:
    return f"{(rt.group or 'core').removesuffix('.k8s.io').replace('.', '_')}_{rt.version}"


def _op_prefix(rt: ResourceType) -> str:
    """`apps`/`v1` -> `AppsV1`, `discovery.k8s.io` -> `DiscoveryV1`, core -> `CoreV1`."""
    group = (rt.group or "core").removesuffix(".k8s.io")
    return "".join(p[:1].upper() + p[1:] for p in group.split(".")) + rt.version[:1].upper() + rt.version[1:]


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "kind": rt.kind, "version": rt.version}


def _body(schema: str) -> _Param:
    return _Param("body", "body", "", required=True, schema=schema)


def _resource_paths(rt: ResourceType) -> list[_Path]:
    """Every path upstream serves for one resource, with its operations."""
    if not rt.schema:   # answered, not stored, no published type (metrics.k8s.io): nothing to describe
        return []
    kind, schema, tag, gvk = rt.kind, rt.schema, _tag(rt), _gvk(rt)
    list_schema = schema + "List"
    ns = "Namespaced" if rt.namespaced else ""
    p = _op_prefix(rt)
    base = rt.path_prefix()
    scope = [_NAMESPACE] if rt.namespaced else []
    coll = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    watch_coll = (f"{base}/watch/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced
                  else f"{base}/watch/{rt.plural}")
    name = _Param("name", "path", f"name of the {kind}", required=True)
    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]

    def op(method: str, verb: str, suffix: str, action: str, desc: str, params: list[_Param],
           responses: dict[str, str], **kw: Any) -> _Op:
        return _Op(method, f"{verb}{p}{ns}{kind}{suffix}", action, desc, gvk, tag, params, responses, **kw)

    if rt.verbs == ("create",):   # the review kinds: a POST answered, nothing stored
        return [_Path(coll, scope + [_PRETTY], [
            op("post", "create", "", "post", f"create a {kind}", [_body(schema)] + write,
               {"200": schema, "201": schema, "202": schema}, has_body=True)])]
    paths = [
        _Path(coll, scope + [_PRETTY], [
            op("get", "list", "", "list", f"list or watch objects of kind {kind}", _LIST_PARAMS,
               {"200": list_schema}, produces=_PRODUCES_STREAM),
            op("post", "create", "", "post", f"create a {kind}", [_body(schema)] + write,
               {"200": schema, "201": schema, "202": schema}, has_body=True),
            op("delete", "delete", "", "deletecollection", f"delete collection of {kind}",
               [_body(_DELETE_OPTIONS)] + _DELETE_PARAMS + _LIST_PARAMS[:-1], {"200": _STATUS},
               has_body=True),
        ]),
        _Path(coll + "/{name}", [name] + scope + [_PRETTY], [
            op("get", "read", "", "get", f"read the specified {kind}", [], {"200": schema}),
            op("put", "replace", "", "put", f"replace the specified {kind}", [_body(schema)] + write,
               {"200": schema, "201": schema}, has_body=True),
            op("patch", "patch", "", "patch", f"partially update the specified {kind}",
               [_body(_PATCH)] + write + [_FORCE], {"200": schema, "201": schema},
               consumes=_PATCH_TYPES, has_body=True),
            op("delete", "delete", "", "delete", f"delete a {kind}", [_body(_DELETE_OPTIONS)] + _DELETE_PARAMS,
               {"200": _STATUS, "202": _STATUS}, has_body=True),
        ]),
        _Path(watch_coll, scope + _LIST_PARAMS + [_PRETTY], [
            op("get", "watch", "List", "watchlist",
               f"watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter "
               "with a list operation instead.", [], {"200": _WATCH_EVENT}, produces=_PRODUCES_STREAM),
        ]),
        _Path(watch_coll + "/{name}", [name] + scope + _LIST_PARAMS + [_PRETTY], [
            op("get", "watch", "", "watch",
               f"watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a "
               "list operation instead, filtered to a single item with the 'fieldSelector' parameter.",
               [], {"200": _WATCH_EVENT}, produces=_PRODUCES_STREAM),
        ]),
    ]
    if rt.namespaced:
        all_ns = f"{p}{kind}"
        paths.append(_Path(f"{base}/{rt.plural}", _LIST_PARAMS + [_PRETTY], [
            _Op("get", f"list{all_ns}ForAllNamespaces", "list", f"list or watch objects of kind {kind}", gvk,
                tag, [], {"200": list_schema}, produces=_PRODUCES_STREAM)]))
        paths.append(_Path(f"{base}/watch/{rt.plural}", _LIST_PARAMS + [_PRETTY], [
            _Op("get", f"watch{all_ns}ListForAllNamespaces", "watchlist",
                f"watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter "
                "with a list operation instead.", gvk, tag, [], {"200": _WATCH_EVENT},
                produces=_PRODUCES_STREAM)]))

    for sub in rt.subresources:
        if sub == "status":
            sub_schema, sub_gvk, what = schema, gvk, f"status of the specified {kind}"
        elif sub == "scale":
            sub_schema, sub_gvk = _SCALE, {"group": "autoscaling", "kind": "Scale", "version": "v1"}
            what = f"scale of the specified {kind}"
        elif sub == "log":
            paths.append(_Path(f"{coll}/{{name}}/log", [name] + scope + [_PRETTY], [
                op("get", "read", "Log", "get", f"read log of the specified {kind}", [
                    _Param("container", "query", "The container whose logs to stream."),
                    _Param("follow", "query", "Follow the log stream.", type="boolean"),
                    _Param("previous", "query", "Return the previous terminated container's logs.",
                           type="boolean"),
                    _Param("sinceSeconds", "query", "Only logs newer than this many seconds.", type="integer"),
                    _Param("tailLines", "query", "Number of lines from the end to show.", type="integer"),
                    _Param("timestamps", "query", "Prefix each line with its timestamp.", type="boolean"),
                ], {"200": ""}, produces=("text/plain", "application/json", "application/yaml",
                                          "application/vnd.kubernetes.protobuf"))]))
            continue
        else:
            continue  # connect-style subresources (exec, proxy, ...) have no schema to describe
        suffix = sub.capitalize()
        sub_ops = [
            _Op("get", f"read{p}{ns}{kind}{suffix}", "get", f"read {what}", sub_gvk, tag, [], {"200": sub_schema}),
            _Op("put", f"replace{p}{ns}{kind}{suffix}", "put", f"replace {what}", sub_gvk, tag,
                [_body(sub_schema)] + write, {"200": sub_schema, "201": sub_schema}, has_body=True),
            _Op("patch", f"patch{p}{ns}{kind}{suffix}", "patch", f"partially update {what}", sub_gvk, tag,
                [_body(_PATCH)] + write + [_FORCE], {"200": sub_schema, "201": sub_schema},
                consumes=_PATCH_TYPES, has_body=True),
        ]
        paths.append(_Path(f"{coll}/{{name}}/{sub}", [name] + scope + [_PRETTY], sub_ops))
    return paths


@functools.cache
def _all_paths() -> tuple[_Path, ...]:
    return tuple(p for rt in REGISTRY.types for p in _resource_paths(rt))


def _schema_roots(types: Iterable[ResourceType]) -> list[str]:
    """Definitions the paths of `types` refer to; `_closure` adds the rest."""
    roots = [_STATUS, _DELETE_OPTIONS, _WATCH_EVENT, _PATCH]
    for rt in types:
        roots += [rt.schema] if rt.verbs == ("create",) else [rt.schema, rt.schema + "List"]
        if "scale" in rt.subresources:
            roots.append(_SCALE)
    return roots


def _info() -> dict[str, str]:
    return {"title": "Kubernetes", "version": SCHEMA_VERSION}


# --------------------------------------------------------------------------
# Swagger 2.0
# --------------------------------------------------------------------------

def _v2_param(prm: _Param) -> dict[str, Any]:
    if prm.where == "body":
        return {"in": "body", "name": prm.name, "required": True, "schema": {"$ref": _V2_REF + prm.schema}}
    out: dict[str, Any] = {"description": prm.description, "in": prm.where, "name": prm.name}
    if prm.required:
        out["required"] = True
    out["type"] = prm.type
    out["uniqueItems"] = True
    return out


def _v2_op(o: _Op) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, schema in o.responses.items():
        body = {"$ref": _V2_REF + schema} if schema else {"type": "string"}
        responses[code] = {"description": {"200": "OK", "201": "Created", "202": "Accepted"}[code],
                           "schema": body}
    responses["401"] = {"description": "Unauthorized"}
    out: dict[str, Any] = {
        "consumes": list(o.consumes),
        "description": o.description,
        "operationId": o.op_id,
        "parameters": [_v2_param(p) for p in o.params],
        "produces": list(o.produces),
        "responses": responses,
        "schemes": ["https"],
        "tags": [o.tag],
        "x-kubernetes-action": o.action,
        "x-kubernetes-group-version-kind": o.gvk,
    }
    if not out["parameters"]:
        del out["parameters"]
    return out


@functools.cache
def _v2_document() -> dict[str, Any]:
    defs = definitions()
    paths: dict[str, Any] = {}
    for path in _all_paths():
        item: dict[str, Any] = {o.method: _v2_op(o) for o in path.ops}
        item["parameters"] = [_v2_param(p) for p in path.params]
        paths[path.path] = item
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": paths,
        "definitions": {name: _convert(defs[name], v3=False) for name in _closure(_schema_roots(REGISTRY.types))},
        "securityDefinitions": {
            "BearerToken": {"description": "Bearer Token authentication", "in": "header",
                            "name": "authorization", "type": "apiKey"},
        },
        "security": [{"BearerToken": []}],
    }


@functools.cache
def openapi_v2_json() -> bytes:
    """The Swagger 2.0 document served at /openapi/v2 as JSON."""
    return json.dumps(_v2_document(), separators=(",", ":")).encode()


# --------------------------------------------------------------------------
# Swagger 2.0 as gnostic's openapi.v2.Document protobuf
# --------------------------------------------------------------------------
# Field numbers follow google/gnostic openapiv2/OpenAPIv2.proto.

def _pb_any(value: Any) -> bytes:
    """gnostic's Any: field 2 holds the value as YAML text."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1 << 20)
    if text.endswith("\n...\n"):
        text = text[: -len("...\n")]
    return pb.string(2, text)


def _pb_extensions(fieldno: int, node: dict[str, Any]) -> bytes:
    """Vendor extensions (keys starting with x-) as repeated NamedAny."""
    return b"".join(
        pb.message(fieldno, pb.string(1, k) + pb.message(2, _pb_any(v)))
        for k, v in node.items() if k.startswith("x-")
    )


def _pb_schema(s: dict[str, Any]) -> bytes:
    out = [
        pb.string_opt(1, s.get("$ref")),
        pb.string_opt(2, s.get("format")),
        pb.string_opt(3, s.get("title")),
        pb.string_opt(4, s.get("description")),
    ]
    if "default" in s:
        out.append(pb.message(5, _pb_any(s["default"])))
    out += [
        pb.double_opt(6, s.get("multipleOf")),
        pb.double_opt(7, s.get("maximum")),
        pb.boolean_opt(8, s.get("exclusiveMaximum")),
        pb.double_opt(9, s.get("minimum")),
        pb.boolean_opt(10, s.get("exclusiveMinimum")),
        pb.integer_opt(11, s.get("maxLength")),
        pb.integer_opt(12, s.get("minLength")),
        pb.string_opt(13, s.get("pattern")),
        pb.integer_opt(14, s.get("maxItems")),
        pb.integer_opt(15, s.get("minItems")),
        pb.boolean_opt(16, s.get("uniqueItems")),
        pb.integer_opt(17, s.get("maxProperties")),
        pb.integer_opt(18, s.get("minProperties")),
        pb.strings(19, s.get("required")),
    ]
    out += [pb.message(20, _pb_any(v)) for v in s.get("enum", ())]
    if "additionalProperties" in s:
        ap = s["additionalProperties"]
        inner = pb.boolean(2, ap) if isinstance(ap, bool) else pb.message(1, _pb_schema(ap))
        out.append(pb.message(21, inner))
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out.append(pb.message(22, pb.strings(1, types)))
    if "items" in s:
        items = s["items"] if isinstance(s["items"], list) else [s["items"]]
        out.append(pb.message(23, b"".join(pb.message(1, _pb_schema(i)) for i in items)))
    out += [pb.message(24, _pb_schema(a)) for a in s.get("allOf", ())]
    if "properties" in s:
        props = b"".join(pb.message(1, pb.string(1, k) + pb.message(2, _pb_schema(v)))
                         for k, v in s["properties"].items())
        out.append(pb.message(25, props))
    out += [pb.string_opt(26, s.get("discriminator")), pb.boolean_opt(27, s.get("readOnly"))]
    if "example" in s:
        out.append(pb.message(30, _pb_any(s["example"])))
    out.append(_pb_extensions(31, s))
    return b"".join(out)


def _pb_parameter(prm: dict[str, Any]) -> bytes:
    """One ParametersItem: body parameter, or a path/query sub-schema."""
    if prm["in"] == "body":
        body = (pb.string_opt(1, prm.get("description")) + pb.string(2, prm["name"]) + pb.string(3, "body")
                + pb.boolean_opt(4, prm.get("required")) + pb.message(5, _pb_schema(prm["schema"])))
        parameter = pb.message(1, body)
    else:
        common = (pb.boolean_opt(1, prm.get("required")) + pb.string(2, prm["in"])
                  + pb.string_opt(3, prm.get("description")) + pb.string(4, prm["name"]))
        if prm["in"] == "query":  # QueryParameterSubSchema
            sub = pb.message(3, common + pb.string_opt(6, prm.get("type"))
                             + pb.boolean_opt(20, prm.get("uniqueItems")))
        else:  # PathParameterSubSchema
            sub = pb.message(4, common + pb.string_opt(5, prm.get("type"))
                             + pb.boolean_opt(19, prm.get("uniqueItems")))
        parameter = pb.message(2, sub)
    return pb.message(1, parameter)


def _pb_operation(o: dict[str, Any]) -> bytes:
    responses = b"".join(
        pb.message(1, pb.string(1, code) + pb.message(2, pb.message(1, (
            pb.string(1, r["description"])
            + (pb.message(2, pb.message(1, _pb_schema(r["schema"]))) if "schema" in r else b"")))))
        for code, r in o["responses"].items()
    )
    return b"".join([
        pb.strings(1, o.get("tags")),
        pb.string_opt(3, o.get("description")),
        pb.string_opt(5, o.get("operationId")),
        pb.strings(6, o.get("produces")),
        pb.strings(7, o.get("consumes")),
        b"".join(pb.message(8, _pb_parameter(p)) for p in o.get("parameters", ())),
        pb.message(9, responses),
        pb.strings(10, o.get("schemes")),
        _pb_extensions(13, o),
    ])


_PB_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _pb_path_item(item: dict[str, Any]) -> bytes:
    out = [pb.message(_PB_METHODS[m], _pb_operation(item[m])) for m in _PB_METHODS if m in item]
    out += [pb.message(9, _pb_parameter(p)) for p in item.get("parameters", ())]
    return b"".join(out)


@functools.cache
def openapi_v2_protobuf() -> bytes:
    """The v2 document as gnostic's `openapi.v2.Document`, for kubectl <= 1.27
    (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf);
    answer with `V2_PROTOBUF_CONTENT_TYPE`."""
    return _pb_document(_v2_document())


def _pb_document(doc: dict[str, Any]) -> bytes:
    """Encode a Swagger 2.0 document shaped like `_v2_document()`'s."""
    info = pb.string(1, doc["info"]["title"]) + pb.string(2, doc["info"]["version"])
    paths = b"".join(pb.message(2, pb.string(1, name) + pb.message(2, _pb_path_item(item)))
                     for name, item in doc["paths"].items())
    defs = b"".join(pb.message(1, pb.string(1, name) + pb.message(2, _pb_schema(s)))
                    for name, s in doc["definitions"].items())
    security = b"".join(
        pb.message(12, b"".join(pb.message(1, pb.string(1, name) + pb.message(2, pb.strings(1, scopes)))
                                for name, scopes in req.items()))
        for req in doc["security"])
    sec_defs = b"".join(
        pb.message(1, pb.string(1, name) + pb.message(2, pb.message(2, (  # ApiKeySecurity
            pb.string(1, d["type"]) + pb.string(2, d["name"]) + pb.string(3, d["in"])
            + pb.string_opt(4, d.get("description"))))))
        for name, d in doc["securityDefinitions"].items())
    return b"".join([
        pb.string(1, doc["swagger"]),
        pb.message(2, info),
        pb.message(8, paths),
        pb.message(9, defs),
        security,
        pb.message(13, sec_defs),
    ])


# --------------------------------------------------------------------------
# OpenAPI 3.0, one document per group-version
# --------------------------------------------------------------------------

def _v3_param(prm: _Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": prm.name, "in": prm.where, "description": prm.description}
    if prm.required:
        out["required"] = True
    out["schema"] = {"type": prm.type, "uniqueItems": True}
    return out


def _v3_op(o: _Op) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, schema in o.responses.items():
        body = {"$ref": _V3_REF + schema} if schema else {"type": "string"}
        responses[code] = {
            "description": {"200": "OK", "201": "Created", "202": "Accepted"}[code],
            "content": {mt: {"schema": body} for mt in o.produces},
        }
    responses["401"] = {"description": "Unauthorized"}
    out: dict[str, Any] = {
        "tags": [o.tag],
        "description": o.description,
        "operationId": o.op_id,
        "parameters": [_v3_param(p) for p in o.params if p.where != "body"],
    }
    body_param = next((p for p in o.params if p.where == "body"), None)
    if body_param is not None:
        out["requestBody"] = {
            "content": {mt: {"schema": {"$ref": _V3_REF + body_param.schema}} for mt in o.consumes},
            "required": o.method != "delete",
        }
    out["responses"] = responses
    out["x-kubernetes-action"] = o.action
    out["x-kubernetes-group-version-kind"] = o.gvk
    if not out["parameters"]:
        del out["parameters"]
    return out


def _v3_doc(paths: dict[str, Any], roots: Iterable[str]) -> bytes:
    defs = definitions()
    doc = {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": paths,
        "components": {
            "schemas": {name: _convert(defs[name], v3=True) for name in _closure(roots)},
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _gv_key(rt: ResourceType) -> str:
    return f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"


def _discovery_doc(path: str, op_id: str, schema: str) -> bytes:
    op = {
        "tags": ["core" if path == "/api/" else "apis"],
        "description": "get available API versions" if path == "/api/" else "get available API groups",
        "operationId": op_id,
        "responses": {"200": {"description": "OK", "content": {
            mt: {"schema": {"$ref": _V3_REF + schema}} for mt in _PRODUCES}},
            "401": {"description": "Unauthorized"}},
    }
    return _v3_doc({path: {"get": op}}, [schema])


@functools.cache
def _v3_documents() -> dict[str, bytes]:
    docs: dict[str, bytes] = {
        "api": _discovery_doc("/api/", "getCoreAPIVersions", _META + "APIVersions"),
        "apis": _discovery_doc("/apis/", "getAPIVersions", _META + "APIGroupList"),
    }
    by_gv: dict[str, list[ResourceType]] = {}
    for rt in REGISTRY.types:
        by_gv.setdefault(_gv_key(rt), []).append(rt)
    for key, types in by_gv.items():
        paths: dict[str, Any] = {}
        for rt in types:
            for path in _resource_paths(rt):
                item: dict[str, Any] = {o.method: _v3_op(o) for o in path.ops}
                item["parameters"] = [_v3_param(p) for p in path.params]
                paths[path.path] = item
        docs[key] = _v3_doc(paths, _schema_roots(types))
    return docs


def _hash(body: bytes) -> str:
    """Upstream-style content hash: upper-case hex of SHA-512."""
    return hashlib.sha512(body).hexdigest().upper()


@functools.cache
def _v3_index() -> dict[str, Any]:
    return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(body)}"}
                      for key, body in _v3_documents().items()}}


def openapi_v3_index() -> dict[str, Any]:
    """The /openapi/v3 index: group-version path -> URL carrying the content
    hash.  kubectl caches each document by that URL, so the hash changes
    exactly when the document does.  A fresh copy: callers may mutate it."""
    index = _v3_index()
    return {"paths": {k: dict(v) for k, v in index["paths"].items()}}


def openapi_v3_document(path: str) -> bytes | None:
    """The OpenAPI 3.0 document of one group-version ("api/v1", "apis/apps/v1",
    also "api" and "apis"), or None when we serve no such group-version."""
    return _v3_documents().get(path.strip("/"))


# --------------------------------------------------------------------------
# Strict field validation
# --------------------------------------------------------------------------

def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    defs = definitions()
    seen = 0
    while "$ref" in schema and seen < 32:
        schema = defs.get(ref_name(schema["$ref"]), {})
        seen += 1
    return schema


def _walk(value: Any, schema: dict[str, Any], path: str, out: list[str]) -> None:
    schema = _resolve(schema)
    if value is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and not isinstance(extra, dict):
            return  # free-form object (RawExtension, FieldsV1, ...)
        for key, sub in value.items():
            sub_path = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(sub, props[key], sub_path, out)
            elif isinstance(extra, dict):
                _walk(sub, extra, sub_path, out)
            elif extra is not True:
                out.append(f'unknown field "{sub_path}"')
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, sub in enumerate(value):
                _walk(sub, items, f"{path}[{i}]", out)


def unknown_fields(obj: dict[str, Any], schema: str) -> list[str]:
    """Fields of `obj` that definition `schema` does not declare, worded as
    upstream's strict decoding errors (`unknown field "spec.foo"`), in
    document order.  The REST layer joins them for fieldValidation=Strict or
    turns each into a Warning header for Warn."""
    root = definitions().get(schema)
    if root is None:
        return []
    out: list[str] = []
    _walk(obj, root, "", out)
    return out
