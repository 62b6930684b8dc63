"""Structural schemas: the shape rules of a CRD's OpenAPI schema, pruning, defaulting.

A CustomResourceDefinition describes its objects with an OpenAPI v3 schema
(`spec.versions[*].schema.openAPIV3Schema`).  Since apiextensions.k8s.io/v1
that schema must be *structural* (upstream
apiextensions-apiserver/pkg/apiserver/schema): every field it talks about
has a `type`, the logical junctors (allOf, anyOf, oneOf, not) only add value
checks and never describe fields the main schema does not, metadata is left
to the API server.  That is what lets the server do three things without
understanding the kind:

* `prune`: drop every field the schema does not declare (unless
  `x-kubernetes-preserve-unknown-fields`), reporting their paths for the
  `unknown field "spec.foo"` warnings and strict errors;
* `prune_nulls` and `apply_defaults`: fill `default`s, after dropping nulls
  of fields that may not be null;
* `structural_errors`: refuse a schema that is not structural, with
  upstream's field paths and messages.

Schemas stay the plain JSON dicts the CRD carries.  Paths are rendered as
apimachinery's `field.Path` prints them: `spec.replicas`,
`properties[spec].type`, `items[0]`.  Pure functions; value validation
(type, enum, pattern, ...) lives in `crvalidation.py`.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable

from .errors import FORBIDDEN, INVALID, REQUIRED, FieldError

Schema = dict[str, Any]

# The fields of the TypeMeta and ObjectMeta a resource root (or an embedded
# resource) has; pruning leaves them to the API server.
META_FIELDS = ("apiVersion", "kind", "metadata")

# Keys that describe fields (Generic/Extensions in upstream's Structural);
# forbidden inside the logical junctors.
_FORBIDDEN_IN_JUNCTORS: tuple[tuple[str, str], ...] = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)

# Pointers upstream: set as soon as they are present, whatever their value.
_SET_WHEN_PRESENT = frozenset({"default", "additionalProperties", "externalDocs", "x-kubernetes-list-type",
                               "x-kubernetes-map-type"})

_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]

_ROOT, _ITEM, _FIELD = "root", "item", "field"


# --------------------------------------------------------------------------
# Small accessors: schemas come from users, so every read tolerates junk.


def properties(s: Schema | None) -> dict[str, Schema]:
    props = (s or {}).get("properties")
    return {k: v for k, v in props.items() if isinstance(v, dict)} if isinstance(props, dict) else {}


def items(s: Schema | None) -> Schema | None:
    it = (s or {}).get("items")
    return it if isinstance(it, dict) else None


def has_additional(s: Schema | None) -> bool:
    """Whether additionalProperties is set at all (a schema, true or false)."""
    return s is not None and "additionalProperties" in s and s["additionalProperties"] is not None


def additional(s: Schema | None) -> Schema | None:
    """The schema of additionalProperties; None for a bare true/false."""
    ap = (s or {}).get("additionalProperties")
    return ap if isinstance(ap, dict) else None


def preserves_unknown(s: Schema | None) -> bool:
    return bool((s or {}).get("x-kubernetes-preserve-unknown-fields"))


def embedded(s: Schema | None) -> bool:
    return bool((s or {}).get("x-kubernetes-embedded-resource"))


def int_or_string(s: Schema | None) -> bool:
    return bool((s or {}).get("x-kubernetes-int-or-string"))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --------------------------------------------------------------------------
# Structural rules (upstream schema/validation.go and complete.go)


def structural_errors(schema: Schema, path: str) -> list[FieldError]:
    """Why `schema` is not structural, as upstream's ValidateStructural words
    it (sorted by message, as upstream sorts them); [] when it is."""
    errs: list[FieldError] = []
    _invariants(schema, _ROOT, path, errs)
    _completeness(schema, schema, path, path, errs)
    errs.sort(key=str)
    return errs


def _junctor_clauses(s: Schema, skip_any_of: bool, skip_first_all_of_any_of: bool) -> Iterable[tuple[str, Schema]]:
    """(path suffix, clause) of every allOf/anyOf/oneOf/not clause to check."""
    if not skip_any_of:
        for i, c in enumerate(_list(s.get("anyOf"))):
            if isinstance(c, dict):
                yield f"anyOf[{i}]", c
    for i, c in enumerate(_list(s.get("allOf"))):
        if isinstance(c, dict):
            if skip_first_all_of_any_of and i == 0:
                c = {k: v for k, v in c.items() if k != "anyOf"}
            yield f"allOf[{i}]", c
    for i, c in enumerate(_list(s.get("oneOf"))):
        if isinstance(c, dict):
            yield f"oneOf[{i}]", c
    if isinstance(s.get("not"), dict):
        yield "not", s["not"]


def _is_int_or_string_any_of(s: Schema) -> bool:
    return _list(s.get("anyOf")) == _INT_OR_STRING_ANY_OF


def _is_int_or_string_all_of(s: Schema) -> bool:
    all_of = _list(s.get("allOf"))
    return bool(all_of) and isinstance(all_of[0], dict) and _list(all_of[0].get("anyOf")) == _INT_OR_STRING_ANY_OF


def _invariants(s: Schema, lvl: str, path: str, errs: list[FieldError]) -> None:
    typ = s.get("type") or ""
    if typ == "array" and "items" not in s:
        errs.append(FieldError(REQUIRED, f"{path}.items", detail="must be specified"))
    if items(s) is not None:
        _invariants(items(s) or {}, _ITEM, f"{path}.items", errs)
    for k, v in properties(s).items():
        _invariants(v, _FIELD, f"{path}.properties[{k}]", errs)
    if has_additional(s):
        if lvl == _ROOT:
            errs.append(FieldError(FORBIDDEN, f"{path}.additionalProperties", detail="must not be used at the root"))
        if additional(s) is not None:
            _invariants(additional(s) or {}, _FIELD, f"{path}.additionalProperties", errs)
    if int_or_string(s) and preserves_unknown(s):
        errs.append(FieldError(INVALID, f"{path}.x-kubernetes-preserve-unknown-fields", True,
                               "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string(s) and embedded(s):
        errs.append(FieldError(INVALID, f"{path}.x-kubernetes-embedded-resource", True,
                               "must be false if x-kubernetes-int-or-string is true"))
    for suffix, clause in _junctor_clauses(s, _is_int_or_string_any_of(s), _is_int_or_string_all_of(s)):
        _nested(clause, f"{path}.{suffix}", errs)
    pattern = s.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            errs.append(FieldError(INVALID, f"{path}.pattern", pattern,
                                   f"must be a valid regular expression, but isn't: {exc}"))
    check_metadata = lvl == _ROOT or embedded(s)
    if embedded(s) and typ != "object":
        if not typ:
            errs.append(FieldError(REQUIRED, f"{path}.type",
                                   detail="must be object if x-kubernetes-embedded-resource is true"))
        else:
            errs.append(FieldError(INVALID, f"{path}.type", typ,
                                   "must be object if x-kubernetes-embedded-resource is true"))
    elif not typ and not int_or_string(s) and not preserves_unknown(s):
        what = {_ROOT: "must not be empty at the root", _ITEM: "must not be empty for specified array items",
                _FIELD: "must not be empty for specified object fields"}[lvl]
        errs.append(FieldError(REQUIRED, f"{path}.type", detail=what))
    if embedded(s) and has_additional(s):
        errs.append(FieldError(FORBIDDEN, f"{path}.additionalProperties",
                               detail="must not be used if x-kubernetes-embedded-resource is set"))
    if lvl == _ROOT and typ and typ != "object":
        errs.append(FieldError(INVALID, f"{path}.type", typ, "must be object at the root"))
    props = properties(s)
    for meta_field in ("kind", "apiVersion"):
        if meta_field in props and check_metadata and props[meta_field].get("type") != "string":
            errs.append(FieldError(INVALID, f"{path}.properties[{meta_field}].type",
                                   props[meta_field].get("type", ""), "must be string"))
    if "metadata" in props:
        _metadata_invariants(props["metadata"], check_metadata, lvl, f"{path}.properties[metadata]", errs)
    if embedded(s) and not preserves_unknown(s) and not props:
        errs.append(FieldError(REQUIRED, f"{path}.properties", detail=(
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields")))


def _metadata_invariants(s: Schema, check_metadata: bool, lvl: str, path: str, errs: list[FieldError]) -> None:
    """Metadata may be typed object and restrict name/generateName, nothing else."""
    if check_metadata and s.get("type") != "object":
        errs.append(FieldError(INVALID, f"{path}.type", s.get("type", ""), "must be object"))
    if lvl != _ROOT:
        return
    props = properties(s)
    rest = {k: v for k, v in s.items() if k not in ("type", "default", "properties")}
    if props and set(props) - {"name", "generateName"}:
        rest["properties"] = props
    if rest:
        errs.append(FieldError(FORBIDDEN, path, detail=(
            "must not specify anything other than name and generateName, but metadata is implicitly specified")))


def _nested(v: Schema, path: str, errs: list[FieldError]) -> None:
    """A clause under allOf/anyOf/oneOf/not: value checks only."""
    for suffix, clause in _junctor_clauses(v, False, False):
        _nested(clause, f"{path}.{suffix}", errs)
    pattern = v.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            errs.append(FieldError(INVALID, f"{path}.pattern", pattern,
                                   f"must be a valid regular expression, but isn't: {exc}"))
    if items(v) is not None:
        _nested(items(v) or {}, f"{path}.items", errs)
    for k, p in properties(v).items():
        _nested(p, f"{path}.properties[{k}]", errs)
    for key, detail in _FORBIDDEN_IN_JUNCTORS:
        if key not in v:
            continue
        value = v[key]
        set_at_all = key in _SET_WHEN_PRESENT or (value is not None and value is not False and value not in ("", []))
        if set_at_all:
            errs.append(FieldError(FORBIDDEN, f"{path}.{key}", detail=detail))
    if "metadata" in properties(v):
        errs.append(FieldError(FORBIDDEN, f"{path}.properties[metadata]",
                               detail="must not be specified in a nested context"))


def _completeness(v: Schema, s: Schema | None, s_path: str, v_path: str, errs: list[FieldError]) -> None:
    """Every field a junctor names must also be in the main schema."""
    for suffix, clause in _junctor_clauses(v, False, False):
        _nested_completeness(clause, s, s_path, f"{v_path}.{suffix}", errs)


def _nested_completeness(v: Schema, s: Schema | None, s_path: str, v_path: str, errs: list[FieldError]) -> None:
    if s is None:
        errs.append(FieldError(REQUIRED, s_path, detail=f"because it is defined in {v_path}"))
        return
    _completeness(v, s, s_path, v_path, errs)
    if items(v) is not None:
        _nested_completeness(items(v) or {}, items(s), f"{s_path}.items", f"{v_path}.items", errs)
    s_props = properties(s)
    for k, p in properties(v).items():
        if k not in s_props:
            errs.append(FieldError(REQUIRED, f"{s_path}.properties[{k}]",
                                   detail=f"because it is defined in {v_path}.properties[{k}]"))
        else:
            _nested_completeness(p, s_props[k], f"{s_path}.properties[{k}]", f"{v_path}.properties[{k}]", errs)


# --------------------------------------------------------------------------
# Pruning (upstream schema/pruning): unknown fields are dropped


def prune(obj: Any, schema: Schema | None, *, root: bool = True) -> list[str]:
    """Drop from `obj` (in place) every field `schema` does not specify.

    At a resource root (and in embedded resources) apiVersion, kind and
    metadata are the API server's and are left alone.  Returns the paths of
    what was dropped, sorted, as upstream reports them (`spec.foo`,
    `spec.list[0].bar`)."""
    out: list[str] = []
    s = dict(schema or {})
    if root:
        s["x-kubernetes-embedded-resource"] = True
    _prune(obj, s, "", out)
    return sorted(out)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(x: Any, s: Schema | None, path: str, out: list[str]) -> None:
    if s is not None and preserves_unknown(s):
        _skip_prune(x, s, path, out)
        return
    if isinstance(x, dict):
        if s is None:
            out.extend(_join(path, k) for k in x)
            x.clear()
            return
        props = properties(s)
        for k in list(x):
            if embedded(s) and k in META_FIELDS:
                continue
            if k in props:
                _prune(x[k], props[k], _join(path, k), out)
            elif has_additional(s):
                _prune(x[k], additional(s), _join(path, k), out)
            else:
                out.append(_join(path, k))
                del x[k]
    elif isinstance(x, list):
        sub = items(s) if s is not None else None
        for i, v in enumerate(x):
            _prune(v, sub, f"{path}[{i}]", out)


def _skip_prune(x: Any, s: Schema, path: str, out: list[str]) -> None:
    """Under x-kubernetes-preserve-unknown-fields: keep unknown fields, still
    prune inside the ones the schema does specify."""
    if isinstance(x, dict):
        props = properties(s)
        for k, v in x.items():
            if embedded(s) and k in META_FIELDS:
                continue
            if k in props:
                _prune(v, props[k], _join(path, k), out)
            elif has_additional(s):
                _prune(v, additional(s), _join(path, k), out)
    elif isinstance(x, list):
        sub = items(s)
        if sub is not None:
            for i, v in enumerate(x):
                _skip_prune(v, sub, f"{path}[{i}]", out)


# --------------------------------------------------------------------------
# Defaulting (upstream schema/defaulting)


def _field_schema(s: Schema | None, key: str) -> Schema | None:
    if s is None:
        return None
    props = properties(s)
    if key in props:
        return props[key]
    return additional(s)


def _non_nullable_without_default(value: Any, s: Schema | None) -> bool:
    return value is None and s is not None and not s.get("nullable") and "default" not in s


def prune_nulls(x: Any, s: Schema | None) -> None:
    """Drop nulls of fields that may not be null and have no default
    (PruneNonNullableNullsWithoutDefaults): `spec: {replicas: null}` reads
    as if `replicas` were absent."""
    if isinstance(x, dict):
        for k in list(x):
            sub = _field_schema(s, k)
            if _non_nullable_without_default(x[k], sub):
                del x[k]
            else:
                prune_nulls(x[k], sub)
    elif isinstance(x, list):
        sub = items(s) if s is not None else None
        for v in x:
            prune_nulls(v, sub)


def _non_nullable_null(value: Any, s: Schema | None) -> bool:
    return value is None and s is not None and not s.get("nullable")


def apply_defaults(x: Any, s: Schema | None) -> None:
    """Fill `default`s into `x`, in place: absent fields, and nulls of fields
    that may not be null.  Defaults are deep-copied; nested defaults apply
    inside defaulted values too, as upstream's walk does."""
    if s is None:
        return
    if isinstance(x, dict):
        props = properties(s)
        for k, prop in props.items():
            if "default" not in prop:
                continue
            if k not in x or _non_nullable_null(x[k], prop):
                x[k] = copy.deepcopy(prop["default"])
        ap = additional(s)
        for k in list(x):
            if k in props:
                apply_defaults(x[k], props[k])
            elif ap is not None:
                if _non_nullable_null(x[k], ap) and "default" in ap:
                    x[k] = copy.deepcopy(ap["default"])
                apply_defaults(x[k], ap)
    elif isinstance(x, list):
        sub = items(s)
        if sub is None:
            return
        for i in range(len(x)):
            if _non_nullable_null(x[i], sub) and "default" in sub:
                x[i] = copy.deepcopy(sub["default"])
            apply_defaults(x[i], sub)


def has_defaults(s: Any) -> bool:
    """Whether any node of the schema carries a `default`."""
    if isinstance(s, dict):
        return "default" in s or any(has_defaults(v) for k, v in s.items() if k not in ("default", "enum", "example"))
    if isinstance(s, list):
        return any(has_defaults(v) for v in s)
    return False


# --------------------------------------------------------------------------
# Unfolding for publication (upstream Structural.Unfold)


def unfold(s: Schema) -> Schema:
    """A copy of `s` with what its extensions imply spelled out, as upstream
    publishes it: int-or-string fields get `anyOf: [integer, string]`,
    embedded resources get their apiVersion/kind/metadata."""
    out = {k: v for k, v in s.items()}
    if int_or_string(s) and not s.get("anyOf") and not _is_int_or_string_all_of(s):
        out["anyOf"] = copy.deepcopy(_INT_OR_STRING_ANY_OF)
    if "properties" in s and isinstance(s["properties"], dict):
        out["properties"] = {k: unfold(v) if isinstance(v, dict) else v for k, v in s["properties"].items()}
    if isinstance(s.get("items"), dict):
        out["items"] = unfold(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        out["additionalProperties"] = unfold(s["additionalProperties"])
    return out
