"""A Deployment's next step, computed from the Deployment and its ReplicaSets.

Upstream's deployment controller in one pure function: find (or describe)
the ReplicaSet whose template matches, then for RollingUpdate scale it up
within maxSurge and scale old ones down within maxUnavailable, or for
Recreate take old ones to zero first.  Also the status `kubectl rollout
status` reads (updated/ready/available replicas, the Progressing and
Available conditions) and the revision annotations `kubectl rollout
history` reads.  The controller applies the plan; running it again on the
new state moves one step further, until nothing changes.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A short stable name suffix for a pod template (upstream: FNV-32a, safe alphabet)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS) + str(collision_count).encode()
    h = _fnv32a(data)
    out = ""
    while h:
        h, r = divmod(h, len(_SAFE))
        out += _SAFE[r]
    return out or _SAFE[0]


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return t


def resolve(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent (maxSurge "25%") against a replica count."""
    if isinstance(value, int):
        return value
    s = str(value)
    if s.endswith("%"):
        frac = int(s[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(s)


def _replicas(obj: dict[str, Any]) -> int:
    return int(obj.get("spec", {}).get("replicas", 0))


def _st(obj: dict[str, Any], key: str) -> int:
    return int(obj.get("status", {}).get(key, 0) or 0)


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int(rs.get("metadata", {}).get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


@dataclass
class Plan:
    create: dict[str, Any] | None = None            # a new ReplicaSet to create
    scale: dict[str, int] = field(default_factory=dict)   # ReplicaSet name -> replicas
    annotate: dict[str, dict[str, str]] = field(default_factory=dict)  # RS name -> annotations to set
    delete: list[str] = field(default_factory=list)  # old ReplicaSets beyond revisionHistoryLimit
    status: dict[str, Any] = field(default_factory=dict)
    revision: str = ""                               # the Deployment's revision annotation


def new_replicaset(d: dict[str, Any], rss: list[dict[str, Any]]) -> dict[str, Any] | None:
    want = _strip_hash(d["spec"]["template"])
    for rs in rss:
        if _strip_hash(rs["spec"]["template"]) == want:
            return rs
    return None


def build_replicaset(d: dict[str, Any], revision: int, replicas: int) -> dict[str, Any]:
    template = copy.deepcopy(d["spec"]["template"])
    collision = int(d.get("status", {}).get("collisionCount", 0) or 0)
    h = template_hash(_strip_hash(template), collision)
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(d["spec"]["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    meta = d["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{h}", "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {REVISION: str(revision), DESIRED: str(_replicas(d)),
                            MAX_REPLICAS: str(_replicas(d) + _max_surge(d))},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"replicas": replicas, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                 "selector": selector, "template": template},
    }


def _max_surge(d: dict[str, Any]) -> int:
    strategy = d["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    ru = strategy.get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", "25%"), _replicas(d), True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), _replicas(d), False)
    return 1 if surge == 0 and unavailable == 0 else surge


def _max_unavailable(d: dict[str, Any]) -> int:
    ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", "25%"), _replicas(d), True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), _replicas(d), False)
    if surge == 0 and unavailable == 0:
        return 1
    return min(unavailable, _replicas(d))


def plan(d: dict[str, Any], rss: list[dict[str, Any]], now: dt.datetime) -> Plan:
    """The next step for Deployment `d` owning ReplicaSets `rss`."""
    p = Plan()
    want = _replicas(d)
    new = new_replicaset(d, rss)
    old = [rs for rs in rss if rs is not new]
    max_old_rev = max((_revision(rs) for rs in old), default=0)
    if d["spec"].get("paused"):
        p.status = _status(d, rss, new, now)
        return p
    if new is None:
        revision = max_old_rev + 1
        recreate = (d["spec"].get("strategy") or {}).get("type") == "Recreate"
        old_total = sum(_replicas(rs) for rs in old)
        if recreate:
            start = want if old_total == 0 else 0
        elif not old:
            start = want
        else:
            start = max(0, min(want, want + _max_surge(d) - old_total))
        p.create = build_replicaset(d, revision, start)
        p.revision = str(revision)
        p.status = _status(d, rss, None, now)
        return p
    rev = _revision(new)
    if rev <= max_old_rev:  # a rollback to an old template makes it the newest revision
        rev = max_old_rev + 1
    p.revision = str(rev)
    ann = (new.get("metadata", {}).get("annotations") or {})
    wanted_ann = {REVISION: str(rev), DESIRED: str(want), MAX_REPLICAS: str(want + _max_surge(d))}
    if any(ann.get(k) != v for k, v in wanted_ann.items()):
        p.annotate[new["metadata"]["name"]] = wanted_ann
    if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
        if any(_replicas(rs) > 0 for rs in old):
            for rs in old:
                if _replicas(rs) > 0:
                    p.scale[rs["metadata"]["name"]] = 0
        elif all(_st(rs, "replicas") == 0 for rs in old) and _replicas(new) != want:
            p.scale[new["metadata"]["name"]] = want
    else:
        _rolling(d, new, old, p)
    p.delete = _cleanup(d, old, p)
    p.status = _status(d, rss, new, now)
    return p


def _rolling(d: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]], p: Plan) -> None:
    want = _replicas(d)
    surge, unavailable = _max_surge(d), _max_unavailable(d)
    total = _replicas(new) + sum(_replicas(rs) for rs in old)
    # Scale the new ReplicaSet up (or down when the Deployment shrank).
    if _replicas(new) > want:
        p.scale[new["metadata"]["name"]] = want
    elif _replicas(new) < want:
        room = want + surge - total
        if room > 0:
            p.scale[new["metadata"]["name"]] = min(want, _replicas(new) + room)
    if not old or not any(_replicas(rs) for rs in old):
        return
    # Scale old ReplicaSets down, never below want - maxUnavailable available
    # pods, counting the new ReplicaSet's not-yet-available pods as missing.
    new_name = new["metadata"]["name"]
    new_target = p.scale.get(new_name, _replicas(new))
    all_pods = new_target + sum(_replicas(rs) for rs in old)
    min_available = want - unavailable
    new_unavailable = max(0, _replicas(new) - _st(new, "availableReplicas"))
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return
    targets = {rs["metadata"]["name"]: _replicas(rs) for rs in old}
    ordered = sorted(old, key=_revision)
    # First the old pods that are not available: removing them costs nothing.
    for rs in ordered:
        name = rs["metadata"]["name"]
        cut = min(budget, max(0, targets[name] - _st(rs, "availableReplicas")))
        targets[name] -= cut
        budget -= cut
    # Then available ones, as long as enough stay available.
    available = _st(new, "availableReplicas") + sum(min(_st(rs, "availableReplicas"), targets[rs["metadata"]["name"]]) for rs in old)
    room = min(budget, available - min_available)
    for rs in ordered:
        if room <= 0:
            break
        name = rs["metadata"]["name"]
        cut = min(room, targets[name])
        targets[name] -= cut
        room -= cut
    for rs in old:
        name = rs["metadata"]["name"]
        if targets[name] != _replicas(rs):
            p.scale[name] = targets[name]


def _cleanup(d: dict[str, Any], old: list[dict[str, Any]], p: Plan) -> list[str]:
    limit = int(d["spec"].get("revisionHistoryLimit", 10))
    idle = [rs for rs in old if _replicas(rs) == 0 and p.scale.get(rs["metadata"]["name"], 0) == 0
            and _st(rs, "replicas") == 0]
    idle.sort(key=_revision)
    extra = len(idle) - limit
    return [rs["metadata"]["name"] for rs in idle[:extra]] if extra > 0 else []


def _cond(d: dict[str, Any], ctype: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    prev: dict[str, Any] | None = next(
        (c for c in d.get("status", {}).get("conditions", []) or [] if c.get("type") == ctype), None)
    changed = prev is None or prev.get("status") != status
    return {
        "type": ctype, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now if (prev is None or prev.get("reason") != reason or changed) else prev.get("lastUpdateTime", now),
        "lastTransitionTime": now if (changed or prev is None) else prev.get("lastTransitionTime", now),
    }


def _status(d: dict[str, Any], rss: list[dict[str, Any]], new: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    want = _replicas(d)
    replicas = sum(_st(rs, "replicas") for rs in rss)
    updated = _st(new, "replicas") if new else 0
    ready = sum(_st(rs, "readyReplicas") for rs in rss)
    available = sum(_st(rs, "availableReplicas") for rs in rss)
    ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    name = d["metadata"]["name"]
    min_available = want - _max_unavailable(d) if (d["spec"].get("strategy") or {}).get("type") != "Recreate" else want
    avail_ok = available >= min_available
    conds = [_cond(d, "Available", "True" if avail_ok else "False",
                   "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                   "Deployment has minimum availability." if avail_ok else "Deployment does not have minimum availability.",
                   ts)]
    if new is not None and updated == want and replicas == want and available >= want:
        conds.append(_cond(d, "Progressing", "True", "NewReplicaSetAvailable",
                           f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.', ts))
    elif new is not None:
        conds.append(_cond(d, "Progressing", "True", "ReplicaSetUpdated",
                           f'ReplicaSet "{new["metadata"]["name"]}" is progressing.', ts))
    else:
        conds.append(_cond(d, "Progressing", "True", "NewReplicaSetCreated",
                           f'Created new replica set "{name}"', ts))
    out: dict[str, Any] = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
        "availableReplicas": available, "unavailableReplicas": max(0, want - available)
        if replicas or want else 0,
        "conditions": conds,
    }
    for k in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
        if out[k] == 0:
            del out[k]
    if d.get("status", {}).get("collisionCount"):
        out["collisionCount"] = d["status"]["collisionCount"]
    return out
