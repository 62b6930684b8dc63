"""The Job controller's decisions (job_plan.JobSync), step by step, against upstream's behaviour."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from kinns.api import batchdefaults
from kinns.controllers import job_plan as plan
from kinns.controllers.job_intervals import Intervals

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
_uids = itertools.count()


def ts(seconds_ago: float = 0) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_job(**spec: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "work", "namespace": "default", "uid": "job-uid", "creationTimestamp": ts(60)},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "busybox"}]}}, **spec},
        "status": {}}
    batchdefaults.job(job)
    return job


def make_pod(job: dict[str, Any], phase: str = "Running", *, index: int | None = None, exit_code: int = 1,
             finished_ago: float = 30, finalizer: bool = True, ready: bool = False, **meta: Any) -> dict[str, Any]:
    pod = plan.new_pod(job, plan.UNKNOWN_INDEX if index is None else index)
    n = next(_uids)
    pod["metadata"].update({"name": f"work-{n}", "uid": f"pod-{n}", "creationTimestamp": ts(100), **meta})
    if not finalizer:
        pod["metadata"]["finalizers"] = []
    status: dict[str, Any] = {"phase": phase}
    if phase in ("Succeeded", "Failed"):
        code = 0 if phase == "Succeeded" else exit_code
        status["containerStatuses"] = [{"name": "c", "state": {"terminated": {
            "exitCode": code, "finishedAt": ts(finished_ago)}}}]
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    pod["status"] = status
    return pod


def run(job: dict[str, Any], pods: list[dict[str, Any]], **kw: Any) -> tuple[plan.JobSync, plan.Decision, plan.Tracking]:
    """One sync with every write succeeding: decide, track, remove the finalizers."""
    sync = plan.JobSync(job, pods, NOW, **kw)
    decision = sync.decide()
    tracking = sync.track()
    sync.after_finalizers_removed({plan.uid(p) for p in tracking.remove_finalizers})
    return sync, decision, tracking


def conditions(sync: plan.JobSync) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in sync.status.get("conditions", [])]


def test_a_new_job_gets_its_parallelism_of_tracked_owned_pods() -> None:
    job = make_job(parallelism=2, completions=5)
    sync, d, _ = run(job, [])
    assert len(d.create) == 2
    pod = d.create[0]
    assert pod["metadata"]["generateName"] == "work-"
    assert pod["metadata"]["finalizers"] == [plan.TRACKING_FINALIZER]
    labels = pod["metadata"]["labels"]
    assert labels[plan.CONTROLLER_UID] == "job-uid" and labels[plan.JOB_NAME] == "work"
    assert labels["controller-uid"] == "job-uid" and labels["job-name"] == "work"
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == ("Job", "job-uid", True, True)
    assert sync.status["active"] == 2 and sync.status["startTime"] == ts()
    assert sync.status["ready"] == 0 and sync.status["terminating"] == 0


def test_indexed_pods_carry_their_index_everywhere() -> None:
    job = make_job(completionMode="Indexed", completions=3, parallelism=2)
    _, d, _ = run(job, [make_pod(job, "Running", index=0)])
    assert len(d.create) == 1
    pod = d.create[0]
    assert pod["metadata"]["generateName"] == "work-1-"
    assert pod["metadata"]["annotations"][plan.COMPLETION_INDEX] == "1"
    assert pod["metadata"]["labels"][plan.COMPLETION_INDEX] == "1"
    assert pod["spec"]["hostname"] == "work-1"
    env = pod["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}}]


def test_a_succeeded_pod_is_counted_once_then_the_job_completes() -> None:
    job = make_job()
    done = make_pod(job, "Succeeded")
    sync = plan.JobSync(job, [done], NOW)
    sync.decide()
    tracking = sync.track()
    # First write: the pod listed as uncounted and the interim condition, before its finalizer goes.
    assert tracking.flush and tracking.remove_finalizers == [done]
    assert sync.status["uncountedTerminatedPods"] == {"succeeded": [plan.uid(done)]}
    assert conditions(sync) == [("SuccessCriteriaMet", "True", "CompletionsReached")]
    assert sync.after_finalizers_removed({plan.uid(done)})
    assert sync.status["succeeded"] == 1 and sync.status["uncountedTerminatedPods"] == {}
    assert conditions(sync) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                ("Complete", "True", "CompletionsReached")]
    assert sync.status["completionTime"] == ts()
    assert sync.finished_events() == [("Normal", "Completed", "Job completed")]


def test_a_pod_whose_finalizer_could_not_be_removed_stays_uncounted() -> None:
    job = make_job()
    done = make_pod(job, "Succeeded")
    sync = plan.JobSync(job, [done], NOW)
    sync.decide()
    sync.track()
    assert not sync.after_finalizers_removed(set())
    assert sync.status["uncountedTerminatedPods"] == {"succeeded": [plan.uid(done)]}
    assert "succeeded" not in sync.status and not plan.is_finished(sync.job)


def test_failures_beyond_the_backoff_limit_fail_the_job_and_stop_its_pods() -> None:
    job = make_job(backoffLimit=1, parallelism=2, completions=2)
    running = make_pod(job, "Running", ready=True)
    failed = [make_pod(job, "Failed"), make_pod(job, "Failed")]
    sync, d, tracking = run(job, [running, *failed])
    assert d.delete == [running] and not d.create
    assert conditions(sync) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    # The pod stopped by the failure counts as failed too, as upstream.
    assert sync.status["failed"] == 3 and sync.status["terminating"] == 1
    # The terminal condition waits for the deleted pod to be gone.
    job2 = {**sync.job, "status": sync.status}
    gone = dict(running, metadata={**running["metadata"], "finalizers": []}, status={"phase": "Failed"})
    sync2, _, _ = run(job2, [gone, *failed])
    assert conditions(sync2)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    assert sync2.status["conditions"][-1]["message"] == "Job has reached the specified backoff limit"
    assert sync2.finished_events() == [("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]


def test_replacement_pods_wait_for_the_failure_back_off() -> None:
    job = make_job(backoffLimit=6)
    first = make_pod(job, "Failed", finished_ago=3)
    sync = plan.JobSync(job, [first], NOW)
    d = sync.decide()
    assert not d.create and d.requeue_after == pytest.approx(7)
    assert d.backoff == plan.BackoffRecord(1, NOW - dt.timedelta(seconds=3))
    # A second failure doubles the wait: 20 s after the last one.
    again = plan.JobSync(job, [make_pod(job, "Failed", finished_ago=5)], NOW, backoff=d.backoff)
    d2 = again.decide()
    assert d2.backoff.failures_after_last_success == 2 and d2.requeue_after == pytest.approx(15)
    later = plan.JobSync(job, [make_pod(job, "Failed", finished_ago=11)], NOW)
    assert len(later.decide().create) == 1


def test_back_off_doubles_up_to_ten_minutes() -> None:
    assert plan.remaining_backoff(1, NOW, NOW) == 10
    assert plan.remaining_backoff(4, NOW, NOW) == 80
    assert plan.remaining_backoff(30, NOW, NOW) == 600
    assert plan.remaining_backoff(0, None, NOW) == 0


def test_restart_policy_on_failure_counts_container_restarts() -> None:
    job = make_job(backoffLimit=2)
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    pod = make_pod(job, "Running")
    pod["status"]["containerStatuses"] = [{"name": "c", "restartCount": 2, "state": {"running": {}}}]
    sync, d, _ = run(job, [pod])
    assert conditions(sync) == [("FailureTarget", "True", "BackoffLimitExceeded")] and d.delete == [pod]


def test_pod_failure_policy_fail_job_names_the_container_and_rule() -> None:
    job = make_job(podFailurePolicy={"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}},
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]})
    pod = make_pod(job, "Failed", exit_code=42)
    sync, _, _ = run(job, [pod])
    # Nothing else runs, so the terminal condition follows at once.
    assert conditions(sync) == [("FailureTarget", "True", "PodFailurePolicy"), ("Failed", "True", "PodFailurePolicy")]
    assert sync.status["conditions"][0]["message"] == (
        f"Container c for pod default/{pod['metadata']['name']} failed with exit code 42 matching FailJob rule at index 1")


def test_pod_failure_policy_ignore_does_not_count_and_replaces_at_once() -> None:
    job = make_job(backoffLimit=0, podFailurePolicy={"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]})
    pod = make_pod(job, "Failed")
    pod["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    sync, d, tracking = run(job, [pod])
    assert not plan.is_finished(sync.job) and "failed" not in sync.status
    assert tracking.remove_finalizers == [pod] and len(d.create) == 1


def test_active_deadline_fails_the_job_or_says_when_to_look_again() -> None:
    job = make_job(activeDeadlineSeconds=30)
    job["status"]["startTime"] = ts(10)
    _, d, _ = run(job, [make_pod(job, "Running")])
    assert d.requeue_after == pytest.approx(20)
    job["status"]["startTime"] = ts(40)
    sync, d, _ = run(job, [make_pod(job, "Running")])
    assert conditions(sync) == [("FailureTarget", "True", "DeadlineExceeded")] and len(d.delete) == 1


def test_suspending_deletes_pods_uncounted_and_resuming_restarts_the_clock() -> None:
    job = make_job(suspend=True)
    job["status"]["startTime"] = ts(100)
    pod = make_pod(job, "Running")
    sync, d, tracking = run(job, [pod])
    assert d.delete == [pod] and d.remove_finalizer_first == [pod] and not tracking.remove_finalizers
    assert conditions(sync) == [("Suspended", "True", "JobSuspended")]
    assert ("Normal", "Suspended", "Job suspended") in d.events and "failed" not in sync.status
    resumed = {**sync.job, "spec": {**sync.job["spec"], "suspend": False}, "status": sync.status}
    sync2, d2, _ = run(resumed, [])
    assert conditions(sync2) == [("Suspended", "False", "JobResumed")] and len(d2.create) == 1
    assert sync2.status["startTime"] == ts()


def test_success_policy_ends_an_indexed_job_early() -> None:
    job = make_job(completionMode="Indexed", completions=4, parallelism=4,
                   successPolicy={"rules": [{"succeededIndexes": "0", "succeededCount": 1}]})
    others = [make_pod(job, "Running", index=i) for i in (1, 2, 3)]
    sync, d, _ = run(job, [make_pod(job, "Succeeded", index=0), *others])
    assert conditions(sync) == [("SuccessCriteriaMet", "True", "SuccessPolicy")]
    assert sync.status["conditions"][0]["message"] == "Matched rules at index 0"
    assert d.delete == others and sync.status["completedIndexes"] == "0"


def test_completed_indexes_are_compressed_as_upstream() -> None:
    job = make_job(completionMode="Indexed", completions=8, parallelism=1)
    done = [make_pod(job, "Succeeded", index=i) for i in (0, 1, 3, 4, 5, 7)]
    sync, _, _ = run(job, done)
    assert sync.status["completedIndexes"] == "0,1,3-5,7" and sync.status["succeeded"] == 6
    assert str(Intervals.parse("0,1,3-5,7,9", 8)) == "0,1,3-5,7"


def test_backoff_limit_per_index_retries_an_index_then_marks_it_failed() -> None:
    job = make_job(completionMode="Indexed", completions=2, parallelism=2, backoffLimitPerIndex=1)
    assert job["spec"]["backoffLimit"] == 2**31 - 1
    first = make_pod(job, "Failed", index=0, finished_ago=60)
    sync, d, tracking = run(job, [first, make_pod(job, "Running", index=1)])
    # The failed pod is kept (finalizer and all) until its replacement carries the count on.
    assert first not in tracking.remove_finalizers
    assert [p["metadata"]["annotations"][plan.INDEX_FAILURE_COUNT] for p in d.create] == ["1"]
    retry = d.create[0]
    retry["metadata"].update(name="work-r", uid="pod-r")
    retry["status"] = {"phase": "Failed", "containerStatuses": [{"name": "c", "state": {"terminated": {
        "exitCode": 1, "finishedAt": ts(1)}}}]}
    job2 = {**sync.job, "status": sync.status}
    sync2, _, _ = run(job2, [first, retry, make_pod(job, "Succeeded", index=1)])
    assert sync2.status["failedIndexes"] == "0" and sync2.status["completedIndexes"] == "1"
    assert conditions(sync2)[0] == ("FailureTarget", "True", "FailedIndexes")


def test_duplicate_and_surplus_indexes_are_removed_first() -> None:
    job = make_job(completionMode="Indexed", completions=2, parallelism=2)
    a, b = make_pod(job, "Running", index=0), make_pod(job, "Running", index=0, ready=True)
    stray = make_pod(job, "Running", index=5)
    sync = plan.JobSync(job, [a, b, stray], NOW)
    assert sync.pods_for_removal(0) == [stray, a]


def test_unsatisfied_expectations_create_nothing() -> None:
    job = make_job(parallelism=3, completions=3)
    _, d, _ = run(job, [], satisfied=False)
    assert not d.create


def test_generate_name_is_cut_to_fit() -> None:
    job = make_job()
    job["metadata"]["name"] = "j" * 60
    assert plan.generate_name(job, 12) == "j" * 54 + "-12-"
    assert plan.generate_name(job, plan.UNKNOWN_INDEX) == "j" * 58
