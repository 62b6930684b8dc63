"""Kinds served in more versions than the one they are stored in.

kube-apiserver stores each resource in one version and converts on the
way in and out, so `autoscaling/v1` and `autoscaling/v2` are two views of
the same HorizontalPodAutoscalers.  Here a request for a converted version
is re-issued for the storage version (the same REST machinery validates
and stores it) and what comes back is converted for the caller: objects,
lists, watch events and Table rows.  A PATCH is applied to the caller's
version of the object, as upstream applies patches in the request's
version, and written back with the object's resourceVersion, so a
concurrent write is a 409 as usual.

`CONVERSIONS` says which versions are served this way and with which pure
functions (`hpaconversion.py` for HPAs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from . import codec, hpaconversion
from .errors import bad_request
from .patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from .request import Request, Response
from .resources import ResourceType

Obj = dict[str, Any]
Route = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Conversion:
    storage_version: str
    to_storage: Callable[[Obj], Obj]
    from_storage: Callable[[Obj], Obj]


CONVERSIONS: dict[tuple[str, str, str], Conversion] = {
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): Conversion("v2", hpaconversion.to_v2, hpaconversion.to_v1),
}


def conversion_for(rt: ResourceType) -> Conversion | None:
    return CONVERSIONS.get((rt.group, rt.version, rt.kind))


class _View:
    """One served version's view of the stored kind."""

    def __init__(self, rt: ResourceType, conv: Conversion) -> None:
        self.rt = rt
        self.conv = conv
        self.storage_api_version = f"{rt.group}/{conv.storage_version}" if rt.group else conv.storage_version

    def storage_path(self, path: str) -> str:
        prefix = self.rt.path_prefix()
        storage_prefix = prefix[: -len(self.rt.version)] + self.conv.storage_version
        return storage_prefix + path[len(prefix):]

    def incoming(self, body: Any) -> Any:
        """A body in the caller's version, checked as rest.py checks it, in the stored version."""
        if not isinstance(body, dict):
            return body
        av, kind = body.get("apiVersion"), body.get("kind") or self.rt.kind
        if av and av != self.rt.api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the expected API version "
                              f"({self.rt.api_version})")
        if kind != self.rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({self.rt.kind})")
        return self.conv.to_storage(body)

    def outgoing(self, obj: Any) -> Any:
        """What the storage version answered, in the caller's version."""
        if not isinstance(obj, dict):
            return obj
        kind = obj.get("kind")
        if kind == self.rt.kind and obj.get("apiVersion") == self.storage_api_version:
            return self.conv.from_storage(obj)
        if kind == self.rt.list_kind:
            items = [self._item(i) for i in obj.get("items") or []]
            return {**obj, "apiVersion": self.rt.api_version, "items": items}
        if kind == "Table":
            rows = [{**r, "object": self._item(r["object"])} if isinstance(r.get("object"), dict) else r
                    for r in obj.get("rows") or []]
            return {**obj, "rows": rows}
        return obj

    def _item(self, item: Obj) -> Obj:
        """A list item or Table row object (items come without apiVersion/kind on the wire)."""
        if "spec" not in item:              # partial metadata (meta.k8s.io): nothing to convert
            return item
        full = {**item, "apiVersion": self.storage_api_version, "kind": self.rt.kind}
        out = self.conv.from_storage(full)
        if "apiVersion" not in item:
            out.pop("apiVersion", None)
            out.pop("kind", None)
        return out

    def event(self, ev: dict[str, Any]) -> dict[str, Any]:
        obj = ev.get("object")
        if ev.get("type") in ("BOOKMARK", "ERROR") or not isinstance(obj, dict):
            if isinstance(obj, dict) and obj.get("apiVersion") == self.storage_api_version:
                return {**ev, "object": {**obj, "apiVersion": self.rt.api_version}}
            return ev
        return {**ev, "object": self.outgoing(obj)}

    def response(self, resp: Response) -> Response:
        if resp.stream is not None:
            resp.stream = self._events(resp.stream)
        elif resp.obj is not None:
            resp.obj = self.outgoing(resp.obj)
        return resp

    async def _events(self, events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        try:
            async for ev in events:
                yield self.event(ev)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


def _patched(base: Obj, req: Request, schema: str) -> Obj:
    mt = codec.media_type(req)
    body = codec.decode_body(req, codec.PATCH_TYPES)
    if mt == codec.JSON_PATCH:
        out = apply_json_patch(base, body)
    elif mt == codec.MERGE_PATCH:
        out = apply_merge_patch(base, body)
    else:
        out = apply_strategic_merge_patch(base, body, schema)
    if not isinstance(out, dict):
        raise bad_request("the patch produced something that is not an object")
    return out


async def serve(conv: Conversion, rt: ResourceType, req: Request, route: Route) -> Response:
    """Answer a request for a converted version through the storage version's handlers."""
    view = _View(rt, conv)
    path = view.storage_path(req.path)
    method = req.method.upper()
    headers = dict(req.headers)
    if method in ("POST", "PUT"):
        inner = Request(method, path, req.query, headers, obj=view.incoming(codec.decode_body(req)), user=req.user)
        return view.response(await route(inner))
    if method != "PATCH":
        return view.response(await route(Request(method, path, req.query, headers, req.body, req.obj, req.user)))
    current = await route(Request("GET", path, {}, {"accept": "application/json"}, user=req.user))
    if current.status == 404 and codec.media_type(req) == codec.APPLY_PATCH:
        body = codec.decode_body(req, codec.PATCH_TYPES)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if isinstance(body, dict):
            body.setdefault("metadata", {})["name"] = name
        create = Request("POST", path.rstrip("/").rsplit("/", 1)[0], req.query, {"content-type": codec.JSON},
                         obj=view.incoming(body), user=req.user)
        return view.response(await route(create))
    if current.status >= 400:
        return current
    patched = _patched(view.outgoing(current.obj), req, rt.schema)
    new = view.incoming(patched)
    meta = new.setdefault("metadata", {})
    meta.setdefault("resourceVersion", current.obj["metadata"].get("resourceVersion"))
    query = {k: v for k, v in req.query.items() if k != "force"}
    put = Request("PUT", path, query, {"content-type": codec.JSON}, obj=new, user=req.user)
    return view.response(await route(put))
