"""Namespace deletion, as upstream's namespace controller does it.

`kubectl delete namespace x` only marks the Namespace: the API server sets
its deletionTimestamp and phase Terminating, and keeps it because of the
`kubernetes` entry in `spec.finalizers`.  This controller then empties it:

1. make sure `status.phase` is Terminating (new content is refused from now on);
2. delete every namespaced object in it, of every kind, with Background
   propagation (so the garbage collector tidies dependents);
3. while objects remain (pods finishing their grace period, objects held by
   finalizers) record why in the namespace's status conditions, as
   upstream does (`NamespaceContentRemaining`,
   `NamespaceFinalizersRemaining`), and look again shortly;
4. when nothing is left, remove `kubernetes` from `spec.finalizers` through
   the `finalize` subresource; with no finalizer left the API server removes
   the Namespace itself.

Contents are listed live, not from a cache: the decision "this namespace is
empty" must not rest on a cache that may lag.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable

from ..api.errors import ApiError
from ..api.resources import REGISTRY, Registry, ResourceType
from ..client.client import Client, Obj
from ..client.informer import InformerFactory
from .base import Controller
from .customkinds import CustomKinds

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
RECHECK_SECONDS = 0.5


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NamespaceController(Controller):
    name = "namespace-controller"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *,
                 kinds: Iterable[ResourceType] | None = None, registry: Registry = REGISTRY,
                 workers: int | None = None, recheck: float = RECHECK_SECONDS) -> None:
        super().__init__(client, factory, workers=workers)
        self.kinds = list(kinds) if kinds is not None else [
            rt for rt in registry.types if rt.namespaced and "list" in rt.verbs and "delete" in rt.verbs]
        self.recheck = recheck
        self.custom: CustomKinds | None = None
        self._follow_crds = kinds is None  # a namespace's custom resources go with it too

    def setup(self) -> None:
        if self._follow_crds:
            self.custom = CustomKinds(self.factory, self.client)
        self.namespaces = self.factory.informer("v1", "Namespace")
        self.namespaces.add_handlers(
            on_add=self._maybe_enqueue,
            on_update=lambda old, new: self._maybe_enqueue(new),
            on_delete=self.enqueue_obj,
        )

    def _maybe_enqueue(self, ns: Obj) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue_obj(ns)

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.get(key)
        if ns is None:
            return None
        if not (ns.get("metadata") or {}).get("deletionTimestamp"):
            return None
        ns = await self._mark_terminating(ns)
        remaining, finalizers = await self._delete_contents(key)
        if remaining:
            await self._set_conditions(ns, remaining, finalizers)
            return self.recheck
        await self._finalize(ns)
        return None

    async def _mark_terminating(self, ns: Obj) -> Obj:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        new = dict(ns)
        new["status"] = dict(ns.get("status") or {}, phase="Terminating")
        try:
            return await self.client.update_status(new)
        except ApiError as exc:
            if exc.code == 404:
                return ns
            raise

    async def _delete_contents(self, namespace: str) -> tuple[dict[str, int], dict[str, int]]:
        """Delete what is left; returns counts of what still exists, by resource and by finalizer."""
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        custom = [rt for rt in self.custom.types if rt.namespaced] if self.custom is not None else []
        for rt in self.kinds + custom:
            try:
                items, _ = await self.client.list(rt, namespace)
            except ApiError as exc:
                if exc.code in (404, 405):
                    continue
                raise
            if not items:
                continue
            remaining[f"{rt.plural}.{rt.group}"] = len(items)
            for obj in items:
                meta = obj.get("metadata") or {}
                for f in meta.get("finalizers") or []:
                    finalizers[f] = finalizers.get(f, 0) + 1
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(rt, meta["name"], namespace, propagation_policy="Background",
                                             preconditions={"uid": meta.get("uid", "")})
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
            # Objects without finalizers or grace are gone at once: count again.
            left, _ = await self.client.list(rt, namespace)
            if left:
                remaining[f"{rt.plural}.{rt.group}"] = len(left)
            else:
                remaining.pop(f"{rt.plural}.{rt.group}", None)
        return remaining, finalizers

    async def _set_conditions(self, ns: Obj, remaining: dict[str, int], finalizers: dict[str, int]) -> None:
        now = _now()
        conds = {c.get("type"): c for c in (ns.get("status") or {}).get("conditions") or []}
        content = {"type": "NamespaceContentRemaining", "status": "True", "lastTransitionTime": now,
                   "reason": "SomeResourcesRemain",
                   "message": "Some resources are remaining: " + ", ".join(
                       f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))}
        fins = {"type": "NamespaceFinalizersRemaining", "status": "True" if finalizers else "False",
                "lastTransitionTime": now,
                "reason": "SomeFinalizersRemain" if finalizers else "ContentHasNoFinalizers",
                "message": ("Some content in the namespace has finalizers remaining: " + ", ".join(
                    f"{f} in {n} resource instances" for f, n in sorted(finalizers.items())))
                if finalizers else "All content-preserving finalizers finished"}
        changed = False
        for c in (content, fins):
            old = conds.get(c["type"])
            if old is None or any(old.get(k) != c[k] for k in ("status", "reason", "message")):
                if old is not None and old.get("status") == c["status"]:
                    c["lastTransitionTime"] = old.get("lastTransitionTime", now)
                conds[c["type"]] = c
                changed = True
        if not changed:
            return
        fresh = await self.client.get(("v1", "Namespace"), ns["metadata"]["name"])
        fresh["status"] = dict(fresh.get("status") or {}, conditions=list(conds.values()))
        try:
            await self.client.update_status(fresh)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _finalize(self, ns: Obj) -> None:
        try:
            fresh = await self.client.get(("v1", "Namespace"), ns["metadata"]["name"])
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        fins = (fresh.get("spec") or {}).get("finalizers") or []
        if FINALIZER not in fins:
            return
        fresh["spec"] = dict(fresh.get("spec") or {}, finalizers=[f for f in fins if f != FINALIZER])
        log.info("namespace %s is empty; finalizing", ns["metadata"]["name"])
        try:
            await self.client.finalize_namespace(fresh)
        except ApiError as exc:
            if exc.code != 404:
                raise
