"""Label and field selectors: `kubectl get -l ...` and `--field-selector ...`.

A list or watch narrows its results with two query parameters.
`labelSelector` uses the label-selector language (`app=web,tier!=db`,
`env in (prod,staging)`, `!canary`, `release`), which is also what
workload objects carry in structured form (`spec.selector` with
`matchLabels`/`matchExpressions`).  `fieldSelector` is a much smaller
language (`k=v`, `k==v`, `k!=v`, joined by commas) over a few fields per kind,
and upstream refuses fields it does not index, so we check the same list.
Parse errors are 400 BadRequest with messages shaped like upstream's
(apimachinery `labels` and `fields` packages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

# ---------------------------------------------------------------- labels

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
             "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
             "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
              "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
              "or 'my_value',  or '12345', regex used for validation is "
              "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def _key_problem(key: str) -> str | None:
    """Why `key` is not a qualified label key (`[prefix/]name`), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "prefix part must be non-empty"
    if prefix and (len(prefix) > 253 or not _DNS1123.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _NAME.match(name):
        return _NAME_MSG
    return None


def _value_problem(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _NAME.match(value):
        return _VALUE_MSG
    return None


# Operators as upstream's `selection.Operator` spells them.
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT = "in", "notin", "exists", "!", "gt", "lt"


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: key, operator and values."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in (EQUALS, DOUBLE_EQUALS, IN):
            return present and value in self.values
        if self.op in (NOT_EQUALS, NOT_IN):
            return not present or value not in self.values
        if self.op == EXISTS:
            return present
        if self.op == DOES_NOT_EXIST:
            return not present
        if self.op in (GT, LT):
            try:
                have, want = int(value or ""), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.op == GT else have < want
        return False

    def __str__(self) -> str:
        if self.op == EXISTS:
            return self.key
        if self.op == DOES_NOT_EXIST:
            return "!" + self.key
        if self.op in (IN, NOT_IN):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        if self.op in (GT, LT):
            return f"{self.key}{'>' if self.op == GT else '<'}{self.values[0]}"
        return f"{self.key}{self.op}{self.values[0]}"


def _requirement(key: str, op: str, values: list[str]) -> Requirement:
    """Validate like upstream's NewRequirement; values are kept sorted as upstream prints them."""
    problem = _key_problem(key)
    if problem:
        raise ValueError(f'key: Invalid value: "{key}": {problem}')
    if op in (IN, NOT_IN) and not values:
        raise ValueError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    if op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(values) != 1:
        raise ValueError("values: Invalid value: exact-match compatibility requires one single value")
    if op in (GT, LT):
        if len(values) != 1 or not re.fullmatch(r"-?\d+", values[0]):
            raise ValueError(f"values[0]: Invalid value: {values}: for 'Gt', 'Lt' operators, "
                             "the value must be an integer")
    else:
        for i, v in enumerate(values):
            vp = _value_problem(v)
            if vp:
                raise ValueError(f'values[{i}][{key}]: Invalid value: "{v}": {vp}')
    return Requirement(key, op, tuple(sorted(set(values))))


# Lexer: identifiers run until whitespace or one of these characters.
_SPECIAL = "=!(),<>"
_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s=!(),<>]+)")


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:  # only trailing whitespace is left
            break
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def _is_ident(tok: str | None) -> bool:
    return tok is not None and tok not in ("==", "!=", "=", "!", "(", ")", ",", "<", ">")


class _Parser:
    """Recursive descent over the token list, one requirement at a time."""

    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok

    @staticmethod
    def shown(tok: str | None) -> str:
        return "end of string" if tok is None else tok

    def requirements(self) -> list[Requirement]:
        out: list[Requirement] = []
        if self.peek() is None:
            return out
        while True:
            out.append(self.requirement())
            tok = self.next()
            if tok is None:
                return out
            if tok != ",":
                raise ValueError(f"found '{self.shown(tok)}', expected: ',' or 'end of string'")
            if self.peek() is None:
                raise ValueError("found 'end of string', expected: identifier")

    def requirement(self) -> Requirement:
        negated = self.peek() == "!"
        if negated:
            self.next()
        key = self.next()
        if not _is_ident(key) or key in ("in", "notin"):
            raise ValueError(f"found '{self.shown(key)}', expected: identifier")
        assert key is not None
        if negated or self.peek() in (None, ","):
            return _requirement(key, DOES_NOT_EXIST if negated else EXISTS, [])
        op = self.next()
        if op in ("=", "==", "!="):
            value = self.peek()
            if value is None or value == ",":
                return _requirement(key, op, [""])
            if not _is_ident(value):
                raise ValueError(f"found '{value}', expected: identifier")
            self.next()
            return _requirement(key, op, [value])
        if op in ("<", ">"):
            value = self.next()
            if not _is_ident(value):
                raise ValueError(f"found '{self.shown(value)}', expected: identifier")
            return _requirement(key, LT if op == "<" else GT, [value])  # type: ignore[list-item]
        if op in ("in", "notin"):
            return _requirement(key, IN if op == "in" else NOT_IN, self.value_set())
        raise ValueError(f"found '{self.shown(op)}', expected: in, notin, =, ==, !=, gt, lt")

    def value_set(self) -> list[str]:
        tok = self.next()
        if tok != "(":
            raise ValueError(f"found '{self.shown(tok)}', expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            tok = self.next()
            if tok == ")":
                if expect_value and values:  # "(a,)" means an empty trailing value
                    values.append("")
                return values
            if tok == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif _is_ident(tok) and expect_value:
                values.append(tok)  # type: ignore[arg-type]
                expect_value = False
            else:
                raise ValueError(f"found '{self.shown(tok)}', expected: ',', ')' or identifier")


class LabelSelector:
    """A conjunction of label requirements; `Nothing` (from a nil spec) matches no object."""

    def __init__(self, requirements: list[Requirement] | None = None, *, nothing: bool = False) -> None:
        self.reqs: list[Requirement] = sorted(requirements or [], key=lambda r: r.key)
        self.nothing = nothing

    @classmethod
    def parse(cls, text: str | None) -> "LabelSelector":
        """Parse kubectl's `-l` syntax; an empty string selects everything."""
        try:
            return cls(_Parser(text or "").requirements())
        except ValueError as e:
            raise bad_request(f"unable to parse requirement: {e}") from None

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> "LabelSelector":
        """metav1.LabelSelector as upstream's LabelSelectorAsSelector: nil selects nothing, {} everything."""
        if spec is None:
            return cls(nothing=True)
        reqs: list[Requirement] = []
        ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
        try:
            for k, v in (spec.get("matchLabels") or {}).items():
                reqs.append(_requirement(k, EQUALS, [v if isinstance(v, str) else str(v)]))
            for expr in spec.get("matchExpressions") or []:
                op = ops.get(expr.get("operator", ""))
                if op is None:
                    raise ValueError(f'"{expr.get("operator", "")}" is not a valid label selector operator')
                values = [str(v) for v in expr.get("values") or []]
                if op in (EXISTS, DOES_NOT_EXIST) and values:
                    raise ValueError("values: Invalid value: values set must be empty for exists and does not exist")
                reqs.append(_requirement(str(expr.get("key", "")), op, values))
        except ValueError as e:
            raise bad_request(str(e)) from None
        return cls(reqs)

    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.reqs)

    def empty(self) -> bool:
        """True when the selector selects everything (no requirements)."""
        return not self.nothing and not self.reqs

    def requirements(self) -> list[Requirement]:
        return list(self.reqs)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.reqs)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})"


# ---------------------------------------------------------------- fields

_ESCAPABLE = "\\,=!"


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Find the first unescaped operator: `!=`, `==` or `=`."""
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
        i += 1
    return None


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            if i + 1 >= len(value) or value[i + 1] not in _ESCAPABLE:
                raise ValueError(f"invalid field selector: invalid escape sequence in value: {value!r}")
            out.append(value[i + 1])
            i += 2
            continue
        if c in ",=":
            raise ValueError(f"invalid field selector: unescaped character {c!r} in value: {value!r}")
        out.append(c)
        i += 1
    return "".join(out)


def _escape(value: str) -> str:
    return "".join("\\" + c if c in "\\,=" else c for c in value)


# Fields whose Go type is not a string: an absent value compares as its zero value.
_ZERO = {"spec.hostNetwork": "false", "spec.unschedulable": "false", "status.replicas": "0",
         "status.successful": "0"}


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any
    if path == "source":  # events select on source.component
        src = obj.get("source")
        cur = src.get("component") if isinstance(src, dict) else src
    else:
        cur = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return _ZERO.get(path, "")
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


class FieldSelector:
    """A conjunction of `field op value` terms over dotted object paths."""

    def __init__(self, reqs: list[tuple[str, str, str]] | None = None) -> None:
        self.reqs = list(reqs or [])

    @classmethod
    def parse(cls, text: str | None) -> "FieldSelector":
        reqs: list[tuple[str, str, str]] = []
        try:
            for term in _split_unescaped(text or "", ","):
                if not term:
                    continue
                split = _split_term(term)
                if split is None:
                    raise ValueError(f"invalid selector: '{text}'; can't understand '{term}'")
                field, op, value = split
                reqs.append((field.strip(), "=" if op == "==" else op, _unescape(value)))
        except ValueError as e:
            raise bad_request(str(e)) from None
        return cls(reqs)

    def matches(self, obj: dict[str, Any]) -> bool:
        for field, op, value in self.reqs:
            have = _field_value(obj, field)
            if (have == value) != (op == "="):
                return False
        return True

    def requirements(self) -> list[tuple[str, str, str]]:
        return list(self.reqs)

    def exact(self, field: str) -> str | None:
        """The value `field` is pinned to with `=`, so a list can go straight to one key."""
        for f, op, value in self.reqs:
            if f == field and op == "=":
                return value
        return None

    def empty(self) -> bool:
        return not self.reqs

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{_escape(v)}" for f, op, v in self.reqs)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


# Field labels upstream accepts per kind, beyond metadata.name and metadata.namespace.
_GENERIC = frozenset({"metadata.name", "metadata.namespace"})
_EXTRA: dict[str, frozenset[str]] = {
    "Pod": frozenset({
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName",
    }),
    "Event": frozenset({
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    }),
    "Secret": frozenset({"type"}),
    "Node": frozenset({"spec.unschedulable"}),
    "Namespace": frozenset({"status.phase"}),
    "ReplicaSet": frozenset({"status.replicas"}),
    "ReplicationController": frozenset({"status.replicas"}),
    "Job": frozenset({"status.successful"}),
    "CertificateSigningRequest": frozenset({"spec.signerName"}),
}


def check_field_selector(kind: str, sel: FieldSelector) -> None:
    """Refuse fields upstream does not support for `kind`, as a 400 like upstream's."""
    allowed = _GENERIC | _EXTRA.get(kind, frozenset())
    for field, _, _ in sel.requirements():
        if field not in allowed:
            raise ApiError(400, "BadRequest", f'field label not supported: {field}')
