"""The three PATCH flavours kubectl sends, applied to plain JSON objects.

`kubectl patch --type=json` sends an RFC 6902 operation list, `--type=merge`
an RFC 7386 merge patch, and everything else (plain `kubectl patch`,
client-side `kubectl apply`, `kubectl edit`, `scale`, `label`, ...) a
*strategic merge patch*.  The strategic flavour is a merge patch that knows
the schema: lists marked `x-kubernetes-patch-strategy: merge` in the upstream
OpenAPI definitions merge item by item on their merge key (containers by
`name`, container ports by `containerPort`) instead of being replaced, and
`$`-prefixed directives (`$patch`, `$setElementOrder/<f>`, `$retainKeys`,
`$deleteFromPrimitiveList/<f>`) say what a plain diff cannot.  The semantics
follow apimachinery's `strategicpatch` package; the code is our own.

Every function returns a new object and never mutates its inputs.  Failures
are `ApiError`s with the codes the upstream API server uses: 400 for a patch
that is malformed, 422 for one that is well formed but does not apply.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .errors import ApiError, bad_request
from .schemas import definition, ref_name

# --------------------------------------------------------------------- helpers


def _unprocessable(detail: str) -> ApiError:
    """422 as upstream's `NewGenericServerResponse(422, ...)` for a patch that cannot apply."""
    return ApiError(
        422, "Invalid",
        f"the server rejected our request due to an error in our request: {detail}",
    )


def _q(text: Any) -> str:
    """Quote like Go's %q, so messages read as upstream's."""
    return json.dumps(text)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ==, `true` is not `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


# ------------------------------------------------------------ RFC 6902 (JSON)


def _pointer(path: Any) -> list[str]:
    """Split a JSON pointer into unescaped tokens (`~1` is `/`, `~0` is `~`)."""
    if not isinstance(path, str):
        raise bad_request(f"invalid JSON pointer {_q(path)}: not a string")
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f'JSON pointer must be empty or start with a "/": {_q(path)}')
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, path: str, *, allow_end: bool) -> int:
    """An array index token: decimal without leading zeros, or `-` (one past the end) for add."""
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _unprocessable(f"invalid array index {_q(token)} in path {_q(path)}")
    i = int(token)
    if i > length or (i == length and not allow_end):
        raise _unprocessable(f"array index {i} out of bounds in path {_q(path)}")
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    """The container that holds the last token of `path`; it must exist."""
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _unprocessable(f"doc is missing path: {_q(path)}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(tok, len(cur), path, allow_end=False)]
        else:
            raise _unprocessable(f"doc is missing path: {_q(path)}")
    if not isinstance(cur, (dict, list)):
        raise _unprocessable(f"doc is missing path: {_q(path)}")
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"doc is missing path: {_q(path)}")
        return parent[last]
    return parent[_index(last, len(parent), path, allow_end=False)]


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_index(tokens[-1], len(parent), path, allow_end=True), value)
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    """Remove the value at `path`; returns (doc, removed value)."""
    tokens = _pointer(path)
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise _unprocessable(f"remove operation does not apply: doc is missing path: {_q(path)}")
        return doc, parent.pop(tokens[-1])
    return doc, parent.pop(_index(tokens[-1], len(parent), path, allow_end=False))


def _field(op: dict[str, Any], name: str, i: int) -> Any:
    if name not in op:
        raise bad_request(f"json patch operation {i} ({op.get('op')}) is missing field {_q(name)}")
    return op[name]


def apply_json_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 6902 operation list; operations apply in order to one working copy."""
    if not isinstance(patch, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc: Any = copy.deepcopy(obj)
    for i, op in enumerate(patch):
        if not isinstance(op, dict):
            raise bad_request(f"json patch operation {i} is not an object")
        kind = op.get("op")
        path = _field(op, "path", i)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(_field(op, "value", i)))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            value = copy.deepcopy(_field(op, "value", i))
            try:
                _get(doc, path)
            except ApiError:
                raise _unprocessable(f"replace operation does not apply: doc is missing key: {_q(path)}") from None
            doc = value if path == "" else _set_existing(doc, path, value)
        elif kind == "move":
            src = _field(op, "from", i)
            if path != src and path.startswith(src + "/"):
                raise _unprocessable(f"cannot move {_q(src)} into its own child {_q(path)}")
            doc, value = _remove(doc, src) if src else (None, doc)
            doc = _add(doc, path, value)
        elif kind == "copy":
            value = copy.deepcopy(_get(doc, _field(op, "from", i)))
            doc = _add(doc, path, value)
        elif kind == "test":
            want = _field(op, "value", i)
            try:
                have = _get(doc, path)
            except ApiError:
                raise _unprocessable(f"testing value {path} failed: doc is missing path") from None
            if not _json_equal(have, want):
                raise _unprocessable(f"testing value {path} failed: test failed")
        else:
            raise bad_request(f"unexpected json patch operation {_q(kind)}")
    if not isinstance(doc, dict):
        raise _unprocessable("the patch did not produce an object")
    return doc


def _set_existing(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent[_index(tokens[-1], len(parent), path, allow_end=False)] = value
    return doc


# ----------------------------------------------------------- RFC 7386 (merge)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def apply_merge_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 7386: objects merge recursively, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    return copy.deepcopy(_merge(obj, patch))


# ---------------------------------------------------- strategic merge patch

_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DEL_PRIM = "$deleteFromPrimitiveList/"


class _Schema:
    """A position in the OpenAPI definitions: what lies under a key or in a list."""

    def __init__(self, node: dict[str, Any] | None) -> None:
        self.node = self._resolve(node)

    @staticmethod
    def _resolve(node: dict[str, Any] | None) -> dict[str, Any] | None:
        # Follow $ref chains (and single-element allOf wrappers) to the definition body.
        seen = 0
        while node is not None and seen < 32:
            seen += 1
            if "$ref" in node:
                node = definition(ref_name(node["$ref"]))
            elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
                node = node["allOf"][0]
            else:
                break
        return node

    def prop(self, key: str) -> tuple["_Schema", dict[str, Any]]:
        """Schema of `key` plus the raw property node carrying its patch metadata."""
        if self.node is None:
            return _Schema(None), {}
        props = self.node.get("properties") or {}
        if key in props:
            return _Schema(props[key]), props[key]
        extra = self.node.get("additionalProperties")
        if isinstance(extra, dict):
            return _Schema(extra), {}
        return _Schema(None), {}

    def items(self) -> "_Schema":
        return _Schema((self.node or {}).get("items"))


def _strategy(meta: dict[str, Any]) -> tuple[set[str], str | None]:
    raw = meta.get("x-kubernetes-patch-strategy") or ""
    return {s.strip() for s in raw.split(",") if s.strip()}, meta.get("x-kubernetes-patch-merge-key")


def _merge_map(orig: dict[str, Any], patch: dict[str, Any], schema: _Schema) -> dict[str, Any]:
    """Merge one patch map into `orig` (mergeMap upstream); `orig` is already a private copy."""
    directive = patch.get(_DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            replaced: dict[str, Any] = _strip(patch, schema)
            return replaced
        if directive == "delete":
            return {}
        raise bad_request(f"Unknown patch type: {directive}")

    out = dict(orig)
    retain = patch.get(_RETAIN)
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("invalid patch format of retainKeys")
        keep = set(retain)
        for k in patch:
            if not k.startswith("$") and k not in keep and patch[k] is not None:
                raise _unprocessable("patch content doesn't match retainKeys list")
        out = {k: v for k, v in out.items() if k in keep}

    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k.startswith(_DEL_PRIM):
            field = k[len(_DEL_PRIM):]
            if not isinstance(v, list):
                raise bad_request("invalid patch format of primitive list")
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if not any(_json_equal(x, d) for d in v)]
        elif k.startswith(_ORDER):
            if not isinstance(v, list):
                raise bad_request("invalid patch format of setElementOrder list")
            orders[k[len(_ORDER):]] = v

    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
            continue
        sub, meta = schema.prop(k)
        strategies, merge_key = _strategy(meta)
        cur = out.get(k)
        if isinstance(v, dict):
            if "replace" in strategies:
                out[k] = _strip(v, sub)
            else:
                out[k] = _merge_map(cur if isinstance(cur, dict) else {}, v, sub)
        elif isinstance(v, list):
            base = cur if isinstance(cur, list) else []
            out[k] = _merge_list(base, v, sub.items(), strategies, merge_key)
        else:
            out[k] = copy.deepcopy(v)

    for field, order in orders.items():
        if isinstance(out.get(field), list):
            _, meta = schema.prop(field)
            out[field] = _reorder(orig.get(field) or [], out[field], order, _strategy(meta)[1])
    return out


def _strip(value: Any, schema: _Schema) -> Any:
    """A patch value used verbatim (new key or `$patch: replace`), with directives and nulls dropped."""
    if isinstance(value, dict):
        if value.get(_DIRECTIVE) == "delete":
            return {}
        return {k: _strip(v, schema.prop(k)[0]) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v, schema.items()) for v in value]
    return copy.deepcopy(value)


def _merge_list(orig: list[Any], patch: list[Any], items: _Schema,
                strategies: set[str], merge_key: str | None) -> list[Any]:
    """Lists: replaced unless the schema says `merge`; then union primitives or merge maps by key."""
    if "merge" not in strategies:
        stripped: list[Any] = _strip(patch, items)
        return stripped
    if any(isinstance(p, dict) and p.get(_DIRECTIVE) == "replace" for p in patch):
        return [_strip(p, items) for p in patch if not (isinstance(p, dict) and _DIRECTIVE in p)]
    if not merge_key or not any(isinstance(p, dict) for p in patch + orig):
        out = list(orig)
        for p in patch:
            if isinstance(p, list):
                raise _unprocessable("lists of lists are not supported")
            if not any(_json_equal(p, o) for o in out):
                out.append(copy.deepcopy(p))
        return out

    out = list(orig)
    for p in patch:
        if not isinstance(p, dict):
            raise bad_request(f"invalid list item {_go_map(p)}: expected a map with merge key {merge_key}")
        if merge_key not in p:
            raise bad_request(f"map: {_go_map(p)} does not contain declared merge key: {merge_key}")
        key = p[merge_key]
        at = next((i for i, o in enumerate(out) if isinstance(o, dict) and _json_equal(o.get(merge_key), key)), None)
        if p.get(_DIRECTIVE) == "delete":
            out = [o for o in out if not (isinstance(o, dict) and _json_equal(o.get(merge_key), key))]
        elif at is None:
            out.append(_merge_map({}, p, items))
        else:
            out[at] = _merge_map(out[at], p, items)
    return out


def _go_map(value: Any) -> str:
    """Render a map as Go's %v does (`map[image:x]`), as upstream's error text shows it."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_map(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_map(v) for v in value) + "]"
    return str(value)


def _reorder(orig: list[Any], merged: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    """Apply `$setElementOrder`: listed items follow the given order; the rest keep their server position."""
    def ident(x: Any) -> Any:
        if merge_key and isinstance(x, dict):
            return x.get(merge_key)
        return x

    def pos(seq: list[Any], x: Any) -> int | None:
        want = ident(x)
        for i, s in enumerate(seq):
            if _json_equal(ident(s), want):
                return i
        return None

    listed = sorted((m for m in merged if pos(order, m) is not None), key=lambda m: pos(order, m) or 0)
    others = [m for m in merged if pos(order, m) is None]
    out: list[Any] = []
    while listed and others:
        a, b = pos(orig, listed[0]), pos(orig, others[0])
        if a is None or (b is not None and a < b):
            out.append(listed.pop(0))
        else:
            out.append(others.pop(0))
    return out + listed + others


def apply_strategic_merge_patch(obj: dict[str, Any], patch: Any, schema: str | None) -> dict[str, Any]:
    """Apply a strategic merge patch, using the definition named `schema` (e.g. io.k8s.api.apps.v1.Deployment).

    Without a schema (custom resources, unknown kinds) there are no merge keys,
    so this is a JSON merge patch, which is what upstream does for such kinds.
    """
    if not isinstance(patch, dict):
        raise bad_request("invalid JSON document: a strategic merge patch must be a JSON object")
    root = definition(schema) if schema else None
    if root is None:
        return apply_merge_patch(obj, patch)
    # Copy once here; the walk below then only rebuilds the containers it changes.
    return _merge_map(copy.deepcopy(obj), patch, _Schema(root))
