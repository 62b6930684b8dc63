"""StatefulSet `persistentVolumeClaimRetentionPolicy`: who owns a replica's claims.

Upstream's StatefulSet controller (stateful_set_utils.go,
updateClaimOwnerRefForSetAndPod) does not delete claims itself: it sets
owner references and lets the garbage collector do the deleting.

- `whenDeleted: Delete`: each claim is owned by the set, so deleting the set
  deletes the claims (after their pods, which pvc-protection waits for).
- `whenScaled: Delete`: the claim of a replica being scaled away (ordinal
  >= replicas) is owned by that pod instead, so it goes with the pod.
- `Retain` (the default for both): no such references; claims outlive
  everything, and a set or replica that comes back reuses them.

A reference that no longer fits the policy is removed (the policy may be
changed at any time).  The pure part, `wanted_refs`, says what a claim's
ownerReferences should be; `sync` writes the claims of existing pods whose
references differ (the set's controller role may update claims).
"""

from __future__ import annotations

from typing import Any

from ..api.errors import ApiError
from ..client.client import Client, Obj
from ..client.informer import Informer

RETAIN, DELETE = "Retain", "Delete"


def _ref(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def policy(sts: Obj) -> tuple[str, str]:
    p = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(p.get("whenDeleted") or RETAIN), str(p.get("whenScaled") or RETAIN)


def wanted_refs(claim: Obj, sts: Obj, pod: Obj, ordinal: int) -> list[dict[str, Any]]:
    """The claim's ownerReferences as the policy wants them, others kept as they are."""
    when_deleted, when_scaled = policy(sts)
    scaled_down = ordinal >= int((sts.get("spec") or {}).get("replicas", 1))
    by_set = (when_deleted == DELETE and not (when_scaled == DELETE and scaled_down))
    by_pod = when_scaled == DELETE and scaled_down
    set_uid, pod_uid = sts["metadata"]["uid"], pod["metadata"]["uid"]
    refs = [r for r in (claim.get("metadata") or {}).get("ownerReferences") or []
            if r.get("uid") not in (set_uid, pod_uid)]
    kept = {r.get("uid"): r for r in (claim.get("metadata") or {}).get("ownerReferences") or []}
    if by_set:
        refs.append(kept.get(set_uid) or _ref(sts, "apps/v1", "StatefulSet"))
    if by_pod:
        refs.append(kept.get(pod_uid) or _ref(pod, "v1", "Pod"))
    return refs


async def sync(client: Client, claims: Informer, sts: Obj, by_ordinal: dict[int, Obj],
               claim_name: Any) -> None:
    """Bring the claims of the set's existing pods in line with its retention policy.
    `claim_name(template, sts, ordinal)` names a replica's claim."""
    ns = sts["metadata"]["namespace"]
    for ordinal, pod in sorted(by_ordinal.items()):
        for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim = claims.get(f"{ns}/{claim_name(template, sts, ordinal)}")
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                continue
            want = wanted_refs(claim, sts, pod, ordinal)
            if want == ((claim.get("metadata") or {}).get("ownerReferences") or []):
                continue
            meta = {**claim["metadata"], "ownerReferences": want}
            if not want:
                del meta["ownerReferences"]
            try:
                await client.update({**claim, "metadata": meta})
            except ApiError as exc:
                if exc.code != 404:
                    raise  # (a conflict: the set's key is tried again)
