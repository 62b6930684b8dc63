"""batch/v1 in the API server: defaulting, the generated selector, validation messages, printer cells."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from kinns.api import defaults, objects, tables, validation
from kinns.api.resources import REGISTRY

UTC = dt.timezone.utc


def created(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server would store for a create: metadata filled, defaults applied."""
    out = objects.prepare_create(REGISTRY.by_kind("batch/v1", kind), obj, "default")  # type: ignore[arg-type]
    defaults.apply_defaults(kind, out)
    return out


def job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "pi", "image": "perl"}]}}, **spec}}


def cronjob(schedule: str = "*/5 * * * *", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": schedule, **spec, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}


def errors(kind: str, obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in validation.validate(kind, obj)]


def test_job_defaults_and_generated_selector() -> None:
    j = created("Job", job())
    uid = j["metadata"]["uid"]
    s = j["spec"]
    assert (s["completions"], s["parallelism"], s["backoffLimit"], s["completionMode"], s["suspend"],
            s["podReplacementPolicy"]) == (1, 1, 6, "NonIndexed", False, "TerminatingOrFailed")
    assert s["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    want = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
            "controller-uid": uid, "job-name": "pi"}
    assert s["template"]["metadata"]["labels"] == want and j["metadata"]["labels"] == want
    assert j["metadata"]["generation"] == 1 and j["status"] == {}
    assert errors("Job", j) == []


def test_job_defaults_that_depend_on_other_fields() -> None:
    j = created("Job", job(parallelism=3, backoffLimitPerIndex=1, completionMode="Indexed", completions=3,
                           podFailurePolicy={"rules": [{"action": "Ignore",
                                                        "onPodConditions": [{"type": "DisruptionTarget"}]}]}))
    s = j["spec"]
    assert s["backoffLimit"] == 2**31 - 1 and s["podReplacementPolicy"] == "Failed"
    assert s["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    only_parallelism = created("Job", job(parallelism=2))["spec"]
    assert "completions" not in only_parallelism and only_parallelism["parallelism"] == 2


@pytest.mark.parametrize("spec, message", [
    ({"backoffLimit": -1}, "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
    ({"completionMode": "Sometimes"},
     'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'),
    ({"completionMode": "Indexed", "completions": None, "parallelism": 2},
     "spec.completions: Required value: when completion mode is Indexed"),
    ({"backoffLimitPerIndex": 1}, "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"),
    ({"successPolicy": {"rules": [{"succeededCount": 1}]}},
     "spec.successPolicy: Invalid value: batch.SuccessPolicy{...}: requires indexed completion mode"),
    ({"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]}},
     "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator"),
    ({"podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}]}},
     'spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
])
def test_job_spec_errors_read_as_upstream(spec: dict[str, Any], message: str) -> None:
    assert message in errors("Job", created("Job", job(**spec)))


def test_restart_policy_must_be_never_or_on_failure() -> None:
    j = job()
    del j["spec"]["template"]["spec"]["restartPolicy"]   # defaults to Always
    assert errors("Job", created("Job", j)) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']


def test_a_broken_generated_label_is_refused() -> None:
    j = job()
    j["spec"]["template"]["metadata"] = {"labels": {"job-name": "other"}}
    assert "spec.template.metadata.labels[job-name]: Invalid value: \"other\": must be 'pi'" in errors(
        "Job", created("Job", j))


def test_job_update_keeps_the_template_selector_and_completions() -> None:
    old = created("Job", job())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5"
    new["spec"]["completions"] = 2
    msgs = [str(e) for e in validation.validate_update("Job", new, old)]
    assert "spec.completions: Invalid value: 2: field is immutable" in msgs
    assert any(m.startswith("spec.template: Invalid value: ") and m.endswith("field is immutable") for m in msgs)
    grown = copy.deepcopy(old)
    grown["spec"]["parallelism"] = 4
    assert validation.validate_update("Job", grown, old) == []


def test_cronjob_defaults_and_errors() -> None:
    cj = created("CronJob", cronjob())
    s = cj["spec"]
    assert (s["concurrencyPolicy"], s["suspend"], s["successfulJobsHistoryLimit"], s["failedJobsHistoryLimit"]) == (
        "Allow", False, 3, 1)
    assert errors("CronJob", cj) == []
    assert errors("CronJob", created("CronJob", cronjob("61 * * * *"))) == [
        'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']
    assert errors("CronJob", created("CronJob", cronjob("TZ=UTC */5 * * * *"))) == [
        'spec.schedule: Invalid value: "TZ=UTC */5 * * * *": cannot use TZ or CRON_TZ in schedule, '
        "use timeZone field instead"]
    assert errors("CronJob", created("CronJob", cronjob(timeZone="Europe/Pariss"))) == [
        'spec.timeZone: Invalid value: "Europe/Pariss": unknown time zone Europe/Pariss']
    assert errors("CronJob", created("CronJob", cronjob(concurrencyPolicy="Sometimes"))) == [
        'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"']
    long = cronjob()
    long["metadata"]["name"] = "c" * 53
    assert errors("CronJob", created("CronJob", long)) == [
        f'metadata.name: Invalid value: "{"c" * 53}": must be no more than 52 characters']


def test_job_and_cronjob_rows() -> None:
    now = dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
    j = created("Job", job(parallelism=2, completions=None))
    j["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    j["status"] = {"startTime": "2024-01-01T00:00:00Z", "conditions": [{"type": "FailureTarget", "status": "True"}]}
    cells = tables.row_cells("Job", j, now)
    assert cells[:5] == ["pi", "FailureTarget", "0/1 of 2", "10m", "10m"]
    assert [c["name"] for c in tables.column_definitions("Job")] == [
        "Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
    cj = created("CronJob", cronjob(timeZone="Etc/UTC"))
    cj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    cj["status"] = {"active": [{"name": "x"}], "lastScheduleTime": "2024-01-01T00:05:00Z"}
    assert tables.row_cells("CronJob", cj, now)[:7] == ["tick", "*/5 * * * *", "Etc/UTC", "False", 1, "5m", "10m"]
