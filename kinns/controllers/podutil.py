"""Pod facts that several controllers need: readiness, availability, ownership.

Kept in one place so the ReplicaSet, Deployment, DaemonSet and StatefulSet
controllers agree on what "ready" and "available" mean (upstream's
podutil.IsPodReady / IsPodAvailable), and create pods from templates the
same way.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any


def parse_time(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def is_active(pod: dict[str, Any]) -> bool:
    return (pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            and not pod.get("metadata", {}).get("deletionTimestamp"))


def is_ready(pod: dict[str, Any]) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def is_available(pod: dict[str, Any], min_ready_seconds: int, now: dt.datetime) -> bool:
    c = condition(pod, "Ready")
    if not c or c.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(c.get("lastTransitionTime"))
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True,
    }


def pod_from_template(owner: dict[str, Any], template: dict[str, Any], *, name: str = "",
                      generate_name: str = "", extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Pod as upstream's controllers create it from a template."""
    meta = copy.deepcopy(template.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels.update(extra_labels or {})
    pod_meta: dict[str, Any] = {
        "namespace": owner["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = meta["annotations"]
    if name:
        pod_meta["name"] = name
    else:
        pod_meta["generateName"] = generate_name or owner["metadata"]["name"] + "-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods in the order upstream prefers to delete them when scaling down.

    Unscheduled before scheduled, pending before running, not ready before
    ready, more restarts before fewer, newer before older.
    """
    def restarts(p: dict[str, Any]) -> int:
        return sum(int(s.get("restartCount", 0)) for s in p.get("status", {}).get("containerStatuses", []) or [])

    def key(p: dict[str, Any]) -> tuple[int, int, int, int, str]:
        return (
            1 if p.get("spec", {}).get("nodeName") else 0,
            _PHASE_RANK.get(p.get("status", {}).get("phase", "Pending"), 0),
            1 if is_ready(p) else 0,
            -restarts(p),
            _neg_time(p.get("metadata", {}).get("creationTimestamp", "")),
        )
    return sorted(pods, key=key)


def _neg_time(ts: str) -> str:
    # Newer first: invert each digit so a plain string sort puts later times first.
    return "".join(chr(ord("9") - ord(ch) + ord("0")) if ch.isdigit() else ch for ch in ts)
