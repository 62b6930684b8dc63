"""ControllerRevision history: hashes, revision data, numbering on rollback, trimming."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from kinns.client import Client, MockTransport
from kinns.client.fake import FakeApi
from kinns.controllers import daemonset_history, history
from kinns.controllers.daemonset_plan import daemon_pod, is_updated, plan

Obj = dict[str, Any]


def owner(kind: str = "StatefulSet", image: str = "nginx:1", **status: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "db", "namespace": "default", "uid": "u1", "generation": 1,
                         "annotations": {"kubernetes.io/change-cause": "why"}},
            "spec": {"selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": status}


def test_fnv_and_safe_encoding_are_upstreams() -> None:
    assert history.fnv1_32(b"") == history.fnv1a_32(b"") == 0x811C9DC5
    assert (history.fnv1_32(b"a"), history.fnv1a_32(b"a")) == (0x050C5D7E, 0xE40C292C)
    assert history.safe_encode("0123456789") == "456789bcdf"
    # Names look like upstream's: decimal digits spelled in the safe alphabet.
    assert set(history.hash_revision({"x": 1}, 0)) <= set("456789bcdf")
    assert history.hash_revision({"x": 1}, 0) != history.hash_revision({"x": 1}, 1)
    assert history.revision_name("a" * 300, "h") == "a" * 223 + "-h"


def test_revision_data_restores_the_template_in_gos_bytes() -> None:
    data = history.template_patch(owner())
    assert list(data["spec"]["template"]) == ["$patch", "metadata", "spec"]
    assert data["spec"]["template"]["metadata"] == {"creationTimestamp": None, "labels": {"app": "db"}}
    assert data["spec"]["template"]["spec"]["containers"] == [{"image": "nginx:1", "name": "c", "resources": {}}]
    rev = history.new_revision(owner(), data, 3, 0)
    assert rev["metadata"]["name"] == "db-" + rev["metadata"]["labels"]["controller.kubernetes.io/hash"]
    assert rev["metadata"]["labels"]["app"] == "db" and rev["revision"] == 3
    assert rev["metadata"]["annotations"] == {"kubernetes.io/change-cause": "why"}
    assert rev["metadata"]["ownerReferences"][0]["uid"] == "u1"
    back = history.apply_revision(owner(image="nginx:2"), rev)
    assert back["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert "$patch" not in back["spec"]["template"]


def test_trimming_keeps_live_revisions_and_the_newest_old_ones() -> None:
    revs = [{"metadata": {"name": f"r{i}", "labels": {"controller-revision-hash": f"h{i}"}}, "revision": i}
            for i in (4, 1, 3, 2)]
    # StatefulSet: live revisions do not count against the limit.
    assert [r["revision"] for r in history.to_trim(revs, {"r1"}, 1)] == [2, 3]
    # DaemonSet: they count, but are never the ones deleted.
    assert [r["revision"] for r in history.to_trim(revs, {"h1"}, 2, "controller-revision-hash")] == [2, 3]
    assert history.to_trim(revs, set(), 10) == []


def test_daemon_pods_carry_the_revision_and_either_marks_them_updated() -> None:
    ds = owner("DaemonSet")
    snap = daemonset_history.snapshot(ds, 1)
    hash_ = snap["metadata"]["labels"]["controller-revision-hash"]
    assert snap["metadata"]["name"] == f"db-{hash_}" and "controller.kubernetes.io/hash" not in snap["metadata"]["labels"]
    assert daemonset_history.matches(ds, snap) and not daemonset_history.matches(owner("DaemonSet", "nginx:2"), snap)
    pod = daemon_pod(ds, "n1", hash_)
    assert pod["metadata"]["labels"]["controller-revision-hash"] == hash_
    assert is_updated({**ds, "metadata": {**ds["metadata"], "generation": 5}}, pod, hash_)
    assert not is_updated({**ds, "metadata": {**ds["metadata"], "generation": 5}}, pod, "other")


def run(body: Any) -> None:
    async def go() -> None:
        fake = FakeApi()
        client = Client(MockTransport(fake.handle))
        await body(history.History(client), client)
    asyncio.run(go())


def test_a_rollback_renumbers_the_old_revision_instead_of_copying_it() -> None:
    async def body(h: history.History, client: Client) -> None:
        async def step(sts: Obj) -> tuple[Obj, Obj]:
            revs, _ = await client.list(history.CONTROLLER_REVISION, "default")
            current, update, _ = await history.current_and_update(h, sts, revs)
            sts["status"]["currentRevision"] = update["metadata"]["name"]
            return current, update

        sts = owner()
        first, update = await step(sts)
        assert first is update and first["revision"] == 1
        _, second = await step(owner(image="nginx:2", currentRevision=first["metadata"]["name"]))
        assert second["revision"] == 2 and second["metadata"]["name"] != first["metadata"]["name"]
        current, back = await step(owner(currentRevision=second["metadata"]["name"]))
        assert current["metadata"]["name"] == second["metadata"]["name"]
        assert (back["metadata"]["name"], back["revision"]) == (first["metadata"]["name"], 3)
        listed, _ = await client.list(history.CONTROLLER_REVISION, "default")
        assert sorted(r["revision"] for r in listed) == [2, 3]
        # Nothing changed: nothing is written.
        _, same = await step(owner(currentRevision=back["metadata"]["name"]))
        assert same["metadata"]["resourceVersion"] == back["metadata"]["resourceVersion"]
    run(body)


def test_on_delete_daemonsets_leave_outdated_pods_alone() -> None:
    ds = owner("DaemonSet")
    node = {"metadata": {"name": "n1", "labels": {}}, "spec": {}}
    old = daemon_pod(ds, "n1", "old")
    old["metadata"].update(name="db-x", uid="p1")
    old["spec"]["nodeName"] = "n1"
    old["status"] = {"phase": "Running"}
    newer = {**ds, "metadata": {**ds["metadata"], "generation": 2}}
    now = dt.datetime.now(dt.timezone.utc)
    assert plan(newer, [node], [old], now, "new").delete == ["db-x"]
    newer["spec"] = {**newer["spec"], "updateStrategy": {"type": "OnDelete"}}
    assert plan(newer, [node], [old], now, "new").delete == []
