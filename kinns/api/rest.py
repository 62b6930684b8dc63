"""The verbs on resources: get, list, watch, create, update, patch, delete.

Generic over kinds, as upstream's generic registry: each verb reads the
store, runs the kind's defaulting, validation and admission, and writes with
optimistic concurrency.  Kind-specific behaviour stays in small hooks
(Service IP/port allocation, pod graceful deletion, namespace finalizers,
subresources).  Every failure is an `ApiError` carrying upstream's wording.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import datetime as dt
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson

from . import admission, codec, ephemeral, eviction, fieldmanager, objects, scale, tables
from .allocator import ServiceAllocator
from .defaults import apply_defaults
from .errors import (INVALID, ApiError, FieldError, already_exists, bad_request, conflict, forbidden, invalid,
                     not_found)
from .openapi import unknown_fields
from .patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from .request import Request, Response
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector, check_field_selector
from .store.base import ConflictError, Event, ExistsError, NotFoundError, Store, TooOldError
from .validation import validate, validate_update

BOOKMARK_INTERVAL = 10.0
DEFAULT_GRACE = 30


@dataclass
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str            # "" for cluster-scoped or all namespaces
    name: str = ""
    subresource: str = ""

    @property
    def resource(self) -> str:
        return self.rt.group_resource

    def key(self, name: str | None = None) -> tuple[str, str, str]:
        return (self.resource, self.namespace if self.rt.namespaced else "", name or self.name)


def _wants_table(req: Request) -> bool:
    return "as=Table" in req.header("accept")


def _table(rt: ResourceType, items: list[dict[str, Any]], rv: str, include: str, cont: str = "") -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for o in items:
        cells = rt.custom.row_cells(o, now) if rt.custom is not None else tables.row_cells(rt.kind, o, now)
        row: dict[str, Any] = {"cells": cells}
        conditions = tables.row_conditions(rt.kind, o) if rt.custom is None else []
        if conditions:
            row["conditions"] = conditions
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = objects.partial_metadata(o)
        rows.append(row)
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": rt.custom.column_definitions() if rt.custom is not None else tables.column_definitions(rt.kind),
        "rows": rows,
    }


def _sort_key(o: dict[str, Any]) -> tuple[str, str]:
    m = o.get("metadata", {})
    return (m.get("namespace", ""), m.get("name", ""))


# An admission step on a write: (target, object to store, old object or None
# on create, request).  It may mutate the object or raise an ApiError; the
# server registers them (ServiceAccount, RBAC escalation, ...).
AdmissionHook = Callable[[Target, dict[str, Any], "dict[str, Any] | None", Request], Awaitable[None]]


class ResourceHandlers:
    """The REST verbs, bound to one store and one Service allocator."""

    def __init__(self, store: Store, allocator: ServiceAllocator) -> None:
        self.store = store
        self.allocator = allocator
        # Run in order after defaulting, before validation, on create and update.
        self.admission: list[AdmissionHook] = []
        # Called after an object is gone for good (e.g. release Service IPs).
        self._on_removed: list[Callable[[ResourceType, dict[str, Any]], None]] = [self._release_service]

    # ------------------------------------------------------------------ reads

    def get_object(self, t: Target, name: str | None = None) -> dict[str, Any]:
        """The stored object a target names, or 404 in upstream's words."""
        obj = self.store.get(t.key(name))
        if obj is None:
            raise not_found(t.rt.plural, t.rt.group, name or t.name)
        return obj

    def _selectors(self, t: Target, req: Request) -> tuple[LabelSelector, FieldSelector]:
        ls = LabelSelector.parse(req.param("labelSelector"))
        fs = FieldSelector.parse(req.param("fieldSelector"))
        if t.rt.custom is not None:
            t.rt.custom.check_field_selector(fs)
        else:
            check_field_selector(t.rt.kind, fs)
        return ls, fs

    def _filter(self, t: Target, ls: LabelSelector, fs: FieldSelector) -> Callable[[dict[str, Any]], bool]:
        def match(o: dict[str, Any]) -> bool:
            return ls.matches(o.get("metadata", {}).get("labels")) and fs.matches(o)
        return match

    async def get(self, t: Target, req: Request) -> Response:
        obj = self.get_object(t)
        if _wants_table(req):
            return Response(obj=_table(t.rt, [obj], obj["metadata"].get("resourceVersion", ""),
                                       req.param("includeObject", "Metadata")))
        return Response(obj=obj)

    async def list(self, t: Target, req: Request) -> Response:
        ls, fs = self._selectors(t, req)
        match = self._filter(t, ls, fs)
        ns = t.namespace if t.rt.namespaced and t.namespace else None
        name = fs.exact("metadata.name")
        if name is not None:
            candidates = [o for o in self.store.list(t.resource, ns) if o["metadata"].get("name") == name]
        else:
            candidates = self.store.list(t.resource, ns)
        items = sorted((o for o in candidates if match(o)), key=_sort_key)
        rv = str(self.store.revision)
        cont_token = ""
        limit = int(req.param("limit", "0") or 0)
        start = req.param("continue")
        remaining: int | None = None
        if start:
            try:
                after = tuple(orjson.loads(base64.urlsafe_b64decode(start.encode())).get("after", []))
            except Exception:
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)") from None
            items = [o for o in items if _sort_key(o) > after]
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            cont_token = base64.urlsafe_b64encode(
                orjson.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "after": list(_sort_key(items[-1]))})
            ).decode()
        if _wants_table(req):
            return Response(obj=_table(t.rt, items, rv, req.param("includeObject", "Metadata"), cont_token))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont_token:
            meta["continue"] = cont_token
            meta["remainingItemCount"] = remaining
        return Response(obj={"kind": t.rt.list_kind, "apiVersion": t.rt.api_version, "metadata": meta, "items": items})

    async def watch(self, t: Target, req: Request) -> Response:
        ls, fs = self._selectors(t, req)
        match = self._filter(t, ls, fs)
        if t.name:
            name = t.name
            base = match
            match = lambda o: o["metadata"].get("name") == name and base(o)  # noqa: E731
        ns = t.namespace if t.rt.namespaced and t.namespace else None
        rv_param = req.param("resourceVersion")
        initial = req.param("sendInitialEvents") == "true"
        replay_current = rv_param in ("", "0") or initial
        since = self.store.revision if replay_current else _parse_rv(rv_param)
        try:
            watcher = self.store.watch(t.resource, ns, since)
        except TooOldError:
            watcher = None
        snapshot = sorted((o for o in self.store.list(t.resource, ns) if match(o)), key=_sort_key) if replay_current else []
        bookmarks = req.param("allowWatchBookmarks") == "true"
        timeout = float(req.param("timeoutSeconds", "0") or 0)
        as_table = _wants_table(req)
        include = req.param("includeObject", "Metadata")
        rt = t.rt

        def wrap(obj: dict[str, Any]) -> dict[str, Any]:
            if as_table:
                return _table(rt, [obj], obj["metadata"].get("resourceVersion", ""), include)
            return obj

        async def events() -> AsyncIterator[dict[str, Any]]:
            if watcher is None:
                yield {"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f"too old resource version: {rv_param} ({self.store.revision})",
                    "reason": "Expired", "code": 410}}
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout > 0 else None
            try:
                for o in snapshot:
                    yield {"type": "ADDED", "object": wrap(o)}
                if initial and bookmarks:
                    yield {"type": "BOOKMARK", "object": {
                        "kind": rt.kind, "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(since),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}}
                while True:
                    wait = BOOKMARK_INTERVAL
                    if deadline is not None:
                        wait = min(wait, deadline - loop.time())
                        if wait <= 0:
                            return
                    try:
                        ev = await watcher.next(wait)
                    except StopAsyncIteration:   # the store ended it (re-list, shutdown): the client re-watches
                        return
                    if ev is None:
                        if bookmarks and (deadline is None or deadline > loop.time()):
                            yield {"type": "BOOKMARK", "object": {
                                "kind": rt.kind, "apiVersion": rt.api_version,
                                "metadata": {"resourceVersion": str(self.store.revision)}}}
                        continue
                    out = _translate(ev, match)
                    if out is not None:
                        yield {"type": out[0], "object": wrap(out[1])}
            finally:
                watcher.stop()

        return Response(stream=events())

    # ----------------------------------------------------------------- writes

    def _check_body(self, t: Target, body: Any, *, name: str = "") -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("Object 'Kind' is missing in the request body; expected a JSON object")
        # As upstream's decoder, the endpoint's group/version/kind fill in a
        # body that leaves them out (the Python client does).
        # A subresource takes its own kind: PUT .../scale sends an autoscaling/v1 Scale.
        want_av, want_kind = ("autoscaling/v1", "Scale") if t.subresource == "scale" else (t.rt.api_version, t.rt.kind)
        av, kind = body.get("apiVersion"), body.get("kind") or want_kind
        if av and av != want_av:
            raise bad_request(
                f"the API version in the data ({av}) does not match the expected API version ({want_av})"
            )
        if kind != want_kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({want_kind})")
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        bns = meta.get("namespace")
        if t.rt.namespaced and bns and t.namespace and bns != t.namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if name and meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        return body

    def _field_validation(self, t: Target, req: Request, body: dict[str, Any]) -> builtins.list[str]:
        """Strict/Warn field validation; returns warnings for the Warning header."""
        mode = req.param("fieldValidation", "Warn" if req.obj is None else "Ignore")
        if mode == "Ignore" or not t.rt.schema or t.subresource == "scale":
            return []
        unknown = t.rt.custom.unknown_fields(body) if t.rt.custom is not None else unknown_fields(body, t.rt.schema)
        if not unknown:
            return []
        if mode == "Strict":
            why = f'{t.rt.kind} in version "{t.rt.version}" cannot be handled as a {t.rt.kind}: ' if t.rt.custom else ""
            raise bad_request(why + "strict decoding error: " + ", ".join(unknown))
        return unknown

    def _admit_namespace(self, t: Target) -> None:
        if not t.rt.namespaced:
            return
        ns = self.store.get(("namespaces", "", t.namespace))
        if ns is None:
            raise not_found("namespaces", "", t.namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise forbidden(t.rt.plural, t.rt.group, "",
                            f"unable to create new content in namespace {t.namespace} because it is being terminated")

    async def create(self, t: Target, req: Request, *, applied: bool = False) -> Response:
        if t.rt.namespaced and not t.namespace:
            raise not_found(t.rt.plural, t.rt.group, "")  # POST to the all-namespaces URL
        body = self._check_body(t, codec.decode_body(req))
        warnings = self._field_validation(t, req, body)
        obj = objects.prepare_create(t.rt, body, t.namespace)
        if t.rt.custom is not None:
            t.rt.custom.prepare_create(obj, body)  # prune, default, status, generation (crdkind.py)
        else:
            apply_defaults(t.rt.kind, obj)
        if not applied:
            fieldmanager.on_create(t.rt, obj, req)
        if t.rt.kind == "PersistentVolumeClaim":
            admission.default_storage_class(self.store, obj)
        for hook in self.admission:
            await hook(t, obj, None, req)
        name = obj["metadata"].get("name", "")
        errs = (t.rt.custom.validate(obj) if t.rt.custom is not None
                else validate(t.rt.kind, obj) + ephemeral.create_errors(t.rt.kind, obj))
        if errs:
            raise invalid(t.rt.kind, t.rt.group, name, errs)
        self._admit_namespace(t)
        warnings += admission.pod_security(self.store, t.rt.kind if t.rt.custom is None else "", t.namespace, obj, None)
        if self.store.get(t.key(name)) is not None:
            raise already_exists(t.rt.plural, t.rt.group, name)
        dry = req.param("dryRun") == "All"
        if t.rt.kind == "Service" and t.rt.custom is None:
            self.allocator.allocate(obj)
            if dry:
                self.allocator.release(obj)
        if dry:
            return Response(201, obj=obj)
        try:
            stored = await self.store.create(t.key(name), t.rt.custom.to_storage(obj) if t.rt.custom else obj)
        except ExistsError:
            if t.rt.kind == "Service" and t.rt.custom is None:
                self.allocator.release(obj)
            raise already_exists(t.rt.plural, t.rt.group, name) from None
        return Response(201, obj=stored, headers=_warning_header(warnings))

    async def update(self, t: Target, req: Request) -> Response:
        body = self._check_body(t, codec.decode_body(req), name=t.name)
        warnings = self._field_validation(t, req, body)
        old = self.get_object(t)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        return await self._write_update(t, req, old, body, rv, warnings)

    async def patch(self, t: Target, req: Request) -> Response:
        mt = codec.media_type(req)
        if t.rt.custom is not None and mt == codec.STRATEGIC_PATCH and t.subresource != "scale":
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                           "media types include: application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml")
        patch_body = codec.decode_body(req, codec.PATCH_TYPES)
        old = self.store.get(t.key())
        if old is None:
            if mt == codec.APPLY_PATCH:
                return await self._apply_create(t, req, patch_body)
            raise not_found(t.rt.plural, t.rt.group, t.name)
        base: dict[str, Any] = old
        if t.subresource == "scale":
            base = scale.view(t.rt, old)
        if mt == codec.APPLY_PATCH:
            if t.subresource == "scale":
                applied = fieldmanager.on_apply(t.rt, "scale", scale.before(t.rt, old), patch_body, req, scale.SHAPE)
                return await self._write_scale(t, req, old, applied, applied=True)
            patched = fieldmanager.on_apply(t.rt, t.subresource, old, patch_body, req)
            rv = patched["metadata"].get("resourceVersion")
            return await self._write_update(t, req, old, patched, None if rv == old["metadata"].get("resourceVersion")
                                            else rv, [], applied=True)
        if mt == codec.JSON_PATCH:
            patched = apply_json_patch(base, patch_body)
        elif mt == codec.MERGE_PATCH:
            patched = apply_merge_patch(base, patch_body)
        elif mt == codec.STRATEGIC_PATCH:
            schema = t.rt.schema if t.subresource != "scale" else "io.k8s.api.autoscaling.v1.Scale"
            patched = apply_strategic_merge_patch(base, patch_body, schema)
        else:  # pragma: no cover - decode_body already refused it
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {mt}")
        if not isinstance(patched, dict):
            raise bad_request("the patch produced something that is not an object")
        if t.subresource == "scale":
            return await self._write_scale(t, req, old, patched)
        warnings = self._field_validation(t, req, patched) if mt != codec.JSON_PATCH else []
        rv = (patched.get("metadata") or {}).get("resourceVersion")
        if rv == old["metadata"].get("resourceVersion"):
            rv = None
        return await self._write_update(t, req, old, patched, rv, warnings)

    async def _apply_create(self, t: Target, req: Request, body: Any) -> Response:
        """Server-side apply of an object that does not exist yet: a create."""
        body = self._check_body(t, body, name=t.name)
        body.setdefault("metadata", {})["name"] = t.name
        obj = fieldmanager.on_apply(t.rt, t.subresource, None, body, req)
        inner = Request("POST", req.path, req.query, dict(req.headers), obj=obj, user=req.user)
        resp = await self.create(t, inner, applied=True)
        return resp

    async def _write_update(self, t: Target, req: Request, old: dict[str, Any], body: dict[str, Any],
                            rv: str | None, warnings: builtins.list[str], *, applied: bool = False) -> Response:
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise conflict(t.rt.plural, t.rt.group, t.name,
                           "the object has been modified; please apply your changes to the latest version and try again")
        if t.subresource == "scale":
            return await self._write_scale(t, req, old, body)
        if t.subresource == "finalize":
            new = objects.deep_copy(old)
            new["spec"] = dict(old.get("spec", {}))
            new["spec"]["finalizers"] = (body.get("spec") or {}).get("finalizers") or []
        else:
            new = (ephemeral.prepare_update(body, old) if t.subresource == ephemeral.SUBRESOURCE
                   else objects.prepare_update(t.rt, body, old, t.subresource))
        if t.rt.custom is not None:
            t.rt.custom.prepare_update(new, body, old, t.subresource)
        else:
            apply_defaults(t.rt.kind, new)
        if not applied:
            fieldmanager.on_update(t.rt, t.subresource, old, new, req)
        for hook in self.admission:
            await hook(t, new, old, req)
        errs = (t.rt.custom.validate(new, t.subresource) if t.rt.custom is not None
                else ephemeral.validate_update(new, old) if t.subresource == ephemeral.SUBRESOURCE
                else validate_update(t.rt.kind, new, old))
        if errs:
            raise invalid(t.rt.kind, t.rt.group, t.name, errs)
        warnings = warnings + admission.pod_security(self.store, t.rt.kind if t.rt.custom is None else "", t.namespace,
                                                     new, old, t.subresource)
        if req.param("dryRun") == "All":
            return Response(obj=new)
        if t.rt.custom is not None:
            new = t.rt.custom.to_storage(new)
        # No await between here and the store write below, so the pools and
        # the store cannot disagree about a conflicting concurrent update.
        if t.rt.kind == "Service" and not t.subresource and t.rt.custom is None:
            self.allocator.update(old, new)
        if objects.same_object(new, old) and (new["metadata"].get("managedFields")
                                              == old["metadata"].get("managedFields")):
            return Response(obj=old, headers=_warning_header(warnings))
        # The last finalizer gone ends a deletion, unless a grace period still runs
        # (upstream shouldDeleteDuringUpdate): the kubelet's final DELETE ends that one.
        if (new["metadata"].get("deletionTimestamp") and not objects.has_finalizers(new)
                and not old["metadata"].get("deletionGracePeriodSeconds")):
            gone = await self._remove(t, old)
            return Response(obj=gone)
        try:
            stored = await self.store.update(t.key(), new, old["metadata"].get("resourceVersion"))
        except ConflictError:
            raise conflict(t.rt.plural, t.rt.group, t.name,
                           "the object has been modified; please apply your changes to the latest version and try again") from None
        return Response(obj=stored, headers=_warning_header(warnings))

    async def _write_scale(self, t: Target, req: Request, old: dict[str, Any], new_scale: dict[str, Any],
                           *, applied: bool = False) -> Response:
        """A Scale written to `<name>/scale`: the parent takes its replicas (scale.py)."""
        if not applied:
            fieldmanager.on_update(t.rt, "scale", scale.before(t.rt, old), new_scale, req)
        new = scale.updated_parent(t.rt, old, new_scale)
        rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise conflict(t.rt.plural, t.rt.group, t.name,
                           "the object has been modified; please apply your changes to the latest version and try again")
        if new != old and req.param("dryRun") != "All":
            try:
                new = await self.store.update(t.key(), new, old["metadata"]["resourceVersion"])
            except ConflictError:
                raise conflict(t.rt.plural, t.rt.group, t.name, "the object has been modified; please apply "
                               "your changes to the latest version and try again") from None
        return Response(obj=scale.view(t.rt, new))

    async def get_scale(self, t: Target, req: Request) -> Response:
        return Response(obj=scale.view(t.rt, self.get_object(t)))

    # ----------------------------------------------------------------- delete

    def _delete_options(self, req: Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if req.obj is not None or req.body.strip():
            body = codec.decode_body(req)
            if isinstance(body, dict):
                opts.update(body)
        if req.param("gracePeriodSeconds"):
            opts["gracePeriodSeconds"] = int(req.param("gracePeriodSeconds"))
        if req.param("propagationPolicy"):
            opts["propagationPolicy"] = req.param("propagationPolicy")
        if req.param("orphanDependents"):
            opts["orphanDependents"] = req.param("orphanDependents") == "true"
        if req.param("dryRun"):
            opts["dryRun"] = [req.param("dryRun")]
        return opts

    async def delete(self, t: Target, req: Request) -> Response:
        opts = self._delete_options(req)
        obj = self.get_object(t)
        return await self._delete_one(t, obj, opts)

    async def _delete_one(self, t: Target, obj: dict[str, Any], opts: dict[str, Any]) -> Response:
        meta = obj["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(t.rt.plural, t.rt.group, meta["name"],
                           f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(t.rt.plural, t.rt.group, meta["name"],
                           f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                           f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
        if "All" in (opts.get("dryRun") or []):
            return Response(obj=obj)
        policy = opts.get("propagationPolicy")
        if opts.get("orphanDependents") is True:
            policy = "Orphan"
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy or "")
        grace = self._grace(t.rt, obj, opts)
        key = (t.resource, meta.get("namespace", "") if t.rt.namespaced else "", meta["name"])
        if grace > 0 or finalizer or objects.has_finalizers(obj):
            updated = objects.mark_deleting(obj, max(grace, 0), finalizer)
            if objects.has_finalizers(updated) or grace > 0:
                if updated != obj:
                    updated = await self.store.update(key, updated)
                return Response(obj=updated)
        tt = Target(t.rt, meta.get("namespace", ""), meta["name"])
        gone = await self._remove(tt, obj)
        if t.rt.kind in ("Pod", "Service", "Namespace", "Node"):
            return Response(obj=gone)
        return Response(obj={
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": meta["name"], "group": t.rt.group, "kind": t.rt.plural, "uid": meta.get("uid")},
        })

    def _grace(self, rt: ResourceType, obj: dict[str, Any], opts: dict[str, Any]) -> int:
        """Graceful deletion applies to pods bound to a node (the kubelet finishes it)."""
        if rt.kind == "Namespace":
            return 0
        if rt.kind != "Pod" or rt.custom is not None:
            return 0
        if not obj.get("spec", {}).get("nodeName"):
            return 0
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = opts.get("gracePeriodSeconds")
        if grace is None:
            grace = obj.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        return int(grace)

    async def _remove(self, t: Target, obj: dict[str, Any]) -> dict[str, Any]:
        try:
            gone = await self.store.delete(t.key(obj["metadata"]["name"]))
        except NotFoundError:
            raise not_found(t.rt.plural, t.rt.group, obj["metadata"]["name"]) from None
        for hook in self._on_removed:
            hook(t.rt, gone)
        return gone

    def _release_service(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.kind == "Service":
            self.allocator.release(obj)

    async def delete_collection(self, t: Target, req: Request) -> Response:
        ls, fs = self._selectors(t, req)
        match = self._filter(t, ls, fs)
        opts = self._delete_options(req)
        ns = t.namespace if t.rt.namespaced and t.namespace else None
        items = sorted((o for o in self.store.list(t.resource, ns) if match(o)), key=_sort_key)
        deleted = []
        for o in items:
            tt = Target(t.rt, o["metadata"].get("namespace", ""), o["metadata"]["name"])
            try:
                resp = await self._delete_one(tt, o, opts)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(resp.obj if resp.obj.get("kind") != "Status" else o)
        return Response(obj={"kind": t.rt.list_kind, "apiVersion": t.rt.api_version,
                             "metadata": {"resourceVersion": str(self.store.revision)}, "items": deleted})

    # ------------------------------------------------------------ subresources

    async def bind(self, t: Target, req: Request) -> Response:
        body = codec.decode_body(req)
        pod = self.get_object(t)
        target = (body.get("target") or {}) if isinstance(body, dict) else {}
        node = target.get("name", "")
        if not node:
            raise bad_request("a binding must name a target node")
        if pod["metadata"].get("deletionTimestamp"):
            raise conflict("pods", "", t.name, "pod is being deleted, cannot be assigned to a host")
        current = pod.get("spec", {}).get("nodeName")
        if current:
            raise conflict("pods", "", t.name, f'pod {t.name} is already assigned to node "{current}"')
        new = objects.deep_copy(pod)
        new["spec"]["nodeName"] = node
        conds = [c for c in new.setdefault("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": objects.now_rfc3339()})
        new["status"]["conditions"] = conds
        await self.store.update(t.key(), new, pod["metadata"]["resourceVersion"])
        return Response(201, obj={"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})

    async def evict(self, t: Target, req: Request) -> Response:
        """pods/<name>/eviction: a deletion its PodDisruptionBudget allows (see eviction.py)."""
        return await eviction.evict(self, Target(t.rt, t.namespace, t.name), req)


def _parse_rv(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f'invalid resource version "{text}"') from None


def _translate(ev: Event, match: Callable[[dict[str, Any]], bool]) -> tuple[str, dict[str, Any]] | None:
    """Turn a store event into what a filtered watcher sees (upstream's cacheWatcher)."""
    now = match(ev.obj)
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if now else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if (ev.prev is not None and match(ev.prev)) or now else None
    before = ev.prev is not None and match(ev.prev)
    if now and before:
        return ("MODIFIED", ev.obj)
    if now:
        return ("ADDED", ev.obj)
    if before:
        return ("DELETED", ev.obj)
    return None


def _warning_header(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {"Warning": ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in warnings)}
