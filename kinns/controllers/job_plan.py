"""What the Job controller decides, as pure functions over a Job and its pods.

This is upstream's syncJob (pkg/controller/job, v1.32 with its default
feature gates: JobPodReplacementPolicy, JobSuccessPolicy, JobBackoffLimitPerIndex,
PodIndexLabel, JobManagedBy), cut where it talks to the API so every
decision can be tested without a cluster.  `JobSync` walks the same steps
and the controller (job.py) performs the writes between them:

1. `decide()`: count finished pods not yet in the status, pick the
   condition the Job is heading for (FailureTarget with BackoffLimitExceeded,
   DeadlineExceeded, PodFailurePolicy, FailedIndexes or MaxFailedIndexesExceeded;
   SuccessCriteriaMet with CompletionsReached or SuccessPolicy), and say
   which pods to delete (all active ones of a finishing or suspended Job,
   extras, duplicate indexes) or create (up to parallelism, lowest pending
   indexes first, after the failure back-off: 10 s doubling, capped at 10 min).
2. `track()`: after those writes, which finished pods to record in
   `status.uncountedTerminatedPods` and whose `batch.kubernetes.io/job-tracking`
   finalizer to remove; the interim condition is recorded first.
3. `after_finalizers_removed(uids)`: move counted pods from the uncounted
   lists to `succeeded`/`failed`, and once nothing is uncounted or still
   terminating, set the terminal `Complete`/`Failed` condition (and
   `completionTime`).

Each step mutates `self.job` (a private copy) and says whether its status
must be written.  Finished pods are counted exactly once because a pod is
counted only while it still carries the tracking finalizer and is listed as
uncounted until the finalizer is gone, as upstream.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from . import podutil
from .job_intervals import Intervals, covered

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
INDEX_ENV = "JOB_COMPLETION_INDEX"

DEFAULT_POD_FAILURE_BACKOFF = 10.0     # DefaultJobPodFailureBackOff
MAX_POD_FAILURE_BACKOFF = 600.0        # MaxJobPodFailureBackOff (the docs say 6 min; the code 10)
MAX_UNCOUNTED_PODS = 500
MAX_POD_CREATE_DELETE_PER_SYNC = 500
SYNC_BATCH_PERIOD = 1.0                # the shortest delay of a delayed re-sync
MAX_GENERATED_NAME_LENGTH = 58         # 63 - the 5 random characters

# Condition types and reasons (k8s.io/api/batch/v1).
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
FAILURE_TARGET, SUCCESS_CRITERIA_MET = "FailureTarget", "SuccessCriteriaMet"
REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
REASON_DEADLINE = "DeadlineExceeded"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_FAILED_INDEXES = "FailedIndexes"
REASON_MAX_FAILED_INDEXES = "MaxFailedIndexesExceeded"
REASON_COMPLETIONS_REACHED = "CompletionsReached"
REASON_SUCCESS_POLICY = "SuccessPolicy"
MSG_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_FAILED_INDEXES = "Job has failed indexes"
MSG_MAX_FAILED_INDEXES = "Job has exceeded the specified maximal number of failed indexes"
MSG_COMPLETIONS_REACHED = "Reached expected number of succeeded pods"

UNKNOWN_INDEX = -1


# ------------------------------------------------------------------ job facts


def spec(job: Obj) -> Obj:
    return job.get("spec") or {}


def is_indexed(job: Obj) -> bool:
    return spec(job).get("completionMode") == "Indexed"


def completions(job: Obj) -> int | None:
    value = spec(job).get("completions")
    return int(value) if value is not None else None


def has_backoff_limit_per_index(job: Obj) -> bool:
    return spec(job).get("backoffLimitPerIndex") is not None


def is_suspended(job: Obj) -> bool:
    return bool(spec(job).get("suspend"))


def find_condition(job: Obj, ctype: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c  # type: ignore[no-any-return]
    return None


def condition_true(job: Obj, ctype: str) -> bool:
    c = find_condition(job, ctype)
    return bool(c and c.get("status") == "True")


def is_finished(job: Obj) -> bool:
    """Complete=True or Failed=True (util.IsJobFinished)."""
    return condition_true(job, COMPLETE) or condition_true(job, FAILED)


def finished_type(job: Obj) -> str:
    for ctype in (COMPLETE, FAILED):
        if condition_true(job, ctype):
            return ctype
    return ""


def only_replace_failed_pods(job: Obj) -> bool:
    """podReplacementPolicy Failed (implied by a podFailurePolicy): terminating pods are not replaced yet."""
    s = spec(job)
    return s.get("podReplacementPolicy") == "Failed" or s.get("podFailurePolicy") is not None


def fmt_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_condition(ctype: str, status: str, reason: str, message: str, now: dt.datetime) -> Obj:
    ts = fmt_time(now)
    return {"type": ctype, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], ctype: str, status: str, reason: str, message: str,
                     now: dt.datetime) -> bool:
    """upstream ensureJobConditionStatus: update or append; a new False condition is not added."""
    for i, c in enumerate(conditions):
        if c.get("type") == ctype:
            if (c.get("status"), c.get("reason", ""), c.get("message", "")) != (status, reason, message):
                conditions[i] = new_condition(ctype, status, reason, message, now)
                return True
            return False
    if status != "False":
        conditions.append(new_condition(ctype, status, reason, message, now))
        return True
    return False


# ------------------------------------------------------------------ pod facts


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def uid(pod: Obj) -> str:
    return str(meta(pod).get("uid", ""))


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase", ""))


def completion_index(pod: Obj) -> int:
    """The pod's index annotation, or UNKNOWN_INDEX when absent or not a non-negative integer."""
    value = (meta(pod).get("annotations") or {}).get(COMPLETION_INDEX)
    if value is None or not str(value).lstrip("+").isdigit():
        return UNKNOWN_INDEX
    return int(value)


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (meta(pod).get("finalizers") or [])


def is_active(pod: Obj) -> bool:
    """controller.FilterActivePods: not finished, not being deleted."""
    return phase(pod) not in ("Succeeded", "Failed") and not meta(pod).get("deletionTimestamp")


def is_terminating(pod: Obj) -> bool:
    return bool(meta(pod).get("deletionTimestamp")) and phase(pod) not in ("Succeeded", "Failed")


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before it could succeed."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return bool(meta(pod).get("deletionTimestamp")) and phase(pod) != "Succeeded"


def finish_time(pod: Obj) -> dt.datetime:
    """upstream getFinishedTime: last container exit, else Ready=False, else deletion, else creation."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    latest: dt.datetime | None = None
    for cs in statuses:
        at = podutil.parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if at is None:
            latest = None
            break
        latest = at if latest is None or at > latest else latest
    if latest is not None:
        return latest
    ready = podutil.condition(pod, "Ready")
    if ready and ready.get("status") == "False":
        at = podutil.parse_time(ready.get("lastTransitionTime"))
        if at is not None:
            return at
    deleted = podutil.parse_time(meta(pod).get("deletionTimestamp"))
    if deleted is not None:
        return deleted - dt.timedelta(seconds=int(meta(pod).get("deletionGracePeriodSeconds") or 0))
    return podutil.parse_time(meta(pod).get("creationTimestamp")) or dt.datetime.fromtimestamp(0, dt.timezone.utc)


def _annotation_int(pod: Obj, key: str) -> int:
    value = (meta(pod).get("annotations") or {}).get(key)
    try:
        n = int(value) if value is not None else 0
    except ValueError:
        return 0
    return n if 0 <= n <= 2**31 - 1 else 0


def index_failure_count(pod: Obj) -> int:
    return _annotation_int(pod, INDEX_FAILURE_COUNT)


def index_absolute_failure_count(pod: Obj) -> int:
    return _annotation_int(pod, INDEX_FAILURE_COUNT) + _annotation_int(pod, INDEX_IGNORED_FAILURE_COUNT)


# ---------------------------------------------------------- pod failure policy


@dataclass(frozen=True)
class PolicyMatch:
    """What a failed pod means under the Job's podFailurePolicy."""

    fail_job_message: str | None = None   # set for a FailJob rule
    count: bool = True                    # counts towards backoffLimit (False for Ignore)
    action: str | None = None             # the matched rule's action


def _exit_code_matches(code: int, req: Obj) -> bool:
    values = req.get("values") or []
    if req.get("operator") == "In":
        return code in values
    if req.get("operator") == "NotIn":
        return code not in values
    return False


def _matching_container(statuses: list[Obj], req: Obj) -> Obj | None:
    for cs in statuses:
        term = (cs.get("state") or {}).get("terminated")
        if term is None:
            continue
        if req.get("containerName") in (None, cs.get("name")):
            code = int(term.get("exitCode", 0))
            if code != 0 and _exit_code_matches(code, req):
                return cs
    return None


def match_pod_failure_policy(job: Obj, pod: Obj) -> PolicyMatch:
    """upstream matchPodFailurePolicy: the first rule that matches the failed pod decides."""
    policy = spec(job).get("podFailurePolicy")
    if policy is None:
        return PolicyMatch()
    status = pod.get("status") or {}
    m = meta(pod)
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            req = rule["onExitCodes"]
            cs = (_matching_container(status.get("containerStatuses") or [], req)
                  or _matching_container(status.get("initContainerStatuses") or [], req))
            if cs is None:
                continue
            code = cs["state"]["terminated"].get("exitCode")
            detail = (f"Container {cs.get('name')} for pod {m.get('namespace')}/{m.get('name')} failed with exit "
                      f"code {code} matching {action} rule at index {index}")
        elif rule.get("onPodConditions") is not None:
            hit = next((c for c in status.get("conditions") or [] for p in rule["onPodConditions"]
                        if c.get("type") == p.get("type") and c.get("status") == p.get("status", "True")), None)
            if hit is None:
                continue
            detail = (f"Pod {m.get('namespace')}/{m.get('name')} has condition {hit.get('type')} matching "
                      f"{action} rule at index {index}")
        else:
            continue
        if action == "Ignore":
            return PolicyMatch(count=False, action=action)
        if action == "Count":
            return PolicyMatch(action=action)
        if action == "FailJob":
            return PolicyMatch(fail_job_message=detail, action=action)
        if action == "FailIndex":
            return PolicyMatch(action=action)
    return PolicyMatch()


# ---------------------------------------------------------------- back-off


@dataclass(frozen=True)
class BackoffRecord:
    """Failures since the last success and when the last one happened (upstream backoffRecord)."""

    failures_after_last_success: int = 0
    last_failure_time: dt.datetime | None = None


def new_backoff_record(prev: BackoffRecord, succeeded: list[Obj], failed: list[Obj]) -> BackoffRecord:
    """The record after counting newly finished pods (upstream backoffStore.newBackoffRecord)."""
    succ_times = sorted(finish_time(p) for p in succeeded)
    fail_times = sorted(finish_time(p) for p in failed)
    if not succ_times:
        if not fail_times:
            return prev
        return BackoffRecord(prev.failures_after_last_success + len(fail_times), fail_times[-1])
    if not fail_times:
        return BackoffRecord()
    last_success = succ_times[-1]
    after = [t for t in fail_times if t > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


def remaining_backoff(failures: int, last_failure: dt.datetime | None, now: dt.datetime,
                      base: float = DEFAULT_POD_FAILURE_BACKOFF, cap: float = MAX_POD_FAILURE_BACKOFF) -> float:
    """Seconds still to wait before a replacement pod: base * 2^(failures-1), capped."""
    if failures == 0 or last_failure is None:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = (now - last_failure).total_seconds()
    return 0.0 if delay < elapsed else delay - elapsed


# ------------------------------------------------------------ success policy


def match_success_policy(job: Obj, succeeded: Intervals) -> str | None:
    """upstream matchSuccessPolicy: "Matched rules at index N" for the first rule met, else None."""
    policy = spec(job).get("successPolicy")
    n = completions(job)
    if policy is None or n is None or not succeeded.total():
        return None
    for index, rule in enumerate(policy.get("rules") or []):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            wanted = Intervals.parse(rule["succeededIndexes"], n)
            if not wanted.total():
                continue
            hit = covered(wanted, succeeded)
            if hit == wanted.total() or (count is not None and hit >= int(count)):
                return f"Matched rules at index {index}"
        elif count is not None and succeeded.total() >= int(count):
            return f"Matched rules at index {index}"
    return None


# -------------------------------------------------------------- pod creation


def generate_name(job: Obj, index: int) -> str:
    """`<job>-` or, for an index, `<job>-<index>-` (shortened as upstream to fit a generated name)."""
    name = str(meta(job)["name"])
    if index == UNKNOWN_INDEX:
        prefix = name + "-"
        return prefix if len(prefix) <= MAX_GENERATED_NAME_LENGTH else prefix[:MAX_GENERATED_NAME_LENGTH]
    suffix = f"-{index}-"
    prefix = name + suffix
    if len(prefix) > MAX_GENERATED_NAME_LENGTH:
        prefix = prefix[:MAX_GENERATED_NAME_LENGTH - len(suffix)] + suffix
    return prefix


def _index_env(container: Obj) -> None:
    env = container.setdefault("env", [])
    if any(e.get("name") == INDEX_ENV for e in env):
        return
    env.append({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}})


def new_pod(job: Obj, index: int = UNKNOWN_INDEX, replaced: Obj | None = None) -> Obj:
    """A pod of the Job's template, as upstream creates it: owned by the Job, with the
    tracking finalizer and, for an index, its annotation, label, hostname and env."""
    template = copy.deepcopy(spec(job).get("template") or {})
    pod = podutil.pod_from_template(job, template, generate_name=generate_name(job, index))
    tmeta = template.get("metadata") or {}
    finalizers = list(tmeta.get("finalizers") or [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    pod["metadata"]["finalizers"] = finalizers
    if index != UNKNOWN_INDEX:
        pspec = pod["spec"]
        for c in (pspec.get("initContainers") or []) + (pspec.get("containers") or []):
            _index_env(c)
        annotations = pod["metadata"].setdefault("annotations", {})
        annotations[COMPLETION_INDEX] = str(index)
        pod["metadata"]["labels"][COMPLETION_INDEX] = str(index)
        pspec["hostname"] = f"{meta(job)['name']}-{index}"
        if has_backoff_limit_per_index(job):
            failures, ignored = 0, 0
            if replaced is not None:
                failures, ignored = index_failure_count(replaced), _annotation_int(replaced,
                                                                                    INDEX_IGNORED_FAILURE_COUNT)
                if match_pod_failure_policy(job, replaced).count:
                    failures += 1
                else:
                    ignored += 1
            annotations[INDEX_FAILURE_COUNT] = str(failures)
            if ignored > 0:
                annotations[INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
    return pod


# --------------------------------------------------------------- the sync


@dataclass
class Decision:
    """Writes `decide()` asks for before the status is tracked."""

    delete: list[Obj] = field(default_factory=list)       # pods to DELETE (finalizers kept)
    create: list[Obj] = field(default_factory=list)       # pod manifests to POST
    remove_finalizer_first: list[Obj] = field(default_factory=list)  # deleted pods whose finalizer goes first
    requeue_after: float | None = None                    # look again (deadline, back-off)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    backoff: BackoffRecord = field(default_factory=BackoffRecord)


@dataclass
class Tracking:
    """What `track()` asks for: a status write (interim), then finalizer removals."""

    flush: bool
    remove_finalizers: list[Obj]


class JobSync:
    """One sync of one Job; see the module docstring for the three steps."""

    def __init__(self, job: Obj, pods: list[Obj], now: dt.datetime, *, backoff: BackoffRecord | None = None,
                 expected_removed: set[str] | None = None, satisfied: bool = True) -> None:
        self.orig_status = copy.deepcopy(job.get("status") or {})
        self.job = copy.deepcopy(job)
        self.status: Obj = self.job.setdefault("status", {})
        self.pods = pods
        self.now = now
        self.prev_backoff = backoff or BackoffRecord()
        self.expected_removed = expected_removed or set()
        self.satisfied = satisfied
        unc = self.status.get("uncountedTerminatedPods") or {}
        self.status["uncountedTerminatedPods"] = unc
        self.uncounted_succeeded = set(unc.get("succeeded") or [])
        self.uncounted_failed = set(unc.get("failed") or [])
        self.active_pods = [p for p in pods if is_active(p)]
        self.ready = sum(1 for p in self.active_pods if podutil.is_ready(p))
        self.terminating = sum(1 for p in pods if is_terminating(p))
        self.finished_condition: Obj | None = None
        self.prev_succeeded_indexes = Intervals()
        self.succeeded_indexes = Intervals()
        self.failed_indexes: Intervals | None = None
        self.delayed_per_index: dict[int, Obj] = {}
        self.needs_flush = False
        self.reached_max_uncounted = False
        self.finished_now = False

    # ---------------------------------------------------------- counting

    def _valid_new(self, pod: Obj, uncounted: set[str]) -> bool:
        """A pod not yet counted: it has the finalizer, is not in `uncounted`, has a valid index."""
        u = uid(pod)
        if not has_tracking_finalizer(pod) or u in uncounted or u in self.expected_removed:
            return False
        if is_indexed(self.job):
            ix = completion_index(pod)
            if ix == UNKNOWN_INDEX or ix >= (completions(self.job) or 0):
                return False
        return True

    def new_finished(self) -> tuple[list[Obj], list[Obj]]:
        succeeded = [p for p in self.pods if self._valid_new(p, self.uncounted_succeeded) and phase(p) == "Succeeded"]
        failed = [p for p in self.pods if self._valid_new(p, self.uncounted_failed) and is_pod_failed(p, self.job)]
        return succeeded, failed

    def _past_backoff_limit_on_failure(self) -> bool:
        """restartPolicy OnFailure: container restarts of running pods count against backoffLimit."""
        tspec = (spec(self.job).get("template") or {}).get("spec") or {}
        if tspec.get("restartPolicy") != "OnFailure":
            return False
        restarts = 0
        for p in self.pods:
            if phase(p) in ("Running", "Pending"):
                st = p.get("status") or {}
                for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
                    restarts += int(cs.get("restartCount", 0))
        limit = int(spec(self.job).get("backoffLimit", 6))
        return restarts > 0 if limit == 0 else restarts >= limit

    def _past_deadline(self) -> tuple[bool, float | None]:
        """(deadline passed, seconds until it passes) for activeDeadlineSeconds."""
        ads = spec(self.job).get("activeDeadlineSeconds")
        start = podutil.parse_time(self.status.get("startTime"))
        if ads is None or start is None or is_suspended(self.job):
            return False, None
        left = float(ads) - (self.now - start).total_seconds()
        return left <= 0, left

    def _failed_indexes(self) -> Intervals:
        n = completions(self.job) or 0
        prev = Intervals.parse(self.status.get("failedIndexes"), n) if self.status.get("failedIndexes") is not None \
            else Intervals()
        new = []
        limit = int(spec(self.job)["backoffLimitPerIndex"])
        for p in self.pods:
            ix = completion_index(p)
            if ix == UNKNOWN_INDEX or ix >= n or not has_tracking_finalizer(p):
                continue
            if not is_pod_failed(p, self.job):
                continue
            match = match_pod_failure_policy(self.job, p)
            if match.action == "FailIndex" or (match.count and index_failure_count(p) >= limit):
                new.append(ix)
        return prev.with_indexes(new)

    def _delayed_deletion_per_index(self) -> dict[int, Obj]:
        """The last failed pod of each index still to be retried: kept (finalizer and all) until
        its replacement carries the index's failure count forward."""
        n = completions(self.job) or 0
        active = {completion_index(p) for p in self.active_pods}
        failed = self.failed_indexes or Intervals()
        out: dict[int, Obj] = {}
        for p in self.pods:
            if not self._valid_new(p, set()) or not is_pod_failed(p, self.job):
                continue
            ix = completion_index(p)
            if ix >= n or self.succeeded_indexes.has(ix) or failed.has(ix) or ix in active:
                continue
            last = out.get(ix)
            if last is None or (index_absolute_failure_count(last) <= index_absolute_failure_count(p)
                                and not finish_time(p) < finish_time(last)):
                out[ix] = p
        return out

    # ---------------------------------------------------------- step 1

    def decide(self) -> Decision:
        job, st, now = self.job, self.status, self.now
        d = Decision()
        new_succeeded, new_failed = self.new_finished()
        succeeded = int(st.get("succeeded", 0)) + len(new_succeeded) + len(self.uncounted_succeeded)
        not_ignored = [p for p in new_failed if match_pod_failure_policy(job, p).count]
        failed = int(st.get("failed", 0)) + len(not_ignored) + len(self.uncounted_failed)
        if not st.get("startTime") and not is_suspended(job):
            st["startTime"] = fmt_time(now)
        d.backoff = new_backoff_record(self.prev_backoff, new_succeeded, new_failed)

        fc: Obj | None = None
        scm = find_condition(job, SUCCESS_CRITERIA_MET)
        if scm and scm.get("status") == "True":
            fc = dict(scm)
        if fc is None:
            target = find_condition(job, FAILURE_TARGET)
            if target and target.get("status") == "True":
                fc = new_condition(FAILED, "True", target.get("reason", ""), target.get("message", ""), now)
            else:
                message = next((m.fail_job_message for p in self.pods if is_pod_failed(p, job)
                                for m in [match_pod_failure_policy(job, p)] if m.fail_job_message), None)
                if message:
                    fc = new_condition(FAILURE_TARGET, "True", REASON_POD_FAILURE_POLICY, message, now)
        if fc is None:
            past, left = self._past_deadline()
            if failed > int(spec(job).get("backoffLimit", 6)) or self._past_backoff_limit_on_failure():
                fc = new_condition(FAILURE_TARGET, "True", REASON_BACKOFF_LIMIT, MSG_BACKOFF_LIMIT, now)
            elif past:
                fc = new_condition(FAILURE_TARGET, "True", REASON_DEADLINE, MSG_DEADLINE, now)
            elif left is not None:
                d.requeue_after = left

        n = completions(job)
        if is_indexed(job) and n is not None:
            self.prev_succeeded_indexes = Intervals.parse(st.get("completedIndexes"), n)
            self.succeeded_indexes = self.prev_succeeded_indexes.with_indexes(
                completion_index(p) for p in self.pods
                if phase(p) == "Succeeded" and 0 <= completion_index(p) < n and has_tracking_finalizer(p))
            succeeded = self.succeeded_indexes.total()
            if has_backoff_limit_per_index(job):
                self.failed_indexes = self._failed_indexes()
                if fc is None:
                    max_failed = spec(job).get("maxFailedIndexes")
                    nfailed = self.failed_indexes.total()
                    if max_failed is not None and nfailed > int(max_failed):
                        fc = new_condition(FAILURE_TARGET, "True", REASON_MAX_FAILED_INDEXES,
                                           MSG_MAX_FAILED_INDEXES, now)
                    elif nfailed > 0 and nfailed + self.succeeded_indexes.total() >= n:
                        fc = new_condition(FAILURE_TARGET, "True", REASON_FAILED_INDEXES, MSG_FAILED_INDEXES, now)
                self.delayed_per_index = self._delayed_deletion_per_index()
            if fc is None:
                message = match_success_policy(job, self.succeeded_indexes)
                if message:
                    fc = new_condition(SUCCESS_CRITERIA_MET, "True", REASON_SUCCESS_POLICY, message, now)

        active = len(self.active_pods)
        suspend_changed = False
        if fc is not None:
            # A finishing Job: every active pod goes (their finalizers stay until counted).
            d.delete = list(self.active_pods)
            self.ready -= sum(1 for p in d.delete if podutil.is_ready(p))
            self.terminating += len(d.delete)
            active -= len(d.delete)
            if not self.satisfied:
                fc = None
        else:
            managed = False
            if self.satisfied and not meta(job).get("deletionTimestamp"):
                active = self._manage(d, succeeded)
                managed = True
            complete = succeeded > 0 and active == 0 if n is None else succeeded >= n and active == 0
            if complete:
                fc = new_condition(SUCCESS_CRITERIA_MET, "True", REASON_COMPLETIONS_REACHED,
                                   MSG_COMPLETIONS_REACHED, now)
            elif managed:
                conditions = st.setdefault("conditions", [])
                if is_suspended(job):
                    if ensure_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now):
                        suspend_changed = True
                        d.events.append(("Normal", "Suspended", "Job suspended"))
                elif ensure_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed", now):
                    suspend_changed = True
                    d.events.append(("Normal", "Resumed", "Job resumed"))
                    # ActiveDeadlineSeconds counts from the resumption.
                    st["startTime"] = fmt_time(now)
                if not conditions:
                    st.pop("conditions", None)
        self.finished_condition = fc
        self.needs_flush = (suspend_changed or active != int(self.orig_status.get("active", 0))
                            or self.ready != self.orig_status.get("ready")
                            or self.terminating != self.orig_status.get("terminating"))
        if active:
            st["active"] = active
        else:
            st.pop("active", None)   # omitempty, as upstream writes it
        st["ready"] = self.ready
        st["terminating"] = self.terminating
        return d

    def _manage(self, d: Decision, succeeded: int) -> int:
        """upstream manageJob: delete extras (or all, when suspended), else create what is missing."""
        job = self.job
        active = len(self.active_pods)
        if is_suspended(job):
            self._delete(d, self.pods_for_removal(active))
            return active - len(d.delete)
        parallelism = int(spec(job).get("parallelism", 1))
        n = completions(job)
        if n is None:
            want = active if succeeded > 0 else parallelism
        else:
            want = max(0, min(n - succeeded, parallelism))
        extra = self.pods_for_removal(max(active - want, 0))[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if extra:
            self._delete(d, extra)
            return active - len(extra)
        terminating = self.terminating if only_replace_failed_pods(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active
        if not has_backoff_limit_per_index(job):
            wait = remaining_backoff(d.backoff.failures_after_last_success, d.backoff.last_failure_time, self.now)
            if wait > 0:
                d.requeue_after = _sooner(d.requeue_after, max(wait, SYNC_BATCH_PERIOD))
                return active
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        if not is_indexed(job) or n is None:
            d.create = [new_pod(job) for _ in range(diff)]
            return active + diff
        indexes = self.first_pending_indexes(diff, n)
        if has_backoff_limit_per_index(job):
            ready_now, waits = [], []
            for ix in indexes:
                last = self.delayed_per_index.get(ix)
                wait = 0.0
                if last is not None:
                    wait = remaining_backoff(index_absolute_failure_count(last) + 1, finish_time(last), self.now)
                if wait == 0:
                    ready_now.append(ix)
                else:
                    waits.append(wait)
            if not ready_now and waits:
                d.requeue_after = _sooner(d.requeue_after, max(min(waits), SYNC_BATCH_PERIOD))
                return active
            indexes = ready_now
        d.create = [new_pod(job, ix, self.delayed_per_index.get(ix)) for ix in indexes]
        return active + len(indexes)

    def _delete(self, d: Decision, pods: list[Obj]) -> None:
        """Scaled-down or suspended pods: their finalizer is removed before the delete (deleteJobPods)."""
        d.delete = list(pods)
        d.remove_finalizer_first = [p for p in pods if has_tracking_finalizer(p)]
        self.ready -= sum(1 for p in pods if podutil.is_ready(p))
        self.terminating += len(pods)

    def pods_for_removal(self, at_least: int) -> list[Obj]:
        """upstream activePodsForRemoval: duplicate, missing or out-of-range indexes first,
        then in the order of controller.ActivePods (pending, not ready, ... first)."""
        rm: list[Obj] = []
        left = list(self.active_pods)
        n = completions(self.job)
        if is_indexed(self.job) and n is not None:
            left = []
            by_index: dict[int, list[Obj]] = {}
            for p in self.active_pods:
                ix = completion_index(p)
                if ix == UNKNOWN_INDEX or ix >= n:
                    rm.append(p)
                else:
                    by_index.setdefault(ix, []).append(p)
            for ix in sorted(by_index):
                group = podutil.deletion_order(by_index[ix])
                rm.extend(group[:-1])
                left.append(group[-1])
        if len(rm) < at_least:
            rm.extend(podutil.deletion_order(left)[:at_least - len(rm)])
        return rm

    def first_pending_indexes(self, count: int, n: int) -> list[int]:
        """The lowest `count` indexes below `n` that are not active, succeeded, failed
        (nor terminating, when only failed pods are replaced)."""
        busy = self.succeeded_indexes.with_indexes(
            completion_index(p) for p in self.active_pods if completion_index(p) != UNKNOWN_INDEX)
        if only_replace_failed_pods(self.job):
            busy = busy.with_indexes(completion_index(p) for p in self.pods
                                     if is_terminating(p) and completion_index(p) != UNKNOWN_INDEX)
        if self.failed_indexes is not None:
            busy = busy.merge(self.failed_indexes)
        out: list[int] = []
        for ix in range(n):
            if len(out) >= count:
                break
            if not busy.has(ix):
                out.append(ix)
        return out

    # ---------------------------------------------------------- step 2

    def _can_remove_finalizer(self, pod: Obj, failed: bool) -> bool:
        if meta(self.job).get("deletionTimestamp") or self.finished_condition is not None or phase(pod) == "Succeeded":
            return True
        if not failed:
            return False
        if has_backoff_limit_per_index(self.job):
            last = self.delayed_per_index.get(completion_index(pod))
            if last is not None and uid(last) == uid(pod):
                return False
        return True

    def with_finalizer(self) -> set[str]:
        return {uid(p) for p in self.pods if has_tracking_finalizer(p) and uid(p) not in self.expected_removed}

    def track(self) -> Tracking:
        """upstream trackJobStatusAndRemoveFinalizers, up to the first status write."""
        job, st = self.job, self.status
        unc = st["uncountedTerminatedPods"]
        unc_succ, unc_fail = list(unc.get("succeeded") or []), list(unc.get("failed") or [])
        indexed = is_indexed(job) and completions(job) is not None
        n = completions(job) or 0
        pods = sorted(self.pods, key=completion_index) if indexed else list(self.pods)
        if self._clean_uncounted(self.with_finalizer()):
            self.needs_flush = True
        unc_succ, unc_fail = list(unc.get("succeeded") or []), list(unc.get("failed") or [])
        new_indexes: list[int] = []
        remove: list[Obj] = []
        fc = self.finished_condition
        for pod in pods:
            u = uid(pod)
            if not has_tracking_finalizer(pod) or u in self.expected_removed:
                continue
            failed = is_pod_failed(pod, job)
            if not self._can_remove_finalizer(pod, failed):
                continue
            remove.append(pod)
            if phase(pod) == "Succeeded" and u not in self.uncounted_failed:
                if indexed:
                    ix = completion_index(pod)
                    if ix != UNKNOWN_INDEX and ix < n and not self.prev_succeeded_indexes.has(ix):
                        new_indexes.append(ix)
                        self.needs_flush = True
                elif u not in self.uncounted_succeeded:
                    self.needs_flush = True
                    unc_succ.append(u)
            elif failed or (fc is not None and fc["type"] != SUCCESS_CRITERIA_MET):
                ix = completion_index(pod)
                if u not in self.uncounted_failed and (not indexed or (ix != UNKNOWN_INDEX and ix < n)):
                    if match_pod_failure_policy(job, pod).count:
                        self.needs_flush = True
                        unc_fail.append(u)
            if len(new_indexes) + len(unc_succ) + len(unc_fail) >= MAX_UNCOUNTED_PODS:
                self.reached_max_uncounted = True
                break
        unc["succeeded"], unc["failed"] = unc_succ, unc_fail
        _compact_uncounted(unc)
        if indexed:
            self.succeeded_indexes = self.succeeded_indexes.with_indexes(new_indexes)
            text = str(self.succeeded_indexes)
            if text != st.get("completedIndexes", ""):
                self.needs_flush = True
            st["succeeded"] = self.succeeded_indexes.total()
            if text:
                st["completedIndexes"] = text
            else:
                st.pop("completedIndexes", None)
            failed_text = str(self.failed_indexes) if self.failed_indexes is not None else None
            if failed_text != st.get("failedIndexes"):
                self.needs_flush = True
            if failed_text is None:
                st.pop("failedIndexes", None)
            else:
                st["failedIndexes"] = failed_text
        conditions = st.setdefault("conditions", [])
        if fc is not None and fc["type"] == FAILURE_TARGET:
            conditions.append(fc)
            self.needs_flush = True
            fc = new_condition(FAILED, "True", fc["reason"], fc["message"], self.now)
        elif fc is not None and fc["type"] == SUCCESS_CRITERIA_MET:
            if not condition_true(job, SUCCESS_CRITERIA_MET):
                conditions.append(fc)
                self.needs_flush = True
            fc = new_condition(COMPLETE, "True", fc.get("reason", ""), fc.get("message", ""), self.now)
        if not conditions:
            st.pop("conditions", None)
        self.finished_condition = fc
        flush, self.needs_flush = self.needs_flush, False
        return Tracking(flush, remove)

    def _clean_uncounted(self, with_finalizer: set[str]) -> bool:
        """Pods whose finalizer is gone move from the uncounted lists into the counters."""
        unc = self.status["uncountedTerminatedPods"]
        changed = False
        for key, counter in (("succeeded", "succeeded"), ("failed", "failed")):
            listed = list(unc.get(key) or [])
            keep = [u for u in listed if u in with_finalizer]
            if len(keep) != len(listed):
                changed = True
                self.status[counter] = int(self.status.get(counter, 0)) + len(listed) - len(keep)
                unc[key] = keep
        _compact_uncounted(unc)
        return changed

    # ---------------------------------------------------------- step 3

    def after_finalizers_removed(self, removed: set[str]) -> bool:
        """Count the pods whose finalizer went; finish the Job if nothing is left in flight.
        Returns whether the status must be written (again)."""
        with_finalizer = self.with_finalizer() - removed
        flush = self._clean_uncounted(with_finalizer)
        if not self.reached_max_uncounted and self._enact_finished():
            flush = True
        return flush

    def _enact_finished(self) -> bool:
        fc = self.finished_condition
        if fc is None:
            return False
        unc = self.status["uncountedTerminatedPods"]
        if unc.get("succeeded") or unc.get("failed"):
            return False
        if self.terminating > 0:
            return False
        conditions = self.status.setdefault("conditions", [])
        ensure_condition(conditions, fc["type"], "True", fc.get("reason", ""), fc.get("message", ""), self.now)
        if fc["type"] == COMPLETE:
            self.status["completionTime"] = fmt_time(self.now)
        self.finished_now = True
        return True

    def finished_events(self) -> list[tuple[str, str, str]]:
        """The Events upstream records when the Job has just finished."""
        fc = self.finished_condition
        if not self.finished_now or fc is None:
            return []
        if fc["type"] == COMPLETE:
            out = []
            n = completions(self.job)
            if n is not None and int(self.status.get("succeeded", 0)) > n:
                out.append(("Warning", "TooManySucceededPods",
                            "Too many succeeded pods running after completion count reached"))
            return out + [("Normal", "Completed", "Job completed")]
        return [("Warning", fc.get("reason", ""), fc.get("message", ""))]


def _compact_uncounted(unc: Obj) -> None:
    """Empty lists are omitted, as Go's omitempty writes them."""
    for key in ("succeeded", "failed"):
        if not unc.get(key):
            unc.pop(key, None)


def _sooner(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)
