"""Access-mode restrictions the scheduler enforces, as upstream's VolumeRestrictions plugin.

`ReadWriteOncePod` is a pod-level restriction: a claim with that access
mode may be used by one pod in the whole cluster.  A second pod that wants
it fails on every node with "node has pod using PersistentVolumeClaim with
the same name and ReadWriteOncePod access mode" (an Unschedulable status:
preemption is tried, and with no lower-priority pod to remove it finds "No
preemption victims found for incoming pod").

`ReadWriteOnce` is node-level and not the scheduler's business upstream:
pods on one node may share such a claim.  A kinns volume from the default
class is a local directory with node affinity, so a second pod that must
run elsewhere is refused by the VolumeBinding filter ("node(s) had volume
node affinity conflict", scheduler.py), exactly as on kind.

`failure_message` words the whole FailedScheduling message from per-node
reasons, with the preemption tail upstream's DefaultPreemption adds: nodes
refused for UnschedulableAndUnresolvable reasons are "Preemption is not
helpful for scheduling", nodes refused for Unschedulable ones (resources,
ports, ReadWriteOncePod), where kinns pods have no lower priority to
preempt, "No preemption victims found for incoming pod".
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable

Obj = dict[str, Any]

RWOP = "ReadWriteOncePod"
RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
# Filter failures that are Unschedulable (not ...AndUnresolvable): preemption could help.
PREEMPTIBLE = frozenset({"Insufficient cpu", "Insufficient memory", "Too many pods",
                         "node(s) didn't have free ports for the requested pod ports", RWOP_CONFLICT})


def _claims(pod: Obj) -> set[str]:
    return {str(v["persistentVolumeClaim"]["claimName"]) for v in (pod.get("spec") or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")}


def rwop_claims(pod: Obj, get_claim: Callable[[str], Obj | None]) -> set[str]:
    """The pod's claims with the ReadWriteOncePod access mode (`get_claim("ns/name")`)."""
    ns = (pod.get("metadata") or {}).get("namespace", "")
    out = set()
    for name in _claims(pod):
        claim = get_claim(f"{ns}/{name}")
        if claim is not None and RWOP in ((claim.get("spec") or {}).get("accessModes") or []):
            out.add(name)
    return out


def rwop_in_use(pod: Obj, get_claim: Callable[[str], Obj | None], pods: Callable[[], Iterable[Obj]],
                assumed: Iterable[str] = ()) -> bool:
    """Another scheduled (or assumed), unfinished pod already uses one of the pod's RWOP claims
    (`pods()` lists them; called only for a pod that has such a claim)."""
    wanted = rwop_claims(pod, get_claim)
    if not wanted:
        return False
    meta, assumed = pod.get("metadata") or {}, set(assumed)
    for other in pods():
        ometa = other.get("metadata") or {}
        if ometa.get("namespace") != meta.get("namespace") or ometa.get("uid") == meta.get("uid"):
            continue
        placed = bool((other.get("spec") or {}).get("nodeName")) or \
            f"{ometa.get('namespace')}/{ometa.get('name')}" in assumed
        if placed and (other.get("status") or {}).get("phase") not in ("Succeeded", "Failed") \
                and wanted & _claims(other):
            return True
    return False


def failure_message(reasons: Counter[str], total: int) -> str:
    """`0/N nodes are available: ...` with its preemption tail (reason strings sorted, as upstream)."""
    parts = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
    victims = sum(n for r, n in reasons.items() if r in PREEMPTIBLE)
    tail = Counter({"Preemption is not helpful for scheduling": total - victims,
                    "No preemption victims found for incoming pod": victims})
    tail_parts = ", ".join(sorted(f"{n} {r}" for r, n in tail.items() if n))
    return f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: {tail_parts}."
