"""Which nodes a DaemonSet's pods belong on, and the status it reports.

As upstream since 1.12: the controller does not pick nodes by itself; it
creates one pod per eligible node, pinned by a required node affinity on
`metadata.name`, with the tolerations every DaemonSet pod gets, and the
scheduler binds it.  Eligibility is the scheduler's own taint and affinity
test, so the two never disagree.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from . import podutil
from .scheduling import matches_affinity, tolerates

# Tolerations upstream adds to every DaemonSet pod.
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def daemon_pod(ds: dict[str, Any], node: str) -> dict[str, Any]:
    pod = podutil.pod_from_template(ds, ds["spec"]["template"], generate_name=ds["metadata"]["name"] + "-",
                                    extra_labels={"controller-revision-hash": template_generation(ds),
                                                  "pod-template-generation": template_generation(ds)})
    spec = pod["spec"]
    tolerations = list(spec.get("tolerations") or [])
    for t in DAEMON_TOLERATIONS:
        if t not in tolerations:
            tolerations.append(copy.deepcopy(t))
    spec["tolerations"] = tolerations
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}
    return pod


def template_generation(ds: dict[str, Any]) -> str:
    return str(ds["metadata"].get("generation", 1))


def node_of(pod: dict[str, Any]) -> str | None:
    """The node a daemon pod is pinned to (bound, or by its affinity)."""
    if pod.get("spec", {}).get("nodeName"):
        return str(pod["spec"]["nodeName"])
    terms = (((pod.get("spec", {}).get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields", []):
            if f.get("key") == "metadata.name" and f.get("values"):
                return str(f["values"][0])
    return None


def eligible(ds: dict[str, Any], node: dict[str, Any]) -> bool:
    probe = {"spec": dict(ds["spec"]["template"].get("spec") or {})}
    probe["spec"]["tolerations"] = list(probe["spec"].get("tolerations") or []) + DAEMON_TOLERATIONS
    if not matches_affinity(probe, node):
        return False
    for taint in node.get("spec", {}).get("taints", []) or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(probe["spec"]["tolerations"], taint):
            return False
    return True


@dataclass
class DaemonPlan:
    create_on: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)   # pod names
    status: dict[str, Any] = field(default_factory=dict)


def plan(ds: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], now: dt.datetime) -> DaemonPlan:
    p = DaemonPlan()
    gen = template_generation(ds)
    wanted = {n["metadata"]["name"] for n in nodes if eligible(ds, n)}
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        n = node_of(pod)
        if n:
            by_node.setdefault(n, []).append(pod)
    for name in sorted(wanted):
        here = by_node.get(name, [])
        live = [x for x in here if podutil.is_active(x)]
        failed = [x for x in here if not podutil.is_active(x)]
        p.delete += [x["metadata"]["name"] for x in failed]
        outdated = [x for x in live if x["metadata"].get("labels", {}).get("pod-template-generation") != gen]
        if outdated and len(live) == len(outdated):
            # Rolling update with maxUnavailable 1: replace one outdated pod at a time.
            p.delete.append(outdated[0]["metadata"]["name"])
        if not live:
            p.create_on.append(name)
        elif len(live) > 1:
            p.delete += [x["metadata"]["name"] for x in podutil.deletion_order(live)[:-1]]
    for name, here in by_node.items():
        if name not in wanted:
            p.delete += [x["metadata"]["name"] for x in here]
    min_ready = int(ds["spec"].get("minReadySeconds", 0))
    scheduled = [n for n in wanted if any(podutil.is_active(x) for x in by_node.get(n, []))]
    ready = [n for n in wanted if any(podutil.is_ready(x) for x in by_node.get(n, []))]
    available = [n for n in wanted if any(podutil.is_available(x, min_ready, now) for x in by_node.get(n, []))]
    updated = [n for n in wanted if any(x["metadata"].get("labels", {}).get("pod-template-generation") == gen
                                        and podutil.is_active(x) for x in by_node.get(n, []))]
    p.status = {
        "desiredNumberScheduled": len(wanted),
        "currentNumberScheduled": len(scheduled),
        "numberMisscheduled": sum(1 for n in by_node if n not in wanted),
        "numberReady": len(ready),
        "numberAvailable": len(available),
        "updatedNumberScheduled": len(updated),
        "observedGeneration": ds["metadata"].get("generation", 1),
    }
    if len(wanted) - len(available) > 0:
        p.status["numberUnavailable"] = len(wanted) - len(available)
    return p
