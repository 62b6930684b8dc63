"""PodDisruptionBudget facts that the eviction subresource and the disruption controller share.

Two parties read and write a budget's status, as upstream: the disruption
controller (kinns/controllers/disruption.py) computes `currentHealthy`,
`desiredHealthy`, `expectedPods` and `disruptionsAllowed` from the pods, and
the API server's `pods/eviction` handler (eviction.py) spends one allowed
disruption per eviction and notes the pod in `disruptedPods` until the
controller sees it gone.  Both must agree on which pods a budget selects,
how an int-or-percent scales, and how the `DisruptionAllowed` condition
reads, so those live here, pure (k8s.io/component-helpers
apps/poddisruptionbudget, apimachinery meta.SetStatusCondition,
intstr.GetScaledValueFromIntOrPercent).  Validation of the kind
(ValidatePodDisruptionBudgetSpec) is here too.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from .errors import INVALID, NOT_SUPPORTED, FieldError
from .selectors import LabelSelector

Obj = dict[str, Any]

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
# policyv1.DisruptionBudgetCause: the cause type of a refused eviction.
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
# The pod condition an eviction (or a preemption, a taint eviction) leaves on its victim.
DISRUPTION_TARGET = "DisruptionTarget"
UNHEALTHY_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
# How long an eviction's entry in disruptedPods keeps the pod out of currentHealthy
# (the controller's DeletionTimeout).
DELETION_TIMEOUT = dt.timedelta(minutes=2)

_PERCENT = re.compile(r"^[0-9]+%$")


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: 3 stays 3, "50%" of 5 is 3 (up) or 2 (down)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("invalid value for IntOrString: invalid type: neither int nor percentage")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f'invalid value "{text}": strconv.Atoi: parsing "{text[:-1]}": invalid syntax') from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def selector(pdb: Obj) -> LabelSelector | None:
    """The budget's selector; None when it has none (LabelSelectorAsSelector(nil)
    selects nothing) or when it cannot be parsed (it then matches no pod)."""
    spec = (pdb.get("spec") or {}).get("selector")
    if spec is None:
        return None
    try:
        return LabelSelector.from_spec(spec)
    except Exception:  # noqa: BLE001 - an unparsable selector matches nothing, as upstream
        return None


def selects(pdb: Obj, pod: Obj) -> bool:
    """Whether `pdb` covers `pod`: same namespace, selector matches (an empty one matches all)."""
    if (pdb.get("metadata") or {}).get("namespace") != (pod.get("metadata") or {}).get("namespace"):
        return False
    sel = selector(pdb)
    return sel is not None and sel.matches((pod.get("metadata") or {}).get("labels"))


def is_pod_ready(pod: Obj) -> bool:
    """podutil.IsPodReady: the Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def set_condition(conditions: list[Obj], new: Obj, now: dt.datetime) -> None:
    """apimeta.SetStatusCondition: add or update `new` by type; the transition
    time moves only when the status changes."""
    for cond in conditions:
        if cond.get("type") != new["type"]:
            continue
        if cond.get("status") != new["status"]:
            cond["status"] = new["status"]
            cond["lastTransitionTime"] = new.get("lastTransitionTime") or rfc3339(now)
        cond["reason"] = new.get("reason", "")
        cond["message"] = new.get("message", "")
        if new.get("observedGeneration"):
            cond["observedGeneration"] = new["observedGeneration"]
        else:
            cond.pop("observedGeneration", None)
        return
    added = {"type": new["type"], "status": new["status"]}
    if new.get("observedGeneration"):
        added["observedGeneration"] = new["observedGeneration"]
    added.update({"lastTransitionTime": new.get("lastTransitionTime") or rfc3339(now),
                  "reason": new.get("reason", ""), "message": new.get("message", "")})
    conditions.append(added)


def find_condition(pdb: Obj, ctype: str = DISRUPTION_ALLOWED) -> Obj | None:
    for cond in (pdb.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def update_disruption_allowed_condition(pdb: Obj, now: dt.datetime) -> None:
    """pdbhelper.UpdateDisruptionAllowedCondition: True/SufficientPods while a
    disruption is allowed, else False/InsufficientPods (in place)."""
    status = pdb.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    set_condition(conditions, {
        "type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
        "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS,
        "observedGeneration": status.get("observedGeneration"),
    }, now)


def conditions_up_to_date(pdb: Obj) -> bool:
    """pdbhelper.ConditionsAreUpToDate."""
    cond = find_condition(pdb)
    status = pdb.get("status") or {}
    if cond is None or status.get("observedGeneration") != (pdb.get("metadata") or {}).get("generation"):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS
    return cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS


# ------------------------------------------------------------------ validation


def _invalid(path: str, rendered: str, detail: str) -> FieldError:
    """An Invalid error whose value Go renders with %#v (already rendered here)."""
    return FieldError(INVALID, path, detail=f"{rendered}: {detail}")


def _spec_rendered(spec: Obj) -> str:
    """Go's %#v of the internal policy.PodDisruptionBudgetSpec (pointers print as addresses)."""
    def ptr(type_name: str, key: str, addr: str) -> str:
        return f"(*{type_name})({addr if spec.get(key) is not None else 'nil'})"
    return ("policy.PodDisruptionBudgetSpec{"
            f"MinAvailable:{ptr('intstr.IntOrString', 'minAvailable', '0xc000a0e100')}, "
            f"Selector:{ptr('v1.LabelSelector', 'selector', '0xc000a0e120')}, "
            f"MaxUnavailable:{ptr('intstr.IntOrString', 'maxUnavailable', '0xc000a0e110')}, "
            "UnhealthyPodEvictionPolicy:"
            f"{ptr('policy.UnhealthyPodEvictionPolicyType', 'unhealthyPodEvictionPolicy', '0xc000a0e130')}"
            "}")


def validate_spec(obj: Obj) -> list[FieldError]:
    """ValidatePodDisruptionBudgetSpec, in upstream's order (the order of the messages)."""
    # validation imports this module, so its helpers are imported when first needed.
    from .validation import _int_or_percent, _not_over_100, validate_label_selector  # noqa: PLC0415

    raw = obj.get("spec")
    spec: Obj = raw if isinstance(raw, dict) else {}
    errs: list[FieldError] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(_invalid("spec", _spec_rendered(spec), "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if spec.get(key) is not None:
            errs += _int_or_percent(f"spec.{key}", spec[key]) + _not_over_100(f"spec.{key}", spec[key])
    if isinstance(spec.get("selector"), dict):
        errs += validate_label_selector(spec["selector"], "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POLICIES:
        errs.append(FieldError(NOT_SUPPORTED, "spec.unhealthyPodEvictionPolicy", policy,
                               "supported values: " + ", ".join(f'"{p}"' for p in UNHEALTHY_POLICIES)))
    return errs
