"""The Kubernetes API client every kinns component uses.

`Client` turns verbs on objects (get, list, create, update, patch, delete,
watch) into REST `Request`s on the standard paths and hands them to a
`Transport`; it knows nothing of sockets.  Kinds are named by
`(apiVersion, kind)` (looked up in the resource registry) or by a
`ResourceType`, so a component reads like the YAML it manages.

Objects are plain JSON dicts, exactly as the API sends them.  Failures are
raised as `ApiError` with the code, reason and message of the server's
Status, so callers test `exc.code == 404` or `exc.reason == "Conflict"` the
way client-go callers use `IsNotFound` / `IsConflict`.

A watch is an async iterator of `{"type", "object"}` events (BOOKMARKs
included, so an informer can keep its resourceVersion fresh); an ERROR event
ends it by raising `ApiError` (410 Expired means: list again).
"""

from __future__ import annotations

import asyncio

import datetime as dt
import logging
import uuid
from typing import Any, AsyncIterator, Union

from ..api.errors import ApiError
from ..api.request import Request, Response
from ..api.resources import REGISTRY, Registry, ResourceType
from .transport import Transport

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ResourceRef = Union[ResourceType, tuple[str, str]]

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def error_from(resp: Response) -> ApiError:
    """The `ApiError` a failed response stands for (Status, or bare text)."""
    obj = resp.obj
    if isinstance(obj, dict) and obj.get("kind") == "Status":
        return ApiError(int(obj.get("code") or resp.status), obj.get("reason") or "",
                        obj.get("message") or "", obj.get("details"))
    text = (resp.raw or b"").decode(errors="replace").strip() if resp.raw else str(obj or "")
    return ApiError(resp.status, _reason_for(resp.status), text or f"the server answered {resp.status}")


def _reason_for(code: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests",
            500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}.get(code, "Unknown")


def object_key(obj: Obj) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (client-go's key)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str, str]:
    """Inverse of `object_key`: (namespace or "", name)."""
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return "", key


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Client:
    """Verbs on Kubernetes objects over any `Transport`."""

    def __init__(self, transport: Transport, *, registry: Registry = REGISTRY, user_agent: str = "kinns") -> None:
        # Background event writes still in flight (kept so they are not collected).
        self._background: set[asyncio.Task[Any]] = set()
        self.transport = transport
        self.registry = registry
        self.user_agent = user_agent
        # Event aggregation: same (object, reason, message, ...) → count += 1.
        self._events: dict[tuple[str, ...], tuple[str, str, int, str]] = {}

    # ----------------------------------------------------------- addressing

    def resource(self, ref: ResourceRef) -> ResourceType:
        """Resolve `(apiVersion, kind)` to its `ResourceType`."""
        if isinstance(ref, ResourceType):
            return ref
        api_version, kind = ref
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise ValueError(f"unknown kind {kind} in {api_version}")
        return rt

    def resource_of(self, obj: Obj) -> ResourceType:
        return self.resource((obj.get("apiVersion", ""), obj.get("kind", "")))

    @staticmethod
    def path(rt: ResourceType, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The REST path, e.g. /apis/apps/v1/namespaces/default/deployments/web/scale."""
        p = rt.path_prefix()
        if rt.namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{rt.plural}"
        if name:
            p += f"/{name}"
            if subresource:
                p += f"/{subresource}"
        return p

    async def _call(self, method: str, path: str, *, query: dict[str, list[str]] | None = None,
                    obj: Any = None, content_type: str | None = None) -> Response:
        headers = {"user-agent": self.user_agent, "accept": "application/json"}
        if obj is not None:
            headers["content-type"] = content_type or "application/json"
        resp = await self.transport.request(Request(method, path, query or {}, headers, b"", obj))
        if resp.status >= 400:
            raise error_from(resp)
        return resp

    async def wait_until_healthy(self, interval: float = 0.1, timeout: float | None = None) -> None:
        """Wait until the API server's /healthz answers 200 (upstream's WaitForAPIServer, which
        kube-controller-manager and kube-scheduler run before anything else; kinns polls
        every 0.1 s instead of every second, so a cluster starting from scratch is not held up)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                await self._call("GET", "/healthz")
                return
            except Exception:  # noqa: BLE001 - not up yet: refused, 5xx, TLS reset
                if deadline is not None and loop.time() > deadline:
                    raise
            await asyncio.sleep(interval)

    # ---------------------------------------------------------------- reads

    async def get(self, ref: ResourceRef, name: str, namespace: str | None = None, *,
                  subresource: str | None = None) -> Obj:
        rt = self.resource(ref)
        resp = await self._call("GET", self.path(rt, namespace, name, subresource))
        return resp.obj  # type: ignore[no-any-return]

    async def list(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[Obj], str]:
        """All matching objects and the list's resourceVersion (to watch from).

        With `limit`, reads page by page following `continue` tokens, so a
        huge collection never arrives as one answer; the result is the same.
        """
        rt = self.resource(ref)
        query = _selectors(label_selector, field_selector)
        if limit:
            query["limit"] = [str(limit)]
        items: list[Obj] = []
        rv = ""
        while True:
            resp = await self._call("GET", self.path(rt, namespace), query=query)
            body = resp.obj or {}
            for it in body.get("items") or []:
                # List items omit apiVersion/kind on the wire; fill them in.
                it.setdefault("apiVersion", rt.api_version)
                it.setdefault("kind", rt.kind)
                items.append(it)
            meta = body.get("metadata") or {}
            rv = rv or meta.get("resourceVersion", "")
            cont = meta.get("continue")
            if not cont:
                break
            query = dict(query)
            query["continue"] = [cont]
        return items, rv

    async def watch(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        name: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[Obj]:
        """Stream change events; raises `ApiError` on an ERROR event (410: re-list)."""
        rt = self.resource(ref)
        query = _selectors(label_selector, field_selector)
        query["watch"] = ["true"]
        if name:
            fs = f"metadata.name={name}"
            query["fieldSelector"] = [f"{field_selector},{fs}" if field_selector else fs]
        if resource_version is not None:
            query["resourceVersion"] = [resource_version]
        if allow_bookmarks:
            query["allowWatchBookmarks"] = ["true"]
        if timeout_seconds:
            query["timeoutSeconds"] = [str(timeout_seconds)]
        resp = await self._call("GET", self.path(rt, namespace), query=query)
        stream = resp.stream
        if stream is None:
            raise ApiError(500, "InternalError", "the server answered a watch without a stream")
        try:
            async for ev in stream:
                if ev.get("type") == "ERROR":
                    st = ev.get("object") or {}
                    raise ApiError(int(st.get("code") or 500), st.get("reason") or "InternalError",
                                   st.get("message") or "watch error", st.get("details"))
                yield ev
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    # --------------------------------------------------------------- writes

    async def create(self, obj: Obj, namespace: str | None = None, *, field_manager: str | None = None) -> Obj:
        """Create `obj`; its kind comes from its apiVersion/kind, its namespace from metadata or `namespace`."""
        rt = self.resource_of(obj)
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or ("default" if rt.namespaced else None)
        query = {"fieldManager": [field_manager]} if field_manager else None
        resp = await self._call("POST", self.path(rt, ns), query=query, obj=obj)
        return resp.obj  # type: ignore[no-any-return]

    async def update(self, obj: Obj, *, subresource: str | None = None) -> Obj:
        """PUT the whole object (optimistic concurrency on its resourceVersion)."""
        rt = self.resource_of(obj)
        meta = obj.get("metadata") or {}
        resp = await self._call("PUT", self.path(rt, meta.get("namespace"), meta["name"], subresource), obj=obj)
        return resp.obj  # type: ignore[no-any-return]

    async def post_subresource(self, ref: ResourceRef, name: str, namespace: str | None,
                               subresource: str, body: Obj) -> Obj:
        """POST to a subresource such as pods/binding or pods/eviction."""
        rt = self.resource(ref)
        resp = await self._call("POST", self.path(rt, namespace, name, subresource), obj=body)
        return resp.obj  # type: ignore[no-any-return]

    async def update_status(self, obj: Obj) -> Obj:
        return await self.update(obj, subresource="status")

    async def finalize_namespace(self, ns: Obj) -> Obj:
        """PUT /api/v1/namespaces/{name}/finalize (spec.finalizers as given in `ns`)."""
        return await self.update(ns, subresource="finalize")

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> Obj:
        """PATCH with `patch_type` one of merge, json, strategic, apply."""
        rt = self.resource(ref)
        query: dict[str, list[str]] = {}
        if field_manager:
            query["fieldManager"] = [field_manager]
        if force:
            query["force"] = ["true"]
        ctype = PATCH_TYPES.get(patch_type, patch_type)
        resp = await self._call("PATCH", self.path(rt, namespace, name, subresource), query=query,
                                obj=patch, content_type=ctype)
        return resp.obj  # type: ignore[no-any-return]

    async def delete(
        self,
        ref: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        """DELETE; returns the object (now marked for deletion) or a Success Status."""
        rt = self.resource(ref)
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = dict(preconditions)
        resp = await self._call("DELETE", self.path(rt, namespace, name), obj=opts)
        return resp.obj  # type: ignore[no-any-return]

    async def delete_collection(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
    ) -> Obj:
        rt = self.resource(ref)
        query = _selectors(label_selector, field_selector)
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        resp = await self._call("DELETE", self.path(rt, namespace), query=query, obj=opts)
        return resp.obj  # type: ignore[no-any-return]

    # --------------------------------------------------------------- events

    async def create_event(
        self,
        involved: Obj,
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "kinns",
        host: str | None = None,
    ) -> Obj | None:
        """Record a core/v1 Event about `involved`, as `kubectl describe` shows it.

        Repeats of the same (object, type, reason, message, source) bump
        `count` and `lastTimestamp` on the existing Event instead of adding a
        new one, as upstream's recorder does.  Recording is best-effort: a
        failure is logged, never raised, because no controller should stop
        over an Event.
        """
        meta = involved.get("metadata") or {}
        rt_ns = meta.get("namespace") or "default"
        ref: Obj = {"kind": involved.get("kind", ""), "apiVersion": involved.get("apiVersion", ""),
                    "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", "")}
        if meta.get("namespace"):
            ref["namespace"] = meta["namespace"]
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        agg_key = (rt_ns, ref["kind"], ref["name"], ref["uid"], type, reason, message, component, host or "")
        now = _now()
        ev_rt = self.resource(("v1", "Event"))
        try:
            prev = self._events.get(agg_key)
            if prev is not None:
                ev_ns, ev_name, count, first = prev
                try:
                    out = await self.patch(ev_rt, ev_name, {"count": count + 1, "lastTimestamp": now}, ev_ns)
                    self._events[agg_key] = (ev_ns, ev_name, count + 1, first)
                    return out
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            name = f"{ref['name']}.{uuid.uuid4().hex[:16]}"
            event: Obj = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": rt_ns},
                "involvedObject": ref, "reason": reason, "message": message, "type": type,
                "source": source, "count": 1, "firstTimestamp": now, "lastTimestamp": now,
                "reportingComponent": component, "reportingInstance": host or "",
            }
            out = await self.create(event, rt_ns)
            self._events[agg_key] = (rt_ns, name, 1, now)
            if len(self._events) > 4096:  # bounded memory: forget the oldest
                self._events.pop(next(iter(self._events)))
            return out
        except Exception as exc:  # noqa: BLE001 - events are best effort
            log.warning("could not record event %s on %s/%s: %s", reason, rt_ns, ref["name"], exc)
            return None

    def emit_event(self, involved: Obj, reason: str, message: str, *, type: str = "Normal",
                   component: str = "kinns", host: str | None = None) -> None:
        """Record an Event without waiting for it: controllers should not pay a
        durable write per Event on their hot path (upstream's recorder is
        asynchronous too)."""
        task = asyncio.get_running_loop().create_task(
            self.create_event(involved, reason, message, type=type, component=component, host=host))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            await close()


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, list[str]]:
    q: dict[str, list[str]] = {}
    if label_selector:
        q["labelSelector"] = [label_selector]
    if field_selector:
        q["fieldSelector"] = [field_selector]
    return q
