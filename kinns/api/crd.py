"""CustomResourceDefinitions served for real: the API server's side of apiextensions.

kube-apiserver embeds the apiextensions-apiserver, which watches CRDs and
serves their resources.  kinns does the same in-process, driven by the
writes themselves instead of an informer: after every CRD write the
server calls `CustomResources.changed()`, which runs, in one pass over all
CRDs (oldest first, so older CRDs keep their names),

* the naming controller: `status.acceptedNames` and the `NamesAccepted`
  condition, refusing a plural, singular, short name, kind or list kind
  another CRD of the group already holds ("\\"x\\" is already in use");
* the establishing controller: `Established` once the names are accepted;
* the finalizer controller, for a CRD being deleted: `Terminating`, every
  custom resource deleted (those with finalizers wait for their
  controllers), then the `customresourcecleanup.apiextensions.k8s.io`
  finalizer removed so the CRD goes.

The write that changed a CRD returns only after the pass, so a CRD is
served the moment `kubectl apply` comes back: `registry()` is the built-in
kinds plus every served CRD's (crdkind.py), rebuilt after each change, and
discovery, routing and OpenAPI all read it.  `admit` is the CRD's own
create/update strategy (defaults, cleared status, storedVersions,
generation).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
from typing import Any, Awaitable, Callable

from . import objects
from .crdkind import CRD_KIND, CRD_RESOURCE, GROUP, extended_registry, resource_types, terminating
from .crdvalidation import FINALIZER, default_crd, storage_version
from .errors import ApiError
from .request import Request, Response
from .resources import RESOURCES, Registry, ResourceType
from .rest import ResourceHandlers, Target
from .selectors import FieldSelector, LabelSelector
from .store.base import Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Dispatch = Callable[[Request], Awaitable[Response]]

CRD_PATH = f"/apis/{GROUP}/v1/customresourcedefinitions"
# How long the finalizer controller waits for custom resources held by
# finalizers before saying so in the Terminating condition (upstream: 1 min).
DELETION_CHECK_SECONDS = 60.0
POLL_SECONDS = 0.2

# Set while a reconcile pass runs: its own status writes must not wait for
# (or start) another pass.
_IN_PASS: contextvars.ContextVar[bool] = contextvars.ContextVar("kinns_crd_pass", default=False)


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(status: Obj, cond: Obj) -> None:
    """Replace the condition of cond's type, keeping lastTransitionTime while
    its status stays the same (apihelpers.SetCRDCondition)."""
    conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for i, c in enumerate(conds):
        if c.get("type") == cond["type"]:
            if c.get("status") == cond["status"]:
                cond = {**cond, "lastTransitionTime": c.get("lastTransitionTime") or cond.get("lastTransitionTime")}
            conds[i] = cond
            break
    else:
        conds.append(cond)
    status["conditions"] = conds


def _condition(type_: str, status: str, reason: str, message: str) -> Obj:
    return {"type": type_, "status": status, "lastTransitionTime": _now(), "reason": reason, "message": message}


def _find_condition(crd: Obj, type_: str) -> Obj | None:
    for c in _d(crd.get("status")).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def _conflict(requested: Any, accepted: Any, used: set[str]) -> str | None:
    """equalToAcceptedOrFresh: a name is fine if already ours or unused."""
    if requested == accepted or requested not in used:
        return None
    return f'"{requested}" is already in use'


def names_status(crd: Obj, group_crds: list[Obj]) -> Obj:
    """The CRD's status after the naming and establishing controllers, given
    the CRDs of its group (itself included) as they stand."""
    status = objects.deep_copy(_d(crd.get("status")))
    requested = _d(_d(crd.get("spec")).get("names"))
    accepted = _d(status.get("acceptedNames"))
    resources: set[str] = set()
    kinds: set[str] = set()
    for other in group_crds:
        names = _d(_d(other.get("status")).get("acceptedNames"))
        resources |= {str(n) for n in [names.get("plural"), names.get("singular"), *(names.get("shortNames") or [])] if n}
        kinds |= {str(n) for n in (names.get("kind"), names.get("listKind")) if n}
    new = dict(accepted)
    problem: tuple[str, str] | None = None
    for key, pool, reason in (("plural", resources, "PluralConflict"), ("singular", resources, "SingularConflict")):
        err = _conflict(requested.get(key), accepted.get(key), pool)
        if err:
            problem = (reason, err)
        elif requested.get(key):
            new[key] = requested[key]
    short_req = [str(s) for s in requested.get("shortNames") or []]
    if short_req != list(accepted.get("shortNames") or []):
        mine = set(accepted.get("shortNames") or [])
        errs = [e for s in short_req if s not in mine for e in [_conflict(s, "", resources)] if e]
        if errs:
            problem = ("ShortNamesConflict", errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
        elif short_req:
            new["shortNames"] = short_req
        else:
            new.pop("shortNames", None)
    for key, reason in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        err = _conflict(requested.get(key), accepted.get(key), kinds)
        if err:
            problem = (reason, err)
        elif requested.get(key):
            new[key] = requested[key]
    if requested.get("categories"):
        new["categories"] = list(requested["categories"])
    else:
        new.pop("categories", None)
    new.setdefault("plural", "")
    new.setdefault("kind", "")
    status["acceptedNames"] = new
    if problem is None:
        set_condition(status, _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"))
    else:
        set_condition(status, _condition("NamesAccepted", "False", problem[0], problem[1]))
    established = _find_condition({"status": status}, "Established")
    if problem is None and (established is None or established.get("status") != "True"):
        set_condition(status, _condition("Established", "True", "InitialNamesAccepted",
                                         "the initial names have been accepted"))
    elif established is None:
        set_condition(status, _condition("Established", "False", "NotAccepted", "not all names are accepted"))
    return status


def _same_status(a: Obj, b: Obj) -> bool:
    """Equal apart from condition timestamps."""
    def strip(s: Obj) -> Obj:
        out = dict(s)
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                             for c in s.get("conditions") or [] if isinstance(c, dict)]
        return out
    return strip(a) == strip(b)


def _created(crd: Obj) -> tuple[str, str]:
    meta = _d(crd.get("metadata"))
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


class CustomResources:
    """The API server's CRD state: the served registry and the in-process controllers."""

    def __init__(self, store: Store, handlers: ResourceHandlers, dispatch: Dispatch,
                 base: tuple[ResourceType, ...] = RESOURCES) -> None:
        self.store = store
        self.handlers = handlers
        self.dispatch = dispatch
        self.base = base
        self._registry: Registry | None = None
        self._lock = asyncio.Lock()
        self._wanted = 0
        self._done = 0
        self._cleanups: dict[str, asyncio.Task[None]] = {}

    # ----------------------------------------------------------- serving

    def registry(self) -> Registry:
        """Built-in kinds plus those of every served CRD (cached until a CRD changes)."""
        if self._registry is None:
            self._registry = extended_registry(self.store.list(CRD_RESOURCE), self.base)
        return self._registry

    def invalidate(self) -> None:
        self._registry = None

    # -------------------------------------------------- the CRD strategy

    async def admit(self, t: Target, obj: Obj, old: Obj | None, req: Request) -> None:
        """Admission step for CRD writes: defaults, then PrepareForCreate/Update."""
        if t.rt.kind != CRD_KIND or t.rt.group != GROUP or t.subresource == "status":
            return
        default_crd(obj)
        storage = storage_version(obj)
        meta = obj.setdefault("metadata", {})
        if old is None:
            obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": [storage] if storage else []}
            meta["generation"] = 1
            return
        status = obj.setdefault("status", {})
        stored = list(status.get("storedVersions") or [])
        if storage and storage not in stored:
            status["storedVersions"] = stored + [storage]
        generation = int(_d(old.get("metadata")).get("generation") or 1)
        meta["generation"] = generation + 1 if obj.get("spec") != old.get("spec") else generation

    async def prepare_delete(self, name: str, req: Request) -> None:
        """Upon the first request to delete a CRD: our finalizer and the Terminating condition."""
        key = (CRD_RESOURCE, "", name)
        crd = self.store.get(key)
        if crd is None or req.param("dryRun") == "All" or terminating(crd):
            return
        new = objects.deep_copy(crd)
        finalizers = list(new["metadata"].get("finalizers") or [])
        if FINALIZER not in finalizers:
            new["metadata"]["finalizers"] = finalizers + [FINALIZER]
        status = new.setdefault("status", {})
        set_condition(status, _condition("Terminating", "True", "InstanceDeletionPending",
                                         "CustomResourceDefinition marked for deletion; CustomResource deletion "
                                         "will begin soon"))
        try:
            await self.store.update(key, new, crd["metadata"].get("resourceVersion"))
        except Exception as exc:  # noqa: BLE001 - a concurrent write: the delete below still marks it
            log.debug("crd %s: finalizer not added: %s", name, exc)

    async def prepare_delete_collection(self, req: Request) -> None:
        """`kubectl delete crd --all` (or -l): each CRD goes through its finalizer too."""
        labels = LabelSelector.parse(req.param("labelSelector"))
        fields = FieldSelector.parse(req.param("fieldSelector"))
        for crd in self.store.list(CRD_RESOURCE):
            if labels.matches(_d(crd.get("metadata")).get("labels")) and fields.matches(crd):
                await self.prepare_delete(str(crd["metadata"]["name"]), req)

    # ------------------------------------------------------ the controllers

    async def start(self) -> None:
        """At API server start: settle names and resume unfinished deletions."""
        await self.changed()

    async def changed(self) -> None:
        """After a CRD write: reconcile all CRDs before the write's answer goes out."""
        self._wanted += 1
        self.invalidate()
        if _IN_PASS.get():
            return  # our own status write: the running pass goes round again
        async with self._lock:
            while self._done < self._wanted:
                target = self._wanted
                token = _IN_PASS.set(True)
                try:
                    await self._pass()
                except Exception:  # noqa: BLE001 - never fail the user's write for it; the next write retries
                    log.exception("custom resource definitions: reconcile failed")
                finally:
                    _IN_PASS.reset(token)
                    self.invalidate()
                self._done = target

    async def _pass(self) -> None:
        working = {str(_d(c.get("metadata")).get("name")): c for c in self.store.list(CRD_RESOURCE)}
        for crd in sorted(working.values(), key=_created):
            name = str(crd["metadata"]["name"])
            group = _d(crd.get("spec")).get("group")
            peers = [c for c in working.values() if _d(c.get("spec")).get("group") == group]
            status = names_status(crd, peers)
            if not _same_status(status, _d(crd.get("status"))):
                updated = objects.deep_copy(crd)
                updated["status"] = status
                working[name] = updated
                await self._put(f"{CRD_PATH}/{name}/status", updated)
            if terminating(crd) and FINALIZER in (crd["metadata"].get("finalizers") or []):
                self._ensure_cleanup(name)

    async def _put(self, path: str, obj: Obj) -> bool:
        resp = await self.dispatch(Request("PUT", path, obj=obj, headers={"content-type": "application/json"}))
        if resp.status >= 400:
            log.debug("crd write %s: %s %s", path, resp.status, (resp.obj or {}).get("message"))
            self._wanted += 1  # look again
            return False
        return True

    def _ensure_cleanup(self, name: str) -> None:
        task = self._cleanups.get(name)
        if task is None or task.done():
            self._cleanups[name] = asyncio.create_task(self._cleanup(name), name=f"crd-cleanup-{name}")

    async def _set_terminating(self, name: str, cond: Obj) -> None:
        crd = self.store.get((CRD_RESOURCE, "", name))
        if crd is None:
            return
        status = objects.deep_copy(_d(crd.get("status")))
        set_condition(status, cond)
        if not _same_status(status, _d(crd.get("status"))):
            await self._put(f"{CRD_PATH}/{name}/status", {**crd, "status": status})

    async def _cleanup(self, name: str) -> None:
        """The finalizer controller for one CRD: delete every instance, then let the CRD go."""
        _IN_PASS.set(False)  # this task's writes are ordinary writes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELETION_CHECK_SECONDS
        while True:
            crd = self.store.get((CRD_RESOURCE, "", name))
            if crd is None or FINALIZER not in (crd["metadata"].get("finalizers") or []):
                return
            await self._set_terminating(name, _condition("Terminating", "True", "InstanceDeletionInProgress",
                                                         "CustomResource deletion is in progress"))
            types = resource_types(crd, all_versions=True)
            if types and not await self._delete_instances(crd, types):
                if loop.time() > deadline:
                    await self._set_terminating(name, _condition(
                        "Terminating", "True", "InstanceDeletionCheck",
                        "could not confirm zero CustomResources remaining: timed out waiting for the condition"))
                await asyncio.sleep(POLL_SECONDS)
                continue
            await self._set_terminating(name, _condition("Terminating", "False", "InstanceDeletionCompleted",
                                                         "removed all instances"))
            crd = self.store.get((CRD_RESOURCE, "", name))
            if crd is None:
                return
            new = objects.deep_copy(crd)
            new["metadata"]["finalizers"] = [f for f in crd["metadata"].get("finalizers") or [] if f != FINALIZER]
            if await self._put(f"{CRD_PATH}/{name}", new):
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _delete_instances(self, crd: Obj, types: list[ResourceType]) -> bool:
        """Delete what is left; True once nothing is."""
        storage = storage_version(crd)
        rt = next((t for t in types if t.version == storage), types[0])
        items = self.store.list(rt.group_resource)
        for obj in items:
            meta = obj["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            t = Target(rt, meta.get("namespace", ""), meta["name"])
            try:
                await self.handlers.delete(t, Request("DELETE", ""))
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
        return not self.store.list(rt.group_resource)
