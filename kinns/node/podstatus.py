"""A pod's status from what the kubelet knows of its containers (pure).

Phase, conditions and the three lists of container statuses
(`initContainerStatuses`, `containerStatuses`, `ephemeralContainerStatuses`)
as upstream's kubelet computes them (getPhase, generateAPIPodStatus,
convertToAPIContainerStatuses and the Generate*Condition functions of
pkg/kubelet/status):

- a container that has not run yet waits as `PodInitializing` in a pod with
  init containers, else `ContainerCreating`;
- a container waiting after a run (CrashLoopBackOff) shows that run as
  `lastState`, and counts as stopped, so a crash-looping pod with restart
  policy Always is Running, as `kubectl get pods` shows it;
- the pod is Pending until every regular init container has succeeded and
  every sidecar has started; a failed init container with restartPolicy
  Never fails the pod;
- `Initialized` is False (`ContainersNotInitialized`, "containers with
  incomplete status: [...]") until then, and stays True once an app
  container has run; `Ready`/`ContainersReady` count the sidecars;
- conditions keep their lastTransitionTime until their status changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .runtime import ContainerStatus

Obj = dict[str, Any]


def ts(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerView:
    """What the kubelet knows of one container of a pod."""

    name: str
    image: str
    current: ContainerStatus | None = None      # the latest run
    previous: ContainerStatus | None = None     # the run before
    restart_count: int = 0
    waiting: tuple[str, str] | None = None      # (reason, message) when not running
    ready: bool = False                         # running and its readiness probe passed
    started: bool = False                       # running and its startup probe passed
    kind: str = "app"                           # init | sidecar | app | ephemeral (containers.Kind)
    message: str = ""                           # termination message of `current`, once it exited
    last_message: str = ""                      # ... of the run `lastState` shows


def _terminated(st: ContainerStatus, message: str) -> Obj:
    out: Obj = {
        "exitCode": st.exit_code if st.exit_code is not None else 0,
        "reason": st.reason or ("Completed" if st.exit_code == 0 else "Error"),
        "startedAt": ts(st.started_at),
        "finishedAt": ts(st.finished_at or st.started_at),
        "containerID": f"kinns://{st.id}",
    }
    if st.signal:
        out["signal"] = st.signal
    if message or st.message:
        out["message"] = message or st.message
    return out


def container_status(v: ContainerView, default_waiting: str = "ContainerCreating") -> Obj:
    """One entry of a container status list."""
    cur = v.current
    exited = cur is not None and cur.state == "exited"
    state: Obj
    last: Obj = {}
    if v.previous is not None:
        last = {"terminated": _terminated(v.previous, v.last_message)}
    if v.waiting is not None:
        state = {"waiting": {"reason": v.waiting[0], "message": v.waiting[1]} if v.waiting[1]
                 else {"reason": v.waiting[0]}}
        if cur is not None and exited:
            last = {"terminated": _terminated(cur, v.message)}
    elif cur is not None and cur.state == "running":
        state = {"running": {"startedAt": ts(cur.started_at)}}
    elif cur is not None:
        state = {"terminated": _terminated(cur, v.message)}
    else:
        state = {"waiting": {"reason": default_waiting}}
    running = "running" in state
    if v.kind == "init":
        ready = "terminated" in state and state["terminated"]["exitCode"] == 0
    elif v.kind == "ephemeral":
        ready = False
    else:
        ready = v.ready and running
    out: Obj = {"name": v.name, "image": v.image, "imageID": "", "ready": ready,
                "restartCount": v.restart_count, "state": state, "lastState": last}
    if v.kind != "ephemeral":
        out["started"] = v.started and running
    if cur is not None:
        out["containerID"] = f"kinns://{cur.id}"
    return out


def _specs(pod: Obj, key: str) -> list[Obj]:
    return [c for c in (pod.get("spec") or {}).get(key) or [] if isinstance(c, dict)]


def _by_name(statuses: list[Obj]) -> dict[str, Obj]:
    return {s.get("name", ""): s for s in statuses}


def _sidecar(c: Obj) -> bool:
    return c.get("restartPolicy") == "Always"


def any_app_started(pod: Obj, statuses: list[Obj]) -> bool:
    """kubecontainer.HasAnyRegularContainerStarted: an app container is or was running."""
    names = {c.get("name") for c in _specs(pod, "containers")}
    return any(s.get("name") in names and ("running" in s["state"] or "terminated" in s["state"])
               for s in statuses)


def phase(pod: Obj, init_statuses: list[Obj], statuses: list[Obj]) -> str:
    """getPhase over the status lists."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy", "Always")
    every = _by_name(init_statuses + statuses)
    pending_init = pending_sidecars = failed_init = 0
    running = waiting = stopped = succeeded = unknown = 0
    for c in _specs(pod, "initContainers"):
        s = every.get(c.get("name", ""))
        state = (s or {}).get("state") or {}
        last_failed = (((s or {}).get("lastState") or {}).get("terminated") or {}).get("exitCode", 0) != 0
        has_last = "terminated" in ((s or {}).get("lastState") or {})
        if _sidecar(c):
            if s is None:
                unknown += 1
            elif "running" in state:
                pending_sidecars += 0 if s.get("started") else 1
                running += 1
            elif "waiting" in state and not has_last:
                pending_sidecars += 1
            continue
        if s is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += 1 if state["terminated"].get("exitCode", 0) != 0 else 0
        elif has_last:
            failed_init += 1 if last_failed else 0
        else:
            pending_init += 1
    for c in _specs(pod, "containers"):
        s = every.get(c.get("name", ""))
        state = (s or {}).get("state") or {}
        if s is None:
            unknown += 1
        elif "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += 1 if state["terminated"].get("exitCode", 0) == 0 else 0
        elif "terminated" in (s.get("lastState") or {}):
            stopped += 1
        else:
            waiting += 1
    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or (pending_sidecars and not any_app_started(pod, statuses)):
        return "Pending"
    if waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _condition(old: list[Obj], ctype: str, ok: bool, now: str, reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    out: Obj = {"type": ctype, "status": status, "lastProbeTime": None,
                "lastTransitionTime": prev["lastTransitionTime"]
                if prev and prev.get("status") == status and prev.get("lastTransitionTime") else now}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def initialized(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], ph: str) -> tuple[bool, str, str]:
    """GeneratePodInitializedCondition: (status, reason, message)."""
    if ph == "Succeeded":
        return True, "PodCompleted", ""
    if any_app_started(pod, statuses):
        return True, "", ""
    shown = _by_name(init_statuses)
    incomplete = []
    for c in _specs(pod, "initContainers"):
        s = shown.get(c.get("name", "")) or {}
        done = bool(s.get("started")) if _sidecar(c) else bool(s.get("ready"))
        if not done:
            incomplete.append(str(c.get("name")))
    if incomplete:
        return False, "ContainersNotInitialized", f"containers with incomplete status: {_go_list(incomplete)}"
    return True, "", ""


def containers_ready(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], ph: str) -> tuple[bool, str, str]:
    """GenerateContainersReadyCondition (sidecars count): (status, reason, message)."""
    if ph == "Succeeded":
        return False, "PodCompleted", ""
    if ph == "Failed":
        return False, "PodFailed", ""
    every = _by_name(init_statuses + statuses)
    wanted = [c for c in _specs(pod, "initContainers") if _sidecar(c)] + _specs(pod, "containers")
    unready = [str(c.get("name")) for c in wanted if not (every.get(c.get("name", "")) or {}).get("ready")]
    if unready:
        return False, "ContainersNotReady", f"containers with unready status: {_go_list(unready)}"
    return True, "", ""


# kubetypes.PodConditionByKubelet: the conditions the kubelet computes itself.
KUBELET_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized", "ContainersReady",
                                "PodReadyToStartContainers"})


def pod_status(pod: Obj, views: list[ContainerView], *, pod_ip: str, host_ip: str,
               start_time: str, sandbox_ready: bool) -> Obj:
    """The whole status the kubelet writes for a pod."""
    old = pod.get("status") or {}
    old_conds = old.get("conditions") or []
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    default_waiting = "PodInitializing" if _specs(pod, "initContainers") else "ContainerCreating"
    lists: dict[str, list[Obj]] = {"init": [], "app": [], "ephemeral": []}
    for v in views:
        key = "init" if v.kind in ("init", "sidecar") else v.kind
        lists[key].append(container_status(v, default_waiting))
    ph = phase(pod, lists["init"], lists["app"])
    init_ok, init_reason, init_msg = initialized(pod, lists["init"], lists["app"], ph)
    ready_ok, ready_reason, ready_msg = containers_ready(pod, lists["init"], lists["app"], ph)
    # Conditions the kubelet does not own (DisruptionTarget from an eviction, readiness
    # gates) stay as the API has them, first, as the status manager's mergePodStatus keeps them.
    conds = [dict(c) for c in old_conds if c.get("type") not in KUBELET_CONDITIONS] + [
        _condition(old_conds, "PodReadyToStartContainers", sandbox_ready, now),
        _condition(old_conds, "Initialized", init_ok, now, init_reason, init_msg),
        _condition(old_conds, "Ready", ready_ok, now, ready_reason, ready_msg),
        _condition(old_conds, "ContainersReady", ready_ok, now, ready_reason, ready_msg),
        _condition(old_conds, "PodScheduled", True, now),
    ]
    status: Obj = {
        "phase": ph,
        "conditions": conds,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": lists["app"],
        "qosClass": old.get("qosClass", "BestEffort"),
    }
    if lists["init"]:
        status["initContainerStatuses"] = lists["init"]
    if lists["ephemeral"]:
        status["ephemeralContainerStatuses"] = lists["ephemeral"]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
