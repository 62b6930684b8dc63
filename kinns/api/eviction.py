"""The `pods/eviction` subresource: a pod deletion that asks its disruption budget first.

What `kubectl drain` (and the cluster autoscaler, and `kubectl evict` plugins)
POST instead of a DELETE, as upstream's EvictionREST
(pkg/registry/core/pod/storage/eviction.go, v1.32):

- a pod that is Pending, Succeeded, Failed or already terminating costs its
  application nothing, so it is deleted without looking at any budget;
- otherwise the one PodDisruptionBudget selecting the pod decides (more than
  one is an error).  While `status.disruptionsAllowed` is 0 the answer is 429
  TooManyRequests, "Cannot evict pod as it would violate the pod's disruption
  budget.", with a `DisruptionBudget` cause saying how many healthy pods the
  budget needs and has; drain prints it and tries again 5 s later.  Else one
  disruption is spent: the budget's status is written with
  `disruptionsAllowed` one less and the pod named in `disruptedPods`, so the
  next eviction, before the disruption controller recounts, sees the new
  figure.  A budget whose status is older than its spec answers 429 "is still
  being processed" (with Retry-After 10).
- a pod that is not ready costs nothing either while the budget is met (or
  always, with `unhealthyPodEvictionPolicy: AlwaysAllow`); it is deleted with
  a resourceVersion precondition so it cannot turn ready meanwhile.
- the pod gets the condition `DisruptionTarget` (reason EvictionByEvictionAPI)
  before its graceful deletion starts, and the answer is 201 with a Success
  Status.

The budget arithmetic the disruption controller shares lives in pdb.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from . import codec, objects, pdb
from .errors import ApiError, bad_request, conflict, forbidden
from .request import Request, Response
from .resources import REGISTRY, ResourceType
from .store.base import ConflictError

if TYPE_CHECKING:
    from .rest import ResourceHandlers, Target

Obj = dict[str, Any]

# Most disrupted pods a budget may hold before evictions stop (MaxDisruptedPodSize).
MAX_DISRUPTED_PODS = 2000
# EvictionsRetry: conflicting writers are retried this often, this far apart.
RETRIES = 20
RETRY_DELAY = 0.5

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
SUCCESS: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _pdb_type() -> ResourceType:
    rt = REGISTRY.by_path("policy", "v1", "poddisruptionbudgets")
    assert rt is not None
    return rt


def too_many_requests(cause: str, retry_after: int = 0) -> ApiError:
    """errors.NewTooManyRequests with a DisruptionBudget cause."""
    details: Obj = {"causes": [{"reason": pdb.DISRUPTION_BUDGET_CAUSE, "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return ApiError(429, "TooManyRequests", VIOLATION, details)


def still_processing(name: str) -> ApiError:
    return too_many_requests(f"The disruption budget {name} is still being processed by the server.", 10)


def can_ignore_budget(pod: Obj) -> bool:
    """canIgnorePDB: deleting a pod that is not running (or already going) disrupts nothing."""
    return ((pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending")
            or bool(pod["metadata"].get("deletionTimestamp")))


def _enforce_resource_version(pod: Obj) -> bool:
    """shouldEnforceResourceVersion: only a live pod could turn ready under us."""
    return ((pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and not pod["metadata"].get("deletionTimestamp"))


def _rv_unset(opts: Obj) -> bool:
    return not (opts.get("preconditions") or {}).get("resourceVersion")


def _with_rv(opts: Obj, rv: str) -> Obj:
    out = dict(opts)
    out["preconditions"] = {**(opts.get("preconditions") or {}), "resourceVersion": rv}
    return out


def delete_options(body: Any, t: Target, req: Request) -> Obj:
    """The Eviction's deleteOptions with the request's dryRun pushed in (propagateDryRun)."""
    if not isinstance(body, dict):
        raise bad_request("Object 'Kind' is missing in the request body; expected a JSON object")
    kind, av = body.get("kind") or "Eviction", body.get("apiVersion") or "policy/v1"
    if kind != "Eviction" or av not in ("policy/v1", "policy/v1beta1"):
        raise bad_request(f"not a Eviction object: {av}, Kind={kind}")
    meta = body.get("metadata") or {}
    if meta.get("namespace") and meta["namespace"] != t.namespace:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    if meta.get("name") != t.name:
        raise bad_request("name in URL does not match name in Eviction object")
    opts: Obj = dict(body.get("deleteOptions") or {})
    query_dry = [req.param("dryRun")] if req.param("dryRun") else []
    if not opts.get("dryRun"):
        opts["dryRun"] = query_dry
    elif query_dry and query_dry != opts["dryRun"]:
        raise ApiError(500, "InternalError", "Non-matching dry-run options in request and content: "
                       f"[{' '.join(query_dry)}] and [{' '.join(opts['dryRun'])}]")
    return opts


def budgets_for(h: ResourceHandlers, pod: Obj) -> list[Obj]:
    """The PodDisruptionBudgets of the pod's namespace that select it."""
    ns = pod["metadata"]["namespace"]
    return [b for b in h.store.list(_pdb_type().group_resource, ns) if pdb.selects(b, pod)]


def spend_disruption(budget: Obj, pod_name: str, now: dt.datetime) -> Obj:
    """checkAndDecrement: the budget's status after one more disruption, or the
    ApiError that refuses it."""
    status = budget.get("status") or {}
    name = budget["metadata"]["name"]
    if int(status.get("observedGeneration") or 0) < int(budget["metadata"].get("generation") or 0):
        raise still_processing(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise forbidden("poddisruptionbudget", "policy", name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise forbidden("poddisruptionbudget", "policy", name,
                        "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise too_many_requests(f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently")
    new = objects.deep_copy(budget)
    new_status = new.setdefault("status", {})
    new_status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        pdb.update_disruption_allowed_condition(new, now)
    new_status.setdefault("disruptedPods", {})[pod_name] = pdb.rfc3339(now)
    return new


async def _charge_budget(h: ResourceHandlers, budget: Obj, pod_name: str, dry_run: bool) -> None:
    """Spend one disruption of `budget`, re-reading it after each conflicting write."""
    rt = _pdb_type()
    key = (rt.group_resource, budget["metadata"]["namespace"], budget["metadata"]["name"])
    for _ in range(RETRIES):
        new = spend_disruption(budget, pod_name, dt.datetime.now(dt.timezone.utc))
        if dry_run:
            return
        try:
            await h.store.update(key, new, budget["metadata"]["resourceVersion"])
            return
        except ConflictError:
            await asyncio.sleep(RETRY_DELAY)
            fresh = h.store.get(key)
            if fresh is None:
                raise ApiError(404, "NotFound", f'poddisruptionbudgets.policy "{key[2]}" not found',
                               {"name": key[2], "group": "policy", "kind": "poddisruptionbudgets"}) from None
            budget = fresh
    raise ApiError(504, "Timeout", f'Timeout: couldn\'t update PodDisruptionBudget "{key[2]}" due to conflicts',
                   {"retryAfterSeconds": 10})


def _mark_disruption_target(pod: Obj, now: dt.datetime) -> Obj:
    """The pod with DisruptionTarget=True (podutil.UpdatePodCondition keeps the
    transition time when the status is unchanged)."""
    new = objects.deep_copy(pod)
    conds = new.setdefault("status", {}).setdefault("conditions", [])
    cond: Obj = {"type": pdb.DISRUPTION_TARGET, "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": pdb.rfc3339(now), "reason": "EvictionByEvictionAPI",
                 "message": "Eviction API: evicting"}
    for i, old in enumerate(conds):
        if old.get("type") == pdb.DISRUPTION_TARGET:
            if old.get("status") == "True":
                cond["lastTransitionTime"] = old.get("lastTransitionTime") or cond["lastTransitionTime"]
            conds[i] = cond
            break
    else:
        conds.append(cond)
    return new


async def _delete_with_condition(h: ResourceHandlers, t: Target, opts: Obj) -> None:
    """addConditionAndDeletePod: mark the pod as a disruption target, then delete it gracefully."""
    pod = h.get_object(t)
    if "All" not in (opts.get("dryRun") or []):
        pre = opts.get("preconditions") or {}
        meta = pod["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict("Pod", "", t.name, f"the UID in the precondition ({pre['uid']}) does not match the UID "
                           f"in record ({meta.get('uid')}). The object might have been deleted and then recreated")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict("Pod", "", t.name, f"the ResourceVersion in the precondition ({pre['resourceVersion']}) "
                           f"does not match the ResourceVersion in record ({meta.get('resourceVersion')}). "
                           "The object might have been modified")
        marked = _mark_disruption_target(pod, dt.datetime.now(dt.timezone.utc))
        if marked != pod:
            try:
                pod = await h.store.update(t.key(), marked, meta.get("resourceVersion"))
            except ConflictError:
                raise conflict("pods", "", t.name, "the object has been modified; please apply your changes "
                               "to the latest version and try again") from None
            if not _rv_unset(opts):
                opts = _with_rv(opts, pod["metadata"]["resourceVersion"])
        pod = h.get_object(t)
    await h._delete_one(t, pod, opts)


async def evict(h: ResourceHandlers, t: Target, req: Request) -> Response:
    """POST pods/<name>/eviction (EvictionREST.Create)."""
    original = delete_options(codec.decode_body(req), t, req)
    dry_run = "All" in (original.get("dryRun") or [])
    # Pods whose deletion disrupts nothing skip the budgets (retried on conflicts
    # unless the caller pinned a resourceVersion).
    for attempt in range(RETRIES):
        pod = h.get_object(t)
        if not can_ignore_budget(pod):
            break
        opts = original
        if _enforce_resource_version(pod) and _rv_unset(original):
            opts = _with_rv(original, pod["metadata"]["resourceVersion"])
        try:
            await _delete_with_condition(h, t, opts)
        except ApiError as exc:
            if exc.code != 409 or not _rv_unset(original) or attempt == RETRIES - 1:
                raise
            await asyncio.sleep(RETRY_DELAY)
            continue
        return Response(201, obj=dict(SUCCESS))

    budgets = budgets_for(h, pod)
    if len(budgets) > 1:
        raise ApiError(500, "", "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                       "does not support.")
    pin_version = False
    if budgets:
        budget = budgets[0]
        policy = (budget.get("spec") or {}).get("unhealthyPodEvictionPolicy")
        status = budget.get("status") or {}
        healthy_enough = (int(status.get("currentHealthy") or 0) >= int(status.get("desiredHealthy") or 0)
                          and int(status.get("desiredHealthy") or 0) > 0)
        if not pdb.is_pod_ready(pod) and (policy == "AlwaysAllow" or healthy_enough):
            # An unready pod counts towards nothing: delete it without spending a disruption.
            pin_version = True
        else:
            try:
                await _charge_budget(h, budget, pod["metadata"]["name"], dry_run)
            except ApiError as exc:
                retry_after = (exc.details or {}).get("retryAfterSeconds")
                if exc.code == 429 and retry_after:
                    return Response(429, obj=exc.status(), headers={"Retry-After": str(retry_after)})
                raise
    opts = _with_rv(original, pod["metadata"]["resourceVersion"]) if pin_version else original
    try:
        await _delete_with_condition(h, t, opts)
    except ApiError as exc:
        if exc.code == 409 and pin_version and _rv_unset(original):
            err = still_processing(budgets[0]["metadata"]["name"])
            return Response(429, obj=err.status(), headers={"Retry-After": "10"})
        raise
    return Response(201, obj=dict(SUCCESS))
