"""batch/v1 Jobs and CronJobs end to end, through the real kubectl and the official Python client.

Specs are chosen to finish fast: busybox commands that exit at once, a
backoffLimit of 1 (one 10 s back-off), small deadlines and TTLs.  A
CronJob's scheduling is driven without waiting for the clock: its
`status.lastScheduleTime` is set three minutes back (as a controller that
was down would find it), so the controller starts the most recent missed
run at once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from kubernetes import client, config

from kinns.testing import ClusterHandle, wait_for


def apply(cluster: ClusterHandle, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def get(cluster: ClusterHandle, kind: str, name: str) -> dict[str, Any] | None:
    r = cluster.kubectl("get", kind, name, "-o", "json", check=False)
    if r.returncode != 0:
        assert "NotFound" in r.stderr, r.stderr
        return None
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def pods_of(cluster: ClusterHandle, job: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-l", f"batch.kubernetes.io/job-name={job}", "-o", "json").stdout
    return sorted(json.loads(out)["items"], key=lambda p: p["metadata"]["creationTimestamp"])


def job(name: str, script: str, template_patch: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "c", "image": "busybox",
                                                           "command": ["sh", "-c", script]}],
                                           **(template_patch or {})}}, **spec}}


def row(cluster: ClusterHandle, kind: str, name: str, version: str = "1.32") -> list[str]:
    """The cells of `kubectl get KIND NAME` (columns are two or more spaces apart)."""
    return re.split(r"\s{2,}", cluster.kubectl("get", kind, name, version=version).stdout.splitlines()[1].strip())


def header(cluster: ClusterHandle, kind: str, name: str) -> list[str]:
    return re.split(r"\s{2,}", cluster.kubectl("get", kind, name).stdout.splitlines()[0].strip())


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            return c  # type: ignore[no-any-return]
    return None


def test_create_job_runs_to_completion_and_logs(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "job", "hello", "--image=busybox", "--", "sh", "-c", "echo hello from the job")
    cluster.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
    assert header(cluster, "jobs", "hello") == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    cells = row(cluster, "jobs", "hello")
    assert cells[:3] == ["hello", "Complete", "1/1"]
    assert row(cluster, "jobs", "hello", version="1.27")[:3] == ["hello", "Complete", "1/1"]
    assert cluster.kubectl("logs", "job/hello").stdout.strip() == "hello from the job"
    j = get(cluster, "job", "hello")
    assert j is not None
    st = j["status"]
    assert st["succeeded"] == 1 and "active" not in st and st["uncountedTerminatedPods"] == {}
    assert [c["type"] for c in st["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert st["conditions"][1]["reason"] == "CompletionsReached"
    pod = pods_of(cluster, "hello")[0]
    assert pod["metadata"]["name"].startswith("hello-") and "finalizers" not in pod["metadata"]
    assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == j["metadata"]["uid"]
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=hello",
                             "-o", "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}").stdout.split()
    assert "SuccessfulCreate" in events and "Completed" in events


def test_finished_pods_give_their_addresses_back(cluster: ClusterHandle) -> None:
    """A node's pod range has 253 usable addresses.  A finished pod keeps its
    status and logs but not its network (upstream's kubelet stops the
    sandbox and CNI DEL frees the IP), so one node runs more Job pods to
    completion than its range holds: before, the 254th stayed Pending with
    "no IP addresses available in range" in the kubelet's log."""
    node = f"{cluster.name}-worker"
    completions = 270
    apply(cluster, job("many", "echo done", completions=completions, parallelism=30, backoffLimit=0,
                       template_patch={"nodeSelector": {"kubernetes.io/hostname": node}}))
    cluster.kubectl("wait", "--for=condition=complete", "job/many", "--timeout=240s")
    pods = pods_of(cluster, "many")
    assert len(pods) == completions and {p["spec"]["nodeName"] for p in pods} == {node}
    first = pods[0]
    assert first["status"]["phase"] == "Succeeded" and first["status"].get("podIP"), "the status keeps its podIP"
    sandbox = next(c for c in first["status"]["conditions"] if c["type"] == "PodReadyToStartContainers")
    assert sandbox["status"] == "False", "its sandbox is stopped"
    assert cluster.kubectl("logs", first["metadata"]["name"]).stdout.strip() == "done"
    host_ends = cluster.cli("exec", "--name", cluster.name, f"node/{node}", "--", "ip", "-o", "link").stdout
    assert host_ends.count("master cni0") < 30, "finished pods' veths are gone from the node's bridge"
    cluster.kubectl("delete", "job", "many", "--wait=true", timeout=180)


def test_python_client_runs_a_parallel_job(cluster: ClusterHandle) -> None:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        batch = client.BatchV1Api(api)
        batch.create_namespaced_job("default", job("par", "sleep 1", completions=3, parallelism=2))

        def done() -> Any:
            j = batch.read_namespaced_job_status("par", "default")
            return j if j.status.succeeded == 3 and j.status.completion_time else None
        finished = wait_for(done, timeout=60)
        assert finished.status.conditions[-1].type == "Complete"
        assert [j.metadata.name for j in batch.list_namespaced_job("default").items if j.metadata.name == "par"]
    finally:
        api.close()
    assert len(pods_of(cluster, "par")) == 3


def test_a_failing_job_backs_off_then_fails_at_its_backoff_limit(cluster: ClusterHandle) -> None:
    apply(cluster, job("flaky", "echo trying; exit 3", backoffLimit=1))
    cluster.kubectl("wait", "--for=condition=failed", "job/flaky", "--timeout=60s")
    pods = pods_of(cluster, "flaky")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    first_exit = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    second_start = pods[1]["metadata"]["creationTimestamp"]
    gap = (dt.datetime.fromisoformat(second_start.replace("Z", "+00:00"))
           - dt.datetime.fromisoformat(first_exit.replace("Z", "+00:00"))).total_seconds()
    assert gap >= 9, f"the replacement came {gap}s after the failure, before the 10 s back-off"
    assert row(cluster, "jobs", "flaky")[:3] == ["flaky", "Failed", "0/1"]
    failed = condition(get(cluster, "job", "flaky"), "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    described = cluster.kubectl("describe", "job", "flaky").stdout
    assert "BackoffLimitExceeded" in described and "0 Active (0 Ready) / 0 Succeeded / 2 Failed" in described


def test_pod_failure_policy_fails_the_job_at_once(cluster: ClusterHandle) -> None:
    apply(cluster, job("fatal", "exit 42", backoffLimit=6, podFailurePolicy={"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]}))
    cluster.kubectl("wait", "--for=condition=failed", "job/fatal", "--timeout=60s")
    pods = pods_of(cluster, "fatal")
    failed = condition(get(cluster, "job", "fatal"), "Failed")
    assert len(pods) == 1 and failed and failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == (f"Container c for pod default/{pods[0]['metadata']['name']} failed with exit code 42 "
                                 "matching FailJob rule at index 0")


def test_an_indexed_job_sees_its_index(cluster: ClusterHandle) -> None:
    apply(cluster, job("idx", 'echo "index=$JOB_COMPLETION_INDEX host=$(hostname)"',
                       completions=3, parallelism=3, completionMode="Indexed"))
    cluster.kubectl("wait", "--for=condition=complete", "job/idx", "--timeout=60s")
    seen = set()
    for p in pods_of(cluster, "idx"):
        ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == ix
        assert p["metadata"]["name"].startswith(f"idx-{ix}-")
        assert cluster.kubectl("logs", p["metadata"]["name"]).stdout.strip() == f"index={ix} host=idx-{ix}"
        seen.add(ix)
    assert seen == {"0", "1", "2"}
    j = get(cluster, "job", "idx")
    assert j is not None and j["status"]["completedIndexes"] == "0-2"


def test_deadline_suspend_and_ttl(cluster: ClusterHandle) -> None:
    apply(cluster, job("slow", "sleep 60", activeDeadlineSeconds=2))
    apply(cluster, job("later", "echo resumed", suspend=True))
    apply(cluster, job("brief", "true", ttlSecondsAfterFinished=1))
    assert wait_for(lambda: condition(get(cluster, "job", "later"), "Suspended"))["reason"] == "JobSuspended"
    assert row(cluster, "jobs", "later")[:2] == ["later", "Suspended"] and pods_of(cluster, "later") == []
    cluster.kubectl("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    cluster.kubectl("wait", "--for=condition=complete", "job/later", "--timeout=60s")
    assert cluster.kubectl("logs", "job/later").stdout.strip() == "resumed"
    failed = wait_for(lambda: condition(get(cluster, "job", "slow"), "Failed"), timeout=60)
    assert failed["reason"] == "DeadlineExceeded" and failed["message"] == "Job was active longer than specified deadline"
    wait_for(lambda: not pods_of(cluster, "slow") or all(p["status"]["phase"] == "Failed" for p in pods_of(cluster, "slow")))
    # TTL-after-finished: gone a second after it completed, its pod with it.
    wait_for(lambda: get(cluster, "job", "brief") is None and not pods_of(cluster, "brief"), timeout=60)


def test_deleting_a_running_job_removes_its_pods(cluster: ClusterHandle) -> None:
    apply(cluster, job("busy", "sleep 3600", parallelism=2, completions=2))
    wait_for(lambda: len([p for p in pods_of(cluster, "busy") if p["status"].get("phase") == "Running"]) == 2, timeout=60)
    cluster.kubectl("delete", "job", "busy")
    wait_for(lambda: pods_of(cluster, "busy") == [], timeout=60)


@pytest.mark.parametrize("spec, message", [
    ({"completionMode": "Sometimes"},
     'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'),
    ({"backoffLimit": -1}, "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
])
def test_bad_jobs_are_refused_in_upstreams_words(cluster: ClusterHandle, spec: dict[str, Any], message: str) -> None:
    r = cluster.kubectl("create", "-f", "-", stdin=json.dumps(job("bad", "true", **spec)), check=False)
    assert r.returncode != 0 and f'The Job "bad" is invalid: {message}' in r.stderr
    assert get(cluster, "job", "bad") is None


def test_a_bad_schedule_is_refused(cluster: ClusterHandle) -> None:
    r = cluster.kubectl("create", "cronjob", "nope", "--image=busybox", "--schedule=61 * * * *", check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == ('error: failed to create cronjob: CronJob.batch "nope" is invalid: spec.schedule: '
                                'Invalid value: "61 * * * *": end of range (61) above maximum (59): 61')


def test_a_cronjob_fires_and_keeps_its_history(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "echo", "tick")
    assert header(cluster, "cronjobs", "tick") == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE",
                                                    "LAST SCHEDULE", "AGE"]
    # As if the controller had been down for three minutes: it starts the latest missed run now.
    back = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:00Z")
    cluster.kubectl("patch", "cronjob", "tick", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"lastScheduleTime": back}}))

    def fired() -> dict[str, Any] | None:
        cj = get(cluster, "cronjob", "tick") or {}
        last = (cj.get("status") or {}).get("lastScheduleTime")
        return cj if last and last != back else None
    cj = wait_for(fired)
    scheduled = dt.datetime.fromisoformat(cj["status"]["lastScheduleTime"].replace("Z", "+00:00"))
    name = f"tick-{int(scheduled.timestamp()) // 60}"
    j = wait_for(lambda: get(cluster, "job", name))
    assert j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    cluster.kubectl("wait", "--for=condition=complete", f"job/{name}", "--timeout=60s")
    assert wait_for(lambda: (get(cluster, "cronjob", "tick") or {}).get("status", {}).get("lastSuccessfulTime"))
    cluster.kubectl("delete", "cronjob", "tick")

    # History: a suspended CronJob keeping one successful Job; two manual runs leave the newer.
    cluster.kubectl("create", "cronjob", "hist", "--image=busybox", "--schedule=@hourly", "--", "echo", "done")
    cluster.kubectl("patch", "cronjob", "hist", "--type=merge",
                    "-p", '{"spec":{"suspend":true,"successfulJobsHistoryLimit":1}}')
    assert row(cluster, "cronjobs", "hist")[:4] == ["hist", "@hourly", "<none>", "True"]
    cluster.kubectl("create", "job", "hist-a", "--from=cronjob/hist")
    manual = get(cluster, "job", "hist-a")
    assert manual is not None and manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    cluster.kubectl("wait", "--for=condition=complete", "job/hist-a", "--timeout=60s")
    time.sleep(1.1)   # a later startTime for the second run
    cluster.kubectl("create", "job", "hist-b", "--from=cronjob/hist")
    cluster.kubectl("wait", "--for=condition=complete", "job/hist-b", "--timeout=60s")
    wait_for(lambda: get(cluster, "job", "hist-a") is None, timeout=30)
    assert get(cluster, "job", "hist-b") is not None
