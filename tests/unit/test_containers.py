"""Init containers, sidecars and app containers: what the kubelet starts next
(`containers.plan`), in what order it stops them (`containers.stop_order`),
and the pod status and `kubectl get pods` STATUS column that result
(`podstatus`, then `tables`), checked against upstream's rules (getPhase,
computeInitContainerActions, printPod)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kinns.api.tables import row_cells
from kinns.node.containers import NONE, Run, plan, restarts_after, stop_order
from kinns.node.podstatus import ContainerView, pod_status
from kinns.node.runtime import ContainerStatus

NOW = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.timezone.utc)
T0 = NOW.timestamp() - 60


def pod(*inits: dict[str, Any], apps: tuple[str, ...] = ("app",), policy: str = "Always") -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1", "creationTimestamp": "2026-11-23T11:58:00Z"},
            "spec": {"restartPolicy": policy, "initContainers": list(inits),
                     "containers": [{"name": a, "image": "busybox"} for a in apps]}}


def init(name: str, sidecar: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "busybox"}
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


RUNNING, STARTED = Run("running"), Run("running", started=True)
OK, FAILED = Run("exited", 0), Run("exited", 1)


# --- what starts next --------------------------------------------------------

def test_init_containers_run_one_at_a_time_in_order() -> None:
    p = pod(init("i1"), init("i2"))
    assert plan(p, {}).start == ["i1"]
    assert plan(p, {"i1": RUNNING}).start == []
    assert plan(p, {"i1": OK}).start == ["i2"]
    done = plan(p, {"i1": OK, "i2": OK})
    assert done.initialized and done.start == []


def test_a_failed_init_container_runs_again_unless_restart_policy_is_never() -> None:
    assert plan(pod(init("i1")), {"i1": FAILED}).start == ["i1"]
    assert plan(pod(init("i1"), policy="OnFailure"), {"i1": FAILED}).start == ["i1"]
    never = plan(pod(init("i1"), init("s", sidecar=True), policy="Never"), {"i1": FAILED})
    assert never.init_failed and never.start == [] and not never.initialized


def test_the_next_init_container_waits_for_a_sidecar_to_start() -> None:
    p = pod(init("s", sidecar=True), init("i2"))
    assert plan(p, {"s": RUNNING}).start == []                  # startup probe not passed yet
    assert plan(p, {"s": STARTED}).start == ["i2"]
    assert plan(p, {"s": STARTED, "i2": OK}).initialized


def test_sidecars_come_back_whatever_the_restart_policy_until_the_apps_are_done() -> None:
    p = pod(init("s", sidecar=True), init("i2"), policy="Never")
    assert plan(p, {"s": OK, "i2": RUNNING}).start == ["s"]     # died during initialization
    assert plan(p, {"s": FAILED, "i2": OK, "app": RUNNING}).start == ["s"]
    over = plan(p, {"s": STARTED, "i2": OK, "app": OK})
    assert over.apps_done and over.stop_sidecars and over.start == []


def test_a_pod_that_ran_app_containers_stays_initialized() -> None:
    p = pod(init("s", sidecar=True), init("i2"))
    after = plan(p, {"s": FAILED, "i2": OK, "app": RUNNING})
    assert after.initialized and after.start == ["s"]


@pytest.mark.parametrize("kind,policy,code,again", [
    ("app", "Always", 0, True), ("app", "OnFailure", 0, False), ("app", "OnFailure", 1, True),
    ("app", "Never", 1, False), ("init", "Always", 0, False), ("init", "Always", 1, True),
    ("init", "Never", 1, False), ("sidecar", "Never", 0, True), ("ephemeral", "Always", 1, False),
])
def test_restarts_after(kind: Any, policy: str, code: int, again: bool) -> None:
    assert restarts_after(kind, policy, code) is again


def test_stop_order_app_and_ephemeral_first_then_sidecars_last_first() -> None:
    p = pod(init("s1", sidecar=True), init("i"), init("s2", sidecar=True))
    assert stop_order(p, {"app", "s1", "s2", "debugger"}) == [["app", "debugger"], ["s2"], ["s1"]]
    assert stop_order(p, {"s1"}) == [["s1"]]
    assert NONE.state == "none"


# --- status and the STATUS column ---------------------------------------------

def run(name: str, state: str = "running", code: int | None = None, restarts: int = 0) -> ContainerStatus:
    st = ContainerStatus(id=f"{name}-{restarts}", name=name, pod_uid="u1", restart_count=restarts, image="busybox",
                         state=state, exit_code=code, started_at=T0, finished_at=T0 + 5 if state == "exited" else 0)
    if state == "exited":
        st.reason = "Completed" if code == 0 else "Error"
    return st


def view(name: str, kind: str, cur: ContainerStatus | None = None, **kw: Any) -> ContainerView:
    running = cur is not None and cur.state == "running"
    return ContainerView(name=name, image="busybox", current=cur, kind=kind, ready=running, started=running, **kw)


def status_and_row(p: dict[str, Any], *views: ContainerView) -> tuple[dict[str, Any], list[Any]]:
    status = pod_status(p, list(views), pod_ip="10.244.1.5", host_ip="172.18.0.3", start_time="2026-11-23T11:58:00Z",
                        sandbox_ready=True)
    return status, row_cells("Pod", dict(p, status=status), NOW)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", "")) for c in status["conditions"]}


def test_status_column_through_the_init_stages() -> None:
    p = pod(init("i1"), init("i2"))
    status, row = status_and_row(p, view("i1", "init"), view("i2", "init"), view("app", "app"))
    assert (row[1], row[2], status["phase"]) == ("0/1", "Init:0/2", "Pending")
    assert [s["state"] for s in status["initContainerStatuses"]] == [{"waiting": {"reason": "PodInitializing"}}] * 2
    assert conditions(status)["Initialized"] == ("False", "ContainersNotInitialized",
                                                 "containers with incomplete status: [i1 i2]")
    _, row = status_and_row(p, view("i1", "init", run("i1")), view("i2", "init"), view("app", "app"))
    assert row[2] == "Init:0/2"
    status, row = status_and_row(p, view("i1", "init", run("i1", "exited", 0)), view("i2", "init", run("i2")),
                                 view("app", "app"))
    assert row[2] == "Init:1/2"
    assert status["initContainerStatuses"][0]["ready"] is True       # a finished init container is "ready"
    status, row = status_and_row(p, view("i1", "init", run("i1", "exited", 0)),
                                 view("i2", "init", run("i2", "exited", 0)), view("app", "app"))
    assert (row[2], status["phase"]) == ("PodInitializing", "Pending")
    assert conditions(status)["Initialized"] == ("True", "", "")
    status, row = status_and_row(p, view("i1", "init", run("i1", "exited", 0)),
                                 view("i2", "init", run("i2", "exited", 0)), view("app", "app", run("app")))
    assert (row[1], row[2], status["phase"]) == ("1/1", "Running", "Running")
    assert conditions(status)["Ready"] == ("True", "", "")


def test_a_crash_looping_init_container() -> None:
    p = pod(init("i1"), init("i2"))
    crashed = view("i1", "init", run("i1", "exited", 1, restarts=2), previous=run("i1", "exited", 1, restarts=1),
                   restart_count=2, waiting=("CrashLoopBackOff", "back-off 20s restarting failed container=i1"))
    status, row = status_and_row(p, crashed, view("i2", "init"), view("app", "app"))
    assert (row[2], row[3], status["phase"]) == ("Init:CrashLoopBackOff", "2 (55s ago)", "Pending")
    first = status["initContainerStatuses"][0]
    assert first["lastState"]["terminated"]["containerID"] == "kinns://i1-2"   # the run that just failed


def test_a_failed_init_container_fails_a_never_restarting_pod() -> None:
    p = pod(init("i1"), policy="Never")
    status, row = status_and_row(p, view("i1", "init", run("i1", "exited", 3)), view("app", "app"))
    assert (row[2], status["phase"]) == ("Init:Error", "Failed")
    assert conditions(status)["Ready"] == ("False", "PodFailed", "")


def test_sidecars_count_toward_ready_and_containers() -> None:
    p = pod(init("log", sidecar=True), init("setup"))
    status, row = status_and_row(p, view("log", "sidecar", run("log")), view("setup", "init", run("setup")),
                                 view("app", "app"))
    assert (row[1], row[2]) == ("1/2", "Init:1/2")
    status, row = status_and_row(p, view("log", "sidecar", run("log")),
                                 view("setup", "init", run("setup", "exited", 0)), view("app", "app", run("app")))
    assert (row[1], row[2], status["phase"]) == ("2/2", "Running", "Running")
    unready = ContainerView(name="log", image="busybox", current=run("log"), kind="sidecar", started=True)
    status, _ = status_and_row(p, unready, view("setup", "init", run("setup", "exited", 0)),
                               view("app", "app", run("app")))
    assert conditions(status)["ContainersReady"] == ("False", "ContainersNotReady",
                                                     "containers with unready status: [log]")


def test_a_job_style_pod_with_a_sidecar_succeeds_once_the_sidecar_is_stopped() -> None:
    p = pod(init("log", sidecar=True), policy="Never")
    status, _ = status_and_row(p, view("log", "sidecar", run("log")), view("app", "app", run("app", "exited", 0)))
    assert status["phase"] == "Running"                     # the sidecar still runs
    status, row = status_and_row(p, view("log", "sidecar", run("log", "exited", 143)),
                                 view("app", "app", run("app", "exited", 0)))
    assert (status["phase"], row[2]) == ("Succeeded", "Completed")
    assert conditions(status)["Initialized"] == ("True", "PodCompleted", "")


def test_ephemeral_container_statuses() -> None:
    p = pod()
    p["spec"]["ephemeralContainers"] = [{"name": "debugger-x", "image": "busybox", "targetContainerName": "app"}]
    status, row = status_and_row(p, view("app", "app", run("app")), view("debugger-x", "ephemeral", run("debugger-x")))
    (eph,) = status["ephemeralContainerStatuses"]
    assert eph["state"] == {"running": {"startedAt": "2026-11-23T11:59:00Z"}}
    assert eph["ready"] is False and "started" not in eph
    assert (row[1], row[2]) == ("1/1", "Running")           # ephemeral containers are not counted


def test_termination_messages_land_in_state_and_last_state() -> None:
    p = pod(policy="Always")
    cur, prev = run("app", "exited", 1, restarts=1), run("app", "exited", 2)
    v = view("app", "app", cur, previous=prev, restart_count=1, message="disk full", last_message="oom",
             waiting=("CrashLoopBackOff", "back-off 10s"))
    status, _ = status_and_row(p, v)
    assert status["containerStatuses"][0]["lastState"]["terminated"]["message"] == "disk full"
    status, _ = status_and_row(p, view("app", "app", run("app", restarts=2), previous=cur, last_message="disk full"))
    assert status["containerStatuses"][0]["lastState"]["terminated"]["message"] == "disk full"
