"""The StatefulSet controller: pods with stable names, one ordinal at a time.

As upstream: replica i is the pod `<set>-<i>`, with hostname `<set>-<i>`,
subdomain `spec.serviceName`, and the labels `statefulset.kubernetes.io/pod-name`
and `apps.kubernetes.io/pod-index`.  With `podManagementPolicy: OrderedReady`
(the default) pod i+1 is created only once pods 0..i are Running and Ready,
and scaling down removes the highest ordinal first, one at a time;
`Parallel` creates and deletes them all at once.  A pod whose template is
out of date is replaced, highest ordinal first (RollingUpdate), down to
`partition`: pods below it are (re)made from the current revision.  The
template history is kept in ControllerRevisions (history.py): pods carry
their revision's name in `controller-revision-hash`, the status names the
current and update revisions, and `kubectl rollout undo sts/...` works.

Each pod also gets the claims its `volumeClaimTemplates` ask for, named
`<template>-<set>-<i>` and reused if they exist, so the data outlives the
pod and the set (retention policy Retain).  Binding those claims to volumes
is the storage layer's job.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..api.errors import ApiError
from ..client.client import Obj
from ..client.informer import index_by_owner_uid
from . import podutil, pvcretention
from .base import Controller
from .history import (CONTROLLER_REVISION, POD_REVISION_LABEL, History, apply_revision, controlled,
                      current_and_update, history_limit, to_trim)

REVISION_LABEL = POD_REVISION_LABEL


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def revision_name(rev: Obj) -> str:
    return str(rev["metadata"]["name"])


def versioned_set(sts: Obj, current: Obj, update: Obj, ordinal: int) -> tuple[Obj, str]:
    """newVersionedStatefulSetPod: below the partition (or, without rollingUpdate,
    below the current replicas) a pod is made from the current revision, else
    from the update revision.  Returns the set to build from and the revision name."""
    strategy = sts["spec"].get("updateStrategy") or {}
    ru = strategy.get("rollingUpdate")
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and (
            (ru is None and ordinal < int((sts.get("status") or {}).get("currentReplicas") or 0))
            or (ru is not None and ordinal < int(ru.get("partition") or 0))):
        return apply_revision(sts, current), revision_name(current)
    return apply_revision(sts, update), revision_name(update)


def build_pod(sts: Obj, ordinal: int, revision: str) -> Obj:
    name = pod_name(sts, ordinal)
    pod = podutil.pod_from_template(sts, sts["spec"]["template"], name=name, extra_labels={
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": str(ordinal),
        REVISION_LABEL: revision,
    })
    spec = pod["spec"]
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    volumes = list(spec.get("volumes") or [])
    have = {v["name"] for v in volumes}
    for t in sts["spec"].get("volumeClaimTemplates") or []:
        if t["metadata"]["name"] not in have:
            volumes.append({"name": t["metadata"]["name"],
                            "persistentVolumeClaim": {"claimName": claim_name(t, sts, ordinal)}})
    if volumes:
        spec["volumes"] = volumes
    return pod


def build_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name(template, sts, ordinal), "namespace": sts["metadata"]["namespace"],
                     "labels": {**(sts["spec"]["selector"].get("matchLabels") or {}), **(meta.get("labels") or {})}},
        "spec": template.get("spec") or {},
    }


def ordinal_of(sts: Obj, pod: Obj) -> int | None:
    prefix = sts["metadata"]["name"] + "-"
    name = pod["metadata"]["name"]
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


class StatefulSetController(Controller):
    name = "statefulset-controller"
    workers = 2

    def setup(self) -> None:
        self.sets = self.factory.informer("apps/v1", "StatefulSet")
        self.pods = self.factory.informer("v1", "Pod")
        self.claims = self.factory.informer("v1", "PersistentVolumeClaim")
        self.revisions = self.factory.informer(*CONTROLLER_REVISION)
        self.history = History(self.client)
        self.pods.add_indexer("owner", index_by_owner_uid)
        self.revisions.add_indexer("owner", index_by_owner_uid)
        self.revisions.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n),
                                    on_delete=self._pod_event)
        self.sets.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                               on_delete=self.enqueue_obj)
        self.pods.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n),
                               on_delete=self._pod_event)

    def _pod_event(self, pod: Obj) -> None:
        ref = podutil.controller_ref(pod)
        if ref and ref.get("kind") == "StatefulSet":
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.get(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return None
        ns = sts["metadata"]["namespace"]
        want = int(sts["spec"].get("replicas", 1))
        parallel = sts["spec"].get("podManagementPolicy") == "Parallel"
        revisions = controlled(self.revisions.by_index("owner", sts["metadata"]["uid"]), sts)
        current, update, collision = await current_and_update(self.history, sts, revisions)
        rev = revision_name(update)
        by_ordinal: dict[int, Obj] = {}
        for p in self.pods.by_index("owner", sts["metadata"]["uid"]):
            i = ordinal_of(sts, p)
            if i is not None:
                by_ordinal[i] = p
        # Create missing ordinals below `want`, in order.
        for i in range(want):
            pod = by_ordinal.get(i)
            if pod is not None and (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                await self._delete(ns, pod)  # a dead replica is replaced under the same name
                return 0.2
            if pod is None:
                await self._ensure_claims(sts, i)
                try:
                    versioned, label = versioned_set(sts, current, update, i)
                    await self.client.create(build_pod(versioned, i, label), ns)
                except ApiError as exc:
                    if exc.code != 409:
                        raise
                self.client.emit_event(sts, "SuccessfulCreate",
                                       f"create Pod {pod_name(sts, i)} in StatefulSet {sts['metadata']['name']} "
                                       "successful", component="statefulset-controller")
                if not parallel:
                    break
            elif not parallel and not (podutil.is_ready(pod) and podutil.is_active(pod)):
                break  # OrderedReady: wait for this one before the next
        # Claims' owners as persistentVolumeClaimRetentionPolicy says, before any pod goes.
        await pvcretention.sync(self.client, self.claims, sts, by_ordinal, claim_name)
        # Scale down: highest ordinals first.
        extra = sorted((i for i in by_ordinal if i >= want), reverse=True)
        for i in extra if parallel else extra[:1]:
            if not by_ordinal[i]["metadata"].get("deletionTimestamp"):
                await self._delete(ns, by_ordinal[i])
        # Rolling update: replace the highest out-of-date ordinal once all are ready.
        if not extra and (sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            partition = int(((sts["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {})
                            .get("partition", 0))
            members = [by_ordinal.get(i) for i in range(want)]
            if all(p is not None and podutil.is_ready(p) for p in members):
                for i in range(want - 1, partition - 1, -1):
                    stale = members[i]
                    if stale is not None and (stale["metadata"].get("labels") or {}).get(REVISION_LABEL) != rev:
                        await self._delete(ns, stale)
                        break
        await self._status(sts, by_ordinal, current, update, collision)
        # truncateHistory: revisions no pod runs, beyond the limit, oldest first.
        live = {revision_name(current), rev} | {(p["metadata"].get("labels") or {}).get(REVISION_LABEL, "")
                                                for p in by_ordinal.values()}
        for old in to_trim(revisions, live, history_limit(sts)):
            await self.history.delete(old)
        return None

    async def _ensure_claims(self, sts: Obj, ordinal: int) -> None:
        ns = sts["metadata"]["namespace"]
        for t in sts["spec"].get("volumeClaimTemplates") or []:
            if self.claims.get(f"{ns}/{claim_name(t, sts, ordinal)}") is None:
                try:
                    await self.client.create(build_claim(sts, t, ordinal), ns)
                except ApiError as exc:
                    if exc.code != 409:
                        raise

    async def _delete(self, ns: str, pod: Obj) -> None:
        try:
            await self.client.delete(("v1", "Pod"), pod["metadata"]["name"], ns,
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _status(self, sts: Obj, by_ordinal: dict[int, Obj], current: Obj, update: Obj,
                      collision: int) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        pods = [p for p in by_ordinal.values() if podutil.is_active(p)]
        min_ready = int(sts["spec"].get("minReadySeconds", 0))

        def at(rev: Obj) -> int:
            return sum(1 for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision_name(rev))
        status: dict[str, Any] = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": sum(1 for p in pods if podutil.is_ready(p)),
            "availableReplicas": sum(1 for p in pods if podutil.is_available(p, min_ready, now)),
            "currentReplicas": at(current),
            "updatedReplicas": at(update),
            "currentRevision": revision_name(current),
            "updateRevision": revision_name(update),
            "collisionCount": collision,
        }
        # completeRollingUpdate: once every pod runs the update revision, it is the current one.
        if ((sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
                and status["updatedReplicas"] == status["replicas"] == status["readyReplicas"]):
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]
        for key in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if status[key] == 0:
                del status[key]
        if (sts.get("status") or {}) != status:
            await self.client.update_status({**sts, "status": status})
