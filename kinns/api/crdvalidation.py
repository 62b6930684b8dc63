"""CustomResourceDefinition objects: defaults and validation, as apiextensions does them.

A CRD is refused before anything is served for it when its names, versions,
scope, subresources, printer columns or schemas are wrong, with the
messages of apiextensions-apiserver/pkg/apis/apiextensions/validation
(v1.32), e.g.

    spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must have exactly one version marked as storage version
    spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields

Upstream validates its internal form, into which a v1 CRD is converted by
hoisting what all versions share: when every version carries the same
schema (always so with one version) the schema is checked as
`spec.validation.openAPIV3Schema`, the same for `spec.subresources` and
`spec.additionalPrinterColumns`; otherwise per version.  `_Layout` keeps
that bookkeeping so error paths read as upstream's.

Public: `default_crd`, `validate_crd`, `validate_crd_update` (`update_errors`),
`schema_for_version`, `subresources_for_version`, `columns_for_version`,
`is_established`.  Structural rules and pruning are `structural.py`'s;
value checks (used for defaults here) are `crvalidation.py`'s.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from . import structural as st
from .crvalidation import go_quote, validate_value
from .errors import DUPLICATE, FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, TOO_MANY, FieldError
from .validation import is_dns1035_label, is_dns1123_subdomain

Obj = dict[str, Any]
Errs = list[FieldError]

FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"
PRINTER_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")
MAX_SELECTABLE_FIELDS = 8
# JSON names of the schema fields allowed at the root when status is a subresource.
_ROOT_FIELDS_WITH_STATUS = frozenset({
    "description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "required", "items",
    "properties", "externalDocs", "example", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations"})
_ROOT_FIELDS_GO = ("[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength "
                   "MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs "
                   "Example XPreserveUnknownFields XValidations]")
_UNSUPPORTED_SCHEMA_FIELDS = (("id", "id is not supported"), ("additionalItems", "additionalItems is not supported"),
                              ("patternProperties", "patternProperties is not supported"),
                              ("definitions", "definitions is not supported"),
                              ("dependencies", "dependencies is not supported"), ("$ref", "$ref is not supported"))


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _versions(crd: Obj) -> list[Obj]:
    return [v if isinstance(v, dict) else {} for v in _l(_d(crd.get("spec")).get("versions"))]


# --------------------------------------------------------------------------
# Defaults (apiextensions v1 SetDefaults_* and the create strategy)


def default_crd(crd: Obj) -> None:
    """SetDefaults_CustomResourceDefinition, in place."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names = spec.setdefault("names", {})
    if isinstance(names, dict):
        kind = names.get("kind")
        if not names.get("singular") and isinstance(kind, str):
            names["singular"] = kind.lower()
        if not names.get("listKind") and isinstance(kind, str) and kind:
            names["listKind"] = kind + "List"
    conversion = spec.setdefault("conversion", {"strategy": "None"})
    if isinstance(conversion, dict):
        conversion.setdefault("strategy", "None")
        if conversion.get("strategy") == "Webhook":
            webhook = conversion.setdefault("webhook", {})
            if isinstance(webhook, dict):
                webhook.setdefault("conversionReviewVersions", ["v1"])
                service = _d(_d(webhook.get("clientConfig")).get("service"))
                if service:
                    service.setdefault("port", 443)


def storage_version(crd: Obj) -> str:
    for v in _versions(crd):
        if v.get("storage"):
            return str(v.get("name", ""))
    return ""


def is_established(crd: Obj) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in _l(_d(crd.get("status")).get("conditions")) if isinstance(c, dict))


# --------------------------------------------------------------------------
# Per-version views (apihelpers.GetSchemaForVersion & co. on the v1 form)


def schema_for_version(crd: Obj, version: str) -> Obj | None:
    for v in _versions(crd):
        if v.get("name") == version:
            schema = _d(v.get("schema")).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    return None


def subresources_for_version(crd: Obj, version: str) -> Obj:
    for v in _versions(crd):
        if v.get("name") == version:
            return _d(v.get("subresources"))
    return {}


def columns_for_version(crd: Obj, version: str) -> list[Obj]:
    for v in _versions(crd):
        if v.get("name") == version:
            return [c for c in _l(v.get("additionalPrinterColumns")) if isinstance(c, dict)]
    return []


# --------------------------------------------------------------------------
# Go renderings of values upstream prints with %#v


def _go_ptr(kind: str, value: Any) -> str:
    if value is None:
        return f"(*{kind})(nil)"
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]
    return f"(*{kind})(0xc000{digest})"


def _go_columns(cols: Any) -> str:
    if not cols:
        return "[]apiextensions.CustomResourceColumnDefinition(nil)"
    items = []
    for c in _l(cols):
        c = _d(c)
        items.append("apiextensions.CustomResourceColumnDefinition{"
                     f"Name:{go_quote(str(c.get('name', '')))}, Type:{go_quote(str(c.get('type', '')))}, "
                     f"Format:{go_quote(str(c.get('format', '')))}, "
                     f"Description:{go_quote(str(c.get('description', '')))}, Priority:{c.get('priority', 0)}, "
                     f"JSONPath:{go_quote(str(c.get('jsonPath', '')))}}}")
    return "[]apiextensions.CustomResourceColumnDefinition{" + ", ".join(items) + "}"


def _go_versions(layout: "_Layout") -> str:
    """spec.Versions of the internal CRD as Go's %#v prints it."""
    out = []
    for i, v in enumerate(layout.versions):
        schema = None if layout.hoisted_schema else v.get("schema")
        subs = None if layout.hoisted_subresources else v.get("subresources")
        cols = None if layout.hoisted_columns else v.get("additionalPrinterColumns")
        warning = v.get("deprecationWarning")
        out.append("apiextensions.CustomResourceDefinitionVersion{"
                   f"Name:{go_quote(str(v.get('name', '')))}, Served:{str(bool(v.get('served'))).lower()}, "
                   f"Storage:{str(bool(v.get('storage'))).lower()}, "
                   f"Deprecated:{str(bool(v.get('deprecated'))).lower()}, "
                   f"DeprecationWarning:{_go_ptr('string', warning)}, "
                   f"Schema:{_go_ptr('apiextensions.CustomResourceValidation', schema)}, "
                   f"Subresources:{_go_ptr('apiextensions.CustomResourceSubresources', subs)}, "
                   f"AdditionalPrinterColumns:{_go_columns(cols)}, "
                   "SelectableFields:[]apiextensions.SelectableField(nil)}")
    return "[]apiextensions.CustomResourceDefinitionVersion{" + ", ".join(out) + "}"


def _raw(kind: str, path: str, rendered: str, detail: str) -> FieldError:
    """A field error whose bad value is already rendered Go-style."""
    return FieldError(kind, path, detail=f"{rendered}: {detail}")


# --------------------------------------------------------------------------
# Validation


@dataclass
class _Layout:
    """Where a v1 CRD's per-version parts sit in upstream's internal form."""

    versions: list[Obj]
    hoisted_schema: bool
    hoisted_subresources: bool
    hoisted_columns: bool

    @classmethod
    def of(cls, crd: Obj) -> "_Layout":
        versions = _versions(crd)

        def identical(key: str) -> bool:
            return bool(versions) and all(v.get(key) == versions[0].get(key) for v in versions)
        return cls(versions, identical("schema"), identical("subresources"), identical("additionalPrinterColumns"))

    def schema_path(self, i: int) -> str:
        return "spec.validation" if self.hoisted_schema else f"spec.versions[{i}].schema"

    def subresources_path(self, i: int) -> str:
        return "spec.subresources" if self.hoisted_subresources else f"spec.versions[{i}].subresources"

    def columns_path(self, i: int) -> str:
        return "spec.additionalPrinterColumns" if self.hoisted_columns else f"spec.versions[{i}].additionalPrinterColumns"


def _group_errors(group: Any) -> Errs:
    if not group:
        return [FieldError(REQUIRED, "spec.group")]
    msgs = is_dns1123_subdomain(str(group))
    if msgs:
        return [FieldError(INVALID, "spec.group", group, ",".join(msgs))]
    if len(str(group).split(".")) < 2:
        return [FieldError(INVALID, "spec.group", group, "should be a domain with at least one dot")]
    return []


def _names_errors(names: Obj, path: str) -> Errs:
    """ValidateCustomResourceDefinitionNames (spec.names and status.acceptedNames)."""
    errs: Errs = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if value and is_dns1035_label(str(value)):
            errs.append(FieldError(INVALID, f"{path}.{key}", value, ",".join(is_dns1035_label(str(value)))))
    for key in ("kind", "listKind"):
        value = names.get(key)
        if value and is_dns1035_label(str(value).lower()):
            errs.append(FieldError(INVALID, f"{path}.{key}", value, "may have mixed case, but should otherwise match: "
                                   + ",".join(is_dns1035_label(str(value).lower()))))
    for i, short in enumerate(_l(names.get("shortNames"))):
        if is_dns1035_label(str(short)):
            errs.append(FieldError(INVALID, f"{path}.shortNames[{i}]", short, ",".join(is_dns1035_label(str(short)))))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(FieldError(INVALID, f"{path}.listKind", names.get("listKind"), "kind and listKind may not be the same"))
    for i, cat in enumerate(_l(names.get("categories"))):
        if is_dns1035_label(str(cat)):
            errs.append(FieldError(INVALID, f"{path}.categories[{i}]", cat, ",".join(is_dns1035_label(str(cat)))))
    return errs


def _simple_json_path(value: str, path: str) -> Errs:
    if not value:
        return [FieldError(INVALID, path, value, "must not be empty")]
    if not value.startswith("."):
        return [FieldError(INVALID, path, value, "must be a simple json path starting with .")]
    return []


def _subresources_errors(subs: Obj, path: str) -> Errs:
    scale = subs.get("scale")
    if not isinstance(scale, dict):
        return []
    errs: Errs = []
    for key, prefix in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")):
        value = scale.get(key) or ""
        where = f"{path}.scale.{key}"
        if not value:
            errs.append(FieldError(REQUIRED, where))
            continue
        bad = _simple_json_path(str(value), where)
        if bad:
            errs += bad
        elif not str(value).startswith(prefix):
            errs.append(FieldError(INVALID, where, value, f"should be a json path under {prefix.rstrip('.')}"))
    selector = scale.get("labelSelectorPath")
    if selector:
        where = f"{path}.scale.labelSelectorPath"
        bad = _simple_json_path(str(selector), where)
        if bad:
            errs += bad
        elif not str(selector).startswith((".spec.", ".status.")):
            errs.append(FieldError(INVALID, where, selector, "should be a json path under either .spec or .status"))
    return errs


def _column_errors(col: Obj, path: str) -> Errs:
    errs: Errs = []
    if not col.get("name"):
        errs.append(FieldError(REQUIRED, f"{path}.name"))
    types = ",".join(PRINTER_TYPES)
    if not col.get("type"):
        errs.append(FieldError(REQUIRED, f"{path}.type", detail=f"must be one of {types}"))
    elif col["type"] not in PRINTER_TYPES:
        errs.append(FieldError(INVALID, f"{path}.type", col["type"], f"must be one of {types}"))
    if col.get("format") and col["format"] not in PRINTER_FORMATS:
        errs.append(FieldError(INVALID, f"{path}.format", col["format"], f"must be one of {','.join(PRINTER_FORMATS)}"))
    if not col.get("jsonPath"):
        errs.append(FieldError(REQUIRED, f"{path}.JSONPath"))
    else:
        errs += _simple_json_path(str(col["jsonPath"]), f"{path}.JSONPath")
    return errs


def _selectable_errors(fields: list[Any], schema: Obj | None, path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        json_path = str(_d(f).get("jsonPath") or "")
        where = f"{path}[{i}].jsonPath"
        if not json_path:
            errs.append(FieldError(REQUIRED, where))
            continue
        parts = json_path.lstrip(".").split(".")
        node: Obj | None = schema
        for p in parts:
            node = st.properties(node).get(p) if node is not None else None
        if node is None:
            errs.append(FieldError(INVALID, where, json_path, "is an invalid path: does not refer to a valid field"))
            continue
        if parts[0] == "metadata":
            errs.append(FieldError(INVALID, where, json_path, "must not point to fields in metadata"))
        if node.get("type") not in ("string", "boolean", "integer"):
            errs.append(FieldError(INVALID, where, json_path, "must point to a field of type string, boolean or integer. "
                                                               "Enum string fields and strings with formats are allowed."))
        if json_path in seen:
            errs.append(FieldError(DUPLICATE, where, json_path))
        seen.add(json_path)
    if len(seen) > MAX_SELECTABLE_FIELDS:
        errs.append(FieldError(TOO_MANY, path, len(seen), f"must have at most {MAX_SELECTABLE_FIELDS} items"))
    return errs


def _openapi_schema_errors(s: Obj, path: str, *, root: bool, inside_meta: bool, no_defaults: str) -> Errs:
    """ValidateCustomResourceDefinitionOpenAPISchema: what the OpenAPI subset allows."""
    errs: Errs = []
    typ = s.get("type")
    if typ and typ not in OPENAPI_TYPES:
        if typ == "null":
            errs.append(FieldError(FORBIDDEN, f"{path}.type", detail="type cannot be set to null, use nullable as an alternative"))
        else:
            errs.append(FieldError(NOT_SUPPORTED, f"{path}.type", typ,
                                   "supported values: " + ", ".join(go_quote(t) for t in OPENAPI_TYPES)))
    if "default" in s and no_defaults:
        errs.append(FieldError(FORBIDDEN, f"{path}.default", detail=f"must not be set {no_defaults}".rstrip()))
    for key, msg in _UNSUPPORTED_SCHEMA_FIELDS:
        if s.get(key):
            errs.append(FieldError(FORBIDDEN, f"{path}.{key}", detail=msg))
    if isinstance(s.get("items"), list):
        errs.append(FieldError(FORBIDDEN, f"{path}.items", detail="items must be a schema object and not an array"))
    if inside_meta and st.embedded(s):
        errs.append(FieldError(FORBIDDEN, f"{path}.x-kubernetes-embedded-resource", detail="must not be used inside of resource meta"))
    if s.get("uniqueItems") is True:
        errs.append(FieldError(FORBIDDEN, f"{path}.uniqueItems",
                               detail="uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    if st.has_additional(s):
        if st.properties(s) and (s["additionalProperties"] is False or isinstance(s["additionalProperties"], dict)):
            errs.append(FieldError(FORBIDDEN, f"{path}.additionalProperties",
                                   detail="additionalProperties and properties are mutual exclusive"))
        ap = st.additional(s)
        if ap is not None:
            errs += _openapi_schema_errors(ap, f"{path}.additionalProperties", root=False, inside_meta=inside_meta,
                                           no_defaults="inside additionalProperties applying to object metadata"
                                           if inside_meta else no_defaults)
    for key in sorted(st.properties(s)):
        sub_meta, sub_no_defaults = inside_meta, no_defaults
        if (root or st.embedded(s)) and key in st.META_FIELDS:
            sub_meta = True
            if root:
                sub_no_defaults = f"in top-level {key}"
        errs += _openapi_schema_errors(st.properties(s)[key], f"{path}.properties[{key}]", root=False,
                                       inside_meta=sub_meta, no_defaults=sub_no_defaults)
    if isinstance(s.get("not"), dict):
        errs += _openapi_schema_errors(s["not"], f"{path}.not", root=False, inside_meta=inside_meta, no_defaults=no_defaults)
    for junctor in ("allOf", "oneOf", "anyOf"):
        for i, c in enumerate(_l(s.get(junctor))):
            if isinstance(c, dict):
                errs += _openapi_schema_errors(c, f"{path}.{junctor}[{i}]", root=False, inside_meta=inside_meta,
                                               no_defaults=no_defaults)
    if st.items(s) is not None:
        errs += _openapi_schema_errors(st.items(s) or {}, f"{path}.items", root=False, inside_meta=inside_meta,
                                       no_defaults=no_defaults)
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errs.append(FieldError(INVALID, f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"))
    errs += _list_and_map_type_errors(s, path)
    for i, rule in enumerate(_l(s.get("x-kubernetes-validations"))):
        if not str(_d(rule).get("rule", "")).strip():
            errs.append(FieldError(REQUIRED, f"{path}.x-kubernetes-validations[{i}].rule", detail="rule is not specified"))
    return errs


def _list_and_map_type_errors(s: Obj, path: str) -> Errs:
    errs: Errs = []
    typ, map_type, list_type = s.get("type"), s.get("x-kubernetes-map-type"), s.get("x-kubernetes-list-type")
    if map_type is not None and typ != "object":
        if not typ:
            errs.append(FieldError(REQUIRED, f"{path}.type", detail="must be object if x-kubernetes-map-type is specified"))
        else:
            errs.append(FieldError(INVALID, f"{path}.type", typ, "must be object if x-kubernetes-map-type is specified"))
    if map_type is not None and map_type not in ("atomic", "granular"):
        errs.append(FieldError(NOT_SUPPORTED, f"{path}.x-kubernetes-map-type", map_type, 'supported values: "atomic", "granular"'))
    if list_type is not None and typ != "array":
        if not typ:
            errs.append(FieldError(REQUIRED, f"{path}.type", detail="must be array if x-kubernetes-list-type is specified"))
        else:
            errs.append(FieldError(INVALID, f"{path}.type", typ, "must be array if x-kubernetes-list-type is specified"))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errs.append(FieldError(NOT_SUPPORTED, f"{path}.x-kubernetes-list-type", list_type,
                               'supported values: "atomic", "set", "map"'))
    keys = _l(s.get("x-kubernetes-list-map-keys"))
    if keys and list_type != "map":
        if list_type is None:
            errs.append(FieldError(REQUIRED, f"{path}.x-kubernetes-list-type",
                                   detail="must be map if x-kubernetes-list-map-keys is non-empty"))
        else:
            errs.append(FieldError(INVALID, f"{path}.x-kubernetes-list-type", list_type,
                                   "must be map if x-kubernetes-list-map-keys is non-empty"))
    if list_type == "map":
        item = st.items(s)
        if not keys:
            errs.append(FieldError(REQUIRED, f"{path}.x-kubernetes-list-map-keys",
                                   detail="must not be empty if x-kubernetes-list-type is map"))
        if item is None:
            errs.append(FieldError(REQUIRED, f"{path}.items", detail="must have a schema if x-kubernetes-list-type is map"))
        elif item.get("type") != "object":
            errs.append(FieldError(INVALID, f"{path}.items.type", item.get("type", ""),
                                   "must be object if parent array's x-kubernetes-list-type is map"))
        else:
            required = set(_l(item.get("required")))
            for k in keys:
                prop = st.properties(item).get(k)
                if prop is None:
                    errs.append(_raw(INVALID, f"{path}.x-kubernetes-list-map-keys", json.dumps(keys),
                                     "entries must all be names of item properties"))
                    continue
                if k not in required and "default" not in prop:
                    errs.append(FieldError(REQUIRED, f"{path}.items.properties[{k}].default", detail=(
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property")))
    return errs


def _default_errors(s: Obj, path: str, *, embedded_root: bool) -> Errs:
    """ValidateDefaults: every default must validate against its own schema."""
    errs: Errs = []
    if "default" in s:
        value = s["default"]
        pruned = copy.deepcopy(value)
        st.prune(pruned, s, root=st.embedded(s))
        if pruned != value:
            errs.append(FieldError(INVALID, f"{path}.default", value, "must not have unknown fields"))
        for e in validate_value(value, s, ""):
            field = f"{path}.default" + (f".{e.field}" if e.field and e.field != "<nil>" else "")
            errs.append(FieldError(e.type, field, e.value, e.detail.lstrip()))
    if st.items(s) is not None:
        errs += _default_errors(st.items(s) or {}, f"{path}.items", embedded_root=False)
    for k in sorted(st.properties(s)):
        errs += _default_errors(st.properties(s)[k], f"{path}.properties[{k}]", embedded_root=False)
    return errs


def _validation_errors(schema: Obj, status_enabled: bool, path: str) -> Errs:
    """validateCustomResourceDefinitionValidation for one schema at `path`
    (`spec.validation` or `spec.versions[i].schema`)."""
    errs: Errs = []
    root = f"{path}.openAPIV3Schema"
    if status_enabled:
        for key in schema:
            if key == "type":
                if schema[key] != "object":
                    errs.append(FieldError(INVALID, f"{root}.type", schema[key], 'only "object" is allowed as the type '
                                           "at the root of the schema if the status subresource is enabled"))
                    break
                continue
            if key not in _ROOT_FIELDS_WITH_STATUS:
                errs.append(_raw(INVALID, root, "apiextensions.JSONSchemaProps{...}",
                                 f"only {_ROOT_FIELDS_GO} fields are allowed at the root of the schema if the "
                                 "status subresource is enabled"))
                break
    if schema.get("nullable"):
        errs.append(FieldError(FORBIDDEN, f"{root}.nullable", detail="nullable cannot be true at the root"))
    structural = st.structural_errors(schema, root)
    if structural:
        errs += structural
    else:
        errs += _default_errors(schema, root, embedded_root=True)
    errs += _openapi_schema_errors(schema, root, root=True, inside_meta=False, no_defaults="")
    return errs


def _spec_errors(crd: Obj) -> Errs:
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    layout = _Layout.of(crd)
    errs = _group_errors(spec.get("group"))
    scope = spec.get("scope")
    if not scope:
        errs.append(FieldError(REQUIRED, "spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(FieldError(NOT_SUPPORTED, "spec.scope", scope, 'supported values: "Cluster", "Namespaced"'))
    for i, v in enumerate(layout.versions):
        if not isinstance(_d(v.get("schema")).get("openAPIV3Schema"), dict):
            errs.append(FieldError(REQUIRED, f"spec.versions[{i}].schema.openAPIV3Schema", detail="schemas are required"))
    if spec.get("preserveUnknownFields") is True and any(
            st.has_defaults(_d(v.get("schema")).get("openAPIV3Schema")) for v in layout.versions):
        errs.append(FieldError(INVALID, "spec.preserveUnknownFields", True, "must be false in order to use defaults in the schema"))
    storage, names_seen, unique = 0, set(), True
    for i, v in enumerate(layout.versions):
        storage += 1 if v.get("storage") else 0
        name = str(v.get("name") or "")
        unique = unique and name not in names_seen
        names_seen.add(name)
        msgs = is_dns1035_label(name)
        if msgs:
            errs.append(FieldError(INVALID, f"spec.versions[{i}].name", name, ",".join(msgs)))
        errs += _version_errors(crd, v, i, layout)
    if not unique:
        errs.append(_raw(INVALID, "spec.versions", _go_versions(layout), "must contain unique version names"))
    if storage != 1:
        errs.append(_raw(INVALID, "spec.versions", _go_versions(layout),
                         "must have exactly one version marked as storage version"))
    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            errs.append(FieldError(REQUIRED, f"spec.names.{key}"))
    errs += _names_errors(names, "spec.names")
    if layout.versions:
        first = layout.versions[0]
        status_any = any("status" in _d(v.get("subresources")) for v in layout.versions)
        if layout.hoisted_schema and isinstance(_d(first.get("schema")).get("openAPIV3Schema"), dict):
            errs += _validation_errors(first["schema"]["openAPIV3Schema"], status_any, "spec.validation")
        if layout.hoisted_subresources:
            errs += _subresources_errors(_d(first.get("subresources")), "spec.subresources")
        if layout.hoisted_columns:
            for j, col in enumerate(_l(first.get("additionalPrinterColumns"))):
                errs += _column_errors(_d(col), f"spec.additionalPrinterColumns[{j}]")
    errs += _conversion_errors(_d(spec.get("conversion")), spec)
    return errs


def _version_errors(crd: Obj, v: Obj, i: int, layout: _Layout) -> Errs:
    errs: Errs = []
    where = f"spec.versions[{i}]"
    warning = v.get("deprecationWarning")
    if warning is not None and not v.get("deprecated"):
        errs.append(FieldError(INVALID, f"{where}.deprecationWarning", warning, "can only be set for deprecated versions"))
    elif isinstance(warning, str) and len(warning) > 256:
        errs.append(FieldError(INVALID, f"{where}.deprecationWarning", warning, "must be <= 256 characters long"))
    subs = _d(v.get("subresources"))
    schema = _d(v.get("schema")).get("openAPIV3Schema")
    if not layout.hoisted_schema and isinstance(schema, dict):
        errs += _validation_errors(schema, "status" in subs, layout.schema_path(i))
    if not layout.hoisted_subresources:
        errs += _subresources_errors(subs, layout.subresources_path(i))
    if not layout.hoisted_columns:
        for j, col in enumerate(_l(v.get("additionalPrinterColumns"))):
            errs += _column_errors(_d(col), f"{layout.columns_path(i)}[{j}]")
    selectable = _l(v.get("selectableFields"))
    if selectable:
        errs += _selectable_errors(selectable, schema if isinstance(schema, dict) else None, f"{where}.selectableFields")
    return errs


def _conversion_errors(conversion: Obj, spec: Obj) -> Errs:
    errs: Errs = []
    strategy = conversion.get("strategy")
    if not strategy:
        return [FieldError(REQUIRED, "spec.conversion.strategy")]
    if strategy not in ("None", "Webhook"):
        return [FieldError(NOT_SUPPORTED, "spec.conversion.strategy", strategy, 'supported values: "None", "Webhook"')]
    webhook = _d(conversion.get("webhook"))
    if strategy == "Webhook":
        if spec.get("preserveUnknownFields") is True:
            errs.append(FieldError(INVALID, "spec.conversion.strategy", strategy,
                                   "must be None if spec.preserveUnknownFields is true"))
        config = _d(webhook.get("clientConfig"))
        if not config:
            errs.append(FieldError(REQUIRED, "spec.conversion.webhookClientConfig", detail="required when strategy is set to Webhook"))
        elif bool(config.get("url")) == bool(config.get("service")):
            errs.append(FieldError(REQUIRED, "spec.conversion.webhookClientConfig", detail="exactly one of url or service is required"))
    elif webhook:
        errs.append(FieldError(FORBIDDEN, "spec.conversion.webhookClientConfig",
                               detail="should not be set when strategy is not set to Webhook"))
    return errs


def _stored_versions_errors(crd: Obj) -> Errs:
    stored = [str(s) for s in _l(_d(crd.get("status")).get("storedVersions"))]
    if not stored:
        return [FieldError(INVALID, "status.storedVersions", [], "must have at least one stored version")]
    errs: Errs = []
    names = [str(v.get("name", "")) for v in _versions(crd)]
    for v in _versions(crd):
        if v.get("storage") and v.get("name") not in stored:
            errs.append(FieldError(INVALID, "status.storedVersions", stored, f"must have the storage version {v.get('name')}"))
    for i, s in enumerate(stored):
        if s not in names:
            errs.append(FieldError(INVALID, f"status.storedVersions[{i}]", s, (
                f"missing from spec.versions; {s} was previously a storage version, and must remain in spec.versions "
                f"until a storage migration ensures no data remains persisted in {s} and removes {s} from "
                "status.storedVersions")))
    return errs


def _protected_group(group: str) -> bool:
    return any(group == g or group.endswith("." + g) for g in ("k8s.io", "kubernetes.io"))


def _approval_errors(crd: Obj) -> Errs:
    group = str(_d(crd.get("spec")).get("group") or "")
    if not _protected_group(group):
        return []
    annotations = _d(_d(crd.get("metadata")).get("annotations"))
    if APPROVAL_ANNOTATION in annotations:
        return []
    return [FieldError(REQUIRED, f"metadata.annotations[{APPROVAL_ANNOTATION}]", detail=(
        f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", '
        "see https://github.com/kubernetes/enhancements/pull/1111"))]


def _preserve_unknown_errors(crd: Obj, old: Obj | None) -> Errs:
    new_value = _d(crd.get("spec")).get("preserveUnknownFields") is True
    old_value = old is not None and _d(old.get("spec")).get("preserveUnknownFields") is True
    if new_value and not old_value:
        return [FieldError(INVALID, "spec.preserveUnknownFields", True,
                           "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                           "spec.versions[*].schema instead")]
    return []


def _name_errors(crd: Obj) -> Errs:
    """The CRD's own name must be `<plural>.<group>`."""
    spec = _d(crd.get("spec"))
    name = _d(crd.get("metadata")).get("name")
    wanted = f"{_d(spec.get('names')).get('plural', '')}.{spec.get('group', '')}"
    if name and name != wanted:
        return [FieldError(INVALID, "metadata.name", name, 'must be spec.names.plural+"."+spec.group')]
    return []


def validate_crd(crd: Obj) -> Errs:
    """ValidateCustomResourceDefinition (metadata is checked by the caller)."""
    errs = _name_errors(crd)
    errs += _spec_errors(crd)
    errs += _names_errors(_d(_d(crd.get("status")).get("acceptedNames")), "status.acceptedNames")
    errs += _stored_versions_errors(crd)
    errs += _approval_errors(crd)
    errs += _preserve_unknown_errors(crd, None)
    return errs


def update_errors(crd: Obj, old: Obj) -> Errs:
    """What may not change on update (validate_crd runs too: see `validate_crd_update`)."""
    errs: Errs = []
    spec, old_spec = _d(crd.get("spec")), _d(old.get("spec"))
    immutable = [("spec.group", spec.get("group"), old_spec.get("group")),
                 ("spec.names.plural", _d(spec.get("names")).get("plural"), _d(old_spec.get("names")).get("plural"))]
    if is_established(old):
        immutable[:0] = [("spec.scope", spec.get("scope"), old_spec.get("scope")),
                         ("spec.names.kind", _d(spec.get("names")).get("kind"), _d(old_spec.get("names")).get("kind"))]
    for path, new_value, old_value in immutable:
        if new_value != old_value:
            errs.append(FieldError(INVALID, path, new_value, "field is immutable"))
    return errs


def validate_crd_update(crd: Obj, old: Obj) -> Errs:
    """ValidateCustomResourceDefinitionUpdate: `validate_crd` plus what may not change."""
    return validate_crd(crd) + update_errors(crd, old)
