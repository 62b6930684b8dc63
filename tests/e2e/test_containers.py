"""Init containers, sidecars, ephemeral containers, lifecycle hooks and
termination messages, through the real kubectl as a user types it.

- `kubectl get pods` walks `Init:0/2`, `Init:1/2`, `Running` while init
  containers are held at a gate (opened with `kubectl exec` into the init
  container itself); failures show `Init:CrashLoopBackOff` and `Init:Error`;
  `kubectl logs -c <init>` and `kubectl describe` show them;
- a sidecar starts before the init container after it, counts in READY, and
  at deletion stops after the app container (which runs its preStop hook
  first), the last sidecar first, as the files they leave on a hostPath show;
- `kubectl debug -it POD --image=busybox --target=app -- sh` fed through
  stdin sees the target's processes; `kubectl debug` without -it leaves a
  running container whose logs `kubectl logs -c` shows; invalid ephemeral
  containers get upstream's 422;
- postStart hooks (exec, httpGet) and preStop sleep, with their events;
- termination messages from the file and from the log.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from kinns.testing import ClusterHandle, wait_for

from .helpers import apply, pod


def status(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)["status"]
    return out


def column(cluster: ClusterHandle, name: str) -> tuple[str, str]:
    """READY and STATUS of `kubectl get pods NAME`."""
    row = cluster.kubectl("get", "pod", name, "--no-headers").stdout.split()
    return row[1], row[2]


def wait_column(cluster: ClusterHandle, name: str, want: str, timeout: float = 30) -> tuple[str, str]:
    return wait_for(lambda: (lambda c: c if c[1] == want else None)(column(cluster, name)),  # type: ignore[no-any-return]
                    timeout=timeout)


def busybox(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


GATE = "until [ -e /gate/{0} ]; do sleep 0.1; done; echo {0} done"
WORK = {"name": "gate", "mountPath": "/gate"}


def test_init_containers_run_in_order_and_show_in_get_pods(cluster: ClusterHandle) -> None:
    spec = pod("ic-order", busybox("app", "sleep 3600"), volumes=[{"name": "gate", "emptyDir": {}}],
               initContainers=[busybox("one", GATE.format("one"), volumeMounts=[WORK]),
                               busybox("two", GATE.format("two"), volumeMounts=[WORK])])
    apply(cluster, spec)
    assert wait_column(cluster, "ic-order", "Init:0/2") == ("0/1", "Init:0/2")
    wait_for(lambda: "running" in status(cluster, "ic-order")["initContainerStatuses"][0]["state"])
    st = status(cluster, "ic-order")
    assert st["phase"] == "Pending"
    assert st["initContainerStatuses"][1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    init_cond = next(c for c in st["conditions"] if c["type"] == "Initialized")
    assert (init_cond["status"], init_cond["reason"], init_cond["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [one two]")

    cluster.kubectl("exec", "ic-order", "-c", "one", "--", "touch", "/gate/one")
    wait_column(cluster, "ic-order", "Init:1/2")
    cluster.kubectl("exec", "ic-order", "-c", "two", "--", "touch", "/gate/two")
    assert wait_column(cluster, "ic-order", "Running") == ("1/1", "Running")

    assert cluster.kubectl("logs", "ic-order", "-c", "one").stdout == "one done\n"
    assert cluster.kubectl("logs", "ic-order", "-c", "two").stdout == "two done\n"
    done = status(cluster, "ic-order")["initContainerStatuses"]
    assert [(c["ready"], c["state"]["terminated"]["reason"]) for c in done] == [(True, "Completed")] * 2
    described = cluster.kubectl("describe", "pod", "ic-order").stdout
    assert re.search(r"Init Containers:\n  one:\n", described)
    assert re.search(r"\n  two:\n(.*\n)*?    State:\s+Terminated\n      Reason:\s+Completed\n", described)
    assert re.search(r"Initialized\s+True", described)


def test_failing_init_containers(cluster: ClusterHandle) -> None:
    apply(cluster, pod("ic-crash", busybox("app", "sleep 3600"),
                       initContainers=[busybox("bad", "echo cannot migrate; exit 1")]))
    apply(cluster, pod("ic-never", busybox("app", "sleep 3600"), restartPolicy="Never",
                       initContainers=[busybox("bad", "echo giving up; exit 3"), busybox("later", "true")]))
    assert wait_column(cluster, "ic-crash", "Init:CrashLoopBackOff") == ("0/1", "Init:CrashLoopBackOff")
    assert wait_column(cluster, "ic-never", "Init:Error") == ("0/1", "Init:Error")
    never = status(cluster, "ic-never")
    assert never["phase"] == "Failed"
    assert never["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert never["initContainerStatuses"][1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    crash = status(cluster, "ic-crash")["initContainerStatuses"][0]
    assert crash["restartCount"] >= 1 and crash["lastState"]["terminated"]["exitCode"] == 1
    assert crash["state"]["waiting"]["message"].startswith("back-off 10s restarting failed container=bad pod=ic-crash_")
    assert cluster.kubectl("logs", "ic-crash", "-c", "bad").stdout == "cannot migrate\n"
    assert cluster.kubectl("logs", "ic-never", "-c", "bad").stdout == "giving up\n"
    cluster.kubectl("delete", "pod", "ic-crash", "ic-never", "--wait=false")


def test_sidecars_start_first_and_stop_last(cluster: ClusterHandle, tmp_path: Path) -> None:
    out = tmp_path / "order"
    out.mkdir(mode=0o777)
    mark = "trap 'echo {0} >> /out/log; exit 0' TERM; echo {0} up >> /out/log; while true; do sleep 0.1; done"
    mount = {"name": "out", "mountPath": "/out"}
    spec = pod("sc-order",
               busybox("app", "trap 'sleep 0.5; echo app >> /out/log; exit 0' TERM; while true; do sleep 0.1; done",
                       volumeMounts=[mount],
                       lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo app-prestop >> /out/log"]}}}),
               initContainers=[
                   busybox("side1", mark.format("side1"), restartPolicy="Always", volumeMounts=[mount],
                           readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1}),
                   busybox("setup", "grep -q 'side1 up' /out/log && echo setup >> /out/log", volumeMounts=[mount]),
                   busybox("side2", mark.format("side2"), restartPolicy="Always", volumeMounts=[mount])],
               volumes=[{"name": "out", "hostPath": {"path": str(out), "type": "Directory"}}],
               terminationGracePeriodSeconds=10)
    apply(cluster, spec)
    assert wait_column(cluster, "sc-order", "Running") == ("3/3", "Running")
    cluster.kubectl("delete", "pod", "sc-order", timeout=30)
    assert (out / "log").read_text().splitlines() == [
        "side1 up", "setup", "side2 up",              # each init container waits for the one before
        "app-prestop", "app", "side2", "side1"]       # preStop, the app, then the sidecars, last first


def test_a_sidecar_of_a_finished_job_is_stopped(cluster: ClusterHandle) -> None:
    apply(cluster, pod("sc-job", busybox("work", "sleep 1; echo worked"), restartPolicy="Never",
                       initContainers=[busybox("proxy", "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                                               restartPolicy="Always")]))
    # Wait for both columns: a status write may show Completed while the sidecar's stop is still reported.
    wait_for(lambda: column(cluster, "sc-job") == ("0/2", "Completed"), timeout=30)
    st = status(cluster, "sc-job")
    assert st["phase"] == "Succeeded"
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    cluster.kubectl("delete", "pod", "sc-job", "--wait=false")


@pytest.fixture(scope="module")
def target(cluster: ClusterHandle) -> str:
    apply(cluster, pod("dbg", busybox("app", "exec sleep 3600")))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/dbg", "--timeout=60s", timeout=70)
    return "dbg"


@pytest.mark.parametrize("version", ["1.32", "1.27"])
def test_kubectl_debug_interactive_sees_the_target(cluster: ClusterHandle, target: str, version: str) -> None:
    r = cluster.kubectl("debug", "-it", target, "--image=busybox", "--target=app", "--", "sh",
                        stdin="ps -ef\necho from-debugger\nexit\n", version=version, timeout=60)
    name = re.search(r"Defaulting debug container name to (debugger-\w+)\.", r.stdout + r.stderr)
    assert name, r.stderr
    assert re.search(r"^\S+\s+1\s+0 .* sleep 3600$", r.stdout, re.M), r.stdout   # the target is PID 1
    assert "from-debugger" in r.stdout
    st = next(s for s in status(cluster, target)["ephemeralContainerStatuses"] if s["name"] == name.group(1))
    assert st["state"]["terminated"]["exitCode"] == 0 and st["ready"] is False


def test_kubectl_debug_without_a_terminal(cluster: ClusterHandle, target: str) -> None:
    r = cluster.kubectl("debug", target, "--image=busybox", "--", "sh", "-c", "echo checking; sleep 3600")
    name = re.search(r"Defaulting debug container name to (debugger-\w+)\.", r.stdout + r.stderr)
    assert name, r.stderr
    wait_for(lambda: any(s["name"] == name.group(1) and "running" in s["state"]
                         for s in status(cluster, target).get("ephemeralContainerStatuses") or []))
    assert cluster.kubectl("logs", target, "-c", name.group(1)).stdout == "checking\n"
    ephemeral = json.loads(cluster.kubectl("get", "--raw",
                                           f"/api/v1/namespaces/default/pods/{target}/ephemeralcontainers").stdout)
    assert ephemeral["kind"] == "Pod" and name.group(1) in [c["name"] for c in ephemeral["spec"]["ephemeralContainers"]]
    described = cluster.kubectl("describe", "pod", target).stdout
    assert re.search(rf"\nEphemeral Containers:\n(.*\n)*  {name.group(1)}:\n", described)


def test_invalid_ephemeral_containers_are_refused(cluster: ClusterHandle, target: str) -> None:
    patch = {"spec": {"ephemeralContainers": [{"name": "app", "image": "busybox", "targetContainerName": "nope",
                                               "ports": [{"containerPort": 80}]}]}}
    r = cluster.http("PATCH", f"/api/v1/namespaces/default/pods/{target}/ephemeralcontainers", patch,
                     content_type="application/strategic-merge-patch+json")
    assert r.status == 422
    i = len(json.loads(cluster.kubectl("get", "pod", target, "-o", "json").stdout)["spec"].get(
        "ephemeralContainers") or [])                 # the patch appends after the debuggers of other tests
    assert r.json()["message"] == (
        f'Pod "dbg" is invalid: [spec.ephemeralContainers[{i}].name: Duplicate value: "app", '
        f'spec.ephemeralContainers[{i}].targetContainerName: Not found: "nope", '
        f"spec.ephemeralContainers[{i}].ports: Forbidden: cannot be set for an Ephemeral Container]")
    body = pod("eph-create", busybox("app", "true"))
    body["spec"]["ephemeralContainers"] = [{"name": "e", "image": "busybox"}]
    created = cluster.kubectl("create", "-f", "-", stdin=json.dumps(body), check=False)
    assert ('The Pod "eph-create" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create'
            in created.stderr)


def events(cluster: ClusterHandle, pod_name: str, reason: str) -> list[str]:
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={pod_name},reason={reason}",
                          "-o", "jsonpath={range .items[*]}{.message}{'\\n'}{end}").stdout
    return out.splitlines()


def test_post_start_hooks(cluster: ClusterHandle) -> None:
    apply(cluster, pod("hk-ok", busybox("app", "sleep 3600", lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", "echo started-by-hook > /tmp/hook"]}}})))
    apply(cluster, pod("hk-exec", busybox("app", "sleep 3600", lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", "echo no way; exit 3"]}}}), terminationGracePeriodSeconds=1))
    apply(cluster, pod("hk-http", busybox("app", "sleep 3600", lifecycle={
        "postStart": {"httpGet": {"path": "/hook", "port": 9}}}), terminationGracePeriodSeconds=1))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/hk-ok", "--timeout=60s", timeout=70)
    assert cluster.kubectl("exec", "hk-ok", "--", "cat", "/tmp/hook").stdout == "started-by-hook\n"

    def waiting(name: str) -> dict[str, Any] | None:
        st = (status(cluster, name).get("containerStatuses") or [{}])[0].get("state", {})
        w: dict[str, Any] | None = st.get("waiting")
        return w if w and w.get("reason") == "PostStartHookError" else None

    w = wait_for(lambda: waiting("hk-exec"))
    uid = json.loads(cluster.kubectl("get", "pod", "hk-exec", "-o", "json").stdout)["metadata"]["uid"]
    assert w["message"] == (f'Exec lifecycle hook ([sh -c echo no way; exit 3]) for Container "app" in Pod '
                            f'"hk-exec_default({uid})" failed - error: command \'sh -c echo no way; exit 3\' '
                            f'exited with 3: , message: "no way\\n"')
    w = wait_for(lambda: waiting("hk-http"))
    assert re.fullmatch(r'HTTP lifecycle hook \(/hook\) for Container "app" in Pod "hk-http_default\([-0-9a-f]+\)" '
                        r'failed - error: Get "http://[0-9.]+:9/hook": dial tcp [0-9.]+:9: connect: '
                        r'connection refused', w["message"]), w["message"]
    assert "PostStartHook failed" in wait_for(lambda: events(cluster, "hk-exec", "FailedPostStartHook"))
    assert "FailedPostStartHook" in wait_for(lambda: events(cluster, "hk-exec", "Killing"))
    wait_for(lambda: status(cluster, "hk-exec")["containerStatuses"][0]["restartCount"] >= 1, timeout=40)
    cluster.kubectl("delete", "pod", "hk-ok", "hk-exec", "hk-http", "--wait=false")


def test_pre_stop_sleep_and_a_failing_pre_stop(cluster: ClusterHandle) -> None:
    apply(cluster, pod("hk-stop",
                       busybox("slow", "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                               lifecycle={"preStop": {"sleep": {"seconds": 2}}}),
                       busybox("failing", "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                               lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "exit 1"]}}}),
                       terminationGracePeriodSeconds=20))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/hk-stop", "--timeout=60s", timeout=70)
    began = time.monotonic()
    cluster.kubectl("delete", "pod", "hk-stop", timeout=40)
    assert 2.0 <= time.monotonic() - began < 15
    assert events(cluster, "hk-stop", "FailedPreStopHook") == ["PreStopHook failed"]
    assert sorted(events(cluster, "hk-stop", "Killing")) == ["Stopping container failing", "Stopping container slow"]


def test_termination_messages(cluster: ClusterHandle) -> None:
    apply(cluster, pod("tm", busybox("file", "printf 'all done' > /dev/termination-log"),
                       busybox("logs", "for i in $(seq 1 100); do echo line $i; done; exit 2",
                               terminationMessagePolicy="FallbackToLogsOnError"),
                       busybox("custom", "echo custom > /tmp/why; exit 1", terminationMessagePath="/tmp/why"),
                       busybox("quiet", "echo not a message; exit 1"),
                       restartPolicy="Never"))
    wait_for(lambda: status(cluster, "tm")["phase"] == "Failed")
    by_name = {c["name"]: c["state"]["terminated"] for c in status(cluster, "tm")["containerStatuses"]}
    assert by_name["file"]["message"] == "all done"
    assert by_name["logs"]["message"] == "".join(f"line {i}\n" for i in range(21, 101))   # the last 80 lines
    assert by_name["custom"]["message"] == "custom\n"
    assert "message" not in by_name["quiet"]   # policy File: the log is not used
    assert "Message:      all done" in cluster.kubectl("describe", "pod", "tm").stdout
    cluster.kubectl("delete", "pod", "tm", "--wait=false")
