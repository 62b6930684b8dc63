"""The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished` later.

As upstream (pkg/controller/ttlafterfinished): a Job with the field set and a
Complete or Failed condition expires at that condition's
lastTransitionTime + TTL.  Until then the Job is looked at again when it
expires; at expiry the controller re-reads the Job from the API (the TTL
may have been changed or removed meanwhile) and deletes it with
propagationPolicy Foreground and a UID precondition, so its pods go first
and a re-created Job of the same name is never hit.
"""

from __future__ import annotations

import datetime as dt
import logging

from ..api.errors import ApiError
from ..client.client import Obj
from . import job_plan as plan
from . import podutil
from .base import Controller

log = logging.getLogger(__name__)


def finish_time(job: Obj) -> dt.datetime | None:
    """When the Job finished: its Complete/Failed True condition's lastTransitionTime."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in (plan.COMPLETE, plan.FAILED) and c.get("status") == "True":
            return podutil.parse_time(c.get("lastTransitionTime"))
    return None


def expires_in(job: Obj, now: dt.datetime) -> float | None:
    """Seconds until the Job may be deleted (<= 0: now); None when it never expires (yet)."""
    ttl = plan.spec(job).get("ttlSecondsAfterFinished")
    if ttl is None or plan.meta(job).get("deletionTimestamp"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return (finished + dt.timedelta(seconds=int(ttl)) - now).total_seconds()


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished-controller"
    workers = 2

    def setup(self) -> None:
        self.jobs = self.factory.informer("batch/v1", "Job")
        self.jobs.add_handlers(on_add=self._job_event, on_update=lambda o, n: self._job_event(n))

    def _job_event(self, job: Obj) -> None:
        if plan.spec(job).get("ttlSecondsAfterFinished") is not None and plan.is_finished(job):
            self.enqueue_obj(job)

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        left = expires_in(job, dt.datetime.now(dt.timezone.utc))
        if left is None:
            return None
        if left > 0:
            return left
        ns, name = plan.meta(job)["namespace"], plan.meta(job)["name"]
        try:
            fresh = await self.client.get(("batch/v1", "Job"), name, ns)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        left = expires_in(fresh, dt.datetime.now(dt.timezone.utc))
        if left is None:
            return None
        if left > 0:
            return left
        log.info("Cleaning up Job %s/%s", ns, name)
        try:
            await self.client.delete(("batch/v1", "Job"), name, ns, propagation_policy="Foreground",
                                     preconditions={"uid": plan.meta(fresh)["uid"]})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        return None
