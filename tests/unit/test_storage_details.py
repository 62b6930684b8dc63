"""Pure parts of the storage details: subPath(Expr) expansion and checks, safe opening
inside a volume, volumeMount validation, tmpfs sizing, eviction status, resize status,
claim retention owners, and the scheduler's ReadWriteOncePod wording."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kinns.api.storagechecks import volume_mount_errors
from kinns.controllers.provisioner import resize_status, resize_wanted
from kinns.controllers.pvcretention import wanted_refs
from kinns.controllers.volumerestrictions import RWOP_CONFLICT, failure_message, rwop_in_use
from kinns.node.localstorage import disk_usage, evicted_status, over_limit
from kinns.node.subpath import (SubPathError, check_subpath, expand, expand_subpath_expr, make_dirs_within,
                                open_within, resolve_within)
from kinns.node.volumes import memory_emptydir_size, size_limits

ENV = {"POD_NAME": "web-0", "NS": "default", "EMPTY": ""}


@pytest.mark.parametrize("expr, want", [
    ("logs/$(POD_NAME)", "logs/web-0"),
    ("$(NS)/$(POD_NAME)/x", "default/web-0/x"),
    ("cost$$(POD_NAME)", "cost$(POD_NAME)"),     # $$ escapes the reference
    ("a$$b", "a$b"),
    ("$x/$(POD_NAME", "$x/$(POD_NAME"),          # not references: kept as written
    ("plain", "plain"),
])
def test_subpath_expr_expands_like_upstream(expr: str, want: str) -> None:
    assert expand_subpath_expr(expr, ENV) == want


def test_subpath_expr_names_every_missing_or_empty_variable() -> None:
    with pytest.raises(SubPathError, match=r"^missing value for EMPTY, NOPE$"):
        expand_subpath_expr("$(NOPE)/$(EMPTY)/$(POD_NAME)", ENV)


def test_expand_keeps_an_unterminated_reference() -> None:
    assert expand("x$(", lambda k: "?") == "x$("


@pytest.mark.parametrize("sub, message", [
    ("/etc", "error SubPath `/etc` must not be an absolute path"),
    ("a/../../b", "unable to provision SubPath `a/../../b`: must not contain '..'"),
])
def test_kubelet_refuses_expanded_subpaths_as_upstream(sub: str, message: str) -> None:
    with pytest.raises(SubPathError) as exc:
        check_subpath(sub)
    assert str(exc.value) == message


def test_check_subpath_accepts_dots_that_are_not_backsteps() -> None:
    check_subpath("a/..b/c..")


def test_volume_mount_validation_paths_as_upstream() -> None:
    errs = [str(e) for e in volume_mount_errors({"subPath": "/etc", "subPathExpr": "../$(X)"},
                                                "spec.containers[0].volumeMounts",
                                                "spec.containers[0].volumeMounts[1]")]
    assert errs == [
        'spec.containers[0].volumeMounts.subPath: Invalid value: "/etc": must be a relative path',
        'spec.containers[0].volumeMounts[1].subPathExpr: Invalid value: "../$(X)": subPathExpr and subPath are '
        "mutually exclusive",
        "spec.containers[0].volumeMounts.subPathExpr: Invalid value: \"../$(X)\": must not contain '..'",
    ]
    assert volume_mount_errors({"subPath": "a/b"}, "p", "p[0]") == []


def test_symlinks_inside_the_volume_resolve_and_outside_are_refused(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "real").mkdir(parents=True)
    (vol / "inside").symlink_to("real")
    (vol / "escape").symlink_to("/etc")
    (vol / "up").symlink_to("../..")
    assert resolve_within(str(vol), "inside") == str((vol / "real").resolve())
    for bad in ("escape", "up", "escape/passwd"):
        with pytest.raises(SubPathError):
            resolve_within(str(vol), bad)


def test_open_within_refuses_a_symlink_swapped_in_after_resolving(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "d").mkdir(parents=True)
    resolved = resolve_within(str(vol), "d")
    (vol / "d").rmdir()
    (vol / "d").symlink_to("/etc")     # the race upstream's doSafeOpen guards against
    with pytest.raises((SubPathError, OSError)):
        os.close(open_within(str(vol), resolved))


def test_make_dirs_within_creates_with_the_volume_mode_and_never_through_a_link(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    make_dirs_within(str(vol), "a/b/c", 0o750)
    assert (vol / "a/b/c").is_dir() and (vol / "a/b/c").stat().st_mode & 0o777 == 0o750
    outside = tmp_path / "outside"
    outside.mkdir()
    (vol / "link").symlink_to(outside)
    with pytest.raises(SubPathError):
        make_dirs_within(str(vol), "link/x", 0o755)
    assert not (outside / "x").exists()


def pod(*containers: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": list(containers) or [{"name": "c"}], "volumes": volumes or []}}


def limited(name: str, memory: str) -> dict[str, Any]:
    return {"name": name, "resources": {"limits": {"memory": memory}}}


def test_memory_emptydir_size_is_the_smallest_of_node_pod_and_size_limit() -> None:
    alloc = {"memory": "8Gi"}
    assert memory_emptydir_size({}, pod(), alloc) == 8 << 30
    assert memory_emptydir_size({}, pod(limited("a", "1Gi"), limited("b", "512Mi")), alloc) == 1536 << 20
    assert memory_emptydir_size({}, pod(limited("a", "1Gi"), {"name": "b"}), alloc) == 8 << 30  # no pod limit
    assert memory_emptydir_size({"sizeLimit": "64Mi"}, pod(limited("a", "1Gi")), alloc) == 64 << 20
    assert memory_emptydir_size({"sizeLimit": "16Gi"}, pod(), alloc) == 8 << 30   # never above allocatable


def test_size_limits_and_over_limit() -> None:
    p = pod(volumes=[{"name": "a", "emptyDir": {"sizeLimit": "1Mi"}}, {"name": "b", "emptyDir": {}},
                     {"name": "c", "emptyDir": {"sizeLimit": "2048Ki"}}])
    assert size_limits(p) == {"a": "1Mi", "c": "2Mi"}
    usage = {"a": 1 << 20, "c": (2 << 20) + 1}
    assert over_limit(p, {"a": "/a", "c": "/c"}, lambda name, path: usage[name]) == ("c", "2Mi")
    usage["c"] = 2 << 20     # equal is not over
    assert over_limit(p, {"a": "/a", "c": "/c"}, lambda name, path: usage[name]) is None


def test_disk_usage_counts_allocated_blocks(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(os.urandom(256 << 10))
    assert disk_usage(str(tmp_path)) >= 256 << 10


def test_evicted_status_as_the_eviction_manager_leaves_it() -> None:
    status = {"phase": "Running", "conditions": [
        {"type": "PodReadyToStartContainers", "status": "True"}, {"type": "Ready", "status": "True"},
        {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": "x"}]}
    out = evicted_status(status, 'Usage of EmptyDir volume "cache" exceeds the limit "2Mi". ')
    assert (out["phase"], out["reason"]) == ("Failed", "Evicted")
    assert out["message"] == 'Usage of EmptyDir volume "cache" exceeds the limit "2Mi". '
    assert [(c["type"], c["status"], c.get("reason")) for c in out["conditions"]] == [
        ("PodReadyToStartContainers", "False", None), ("Ready", "False", "PodCompleted"),
        ("ContainersReady", "False", "PodCompleted")]


def test_resize_status_in_progress_then_finished() -> None:
    claim: dict[str, Any] = {"spec": {"resources": {"requests": {"storage": "2Gi"}}},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}
    assert resize_wanted(claim)
    mid = resize_status(claim["status"], "2Gi", "T", False)
    assert mid["allocatedResourceStatuses"] == {"storage": "ControllerResizeInProgress"}
    assert mid["conditions"] == [{"type": "Resizing", "status": "True", "lastProbeTime": None,
                                  "lastTransitionTime": "T"}]
    done = resize_status(mid, "2Gi", "T", True)
    assert done == {"phase": "Bound", "capacity": {"storage": "2Gi"}, "allocatedResources": {"storage": "2Gi"}}
    assert not resize_wanted({**claim, "status": done})


STS: dict[str, Any] = {"metadata": {"name": "web", "uid": "set"}, "spec": {"replicas": 2}}


def owners(policy: dict[str, str], ordinal: int, refs: list[dict[str, Any]] | None = None) -> list[str]:
    sts = {**STS, "spec": {**STS["spec"], "persistentVolumeClaimRetentionPolicy": policy}}
    claim = {"metadata": {"ownerReferences": refs or []}}
    p = {"metadata": {"name": f"web-{ordinal}", "uid": f"pod{ordinal}"}}
    return [f"{r['kind']}/{r['name']}" for r in wanted_refs(claim, sts, p, ordinal)]


def test_claim_owners_follow_the_retention_policy() -> None:
    retain, delete = "Retain", "Delete"
    assert owners({"whenDeleted": retain, "whenScaled": retain}, 0) == []
    assert owners({"whenDeleted": delete, "whenScaled": retain}, 0) == ["StatefulSet/web"]
    assert owners({"whenDeleted": delete, "whenScaled": retain}, 3) == ["StatefulSet/web"]
    assert owners({"whenDeleted": retain, "whenScaled": delete}, 1) == []
    assert owners({"whenDeleted": retain, "whenScaled": delete}, 2) == ["Pod/web-2"]
    assert owners({"whenDeleted": delete, "whenScaled": delete}, 2) == ["Pod/web-2"]
    # a policy back to Retain drops the references it had set, others stay
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "cm"}
    set_ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set"}
    assert owners({"whenDeleted": retain, "whenScaled": retain}, 0, [other, set_ref]) == ["ConfigMap/keep"]


def test_read_write_once_pod_conflict_and_message() -> None:
    claims = {"default/solo": {"spec": {"accessModes": ["ReadWriteOncePod"]}},
              "default/rwo": {"spec": {"accessModes": ["ReadWriteOnce"]}}}

    def user(name: str, claim: str, node: str = "n1", phase: str = "Running") -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"nodeName": node, "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]},
                "status": {"phase": phase}}

    new = user("new", "solo", node="")
    assert rwop_in_use(new, claims.get, lambda: [user("old", "solo")])
    assert not rwop_in_use(new, claims.get, lambda: [user("old", "solo", phase="Succeeded")])
    assert not rwop_in_use(user("new", "rwo", node=""), claims.get, lambda: [user("old", "rwo")])
    assert rwop_in_use(new, claims.get, lambda: [user("old", "solo", node="")], assumed={"default/old"})
    msg = failure_message(Counter({RWOP_CONFLICT: 2, "node(s) had untolerated taint {x: }": 1}), 3)
    assert msg == ("0/3 nodes are available: 1 node(s) had untolerated taint {x: }, 2 node has pod using "
                   "PersistentVolumeClaim with the same name and ReadWriteOncePod access mode. preemption: 0/3 "
                   "nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
                   "found for incoming pod.")
