"""A pod's status from what the kubelet knows of its containers (pure).

Phase, conditions and containerStatuses as upstream's kubelet computes them
(getPhase, generateAPIPodStatus): a container waiting after a previous run
(CrashLoopBackOff) counts as stopped, so a crash-looping pod with restart
policy Always is Running, as `kubectl get pods` shows it; conditions keep
their lastTransitionTime until their status really changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .runtime import ContainerStatus


def ts(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerView:
    """What the kubelet knows of one container of a pod."""

    name: str
    image: str
    current: ContainerStatus | None = None      # the latest run
    previous: ContainerStatus | None = None     # the run before (lastState)
    restart_count: int = 0
    waiting: tuple[str, str] | None = None      # (reason, message) when not running
    ready: bool = False
    started: bool = False


def _terminated(st: ContainerStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "exitCode": st.exit_code if st.exit_code is not None else 0,
        "reason": st.reason or ("Completed" if st.exit_code == 0 else "Error"),
        "startedAt": ts(st.started_at),
        "finishedAt": ts(st.finished_at or st.started_at),
        "containerID": f"kinns://{st.id}",
    }
    if st.signal:
        out["signal"] = st.signal
    if st.message:
        out["message"] = st.message
    return out


def container_status(v: ContainerView) -> dict[str, Any]:
    state: dict[str, Any]
    cur = v.current
    if v.waiting is not None:
        state = {"waiting": {"reason": v.waiting[0], "message": v.waiting[1]} if v.waiting[1]
                 else {"reason": v.waiting[0]}}
    elif cur is not None and cur.state == "running":
        state = {"running": {"startedAt": ts(cur.started_at)}}
    elif cur is not None:
        state = {"terminated": _terminated(cur)}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    out: dict[str, Any] = {
        "name": v.name, "image": v.image, "imageID": "", "ready": v.ready, "started": v.started,
        "restartCount": v.restart_count, "state": state,
        "lastState": {"terminated": _terminated(v.previous)} if v.previous is not None else {},
    }
    if cur is not None:
        out["containerID"] = f"kinns://{cur.id}"
    return out


def phase(restart_policy: str, views: list[ContainerView]) -> str:
    running = waiting = stopped = succeeded = 0
    for v in views:
        cur = v.current
        if v.waiting is not None:
            if v.previous is not None or (cur is not None and cur.state == "exited"):
                stopped += 1
                last = cur if cur is not None and cur.state == "exited" else v.previous
                if last is not None and last.exit_code == 0:
                    succeeded += 1
            else:
                waiting += 1
        elif cur is None:
            waiting += 1
        elif cur.state == "running":
            running += 1
        else:
            stopped += 1
            if cur.exit_code == 0:
                succeeded += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Running" if restart_policy == "OnFailure" else "Failed"
    return "Pending"


def _condition(old: list[dict[str, Any]], ctype: str, ok: bool, now: str, reason: str = "") -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    out: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None,
                           "lastTransitionTime": prev["lastTransitionTime"]
                           if prev and prev.get("status") == status and prev.get("lastTransitionTime") else now}
    if reason and not ok:
        out["reason"] = reason
    return out


def pod_status(pod: dict[str, Any], views: list[ContainerView], *, pod_ip: str, host_ip: str,
               start_time: str, sandbox_ready: bool) -> dict[str, Any]:
    old = pod.get("status") or {}
    old_conds = old.get("conditions") or []
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec = pod.get("spec") or {}
    ph = phase(spec.get("restartPolicy", "Always"), views)
    all_ready = bool(views) and all(v.ready for v in views) and ph == "Running"
    not_ready_reason = "PodCompleted" if ph in ("Succeeded", "Failed") else "ContainersNotReady"
    conds = [
        _condition(old_conds, "PodReadyToStartContainers", sandbox_ready, now),
        _condition(old_conds, "Initialized", True, now),
        _condition(old_conds, "Ready", all_ready, now, not_ready_reason),
        _condition(old_conds, "ContainersReady", all_ready, now, not_ready_reason),
        _condition(old_conds, "PodScheduled", True, now),
    ]
    for c in conds:
        if c["type"] in ("Ready", "ContainersReady") and c["status"] == "False":
            unready = [v.name for v in views if not v.ready]
            c["message"] = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
            if not c["message"]:
                del c["message"]
    status: dict[str, Any] = {
        "phase": ph,
        "conditions": conds,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [container_status(v) for v in views],
        "qosClass": old.get("qosClass", "BestEffort"),
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
