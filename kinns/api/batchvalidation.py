"""Validation of batch/v1 Jobs and CronJobs, in upstream's words.

Mirrors pkg/apis/batch/validation (v1.32) for what users run into: the
template's restartPolicy (`Required value: valid values: "OnFailure",
"Never"` when left to default to Always), negative counts (`must be greater
than or equal to 0`), completionMode, Indexed Jobs without completions, the
per-index limits, podFailurePolicy and successPolicy rules, the generated
selector and its labels, what may not change on update, and a CronJob's
schedule (robfig/cron's own parse error, no `TZ=`/`CRON_TZ=`), timeZone,
concurrencyPolicy, history limits and its 52-character name.

Shared checks (metadata, pod templates, label selectors, Go-style value
rendering) come from validation.py, looked up when called so the two
modules may import each other.
"""

from __future__ import annotations

import re
from typing import Any

from . import cron
from . import validation as v
from .batchdefaults import CONTROLLER_UID, JOB_NAME, LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME
from .errors import DUPLICATE, INVALID, NOT_SUPPORTED, REQUIRED, TOO_MANY, FieldError

Obj = dict[str, Any]
Errs = list[FieldError]

MAX_PARALLELISM_INDEXED = 100_000
MAX_FAILED_INDEXES = 100_000
COMPLETIONS_SOFT_LIMIT = 100_000
PARALLELISM_HIGH_COMPLETIONS = 10_000
MAX_POD_FAILURE_POLICY_RULES = 20
MAX_EXIT_CODE_VALUES = 255
MAX_POD_CONDITION_PATTERNS = 20
MAX_SUCCESS_POLICY_RULES = 20
POLICY_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
EXIT_CODE_OPERATORS = ("In", "NotIn")
CONDITION_STATUSES = ("False", "True", "Unknown")
_TZ_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _go_strings(values: Any) -> str:
    """`["a" "b"]`, as Go's %q of a []string."""
    return "[" + " ".join(f'"{s}"' for s in values) + "]"


def _has_label(template: Obj, key: str, want: str) -> Errs:
    """ValidateHasLabel: the template must carry `key` = `want`."""
    path = f"spec.template.metadata.labels[{key}]"
    labels = _d(_d(template.get("metadata")).get("labels"))
    if key not in labels:
        return [FieldError(REQUIRED, path, detail=f"must be '{want}'")]
    if labels[key] != want:
        return [FieldError(INVALID, path, labels[key], f"must be '{want}'")]
    return []


def _generated_selector(job: Obj) -> Errs:
    """validateGeneratedSelector: the labels and selector the Job strategy generated are intact."""
    spec, meta = _d(job.get("spec")), _d(job.get("metadata"))
    if spec.get("manualSelector") is True or not isinstance(spec.get("selector"), dict):
        return []
    errs: Errs = []
    uid, name = str(meta.get("uid", "")), str(meta.get("name", ""))
    if not uid:
        errs.append(FieldError(REQUIRED, "metadata.uid"))
    template = _d(spec.get("template"))
    for key, want in ((LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name), (CONTROLLER_UID, uid), (JOB_NAME, name)):
        errs += _has_label(template, key, want)
    expected = {CONTROLLER_UID: uid, JOB_NAME: name, LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name}
    if not v.selector_matches(spec["selector"], expected):
        errs.append(v._raw(INVALID, "spec.selector", v.go_label_selector(spec["selector"]),
                           "`selector` not auto-generated"))
    return errs


def _pod_failure_policy(spec: Obj, path: str) -> Errs:
    policy = _d(spec.get("podFailurePolicy"))
    rules = [r for r in policy.get("rules") or [] if isinstance(r, dict)]
    errs: Errs = []
    if len(rules) > MAX_POD_FAILURE_POLICY_RULES:
        errs.append(FieldError(TOO_MANY, f"{path}.rules", len(rules),
                               f"must have at most {MAX_POD_FAILURE_POLICY_RULES} items"))
    tspec = _d(_d(spec.get("template")).get("spec"))
    names = {c.get("name") for key in ("containers", "initContainers") for c in tspec.get(key) or []
             if isinstance(c, dict)}
    for i, rule in enumerate(rules):
        p = f"{path}.rules[{i}]"
        action = rule.get("action")
        if not action:
            errs.append(FieldError(REQUIRED, f"{p}.action", detail=f"valid values: {_go_strings(POLICY_ACTIONS)}"))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errs.append(FieldError(INVALID, f"{p}.action", action, "requires the backoffLimitPerIndex to be set"))
        elif action not in POLICY_ACTIONS:
            errs.append(v._not_supported(f"{p}.action", action, POLICY_ACTIONS))
        on_codes, on_conds = rule.get("onExitCodes"), rule.get("onPodConditions") or []
        if isinstance(on_codes, dict):
            errs += _on_exit_codes(on_codes, f"{p}.onExitCodes", names)
        for j, pattern in enumerate(on_conds if len(on_conds) <= MAX_POD_CONDITION_PATTERNS else []):
            pp = f"{p}.onPodConditions[{j}]"
            errs += v._each(f"{pp}.type", pattern.get("type", ""), v.is_qualified_name(str(pattern.get("type", ""))))
            status = pattern.get("status")
            if not status:
                errs.append(FieldError(REQUIRED, f"{pp}.status", detail=f"valid values: {_go_strings(CONDITION_STATUSES)}"))
            elif status not in CONDITION_STATUSES:
                errs.append(v._not_supported(f"{pp}.status", status, CONDITION_STATUSES))
        if len(on_conds) > MAX_POD_CONDITION_PATTERNS:
            errs.append(FieldError(TOO_MANY, f"{p}.onPodConditions", len(on_conds),
                                   f"must have at most {MAX_POD_CONDITION_PATTERNS} items"))
        if on_codes is not None and on_conds:
            errs.append(FieldError(INVALID, p, detail="specifying both OnExitCodes and OnPodConditions is not supported"))
        if on_codes is None and not on_conds:
            errs.append(FieldError(INVALID, p, detail="specifying one of OnExitCodes and OnPodConditions is required"))
    return errs


def _on_exit_codes(req: Obj, path: str, names: set[Any]) -> Errs:
    errs: Errs = []
    op = req.get("operator")
    if not op:
        errs.append(FieldError(REQUIRED, f"{path}.operator", detail=f"valid values: {_go_strings(EXIT_CODE_OPERATORS)}"))
    elif op not in EXIT_CODE_OPERATORS:
        errs.append(v._not_supported(f"{path}.operator", op, EXIT_CODE_OPERATORS))
    if req.get("containerName") is not None and req["containerName"] not in names:
        errs.append(FieldError(INVALID, f"{path}.containerName", req["containerName"],
                               "must be one of the container or initContainer names in the pod template"))
    values = req.get("values") or []
    if not values:
        errs.append(v._raw(INVALID, f"{path}.values", "[]int32(nil)" if req.get("values") is None else "[]int32{}",
                           "at least one value is required"))
    elif len(values) > MAX_EXIT_CODE_VALUES:
        errs.append(FieldError(TOO_MANY, f"{path}.values", len(values), f"must have at most {MAX_EXIT_CODE_VALUES} items"))
    seen: set[Any] = set()
    for j, code in enumerate(values):
        if op == "In" and code == 0:
            errs.append(FieldError(INVALID, f"{path}.values[{j}]", code, "must not be 0 for the In operator"))
        if code in seen:
            errs.append(FieldError(DUPLICATE, f"{path}.values[{j}]", code))
        seen.add(code)
    if any(a > b for a, b in zip(values, values[1:])):
        errs.append(v._raw(INVALID, f"{path}.values", "[]int32{" + ", ".join(str(c) for c in values) + "}",
                           "must be ordered"))
    return errs


def _atoi(text: str) -> int:
    """Go's strconv.Atoi: an optional sign and decimal digits, nothing else."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    return int(text)


def validate_format(text: str, completions: int) -> tuple[int, str | None]:
    """upstream validateIndexesFormat: (number of indexes, error message or None)."""
    if not text:
        return 0, None
    last: int | None = None
    total = 0
    for part in text.split(","):
        limits = part.split("-")
        if len(limits) > 2:
            return 0, (f'the fragment "{part}" violates the requirement that an index interval can have at most '
                       "two parts separated by '-'")
        bounds = []
        for limit in limits:
            try:
                value = _atoi(limit)
            except ValueError:
                return 0, f'cannot convert string to integer for index: "{limit}"'
            if value >= completions:
                return 0, f'too large index: "{limit}"'
            bounds.append(value)
        first, end = bounds[0], bounds[-1]
        if len(bounds) == 2 and first >= end:
            return 0, f"non-increasing order, previous: {first}, current: {end}"
        if last is not None and last >= first:
            return 0, f"non-increasing order, previous: {last}, current: {first}"
        total += end - first + 1
        last = end
    return total, None


def _success_policy(spec: Obj, path: str) -> Errs:
    rules = [r for r in _d(spec.get("successPolicy")).get("rules") or [] if isinstance(r, dict)]
    errs: Errs = []
    if not rules:
        errs.append(FieldError(REQUIRED, f"{path}.rules",
                               detail="at least one rules must be specified when the successPolicy is specified"))
    if len(rules) > MAX_SUCCESS_POLICY_RULES:
        errs.append(FieldError(TOO_MANY, f"{path}.rules", len(rules), f"must have at most {MAX_SUCCESS_POLICY_RULES} items"))
    completions = _int(spec.get("completions")) or 0
    for i, rule in enumerate(rules):
        p = f"{path}.rules[{i}]"
        count, indexes = _int(rule.get("succeededCount")), rule.get("succeededIndexes")
        if rule.get("succeededCount") is None and indexes is None:
            errs.append(FieldError(REQUIRED, p, detail="at least one of succeededCount or succeededIndexes must be specified"))
        total = 0
        if indexes is not None:
            total, err = validate_format(str(indexes), completions)
            if err:
                errs.append(FieldError(INVALID, f"{p}.succeededIndexes", indexes, f"error parsing succeededIndexes: {err}"))
        if count is not None:
            errs += v._non_negative(f"{p}.succeededCount", count)
            if count > completions:
                errs.append(FieldError(INVALID, f"{p}.succeededCount", count,
                                       f"must be less than or equal to {completions} (the number of specified completions)"))
            if indexes is not None and count > total:
                errs.append(FieldError(INVALID, f"{p}.succeededCount", count, f"must be less than or equal to {total} "
                                       "(the number of indexes in the specified succeededIndexes field)"))
    return errs


def job_spec(spec: Obj, path: str = "spec") -> Errs:
    """validateJobSpec: the checks a Job and a CronJob's jobTemplate share."""
    errs: Errs = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                "backoffLimitPerIndex", "maxFailedIndexes"):
        errs += v._non_negative(f"{path}.{key}", spec.get(key))
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(FieldError(REQUIRED, f"{path}.backoffLimitPerIndex", detail="when maxFailedIndexes is specified"))
    mode = spec.get("completionMode")
    completions, parallelism = _int(spec.get("completions")), _int(spec.get("parallelism"))
    max_failed = _int(spec.get("maxFailedIndexes"))
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(v._not_supported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed")))
        if mode == "Indexed":
            if spec.get("completions") is None:
                errs.append(FieldError(REQUIRED, f"{path}.completions", detail="when completion mode is Indexed"))
            if parallelism is not None and parallelism > MAX_PARALLELISM_INDEXED:
                errs.append(FieldError(INVALID, f"{path}.parallelism", parallelism,
                                       f"must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode "
                                       "is Indexed"))
            if completions is not None and max_failed is not None and max_failed > completions:
                errs.append(FieldError(INVALID, f"{path}.maxFailedIndexes", max_failed,
                                       "must be less than or equal to completions"))
            if max_failed is not None and max_failed > MAX_FAILED_INDEXES:
                errs.append(FieldError(INVALID, f"{path}.maxFailedIndexes", max_failed,
                                       f"must be less than or equal to {MAX_FAILED_INDEXES}"))
            if (completions or 0) > COMPLETIONS_SOFT_LIMIT and spec.get("backoffLimitPerIndex") is not None:
                if max_failed is None:
                    errs.append(FieldError(REQUIRED, f"{path}.maxFailedIndexes",
                                           detail=f"must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"))
                if (parallelism or 0) > PARALLELISM_HIGH_COMPLETIONS:
                    errs.append(FieldError(INVALID, f"{path}.parallelism", parallelism,
                                           f"must be less than or equal to {PARALLELISM_HIGH_COMPLETIONS} when "
                                           f"completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff "
                                           "limit per index"))
    if mode in (None, "NonIndexed"):
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                errs.append(FieldError(INVALID, f"{path}.{key}", spec[key], "requires indexed completion mode"))
    if spec.get("podFailurePolicy") is not None:
        errs += _pod_failure_policy(spec, f"{path}.podFailurePolicy")
    if spec.get("successPolicy") is not None:
        if mode != "Indexed":
            errs.append(v._raw(INVALID, f"{path}.successPolicy", "batch.SuccessPolicy{...}",
                               "requires indexed completion mode"))
        else:
            errs += _success_policy(spec, f"{path}.successPolicy")
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None and replacement != "Failed":
            errs.append(v._not_supported(f"{path}.podReplacementPolicy", replacement, ("Failed",)))
        elif replacement not in ("Failed", "TerminatingOrFailed"):
            errs.append(v._not_supported(f"{path}.podReplacementPolicy", replacement, ("Failed", "TerminatingOrFailed")))
    if not isinstance(spec.get("template"), dict):
        errs.append(FieldError(REQUIRED, f"{path}.template"))
    errs += v.validate_pod_template(spec.get("template"), f"{path}.template")
    restart = _d(_d(spec.get("template")).get("spec")).get("restartPolicy")
    rpath = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", "", None):
        errs.append(FieldError(REQUIRED, rpath, detail='valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        errs.append(v._not_supported(rpath, restart, ("OnFailure", "Never")))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        errs.append(FieldError(INVALID, rpath, restart, 'only "Never" is supported when podFailurePolicy is specified'))
    return errs


def _job_spec_with_selector(spec: Obj) -> Errs:
    """ValidateJobSpec: validateJobSpec plus a required, well-formed selector matching the template."""
    errs = job_spec(spec)
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        return errs + [FieldError(REQUIRED, "spec.selector")]
    errs += v.validate_label_selector(sel, "spec.selector")
    labels = _d(_d(spec.get("template")).get("metadata")).get("labels")
    if not v.selector_matches(sel, labels):
        errs.append(v._raw(INVALID, "spec.template.metadata.labels", v.go_string_map(labels),
                           "`selector` does not match template `labels`"))
    return errs


def validate_job(job: Obj) -> Errs:
    spec, meta = _d(job.get("spec")), _d(job.get("metadata"))
    errs = _generated_selector(job) + _job_spec_with_selector(spec)
    completions = _int(spec.get("completions"))
    if spec.get("completionMode") == "Indexed" and completions and completions > 0:
        hostname = f"{meta.get('name', '')}-{completions - 1}"
        if v.is_dns1123_label(hostname):
            errs.append(FieldError(INVALID, "metadata.name", meta.get("name", ""),
                                   f"will not able to create pod with invalid DNS label: {hostname}"))
    return errs


def _immutable(path: str, new: Any, old: Any, rendered: str | None = None) -> Errs:
    if new == old:
        return []
    if rendered is not None:
        return [v._raw(INVALID, path, rendered, v.IMMUTABLE)]
    return [FieldError(INVALID, path, new, v.IMMUTABLE)]


def _scheduling_view(template: Obj) -> Obj:
    """The template without the scheduling directives a suspended, never-started Job may change."""
    t = dict(template)
    t["metadata"] = {k: val for k, val in _d(template.get("metadata")).items() if k not in ("labels", "annotations")}
    tspec = dict(_d(template.get("spec")))
    for key in ("nodeSelector", "tolerations", "schedulingGates"):
        tspec.pop(key, None)
    affinity = dict(_d(tspec.get("affinity")))
    affinity.pop("nodeAffinity", None)
    if affinity:
        tspec["affinity"] = affinity
    else:
        tspec.pop("affinity", None)
    t["spec"] = tspec
    return t


def validate_job_update(new: Obj, old: Obj) -> Errs:
    """ValidateJobSpecUpdate: what a Job's spec may not change."""
    nspec, ospec = _d(new.get("spec")), _d(old.get("spec"))
    errs: Errs = []
    if nspec.get("completions") != ospec.get("completions"):
        if nspec.get("completionMode") != "Indexed":
            errs += _immutable("spec.completions", nspec.get("completions"), ospec.get("completions"))
        elif nspec.get("completions") is not None and nspec.get("completions") != nspec.get("parallelism"):
            errs.append(FieldError(INVALID, "spec.completions", nspec["completions"],
                                   "can only be modified in tandem with spec.parallelism"))
    if nspec.get("selector") != ospec.get("selector"):
        errs += _immutable("spec.selector", 1, 0, v.go_label_selector(nspec.get("selector")))
    ntemplate, otemplate = _d(nspec.get("template")), _d(ospec.get("template"))
    # Scheduling directives stay mutable while a suspended Job has never started (upstream's
    # AllowMutableSchedulingDirectives), so queueing controllers can place it.
    mutable = bool(nspec.get("suspend")) and not _d(old.get("status")).get("startTime")
    if mutable:
        ntemplate, otemplate = _scheduling_view(ntemplate), _scheduling_view(otemplate)
    if ntemplate != otemplate:
        errs.append(v._raw(INVALID, "spec.template", "core.PodTemplateSpec{...}", v.IMMUTABLE))
    for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"):
        if nspec.get(key) != ospec.get(key):
            errs += _immutable(f"spec.{key}", nspec.get(key), ospec.get(key),
                               None if not isinstance(nspec.get(key), dict) else "{...}")
    return errs


# ------------------------------------------------------------------ CronJob


def _time_zone(tz: Any, path: str) -> Errs:
    if tz is None:
        return []
    if tz == "":
        return [FieldError(INVALID, path, tz, "timeZone must be nil or non-empty string")]
    for part in str(tz).split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [FieldError(INVALID, path, tz, f"unknown time zone {tz}")]
    errs: Errs = []
    if str(tz).lower() == "local":
        errs.append(FieldError(INVALID, path, tz,
                               "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
    try:
        cron.load_zone(str(tz))
    except cron.CronError as exc:
        errs.append(FieldError(INVALID, path, tz, str(exc)))
    return errs


def _schedule(schedule: str, allow_tz: bool, tz: Any) -> Errs:
    errs: Errs = []
    try:
        cron.parse(schedule)
    except cron.CronError as exc:
        errs.append(FieldError(INVALID, "spec.schedule", schedule, str(exc)))
    if allow_tz and "TZ" in schedule and tz is not None:
        errs.append(FieldError(INVALID, "spec.schedule", schedule,
                               "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        errs.append(FieldError(INVALID, "spec.schedule", schedule,
                               "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def _cronjob_spec(spec: Obj) -> Errs:
    """validateCronJobSpec.  Upstream lets an update keep a `TZ=` schedule or a name over 52
    characters that an older release accepted; kinns never accepted either, so the create
    rules serve updates too."""
    errs: Errs = []
    schedule = spec.get("schedule")
    if not schedule:
        errs.append(FieldError(REQUIRED, "spec.schedule"))
    else:
        errs += _schedule(str(schedule), False, spec.get("timeZone"))
    errs += v._non_negative("spec.startingDeadlineSeconds", spec.get("startingDeadlineSeconds"))
    errs += _time_zone(spec.get("timeZone"), "spec.timeZone")
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(FieldError(REQUIRED, "spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.append(v._not_supported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace")))
    template_spec = _d(_d(spec.get("jobTemplate")).get("spec"))
    errs += job_spec(template_spec, "spec.jobTemplate.spec")
    if template_spec.get("selector") is not None:
        errs.append(v._raw(INVALID, "spec.jobTemplate.spec.selector", v.go_label_selector(template_spec["selector"]),
                           "`selector` will be auto-generated"))
    if template_spec.get("manualSelector") is True:
        errs.append(FieldError(NOT_SUPPORTED, "spec.jobTemplate.spec.manualSelector", True,
                               'supported values: "nil", "false"'))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs += v._non_negative(f"spec.{key}", spec.get(key))
    return errs


def validate_cronjob(cj: Obj) -> Errs:
    errs = _cronjob_spec(_d(cj.get("spec")))
    name = str(_d(cj.get("metadata")).get("name", ""))
    if len(name) > 52:
        errs.append(FieldError(INVALID, "metadata.name", name, "must be no more than 52 characters"))
    return errs
