"""Which nodes a DaemonSet's pods belong on, and the status it reports.

As upstream since 1.12: the controller does not pick nodes by itself; it
creates one pod per eligible node, pinned by a required node affinity on
`metadata.name`, with the tolerations every DaemonSet pod gets, and the
scheduler binds it.  Eligibility is the scheduler's own taint and affinity
test, so the two never disagree; a node that turns not-ready or unreachable
gets no new daemon pod but keeps the one it has (they tolerate that
NoExecute taint forever).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from . import podutil
from .scheduling import matches_affinity
from .taints import (DISK_PRESSURE, MEMORY_PRESSURE, NETWORK_UNAVAILABLE, NOT_READY, PID_PRESSURE,
                     UNREACHABLE, UNSCHEDULABLE, tolerates)

# The labels upstream puts on daemon pods: the revision hash and the template generation.
REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
# Tolerations upstream adds to every DaemonSet pod (AddOrUpdateDaemonPodTolerations):
# no limit on not-ready/unreachable, so node trouble never evicts a daemon.
DAEMON_TOLERATIONS = [
    {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
]
# ...and to those on the host network, which need no pod network to start.
HOST_NETWORK_TOLERATIONS = [{"key": NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"}]


def _same_toleration(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Upstream's MatchToleration: same key, operator, value and effect."""
    return all(a.get(f, d) == b.get(f, d) for f, d in (("key", ""), ("operator", "Equal"), ("value", ""),
                                                          ("effect", "")))


def daemon_tolerations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec's tolerations with the daemon ones added, each replacing a
    template toleration it matches (one with a `tolerationSeconds`, say)."""
    tolerations = [copy.deepcopy(t) for t in spec.get("tolerations") or []]
    for want in DAEMON_TOLERATIONS + (HOST_NETWORK_TOLERATIONS if spec.get("hostNetwork") else []):
        if any(_same_toleration(t, want) for t in tolerations):
            tolerations = [copy.deepcopy(want) if _same_toleration(t, want) else t for t in tolerations]
        else:
            tolerations.append(copy.deepcopy(want))
    return tolerations


def daemon_pod(ds: dict[str, Any], node: str, hash_: str = "") -> dict[str, Any]:
    """A daemon pod for `node`, labelled with the DaemonSet's current revision
    hash (see history.py) and template generation."""
    pod = podutil.pod_from_template(ds, ds["spec"]["template"], generate_name=ds["metadata"]["name"] + "-",
                                    extra_labels={REVISION_LABEL: hash_ or template_generation(ds),
                                                  GENERATION_LABEL: template_generation(ds)})
    spec = pod["spec"]
    spec["tolerations"] = daemon_tolerations(spec)
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}
    return pod


def template_generation(ds: dict[str, Any]) -> str:
    return str(ds["metadata"].get("generation", 1))


def is_updated(ds: dict[str, Any], pod: dict[str, Any], hash_: str) -> bool:
    """IsPodUpdated: the pod runs the current revision (by hash) or the current template generation."""
    labels = pod.get("metadata", {}).get("labels") or {}
    return bool(hash_) and labels.get(REVISION_LABEL) == hash_ or labels.get(GENERATION_LABEL) == template_generation(ds)


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


def should_run(ds: dict[str, Any], node: dict[str, Any]) -> tuple[bool, bool]:
    """(should run, may keep running) a daemon pod on `node` (upstream's NodeShouldRunDaemonPod).

    A NoSchedule taint the daemon does not tolerate (a node gone not-ready or
    unreachable, say) stops new pods but leaves running ones; an untolerated
    NoExecute taint, a node name or affinity that does not match, removes them.
    """
    spec = ds["spec"]["template"].get("spec") or {}
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return False, False
    probe = {"spec": {**spec, "tolerations": daemon_tolerations(spec)}}
    if not matches_affinity(probe, node):
        return False, False
    untolerated = {t.get("effect") for t in node.get("spec", {}).get("taints", []) or []
                   if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(probe["spec"]["tolerations"], t)}
    return not untolerated, "NoExecute" not in untolerated


@dataclass
class DaemonPlan:
    create_on: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)   # pod names
    status: dict[str, Any] = field(default_factory=dict)


def plan(ds: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], now: dt.datetime,
         hash_: str = "") -> DaemonPlan:
    """The next step for `ds`; `hash_` names its current revision (history.py)."""
    p = DaemonPlan()
    on_delete = (ds["spec"].get("updateStrategy") or {}).get("type") == "OnDelete"
    verdicts = {n["metadata"]["name"]: should_run(ds, n) for n in nodes}
    wanted = {name for name, (run, _) in verdicts.items() if run}
    # Pods stay where they may keep running, and on nodes already gone (the pod GC's).
    unwanted = {name for name, (_, keep) in verdicts.items() if not keep}
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
        outdated = [x for x in live if not is_updated(ds, x, hash_)]
        if outdated and len(live) == len(outdated) and not on_delete:
            # Rolling update with maxUnavailable 1: replace one outdated pod at a time
            # (with OnDelete, outdated pods stay until someone deletes them).
            p.delete.append(outdated[0]["metadata"]["name"])
        if not live:
            p.create_on.append(name)
        elif len(live) > 1:
            p.delete += [x["metadata"]["name"] for x in podutil.deletion_order(live)[:-1]]
    for name, here in by_node.items():
        if name in unwanted:
            p.delete += [x["metadata"]["name"] for x in here]
    min_ready = int(ds["spec"].get("minReadySeconds", 0))
    scheduled = [n for n in wanted if any(podutil.is_active(x) for x in by_node.get(n, []))]
    ready = [n for n in wanted if any(podutil.is_ready(x) for x in by_node.get(n, []))]
    available = [n for n in wanted if any(podutil.is_available(x, min_ready, now) for x in by_node.get(n, []))]
    updated = [n for n in wanted if any(is_updated(ds, x, hash_) and podutil.is_active(x) for x in by_node.get(n, []))]
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
