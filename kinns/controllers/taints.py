"""Taints and tolerations: the well-known keys and the matching rule.

Shared by the scheduler (which keeps pods off tainted nodes), the node
lifecycle controller (which writes the taints that mirror a node's
conditions), the taint-eviction controller and the DaemonSet controller
(whose pods tolerate node trouble).  Keys and rules as k8s.io/api core/v1
(well_known_taints.go, Toleration.ToleratesTaint).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# (condition type, status) -> the taint key that mirrors it (upstream's nodeConditionToTaintKeyStatusMap).
CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): MEMORY_PRESSURE,
    ("DiskPressure", "True"): DISK_PRESSURE,
    ("NetworkUnavailable", "True"): NETWORK_UNAVAILABLE,
    ("PIDPressure", "True"): PID_PRESSURE,
}


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """Whether any of `tolerations` tolerates `taint`."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if op == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def condition_taints(node: Obj) -> list[Obj]:
    """The NoSchedule taints the node's conditions and `spec.unschedulable` call for."""
    out = []
    for c in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((c.get("type", ""), c.get("status", "")))
        if key:
            out.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        out.append({"key": UNSCHEDULABLE, "effect": "NoSchedule"})
    return out
