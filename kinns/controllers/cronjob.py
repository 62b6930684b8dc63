"""The CronJob controller: creates a Job at each scheduled time, as upstream's cronjob_controllerv2.

For each CronJob it looks at the Jobs it controls, moves finished ones out
of `status.active` (recording `lastSuccessfulTime`), deletes the oldest
finished ones beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`,
and, if a scheduled time has come (and is not too late for
`startingDeadlineSeconds`), creates the Job `<cronjob>-<scheduledTime.Unix()/60>`
from `jobTemplate`, honouring `concurrencyPolicy` (Allow, Forbid: skip while
one runs, Replace: delete the running ones first).  The deterministic name is
the lock that stops a restarted controller from creating a time's Job twice.
It then sleeps until the next scheduled time (plus 100 ms).

The schedule arithmetic is pure (module-level functions over the CronJob and
a clock reading, on cron.py's parser), so it is unit-tested without a cluster.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from ..api.errors import ApiError
from ..client.client import Obj, object_key
from ..client.informer import index_by_owner_uid
from ..api import cron
from . import podutil
from .base import Controller

log = logging.getLogger(__name__)

COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = 0.1     # upstream's padding after the scheduled second (clock skew)
MANY_MISSED = 100

UTC = dt.timezone.utc


# ------------------------------------------------------------------ pure


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def parse_time(value: Any) -> dt.datetime | None:
    return podutil.parse_time(value) if value else None


def fmt_time(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_in_zone(t: dt.datetime, zone: dt.tzinfo) -> str:
    """Go's Format(time.RFC3339) of `t` in `zone`: "Z" for a zero offset, else "+hh:mm"."""
    local = t.astimezone(zone)
    offset = local.utcoffset() or dt.timedelta(0)
    if offset == dt.timedelta(0):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def rfc1123z(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def job_name(cj: Obj, scheduled: dt.datetime) -> str:
    """`<cronjob>-<minutes since the epoch>`: one name per scheduled time."""
    return f"{_meta(cj)['name']}-{int(scheduled.timestamp()) // 60}"


@dataclass(frozen=True)
class Recent:
    """upstream mostRecentScheduleTime's answer."""

    earliest: dt.datetime
    most_recent: dt.datetime | None
    missed: str          # "none", "few", "many"


def most_recent_schedule_time(cj: Obj, now: dt.datetime, sched: cron.Schedule,
                              include_starting_deadline: bool) -> Recent:
    """The latest scheduled time at or before `now` since the last one (or the CronJob's creation)."""
    earliest = parse_time((cj.get("status") or {}).get("lastScheduleTime")) \
        or parse_time(_meta(cj).get("creationTimestamp")) or now
    sds = _spec(cj).get("startingDeadlineSeconds")
    if include_starting_deadline and sds is not None:
        deadline = now - dt.timedelta(seconds=int(sds))
        if deadline > earliest:
            earliest = deadline
    t1 = sched.next(earliest)
    t2 = sched.next(t1) if t1 is not None else None
    if t1 is None or now < t1:
        return Recent(earliest, None, "none")
    if t2 is None or now < t2:
        return Recent(earliest, t1, "none")
    between = int(round((t2 - t1).total_seconds()))
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    missed = int((now - t1).total_seconds()) // between + 1
    potential = t1 + dt.timedelta(seconds=(missed - 2) * between)
    recent: dt.datetime | None = None
    t: dt.datetime | None = sched.next(potential)
    while t is not None and t <= now:
        recent = t
        t = sched.next(t)
    kind = "many" if missed > MANY_MISSED else "few" if missed > 0 else "none"
    return Recent(earliest, recent, kind)


def next_schedule_delay(cj: Obj, now: dt.datetime, sched: cron.Schedule) -> float | None:
    """Seconds until the next scheduled time after the last one (upstream nextScheduleTimeDuration)."""
    try:
        r = most_recent_schedule_time(cj, now, sched, False)
        base = r.most_recent or (r.earliest if r.missed == "none" else now)
    except ValueError:
        base = now
    nxt = sched.next(base)
    if nxt is None:
        return None
    return (nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA


def finished_status(job: Obj) -> str:
    """"Complete" or "Failed" once the Job has that condition True, else ""."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return ""


def job_from_template(cj: Obj, scheduled: dt.datetime, zone: dt.tzinfo) -> Obj:
    """The Job for one scheduled time: the template's labels and annotations, the
    scheduled-timestamp annotation (in the CronJob's zone), owned by the CronJob."""
    template = _spec(cj).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = rfc3339_in_zone(scheduled, zone)
    job: Obj = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": job_name(cj, scheduled), "namespace": _meta(cj)["namespace"],
                             "annotations": annotations,
                             "ownerReferences": [podutil.owner_reference(cj)]},
                "spec": copy.deepcopy(template.get("spec") or {})}
    if tmeta.get("labels"):
        job["metadata"]["labels"] = dict(tmeta["labels"])
    return job


def job_reference(job: Obj) -> Obj:
    """The ObjectReference kept in status.active (ref.GetReference)."""
    m = _meta(job)
    return {"kind": "Job", "namespace": m.get("namespace"), "name": m.get("name"), "uid": m.get("uid"),
            "apiVersion": "batch/v1", "resourceVersion": m.get("resourceVersion")}


def by_start_time(jobs: list[Obj]) -> list[Obj]:
    """Oldest first by status.startTime (unstarted last), then by name."""
    def key(j: Obj) -> tuple[int, str, str]:
        start = (j.get("status") or {}).get("startTime")
        return (0 if start else 1, start or "", _meta(j).get("name", ""))
    return sorted(jobs, key=key)


# -------------------------------------------------------------- controller


class CronJobController(Controller):
    name = "cronjob-controller"
    workers = 2

    def setup(self) -> None:
        self.cronjobs = self.factory.informer("batch/v1", "CronJob")
        self.jobs = self.factory.informer("batch/v1", "Job")
        self.jobs.add_indexer("owner", index_by_owner_uid)
        self.cronjobs.add_handlers(on_add=self.enqueue_obj, on_update=self._cronjob_updated,
                                   on_delete=self.enqueue_obj)
        self.jobs.add_handlers(on_add=self._job_event, on_update=lambda o, n: self._job_event(n, o),
                               on_delete=self._job_event)

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def _job_event(self, job: Obj, old: Obj | None = None) -> None:
        for j in (old, job):
            ref = podutil.controller_ref(j) if j is not None else None
            if ref and ref.get("kind") == "CronJob":
                cj = self.cronjobs.get(f"{_meta(job).get('namespace')}/{ref.get('name')}")
                if cj is not None and _meta(cj).get("uid") == ref.get("uid"):
                    self.enqueue_obj(cj)

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        """A new schedule or zone re-times the next sync; anything else syncs now."""
        if (_spec(old).get("schedule"), _spec(old).get("timeZone")) != (_spec(new).get("schedule"),
                                                                        _spec(new).get("timeZone")):
            try:
                sched = cron.parse_with_zone(_spec(new).get("schedule", ""), _spec(new).get("timeZone"))
            except cron.CronError:
                self.client.emit_event(new, "UnParseableCronJobSchedule",
                                       f"unparseable schedule for cronjob: {_spec(new).get('schedule')}",
                                       type="Warning", component=COMPONENT)
                return
            delay = next_schedule_delay(new, self.now(), sched)
            if delay is not None:
                self.queue.add_after(object_key(new), delay)
            return
        self.enqueue_obj(new)

    def _event(self, cj: Obj, reason: str, message: str, kind: str = "Normal") -> None:
        self.client.emit_event(cj, reason, message, type=kind, component=COMPONENT)

    async def reconcile(self, key: str) -> float | None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return None
        uid = _meta(cj).get("uid")
        jobs = [j for j in self.jobs.by_index("owner", uid or "")
                if (podutil.controller_ref(j) or {}).get("uid") == uid]
        work = copy.deepcopy(cj)
        work.setdefault("status", {})
        changed = await self._cleanup_finished(work, jobs)
        requeue, synced = await self._sync(work, jobs)
        if changed or synced:
            if not work["status"].get("active"):
                work["status"].pop("active", None)
            await self.client.update_status(work)
        return requeue

    async def _get_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(("batch/v1", "Job"), name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _delete_job(self, cj: Obj, job: Obj) -> bool:
        try:
            await self.client.delete(("batch/v1", "Job"), _meta(job)["name"], _meta(job)["namespace"],
                                     propagation_policy="Background")
        except ApiError as exc:
            self._event(cj, "FailedDelete", f"Deleted job: {exc.message}", "Warning")
            return False
        _remove_active(cj, _meta(job).get("uid"))
        self._event(cj, "SuccessfulDelete", f"Deleted job {_meta(job)['name']}")
        return True

    async def _cleanup_finished(self, cj: Obj, jobs: list[Obj]) -> bool:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = _spec(cj)
        changed = False
        for status, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                              ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = by_start_time([j for j in jobs if finished_status(j) == status])
            for job in done[:max(0, len(done) - int(limit))]:
                if await self._delete_job(cj, job):
                    changed = True
        return changed

    async def _sync(self, cj: Obj, jobs: list[Obj]) -> tuple[float | None, bool]:
        """upstream syncCronJob: returns (seconds until the next look, status changed)."""
        now = self.now()
        status = cj["status"]
        changed = False
        children = {_meta(j).get("uid") for j in jobs}
        for j in jobs:
            active = any(a.get("uid") == _meta(j).get("uid") for a in status.get("active") or [])
            finished = finished_status(j)
            if not active and not finished:
                fresh = await self.client.get(("batch/v1", "CronJob"), _meta(cj)["name"], _meta(cj)["namespace"])
                if any(a.get("uid") == _meta(j).get("uid") for a in (fresh.get("status") or {}).get("active") or []):
                    cj.clear()
                    cj.update(fresh)
                    cj.setdefault("status", {})
                    status = cj["status"]
                    continue
                self._event(cj, "UnexpectedJob",
                            f"Saw a job that the controller did not create or forgot: {_meta(j)['name']}", "Warning")
            elif active and finished:
                _remove_active(cj, _meta(j).get("uid"))
                self._event(cj, "SawCompletedJob", f"Saw completed job: {_meta(j)['name']}, status: {finished}")
                changed = True
            if finished == "Complete":
                done_at = (j.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done_at and (last is None or (parse_time(done_at) or now) > (parse_time(last) or now)):
                    status["lastSuccessfulTime"] = done_at
                    changed = True
        for ref in list(status.get("active") or []):
            if ref.get("uid") in children:
                continue
            if await self._get_job(ref.get("namespace", ""), ref.get("name", "")) is None:
                self._event(cj, "MissingJob", f"Active job went missing: {ref.get('name')}")
                _remove_active(cj, ref.get("uid"))
                changed = True
        if _meta(cj).get("deletionTimestamp"):
            return None, changed
        spec = _spec(cj)
        zone_name = spec.get("timeZone")
        zone: dt.tzinfo = UTC
        if zone_name is not None:
            try:
                zone = cron.load_zone(zone_name)
            except cron.CronError as exc:
                self._event(cj, "UnknownTimeZone", f'invalid timeZone: "{zone_name}": {exc}', "Warning")
                return None, changed
        if spec.get("suspend"):
            return None, changed
        schedule = spec.get("schedule", "")
        if "TZ" in schedule:
            self._event(cj, "UnsupportedSchedule",
                        f'CRON_TZ or TZ used in schedule "{schedule}" is not officially supported, see '
                        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                        "Warning")
        try:
            sched = cron.parse_with_zone(schedule, zone_name)
        except cron.CronError as exc:
            self._event(cj, "UnparseableSchedule", f'unparseable schedule: "{schedule}" : {exc}', "Warning")
            return None, changed
        try:
            recent = most_recent_schedule_time(cj, now, sched, True)
        except ValueError as exc:
            self._event(cj, "InvalidSchedule", f"invalid schedule: {schedule} : {exc}", "Warning")
            return None, changed
        scheduled = recent.most_recent
        if scheduled is None or scheduled > now:
            return next_schedule_delay(cj, now, sched), changed
        if recent.missed == "many":
            self._event(cj, "TooManyMissedTimes", "too many missed start times. Set or decrease "
                        ".spec.startingDeadlineSeconds or check clock skew", "Warning")
        sds = spec.get("startingDeadlineSeconds")
        if sds is not None and scheduled + dt.timedelta(seconds=int(sds)) < now:
            self._event(cj, "MissSchedule", f"Missed scheduled time to start a job: {rfc1123z(scheduled)}",
                        "Warning")
            return next_schedule_delay(cj, now, sched), changed
        name = job_name(cj, scheduled)
        if any(a.get("name") == name for a in status.get("active") or []) \
                or status.get("lastScheduleTime") == fmt_time(scheduled):
            return next_schedule_delay(cj, now, sched), changed
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            self._event(cj, "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid")
            return next_schedule_delay(cj, now, sched), changed
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                job = await self._get_job(ref.get("namespace", ""), ref.get("name", ""))
                if job is None:
                    raise ApiError(404, "NotFound", f'jobs.batch "{ref.get("name")}" not found')
                if not await self._delete_job(cj, job):
                    raise RuntimeError(f"could not replace job {ref.get('namespace')}/{ref.get('name')}")
                changed = True
        request = job_from_template(cj, scheduled, zone)
        try:
            created = await self.client.create(request, _meta(cj)["namespace"])
            self._event(cj, "SuccessfulCreate", f"Created job {_meta(created)['name']}")
        except ApiError as exc:
            if exc.code != 409:
                if "is being terminated" not in exc.message:
                    self._event(cj, "FailedCreate", f"Error creating job: {exc.message}", "Warning")
                raise
            existing = await self._get_job(_meta(cj)["namespace"], name)
            if existing is None:
                raise
            ref = podutil.controller_ref(existing)
            if ref is None or ref.get("uid") != _meta(cj).get("uid"):
                return None, changed   # made by someone else, who keeps the status
            if any(a.get("uid") == _meta(existing).get("uid") for a in status.get("active") or []):
                return None, changed
            created = existing
        status.setdefault("active", []).append(job_reference(created))
        status["lastScheduleTime"] = fmt_time(scheduled)
        return next_schedule_delay(cj, now, sched), True


def _remove_active(cj: Obj, uid: Any) -> None:
    status = cj.setdefault("status", {})
    status["active"] = [a for a in status.get("active") or [] if a.get("uid") != uid]
