"""The Job controller: runs a Job's pods to completion, as kube-controller-manager's.

The decisions are job_plan.JobSync's; this module does the I/O between its
steps and keeps what upstream keeps in memory:

- expectations: pods it created or deleted that the informer has not shown
  yet (a sync before they show would create or delete twice), and pods whose
  `batch.kubernetes.io/job-tracking` finalizer it removed (so a stale cache
  does not count them twice);
- the failure back-off record of each Job (failures since the last success
  and when the last one happened), from which the delay of a replacement
  pod is computed: 10 s, 20 s, 40 s, ... up to 10 minutes;
- a second queue of orphan pods (their Job gone, or finished) whose
  tracking finalizer must still be removed so they can be deleted.

Pod events wake the Job after upstream's one-second batching period; Job
events wake it at once.  Writes go out as the `job-controller` account.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from ..api.errors import ApiError
from ..api.selectors import LabelSelector
from ..client.client import Obj, object_key
from ..client.informer import index_by_owner_uid
from ..client.workqueue import ShutDown, WorkQueue
from . import job_plan as plan
from . import podutil
from .base import Controller

log = logging.getLogger(__name__)

COMPONENT = "job-controller"
MANAGED_BY_DEFAULT = "kubernetes.io/job-controller"
REMOVE_FINALIZER = {"metadata": {"$deleteFromPrimitiveList/finalizers": [plan.TRACKING_FINALIZER]}}


def job_ref(pod: Obj) -> dict[str, Any] | None:
    """The pod's controller reference when it names a batch/v1 Job."""
    ref = podutil.controller_ref(pod)
    return ref if ref and ref.get("kind") == "Job" and ref.get("apiVersion", "batch/v1") == "batch/v1" else None


class JobController(Controller):
    name = "job-controller"
    workers = 5   # upstream's --concurrent-job-syncs default

    def setup(self) -> None:
        self.jobs = self.factory.informer("batch/v1", "Job")
        self.pods = self.factory.informer("v1", "Pod")
        self.pods.add_indexer("owner", index_by_owner_uid)
        # Pods with no controller, by namespace: the only ones a Job may adopt.
        self.pods.add_indexer("orphans", lambda p: [] if podutil.controller_ref(p) else
                              [plan.meta(p).get("namespace", "")])
        self.jobs.add_handlers(on_add=self.enqueue_obj, on_update=self._job_updated, on_delete=self._job_deleted)
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated,
                               on_delete=lambda p: self._pod_deleted(p, final=True))
        self.orphans = WorkQueue("job_orphan_pod")
        self._expect_created: dict[str, set[str]] = {}
        self._expect_deleted: dict[str, set[str]] = {}
        self._expect_unfinalized: dict[str, set[str]] = {}
        self._backoff: dict[str, plan.BackoffRecord] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self, sync_timeout: float | None = 30.0) -> None:
        await super().start(sync_timeout)
        self._tasks.append(asyncio.create_task(self._orphan_worker(), name=f"{self.name}-orphans"))

    async def stop(self, grace: float = 5.0) -> None:
        self.orphans.shutdown()
        await super().stop(grace)

    # -------------------------------------------------------------- events

    def _resolve(self, namespace: str, ref: dict[str, Any]) -> Obj | None:
        job = self.jobs.get(f"{namespace}/{ref.get('name')}")
        return job if job is not None and plan.meta(job).get("uid") == ref.get("uid") else None

    def _batched(self, job: Obj) -> None:
        self.queue.add_after(object_key(job), plan.SYNC_BATCH_PERIOD)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        if plan.meta(old).get("generation") != plan.meta(new).get("generation"):
            self.enqueue_obj(new)
        else:
            self._batched(new)
        if plan.is_finished(new):
            self._cleanup_finalizers(new)

    def _job_deleted(self, job: Obj) -> None:
        self.enqueue_obj(job)
        self._cleanup_finalizers(job)

    def _cleanup_finalizers(self, job: Obj) -> None:
        for pod in self.pods.by_index("owner", plan.meta(job).get("uid", "")):
            ref = job_ref(pod)
            if ref and ref.get("uid") == plan.meta(job).get("uid") and plan.has_tracking_finalizer(pod):
                self.orphans.add(object_key(pod))

    def _matching_jobs(self, pod: Obj) -> list[Obj]:
        labels = plan.meta(pod).get("labels") or {}
        return [j for j in self.jobs.list(plan.meta(pod).get("namespace"))
                if (sel := plan.spec(j).get("selector")) and LabelSelector.from_spec(sel).matches(labels)]

    def _pod_added(self, pod: Obj) -> None:
        if plan.meta(pod).get("deletionTimestamp"):
            self._pod_deleted(pod, final=False)
            return
        ref = job_ref(pod)
        if ref is not None:
            job = self._resolve(plan.meta(pod).get("namespace", ""), ref)
            if job is not None:
                self._expect_created.get(object_key(job), set()).discard(plan.meta(pod).get("name", ""))
                self._batched(job)
            return
        if podutil.controller_ref(pod) is None:
            if plan.has_tracking_finalizer(pod):
                self.orphans.add(object_key(pod))
            for job in self._matching_jobs(pod):
                self._batched(job)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if plan.meta(old).get("resourceVersion") == plan.meta(new).get("resourceVersion"):
            return
        if plan.meta(new).get("deletionTimestamp"):
            self._pod_deleted(new, final=False)
            return
        ns = plan.meta(new).get("namespace", "")
        old_ref, ref = job_ref(old), job_ref(new)
        if old_ref is not None and old_ref != ref and (job := self._resolve(ns, old_ref)) is not None:
            self._batched(job)
        if ref is not None:
            job = self._resolve(ns, ref)
            if job is not None:
                if not plan.has_tracking_finalizer(new):
                    self._expect_unfinalized.get(object_key(job), set()).discard(plan.uid(new))
                self._batched(job)
            return
        if podutil.controller_ref(new) is None:
            if plan.has_tracking_finalizer(new):
                self.orphans.add(object_key(new))
            if (plan.meta(old).get("labels") != plan.meta(new).get("labels")
                    or podutil.controller_ref(old) is not None):
                for job in self._matching_jobs(new):
                    self._batched(job)

    def _pod_deleted(self, pod: Obj, *, final: bool) -> None:
        ref = job_ref(pod)
        has_finalizer = plan.has_tracking_finalizer(pod)
        job = self._resolve(plan.meta(pod).get("namespace", ""), ref) if ref is not None else None
        if job is None or plan.is_finished(job):
            if has_finalizer:
                self.orphans.add(object_key(pod))
            return
        key = object_key(job)
        if final or not has_finalizer:
            self._expect_unfinalized.get(key, set()).discard(plan.uid(pod))
        self._batched(job)

    # --------------------------------------------------------- expectations

    def _satisfied(self, key: str, ns: str) -> bool:
        """Every pod we created is in the cache, every pod we deleted is gone or going."""
        created = {n for n in self._expect_created.get(key, set()) if self.pods.get(f"{ns}/{n}") is None}
        deleted = {n for n in self._expect_deleted.get(key, set())
                   if (p := self.pods.get(f"{ns}/{n}")) is not None and not plan.meta(p).get("deletionTimestamp")}
        self._expect_created[key], self._expect_deleted[key] = created, deleted
        return not created and not deleted

    def _unfinalized(self, key: str, pods: list[Obj]) -> set[str]:
        """Pods whose finalizer we removed but the cache still shows it on."""
        still = {plan.uid(p) for p in pods if plan.has_tracking_finalizer(p)}
        out = self._expect_unfinalized.get(key, set()) & still
        self._expect_unfinalized[key] = out
        return set(out)

    def _forget(self, key: str) -> None:
        for table in (self._expect_created, self._expect_deleted, self._expect_unfinalized):
            table.pop(key, None)
        self._backoff.pop(key, None)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            self._forget(key)
            return None
        if plan.spec(job).get("managedBy", MANAGED_BY_DEFAULT) != MANAGED_BY_DEFAULT:
            return None
        if plan.is_finished(job):
            self._backoff.pop(key, None)
            return None
        if plan.spec(job).get("completionMode", "NonIndexed") not in ("NonIndexed", "Indexed"):
            self.client.emit_event(job, "UnknownCompletionMode", "Skipped Job sync because completion mode is unknown",
                                   type="Warning", component=COMPONENT)
            return None
        ns = plan.meta(job)["namespace"]
        satisfied = self._satisfied(key, ns)
        pods = await self._claim_pods(job)
        sync = plan.JobSync(job, pods, dt.datetime.now(dt.timezone.utc), backoff=self._backoff.get(key),
                            expected_removed=self._unfinalized(key, pods), satisfied=satisfied)
        decision = sync.decide()
        failure: BaseException | None = None
        try:
            await self._remove_finalizers(key, decision.remove_finalizer_first)
            await self._delete_pods(key, job, decision.delete)
            await self._create_pods(key, job, decision.create)
        except ApiError as exc:
            failure = exc
        tracking = sync.track()
        if tracking.flush:
            await self._write_status(sync)
            self._backoff[key] = decision.backoff
        removed = await self._remove_finalizers(key, tracking.remove_finalizers)
        if sync.after_finalizers_removed(removed):
            await self._write_status(sync)
        for kind, reason, message in decision.events + sync.finished_events():
            self.client.emit_event(job, reason, message, type=kind, component=COMPONENT)
        if failure is not None:
            raise failure
        return decision.requeue_after

    async def _write_status(self, sync: plan.JobSync) -> None:
        stored = await self.client.update_status(sync.job)
        sync.job["metadata"] = stored["metadata"]

    async def _claim_pods(self, job: Obj) -> list[Obj]:
        """The Job's pods: those it controls, plus orphans its selector matches (adopted,
        with the tracking finalizer), as upstream's PodControllerRefManager."""
        ns, uid = plan.meta(job)["namespace"], plan.meta(job)["uid"]
        pods = [p for p in self.pods.by_index("owner", uid) if (job_ref(p) or {}).get("uid") == uid]
        if plan.meta(job).get("deletionTimestamp"):
            return pods
        selector = LabelSelector.from_spec(plan.spec(job).get("selector"))
        for pod in self.pods.by_index("orphans", ns):
            if plan.meta(pod).get("deletionTimestamp"):
                continue
            if not plan.spec(job).get("selector") or not selector.matches(plan.meta(pod).get("labels") or {}):
                continue
            patch = {"metadata": {"ownerReferences": [podutil.owner_reference(job)],
                                  "finalizers": [plan.TRACKING_FINALIZER], "uid": plan.uid(pod)}}
            try:
                adopted = await self.client.patch(("v1", "Pod"), plan.meta(pod)["name"], patch, ns,
                                                  patch_type="strategic")
            except ApiError as exc:
                if exc.code in (404, 409, 422):
                    continue
                raise
            pods.append(adopted)
        return pods

    async def _remove_finalizers(self, key: str, pods: list[Obj]) -> set[str]:
        """PATCH the tracking finalizer away; returns the UIDs done (a pod already gone counts)."""
        async def one(pod: Obj) -> str | None:
            if not plan.has_tracking_finalizer(pod):
                return None
            self._expect_unfinalized.setdefault(key, set()).add(plan.uid(pod))
            try:
                await self.client.patch(("v1", "Pod"), plan.meta(pod)["name"], REMOVE_FINALIZER,
                                        plan.meta(pod)["namespace"], patch_type="strategic")
            except ApiError as exc:
                self._expect_unfinalized[key].discard(plan.uid(pod))
                if exc.code != 404:
                    log.warning("job-controller: removing tracking finalizer of %s: %s", object_key(pod), exc)
                    return None
            return plan.uid(pod)
        results = await asyncio.gather(*(one(p) for p in pods))
        return {u for u in results if u}

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        async def one(pod: Obj) -> None:
            name = plan.meta(pod)["name"]
            try:
                await self.client.delete(("v1", "Pod"), name, plan.meta(pod)["namespace"])
            except ApiError as exc:
                if exc.code == 404:
                    return
                self.client.emit_event(job, "FailedDelete", f"Error deleting: {exc.message}", type="Warning",
                                       component=COMPONENT)
                raise
            self._expect_deleted.setdefault(key, set()).add(name)
            self.client.emit_event(job, "SuccessfulDelete", f"Deleted pod: {name}", component=COMPONENT)
        await asyncio.gather(*(one(p) for p in pods))

    async def _create_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        """Create in slow-start batches (1, 2, 4, ...): a failing template fails once, not n times."""
        batch, pending = 1, list(pods)
        ns = plan.meta(job)["namespace"]
        while pending:
            now, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(*(self.client.create(p, ns) for p in now), return_exceptions=True)
            for r in results:
                if isinstance(r, ApiError):
                    if "is being terminated" not in r.message:
                        self.client.emit_event(job, "FailedCreate", f"Error creating: {r.message}", type="Warning",
                                               component=COMPONENT)
                    raise r
                if isinstance(r, BaseException):
                    raise r
                name = r["metadata"]["name"]
                self._expect_created.setdefault(key, set()).add(name)
                self.client.emit_event(job, "SuccessfulCreate", f"Created pod: {name}", component=COMPONENT)
            batch *= 2

    # -------------------------------------------------------------- orphans

    async def _orphan_worker(self) -> None:
        while True:
            try:
                key = await self.orphans.get()
            except ShutDown:
                return
            try:
                await self._sync_orphan(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried with back-off
                log.warning("job-controller: orphan pod %s: %s", key, exc)
                self.orphans.add_after(key, self.orphans.when(key))
            else:
                self.orphans.forget(key)
            finally:
                self.orphans.done(key)

    async def _sync_orphan(self, key: str) -> None:
        """Remove the tracking finalizer of a pod no unfinished Job controls (upstream syncOrphanPod)."""
        pod = self.pods.get(key)
        if pod is None or not plan.has_tracking_finalizer(pod):
            return
        ref = podutil.controller_ref(pod)
        if ref is not None:
            if job_ref(pod) is None:
                return  # controlled by something else: not ours to touch
            job = self._resolve(plan.meta(pod).get("namespace", ""), ref)
            if job is not None and plan.spec(job).get("managedBy", MANAGED_BY_DEFAULT) != MANAGED_BY_DEFAULT:
                return
            if job is not None and not plan.is_finished(job):
                return  # adopted: its Job counts it
        try:
            await self.client.patch(("v1", "Pod"), plan.meta(pod)["name"], REMOVE_FINALIZER,
                                    plan.meta(pod)["namespace"], patch_type="strategic")
        except ApiError as exc:
            if exc.code != 404:
                raise
