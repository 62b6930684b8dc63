"""Object bookkeeping the API server does on every write, kind-independent.

What upstream's generic registry does around a kind's own strategy: system
metadata on create (uid, creationTimestamp, generateName), what an update
may and may not change (identity, status vs. spec through subresources),
generation bumps when the spec changes, and the pieces of graceful deletion
and finalizers.  Pure functions over dicts, so they read and test easily.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import uuid
from typing import Any, TypeVar, cast

import orjson

from .resources import ResourceType

# Kinds whose controllers watch metadata.generation against observedGeneration.
GENERATION_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
                              "ReplicationController", "PodDisruptionBudget", "NetworkPolicy"})

# Kinds whose status a create may not set (upstream PrepareForCreate clears it).
_STATUS_ON_CREATE: dict[str, dict[str, Any]] = {
    "Pod": {"phase": "Pending"},
    "Service": {"loadBalancer": {}},
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                  "desiredNumberScheduled": 0, "numberReady": 0},
    "PersistentVolume": {"phase": "Pending"},
    "PersistentVolumeClaim": {"phase": "Pending"},
    "Namespace": {"phase": "Active"},
    "Job": {},
    "CronJob": {},
    "ReplicationController": {"replicas": 0},
    "PodDisruptionBudget": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "HorizontalPodAutoscaler": {"currentMetrics": None, "desiredReplicas": 0},
}

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # upstream's generateName alphabet


# Values orjson would turn into something else (a str, a list) instead of
# failing: with these options it raises, and deep_copy falls back.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


T = TypeVar("T")


def deep_copy(obj: T) -> T:
    """A deep copy of an API object.

    Every write copies whole objects (a pod several times between create,
    binding and status updates), on the event loop; an orjson round trip
    copies JSON data about five times faster than `copy.deepcopy`.  What is
    not plain JSON (non-str keys, huge ints, dates, dataclasses) falls back
    to `copy.deepcopy`; tuples come back as lists, as from the wire."""
    try:
        return cast(T, orjson.loads(orjson.dumps(obj, option=_STRICT)))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return copy.deepcopy(obj)


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_NAME_CHARS) for _ in range(5))


def prepare_create(rt: ResourceType, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Fill system metadata of a new object; returns the object to store."""
    obj = deep_copy(obj)
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
    if rt.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(field, None)
    if rt.kind in GENERATION_KINDS:
        meta["generation"] = 1
    if rt.kind in _STATUS_ON_CREATE:
        obj["status"] = deep_copy(_STATUS_ON_CREATE[rt.kind])
    return obj


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def prepare_update(rt: ResourceType, new: dict[str, Any], old: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    """Merge what the client may change into the stored object.

    The main resource may not change status (when a status subresource
    exists); the status subresource may change only status.  Identity
    fields are always the stored ones.
    """
    new = deep_copy(new)
    new["apiVersion"] = rt.api_version
    new["kind"] = rt.kind
    if subresource == "status":
        merged = deep_copy(old)
        merged["status"] = new.get("status", {})
        return merged
    meta = new.setdefault("metadata", {})
    ometa = old["metadata"]
    for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "namespace", "generation"):
        if field in ometa:
            meta[field] = ometa[field]
        else:
            meta.pop(field, None)
    if meta.get("finalizers") == []:
        del meta["finalizers"]   # an emptied list is omitted, as Go's omitempty writes it
    if "status" in rt.subresources and "status" in old:
        new["status"] = deep_copy(old["status"])
    elif "status" in rt.subresources:
        new.pop("status", None)
    if rt.kind in GENERATION_KINDS and _spec_part(new) != _spec_part(old):
        meta["generation"] = int(ometa.get("generation", 1)) + 1
    return new


def same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from resourceVersion: an update that would change nothing."""
    ma = {k: v for k, v in a.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    mb = {k: v for k, v in b.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return ma == mb and {k: v for k, v in a.items() if k != "metadata"} == {
        k: v for k, v in b.items() if k != "metadata"
    }


def has_finalizers(obj: dict[str, Any]) -> bool:
    if obj.get("metadata", {}).get("finalizers"):
        return True
    return obj.get("kind") == "Namespace" and bool(obj.get("spec", {}).get("finalizers"))


def mark_deleting(obj: dict[str, Any], grace: int, finalizer: str | None) -> dict[str, Any]:
    """The object with deletionTimestamp set (and a GC finalizer added if asked)."""
    obj = deep_copy(obj)
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp"):
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=grace)
        meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["deletionGracePeriodSeconds"] = grace
    elif grace < int(meta.get("deletionGracePeriodSeconds", grace)):
        # A shorter grace period may shorten a pending deletion, never lengthen it.
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=grace)
        meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["deletionGracePeriodSeconds"] = grace
    if finalizer:
        fins = meta.setdefault("finalizers", [])
        if finalizer not in fins:
            fins.append(finalizer)
    if obj.get("kind") == "Namespace":
        obj.setdefault("status", {})["phase"] = "Terminating"
    return obj


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }
