"""Structured merge and diff: the field sets and walks behind server-side apply.

This is the part of upstream's sigs.k8s.io/structured-merge-diff that the
API server needs, over plain JSON objects and the OpenAPI schemas kinns
already loads (`schemas.py`), written for this code base:

* A *field set* is kept in the very form `metadata.managedFields[].fieldsV1`
  has on the wire: a tree of dicts keyed by path elements -- `f:<field>`,
  `k:{"name":"web"}` for an item of a list keyed by its list-map keys,
  `v:"x"` for an item of a set, `i:3` for an index -- where `{}` is a leaf
  that belongs to the set and `".": {}` marks an inner node that belongs to
  it too.  Decoding and encoding managedFields is therefore free, and the set
  operations only walk the parts of the trees that differ, so tracking
  ownership costs little on the controllers' and kubelets' frequent writes.
  Trees are never mutated once built; operations share unchanged subtrees.
* `Schema` answers what the walks need from a type: map or list or scalar,
  atomic or granular, the keys of associative lists (`x-kubernetes-list-type`
  and `-list-map-keys`, or the patch merge key as upstream's schema
  conversion does), and which struct fields a Go zero value already holds.
* `compare` (what an update changed: added, modified, removed), `to_field_set`
  (what an applied configuration names), `merge` (an applied configuration
  over the live object, lists merged by key in upstream's order),
  `remove_items` and `ensure_named_fields_are_members` (for pruning what an
  applier stopped applying) follow upstream's walkers case by case.

`fieldmanager.py` builds managedFields bookkeeping on top of this.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from .schemas import definition, ref_name

FieldSet = dict[str, Any]
Path = tuple[str, ...]

_SCALAR, _MAP, _LIST, _UNTYPED = "scalar", "map", "list", "untyped"
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})


class SchemaError(ValueError):
    """A value the schema cannot index (an associative list item without keys, duplicate keys)."""


class _Missing:
    """An absent value, as opposed to an explicit JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# Struct fields that Go serializes even in a zero object (non-pointer structs,
# as `{}`; a non-omitempty slice, as null).  Upstream compares typed objects,
# so such a field never counts as added on its own: `f:spec` and
# `f:strategy` carry no `.` in an Update entry while `f:rollingUpdate` (a
# pointer) does.  `metadata`, `spec` and `status` are value structs in every
# built-in type and are handled by rule.
_ZERO_FIELDS: dict[str, dict[str, Any]] = {
    "io.k8s.api.apps.v1.DeploymentSpec": {"strategy": {}, "template": {}},
    "io.k8s.api.apps.v1.ReplicaSetSpec": {"template": {}},
    "io.k8s.api.apps.v1.StatefulSetSpec": {"template": {}, "updateStrategy": {}},
    "io.k8s.api.apps.v1.DaemonSetSpec": {"template": {}, "updateStrategy": {}},
    "io.k8s.api.batch.v1.JobSpec": {"template": {}},
    "io.k8s.api.batch.v1.CronJobSpec": {"jobTemplate": {}},
    "io.k8s.api.core.v1.PodTemplate": {"template": {}},
    "io.k8s.api.core.v1.PodSpec": {"containers": None},
    "io.k8s.api.core.v1.Container": {"resources": {}},
    "io.k8s.api.core.v1.EphemeralContainer": {"resources": {}},
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec": {"resources": {}},
    "io.k8s.api.core.v1.ServiceStatus": {"loadBalancer": {}},
    "io.k8s.api.networking.v1.IngressStatus": {"loadBalancer": {}},
    "io.k8s.api.core.v1.NodeStatus": {"daemonEndpoints": {}, "nodeInfo": {}},
    "io.k8s.api.core.v1.NodeDaemonEndpoints": {"kubeletEndpoint": {}},
    "io.k8s.api.core.v1.Event": {"involvedObject": {}, "source": {}},
    "io.k8s.api.rbac.v1.RoleBinding": {"roleRef": {}},
    "io.k8s.api.rbac.v1.ClusterRoleBinding": {"roleRef": {}},
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerSpec": {"scaleTargetRef": {}},
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec": {"scaleTargetRef": {}},
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec": {"names": {}},
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus": {"acceptedNames": {}},
}
_ZERO_BY_RULE = ("metadata", "spec", "status")

# Defaults of list-map key fields (`+default="TCP"` upstream), used when an
# item leaves the key out, so `{containerPort: 80}` and the defaulted
# `{containerPort: 80, protocol: TCP}` are the same item.
_KEY_DEFAULTS: dict[tuple[str, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
}


def _scalar_alternatives(node: dict[str, Any]) -> bool:
    alts = node.get("oneOf") or node.get("anyOf")
    if not isinstance(alts, list) or not alts:
        return False
    for alt in alts:
        t = alt.get("type") if isinstance(alt, dict) else None
        ts = t if isinstance(t, list) else [t]
        if not any(x in _SCALAR_TYPES for x in ts):
            return False
    return True


# ------------------------------------------------------------------ schema


class Schema:
    """One position in a type: what the walks need to know about it.

    Built lazily from an OpenAPI node: the built-in definitions (with `$ref`s
    resolved through `schemas.definition`) or a CRD's inline
    openAPIV3Schema.  Children are made on first use and kept, so a walk
    over a kind costs dictionary lookups after the first time.
    """

    __slots__ = ("kind", "atomic", "keys", "def_name", "_props", "_extra", "_items",
                 "_fields", "_elem", "_zero", "_builtin", "_key_defaults")

    def __init__(self, node: dict[str, Any] | None, *, builtin: bool) -> None:
        self._builtin = builtin
        self.def_name = ""
        self._props: dict[str, Any] = {}
        self._extra: Any = None
        self._items: Any = None
        self._fields: dict[str, Schema] = {}
        self._elem: Schema | None = None
        self._zero: dict[str, Any] | None = None
        self._key_defaults: dict[str, Any] | None = None
        self.atomic = False
        self.keys: tuple[str, ...] = ()
        self.kind = _UNTYPED
        if node is not None:
            self._parse(node)

    def _parse(self, node: dict[str, Any]) -> None:
        ext: dict[str, Any] = {}
        for _ in range(32):
            for k, v in node.items():
                if k.startswith("x-kubernetes-") and k not in ext:
                    ext[k] = v
            ref = node.get("$ref")
            if isinstance(ref, str):
                self.def_name = ref_name(ref)
                target = definition(self.def_name)
                if target is None:
                    break
                node = target
                continue
            all_of = node.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                node = all_of[0]
                continue
            break
        types = node.get("type")
        if isinstance(types, list):
            types = next((t for t in types if t != "null"), None)
        if ext.get("x-kubernetes-int-or-string") or _scalar_alternatives(node):
            self.kind = _SCALAR
        elif types == "array" or (types is None and "items" in node):
            self.kind = _LIST
            self._items = node.get("items")
            self._list_semantics(ext)
        elif types == "object" or (types is None and ("properties" in node or "additionalProperties" in node)):
            props = node.get("properties")
            extra = node.get("additionalProperties")
            if props or isinstance(extra, dict):
                self.kind = _MAP
                self._props = props if isinstance(props, dict) else {}
                self._extra = extra if isinstance(extra, dict) else None
                self.atomic = ext.get("x-kubernetes-map-type") == "atomic"
            # else: RawExtension, preserve-unknown-fields: deduced from the value
        elif types in _SCALAR_TYPES:
            self.kind = _SCALAR

    def _list_semantics(self, ext: dict[str, Any]) -> None:
        """Atomic, set or map list, as upstream's schema conversion decides."""
        list_type = ext.get("x-kubernetes-list-type")
        if list_type is not None:
            if list_type == "map":
                self.keys = tuple(ext.get("x-kubernetes-list-map-keys") or ())
            elif list_type != "set":
                self.atomic = True
            return
        strategy = str(ext.get("x-kubernetes-patch-strategy") or "")
        if "merge" in strategy.split(","):
            key = ext.get("x-kubernetes-patch-merge-key")
            self.keys = (key,) if isinstance(key, str) else ()
        else:
            self.atomic = True

    # -- lookups ----------------------------------------------------------

    def declares(self, name: str) -> bool:
        """Whether `name` is a struct field here (not an entry of a map)."""
        return name in self._props

    def field(self, name: str) -> Schema:
        s = self._fields.get(name)
        if s is None:
            node = self._props.get(name)
            if node is None:
                node = self._extra
            s = Schema(node, builtin=self._builtin) if isinstance(node, dict) else UNTYPED
            self._fields[name] = s
        return s

    @property
    def elem(self) -> Schema:
        if self._elem is None:
            self._elem = Schema(self._items, builtin=self._builtin) if isinstance(self._items, dict) else UNTYPED
        return self._elem

    @property
    def zero(self) -> dict[str, Any]:
        """Fields a Go zero value of this struct serializes (built-in types only)."""
        if self._zero is None:
            zero: dict[str, Any] = {}
            if self._builtin and self.kind == _MAP:
                for name in _ZERO_BY_RULE:
                    if name in self._props and self.field(name).kind == _MAP and self.field(name)._props:
                        zero[name] = {}
                zero.update(_ZERO_FIELDS.get(self.def_name, {}))
            self._zero = zero
        return self._zero

    def key_default(self, key: str) -> Any:
        """The default of a list-map key field of this list's items, or None."""
        if self._key_defaults is None:
            out: dict[str, Any] = {}
            item = self.elem
            for k in self.keys:
                node = item._props.get(k)
                if isinstance(node, dict) and "default" in node:
                    out[k] = node["default"]
                elif (item.def_name, k) in _KEY_DEFAULTS:
                    out[k] = _KEY_DEFAULTS[(item.def_name, k)]
            self._key_defaults = out
        return self._key_defaults.get(key)

    def item_pe(self, item: Any) -> str:
        """The path element naming one item of this (associative) list."""
        if self.keys:
            if not isinstance(item, dict):
                raise SchemaError("associative list with keys may not have non-map elements")
            fields: dict[str, Any] = {}
            for k in self.keys:
                if k in item:
                    fields[k] = item[k]
                else:
                    d = self.key_default(k)
                    if d is not None:
                        fields[k] = d
            if not fields:
                raise SchemaError("associative list with keys has an element that omits all key fields "
                                  f"{list(self.keys)} (and doesn't have default values for any key fields)")
            return "k:" + go_json(fields, sort=len(fields) > 1)
        if isinstance(item, (dict, list)):
            raise SchemaError("associative list without keys has an element that's a map type")
        if item is None:
            raise SchemaError("associative list without keys has an element that's an explicit null")
        return "v:" + go_json(item)


UNTYPED = Schema(None, builtin=False)


@functools.cache
def for_definition(name: str) -> Schema:
    """The root schema of a built-in kind (e.g. io.k8s.api.apps.v1.Deployment), made once."""
    return Schema({"$ref": "#/$defs/" + name}, builtin=True)


def from_openapi(node: dict[str, Any]) -> Schema:
    """The schema of a CRD version (its openAPIV3Schema); keep and reuse the result.

    `metadata` is the built-in ObjectMeta whatever the CRD says, as upstream's
    type converter for custom resources has it (ownerReferences keyed by uid,
    finalizers a set)."""
    props = dict(node.get("properties") or {})
    props["metadata"] = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return Schema(dict(node, properties=props, type="object"), builtin=False)
_DEDUCED_MAP = Schema({"type": "object", "additionalProperties": {}}, builtin=False)


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return _MAP
    if isinstance(value, list):
        return _LIST
    return _SCALAR


def _resolve(sch: Schema, value: Any) -> tuple[str, Schema]:
    """The effective kind at a position: deduced from the value where the schema is silent.

    Deduced lists are atomic and deduced maps granular, as upstream's
    `deduced` type."""
    if sch.kind != _UNTYPED:
        return sch.kind, sch
    k = _kind_of(value)
    if k == _MAP:
        return _MAP, _DEDUCED_MAP
    return (_LIST if k == _LIST else _SCALAR), UNTYPED


# ------------------------------------------------------------ path elements


def go_json(value: Any, *, sort: bool = False) -> str:
    """Compact JSON as Go's encoder writes it (HTML characters escaped)."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort else 0).decode()
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text


def _go_string(value: Any) -> str:
    """A value as SMD's value.ToString prints it inside a path."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_go_string(v)}" for k, v in value.items())
    return str(value)


def pe_string(pe: str) -> str:
    """`f:replicas` -> `.replicas`, `k:{"name":"web"}` -> `[name="web"]`, as conflicts name paths."""
    tag, rest = pe[:2], pe[2:]
    if tag == "f:":
        return "." + rest
    if tag == "k:":
        fields = json.loads(rest)
        return "[" + ",".join(f"{k}={_go_string(v)}" for k, v in fields.items()) + "]"
    if tag == "v:":
        return "[=" + _go_string(json.loads(rest)) + "]"
    if tag == "i:":
        return f"[{rest}]"
    return "{{invalid path element}}"


def path_string(path: Path) -> str:
    return "".join(pe_string(pe) for pe in path)


def parse_path(text: str) -> Path:
    """`.spec.replicas` -> (`f:spec`, `f:replicas`): the replicas paths of scale subresources."""
    return tuple("f:" + part for part in text.strip(".").split(".") if part)


_PE_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def _pe_order(pe: str) -> tuple[int, Any]:
    if pe[:1] == "i":
        return (3, int(pe[2:]))
    return (_PE_RANK.get(pe[:1], 4), pe[2:])


# --------------------------------------------------------------- field sets
#
# Node-level helpers take and return tree nodes: `{}` is a member leaf, a
# dict with children is a member iff it holds ".", None is "nothing".  The
# `fs_*` functions work on whole sets, whose root is never a member.


def _member(node: dict[str, Any]) -> bool:
    return not node or "." in node


def _finish(node: dict[str, Any], member: bool) -> dict[str, Any] | None:
    """Normalize a freshly built node (which may be mutated): membership mark, emptiness.

    "." goes first, where upstream's serializer writes it."""
    has_dot = "." in node
    if len(node) - has_dot == 0:
        return {} if member else None
    if member and not has_dot:
        return {".": {}, **node}
    if not member and has_dot:
        del node["."]
    return node


def _union(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if a is b:
        return a
    if not b:
        return a if _member(a) else {".": {}, **a}
    if not a:
        return b if "." in b else {".": {}, **b}
    out = {".": {}, **a} if "." in b and "." not in a else dict(a)
    for k, bv in b.items():
        if k != ".":
            av = out.get(k)
            out[k] = bv if av is None else _union(av, bv)
    return out


def _subtract_children(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """`a` with each child that `b` also has replaced by their difference (removed
    when nothing is left); None when no child changed, so callers can keep `a`
    itself (copy on write: most applies leave most of a set untouched)."""
    out: dict[str, Any] | None = None
    for k, bv in b.items():
        if k == ".":
            continue
        av = a.get(k)
        if av is None:
            continue
        r = _difference(av, bv)
        if r is av:
            continue
        if out is None:
            out = dict(a)
        if r is None:
            del out[k]
        else:
            out[k] = r
    return out


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    if a is b:
        return None
    a_member, b_member = _member(a), _member(b)
    if not a:
        return None if b_member else a
    out = _subtract_children(a, b)
    if out is None:
        if not (a_member and b_member):
            return a
        out = dict(a)
    return _finish(out, a_member and not b_member)


def _intersection(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    if a is b:
        return a
    member = _member(a) and _member(b)
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    out: dict[str, Any] = {}
    for k, sv in small.items():
        if k == ".":
            continue
        bv = big.get(k)
        if bv is None:
            continue
        r = _intersection(sv, bv)
        if r is not None:
            out[k] = r
    return _finish(out, member)


def fs_union(a: FieldSet, b: FieldSet) -> FieldSet:
    if not b:
        return a
    if not a:
        return b
    out = dict(a)
    for k, bv in b.items():
        av = out.get(k)
        out[k] = bv if av is None else _union(av, bv)
    return out


def fs_difference(a: FieldSet, b: FieldSet) -> FieldSet:
    if not a or not b:
        return a
    out = _subtract_children(a, b)
    return a if out is None else out


def fs_intersection(a: FieldSet, b: FieldSet) -> FieldSet:
    if not a or not b:
        return {}
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    out: FieldSet = {}
    for k, sv in small.items():
        bv = big.get(k)
        if bv is not None:
            r = _intersection(sv, bv)
            if r is not None:
                out[k] = r
    return out


def fs_from_paths(*paths: Path) -> FieldSet:
    out: FieldSet = {}
    for p in paths:
        node: dict[str, Any] = {}
        for pe in reversed(p):
            node = {pe: node}
        out = fs_union(out, node)
    return out


def fs_has(s: FieldSet, path: Path) -> bool:
    node: Any = s
    for pe in path:
        if not isinstance(node, dict) or (pe not in node):
            return False
        node = node[pe]
    return bool(path) and isinstance(node, dict) and _member(node)


def fs_paths(s: FieldSet) -> Iterator[Path]:
    """Every member path, in upstream's order (a level's members, then its children)."""
    def walk(node: dict[str, Any], prefix: Path) -> Iterator[Path]:
        keys = sorted((k for k in node if k != "."), key=_pe_order)
        for k in keys:
            if _member(node[k]):
                yield prefix + (k,)
        for k in keys:
            if node[k]:
                yield from walk(node[k], prefix + (k,))
    return walk(s, ())


def fs_canonical(s: FieldSet) -> FieldSet:
    """A set as upstream serializes it: "." first, then path elements in order."""
    def canon(node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "." in node and len(node) > 1:
            out["."] = {}
        for k in sorted((k for k in node if k != "."), key=_pe_order):
            out[k] = canon(node[k])
        return out
    return canon(s)


def ensure_named_fields_are_members(s: FieldSet, sch: Schema) -> FieldSet:
    """Every struct field that has owned children becomes a member itself (upstream's
    EnsureNamedFieldsAreMembers), so pruning can tell an applier's structs apart."""
    def walk(node: dict[str, Any], sch: Schema) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        for k, child in node.items():
            if k == "." or not child:
                continue
            tag, name = k[:2], k[2:]
            if tag == "f:":
                sub = sch.field(name) if sch.kind == _MAP else UNTYPED
                new = walk(child, sub)
                if sch.kind == _MAP and sch.declares(name) and "." not in new:
                    new = dict(new)
                    new["."] = {}
            elif tag == "k:" and sch.kind == _LIST:
                new = walk(child, sch.elem)
            else:
                continue
            if new is not child:
                if out is None:
                    out = dict(node)
                out[k] = new
        return node if out is None else out
    return walk(s, sch)


# ------------------------------------------------------------------ compare


@dataclass
class Comparison:
    """What an update changed: fields it added, modified and removed."""

    added: FieldSet
    modified: FieldSet
    removed: FieldSet


_NONE3: tuple[None, None, None] = (None, None, None)
_Nodes = tuple["dict[str, Any] | None", "dict[str, Any] | None", "dict[str, Any] | None"]


def compare(lhs: Any, rhs: Any, sch: Schema) -> Comparison:
    """Compare two objects of one type (upstream's TypedValue.Compare).

    Raises SchemaError for values the schema cannot index."""
    a, m, r = _cmp(lhs, rhs, sch)
    return Comparison(_root(a), _root(m), _root(r))


def _root(node: dict[str, Any] | None) -> FieldSet:
    if not node:
        return {}
    if "." in node:
        node = dict(node)
        del node["."]
    return node


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _leaf(l: Any, r: Any) -> _Nodes:
    if l is MISSING:
        return {}, None, None
    if r is MISSING:
        return None, None, {}
    if not _same(l, r):
        return None, {}, None
    return _NONE3


def _cmp(l: Any, r: Any, sch: Schema) -> _Nodes:
    if l is not MISSING and r is not MISSING and _same(l, r):
        return _NONE3
    kind, sch = _resolve(sch, r if r is not MISSING else l)
    if kind == _MAP:
        lm = l if isinstance(l, dict) else None
        rm = r if isinstance(r, dict) else None
        if (lm is None and l not in (None, MISSING)) or (rm is None and r not in (None, MISSING)):
            return _leaf(l, r)
        if sch.atomic or (not lm and not rm):
            return _leaf(l, r)
        return _cmp_map(l, r, lm, rm, sch)
    if kind == _LIST:
        ll = l if isinstance(l, list) else None
        rl = r if isinstance(r, list) else None
        if (ll is None and l not in (None, MISSING)) or (rl is None and r not in (None, MISSING)):
            return _leaf(l, r)
        if sch.atomic or (not ll and not rl):
            return _leaf(l, r)
        return _cmp_list(l, r, ll or [], rl or [], sch)
    return _leaf(l, r)


def _put(children: dict[str, Any] | None, key: str, node: dict[str, Any] | None) -> dict[str, Any] | None:
    if node is None:
        return children
    if children is None:
        children = {}
    children[key] = node
    return children


def _cmp_map(l: Any, r: Any, lm: dict[str, Any] | None, rm: dict[str, Any] | None, sch: Schema) -> _Nodes:
    zero = sch.zero
    field = sch.field
    added: dict[str, Any] | None = None
    modified: dict[str, Any] | None = None
    removed: dict[str, Any] | None = None

    def visit(k: str, lv: Any, rv: Any) -> None:
        nonlocal added, modified, removed
        a, m, d = _cmp(lv, rv, field(k))
        pe = "f:" + k
        if a is not None:
            if added is None:
                added = {}
            added[pe] = a
        if m is not None:
            if modified is None:
                modified = {}
            modified[pe] = m
        if d is not None:
            if removed is None:
                removed = {}
            removed[pe] = d

    if lm is not None and rm is not None:
        # Zero-value fields absent on both sides are equal; only one-sided ones count.
        for k, lv in lm.items():
            rv = rm.get(k, MISSING)
            if rv is MISSING:
                if zero and k in zero:
                    rv = zero[k]
            elif lv == rv and type(lv) is type(rv):
                continue
            if not (lv == rv and type(lv) is type(rv)):
                visit(k, lv, rv)
        for k, rv in rm.items():
            if k not in lm:
                lv = zero[k] if zero and k in zero else MISSING
                if not (lv == rv and type(lv) is type(rv)):
                    visit(k, lv, rv)
    else:
        present = lm if lm is not None else rm
        if present:
            for k, v in present.items():
                if lm is not None:
                    visit(k, v, MISSING)
                else:
                    visit(k, MISSING, v)
        if zero and present is not None:
            for k, z in zero.items():
                if k not in present:
                    if lm is not None:
                        visit(k, z, MISSING)
                    else:
                        visit(k, MISSING, z)
    return (_finish(added or {}, l is MISSING), _finish(modified or {}, False),
            _finish(removed or {}, r is MISSING))


def _index(items: list[Any], sch: Schema) -> tuple[list[str], dict[str, list[Any]]]:
    order: list[str] = []
    found: dict[str, list[Any]] = {}
    for item in items:
        pe = sch.item_pe(item)
        got = found.get(pe)
        if got is None:
            found[pe] = [item]
            order.append(pe)
        else:
            got.append(item)
    return order, found


def _cmp_list(l: Any, r: Any, ll: list[Any], rl: list[Any], sch: Schema) -> _Nodes:
    lorder, lfound = _index(ll, sch)
    rorder, rfound = _index(rl, sch)
    elem = sch.elem
    added = modified = removed = None
    for pe in lorder + [pe for pe in rorder if pe not in lfound]:
        lv, rv = lfound.get(pe, []), rfound.get(pe, [])
        if len(lv) <= 1 and len(rv) <= 1:
            a, m, d = _cmp(lv[0] if lv else MISSING, rv[0] if rv else MISSING, elem)
        elif len(lv) >= 2 and len(rv) >= 2:
            a, m, d = None, (None if lv == rv else {}), None
        elif len(lv) >= 2:
            a, m, d = _cmp(MISSING, rv[0], elem) if rv else _NONE3
            d = {}
        else:
            a, m, d = _cmp(lv[0], MISSING, elem) if lv else _NONE3
            a = {}
        added = _put(added, pe, a)
        modified = _put(modified, pe, m)
        removed = _put(removed, pe, d)
    return (_finish(added or {}, l is MISSING), _finish(modified or {}, False),
            _finish(removed or {}, r is MISSING))


# ------------------------------------------------------------- to_field_set


def to_field_set(value: Any, sch: Schema) -> FieldSet:
    """The fields a value sets (upstream's ToFieldSet): what an applier comes to own."""
    children, _ = _tfs(value, sch)
    return children or {}


def _tfs(v: Any, sch: Schema) -> tuple[dict[str, Any] | None, bool]:
    """(children, the path itself is a member) for one value."""
    kind, sch = _resolve(sch, v)
    if kind == _SCALAR or (kind == _MAP and v is not None and not isinstance(v, dict)) \
            or (kind == _LIST and v is not None and not isinstance(v, list)):
        return None, True
    if sch.atomic:
        return None, True
    if kind == _LIST:
        if not v:
            return None, False
        pes = [sch.item_pe(item) for item in v]
        seen: set[str] = set()
        dups: set[str] = set()
        for pe in pes:
            (dups if pe in seen else seen).add(pe)
        out: dict[str, Any] = {}
        for pe, item in zip(pes, v):
            if pe in dups:
                out[pe] = {}
                continue
            c, _ = _tfs(item, sch.elem)
            node = _finish(c or {}, True)
            assert node is not None
            out[pe] = node
        return out or None, False
    if not v:
        return None, False
    out = {}
    for k, val in v.items():
        c, member = _tfs(val, sch.field(k))
        member = member or val is None or (isinstance(val, dict) and not val) or not sch.declares(k)
        node = _finish(c or {}, member)
        if node is not None:
            out["f:" + k] = node
    return out or None, False


# -------------------------------------------------------------------- merge


def merge(lhs: Any, rhs: Any, sch: Schema) -> Any:
    """`rhs` (an applied configuration) merged over `lhs` (the live object).

    Maps merge key by key, associative lists item by item in upstream's
    order, atomic values and scalars are replaced."""
    return _merge(lhs, rhs, sch)


def _merge(l: Any, r: Any, sch: Schema) -> Any:
    if r is MISSING:
        return l
    if l is MISSING:
        return r
    kind, sch = _resolve(sch, r if r is not None else l)
    if kind == _MAP:
        if not isinstance(r, dict):
            return l if (r is None and isinstance(l, dict) and l and not sch.atomic) else r
        if not isinstance(l, dict) or sch.atomic or (not l and not r):
            return r
        out = dict(l)
        for k, rv in r.items():
            out[k] = _merge(l.get(k, MISSING), rv, sch.field(k))
        return out
    if kind == _LIST:
        if not isinstance(r, list):
            return l if (r is None and isinstance(l, list) and l and not sch.atomic) else r
        if not isinstance(l, list) or sch.atomic or (not l and not r):
            return r
        return _merge_list(l, r, sch)
    return r


def _merge_list(ll: list[Any], rl: list[Any], sch: Schema) -> list[Any]:
    """Associative lists: upstream's order -- live items keep their places, shared items
    follow the applied order, new applied items come where the configuration puts them."""
    elem = sch.elem
    rpes: list[str] = []
    robs: dict[str, Any] = {}
    for item in rl:
        pe = sch.item_pe(item)
        if pe in robs:
            raise SchemaError(f"duplicate entries for key {pe_string(pe)}")
        robs[pe] = item
        rpes.append(pe)
    lpes: list[str] = []
    lobs: dict[str, Any] = {}
    for item in ll:
        pe = sch.item_pe(item)
        lobs[pe] = MISSING if pe in lobs else item   # duplicated live items are not merged
        lpes.append(pe)
    shared = [pe for pe in rpes if pe in lobs]
    si = 0

    def next_of() -> str | None:
        nonlocal si
        if si < len(shared):
            si += 1
            return shared[si - 1]
        return None

    next_shared = next_of()
    merged_r: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                merged_r.add(pe)
                out.append(_merge(lobs[pe], robs[pe], elem))
                li += 1
                ri += 1
                next_shared = next_of()
                continue
            if pe in robs and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in robs:
                out.append(ll[li])
                li += 1
                continue
            if pe in merged_r:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            merged_r.add(pe)
            out.append(_merge(lobs.get(pe, MISSING), robs[pe], elem))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = next_of()
    return out


# ------------------------------------------------------------- remove_items

_GONE: Any = object()


def remove_items(value: Any, s: FieldSet, sch: Schema) -> Any:
    """`value` without the members of `s` (each with everything under it).

    A map or list emptied by the removal disappears from its parent."""
    out = _remove(value, s, sch)
    return {} if out is _GONE else out


def _remove(v: Any, s: dict[str, Any], sch: Schema) -> Any:
    kind, sch = _resolve(sch, v)
    if kind == _LIST and isinstance(v, list):
        if not v:
            return v
        if sch.atomic:
            return _GONE
        items = []
        for item in v:
            pe = sch.item_pe(item)
            sub = s.get(pe)
            if sub is not None and _member(sub):
                continue
            if sub:
                item = _remove(item, sub, sch.elem)
                if item is _GONE:
                    continue
            items.append(item)
        return items if items else _GONE
    if kind == _MAP and isinstance(v, dict):
        if not v:
            return v
        if sch.atomic:
            return _GONE
        out = {}
        for k, val in v.items():
            sub = s.get("f:" + k)
            if sub is not None and _member(sub):
                continue
            if sub:
                val = _remove(val, sub, sch.field(k))
                if val is _GONE:
                    continue
            out[k] = val
        return out if out else _GONE
    return v


# ------------------------------------------------------------------ helpers


def get_path(obj: Any, path: Path) -> Any:
    """The value at a path of `f:` elements, or MISSING."""
    for pe in path:
        if not isinstance(obj, dict) or pe[2:] not in obj:
            return MISSING
        obj = obj[pe[2:]]
    return obj


def duplicate_keys(value: Any, sch: Schema) -> str | None:
    """The first list item of an applied configuration that repeats a key, in upstream's
    words (`.spec.containers: duplicate entries for key [name="a"]`), or None."""
    def walk(v: Any, sch: Schema, path: Path) -> str | None:
        kind, sch = _resolve(sch, v)
        if sch.atomic:
            return None
        if kind == _LIST and isinstance(v, list):
            seen: set[str] = set()
            for item in v:
                pe = sch.item_pe(item)
                if pe in seen:
                    return f"{path_string(path)}: duplicate entries for key {pe_string(pe)}"
                seen.add(pe)
                found = walk(item, sch.elem, path + (pe,))
                if found:
                    return found
        elif kind == _MAP and isinstance(v, dict):
            for k, val in v.items():
                found = walk(val, sch.field(k), path + ("f:" + k,))
                if found:
                    return found
        return None
    return walk(value, sch, ())
