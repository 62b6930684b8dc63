"""OpenAPI for custom resources: what `kubectl explain` and client-side validation read.

Upstream's apiextensions builder (pkg/controller/openapi/builder) publishes
every served CRD version twice: into `/openapi/v3/apis/<group>/<version>`
and merged into the aggregated `/openapi/v2`.  Each gets a definition named
after the kind (`com.example.stable.v1.CronTab`, the group reversed) built
from the CRD's structural schema, with `apiVersion`, `kind` and a reference
to ObjectMeta added, a `...List` definition, and the usual paths.  Two
details matter to kubectl:

* PATCH operations accept JSON patch, merge patch and apply patch but not
  strategic merge patch, so `kubectl apply` sends merge patches to custom
  resources (as against kind);
* the write operations list the `fieldValidation` parameter, so kubectl
  1.27+ leaves unknown-field checks to the server.

The v2 variant is the schema made palatable to old kubectl validation
(ToStructuralOpenAPIV2): no junctors, nullable and preserve-unknown-fields
nodes left untyped.  Paths and the built-in definitions come from
openapi.py; this module only adds the custom parts and serves them from the
routes `serve` answers.  Documents are cached by the content of the kinds.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Iterable

from . import openapi as oa
from . import structural as st
from .request import Request, Response
from .resources import ResourceType
from .schemas import definitions

Obj = dict[str, Any]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_OBJECT_META = _META + "ObjectMeta"
_LIST_META = _META + "ListMeta"
_CRD_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_CRD_PRODUCES = ("application/json", "application/yaml")
_CRD_PRODUCES_STREAM = _CRD_PRODUCES + ("application/json;stream=watch",)
_METADATA_DOC = ("Standard object's metadata. More info: "
                 "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
_LIST_METADATA_DOC = ("Standard list metadata. More info: "
                      "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")

_CACHE: dict[str, Any] = {}
_CACHE_SIZE = 8


def _type_meta() -> dict[str, Obj]:
    """apiVersion and kind as TypeMeta describes them."""
    props = definitions()["io.k8s.api.core.v1.ConfigMap"]["properties"]
    return {k: {"description": props[k]["description"], "type": "string"} for k in ("apiVersion", "kind")}


def _ref(name: str, v3: bool, description: str) -> Obj:
    target = ("#/components/schemas/" if v3 else "#/definitions/") + name
    if v3:
        return {"allOf": [{"$ref": target}], "description": description}
    return {"$ref": target, "description": description}


def _gvk(rt: ResourceType, kind: str) -> list[Obj]:
    return [{"group": rt.group, "kind": kind, "version": rt.version}]


def _v2_structural(s: Obj) -> Obj:
    """ToStructuralOpenAPIV2: what kubectl's v2 validation can digest."""
    out = {k: v for k, v in s.items() if k not in ("allOf", "anyOf", "oneOf", "not")}
    if out.get("nullable"):
        for k in ("type", "nullable", "items", "properties"):
            out.pop(k, None)
    if st.preserves_unknown(out):
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("type") == "array" and "items" not in out:
        out.pop("type", None)
    if isinstance(out.get("items"), dict):
        out["items"] = _v2_structural(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _v2_structural(out["additionalProperties"])
    if isinstance(out.get("properties"), dict):
        props = {k: _v2_structural(v) for k, v in out["properties"].items() if isinstance(v, dict)}
        nullable = {k for k, v in out["properties"].items() if isinstance(v, dict) and v.get("nullable")}
        if nullable and isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"] if r not in nullable] or None
            if out["required"] is None:
                del out["required"]
        out["properties"] = props
    return out


def _embedded_meta(s: Obj, v3: bool) -> Obj:
    """Embedded resources get apiVersion, kind and metadata spelled out."""
    out = dict(s)
    for key in ("properties",):
        if isinstance(out.get(key), dict):
            out[key] = {k: _embedded_meta(v, v3) if isinstance(v, dict) else v for k, v in out[key].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _embedded_meta(out["items"], v3)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _embedded_meta(out["additionalProperties"], v3)
    if st.embedded(s) and not (not v3 and st.preserves_unknown(s)):
        props = dict(out.get("properties") or {})
        props.update(_type_meta())
        props["metadata"] = _ref(_OBJECT_META, v3, _METADATA_DOC)
        out["properties"] = props
        required = list(out.get("required") or [])
        out["required"] = required + [k for k in ("kind", "apiVersion") if k not in required]
    return out


def kind_schema(rt: ResourceType, v3: bool) -> Obj:
    """The definition of a custom kind (buildKubeNative)."""
    custom = rt.custom
    schema = custom.schema if custom is not None else None
    if schema is None or (not v3 and st.preserves_unknown(schema)):
        out: Obj = {"type": "object"}
    else:
        s = st.unfold(copy.deepcopy(schema))
        if not v3:
            s = _v2_structural(s)
        out = _embedded_meta(s, v3)
        props = dict(out.get("properties") or {})
        props["metadata"] = _ref(_OBJECT_META, v3, _METADATA_DOC)
        props.update(_type_meta())
        out["properties"] = dict(sorted(props.items()))
    out["x-kubernetes-group-version-kind"] = _gvk(rt, rt.kind)
    return out


def list_schema(rt: ResourceType, v3: bool) -> Obj:
    name = rt.schema
    items_ref = ("#/components/schemas/" if v3 else "#/definitions/") + name
    return {
        "description": f"{rt.list_kind} is a list of {rt.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": _type_meta()["apiVersion"],
            "items": {"description": f"List of {rt.plural}. More info: "
                                     "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                      "type": "array", "items": {"$ref": items_ref}},
            "kind": _type_meta()["kind"],
            "metadata": _ref(_LIST_META, v3, _LIST_METADATA_DOC),
        },
        "type": "object",
        "x-kubernetes-group-version-kind": _gvk(rt, rt.list_kind),
    }


def _tag(rt: ResourceType) -> str:
    parts = rt.group.split(".")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + "_" + rt.version


def _paths(rt: ResourceType) -> list[Any]:
    """openapi.py's paths for the kind, adjusted as the CRD builder has them."""
    out = []
    for path in oa._resource_paths(rt):
        if "/watch/" in path.path:
            continue  # the CRD builder publishes no watch paths
        for op in path.ops:
            op.tag = _tag(rt)
            streaming = op.action in ("list", "watchlist", "watch")
            op.produces = _CRD_PRODUCES_STREAM if streaming else _CRD_PRODUCES
            op.consumes = _CRD_PATCH_TYPES if op.method == "patch" else _CRD_PRODUCES
        out.append(path)
    return out


def _key(types: Iterable[ResourceType]) -> str:
    parts = []
    for rt in types:
        c = rt.custom
        parts.append([rt.group, rt.version, rt.kind, rt.plural, rt.namespaced, list(rt.subresources),
                      c.schema if c is not None else None])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _cached(key: str, build: Any) -> Any:
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = build()
    return _CACHE[key]


def _roots(types: Iterable[ResourceType]) -> list[str]:
    return oa._schema_roots([]) + ([oa._SCALE] if any("scale" in rt.subresources for rt in types) else []) + [
        _OBJECT_META, _LIST_META]


def v3_documents(types: list[ResourceType]) -> dict[str, bytes]:
    """`apis/<group>/<version>` -> the OpenAPI 3.0 document of the custom kinds served there."""
    def build() -> dict[str, bytes]:
        by_gv: dict[str, list[ResourceType]] = {}
        for rt in types:
            by_gv.setdefault(f"apis/{rt.group}/{rt.version}", []).append(rt)
        docs: dict[str, bytes] = {}
        defs = definitions()
        for key, gv_types in by_gv.items():
            paths: dict[str, Any] = {}
            schemas: dict[str, Any] = {name: oa._convert(defs[name], v3=True) for name in oa._closure(_roots(gv_types))}
            for rt in gv_types:
                for path in _paths(rt):
                    item: dict[str, Any] = {o.method: oa._v3_op(o) for o in path.ops}
                    item["parameters"] = [oa._v3_param(p) for p in path.params]
                    paths[path.path] = item
                schemas[rt.schema] = kind_schema(rt, v3=True)
                schemas[rt.schema + "List"] = list_schema(rt, v3=True)
            doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
                   "paths": paths,
                   "components": {"schemas": dict(sorted(schemas.items())),
                                  "securitySchemes": {"BearerToken": {
                                      "type": "apiKey", "description": "Bearer Token authentication",
                                      "name": "authorization", "in": "header"}}},
                   "security": [{"BearerToken": []}]}
            docs[key] = json.dumps(doc, separators=(",", ":")).encode()
        return docs
    result: dict[str, bytes] = _cached("v3" + _key(types), build)
    return result


def _v2_merged(types: list[ResourceType]) -> Obj:
    base = oa._v2_document()
    paths = dict(base["paths"])
    defs = dict(base["definitions"])
    all_defs = definitions()
    for name in oa._closure(_roots(types)):
        defs.setdefault(name, oa._convert(all_defs[name], v3=False))
    for rt in types:
        for path in _paths(rt):
            item: dict[str, Any] = {o.method: oa._v2_op(o) for o in path.ops}
            item["parameters"] = [oa._v2_param(p) for p in path.params]
            paths[path.path] = item
        defs[rt.schema] = kind_schema(rt, v3=False)
        defs[rt.schema + "List"] = list_schema(rt, v3=False)
    return {**base, "paths": paths, "definitions": defs}


def serve(req: Request, rest: list[str], types: list[ResourceType]) -> Response | None:
    """Answer the /openapi routes that involve custom kinds; None leaves the
    request to the built-in documents."""
    if not types:
        return None
    if rest == ["v2"]:
        if "protobuf" in req.header("accept"):
            body: bytes = _cached("v2pb" + _key(types), lambda: oa._pb_document(_v2_merged(types)))
            return Response(raw=body, content_type=oa.V2_PROTOBUF_CONTENT_TYPE)
        raw: bytes = _cached("v2json" + _key(types),
                             lambda: json.dumps(_v2_merged(types), separators=(",", ":")).encode())
        return Response(raw=raw)
    docs = v3_documents(types)
    if rest == ["v3"]:
        index = oa.openapi_v3_index()
        for key, doc in sorted(docs.items()):
            index["paths"][key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={oa._hash(doc)}"}
        return Response(obj=index)
    if len(rest) > 1 and rest[0] == "v3":
        found = docs.get("/".join(rest[1:]).strip("/"))
        if found is not None:
            return Response(raw=found)
    return None
