"""Defaulting of batch/v1 Jobs and CronJobs, and the Job's generated selector.

Upstream's SetDefaults_Job / SetDefaults_CronJob (pkg/apis/batch/v1/defaults.go,
v1.32): completions and parallelism 1/1 when both are unset, backoffLimit 6
(MaxInt32 with a per-index limit), completionMode NonIndexed, suspend false,
podReplacementPolicy TerminatingOrFailed (Failed with a podFailurePolicy),
onPodConditions status True; a CronJob gets concurrencyPolicy Allow, suspend
false and history limits 3 succeeded / 1 failed.  Pod templates get the pod
spec defaults of defaults.py.

The Job strategy then generates the selector (unless `manualSelector`):
the template gets `batch.kubernetes.io/controller-uid` and
`batch.kubernetes.io/job-name` (and their legacy unprefixed twins), and the
selector matches the controller UID.  A Job without labels of its own shows
its template's, as upstream's defaulting on read makes it.  Idempotent, so
it runs on updates too (the UID never changes).
"""

from __future__ import annotations

from typing import Any

from . import defaults as base

Obj = dict[str, Any]

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
MAX_INT32 = 2**31 - 1


def _dict(parent: Obj, key: str) -> Obj:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _template_spec(job_spec: Obj) -> None:
    template = job_spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        base.default_pod_spec(template["spec"])


def job_spec(spec: Obj) -> None:
    """SetDefaults_Job's fields of the spec."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    policy = spec.get("podFailurePolicy")
    if isinstance(policy, dict):
        for rule in policy.get("rules") or []:
            for pattern in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else []:
                if isinstance(pattern, dict) and not pattern.get("status"):
                    pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
    _template_spec(spec)


def generate_selector(job: Obj) -> None:
    """upstream generateSelector: label the template with the Job's UID and name, select the UID."""
    meta, spec = _dict(job, "metadata"), _dict(job, "spec")
    if spec.get("manualSelector") is True or not meta.get("uid"):
        return
    template = _dict(spec, "template")
    labels = _dict(_dict(template, "metadata"), "labels")
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, meta["uid"])
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = _dict(selector, "matchLabels")
    match.setdefault(CONTROLLER_UID, meta["uid"])


def job(obj: Obj) -> None:
    job_spec(_dict(obj, "spec"))
    generate_selector(obj)
    meta = _dict(obj, "metadata")
    template_labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels")
    if template_labels and not meta.get("labels"):
        meta["labels"] = dict(template_labels)


def cronjob(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    template = spec.get("jobTemplate")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _template_spec(template["spec"])
