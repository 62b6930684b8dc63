"""The kinds a CustomResourceDefinition defines, as the REST layer sees them.

For every served version of an established CRD, `resource_types(crd)` makes
one `ResourceType` whose `custom` is a `CustomKind`: the strategy that
upstream's custom resource registry (apiextensions-apiserver/pkg/registry/
customresource) applies where a built-in kind has its own defaults,
validation and printer.  The generic verbs in rest.py call it at fixed
points:

* field selectors: metadata.name, metadata.namespace and the version's
  `selectableFields`, anything else refused as upstream words it;
* decoding: unknown fields pruned (reported for `fieldValidation`), nulls of
  non-nullable fields dropped, `default`s filled;
* PrepareForCreate/Update: `.status` ignored by main-resource writes and
  everything but `.status` by `/status` writes when the status subresource
  is on; `metadata.generation` 1 on create, +1 when anything outside
  metadata changes;
* validation (crvalidation.py), then storage in the CRD's storage version
  (conversion strategy None rewrites only apiVersion);
* the Table: NAME plus `additionalPrinterColumns` (default: Age);
* the scale subresource: an autoscaling/v1 Scale read from and written to
  the CRD's replica paths.

Everything here is a pure function of the CRD object, so the API server
(crd.py) and the controllers (garbage collector, namespace controller) build
the same types from the same CRDs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import jsonpath, objects, schemas
from . import structural as st
from .crdvalidation import columns_for_version, schema_for_version, storage_version, subresources_for_version
from .crvalidation import validate_custom_resource
from .errors import ApiError, FieldError, bad_request
from .request import Response
from .resources import GROUP_ORDER, RESOURCES, Registry, ResourceType
from .selectors import FieldSelector
from .tables import human_duration, parse_time

Obj = dict[str, Any]

GROUP = "apiextensions.k8s.io"
CRD_RESOURCE = f"customresourcedefinitions.{GROUP}"
CRD_KIND = "CustomResourceDefinition"
# Upstream's order of a custom resource's verbs in discovery.
VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_NAME_DOC = "Name must be unique within a namespace. Is required when creating resources, although some resources " \
            "may allow a client to request the generation of an appropriate name automatically. Name is primarily " \
            "intended for creation idempotence and configuration definition. Cannot be updated. More info: " \
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
_AGE_DOC = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not " \
           "guaranteed to be set in happens-before order across separate operations. Clients may not set this " \
           "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null " \
           "for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in upstream's kube-aware order: v2, v1, v1beta2,
    v1beta1, v1alpha1, then anything else alphabetically."""
    m = _KUBE_VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, version)


def rest_friendly_name(group: str, version: str, kind: str) -> str:
    """`stable.example.com/v1/CronTab` -> `com.example.stable.v1.CronTab` (kube-openapi's
    ToRESTFriendlyName): the OpenAPI definition name of a custom kind."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def terminating(crd: Obj) -> bool:
    return bool(_d(crd.get("metadata")).get("deletionTimestamp"))


def served_versions(crd: Obj) -> list[str]:
    names = [str(v.get("name")) for v in _d(crd.get("spec")).get("versions") or []
             if isinstance(v, dict) and v.get("served") and v.get("name")]
    return sorted(names, key=version_priority)


def _accepted(crd: Obj) -> Obj:
    return _d(_d(crd.get("status")).get("acceptedNames"))


def is_served(crd: Obj) -> bool:
    """Established (or at least with accepted names): its endpoints answer."""
    conds = {c.get("type"): c.get("status") for c in _d(crd.get("status")).get("conditions") or []
             if isinstance(c, dict)}
    return (conds.get("Established") == "True" or conds.get("NamesAccepted") == "True") \
        and bool(_accepted(crd).get("plural")) and bool(_accepted(crd).get("kind"))


# --------------------------------------------------------------------------
# The strategy of one served version


@dataclass(eq=False)
class CustomKind:
    """How one served version of a CRD behaves; see the module docstring."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    storage_version: str
    schema: Obj | None
    status: bool
    scale: Obj | None
    columns: list[Obj] = field(default_factory=list)
    selectable: tuple[str, ...] = ()
    terminating: bool = False
    # For a version marked deprecated: the Warning every request to it gets.
    deprecation: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    # ---------------------------------------------------------- selectors

    def check_field_selector(self, sel: FieldSelector) -> None:
        allowed = {"metadata.name", "metadata.namespace", *self.selectable}
        for name, _, _ in sel.requirements():
            if name not in allowed:
                raise bad_request(f'"{name}" is not a known field selector: only "metadata.name", "metadata.namespace"')

    # ----------------------------------------------------------- decoding

    def unknown_fields(self, body: Obj) -> list[str]:
        """`unknown field "spec.foo"` for each field pruning would drop (and unknown metadata)."""
        copy_ = objects.deep_copy(body)
        paths = st.prune(copy_, self.schema)
        meta = body.get("metadata")
        known = st.properties(schemas.definition(_OBJECT_META))
        if isinstance(meta, dict) and known:
            paths += [f"metadata.{k}" for k in meta if k not in known]
        return [f'unknown field "{p}"' for p in sorted(paths)]

    def _normalize(self, obj: Obj) -> None:
        """What upstream's decoder does to every write: prune, drop non-nullable nulls, default."""
        st.prune(obj, self.schema)
        st.prune_nulls(obj, self.schema)
        st.apply_defaults(obj, self.schema)

    # --------------------------------------------------------- strategies

    def prepare_create(self, obj: Obj, body: Obj) -> None:
        """PrepareForCreate, after objects.prepare_create filled system metadata."""
        if self.terminating:
            raise ApiError(405, "MethodNotAllowed", "create not allowed while custom resource definition is terminating")
        obj.pop("status", None)
        if "status" in body and not self.status:
            obj["status"] = objects.deep_copy(body["status"])
        self._normalize(obj)
        if self.status:
            obj.pop("status", None)
        obj["metadata"]["generation"] = 1

    def prepare_update(self, new: Obj, body: Obj, old: Obj, subresource: str) -> None:
        """PrepareForUpdate of the main resource or of /status, after objects.prepare_update."""
        if subresource == "status":
            if "status" not in body:
                new.pop("status", None)
            self._normalize(new)
            return
        self._normalize(new)
        before = {k: v for k, v in old.items() if k not in ("metadata", "apiVersion")}
        after = {k: v for k, v in new.items() if k not in ("metadata", "apiVersion")}
        generation = int(_d(old.get("metadata")).get("generation") or 1)
        new["metadata"]["generation"] = generation + 1 if before != after else generation

    def validate(self, obj: Obj, subresource: str = "") -> list[FieldError]:
        return validate_custom_resource(obj, self.schema, namespaced=self.namespaced, scale=self.scale,
                                        status_only=subresource == "status")

    def to_storage(self, obj: Obj) -> Obj:
        """The object as stored: in the storage version (None conversion: apiVersion only)."""
        obj["apiVersion"] = f"{self.group}/{self.storage_version}"
        return obj

    # --------------------------------------------------------------- table

    def column_definitions(self) -> list[Obj]:
        cols: list[Obj] = [{"name": "Name", "type": "string", "format": "name", "description": _NAME_DOC,
                            "priority": 0}]
        for c in self._printer_columns():
            cols.append({"name": c.get("name", ""), "type": c.get("type", "string"), "format": c.get("format", ""),
                         "description": c.get("description") or
                         f"Custom resource definition column (in JSONPath format): {c.get('jsonPath', '')}",
                         "priority": int(c.get("priority") or 0)})
        return cols

    def _printer_columns(self) -> list[Obj]:
        return self.columns or [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                                 "description": _AGE_DOC}]

    def row_cells(self, obj: Obj, now: dt.datetime) -> list[Any]:
        cells: list[Any] = [_d(obj.get("metadata")).get("name", "")]
        for c in self._printer_columns():
            try:
                found = jsonpath.find(obj, jsonpath.parse(str(c.get("jsonPath", ""))))
            except jsonpath.JSONPathError:
                found = []
            cells.append(_cell(str(c.get("type", "string")), found[0] if found else None, now))
        return cells

    # --------------------------------------------------------------- scale

    def scale_of(self, obj: Obj) -> Obj:
        """The autoscaling/v1 Scale of a custom resource (scaleFromCustomResource)."""
        scale = self.scale or {}
        meta = _d(obj.get("metadata"))
        selector = _get_path(obj, str(scale.get("labelSelectorPath") or "")) if scale.get("labelSelectorPath") else ""
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": _int_at(obj, str(scale.get("specReplicasPath", "")))},
            "status": {"replicas": _int_at(obj, str(scale.get("statusReplicasPath", ""))),
                       **({"selector": selector} if isinstance(selector, str) and selector else {})},
        }

    def with_replicas(self, obj: Obj, replicas: int) -> Obj:
        new = objects.deep_copy(obj)
        parts = str((self.scale or {}).get("specReplicasPath", ".spec.replicas")).lstrip(".").split(".")
        cur = new
        for p in parts[:-1]:
            nxt = cur.get(p)
            if not isinstance(nxt, dict):
                nxt = cur[p] = {}
            cur = nxt
        cur[parts[-1]] = replicas
        return new


def _get_path(obj: Any, dotted: str) -> Any:
    cur = obj
    for p in dotted.lstrip(".").split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def _int_at(obj: Obj, dotted: str) -> int:
    value = _get_path(obj, dotted) if dotted else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cell(typ: str, value: Any, now: dt.datetime) -> Any:
    """cellForJSONValue, and string columns printed as Go's fmt prints them."""
    if value is None:
        return None
    if typ == "string":
        return jsonpath.format_value(value)
    if typ == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if typ == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if typ == "boolean" and isinstance(value, bool):
        return value
    if typ == "date" and isinstance(value, str):
        when = parse_time(value)
        if when is None:
            return "<invalid>"
        return human_duration((now - when).total_seconds())
    return None


# --------------------------------------------------------------------------
# From CRDs to resource types and registries


def resource_types(crd: Obj, *, all_versions: bool = False) -> list[ResourceType]:
    """One ResourceType per served version (every version with all_versions),
    named by the CRD's accepted names, best version first."""
    spec, names = _d(crd.get("spec")), _accepted(crd)
    group, plural, kind = str(spec.get("group", "")), str(names.get("plural", "")), str(names.get("kind", ""))
    if not (group and plural and kind):
        return []
    versions = served_versions(crd) if not all_versions else sorted(
        [str(v.get("name")) for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("name")],
        key=version_priority)
    namespaced = spec.get("scope") != "Cluster"
    out = []
    for version in versions:
        subs = subresources_for_version(crd, version)
        selectable = tuple(str(_d(f).get("jsonPath", "")).lstrip(".")
                           for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("name") == version
                           for f in v.get("selectableFields") or [])
        custom = CustomKind(group, version, kind, plural, namespaced, storage_version(crd) or version,
                            schema_for_version(crd, version), "status" in subs,
                            subs.get("scale") if isinstance(subs.get("scale"), dict) else None,
                            columns_for_version(crd, version), selectable, terminating(crd),
                            deprecation_warning(crd, version))
        out.append(ResourceType(
            group, version, kind, plural, namespaced,
            short_names=tuple(str(s) for s in names.get("shortNames") or []),
            categories=tuple(str(c) for c in names.get("categories") or []),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            verbs=VERBS, singular=str(names.get("singular") or kind.lower()),
            schema=rest_friendly_name(group, version, kind), custom=custom))
    return out


def preferred_type(crd: Obj) -> ResourceType | None:
    """The type a controller watches a CRD's objects through (its best served version)."""
    types = resource_types(crd)
    return types[0] if types else None


def extended_registry(crds: Iterable[Obj], base: tuple[ResourceType, ...] = RESOURCES) -> Registry:
    """The built-in kinds plus every served CRD's, custom groups after the
    built-in ones and sorted by name, versions best first (upstream's
    discovery order for CRD groups: priority 1000, then by name)."""
    custom: list[ResourceType] = []
    for crd in crds:
        if is_served(crd):
            custom.extend(resource_types(crd))
    custom.sort(key=lambda rt: (rt.group in GROUP_ORDER, rt.group, version_priority(rt.version), rt.plural))
    return Registry(types=base + tuple(custom))


# --------------------------------------------------------------------------
# Responses in the version the client asked for


def _convert_obj(obj: Any, group: str, api_version: str) -> Any:
    if isinstance(obj, dict):
        av = obj.get("apiVersion")
        if isinstance(av, str) and av.startswith(group + "/") and av != api_version:
            obj["apiVersion"] = api_version
        if obj.get("kind") == "Table":
            for row in obj.get("rows") or []:
                if isinstance(row, dict) and isinstance(row.get("object"), dict):
                    _convert_obj(row["object"], group, api_version)
        for item in obj.get("items") or [] if isinstance(obj.get("items"), list) else []:
            _convert_obj(item, group, api_version)
    return obj


def deprecation_warning(crd: Obj, version: str) -> str:
    """The Warning for requests to a deprecated version: its deprecationWarning,
    else upstream's default naming the newest served version that is not."""
    spec = _d(crd.get("spec"))
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    mine = next((v for v in versions if v.get("name") == version), {})
    if not mine.get("deprecated"):
        return ""
    if isinstance(mine.get("deprecationWarning"), str):
        return str(mine["deprecationWarning"])
    group, kind = spec.get("group", ""), _d(spec.get("names")).get("kind", "")
    msg = f"{group}/{version} {kind} is deprecated"
    newer = sorted((str(v.get("name")) for v in versions if v.get("served") and not v.get("deprecated")
                    and version_priority(str(v.get("name"))) < version_priority(version)), key=version_priority)
    return msg + (f"; use {group}/{newer[0]} {kind}" if newer else "")


def convert_response(resp: Response, rt: ResourceType) -> Response:
    """Rewrite stored objects (storage version) into the requested version: the
    None conversion strategy changes nothing but apiVersion.  A deprecated
    version's requests also get its Warning."""
    if rt.custom is not None and rt.custom.deprecation:
        warning = '299 - "' + rt.custom.deprecation.replace('"', '\\"') + '"'
        resp.headers["Warning"] = ", ".join(w for w in (resp.headers.get("Warning"), warning) if w)
    if resp.obj is not None:
        _convert_obj(resp.obj, rt.group, rt.api_version)
    if resp.stream is not None:
        inner = resp.stream

        async def converted() -> Any:
            async for ev in inner:
                if isinstance(ev, dict):
                    _convert_obj(ev.get("object"), rt.group, rt.api_version)
                yield ev
        resp.stream = converted()
    return resp


__all__ = ["CustomKind", "resource_types", "preferred_type", "extended_registry", "convert_response",
           "version_priority", "rest_friendly_name", "served_versions", "is_served"]
