"""Field ownership: `metadata.managedFields` on every write, and server-side apply.

Upstream's API server runs every create, update and patch through a field
manager (k8s.io/apimachinery/pkg/util/managedfields): it records which
manager set which fields, as one `managedFields` entry per manager,
operation (`Apply` or `Update`), API version and subresource.  This module
is that layer for kinns; the tree walks it needs live in `smd.py`.

* `track` runs on creates, updates and non-apply patches (the Update
  operation): the fields the write added or changed go to its manager (the
  `fieldManager` parameter, else the first part of the User-Agent), and are
  taken from whoever held them before.  A write that changes nothing leaves
  the entries, and their times, as they are.  An object that has no entries
  yet is only tracked from its creation, as upstream.
* `apply` is server-side apply (the Apply operation): the configuration is
  merged over the live object, fields the applier applied last time and no
  longer does are removed unless another manager owns them, and a change to
  a field another manager owns is a 409 "Apply failed with 1 conflict" unless
  forced, in which case the applier takes the field over.
* What a manager owns is stripped of the fields nobody can own (name, uid,
  resourceVersion, ...) and of the fields its endpoint resets: the main
  resource never owns `.status` of a kind with a status subresource, the
  status subresource owns only `.status`.

The REST handlers call `track`, `apply` and `check_options`; the scale
subresource (`scale.py`) uses the same functions on `autoscaling/v1 Scale`.
"""

from __future__ import annotations

import unicodedata
import weakref
from dataclasses import dataclass, replace
from typing import Any

import orjson

from . import smd
from .errors import FORBIDDEN, REQUIRED, TOO_LONG, ApiError, FieldError, bad_request, invalid
from .objects import now_rfc3339
from .request import Request
from .resources import ResourceType
from .schemas import definition
from .smd import FieldSet, Schema

APPLY, UPDATE = "Apply", "Update"
MAX_UPDATE_MANAGERS = 10          # upstream DefaultMaxUpdateManagers
ANCIENT = "ancient-changes"       # where the oldest updates are merged beyond that
MAX_MANAGER_LENGTH = 128          # upstream FieldManagerMaxLength
BEFORE_FIRST_APPLY = "before-first-apply"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# What no manager owns (upstream's stripMetaManager).
_STRIP_META = ("name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
               "managedFields", "resourceVersion")
_STRIP_SET: FieldSet = {"f:apiVersion": {}, "f:kind": {},
                        "f:metadata": dict({"f:" + k: {} for k in _STRIP_META}, **{".": {}})}

# How an endpoint sees its object (which fields it resets).
ALL, NO_STATUS, STATUS_ONLY = "all", "nostatus", "status"


@dataclass(frozen=True)
class Shape:
    """What the field manager needs about an endpoint: the type it writes and what it resets."""

    schema: Schema
    api_version: str
    kind: str
    subresource: str = ""
    scope: str = ALL


# (manager, operation, apiVersion -- empty for Apply --, subresource): one entry each.
Ident = tuple[str, str, str, str]


@dataclass
class Entry:
    """One manager's fields, decoded from (and re-encoded to) a managedFields entry."""

    fields: FieldSet
    api_version: str
    applied: bool
    time: str | None
    raw: dict[str, Any] | None = None   # the entry it was decoded from, reused if untouched


Managed = dict[Ident, Entry]

# ------------------------------------------------------------------ schemas

# Schemas of custom resource versions, made once per served version (crdkind.CustomKind).
_CUSTOM: weakref.WeakKeyDictionary[Any, Schema] = weakref.WeakKeyDictionary()


def schema_for(rt: ResourceType) -> Schema:
    """The type of a kind's objects: its upstream definition, or a CRD version's
    openAPIV3Schema; without either, fields are deduced from values (maps granular,
    lists atomic), as upstream does for schemaless custom resources."""
    custom = getattr(rt, "custom", None)
    if custom is not None:
        sch = _CUSTOM.get(custom)
        if sch is None:
            node = getattr(custom, "schema", None)
            sch = smd.from_openapi(node) if isinstance(node, dict) else smd.UNTYPED
            _CUSTOM[custom] = sch
        return sch
    if rt.schema and definition(rt.schema) is not None:
        return smd.for_definition(rt.schema)
    return smd.UNTYPED


def shape_for(rt: ResourceType, subresource: str = "") -> Shape:
    if subresource == "status":
        scope = STATUS_ONLY
    else:
        scope = NO_STATUS if "status" in rt.subresources else ALL
    return Shape(schema_for(rt), rt.api_version, rt.kind, subresource, scope)


# ------------------------------------------------------------- the manager


def manager_name(req: Request) -> str:
    """`fieldManager`, else the User-Agent up to its first "/" (upstream's prefixFromUserAgent).

    In-process requests without one are the API server's own (its bootstrap
    objects), which upstream records as kube-apiserver."""
    name = req.param("fieldManager")
    if name:
        return name
    agent = req.header("user-agent")
    if not agent and req.user is None:
        return "kube-apiserver"
    out = ""
    for ch in agent.split("/")[0]:
        if not ch.isprintable():
            continue
        if len((out + ch).encode()) > MAX_MANAGER_LENGTH:
            break
        out += ch
    return out or "unknown"


def check_options(req: Request, options: str, *, apply: bool = False) -> None:
    """Upstream's Create/Update/PatchOptions validation of fieldManager and force."""
    errs: list[FieldError] = []
    name = req.param("fieldManager")
    if options == "PatchOptions":
        if apply and not name:
            errs.append(FieldError(REQUIRED, "fieldManager", detail="is required for apply patch"))
        if not apply and "force" in req.query:
            errs.append(FieldError(FORBIDDEN, "force", detail="may not be specified for non-apply patch"))
    if len(name.encode()) > MAX_MANAGER_LENGTH:
        errs.append(FieldError(TOO_LONG, "fieldManager", name, f"may not be more than {MAX_MANAGER_LENGTH} bytes"))
    for i, ch in enumerate(name):
        if not ch.isprintable():
            errs.append(FieldError("FieldValueInvalid", "fieldManager", name,
                                   f"invalid character {_go_rune(ch)} (at position {i})"))
    if errs:
        raise invalid(options, "meta.k8s.io", "", errs)


def _go_rune(ch: str) -> str:
    """Go's %#U: U+0007 '\\a' style, enough for unprintable runes."""
    return f"U+{ord(ch):04X}" + (f" '{ch}'" if unicodedata.category(ch)[0] != "C" else "")


# --------------------------------------------------------- encode / decode


def decode(entries: Any) -> Managed:
    """managedFields -> entries by manager identity; ValueError if malformed."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    out: Managed = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"managed fields entry {i} is not an object")
        op = e.get("operation")
        if op not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        av = e.get("apiVersion")
        if not isinstance(av, str) or not av:
            raise ValueError("apiVersion must not be empty")
        ft = e.get("fieldsType")
        if ft != "FieldsV1":
            raise ValueError(f"missing fieldsType in managed fields entry {i}" if not ft
                             else f"invalid fieldsType {ft!r} in managed fields entry {i}")
        fields = e.get("fieldsV1") or {}
        if not isinstance(fields, dict):
            raise ValueError(f"invalid fieldsV1 in managed fields entry {i}")
        idn = (str(e.get("manager") or ""), op, "" if op == APPLY else av, str(e.get("subresource") or ""))
        t = e.get("time")
        out[idn] = Entry(fields, av, op == APPLY, t if isinstance(t, str) else None, e)
    return out


def decode_or_empty(entries: Any) -> Managed:
    try:
        return decode(entries)
    except ValueError:
        return {}


def encode(managed: Managed) -> list[dict[str, Any]]:
    """Entries as upstream writes them, sorted: Apply before Update, then oldest first."""
    out = []
    for (manager, op, _, sub), e in managed.items():
        raw = e.raw
        if raw is None or raw.get("fieldsV1") is not e.fields or raw.get("time") != e.time \
                or raw.get("apiVersion") != e.api_version or raw.get("operation") != (APPLY if e.applied else UPDATE):
            raw = {"manager": manager, "operation": APPLY if e.applied else UPDATE, "apiVersion": e.api_version}
            if e.time:
                raw["time"] = e.time
            raw["fieldsType"] = "FieldsV1"
            raw["fieldsV1"] = e.fields
            if sub:
                raw["subresource"] = sub
        out.append(raw)
    out.sort(key=lambda r: (r["operation"], r.get("time") or "", r["manager"], r["apiVersion"],
                            r.get("subresource", "")))
    return out


def _store(obj: dict[str, Any], managed: Managed) -> None:
    meta = obj.setdefault("metadata", {})
    if managed:
        meta["managedFields"] = encode(managed)
    else:
        meta.pop("managedFields", None)


def _cap(managed: Managed) -> None:
    """At most ten Update entries: the oldest merge into `ancient-changes` (capManagersManager)."""
    updaters = [i for i, e in managed.items() if not e.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda i: (managed[i].time or "", _ident_json(i)))
    first_by_version: dict[str, Ident] = {}
    length = len(updaters)
    for idn in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        e = managed[idn]
        bucket: Ident = (ANCIENT, UPDATE, e.api_version, "")
        first = first_by_version.get(e.api_version)
        if first is None:
            first_by_version[e.api_version] = idn
            continue
        if bucket not in managed:
            managed[bucket] = managed.pop(first)
        b = managed[bucket]
        managed[bucket] = Entry(smd.fs_union(e.fields, b.fields), e.api_version, False, e.time)
        del managed[idn]
        length -= 1


# ------------------------------------------------------- REST entry points


def on_create(rt: ResourceType, obj: dict[str, Any], req: Request) -> None:
    """A create is an Update from the empty object: its manager owns what it set."""
    check_options(req, "CreateOptions")
    track(shape_for(rt), None, obj, manager_name(req))


def on_update(rt: ResourceType, subresource: str, old: dict[str, Any], new: dict[str, Any],
              req: Request) -> None:
    """A PUT or a non-apply PATCH of the main resource or a subresource."""
    check_options(req, "PatchOptions" if req.method.upper() == "PATCH" else "UpdateOptions")
    track(shape_for(rt, subresource), old, new, manager_name(req))


def on_apply(rt: ResourceType, subresource: str, live: dict[str, Any] | None, config: Any,
             req: Request, shape: Shape | None = None) -> dict[str, Any]:
    """A PATCH with application/apply-patch+yaml: the object to write (`live` None: create)."""
    check_options(req, "PatchOptions", apply=True)
    if not isinstance(config, dict):
        raise bad_request("error decoding YAML: the applied configuration must be an object")
    return apply(shape or shape_for(rt, subresource), live, config, manager_name(req),
                 req.param("force") == "true")


# ------------------------------------------------------------ object views


def _view(obj: dict[str, Any] | None, scope: str) -> dict[str, Any]:
    """The part of an object an endpoint's managers can own."""
    if not obj:
        return {}
    if scope == STATUS_ONLY:
        return {"status": obj["status"]} if "status" in obj else {}
    out = {k: v for k, v in obj.items()
           if k not in ("apiVersion", "kind", "metadata") and not (k == "status" and scope == NO_STATUS)}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _STRIP_META}
    elif meta is not None:
        out["metadata"] = meta
    return out


def _filter(s: FieldSet, scope: str) -> FieldSet:
    """An applied set without what the endpoint resets."""
    if scope == STATUS_ONLY:
        return {"f:status": s["f:status"]} if "f:status" in s else {}
    if scope == NO_STATUS and "f:status" in s:
        s = dict(s)
        del s["f:status"]
    return s


def _strip(s: FieldSet) -> FieldSet:
    return smd.fs_difference(s, _STRIP_SET)


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = dict(obj)
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return obj


# ------------------------------------------------------------------ update


def track(shape: Shape, old: dict[str, Any] | None, new: dict[str, Any], manager: str) -> None:
    """Record an Update by `manager` in `new`'s managedFields (`old` is None on create).

    `new` is the object about to be stored and is changed in place.  As
    upstream's UpdateNoErrors, a failure keeps the live entries."""
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return
    old_entries = (old or {}).get("metadata", {}).get("managedFields")
    if shape.subresource:
        managed = decode_or_empty(old_entries)
    else:
        sent = meta.get("managedFields")
        if isinstance(sent, list) and (not sent or sent == [{}]):
            managed = {}                       # a reset: `managedFields: []`
        else:
            try:
                managed = decode(sent) if sent else {}
            except ValueError:
                managed = {}
            if not managed:
                managed = decode_or_empty(old_entries)
    if not managed and old is not None:
        meta.pop("managedFields", None)        # untracked objects stay untracked until applied
        return
    try:
        cmp = smd.compare(_view(old, shape.scope), _view(new, shape.scope), shape.schema)
    except smd.SchemaError:
        if old_entries:
            meta["managedFields"] = old_entries
        else:
            meta.pop("managedFields", None)
        return
    changed = smd.fs_union(cmp.modified, cmp.added)
    taken = smd.fs_union(changed, cmp.removed)
    if taken:
        managed = _take(managed, taken)
    own = _strip(changed)
    if own:
        idn: Ident = (manager, UPDATE, shape.api_version, shape.subresource)
        prev = managed.get(idn)
        fields = smd.fs_union(prev.fields, own) if prev is not None else own
        managed[idn] = Entry(fields, shape.api_version, False, now_rfc3339())
    _cap(managed)
    _store(new, managed)


def _take(managed: Managed, taken: FieldSet, keep: Ident | None = None) -> Managed:
    """Every manager (but `keep`) loses the fields in `taken`; empty entries go."""
    out: Managed = {}
    for idn, e in managed.items():
        if idn != keep:
            fields = smd.fs_difference(e.fields, taken)
            if fields is not e.fields:
                if not fields:
                    continue
                e = replace(e, fields=fields)
        out[idn] = e
    return out


# ------------------------------------------------------------------- apply


def apply(shape: Shape, live: dict[str, Any] | None, config: dict[str, Any], manager: str,
          force: bool) -> dict[str, Any]:
    """Server-side apply of `config` by `manager` over `live` (None: the object is new).

    Returns the object to store, managedFields included, before defaulting;
    raises the 409 of upstream on conflicts unless `force`."""
    gvk_av, gvk_kind = config.get("apiVersion"), config.get("kind")
    if gvk_av != shape.api_version or gvk_kind != shape.kind:
        raise bad_request(f"invalid object type: {_gvk(Shape(shape.schema, str(gvk_av or ''), str(gvk_kind or '')))}")
    cmeta = config.get("metadata")
    if isinstance(cmeta, dict) and cmeta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    sch = shape.schema
    try:
        dup = smd.duplicate_keys(config, sch)
        if dup:
            meta = cmeta if isinstance(cmeta, dict) else {}
            raise ApiError(500, "InternalError", "failed to create typed patch object "
                           f"({meta.get('namespace', '')}/{meta.get('name', '')}; {_gvk(shape)}): {dup}")
        try:
            managed = decode((live or {}).get("metadata", {}).get("managedFields"))
        except ValueError as exc:
            raise ApiError(500, "InternalError", f"failed to decode managed fields: {exc}") from None
        base = _without_managed(live or {})
        if not managed and live is not None:
            managed = _before_first_apply(shape, base)
        merged = smd.merge(base, config, sch)
        idn: Ident = (manager, APPLY, "", shape.subresource)
        last = managed.get(idn)
        applied_set = _filter(smd.to_field_set(config, sch), shape.scope)
        managed[idn] = Entry(applied_set, shape.api_version, True, last.time if last else None)
        if last is not None and last.fields:
            merged = _prune(merged, managed, last.fields, sch)
        cmp = smd.compare(_view(base, shape.scope), _view(merged, shape.scope), sch)
    except smd.SchemaError as exc:
        raise ApiError(500, "InternalError", f"failed to merge config: {exc}") from None
    changed = smd.fs_union(cmp.modified, cmp.added)
    conflicts = [(other, hit) for other, e in managed.items()
                 if other != idn and (hit := smd.fs_intersection(e.fields, changed))]
    if conflicts and not force:
        if manager == "kubectl":
            conflicts = _beyond_last_applied(conflicts, base, sch)
        if conflicts:
            raise conflict_error(conflicts)
    taken = smd.fs_union(changed, cmp.removed)
    if taken:
        managed = _take(managed, taken, keep=idn)
    mine = managed[idn]
    stripped = _strip(mine.fields)
    unchanged = merged == base
    if not stripped:
        del managed[idn]
    else:
        managed[idn] = Entry(stripped, shape.api_version, True, mine.time if unchanged else now_rfc3339())
    _cap(managed)
    out = dict(base if unchanged else merged)
    out["metadata"] = dict(out.get("metadata") or {})
    if manager == "kubectl" and LAST_APPLIED in (out["metadata"].get("annotations") or {}):
        out["metadata"]["annotations"] = dict(out["metadata"]["annotations"])
        out["metadata"]["annotations"][LAST_APPLIED] = _last_applied(config)
    _store(out, managed)
    return out


def _before_first_apply(shape: Shape, live: dict[str, Any]) -> Managed:
    """An object nobody was tracked on: its fields are owned by "before-first-apply",
    so the first apply conflicts with values it would change (skipNonAppliedManager)."""
    seeded = dict(live)
    seeded["metadata"] = dict(live.get("metadata") or {})
    track(shape, None, seeded, BEFORE_FIRST_APPLY)
    return decode_or_empty(seeded["metadata"].get("managedFields"))


def _beyond_last_applied(conflicts: list[tuple[Ident, FieldSet]], live: dict[str, Any],
                         sch: Schema) -> list[tuple[Ident, FieldSet]]:
    """kubectl's move from client-side to server-side apply: conflicts on fields the
    last-applied annotation set, to values the object still has, are no conflicts
    (upstream's lastAppliedManager); what remains is reported."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return conflicts
    try:
        last = orjson.loads(text)
        if not isinstance(last, dict):
            return conflicts
        allowed = smd.fs_difference(smd.to_field_set(last, sch), smd.compare(last, live, sch).modified)
    except (orjson.JSONDecodeError, smd.SchemaError):
        return conflicts
    out = []
    for idn, s in conflicts:
        rest = smd.fs_difference(s, allowed)
        if rest:
            out.append((idn, rest))
    return out


def _last_applied(config: dict[str, Any]) -> str:
    """The annotation kubectl's client-side apply reads, rewritten by a server-side apply
    as upstream's lastAppliedUpdater does (Go's JSON: sorted keys, a final newline)."""
    meta = config.get("metadata")
    if isinstance(meta, dict) and LAST_APPLIED in (meta.get("annotations") or {}):
        config = dict(config, metadata=dict(meta, annotations={k: v for k, v in meta["annotations"].items()
                                                               if k != LAST_APPLIED}))
    return smd.go_json(config, sort=True) + "\n"


def _gvk(shape: Shape) -> str:
    """A GroupVersionKind as Go prints it: `apps/v1, Kind=Deployment`, `/v1, Kind=Pod`."""
    group, _, version = shape.api_version.rpartition("/")
    return f"{group}/{version}, Kind={shape.kind}"


def _prune(merged: Any, managed: Managed, last: FieldSet, sch: Schema) -> Any:
    """Remove what the applier applied last time, no longer applies, and nobody else owns
    (upstream's prune with addBackOwnedItems and addBackDanglingItems)."""
    ensure = smd.ensure_named_fields_are_members
    last_e = ensure(last, sch)
    pruned = smd.remove_items(merged, last_e, sch)
    owned: FieldSet = {}
    for e in managed.values():
        owned = smd.fs_union(owned, e.fields)
    merged_set = ensure(smd.to_field_set(merged, sch), sch)
    pruned_set = ensure(smd.to_field_set(pruned, sch), sch)
    pruned = smd.remove_items(merged, smd.fs_difference(
        merged_set, smd.fs_union(pruned_set, ensure(owned, sch))), sch)
    pruned_set = ensure(smd.to_field_set(pruned, sch), sch)
    return smd.remove_items(merged, smd.fs_intersection(smd.fs_difference(merged_set, pruned_set), last_e), sch)


# --------------------------------------------------------------- conflicts


def _ident_json(idn: Ident) -> str:
    manager, op, av, sub = idn
    entry: dict[str, str] = {"manager": manager, "operation": op}
    if av:
        entry["apiVersion"] = av
    if sub:
        entry["subresource"] = sub
    return orjson.dumps(entry).decode()


def _print_manager(idn: Ident) -> str:
    """As upstream's printManager: `"kubectl" with subresource "scale" using apps/v1`."""
    manager, op, av, sub = idn
    text = orjson.dumps(manager).decode()
    if sub:
        text += f" with subresource {orjson.dumps(sub).decode()}"
    if op == UPDATE:
        text += f" using {av}"
    return text


def conflict_error(conflicts: list[tuple[Ident, FieldSet]]) -> ApiError:
    """409 Conflict with one FieldManagerConflict cause per field, in upstream's words."""
    found = [(idn, path) for idn, s in sorted(conflicts, key=lambda c: _ident_json(c[0]))
             for path in smd.fs_paths(s)]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_print_manager(idn)}",
               "field": smd.path_string(path)} for idn, path in found]
    if len(found) == 1:
        idn, path = found[0]
        message = f"Apply failed with 1 conflict: conflict with {_print_manager(idn)}: {smd.path_string(path)}"
    else:
        lines: list[str] = []
        current: Ident | None = None
        for idn, path in found:
            if idn != current:
                lines.append(f"conflict with {_print_manager(idn)}:")
                current = idn
            lines.append(f"- {smd.path_string(path)}")
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})
