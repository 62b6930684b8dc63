"""What a node's heartbeats say and what follows from them, as pure decisions.

Upstream splits node failure handling between the node lifecycle
controller (pkg/controller/nodelifecycle), the taint-eviction controller
(pkg/controller/tainteviction) and the pod GC; `nodelifecycle`,
`tainteviction` and `podgc` are their kinns twins.  They read caches, call
the functions here and write the answers; nothing here does I/O, so every
rule below is unit-tested with plain dicts and numbers.

- Health.  A kubelet proves it is alive by renewing its Lease
  `kube-node-lease/<node>` (every 10 s) and by posting a new
  `lastHeartbeatTime` in the node's Ready condition.  `observe` records, on
  the controller's own monotonic clock, when either last *changed*: the
  timestamps' values are never compared with our clock, so clock skew between
  machines cannot fake a failure.  After the grace period (50 s) with no
  change, `unknown_conditions` turns Ready and the pressure conditions
  Unknown ("Kubelet stopped posting node status.").
- Taints.  NoSchedule taints mirror the conditions at once
  (`taints.condition_taints`); the NoExecute `not-ready`/`unreachable` taint that
  evicts pods follows the Ready condition through a rate-limited queue per
  zone (`zone_state`, `TokenBucket`), and not at all while every zone is
  fully disrupted: when no node at all answers, the fault is more likely
  the control plane's or the network's than every node's (upstream's
  "master disruption mode").
- Pods.  When the controller itself moves Ready away from True, every pod
  on the node gets Ready=False (`pod_not_ready_conditions`), so Services stop
  sending it traffic while it stays Running.  `eviction_deadline` says when
  a pod on a NoExecute-tainted node is deleted: at once if it does not
  tolerate a taint, else when the shortest `tolerationSeconds` of the
  tolerations it uses runs out, counted from each taint's `timeAdded`.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from .taints import CONDITION_TAINTS, NOT_READY, UNREACHABLE, UNSCHEDULABLE, condition_taints, tolerates

Obj = dict[str, Any]

_CONDITION_TAINT_KEYS = frozenset(CONDITION_TAINTS.values())

# The conditions a silent kubelet can no longer vouch for (NetworkUnavailable
# belongs to the network plugin, so upstream leaves it alone).
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

STOPPED_REASON, STOPPED_MESSAGE = "NodeStatusUnknown", "Kubelet stopped posting node status."
NEVER_REASON, NEVER_MESSAGE = "NodeStatusNeverUpdated", "Kubelet never posted node status."

# Zone states (upstream's ZoneState).
NORMAL, PARTIAL, FULL = "Normal", "PartialDisruption", "FullDisruption"

IMMEDIATELY = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


# ------------------------------------------------------------------ time

def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(t: dt.datetime) -> str:
    """RFC 3339 in whole seconds, as metav1.Time is serialised."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(ts: Any) -> dt.datetime | None:
    """metav1.Time or MicroTime text; None when absent or malformed."""
    if not isinstance(ts, str) or not ts:
        return None
    text = ts[:-1] + "+00:00" if ts.endswith("Z") else ts
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------- health

def condition(obj: Obj, ctype: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            found: Obj = c
            return found
    return None


def ready_status(node: Obj) -> str | None:
    """"True", "False", "Unknown", or None when the kubelet never posted a Ready condition."""
    c = condition(node, "Ready")
    return None if c is None else str(c.get("status", "Unknown"))


@dataclass(frozen=True)
class NodeHealth:
    """When the controller last saw a sign of life from a node, on its own clock."""

    probe: float                  # monotonic seconds of the last heartbeat or lease renewal seen
    has_ready: bool               # the node had a Ready condition when last seen
    heartbeat: str | None = None  # that condition's lastHeartbeatTime
    renew: dt.datetime | None = None  # the Lease's renewTime when last seen


def observe(prev: NodeHealth | None, node: Obj, lease: Obj | None, now: float,
            wall_now: dt.datetime) -> NodeHealth:
    """Fold what the caches show now into the node's health record.

    A new heartbeat value in Ready, or a lease renewed to a later time, resets
    the probe to `now`.  A node seen for the first time starts its grace
    period now (a restarted controller gives every node a fresh one), except
    one that never posted status: its grace runs from its creation.
    """
    ready = condition(node, "Ready")
    heartbeat = None if ready is None else ready.get("lastHeartbeatTime")
    if prev is None:
        probe = now
        if ready is None:
            created = parse_time((node.get("metadata") or {}).get("creationTimestamp"))
            if created is not None:
                probe = now - max(0.0, (wall_now - created).total_seconds())
        health = NodeHealth(probe, ready is not None, heartbeat, None)
    elif prev.has_ready != (ready is not None) or (ready is not None and heartbeat != prev.heartbeat):
        health = NodeHealth(now, ready is not None, heartbeat, prev.renew)
    else:
        health = prev
    renew = parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
    if renew is not None and (health.renew is None or renew > health.renew):
        # A lease renewed later than last seen is a sign of life, even from a
        # kubelet that never posted status (upstream trusts it the same way).
        health = NodeHealth(now, health.has_ready, health.heartbeat, renew)
    return health


def is_stale(health: NodeHealth, now: float, grace: float, startup_grace: float) -> bool:
    """No sign of life for longer than the grace period (the startup one if status was never posted)."""
    return now > health.probe + (grace if health.has_ready else startup_grace)


def unknown_conditions(node: Obj, now_ts: str) -> list[Obj] | None:
    """The node's conditions with the monitored ones turned Unknown, or None
    when Ready is Unknown already (nothing to write)."""
    conds = [copy.deepcopy(c) for c in (node.get("status") or {}).get("conditions") or []]
    before = copy.deepcopy(next((c for c in conds if c.get("type") == "Ready"), None))
    created = (node.get("metadata") or {}).get("creationTimestamp")
    for ctype in MONITORED_CONDITIONS:
        cur = next((c for c in conds if c.get("type") == ctype), None)
        if cur is None:
            conds.append({"type": ctype, "status": "Unknown", "reason": NEVER_REASON, "message": NEVER_MESSAGE,
                          "lastHeartbeatTime": created, "lastTransitionTime": now_ts})
        elif cur.get("status") != "Unknown":
            cur.update(status="Unknown", reason=STOPPED_REASON, message=STOPPED_MESSAGE, lastTransitionTime=now_ts)
    after = next(c for c in conds if c.get("type") == "Ready")
    return None if after == before else conds


def after_write(health: NodeHealth, node: Obj) -> NodeHealth:
    """The record once our own status write is in: our Ready condition is no sign of life."""
    ready = condition(node, "Ready")
    return NodeHealth(health.probe, ready is not None, None if ready is None else ready.get("lastHeartbeatTime"),
                      health.renew)


# ---------------------------------------------------------------- taints

def _same(a: Obj, b: Obj) -> bool:
    """Upstream's MatchTaint: one taint per key and effect."""
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def _controller_noschedule(t: Obj) -> bool:
    return t.get("effect") == "NoSchedule" and (t.get("key") == UNSCHEDULABLE or t.get("key") in _CONDITION_TAINT_KEYS)


def reconcile_noschedule(node: Obj, now_ts: str) -> list[Obj] | None:
    """The node's taints with the condition NoSchedule taints brought in line,
    or None when they already are (upstream's doNoScheduleTaintingPass)."""
    want = condition_taints(node)
    have = [t for t in (node.get("spec") or {}).get("taints") or [] if _controller_noschedule(t)]
    add = [t for t in want if not any(_same(t, h) for h in have)]
    remove = [h for h in have if not any(_same(h, t) for t in want)]
    if not add and not remove:
        return None
    return swap_taints(node, add, remove, now_ts)


def swap_taints(node: Obj, add: Iterable[Obj], remove: Iterable[Obj], now_ts: str) -> list[Obj]:
    """The node's taints minus `remove`, plus `add` stamped `timeAdded` (upstream's
    SwapNodeControllerTaint); a taint already there keeps its own time."""
    taints = [copy.deepcopy(t) for t in (node.get("spec") or {}).get("taints") or []]
    taints = [t for t in taints if not any(_same(t, r) for r in remove)]
    for a in add:
        if not any(_same(t, a) for t in taints):
            taints.append({**a, "timeAdded": now_ts})
    return taints


def noexecute_taint(status: str | None) -> str | None:
    """The NoExecute taint key a Ready status calls for (None: none)."""
    return {"False": NOT_READY, "Unknown": UNREACHABLE}.get(status or "")


def has_taint(node: Obj, key: str, effect: str) -> bool:
    return any(t.get("key") == key and t.get("effect") == effect for t in (node.get("spec") or {}).get("taints") or [])


def without_noexecute(node: Obj) -> list[Obj] | None:
    """The node's taints without the controller's NoExecute ones, or None if it has none
    (upstream's markNodeAsReachable)."""
    taints = (node.get("spec") or {}).get("taints") or []
    keep = [t for t in taints if not (t.get("effect") == "NoExecute" and t.get("key") in (NOT_READY, UNREACHABLE))]
    return None if len(keep) == len(taints) else keep


# ------------------------------------------------------------ disruption

def zone_key(node: Obj) -> str:
    """Upstream's GetZoneKey: region and zone labels, joined so distinct pairs stay distinct."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    region = labels.get("topology.kubernetes.io/region") or labels.get("failure-domain.beta.kubernetes.io/region", "")
    zone = labels.get("topology.kubernetes.io/zone") or labels.get("failure-domain.beta.kubernetes.io/zone", "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def zone_state(statuses: Iterable[str | None], unhealthy_threshold: float = 0.55) -> str:
    """Normal, PartialDisruption or FullDisruption for one zone's Ready statuses."""
    ready = not_ready = 0
    for s in statuses:
        if s == "True":
            ready += 1
        else:
            not_ready += 1
    if ready == 0 and not_ready > 0:
        return FULL
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return PARTIAL
    return NORMAL


def zone_qps(state: str, size: int, *, rate: float = 0.1, secondary_rate: float = 0.01,
             large_cluster: int = 50) -> float:
    """How many nodes per second may get a NoExecute taint in a zone in this state
    (`--node-eviction-rate`, `--secondary-node-eviction-rate`, `--large-cluster-size-threshold`).
    A partially disrupted small cluster stops tainting altogether."""
    if state == PARTIAL:
        return secondary_rate if size > large_cluster else 0.0
    return rate


class TokenBucket:
    """A rate limiter with a burst of one: the first node goes at once, the next 1/qps later."""

    def __init__(self, qps: float) -> None:
        self.qps = qps
        self._next = float("-inf")

    def set_rate(self, qps: float) -> None:
        """A new rate starts with a full bucket, as upstream's SwapLimiter."""
        if qps != self.qps:
            self.qps = qps
            self._next = float("-inf")

    def try_take(self, now: float) -> bool:
        if self.qps <= 0 or now < self._next:
            return False
        self._next = now + 1.0 / self.qps
        return True


# ------------------------------------------------------------------ pods

def pod_not_ready_conditions(pod: Obj, now_ts: str) -> list[Obj] | None:
    """The pod's conditions with Ready turned False (upstream's MarkPodsNotReady), or
    None when there is nothing to change (no Ready condition, or already False)."""
    conds = [copy.deepcopy(c) for c in (pod.get("status") or {}).get("conditions") or []]
    ready = next((c for c in conds if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "False":
        return None
    ready.update(status="False", lastTransitionTime=now_ts)
    return conds


def with_condition(conds: list[Obj], new: Obj) -> list[Obj]:
    """`conds` with `new` replacing the condition of its type (upstream's UpdatePodCondition)."""
    old = next((c for c in conds if c.get("type") == new.get("type")), None)
    if old is not None and old.get("status") == new.get("status"):
        new = {**new, "lastTransitionTime": old.get("lastTransitionTime", new.get("lastTransitionTime"))}
    return [c for c in conds if c.get("type") != new.get("type")] + [new]


def noexecute_taints(node: Obj | None) -> list[Obj]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def eviction_deadline(pod: Obj, taints: list[Obj], seen: dict[tuple[str, str], dt.datetime] | None = None
                      ) -> dt.datetime | None:
    """When a pod on a node with these NoExecute taints is to be deleted.

    None: never (no such taint, or every one tolerated without a limit).
    `IMMEDIATELY` for a taint the pod does not tolerate.  Otherwise each taint
    is covered by the first toleration that matches it (upstream's
    GetMatchingTolerations); a limited one runs from the taint's `timeAdded`
    (or from when the caller first saw a taint written without one, `seen`).
    """
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    deadline: dt.datetime | None = None
    for taint in taints:
        used = next((t for t in tolerations if tolerates([t], taint)), None)
        if used is None:
            return IMMEDIATELY
        seconds = used.get("tolerationSeconds")
        if seconds is None:
            continue
        if int(seconds) <= 0:
            return IMMEDIATELY
        start = parse_time(taint.get("timeAdded")) or (seen or {}).get((taint.get("key", ""), taint.get("effect", "")))
        if start is None:
            continue  # the caller records when it saw this taint and asks again
        at = start + dt.timedelta(seconds=int(seconds))
        deadline = at if deadline is None else min(deadline, at)
    return deadline
