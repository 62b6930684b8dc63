"""The garbage collector: deletes objects whose owners are gone, as upstream.

Every object may name owners in `metadata.ownerReferences` (by apiVersion,
kind, name and, decisively, UID).  This controller watches every kind and
keeps three promises:

- Background: an object all of whose owners are gone (absent, or present
  with another UID) is deleted.  If some owners remain, only the references
  to the gone ones are removed.
- Foreground: an owner being deleted with the `foregroundDeletion`
  finalizer waits for its dependents: the GC deletes them (in Foreground
  too when they have dependents of their own, so the wait cascades) and
  removes the finalizer once no dependent with `blockOwnerDeletion: true`
  exists any more; the API server then removes the owner.
- Orphan: an owner being deleted with the `orphan` finalizer gets its
  dependents' references to it removed, then the finalizer.

The informer caches lag the API, so "the owner is gone" is never decided
from a cache miss alone: it is confirmed with a live GET first.  Dependents
are found through a per-informer index by owner UID.

Queue keys are `apiVersion|kind|namespace/name`; reconcile reads the
current object under that name, whatever its UID, so it stays level-triggered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from ..api.errors import ApiError
from ..api.resources import REGISTRY, Registry, ResourceType
from ..client.client import Client, Obj, object_key, split_key
from ..client.informer import Informer, InformerFactory, index_by_owner_uid
from .base import Controller
from .customkinds import CustomKinds

log = logging.getLogger(__name__)

OWNER_INDEX = "ownerUID"
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _has_finalizer(obj: Obj, name: str) -> bool:
    return name in (_meta(obj).get("finalizers") or [])


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 4

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 kinds: Iterable[ResourceType] | None = None, registry: Registry = REGISTRY,
                 workers: int | None = None) -> None:
        super().__init__(client, factory, workers=workers)
        self.registry = registry
        # Custom resources too, unless told which kinds to watch (upstream follows discovery).
        self._follow_crds = kinds is None
        self.kinds = list(kinds) if kinds is not None else [
            rt for rt in registry.types if "delete" in rt.verbs and "watch" in rt.verbs]
        self.informers: dict[tuple[str, str], Informer] = {}
        self._wired: set[tuple[str, str]] = set()
        self._background: set[asyncio.Future[Any]] = set()

    # -------------------------------------------------------------- wiring

    def setup(self) -> None:
        for rt in self.kinds:
            self._watch(rt)
        if self._follow_crds:
            self.custom = CustomKinds(self.factory, self.client)
            self.custom.on_change(self._follow_custom_kinds)

    def _watch(self, rt: ResourceType) -> None:
        inf = self.factory.informer(rt.api_version, rt.kind)
        if (rt.api_version, rt.kind) not in self._wired:
            inf.add_indexer(OWNER_INDEX, index_by_owner_uid)
            inf.add_handlers(on_add=self._on_add, on_update=self._on_update, on_delete=self._on_delete)
            self._wired.add((rt.api_version, rt.kind))
        self.informers[(rt.api_version, rt.kind)] = inf

    def _follow_custom_kinds(self) -> None:
        """Watch the kinds of new CRDs, forget those of deleted ones."""
        self.registry = self.client.registry
        wanted = {(rt.api_version, rt.kind): rt for rt in self.custom.types}
        builtin = {(rt.api_version, rt.kind) for rt in self.kinds}
        for key, rt in wanted.items():
            if key not in self.informers:
                self._watch(rt)
                self.informers[key].start()
        for key in [k for k in self.informers if k not in wanted and k not in builtin]:
            stopping = asyncio.ensure_future(self.informers.pop(key).stop())
            self._background.add(stopping)
            stopping.add_done_callback(self._background.discard)

    @staticmethod
    def key_of(obj: Obj) -> str:
        return f"{obj.get('apiVersion', '')}|{obj.get('kind', '')}|{object_key(obj)}"

    def _interesting(self, obj: Obj) -> bool:
        m = _meta(obj)
        return bool(m.get("ownerReferences")) or (
            _deleting(obj) and (_has_finalizer(obj, FOREGROUND) or _has_finalizer(obj, ORPHAN)))

    def _on_add(self, obj: Obj) -> None:
        if self._interesting(obj):
            self.enqueue(self.key_of(obj))

    def _on_update(self, old: Obj, new: Obj) -> None:
        if self._interesting(new):
            self.enqueue(self.key_of(new))
        # Owners dropped from the references may be waiting for us.
        for ref in _meta(old).get("ownerReferences") or []:
            self._enqueue_ref(new, ref)

    def _on_delete(self, obj: Obj) -> None:
        uid = _meta(obj).get("uid")
        if uid:
            for dep in self.dependents(uid):
                self.enqueue(self.key_of(dep))
        for ref in _meta(obj).get("ownerReferences") or []:
            self._enqueue_ref(obj, ref)  # a foreground owner may be waiting on us

    def _enqueue_ref(self, dependent: Obj, ref: Obj) -> None:
        rt = self.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return
        ns = _meta(dependent).get("namespace", "") if rt.namespaced else ""
        self.enqueue(f"{rt.api_version}|{rt.kind}|{ns}/{ref['name']}" if ns else
                     f"{rt.api_version}|{rt.kind}|{ref['name']}")

    # -------------------------------------------------------------- lookups

    def dependents(self, uid: str) -> list[Obj]:
        out: list[Obj] = []
        for inf in self.informers.values():
            out.extend(inf.by_index(OWNER_INDEX, uid))
        return out

    def _cached_owner(self, rt: ResourceType, ns: str, ref: Obj) -> Obj | None:
        inf = self.informers.get((rt.api_version, rt.kind))
        if inf is None:
            return None
        obj = inf.get_by_name(ref.get("name", ""), ns or None)
        if obj is not None and _meta(obj).get("uid") == ref.get("uid"):
            return obj
        return None

    async def _owner_state(self, dependent: Obj, ref: Obj) -> str:
        """'solid', 'waiting' (foreground-deleting) or 'dangling' for one owner reference."""
        rt = self.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return "solid"  # a kind we cannot check: never delete on a guess
        dep_ns = _meta(dependent).get("namespace", "")
        if rt.namespaced and not dep_ns:
            # A cluster-scoped object cannot have a namespaced owner: upstream
            # treats the reference as unresolvable (never collected) and warns.
            await self.client.create_event(
                dependent, "OwnerRefInvalidNamespace",
                f"ownerRef {_ref_text(ref)} does not exist in namespace \"\"",
                type="Warning", component="garbage-collector-controller")
            return "solid"
        ns = dep_ns if rt.namespaced else ""
        owner = self._cached_owner(rt, ns, ref)
        if owner is None:
            # The cache may simply lag: ask the API before deciding.
            try:
                owner = await self.client.get(rt, ref.get("name", ""), ns or None)
            except ApiError as exc:
                if exc.code == 404:
                    return "dangling"
                raise
            if _meta(owner).get("uid") != ref.get("uid"):
                return "dangling"
        if _deleting(owner) and _has_finalizer(owner, FOREGROUND):
            return "waiting"
        return "solid"

    # ------------------------------------------------------------ reconcile

    def _lookup(self, key: str) -> tuple[ResourceType | None, Obj | None]:
        api_version, kind, okey = key.split("|", 2)
        inf = self.informers.get((api_version, kind))
        if inf is None:
            return None, None  # a custom kind whose CRD is gone
        return self.client.resource((api_version, kind)), inf.get(okey)

    async def reconcile(self, key: str) -> float | None:
        rt, obj = self._lookup(key)
        if rt is None or obj is None:
            return None
        if _deleting(obj) and _has_finalizer(obj, ORPHAN):
            await self._orphan_dependents(rt, obj)
        if _deleting(obj) and _has_finalizer(obj, FOREGROUND):
            await self._process_foreground(rt, obj)
        if _meta(obj).get("ownerReferences"):
            await self._attempt_to_delete(rt, obj)
        return None

    async def _attempt_to_delete(self, rt: ResourceType, obj: Obj) -> None:
        meta = _meta(obj)
        refs: list[Obj] = meta.get("ownerReferences") or []
        states = {r.get("uid", ""): await self._owner_state(obj, r) for r in refs}
        gone = [uid for uid, s in states.items() if s in ("dangling", "waiting")]
        if not gone:
            return
        if len(gone) < len(states):
            # Some owner is still there: just drop the references to the others.
            keep = [r for r in refs if r.get("uid") not in gone]
            await self._patch_refs(rt, obj, keep)
            return
        if _deleting(obj):
            return  # already on its way out
        waiting = any(s == "waiting" for s in states.values())
        has_deps = bool(self.dependents(meta.get("uid", "")))
        policy = "Foreground" if waiting and has_deps else "Background"
        log.info("gc: deleting %s %s (owners gone, %s)", rt.kind, object_key(obj), policy)
        try:
            await self.client.delete(rt, meta["name"], meta.get("namespace"),
                                     propagation_policy=policy, preconditions={"uid": meta.get("uid", "")})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _process_foreground(self, rt: ResourceType, owner: Obj) -> None:
        uid = _meta(owner).get("uid", "")
        blocking = 0
        for dep in self.dependents(uid):
            ref: Obj = next((r for r in _meta(dep).get("ownerReferences") or [] if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if not _deleting(dep):
                self.enqueue(self.key_of(dep))
        if blocking == 0:
            await self._remove_finalizer(rt, owner, FOREGROUND)

    async def _orphan_dependents(self, rt: ResourceType, owner: Obj) -> None:
        uid = _meta(owner).get("uid", "")
        for dep in self.dependents(uid):
            keep = [r for r in _meta(dep).get("ownerReferences") or [] if r.get("uid") != uid]
            await self._patch_refs(self.client.resource_of(dep), dep, keep)
        await self._remove_finalizer(rt, owner, ORPHAN)

    async def _patch_refs(self, rt: ResourceType, obj: Obj, refs: list[Obj]) -> None:
        meta = _meta(obj)
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(rt, meta["name"], patch, meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise  # 409: our view was stale; retried with back-off

    async def _remove_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        meta = _meta(obj)
        fins = [f for f in meta.get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"finalizers": fins or None, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(rt, meta["name"], patch, meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise


def _ref_text(ref: Obj) -> str:
    return (f'[{ref.get("apiVersion", "")}/{ref.get("kind", "")}, namespace: , '
            f'name: {ref.get("name", "")}, uid: {ref.get("uid", "")}]')


def split_gc_key(key: str) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name) of a GC queue key."""
    api_version, kind, okey = key.split("|", 2)
    ns, name = split_key(okey)
    return api_version, kind, ns, name
