"""The JSONPath subset of client-go's util/jsonpath that printer columns use.

A CRD's `additionalPrinterColumns[].jsonPath` is evaluated by the API server
for every row of `kubectl get` (upstream wraps it as `{<path>}` and runs
client-go's jsonpath with missing keys allowed).  Real CRDs use field
chains, indices and filters: `.spec.replicas`, `.status.conditions[0].type`,
`.status.conditions[?(@.type=="Ready")].status`, `.metadata.labels['app']`,
`.spec.items[*].name`.  This module parses those into steps once and walks
decoded JSON; `format_value` prints a result as Go's fmt does, since string
columns show `fmt.Fprint` of whatever the path found.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

_FIELD = re.compile(r"\.([A-Za-z0-9_\-/$]+)")
_FILTER = re.compile(r"\[\?\(@((?:\.[A-Za-z0-9_\-]+)+)\s*(==|!=|<=|>=|<|>)\s*(.+?)\)\]")
_BRACKET = re.compile(r"\[([^\]]*)\]")


class JSONPathError(ValueError):
    """The path is not one we can parse."""


@dataclass(frozen=True)
class _Step:
    kind: str              # field | index | slice | all | filter | recurse
    arg: Any = None


@functools.lru_cache(maxsize=256)
def parse(path: str) -> tuple[_Step, ...]:
    """Steps of a path like `.status.conditions[?(@.type=="Ready")].status` (braces optional)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[_Step] = []
    i = 0
    while i < len(text):
        if text.startswith("..", i):
            steps.append(_Step("recurse"))
            i += 1
            continue
        if text.startswith("[?(", i):
            m = _FILTER.match(text, i)
            if m is None:
                raise JSONPathError(f"unrecognized filter in {path!r}")
            fields = tuple(m.group(1).lstrip(".").split("."))
            steps.append(_Step("filter", (fields, m.group(2), _literal(m.group(3)))))
            i = m.end()
            continue
        m = _FIELD.match(text, i)
        if m is not None:
            steps.append(_Step("all" if m.group(1) == "*" else "field", m.group(1)))
            i = m.end()
            continue
        if text.startswith(".*", i):
            steps.append(_Step("all"))
            i += 2
            continue
        m = _BRACKET.match(text, i)
        if m is None:
            raise JSONPathError(f"unrecognized identifier in {path!r} at {text[i:]!r}")
        steps.append(_bracket(m.group(1).strip(), path))
        i = m.end()
    return tuple(steps)


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bracket(inner: str, path: str) -> _Step:
    if inner == "*":
        return _Step("all")
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Step("field", inner[1:-1])
    if ":" in inner:
        parts = [int(p) if p.strip() else None for p in inner.split(":")[:2]]
        return _Step("slice", tuple(parts))
    try:
        return _Step("index", int(inner))
    except ValueError:
        raise JSONPathError(f"unrecognized index {inner!r} in {path!r}") from None


def _compare(value: Any, op: str, want: Any) -> bool:
    if op in ("==", "!="):
        equal = value == want or (not isinstance(want, str) and str(value) == str(want))
        return equal if op == "==" else not equal
    try:
        return bool({"<": value < want, ">": value > want, "<=": value <= want, ">=": value >= want}[op])
    except TypeError:
        return False


def _descend(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        out.append(v)
        if isinstance(v, dict):
            out.extend(_descend(list(v.values())))
        elif isinstance(v, list):
            out.extend(_descend(v))
    return out


def find(data: Any, steps: tuple[_Step, ...]) -> list[Any]:
    """All values the path reaches in `data`; [] when a key is missing."""
    current = [data]
    for step in steps:
        nxt: list[Any] = []
        if step.kind == "recurse":
            current = _descend(current)
            continue
        for v in current:
            if step.kind == "field":
                if isinstance(v, dict) and step.arg in v:
                    nxt.append(v[step.arg])
            elif step.kind == "index":
                if isinstance(v, list) and -len(v) <= step.arg < len(v):
                    nxt.append(v[step.arg])
            elif step.kind == "slice":
                if isinstance(v, list):
                    nxt.extend(v[step.arg[0]:step.arg[1]])
            elif step.kind == "all":
                if isinstance(v, dict):
                    nxt.extend(v.values())
                elif isinstance(v, list):
                    nxt.extend(v)
            elif step.kind == "filter" and isinstance(v, list):
                fields, op, want = step.arg
                for item in v:
                    got: Any = item
                    for f in fields:
                        got = got.get(f) if isinstance(got, dict) else None
                    if got is not None and _compare(got, op, want):
                        nxt.append(item)
        current = nxt
    return current


def format_value(value: Any) -> str:
    """What Go's fmt.Fprint prints for a decoded JSON value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)
