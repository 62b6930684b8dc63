"""ControllerRevisions behind `kubectl rollout history/undo` for DaemonSets and
StatefulSets, and ReplicationControllers with `kubectl scale rc`.

Each test does what a user does on kind and checks what kubectl prints there:
revision numbers and CHANGE-CAUSE, a revision's pod template, undo to the
previous or a chosen revision (or "skipped rollback" when it is already the
live template), pods labelled with their revision, StatefulSet partitions,
history trimmed to revisionHistoryLimit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kinns.testing import ClusterHandle, wait_for

from .helpers import apply, pods


def daemonset(name: str, image: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, **spec,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def statefulset(name: str, image: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"serviceName": name, "replicas": replicas, "selector": {"matchLabels": {"app": name}}, **spec,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def history(cluster: ClusterHandle, what: str, version: str = "1.32") -> list[list[str]]:
    """`kubectl rollout history` rows after the header: [REVISION, CHANGE-CAUSE]."""
    out = cluster.kubectl("rollout", "history", what, version=version).stdout.splitlines()
    kind = {"ds": "daemonset", "sts": "statefulset"}[what.split("/")[0]]
    assert out[0].strip() == f"{kind}.apps/{what.split('/')[1]}"
    assert out[1].split() == ["REVISION", "CHANGE-CAUSE"]
    return [ln.split(None, 1) for ln in out[2:] if ln.strip()]


def revisions(cluster: ClusterHandle, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(cluster.kubectl(
        "get", "controllerrevisions", "-l", f"app={app}", "-o", "json").stdout)["items"]
    return sorted(items, key=lambda r: int(r["revision"]))


def images(cluster: ClusterHandle, app: str) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in pods(cluster, f"app={app}")
            if not p["metadata"].get("deletionTimestamp")}


def rolled(cluster: ClusterHandle, what: str) -> None:
    cluster.kubectl("rollout", "status", what, "--timeout=90s", timeout=100)


@pytest.mark.parametrize("v", ["1.27", "1.32"])
def test_daemonset_history_and_undo(cluster: ClusterHandle, v: str) -> None:
    name = f"agent{v.replace('.', '')}"
    apply(cluster, daemonset(name, "nginx:1.25"))
    rolled(cluster, f"ds/{name}")
    cluster.kubectl("set", "image", f"ds/{name}", "c=nginx:1.26")
    rolled(cluster, f"ds/{name}")
    cluster.kubectl("annotate", f"ds/{name}", "kubernetes.io/change-cause=pin 1.27")
    cluster.kubectl("set", "image", f"ds/{name}", "c=nginx:1.27")
    rolled(cluster, f"ds/{name}")
    assert history(cluster, f"ds/{name}", v) == [["1", "<none>"], ["2", "<none>"], ["3", "pin 1.27"]]
    revs = revisions(cluster, name)
    assert [r["metadata"]["name"] for r in revs] == [
        f"{name}-{r['metadata']['labels']['controller-revision-hash']}" for r in revs]
    table = cluster.kubectl("get", "controllerrevisions", "-l", f"app={name}").stdout.splitlines()
    assert table[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert all(ln.split()[1] == f"daemonset.apps/{name}" for ln in table[1:])
    newest = revs[-1]["metadata"]["labels"]["controller-revision-hash"]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods(cluster, f"app={name}")} == {newest}

    shown = cluster.kubectl("rollout", "history", f"ds/{name}", "--revision=1", version=v).stdout
    assert shown.startswith(f"daemonset.apps/{name} with revision #1\nPod Template:\n")
    assert "Image:\tnginx:1.25" in shown

    out = cluster.kubectl("rollout", "undo", f"ds/{name}", version=v).stdout.strip()
    assert out == f"daemonset.apps/{name} rolled back"
    rolled(cluster, f"ds/{name}")
    wait_for(lambda: images(cluster, name) == {"nginx:1.26"}, timeout=60)
    # Revision 2's template came back: it is renumbered 4, no new revision is written.
    assert [row[0] for row in history(cluster, f"ds/{name}", v)] == ["1", "3", "4"]
    again = cluster.kubectl("rollout", "undo", f"ds/{name}", "--to-revision=4", version=v)
    assert again.stdout.strip() == f"daemonset.apps/{name} skipped rollback (current template already matches revision 4)"
    missing = cluster.kubectl("rollout", "undo", f"ds/{name}", "--to-revision=9", check=False, version=v)
    assert missing.returncode != 0 and "unable to find specified revision 9 in history" in missing.stderr
    cluster.kubectl("delete", f"ds/{name}", "--wait=false")


def test_daemonset_history_is_trimmed(cluster: ClusterHandle) -> None:
    apply(cluster, daemonset("trim", "nginx:1.21", revisionHistoryLimit=1))
    for tag in ("1.22", "1.23", "1.24"):
        rolled(cluster, "ds/trim")
        cluster.kubectl("set", "image", "ds/trim", f"c=nginx:{tag}")
    rolled(cluster, "ds/trim")
    # The live revision and one old one are kept, oldest deleted first.
    wait_for(lambda: [r["revision"] for r in revisions(cluster, "trim")] == [3, 4])
    cluster.kubectl("delete", "ds/trim", "--wait=false")


def test_statefulset_history_undo_and_partition(cluster: ClusterHandle) -> None:
    apply(cluster, statefulset("db", "nginx:1.25", 2))
    rolled(cluster, "sts/db")
    first = revisions(cluster, "db")
    assert len(first) == 1 and first[0]["metadata"]["labels"]["controller.kubernetes.io/hash"]
    cluster.kubectl("set", "image", "sts/db", "c=nginx:1.26")
    rolled(cluster, "sts/db")
    assert history(cluster, "sts/db") == [["1", "<none>"], ["2", "<none>"]]
    revs = revisions(cluster, "db")
    second = revs[-1]["metadata"]["name"]
    status = json.loads(cluster.kubectl("get", "sts", "db", "-o", "json").stdout)["status"]
    assert (status["currentRevision"], status["updateRevision"], status["updatedReplicas"]) == (second, second, 2)
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods(cluster, "app=db")} == {second}
    assert "Image:\tnginx:1.26" in cluster.kubectl("rollout", "history", "sts/db", "--revision=2").stdout

    assert cluster.kubectl("rollout", "undo", "sts/db").stdout.strip() == "statefulset.apps/db rolled back"
    rolled(cluster, "sts/db")
    wait_for(lambda: images(cluster, "db") == {"nginx:1.25"}, timeout=60)
    assert [row[0] for row in history(cluster, "sts/db")] == ["2", "3"]
    back = first[0]["metadata"]["name"]
    wait_for(lambda: json.loads(cluster.kubectl("get", "sts", "db", "-o", "json").stdout)["status"]
             .get("currentRevision") == back)

    # A partition keeps the ordinals below it on the current revision.
    cluster.kubectl("patch", "sts", "db", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}')
    cluster.kubectl("set", "image", "sts/db", "c=nginx:1.27")
    wait_for(lambda: {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods(cluster, "app=db")
                      if not p["metadata"].get("deletionTimestamp")} == {"db-0": "nginx:1.25", "db-1": "nginx:1.27"},
             timeout=60)
    status = json.loads(cluster.kubectl("get", "sts", "db", "-o", "json").stdout)["status"]
    assert status["currentRevision"] == back and status["updateRevision"] != back
    labels = {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"] for p in pods(cluster, "app=db")}
    assert labels == {"db-0": back, "db-1": status["updateRevision"]}
    cluster.kubectl("delete", "sts/db", "--wait=false")


def test_replicationcontroller_scale(cluster: ClusterHandle) -> None:
    rc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "legacy"}},
                                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    apply(cluster, rc)
    got = json.loads(cluster.kubectl("get", "rc", "legacy", "-o", "json").stdout)
    assert got["spec"]["selector"] == {"app": "legacy"} and got["metadata"]["labels"] == {"app": "legacy"}

    def row() -> list[str]:
        lines = cluster.kubectl("get", "rc", "legacy", "-o", "wide").stdout.splitlines()
        assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
        cells = lines[1].split()
        return cells[:4] + cells[5:]
    wait_for(lambda: row() == ["legacy", "2", "2", "2", "web", "nginx", "app=legacy"])
    assert cluster.kubectl("scale", "rc", "legacy", "--replicas=3").stdout.strip() == \
        "replicationcontroller/legacy scaled"
    wait_for(lambda: row()[:4] == ["legacy", "3", "3", "3"])
    owners = {p["metadata"]["ownerReferences"][0]["kind"] for p in pods(cluster, "app=legacy")}
    assert owners == {"ReplicationController"}
    cluster.kubectl("scale", "rc/legacy", "--replicas=1")
    wait_for(lambda: len([p for p in pods(cluster, "app=legacy") if not p["metadata"].get("deletionTimestamp")]) == 1)
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=legacy").stdout
    assert "SuccessfulCreate" in events and "SuccessfulDelete" in events
    bad = dict(rc, metadata={"name": "mismatch"})
    bad["spec"] = dict(rc["spec"], selector={"app": "other"})
    refused = cluster.kubectl("apply", "-f", "-", check=False, stdin=json.dumps(bad))
    assert refused.returncode != 0
    assert ('The ReplicationController "mismatch" is invalid: spec.template.metadata.labels: Invalid value: '
            'map[string]string{"app":"legacy"}: `selector` does not match template `labels`') in refused.stderr
    cluster.kubectl("delete", "rc", "legacy")
    wait_for(lambda: not pods(cluster, "app=legacy"), timeout=60)
