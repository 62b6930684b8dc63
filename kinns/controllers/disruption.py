"""The disruption controller: keeps each PodDisruptionBudget's status true to its pods.

As upstream's (pkg/controller/disruption): for a budget it counts the pods
its selector picks, how many of them are healthy (Ready, not terminating,
not just evicted), and how many must stay healthy:

- `minAvailable: N` needs N healthy pods out of the pods that exist;
- `minAvailable: "P%"` and `maxUnavailable` (int or percent) scale against
  the pods that *should* exist: the sum of `spec.replicas` of the
  controllers owning the pods (ReplicationController, Deployment through
  its ReplicaSet, ReplicaSet, StatefulSet, or any kind with a `scale`
  subresource).  A pod with no controller makes such a budget unreliable
  (Warning UnmanagedPods); a controller without a scale fails the sync.

`disruptionsAllowed = currentHealthy - desiredHealthy` (never below 0, and 0
while no pod is expected), with the condition DisruptionAllowed
(SufficientPods / InsufficientPods) and `observedGeneration`; a failed sync
writes 0 and SyncFailed, so evictions stop rather than guess.  Pods the
eviction handler recorded in `disruptedPods` stay out of currentHealthy for
2 minutes or until their deletion shows; the budget is looked at again then.

It also clears a `DisruptionTarget` condition left on a pod that was not
deleted after all (an eviction whose delete failed) once it is 2 minutes
old.  The pure arithmetic is the module's top half; `DisruptionController`
applies it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from ..api import pdb as budget
from ..api.errors import ApiError
from ..client.client import Obj, object_key
from ..client.informer import Informer
from . import podutil
from .base import Controller

# How long a DisruptionTarget condition may stay on a pod that is not terminating.
STALE_DISRUPTION_TIMEOUT = dt.timedelta(minutes=2)

_POD_KEY = "pod:"
# The source upstream's disruption controller records its events under.
EVENT_SOURCE = "controllermanager"


@dataclass(frozen=True)
class Scale:
    """A controller's identity and its desired number of pods."""

    uid: str
    replicas: int


# Given a pod's controller ownerReference and namespace: its Scale, None if
# this finder does not know the kind, or raise ValueError with upstream's text.
Finder = Callable[[Obj, str], Awaitable["Scale | None"]]


@dataclass
class Expected:
    expected: int = 0
    desired_healthy: int = 0
    unmanaged: list[str] = field(default_factory=list)


async def expected_pods(pdb: Obj, pods: list[Obj], finders: list[Finder]) -> Expected:
    """getExpectedPodCount: how many pods should exist and how many must be healthy."""
    spec = pdb.get("spec") or {}
    out = Expected()
    if spec.get("maxUnavailable") is not None:
        out.expected, out.unmanaged = await _expected_scale(pods, finders)
        max_unavailable = budget.scaled_value(spec["maxUnavailable"], out.expected, True)
        out.desired_healthy = max(0, out.expected - max_unavailable)
    elif spec.get("minAvailable") is not None:
        if isinstance(spec["minAvailable"], int):
            out.desired_healthy = spec["minAvailable"]
            out.expected = len(pods)
        else:
            out.expected, out.unmanaged = await _expected_scale(pods, finders)
            out.desired_healthy = budget.scaled_value(spec["minAvailable"], out.expected, True)
    return out


async def _expected_scale(pods: list[Obj], finders: list[Finder]) -> tuple[int, list[str]]:
    """getExpectedScale: the summed scale of the pods' controllers, and the pods without one."""
    scales: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        ref = podutil.controller_ref(pod)
        if ref is None:
            unmanaged.append(pod["metadata"]["name"])
            continue
        if ref.get("uid") in scales:
            continue
        for finder in finders:
            found = await finder(ref, pod["metadata"]["namespace"])
            if found is not None:
                scales[found.uid] = found.replicas
                break
        else:
            raise ValueError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
    return sum(scales.values()), unmanaged


def disrupted_pods(pdb: Obj, pods: list[Obj], now: dt.datetime) -> tuple[dict[str, str], dt.datetime | None, list[Obj]]:
    """buildDisruptedPodMap: the entries still pending, when to look again, and
    the pods that outlived their entry (upstream warns NotDeleted on them)."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: dt.datetime | None = None
    overdue: list[Obj] = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        when = budget.parse_time(recorded.get(pod["metadata"]["name"]))
        if when is None:
            continue
        expected_deletion = when + budget.DELETION_TIMEOUT
        if expected_deletion < now:
            overdue.append(pod)
        else:
            recheck = expected_deletion if recheck is None or expected_deletion < recheck else recheck
            kept[pod["metadata"]["name"]] = recorded[pod["metadata"]["name"]]
    return kept, recheck, overdue


def count_healthy(pods: list[Obj], disrupted: dict[str, str], now: dt.datetime) -> int:
    """countHealthyPods: Ready, not being deleted, not about to be."""
    healthy = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        when = budget.parse_time(disrupted.get(pod["metadata"]["name"]))
        if when is not None and when + budget.DELETION_TIMEOUT > now:
            continue
        if budget.is_pod_ready(pod):
            healthy += 1
    return healthy


def new_status(pdb: Obj, current_healthy: int, want: Expected, disrupted: dict[str, str],
               now: dt.datetime) -> Obj | None:
    """updatePdbStatus: the status to write, or None when the stored one is current."""
    allowed = current_healthy - want.desired_healthy
    if want.expected <= 0 or allowed <= 0:
        allowed = 0
    old = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation")
    if (old.get("currentHealthy", 0) == current_healthy and old.get("desiredHealthy", 0) == want.desired_healthy
            and old.get("expectedPods", 0) == want.expected and old.get("disruptionsAllowed", 0) == allowed
            and (old.get("disruptedPods") or {}) == disrupted and old.get("observedGeneration") == generation
            and budget.conditions_up_to_date(pdb)):
        return None
    status: Obj = {"currentHealthy": current_healthy, "desiredHealthy": want.desired_healthy,
                   "disruptionsAllowed": allowed, "expectedPods": want.expected}
    if disrupted:
        status["disruptedPods"] = dict(disrupted)
    if generation:
        status["observedGeneration"] = generation
    status["conditions"] = [dict(c) for c in old.get("conditions") or []]
    out = {**pdb, "status": status}
    budget.update_disruption_allowed_condition(out, now)
    return status


def fail_safe_status(pdb: Obj, message: str, now: dt.datetime) -> Obj:
    """failSafe: no disruption allowed, and the condition says why."""
    status: Obj = {**(pdb.get("status") or {}), "disruptionsAllowed": 0}
    status["conditions"] = [dict(c) for c in status.get("conditions") or []]
    budget.set_condition(status["conditions"], {
        "type": budget.DISRUPTION_ALLOWED, "status": "False", "reason": budget.SYNC_FAILED,
        "message": message, "observedGeneration": status.get("observedGeneration")}, now)
    return status


def stale_disruption_wait(pod: Obj, now: dt.datetime) -> float | None:
    """nonTerminatingPodHasStaleDisruptionCondition: seconds until the pod's
    DisruptionTarget=True is stale (0: now), None if it has none to clear."""
    if pod["metadata"].get("deletionTimestamp"):
        return None
    cond = podutil.condition(pod, budget.DISRUPTION_TARGET)
    phase = (pod.get("status") or {}).get("phase")
    if (cond is None or cond.get("status") != "True" or cond.get("reason") == "TerminationByKubelet"
            or phase in ("Succeeded", "Failed")):
        return None
    since = budget.parse_time(cond.get("lastTransitionTime")) or now
    return max(0.0, (since + STALE_DISRUPTION_TIMEOUT - now).total_seconds())


# ------------------------------------------------------------------ controller


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class DisruptionController(Controller):
    name = "disruption-controller"
    workers = 2

    def setup(self) -> None:
        self.budgets = self.factory.informer("policy/v1", "PodDisruptionBudget")
        self.pods = self.factory.informer("v1", "Pod")
        self.rcs = self.factory.informer("v1", "ReplicationController")
        self.rss = self.factory.informer("apps/v1", "ReplicaSet")
        self.deployments = self.factory.informer("apps/v1", "Deployment")
        self.statefulsets = self.factory.informer("apps/v1", "StatefulSet")
        self.budgets.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                                  on_delete=self.enqueue_obj)
        self.pods.add_handlers(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n),
                               on_delete=lambda p: self._pod_event(p, deleted=True))

    def finders(self) -> list[Finder]:
        """Upstream's order: RC, Deployment (via its ReplicaSet), ReplicaSet, StatefulSet, any scale."""
        return [self._rc_scale, self._deployment_scale, self._replicaset_scale, self._statefulset_scale,
                self._generic_scale]

    def _pod_event(self, pod: Obj, deleted: bool = False) -> None:
        for b in self.budgets.list(pod["metadata"].get("namespace")):
            if budget.selects(b, pod):
                self.enqueue(object_key(b))
        if not deleted:
            wait = stale_disruption_wait(pod, dt.datetime.now(dt.timezone.utc))
            if wait is not None:
                self.queue.add_after(_POD_KEY + object_key(pod), wait)

    # The finders: the scale of the controller a pod's controllerRef names.

    def _owned(self, cache: Informer, ref: Obj, ns: str, kind: str, groups: tuple[str, ...]) -> Obj | None:
        if ref.get("kind") != kind or _group(str(ref.get("apiVersion", ""))) not in groups:
            return None
        obj: Obj | None = cache.get(f"{ns}/{ref.get('name')}")
        return obj if obj is not None and obj["metadata"].get("uid") == ref.get("uid") else None

    @staticmethod
    def _scale(obj: Obj) -> Scale:
        replicas = (obj.get("spec") or {}).get("replicas")
        return Scale(obj["metadata"]["uid"], 1 if replicas is None else int(replicas))

    async def _rc_scale(self, ref: Obj, ns: str) -> Scale | None:
        rc = self._owned(self.rcs, ref, ns, "ReplicationController", ("",))
        return self._scale(rc) if rc else None

    async def _replicaset_scale(self, ref: Obj, ns: str) -> Scale | None:
        rs = self._owned(self.rss, ref, ns, "ReplicaSet", ("apps", "extensions"))
        if rs is None or (podutil.controller_ref(rs) or {}).get("kind") == "Deployment":
            return None
        return self._scale(rs)

    async def _deployment_scale(self, ref: Obj, ns: str) -> Scale | None:
        rs = self._owned(self.rss, ref, ns, "ReplicaSet", ("apps", "extensions"))
        owner = podutil.controller_ref(rs) if rs else None
        if owner is None:
            return None
        d = self._owned(self.deployments, owner, ns, "Deployment", ("apps", "extensions"))
        return self._scale(d) if d else None

    async def _statefulset_scale(self, ref: Obj, ns: str) -> Scale | None:
        sts = self._owned(self.statefulsets, ref, ns, "StatefulSet", ("apps",))
        return self._scale(sts) if sts else None

    async def _generic_scale(self, ref: Obj, ns: str) -> Scale | None:
        """getScaleController: any kind with a scale subresource (a custom resource, say)."""
        api_version, kind = str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
        try:
            rt = self.client.resource((api_version, kind))
        except ValueError:
            raise ValueError(f'no matches for kind "{kind}" in version "{api_version}"') from None
        if "scale" not in rt.subresources:
            raise ValueError(f"{rt.group_resource} does not implement the scale subresource")
        try:
            scale = await self.client.get(rt, str(ref.get("name")), ns, subresource="scale")
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        if scale["metadata"].get("uid") != ref.get("uid"):
            return None
        return Scale(scale["metadata"]["uid"], int((scale.get("spec") or {}).get("replicas") or 0))

    # Reconciling.

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(_POD_KEY):
            return await self._clear_stale_condition(key[len(_POD_KEY):])
        pdb = self.budgets.get(key)
        if pdb is None:
            return None
        try:
            return await self._sync(pdb)
        except ApiError as exc:
            if exc.code == 409:
                raise  # a newer budget: retried without the fail-safe, as upstream
            failure = exc.message
        except ValueError as exc:
            failure = str(exc)
        # Upstream's "fail open": if nothing else, at least allow no disruption; the
        # next change of a pod or of the budget tries again.
        status = fail_safe_status(pdb, failure, dt.datetime.now(dt.timezone.utc))
        await self.client.update_status({**pdb, "status": status})
        return None

    async def _sync(self, pdb: Obj) -> float | None:
        now = dt.datetime.now(dt.timezone.utc)
        sel = budget.selector(pdb)
        pods = [p for p in self.pods.list(pdb["metadata"]["namespace"])
                if sel is not None and sel.matches(p["metadata"].get("labels"))]
        if not pods:
            self.client.emit_event(pdb, "NoPods", "No matching pods found", component=EVENT_SOURCE)
        try:
            want = await expected_pods(pdb, pods, self.finders())
        except ValueError as exc:
            self.client.emit_event(pdb, "CalculateExpectedPodCountFailed",
                                   f"Failed to calculate the number of expected pods: {exc}",
                                   type="Warning", component=EVENT_SOURCE)
            raise
        if want.unmanaged:
            from ..api.validation import go_label_selector  # noqa: PLC0415 - only for this message

            self.client.emit_event(pdb, "UnmanagedPods", (
                "Pods selected by this PodDisruptionBudget (selector: "
                f"&{go_label_selector((pdb.get('spec') or {}).get('selector'))}) were found to be unmanaged. "
                "As a result, the status of the PDB cannot be calculated correctly, which may result in "
                'undefined behavior. To account for these pods please set ".spec.minAvailable" field of the '
                "PDB to an integer value."), type="Warning", component=EVENT_SOURCE)
        disrupted, recheck, overdue = disrupted_pods(pdb, pods, now)
        for pod in overdue:
            ns = pdb["metadata"]["namespace"]
            self.client.emit_event(pod, "NotDeleted", f"Pod was expected by PDB {ns}/{ns} to be deleted but it wasn't",
                                   type="Warning", component=EVENT_SOURCE)
        status = new_status(pdb, count_healthy(pods, disrupted, now), want, disrupted, now)
        if status is not None:
            await self.client.update_status({**pdb, "status": status})
        return None if recheck is None else max(0.0, (recheck - now).total_seconds())

    async def _clear_stale_condition(self, key: str) -> float | None:
        """syncStalePodDisruption: DisruptionTarget back to False on a pod that stayed."""
        pod = self.pods.get(key)
        if pod is None:
            return None
        wait = stale_disruption_wait(pod, dt.datetime.now(dt.timezone.utc))
        if wait is None:
            return None
        if wait > 0:
            return wait
        # podutil.UpdatePodCondition replaces the condition whole: reason and message go.
        cleared = {"type": budget.DISRUPTION_TARGET, "status": "False", "lastProbeTime": None,
                   "lastTransitionTime": budget.rfc3339(dt.datetime.now(dt.timezone.utc))}
        new = {**pod, "status": dict(pod.get("status") or {})}
        new["status"]["conditions"] = [cleared if c.get("type") == budget.DISRUPTION_TARGET else c
                                       for c in pod["status"].get("conditions") or []]
        await self.client.update_status(new)
        return None
