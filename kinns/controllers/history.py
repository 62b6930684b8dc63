"""ControllerRevisions: the template history of DaemonSets and StatefulSets.

A Deployment keeps its history in old ReplicaSets; a DaemonSet or a
StatefulSet keeps it in `apps/v1 ControllerRevision` objects, one per
template it has run (upstream pkg/controller/history and the two
controllers' history code).  Each revision holds in `data` the patch that
puts its template back, `{"spec": {"template": {..., "$patch": "replace"}}}`,
and in `revision` a number that grows with every change, so

- `kubectl rollout history ds/NAME` lists the revisions a DaemonSet owns,
  `--revision=N` shows revision N's template;
- `kubectl rollout undo ds/NAME [--to-revision=N]` applies revision N's
  `data` as a strategic merge patch; the controller then finds that the
  current template equals an old revision and renumbers that revision as
  the newest instead of writing a twin.

Names are `<owner>-<hash>`: upstream's FNV hash of the template (DaemonSet,
controller.ComputeHash, FNV-1a) or of the revision's data (StatefulSet,
HashControllerRevision, FNV-1), printed in decimal and spelled in the safe
alphabet, salted by `status.collisionCount` when two templates collide.  Pods
carry the revision in the label `controller-revision-hash` (the hash for a
DaemonSet, the revision's name for a StatefulSet); revisions carry
`controller.kubernetes.io/hash` (StatefulSet) or `controller-revision-hash`
(DaemonSet).  Old revisions no live pod uses are deleted, oldest first,
beyond `spec.revisionHistoryLimit` (default 10).

The top half is pure (hashes, the Go-shaped template bytes, ordering,
equality, trimming); `History` writes through a client.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from ..api.errors import ApiError
from ..client.client import Client, Obj
from . import podutil

CONTROLLER_REVISION = ("apps/v1", "ControllerRevision")
# ControllerRevisionHashLabel: the hash a StatefulSet revision was named by.
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
# Upstream's DefaultDaemonSetUniqueLabelKey and StatefulSetRevisionLabel, on pods and DaemonSet revisions.
POD_REVISION_LABEL = "controller-revision-hash"
DEFAULT_HISTORY_LIMIT = 10
_SAFE = "bcdfghjklmnpqrstvwxz2456789"   # apimachinery's rand alphanums
_MAX_PREFIX = 223                         # ControllerRevisionName keeps names under 253 characters


def fnv1_32(data: bytes) -> int:
    """hash/fnv New32 (FNV-1: multiply, then xor)."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def fnv1a_32(data: bytes) -> int:
    """hash/fnv New32a (FNV-1a: xor, then multiply)."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each character mapped into an alphabet without vowels."""
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in text)


def go_json(value: Any) -> bytes:
    """JSON as Go's json.Marshal writes a map[string]interface{}: keys sorted, compact."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def go_template(template: Obj) -> Obj:
    """A pod template as Go marshals the typed PodTemplateSpec: the zero-valued
    structs `metadata.creationTimestamp: null` and `containers[].resources: {}`
    present, so kubectl's byte comparison of a revision with the live template
    ("skipped rollback") sees the same bytes."""
    out = copy.deepcopy(template)
    out.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    spec = out.get("spec") or {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            c.setdefault("resources", {})
    return out


def template_patch(owner: Obj) -> Obj:
    """getPatch: the revision data that restores `owner`'s template, keys in Go's order."""
    template = go_template(owner["spec"]["template"])
    template["$patch"] = "replace"
    data: Obj = orjson.loads(go_json({"spec": {"template": template}}))
    return data


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """controller.ComputeHash (the DaemonSet's name hash): FNV-1a of the template,
    plus the collision count as 4 little-endian bytes padded to 8."""
    data = go_json(template)
    if collision_count is not None:
        data += int(collision_count).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv1a_32(data)))


def hash_revision(data: Obj, collision_count: int | None) -> str:
    """HashControllerRevision (the StatefulSet's name hash): FNV-1 of the data and the count."""
    raw = go_json(data)
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv1_32(raw)))


def revision_name(prefix: str, hash_: str) -> str:
    """ControllerRevisionName."""
    return f"{prefix[:_MAX_PREFIX]}-{hash_}"


def revision_number(rev: Obj) -> int:
    return int(rev.get("revision") or 0)


def sort_revisions(revs: list[Obj]) -> list[Obj]:
    """SortControllerRevisions: by revision, then creation time, then name."""
    return sorted(revs, key=lambda r: (revision_number(r), r["metadata"].get("creationTimestamp") or "",
                                       r["metadata"]["name"]))


def next_revision(revs: list[Obj]) -> int:
    return max((revision_number(r) for r in revs), default=0) + 1


def equal_revision(a: Obj | None, b: Obj | None) -> bool:
    """EqualRevision: the same data (the hash labels, when both parse as numbers, must agree)."""
    if a is None or b is None:
        return a is b
    ha = (a["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL)
    hb = (b["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL)
    if ha is not None and hb is not None and ha.isdigit() and hb.isdigit() and ha != hb:
        return False
    return bool(go_json(a.get("data")) == go_json(b.get("data")))


def find_equal(revs: list[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revs if equal_revision(r, needle)]


def apply_revision(owner: Obj, rev: Obj) -> Obj:
    """ApplyRevision: `owner` with the template its revision's data restores."""
    out = copy.deepcopy(owner)
    template = copy.deepcopy(((rev.get("data") or {}).get("spec") or {}).get("template"))
    if isinstance(template, dict):
        template.pop("$patch", None)
        out["spec"]["template"] = template
    return out


def new_revision(owner: Obj, data: Obj, revision: int, collision_count: int | None) -> Obj:
    """NewControllerRevision plus the owner's annotations (the StatefulSet's newRevision):
    labels of the template and the hash, named `<owner>-<hash>`, controlled by `owner`."""
    hash_ = hash_revision(data, collision_count)
    meta = owner["metadata"]
    labels = dict(((owner["spec"]["template"].get("metadata") or {}).get("labels")) or {})
    labels[REVISION_HASH_LABEL] = hash_
    rev_meta: Obj = {"name": revision_name(meta["name"], hash_), "namespace": meta["namespace"],
                     "labels": labels, "ownerReferences": [podutil.owner_reference(owner)]}
    if meta.get("annotations"):
        rev_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rev_meta,
            "data": data, "revision": revision}


def controlled(revs: list[Obj], owner: Obj) -> list[Obj]:
    """The revisions whose controller is `owner` (by UID)."""
    uid = owner["metadata"]["uid"]
    return [r for r in revs if (podutil.controller_ref(r) or {}).get("uid") == uid]


def history_limit(owner: Obj) -> int:
    limit = (owner.get("spec") or {}).get("revisionHistoryLimit")
    return DEFAULT_HISTORY_LIMIT if limit is None else int(limit)


def to_trim(history: list[Obj], live: set[str], limit: int, label: str | None = None) -> list[Obj]:
    """The oldest revisions beyond `limit` that no live pod uses.

    `live` holds revision names (StatefulSet: truncateHistory, which drops live
    revisions before counting) or, with `label`, hashes read from that label
    (DaemonSet: cleanupHistory, which counts live ones but skips them)."""
    ordered = sort_revisions(history)
    if label is None:
        idle = [r for r in ordered if r["metadata"]["name"] not in live]
        return idle[:max(0, len(idle) - limit)]
    extra = len(ordered) - limit
    out = []
    for r in ordered:
        if extra <= 0:
            break
        if (r["metadata"].get("labels") or {}).get(label) in live:
            continue
        out.append(r)
        extra -= 1
    return out


class History:
    """Writes of ControllerRevisions (upstream's realHistory), through one controller's client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def create(self, owner: Obj, rev: Obj, collision_count: int) -> tuple[Obj, int]:
        """CreateControllerRevision: create `rev`, renaming it with a bumped collision
        count while another revision with other data holds the name.  Returns the
        revision (an equal one that exists is returned as is) and the count."""
        while True:
            clone = copy.deepcopy(rev)
            clone["metadata"]["name"] = revision_name(owner["metadata"]["name"], hash_revision(rev["data"], collision_count))
            try:
                return await self.client.create(clone, owner["metadata"]["namespace"]), collision_count
            except ApiError as exc:
                if exc.code != 409:
                    raise
            exists = await self.client.get(CONTROLLER_REVISION, clone["metadata"]["name"], owner["metadata"]["namespace"])
            if go_json(exists.get("data")) == go_json(clone["data"]):
                return exists, collision_count
            collision_count += 1

    async def renumber(self, rev: Obj, revision: int) -> Obj:
        """UpdateControllerRevision: only the revision number may change."""
        if revision_number(rev) == revision:
            return rev
        out: Obj = await self.client.update({**rev, "revision": revision})
        return out

    async def delete(self, rev: Obj) -> None:
        try:
            await self.client.delete(CONTROLLER_REVISION, rev["metadata"]["name"], rev["metadata"]["namespace"])
        except ApiError as exc:
            if exc.code != 404:
                raise


async def current_and_update(history: History, owner: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
    """getStatefulSetRevisions: the revision the owner's pods run (`status.currentRevision`,
    or the update revision for a new owner) and the revision of its live template.

    The update revision is the newest revision when that one equals the live
    template; an older equal revision is renumbered as the newest (a rollback);
    otherwise a new revision is created.  Returns them with the collision count
    to store in the owner's status."""
    ordered = sort_revisions(revisions)
    collision = int((owner.get("status") or {}).get("collisionCount") or 0)
    candidate = new_revision(owner, template_patch(owner), next_revision(ordered), collision)
    equal = find_equal(ordered, candidate)
    if equal and equal_revision(ordered[-1], equal[-1]):
        update = ordered[-1]
    elif equal:
        update = await history.renumber(equal[-1], revision_number(candidate))
    else:
        update, collision = await history.create(owner, candidate, collision)
    name = (owner.get("status") or {}).get("currentRevision")
    current = next((r for r in ordered if r["metadata"]["name"] == name), update)
    return current, update, collision
