"""A DaemonSet's ControllerRevisions (upstream's daemon controller history code).

Before each sync the DaemonSet controller calls `construct_history`: among
the revisions the DaemonSet controls, the one whose data equals the live
template's patch is current (created if missing, renumbered to be the
newest if an older one matches, as after `kubectl rollout undo`), the others
are old.  The current revision's `controller-revision-hash` label is what
new daemon pods carry and what marks a pod up to date (daemonset_plan).
After the sync, `cleanup` deletes old revisions beyond revisionHistoryLimit
that no daemon pod still runs.  Shared pieces live in history.py.
"""

from __future__ import annotations

from ..api.errors import ApiError
from ..client.client import Obj
from . import history as h
from . import podutil
from .history import POD_REVISION_LABEL, History


def snapshot(ds: Obj, revision: int) -> Obj:
    """The revision of the DaemonSet's live template: named `<ds>-<ComputeHash>`,
    labelled with the template's labels and the hash, annotated as the DaemonSet."""
    collision = (ds.get("status") or {}).get("collisionCount")
    hash_ = h.compute_hash(ds["spec"]["template"], collision)
    meta = ds["metadata"]
    labels = dict(((ds["spec"]["template"].get("metadata") or {}).get("labels")) or {})
    labels[POD_REVISION_LABEL] = hash_
    rev_meta: Obj = {"name": f"{meta['name']}-{hash_}", "namespace": meta["namespace"], "labels": labels,
                     "ownerReferences": [podutil.owner_reference(ds)]}
    if meta.get("annotations"):
        rev_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rev_meta,
            "data": h.template_patch(ds), "revision": revision}


def matches(ds: Obj, rev: Obj) -> bool:
    """Match: the revision restores exactly the live template."""
    return h.go_json(h.template_patch(ds)) == h.go_json(rev.get("data"))


async def construct_history(history: History, ds: Obj, owned: list[Obj], pods: list[Obj]) -> tuple[Obj, list[Obj]]:
    """constructHistory: (current revision, old revisions)."""
    current = [r for r in owned if matches(ds, r)]
    old = [r for r in owned if not matches(ds, r)]
    want = h.next_revision(old)
    if not current:
        cur = await _create(history, ds, want)
    else:
        cur = await _dedup(history, current, pods)
        cur = await history.renumber(cur, max(h.revision_number(cur), want))
    return cur, old


async def _create(history: History, ds: Obj, revision: int) -> Obj:
    """snapshot: create the revision; a name taken by other data is a hash
    collision, counted in the DaemonSet's status so the next try hashes anew."""
    rev = snapshot(ds, revision)
    try:
        created: Obj = await history.client.create(rev, ds["metadata"]["namespace"])
        return created
    except ApiError as exc:
        if exc.code != 409:
            raise
    existing = await history.client.get(h.CONTROLLER_REVISION, rev["metadata"]["name"], ds["metadata"]["namespace"])
    if matches(ds, existing) and (podutil.controller_ref(existing) or {}).get("uid") == ds["metadata"]["uid"]:
        return existing
    status = dict(ds.get("status") or {})
    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
    await history.client.update_status({**ds, "status": status})
    raise ApiError(409, "Conflict", f"found a stale collision for {ds['metadata']['name']}; retrying")


async def _dedup(history: History, current: list[Obj], pods: list[Obj]) -> Obj:
    """dedupCurHistories: keep the newest equal revision, move pods labelled with
    the others' hashes onto it, delete the others."""
    keep = h.sort_revisions(current)[-1]
    keep_hash = (keep["metadata"].get("labels") or {}).get(POD_REVISION_LABEL)
    for dup in current:
        if dup is keep:
            continue
        dup_hash = (dup["metadata"].get("labels") or {}).get(POD_REVISION_LABEL)
        for pod in pods:
            if (pod["metadata"].get("labels") or {}).get(POD_REVISION_LABEL) == dup_hash:
                await history.client.patch(("v1", "Pod"), pod["metadata"]["name"],
                                           {"metadata": {"labels": {POD_REVISION_LABEL: keep_hash}}},
                                           pod["metadata"]["namespace"])
        await history.delete(dup)
    return keep


async def cleanup(history: History, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
    """cleanupHistory: old revisions beyond the limit whose hash no pod runs, oldest first."""
    live = {(p["metadata"].get("labels") or {}).get(POD_REVISION_LABEL) for p in pods}
    for rev in h.to_trim(old, {x for x in live if x}, h.history_limit(ds), POD_REVISION_LABEL):
        await history.delete(rev)
