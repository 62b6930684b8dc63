"""The scale subresource: an `autoscaling/v1 Scale` view of anything with replicas.

`kubectl scale`, HorizontalPodAutoscalers, lightkube and client-go's scale
client read and write `<resource>/<name>/scale` with a Scale object, whatever
the resource's own kind: a PUT carries `autoscaling/v1 Scale`, never the
parent kind.  This module makes the view and maps a written Scale back:

* `view` is the Scale of a parent object (spec.replicas, status.replicas,
  status.selector as a selector string), what GET answers;
* `before` is that view with the parent's managedFields translated to it
  (entries owning the replicas field become Scale entries), so the field
  manager tracks and applies on the Scale as on any object;
* `updated_parent` validates a written Scale and returns the parent with its
  replicas and managedFields updated, as upstream's ScaleHandler does: an
  Update through `/scale` shows up on the parent as an entry with
  `subresource: scale` owning `.spec.replicas`.

Built-in kinds keep replicas at `.spec.replicas`.  Custom resources name
their own paths in the CRD's `subresources.scale`, which their ResourceType
carries (`rt.custom`, crdkind.CustomKind: its `scale`, `scale_of`,
`with_replicas` and `validate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import fieldmanager, objects, smd
from .errors import INVALID, FieldError, bad_request, conflict, invalid
from .fieldmanager import Entry, Shape
from .resources import ResourceType
from .selectors import LabelSelector

API_VERSION = "autoscaling/v1"
KIND = "Scale"
SHAPE = Shape(smd.for_definition("io.k8s.api.autoscaling.v1.Scale"), API_VERSION, KIND, "scale")
_REPLICAS_IN_SCALE: smd.Path = ("f:spec", "f:replicas")


@dataclass(frozen=True)
class ScalePaths:
    """Where a resource keeps what its Scale shows."""

    spec_replicas: str = ".spec.replicas"
    group: str = ""          # custom resources: entries of any version of the group map
    api_version: str = ""    # built-in kinds: entries of this version map


def paths_for(rt: ResourceType) -> ScalePaths:
    custom = _custom(rt)
    if custom is not None:
        spec = (getattr(custom, "scale", None) or {}).get("specReplicasPath") or ".spec.replicas"
        return ScalePaths(str(spec), group=rt.group)
    return ScalePaths(api_version=rt.api_version)


def _custom(rt: ResourceType) -> Any:
    return getattr(rt, "custom", None)


def _maps(paths: ScalePaths, api_version: str) -> bool:
    """Whether a managedFields entry of `api_version` can own the parent's replicas."""
    if paths.group:
        return api_version.split("/")[0] == paths.group
    return api_version == paths.api_version


def view(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale a GET of `<name>/scale` answers."""
    custom = _custom(rt)
    if custom is not None:
        out: dict[str, Any] = custom.scale_of(obj)
        return out
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    sel = spec.get("selector")
    if rt.kind == "ReplicationController" and isinstance(sel, dict) and sel:   # a plain label map
        sel = {"matchLabels": sel}
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0),
                   "selector": str(LabelSelector.from_spec(sel)) if isinstance(sel, dict) and sel else ""},
    }


def before(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale as the field manager sees it: `view` plus the entries that own replicas."""
    paths = paths_for(rt)
    scale = view(rt, obj)
    entries = _to_scale(obj["metadata"].get("managedFields"), paths)
    if entries:
        scale["metadata"]["managedFields"] = entries
    return scale


def _to_scale(parent_entries: Any, paths: ScalePaths) -> list[dict[str, Any]]:
    """Upstream's ScaleHandler.ToSubresource: the entries owning replicas, as Scale entries."""
    managed = fieldmanager.decode_or_empty(parent_entries)
    path = smd.parse_path(paths.spec_replicas)
    out = {idn: Entry(smd.fs_from_paths(_REPLICAS_IN_SCALE), API_VERSION, e.applied, e.time)
           for idn, e in managed.items() if _maps(paths, e.api_version) and smd.fs_has(e.fields, path)}
    return fieldmanager.encode(out)


def _to_parent(parent_entries: Any, scale_entries: Any, paths: ScalePaths, api_version: str) -> list[dict[str, Any]]:
    """Upstream's ScaleHandler.ToParent: replicas owners from the Scale, the rest as they were."""
    parent = fieldmanager.decode_or_empty(parent_entries)
    scale = dict(fieldmanager.decode_or_empty(scale_entries))
    path = smd.parse_path(paths.spec_replicas)
    owns = smd.fs_from_paths(path)
    out: fieldmanager.Managed = {}
    for idn, e in parent.items():
        if not _maps(paths, e.api_version):
            continue
        if not smd.fs_has(e.fields, path):
            out[idn] = e
        elif idn in scale:
            out[idn] = e
            del scale[idn]
        else:
            rest = smd.fs_difference(e.fields, owns)
            if rest:
                out[idn] = Entry(rest, e.api_version, e.applied, e.time)
    for idn, e in scale.items():
        if smd.fs_has(e.fields, _REPLICAS_IN_SCALE):
            prev = parent.get(idn)
            out[idn] = Entry(owns, api_version, e.applied, prev.time if prev else None)
    return fieldmanager.encode(out)


def updated_parent(rt: ResourceType, parent: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    """The parent object after a write of `scale`, or upstream's error for a bad Scale."""
    custom = _custom(rt)
    paths = paths_for(rt)
    name = parent["metadata"]["name"]
    replicas = (scale.get("spec") or {}).get("replicas", None if custom is not None else 0)
    if replicas is None:
        raise bad_request(f'the spec replicas field "{paths.spec_replicas}" cannot be empty')
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(KIND, "autoscaling", name,
                      [FieldError(INVALID, "spec.replicas", replicas, "must be greater than or equal to 0")])
    uid = (scale.get("metadata") or {}).get("uid")
    if uid and uid != parent["metadata"].get("uid"):
        raise conflict(f"{rt.plural}/scale", rt.group, name,
                       f"Precondition failed: UID in precondition: {uid}, "
                       f"UID in object meta: {parent['metadata'].get('uid')}")
    if custom is not None:          # the CRD's specReplicasPath, then the CRD's schema
        new: dict[str, Any] = custom.with_replicas(parent, replicas)
        errs = custom.validate(new)
        if errs:
            raise invalid(rt.kind, rt.group, name, errs)
    else:
        new = objects.deep_copy(parent)
        new.setdefault("spec", {})["replicas"] = replicas
    if new != parent:   # a spec change, as the kinds' PrepareForUpdate counts it
        new["metadata"]["generation"] = int(parent["metadata"].get("generation", 1)) + 1
    entries = _to_parent(parent["metadata"].get("managedFields"), (scale.get("metadata") or {}).get("managedFields"),
                         paths, rt.api_version)
    if entries:
        new["metadata"]["managedFields"] = entries
    else:
        new["metadata"].pop("managedFields", None)
    return new
