"""RBAC: rules, bindings, the authorizer, escalation checks and aggregation.

Upstream's plugin/pkg/auth/authorizer/rbac and pkg/registry/rbac/validation,
as pure functions over the four kinds' JSON:

- a `Rule` is one PolicyRule (`apiGroups`, `resources` such as `pods/log`,
  `resourceNames`, `verbs`, `nonResourceURLs`); `Rule.allows(attrs)` is
  upstream's RuleAllows, with `*` and `*/subresource` wildcards;
- a `Policy` is a snapshot of every Role, ClusterRole, RoleBinding and
  ClusterRoleBinding.  `visit(user, namespace)` walks the rules that apply
  to a user in the order upstream does (ClusterRoleBindings, then the
  namespace's RoleBindings), naming the binding each came from and the
  bindings whose role is missing (`clusterrole.rbac.authorization.k8s.io
  "x" not found`: a binding to a missing role grants nothing and is not an
  error until someone asks why they were refused);
- `authorize` gives upstream's answer and reason (`RBAC: allowed by
  RoleBinding "x/ns" of ClusterRole "view" to User "bob"`);
- `covers` / `escalation_error` are the escalation check: writing a role
  or a binding must not grant what its author does not hold
  (`user "bob" (groups=["system:authenticated"]) is attempting to grant
  RBAC permissions not currently held:` and the missing rules in
  upstream's compact form);
- `aggregate` is the ClusterRole aggregation controller's computation
  (`aggregationRule.clusterRoleSelectors` gather the rules of labelled
  ClusterRoles).

`Policy` keeps its per-(user, namespace) rule lists, so a request costs a
dictionary hit and a few rule checks; the API server makes a new Policy
when an RBAC object changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import orjson

from .attributes import Attributes
from .selectors import LabelSelector
from .user import UserInfo, split_sa_username

Obj = dict[str, Any]
GROUP = "rbac.authorization.k8s.io"


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class Rule:
    """One PolicyRule; fields keep the object's order (it shows in messages)."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, rule: Obj) -> "Rule":
        return cls(_strs(rule.get("verbs")), _strs(rule.get("apiGroups")), _strs(rule.get("resources")),
                   _strs(rule.get("resourceNames")), _strs(rule.get("nonResourceURLs")))

    def to_api(self) -> Obj:
        out: Obj = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out

    # -- matching (rbacv1helpers.*Matches) ---------------------------------

    def verb_matches(self, verb: str) -> bool:
        return "*" in self.verbs or verb in self.verbs

    def group_matches(self, group: str) -> bool:
        return "*" in self.api_groups or group in self.api_groups

    def resource_matches(self, combined: str, subresource: str) -> bool:
        for r in self.resources:
            if r == "*" or r == combined:
                return True
            if subresource and r == "*/" + subresource:
                return True
        return False

    def name_matches(self, name: str) -> bool:
        return not self.resource_names or name in self.resource_names

    def url_matches(self, path: str) -> bool:
        for u in self.non_resource_urls:
            if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
                return True
        return False

    def allows(self, a: Attributes) -> bool:
        if a.resource_request:
            return (self.verb_matches(a.verb) and self.group_matches(a.api_group)
                    and self.resource_matches(a.full_resource, a.subresource) and self.name_matches(a.name))
        return self.verb_matches(a.verb) and self.url_matches(a.path)

    def compact_string(self) -> str:
        """rbacv1helpers.CompactString: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
        parts = []
        for label, values in (("APIGroups", self.api_groups), ("Resources", self.resources),
                              ("NonResourceURLs", self.non_resource_urls), ("ResourceNames", self.resource_names),
                              ("Verbs", self.verbs)):
            if values:
                parts.append(f"{label}:{go_quote_list(values)}")
        return "{" + ", ".join(parts) + "}"


def go_quote_list(values: Iterable[str]) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(orjson.dumps(v).decode() for v in values) + "]"


def rules_of(obj: Obj | None) -> list[Rule]:
    return [Rule.from_api(r) for r in (obj or {}).get("rules") or [] if isinstance(r, dict)]


# ------------------------------------------------------------------ subjects


def applies_to_user(user: UserInfo, subject: Obj, namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_ns = subject.get("namespace") or namespace
        if not sa_ns:
            return False
        return split_sa_username(user.name) == (sa_ns, name)
    return False


def describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


def _describe_binding(binding: Obj, subject: Obj) -> str:
    meta, ref = binding.get("metadata") or {}, binding.get("roleRef") or {}
    ns = meta.get("namespace", "")
    if ns:
        return (f'RoleBinding "{meta.get("name", "")}/{ns}" of {ref.get("kind", "")} "{ref.get("name", "")}" '
                f"to {describe_subject(subject, ns)}")
    return (f'ClusterRoleBinding "{meta.get("name", "")}" of {ref.get("kind", "")} "{ref.get("name", "")}" '
            f"to {describe_subject(subject, '')}")


# -------------------------------------------------------------------- policy


@dataclass
class Resolved:
    """The rules that apply to one user in one namespace: (source, rule) in
    visiting order, and the errors met resolving role references."""

    rules: list[tuple[str, Rule]]
    errors: list[str]


def aggregate_errors(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message, or `[a, b]` without repeats."""
    seen: list[str] = []
    for e in errors:
        if e not in seen:
            seen.append(e)
    if len(errors) == 1 or len(seen) == 1:
        return seen[0] if seen else ""
    return "[" + ", ".join(seen) + "]"


class Policy:
    """A snapshot of the RBAC objects, with upstream's rule resolution."""

    CACHE_LIMIT = 10_000

    def __init__(self, roles: Iterable[Obj] = (), cluster_roles: Iterable[Obj] = (),
                 role_bindings: Iterable[Obj] = (), cluster_role_bindings: Iterable[Obj] = ()) -> None:
        self.roles: dict[tuple[str, str], list[Rule]] = {}
        for r in roles:
            m = r.get("metadata") or {}
            self.roles[(m.get("namespace", ""), m.get("name", ""))] = rules_of(r)
        self.cluster_roles: dict[str, list[Rule]] = {
            (r.get("metadata") or {}).get("name", ""): rules_of(r) for r in cluster_roles}
        self.cluster_role_bindings = sorted(cluster_role_bindings, key=_name_of)
        self.role_bindings: dict[str, list[Obj]] = {}
        for b in sorted(role_bindings, key=_name_of):
            self.role_bindings.setdefault((b.get("metadata") or {}).get("namespace", ""), []).append(b)
        # RBAC looks only at the name and groups (not the uid or a token's extras).
        self._cache: dict[tuple[str, tuple[str, ...], str], Resolved] = {}

    def role_ref_rules(self, ref: Obj, namespace: str) -> list[Rule]:
        """GetRoleReferenceRules; raises LookupError with upstream's message."""
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "Role":
            rules = self.roles.get((namespace, name))
            if rules is None:
                raise LookupError(f'role.{GROUP} "{name}" not found')
            return rules
        if kind == "ClusterRole":
            rules = self.cluster_roles.get(name)
            if rules is None:
                raise LookupError(f'clusterrole.{GROUP} "{name}" not found')
            return rules
        raise LookupError(f'unsupported role reference kind: "{kind}"')

    def _bindings(self, namespace: str) -> Iterator[tuple[Obj, str]]:
        for b in self.cluster_role_bindings:
            yield b, ""
        if namespace:
            for b in self.role_bindings.get(namespace, ()):
                yield b, namespace

    def resolve(self, user: UserInfo, namespace: str) -> Resolved:
        """Every rule that applies to `user` in `namespace` (VisitRulesFor, cached)."""
        key = (user.name, user.groups, namespace)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = Resolved([], [])
        for binding, ns in self._bindings(namespace):
            subject = next((s for s in binding.get("subjects") or [] if isinstance(s, dict)
                            and applies_to_user(user, s, ns)), None)
            if subject is None:
                continue
            try:
                rules = self.role_ref_rules(binding.get("roleRef") or {}, ns)
            except LookupError as exc:
                out.errors.append(str(exc))
                continue
            source = _describe_binding(binding, subject)
            out.rules.extend((source, r) for r in rules)
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = out
        return out

    def authorize(self, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason) as upstream's RBACAuthorizer.Authorize."""
        resolved = self.resolve(a.user, a.namespace)
        for source, rule in resolved.rules:
            if rule.allows(a):
                return True, f"RBAC: allowed by {source}"
        if resolved.errors:
            return False, "RBAC: " + aggregate_errors(resolved.errors)
        return False, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        resolved = self.resolve(user, namespace)
        return [r for _, r in resolved.rules], list(resolved.errors)


def _name_of(obj: Obj) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return (m.get("namespace", ""), m.get("name", ""))


# ---------------------------------------------------------------- escalation


def breakdown(rule: Rule) -> list[Rule]:
    """BreakdownRule: one verb × group × resource (× name) per rule; URLs × verbs."""
    out = []
    for g in rule.api_groups:
        for res in rule.resources:
            for v in rule.verbs:
                if rule.resource_names:
                    out += [Rule((v,), (g,), (res,), (n,)) for n in rule.resource_names]
                else:
                    out.append(Rule((v,), (g,), (res,)))
    for u in rule.non_resource_urls:
        out += [Rule((v,), non_resource_urls=(u,)) for v in rule.verbs]
    return out


def _has_all(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return all(w in owner for w in wanted)


def _resources_cover(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return all(any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owner) for w in wanted)


def rule_covers(owner: Rule, sub: Rule) -> bool:
    """ruleCovers: does `owner` grant everything the atomic rule `sub` does?"""
    if not ("*" in owner.verbs or _has_all(owner.verbs, sub.verbs)):
        return False
    if not ("*" in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)):
        return False
    if not _resources_cover(owner.resources, sub.resources) or not _urls_cover(owner.non_resource_urls,
                                                                              sub.non_resource_urls):
        return False
    if not sub.resource_names:
        return not owner.resource_names
    return not owner.resource_names or _has_all(owner.resource_names, sub.resource_names)


def covers(owner: list[Rule], servant: list[Rule]) -> tuple[bool, list[Rule]]:
    """validation.Covers: whether `owner` holds every permission of `servant`, and what is missing."""
    missing = [sub for rule in servant for sub in breakdown(rule) if not any(rule_covers(o, sub) for o in owner)]
    return not missing, missing


def compact(rules: list[Rule]) -> list[Rule]:
    """CompactRules: merge single group/resource(/name) rules that differ only by verb."""
    out: list[Rule] = []
    simple: dict[tuple[str, str, bool, str], Rule] = {}
    for r in rules:
        if (len(r.resource_names) > 1 or r.non_resource_urls or len(r.api_groups) != 1
                or len(r.resources) != 1):
            out.append(r)
            continue
        key = (r.api_groups[0], r.resources[0], bool(r.resource_names),
               r.resource_names[0] if r.resource_names else "")
        if key in simple:
            have = simple[key]
            simple[key] = Rule(have.verbs + tuple(v for v in r.verbs if v not in have.verbs), have.api_groups,
                               have.resources, have.resource_names)
        else:
            simple[key] = r
    return out + list(simple.values())


def escalation_error(user: UserInfo, owner: list[Rule], wanted: list[Rule], resolution_errors: list[str]) -> str | None:
    """ConfirmNoEscalation's message when `owner` does not cover `wanted`, else None."""
    ok, missing = covers(owner, wanted)
    if ok:
        return None
    lines = sorted({r.compact_string() for r in compact(missing)})
    msg = (f'user "{user.name}" (groups={go_quote_list(user.groups)}) is attempting to grant RBAC permissions '
           "not currently held:\n" + "\n".join(lines))
    if resolution_errors:
        msg += "; resolution errors: [" + " ".join(resolution_errors) + "]"
    return msg


FULL_AUTHORITY = [Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",))]


# --------------------------------------------------------------- aggregation


def aggregate(role: Obj, cluster_roles: Iterable[Obj]) -> list[Obj] | None:
    """The rules an aggregated ClusterRole should have, or None if it has no aggregationRule.

    As the clusterrole-aggregation controller: each selector's matches,
    sorted by name and excluding the role itself, contribute their rules in
    order, without repeating an identical rule."""
    agg = role.get("aggregationRule")
    if not isinstance(agg, dict):
        return None
    me = (role.get("metadata") or {}).get("name")
    others = sorted((r for r in cluster_roles if (r.get("metadata") or {}).get("name") != me),
                    key=lambda r: (r.get("metadata") or {}).get("name", ""))
    rules: list[Obj] = []
    for sel in agg.get("clusterRoleSelectors") or []:
        selector = LabelSelector.from_spec(sel if isinstance(sel, dict) else {})
        for other in others:
            if not selector.matches((other.get("metadata") or {}).get("labels") or {}):
                continue
            for rule in other.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return rules
