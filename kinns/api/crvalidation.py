"""Validation of custom resources against their CRD's schema, in upstream's words.

kube-apiserver checks a custom resource with kube-openapi's schema
validator and turns each finding into a `field.Error`
(apiextensions-apiserver/pkg/apiserver/validation): that is where users
meet messages like

    spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"
    spec.cronSpec: Required value
    spec.color: Unsupported value: "pink": supported values: "red", "blue"
    spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10

This module reproduces those checks and texts (type with nullable and
x-kubernetes-int-or-string, required, enum, pattern, formats, numeric
bounds, lengths, item and property counts, the logical junctors), plus what
the custom resource strategy adds around them: object metadata, the scale
subresource's replica paths, embedded resources (`x-kubernetes-embedded-
resource`) and the uniqueness of `x-kubernetes-list-type` set/map lists.
Every check returns all its findings, so one request lists every
violation, as upstream does.  Pure functions over JSON values.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import uuid
from typing import Any, Callable

from . import structural as st
from .errors import (DUPLICATE, FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID,
                     FieldError)
from .validation import (is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_path_segment_name,
                         is_qualified_name, validate_annotations, validate_labels)

Schema = dict[str, Any]
Errs = list[FieldError]

# Where kube-openapi has no field path (a junctor failing), apimachinery
# prints a nil field.Path.
NIL_PATH = "<nil>"


def go_number(value: Any) -> str:
    """A number as Go's %v prints it: 3, 1.5, never 3.0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def go_quote(value: str) -> str:
    """strconv.Quote, near enough (JSON escaping is Go's for printable text)."""
    return json.dumps(value, ensure_ascii=False)


def json_type(value: Any) -> str:
    """The JSON type kube-openapi sees for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and 1.0 agree, true and 1 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and bool(a == b)


# --------------------------------------------------------------------------
# String formats upstream keeps (apiserver/validation/formats.go); others pass.


def _date_time(v: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", v) is not None \
        and _parses(lambda: dt.datetime.fromisoformat(v.replace("z", "Z").replace("Z", "+00:00")))


def _parses(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except (ValueError, TypeError):
        return False
    return True


def _ip(version: int) -> Callable[[str], bool]:
    return lambda v: _parses(lambda: ipaddress.ip_address(v)) and ipaddress.ip_address(v).version == version


_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$|^\d+\s*(ns|us|ms|s|m|h|d|w)\w*$")

_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _date_time,
    "datetime": _date_time,
    "date": lambda v: re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None and _parses(lambda: dt.date.fromisoformat(v)),
    "uuid": lambda v: re.fullmatch(r"(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", v) is not None,
    "uuid3": lambda v: _parses(lambda: uuid.UUID(v)) and uuid.UUID(v).version == 3,
    "uuid4": lambda v: _parses(lambda: uuid.UUID(v)) and uuid.UUID(v).version == 4,
    "uuid5": lambda v: _parses(lambda: uuid.UUID(v)) and uuid.UUID(v).version == 5,
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": lambda v: "/" in v and _parses(lambda: ipaddress.ip_network(v, strict=False)),
    "hostname": lambda v: len(v) <= 255 and _HOSTNAME.match(v) is not None,
    "email": lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+", v) is not None,
    "byte": lambda v: _parses(lambda: base64.b64decode(v, validate=True)),
    "duration": lambda v: _DURATION.match(v) is not None,
    "mac": lambda v: re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5,7}[0-9A-Fa-f]{2}", v) is not None,
    "uri": lambda v: re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:|^/", v) is not None,
}


# --------------------------------------------------------------------------
# The schema validator


def _field(name: str) -> str:
    return name.lstrip(".") or NIL_PATH


def _prop_name(name: str, key: str) -> str:
    return f"{name}.{key}" if name else key


def _schema_types(s: Schema) -> list[str]:
    if st.int_or_string(s):
        return ["integer", "string"]
    t = s.get("type")
    return [t] if isinstance(t, str) and t else []


def validate_value(value: Any, schema: Schema | None, name: str = "") -> Errs:
    """Check `value` against `schema` as kube-openapi does; `name` is the
    dotted path of `value` in the object ("" at the root)."""
    if not isinstance(schema, dict):
        return []
    errs: Errs = []
    types = _schema_types(schema)
    actual = json_type(value)
    if value is None:
        if types and "null" not in types and not schema.get("nullable"):
            errs.append(_type_error(name, types, "null"))
        errs += _enum(value, schema, name)
        return errs
    float_int = actual == "number" and float(value).is_integer() and "integer" in types
    int_float = actual == "integer" and "number" in types
    if types and actual not in types and not float_int and not int_float:
        errs.append(_type_error(name, types, actual))
    errs += _junctors(value, schema, name)
    if isinstance(value, str):
        errs += _string(value, schema, name)
    if actual in ("integer", "number"):
        errs += _number(value, schema, name)
    if isinstance(value, list):
        errs += _array(value, schema, name)
    errs += _enum(value, schema, name)
    if isinstance(value, dict):
        errs += _object(value, schema, name)
    return errs


def _type_error(name: str, types: list[str], actual: str) -> FieldError:
    return FieldError(TYPE_INVALID, _field(name), actual,
                      f"{name} in body must be of type {','.join(types)}: {go_quote(actual)}")


def _junctors(value: Any, s: Schema, name: str) -> Errs:
    """allOf / anyOf / oneOf / not: kube-openapi reports these without a field path."""
    errs: Errs = []
    label = name or "."
    all_of = [c for c in st._list(s.get("allOf")) if isinstance(c, dict)]
    if all_of:
        sub = [e for c in all_of for e in validate_value(value, c, name)]
        if sub:
            errs += sub
            errs.append(FieldError(INVALID, NIL_PATH, "", f"{label} must validate all the schemas (allOf)"))
    any_of = [c for c in st._list(s.get("anyOf")) if isinstance(c, dict)]
    if any_of and all(validate_value(value, c, name) for c in any_of):
        errs.append(FieldError(INVALID, NIL_PATH, "", f"{label} must validate at least one schema (anyOf)"))
    one_of = [c for c in st._list(s.get("oneOf")) if isinstance(c, dict)]
    if one_of and sum(1 for c in one_of if not validate_value(value, c, name)) != 1:
        errs.append(FieldError(INVALID, NIL_PATH, "", f"{label} must validate one and only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not validate_value(value, s["not"], name):
        errs.append(FieldError(INVALID, NIL_PATH, "", f"{label} must not validate the schema (not)"))
    return errs


def _string(value: str, s: Schema, name: str) -> Errs:
    errs: Errs = []
    length = len(value)
    max_len, min_len, pattern = s.get("maxLength"), s.get("minLength"), s.get("pattern")
    if isinstance(max_len, int) and length > max_len:
        errs.append(FieldError(TOO_LONG, _field(name), value, f"may not be longer than {max_len}"))
    if isinstance(min_len, int) and length < min_len:
        errs.append(FieldError(INVALID, _field(name), value, f"{name} in body should be at least {min_len} chars long"))
    if isinstance(pattern, str) and pattern:
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True
        if not matched:
            errs.append(FieldError(INVALID, _field(name), value, f"{name} in body should match '{pattern}'"))
    fmt = s.get("format")
    check = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if check is not None and not check(value):
        errs.append(FieldError(TYPE_INVALID, _field(name), value,
                               f"{name} in body must be of type {fmt}: {go_quote(value)}"))
    return errs


def _number(value: float, s: Schema, name: str) -> Errs:
    errs: Errs = []
    multiple = s.get("multipleOf")
    if isinstance(multiple, (int, float)) and not isinstance(multiple, bool) and multiple > 0:
        q = value / multiple
        if abs(q - round(q)) > 1e-9:
            errs.append(FieldError(INVALID, _field(name), value,
                                   f"{name} in body should be a multiple of {go_number(multiple)}"))
    maximum, minimum = s.get("maximum"), s.get("minimum")
    if isinstance(maximum, (int, float)) and not isinstance(maximum, bool):
        exclusive = bool(s.get("exclusiveMaximum"))
        if value > maximum or (exclusive and value == maximum):
            op = "less than" if exclusive else "less than or equal to"
            errs.append(FieldError(INVALID, _field(name), value, f"{name} in body should be {op} {go_number(maximum)}"))
    if isinstance(minimum, (int, float)) and not isinstance(minimum, bool):
        exclusive = bool(s.get("exclusiveMinimum"))
        if value < minimum or (exclusive and value == minimum):
            op = "greater than" if exclusive else "greater than or equal to"
            errs.append(FieldError(INVALID, _field(name), value, f"{name} in body should be {op} {go_number(minimum)}"))
    return errs


def _array(value: list[Any], s: Schema, name: str) -> Errs:
    errs: Errs = []
    sub = st.items(s)
    if sub is not None:
        for i, v in enumerate(value):
            errs += validate_value(v, sub, f"{name}[{i}]")
    min_items, max_items = s.get("minItems"), s.get("maxItems")
    if isinstance(min_items, int) and len(value) < min_items:
        errs.append(FieldError(INVALID, _field(name), len(value), f"{name} in body should have at least {min_items} items"))
    if isinstance(max_items, int) and len(value) > max_items:
        errs.append(FieldError(TOO_MANY, _field(name), len(value), f"must have at most {max_items} items"))
    return errs


def _enum(value: Any, s: Schema, name: str) -> Errs:
    allowed = s.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return []
    if any(_same(value, a) for a in allowed):
        return []
    shown = [a if isinstance(a, str) else json.dumps(a, separators=(",", ":")) for a in allowed]
    return [FieldError(NOT_SUPPORTED, _field(name), value, "supported values: " + ", ".join(go_quote(v) for v in shown))]


def _object(value: dict[str, Any], s: Schema, name: str) -> Errs:
    errs: Errs = []
    count = len(value)
    min_props, max_props = s.get("minProperties"), s.get("maxProperties")
    if isinstance(min_props, int) and count < min_props:
        return [FieldError(INVALID, _field(name), min_props, f"{name} in body should have at least {min_props} properties")]
    if isinstance(max_props, int) and count > max_props:
        return [FieldError(TOO_MANY, _field(name), max_props, f"must have at most {max_props} items")]
    props = st.properties(s)
    ap = st.additional(s)
    if ap is not None:
        for key, v in value.items():
            if key not in props:
                errs += validate_value(v, ap, _prop_name(name, key))
    for key, p in props.items():
        if key in value:
            errs += validate_value(value[key], p, _prop_name(name, key))
    for key in st._list(s.get("required")):
        if isinstance(key, str) and key not in value:
            errs.append(FieldError(REQUIRED, _field(f"{name}.{key}")))
    return errs


# --------------------------------------------------------------------------
# What the custom resource strategy checks around the schema


def metadata_errors(obj: dict[str, Any], namespaced: bool, path: str = "metadata",
                    name_check: Callable[[str], list[str]] = is_dns1123_subdomain) -> Errs:
    """ValidateObjectMeta for a custom resource (or an embedded one)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    errs: Errs = []
    name = meta.get("name") or ""
    if not name:
        errs.append(FieldError(REQUIRED, f"{path}.name", detail="name or generateName is required"))
    else:
        errs += [FieldError(INVALID, f"{path}.name", name, m) for m in name_check(str(name))]
    ns = meta.get("namespace") or ""
    if not namespaced:
        if ns:
            errs.append(FieldError(FORBIDDEN, f"{path}.namespace", detail="not allowed on this type"))
    elif not ns:
        errs.append(FieldError(REQUIRED, f"{path}.namespace"))
    else:
        errs += [FieldError(INVALID, f"{path}.namespace", ns, m) for m in is_dns1123_label(str(ns))]
    errs += validate_labels(meta.get("labels"), f"{path}.labels")
    errs += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    for fin in st._list(meta.get("finalizers")):
        errs += [FieldError(INVALID, f"{path}.finalizers", fin, m) for m in is_qualified_name(str(fin))]
    for i, ref in enumerate(st._list(meta.get("ownerReferences"))):
        ref = ref if isinstance(ref, dict) else {}
        where = f"{path}.ownerReferences"
        if not ref.get("apiVersion"):
            errs.append(FieldError(INVALID, f"{where}.apiVersion", ref.get("apiVersion", ""), "version must not be empty"))
        if not ref.get("kind"):
            errs.append(FieldError(INVALID, f"{where}.kind", ref.get("kind", ""), "kind must not be empty"))
        if not ref.get("name"):
            errs.append(FieldError(INVALID, f"{where}.name", ref.get("name", ""), "name must not be empty"))
        if not ref.get("uid"):
            errs.append(FieldError(INVALID, f"{where}.uid", ref.get("uid", ""), "uid must not be empty"))
    return errs


def _nested_int(obj: Any, dotted: str) -> tuple[int, str | None]:
    """unstructured.NestedInt64 at a `.spec.replicas`-style path: (value, error)."""
    fields = dotted.lstrip(".").split(".")
    cur = obj
    for f in fields:
        if not isinstance(cur, dict) or f not in cur:
            return 0, None
        cur = cur[f]
    if isinstance(cur, bool) or not isinstance(cur, int):
        go_type = {"string": "string", "number": "float64", "boolean": "bool", "null": "<nil>",
                   "array": "[]interface {}", "object": "map[string]interface {}"}.get(json_type(cur), "")
        return 0, f".{'.'.join(fields)} accessor error: {cur} is of the type {go_type}, expected int64"
    return cur, None


def scale_errors(obj: dict[str, Any], scale: dict[str, Any] | None, *, spec: bool = True) -> Errs:
    """The replica paths of the scale subresource must hold sane integers."""
    if not scale:
        return []
    errs: Errs = []
    paths = ([scale.get("specReplicasPath", "")] if spec else []) + [scale.get("statusReplicasPath", "")]
    for path in paths:
        if not path:
            continue
        value, err = _nested_int(obj, path)
        if err is not None:
            errs.append(FieldError(INVALID, path, value, err))
        elif value < 0:
            errs.append(FieldError(INVALID, path, value, "should be a non-negative integer"))
        elif value > 2**31 - 1:
            errs.append(FieldError(INVALID, path, value, f"should be less than or equal to {2**31 - 1}"))
    return errs


def embedded_errors(x: Any, s: Schema | None, path: str = "") -> Errs:
    """TypeMeta and ObjectMeta checks of x-kubernetes-embedded-resource objects."""
    if s is None:
        return []
    errs: Errs = []
    if isinstance(x, dict):
        if st.embedded(s):
            errs += _embedded_resource(x, path)
        props, ap = st.properties(s), st.additional(s)
        for k, v in x.items():
            if k in props:
                errs += embedded_errors(v, props[k], f"{path}.{k}" if path else k)
            elif ap is not None:
                errs += embedded_errors(v, ap, f"{path}[{k}]")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            errs += embedded_errors(v, st.items(s), f"{path}[{i}]")
    return errs


def _embedded_resource(x: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    for key in ("apiVersion", "kind"):
        value = x.get(key)
        where = f"{path}.{key}"
        if key not in x or value == "":
            errs.append(FieldError(REQUIRED, where))
        elif not isinstance(value, str):
            errs.append(FieldError(INVALID, where, value, "must be a string"))
        elif key == "kind" and is_dns1035_label(value.lower()):
            errs.append(FieldError(INVALID, where, value, "may have mixed case, but should otherwise match: "
                                   + ",".join(is_dns1035_label(value.lower()))))
    if isinstance(x.get("metadata"), dict):
        meta = dict(x["metadata"])
        meta.setdefault("name", "fakename")
        errs += metadata_errors({"metadata": meta}, bool(meta.get("namespace")), f"{path}.metadata",
                                is_path_segment_name)
    return errs


def list_type_errors(x: Any, s: Schema | None, path: str = "") -> Errs:
    """`x-kubernetes-list-type: set` lists hold no duplicates; `map` lists no
    two items with the same keys."""
    if s is None:
        return []
    errs: Errs = []
    if isinstance(x, list):
        kind = s.get("x-kubernetes-list-type")
        if kind in ("set", "map"):
            keys = [k for k in st._list(s.get("x-kubernetes-list-map-keys")) if isinstance(k, str)]
            seen: list[Any] = []
            for i, item in enumerate(x):
                ident = item if kind == "set" else {k: item.get(k) for k in keys} if isinstance(item, dict) else item
                if any(_same(ident, other) for other in seen):
                    errs.append(FieldError(DUPLICATE, f"{path}[{i}]", ident))
                seen.append(ident)
        for i, item in enumerate(x):
            errs += list_type_errors(item, st.items(s), f"{path}[{i}]")
    elif isinstance(x, dict):
        props, ap = st.properties(s), st.additional(s)
        for k, v in x.items():
            sub = props.get(k, ap)
            errs += list_type_errors(v, sub, f"{path}.{k}" if path else k)
    return errs


def validate_custom_resource(obj: dict[str, Any], schema: Schema | None, *, namespaced: bool,
                             scale: dict[str, Any] | None = None, status_only: bool = False) -> Errs:
    """Everything upstream checks on a custom resource write, in its order:
    metadata, the schema, the scale paths, embedded resources, list types."""
    errs = metadata_errors(obj, namespaced)
    errs += validate_value(obj, schema)
    errs += scale_errors(obj, scale, spec=not status_only)
    errs += embedded_errors(obj, schema)
    errs += list_type_errors(obj, schema)
    return errs
