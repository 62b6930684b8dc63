"""An in-memory fake of the Kubernetes API, for unit tests of clients and controllers.

`FakeApi.handle` is a `MockTransport` handler: it serves the standard REST
paths for every kind in the registry with the semantics controllers depend
on, and nothing more: resourceVersions, optimistic concurrency, label and
simple field selectors, watch with a bounded history (a too-old
resourceVersion gets the ERROR/410 event a real server sends), delete with
preconditions, finalizers and propagation policies (Foreground → finalizer
`foregroundDeletion`, Orphan → `orphan`), namespaces with the `kubernetes`
finalizer and the `finalize` subresource.

It does no validation or defaulting: tests of those belong with the real
server.  Knobs for failure tests: `expire_history()` (next watches from old
versions get 410) and `break_watches()` (open watch streams fail).

Usage::

    fake = FakeApi()
    client = Client(MockTransport(fake.handle))
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

from ..api.request import Request, Response
from ..api.resources import REGISTRY, Registry, ResourceType

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (group_resource, namespace, name)


def _status(code: int, reason: str, message: str) -> Response:
    return Response(code, obj={"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": message, "reason": reason, "code": code})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels_match(selector: str, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


def _fields_match(selector: str, obj: Obj) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if _field(obj, k.strip()) == v.strip():
                return False
        else:
            k, v = term.replace("==", "=").split("=", 1)
            if _field(obj, k.strip()) != v.strip():
                return False
    return True


def _merge(base: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


@dataclass
class _Event:
    rv: int
    type: str
    resource: str
    obj: Obj
    prev: Obj | None


class FakeApi:
    def __init__(self, registry: Registry = REGISTRY, *, history: int = 1000,
                 namespaces: tuple[str, ...] = ("default", "kube-system")) -> None:
        self.registry = registry
        self.objects: dict[Key, Obj] = {}
        self.rv = 0
        self.history: list[_Event] = []
        self.history_limit = history
        self.oldest_rv = 0  # watches from below this get 410
        self._watchers: list[asyncio.Queue[_Event | Exception | None]] = []
        for ns in namespaces:
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # ----------------------------------------------------- direct access

    def put(self, obj: Obj) -> Obj:
        """Create an object directly (test set-up), filling system metadata."""
        rt = self._rt_of(obj)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        if rt.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        return self._store("ADDED", rt, obj, None)

    def lookup(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj | None:
        rt = self.registry.by_kind(api_version, kind)
        assert rt is not None
        return self.objects.get(self._key(rt, namespace, name))

    def all(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        rt = self.registry.by_kind(api_version, kind)
        assert rt is not None
        return [o for (r, ns, _), o in sorted(self.objects.items())
                if r == rt.group_resource and (namespace is None or ns == namespace)]

    def expire_history(self) -> None:
        """Forget all watch history: any watch from an older version gets 410."""
        self.history.clear()
        self.oldest_rv = self.rv + 1

    def break_watches(self) -> None:
        for q in self._watchers:
            q.put_nowait(ConnectionResetError("watch broken by test"))

    # --------------------------------------------------------- internals

    def _rt_of(self, obj: Obj) -> ResourceType:
        rt = self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise ValueError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        return rt

    @staticmethod
    def _key(rt: ResourceType, ns: str, name: str) -> Key:
        return (rt.group_resource, ns if rt.namespaced else "", name)

    def _store(self, typ: str, rt: ResourceType, obj: Obj, prev: Obj | None) -> Obj:
        self.rv += 1
        meta = obj["metadata"]
        key = self._key(rt, meta.get("namespace", ""), meta["name"])
        if typ == "DELETED":
            self.objects.pop(key, None)
        else:
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[key] = obj
        if typ == "DELETED":
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
        ev = _Event(self.rv, typ, rt.group_resource, obj, prev)
        self.history.append(ev)
        if len(self.history) > self.history_limit:
            dropped = self.history.pop(0)
            self.oldest_rv = dropped.rv + 1
        for q in self._watchers:
            q.put_nowait(ev)
        return obj

    def _parse(self, path: str) -> tuple[ResourceType, str, str, str] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            cand = self.registry.by_path(group, version, rest[2])
            if cand is not None and cand.namespaced:
                ns, rest = rest[1], rest[2:]
        rt = self.registry.by_path(group, version, rest[0])
        if rt is None or len(rest) > 3:
            return None
        return rt, ns, rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""

    # ----------------------------------------------------------- serving

    async def handle(self, req: Request) -> Response:
        parsed = self._parse(req.path)
        if parsed is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        rt, ns, name, sub = parsed
        m = req.method.upper()
        if m == "GET" and req.param("watch") in ("true", "1"):
            return self._watch(rt, ns, name, req)
        if m == "GET" and name:
            o = self.objects.get(self._key(rt, ns, name))
            return Response(obj=copy.deepcopy(o)) if o else self._not_found(rt, name)
        if m == "GET":
            return self._list(rt, ns, req)
        if m == "POST" and not name:
            return self._create(rt, ns, req.obj)
        if m == "PUT" and name:
            return self._update(rt, ns, name, sub, req.obj)
        if m == "PATCH" and name:
            return self._patch(rt, ns, name, sub, req.obj)
        if m == "DELETE" and name:
            return self._delete(rt, ns, name, req.obj or {})
        if m == "DELETE":
            out = []
            for o in self._select(rt, ns, req):
                resp = self._delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"], req.obj or {})
                out.append(resp.obj)
            return Response(obj={"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {}, "items": out})
        return _status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _not_found(self, rt: ResourceType, name: str) -> Response:
        return _status(404, "NotFound", f'{rt.group_resource} "{name}" not found')

    def _matches(self, rt: ResourceType, ns: str, req: Request, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if rt.namespaced and ns and meta.get("namespace") != ns:
            return False
        ls, fs = req.param("labelSelector"), req.param("fieldSelector")
        return (not ls or _labels_match(ls, meta.get("labels"))) and (not fs or _fields_match(fs, obj))

    def _select(self, rt: ResourceType, ns: str, req: Request) -> list[Obj]:
        return [o for (r, _, _), o in sorted(self.objects.items())
                if r == rt.group_resource and self._matches(rt, ns, req, o)]

    def _list(self, rt: ResourceType, ns: str, req: Request) -> Response:
        items = [copy.deepcopy(o) for o in self._select(rt, ns, req)]
        return Response(obj={"kind": rt.list_kind, "apiVersion": rt.api_version,
                             "metadata": {"resourceVersion": str(self.rv)}, "items": items})

    def _watch(self, rt: ResourceType, ns: str, name: str, req: Request) -> Response:
        rv_text = req.param("resourceVersion")
        since = int(rv_text) if rv_text not in ("", "0") else None
        bookmarks = req.param("allowWatchBookmarks") == "true"
        q: asyncio.Queue[_Event | Exception | None] = asyncio.Queue()
        if since is not None and since + 1 < self.oldest_rv:
            async def expired() -> AsyncIterator[Obj]:
                yield {"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f"too old resource version: {since} ({self.rv})", "reason": "Expired", "code": 410}}
            return Response(stream=expired())
        replay = [e for e in self.history if since is not None and e.rv > since]
        initial = [copy.deepcopy(o) for o in self._select(rt, ns, req)] if since is None else []
        self._watchers.append(q)

        def visible(o: Obj | None) -> bool:
            return o is not None and (not name or o["metadata"].get("name") == name) and self._matches(rt, ns, req, o)

        def translate(ev: _Event) -> Obj | None:
            if ev.resource != rt.group_resource:
                return None
            now, before = visible(ev.obj), visible(ev.prev)
            typ = ev.type
            if typ == "DELETED":
                typ = "DELETED" if (now or before) else ""
            elif typ == "MODIFIED":
                typ = "MODIFIED" if now and before else "ADDED" if now else "DELETED" if before else ""
            elif not now:
                typ = ""
            return {"type": typ, "object": copy.deepcopy(ev.obj)} if typ else None

        async def events() -> AsyncIterator[Obj]:
            try:
                for o in initial:
                    yield {"type": "ADDED", "object": o}
                for e in replay:
                    out = translate(e)
                    if out:
                        yield out
                while True:
                    try:
                        item = await asyncio.wait_for(q.get(), 0.5)
                    except asyncio.TimeoutError:
                        if bookmarks:
                            yield {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                                  "metadata": {"resourceVersion": str(self.rv)}}}
                        continue
                    if isinstance(item, Exception):
                        raise item
                    if item is None:
                        return
                    if replay and item.rv <= replay[-1].rv:
                        continue
                    out = translate(item)
                    if out:
                        yield out
            finally:
                if q in self._watchers:
                    self._watchers.remove(q)

        return Response(stream=events())

    def _create(self, rt: ResourceType, ns: str, body: Obj) -> Response:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if rt.namespaced:
            meta["namespace"] = ns
            nso = self.objects.get(("namespaces", "", ns))
            if nso is None:
                return _status(404, "NotFound", f'namespaces "{ns}" not found')
            if nso["metadata"].get("deletionTimestamp"):
                return _status(403, "Forbidden", f"unable to create new content in namespace {ns} "
                                                 "because it is being terminated")
        if self._key(rt, ns, meta.get("name", "")) in self.objects:
            return _status(409, "AlreadyExists", f'{rt.group_resource} "{meta.get("name")}" already exists')
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for f in ("resourceVersion", "deletionTimestamp", "uid"):
            meta.pop(f, None)
        return Response(201, obj=copy.deepcopy(self.put(obj)))

    def _write(self, rt: ResourceType, old: Obj, new: Obj) -> Response:
        meta = new["metadata"]
        done = meta.get("deletionTimestamp") and not meta.get("finalizers") and not (
            rt.kind == "Namespace" and (new.get("spec") or {}).get("finalizers"))
        if done:
            return Response(obj=copy.deepcopy(self._store("DELETED", rt, new, old)))
        if new == old:
            return Response(obj=copy.deepcopy(old))
        return Response(obj=copy.deepcopy(self._store("MODIFIED", rt, new, old)))

    def _update(self, rt: ResourceType, ns: str, name: str, sub: str, body: Obj) -> Response:
        old = self.objects.get(self._key(rt, ns, name))
        if old is None:
            return self._not_found(rt, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": '
                                            "the object has been modified; please apply your changes "
                                            "to the latest version and try again")
        new = copy.deepcopy(old)
        if sub == "status":
            new["status"] = copy.deepcopy(body.get("status"))
        elif sub == "finalize":
            new.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
        else:
            new = copy.deepcopy(body)
            for f in ("uid", "creationTimestamp", "deletionTimestamp", "namespace"):
                if f in old["metadata"]:
                    new["metadata"][f] = old["metadata"][f]
            if "status" in rt.subresources:
                new["status"] = copy.deepcopy(old.get("status"))
                if new["status"] is None:
                    new.pop("status")
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._write(rt, old, new)

    def _patch(self, rt: ResourceType, ns: str, name: str, sub: str, body: Any) -> Response:
        old = self.objects.get(self._key(rt, ns, name))
        if old is None:
            return self._not_found(rt, name)
        rv = ((body or {}).get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        if rv and rv != old["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": '
                                            "the object has been modified")
        new = _merge(old, body)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        for f in ("uid", "creationTimestamp", "namespace", "name"):
            if f in old["metadata"]:
                new["metadata"][f] = old["metadata"][f]
        return self._write(rt, old, new)

    def _delete(self, rt: ResourceType, ns: str, name: str, opts: Obj) -> Response:
        old = self.objects.get(self._key(rt, ns, name))
        if old is None:
            return self._not_found(rt, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            return _status(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": '
                                            f"Precondition failed: UID in precondition: {pre['uid']}, "
                                            f"UID in object meta: {old['metadata'].get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
            return _status(409, "Conflict", "Precondition failed: resourceVersion")
        fin = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(opts.get("propagationPolicy") or "")
        new = copy.deepcopy(old)
        meta = new["metadata"]
        if fin and fin not in meta.setdefault("finalizers", []):
            meta["finalizers"].append(fin)
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        meta.setdefault("deletionTimestamp", _now())
        meta.setdefault("deletionGracePeriodSeconds", 0)
        if rt.kind == "Namespace":
            new.setdefault("status", {})["phase"] = "Terminating"
        return self._write(rt, old, new)
