"""Field sets, comparison, merge and field ownership (smd.py, fieldmanager.py, scale.py) as pure logic.

Expected values follow upstream's structured-merge-diff and field manager
behaviour: the FieldsV1 encoding of real objects, the list merge order, and
the managedFields kubectl shows after apply, update and scale.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kinns.api import fieldmanager, scale, smd
from kinns.api.errors import ApiError
from kinns.api.fieldmanager import Shape
from kinns.api.resources import REGISTRY

DEPLOYMENT = smd.for_definition("io.k8s.api.apps.v1.Deployment")
POD = smd.for_definition("io.k8s.api.core.v1.Pod")
DEPLOY_RT = REGISTRY.by_kind("apps/v1", "Deployment")
assert DEPLOY_RT is not None
DEPLOY = fieldmanager.shape_for(DEPLOY_RT)
CM = Shape(smd.for_definition("io.k8s.api.core.v1.ConfigMap"), "v1", "ConfigMap")

TOY = smd.from_openapi({"type": "object", "properties": {
    "setStr": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
    "setNum": {"type": "array", "items": {"type": "number"}, "x-kubernetes-list-type": "set"},
    "atomicList": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
    "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["key", "id"],
             "items": {"type": "object", "properties": {
                 "key": {"type": "string"}, "id": {"type": "number"}, "nv": {"type": "number"},
                 "value": {"type": "object", "additionalProperties": {"type": "string"}}}}},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}})


def deployment(replicas: int = 2, **extra: Any) -> dict[str, Any]:
    labels = extra.pop("labels", {"app": "web"})
    containers = extra.pop("containers", [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}])
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}}


def owners(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


# ----------------------------------------------------------------- encoding


def test_path_elements_encode_and_print_as_upstream() -> None:
    ports = DEPLOYMENT.field("spec").field("template").field("spec").field("containers").elem.field("ports")
    # Keys sorted by name; a missing key with a default takes it (containerPort + TCP).
    assert ports.item_pe({"containerPort": 80}) == 'k:{"containerPort":80,"protocol":"TCP"}'
    assert ports.item_pe({"protocol": "UDP", "containerPort": 53}) == 'k:{"containerPort":53,"protocol":"UDP"}'
    assert TOY.field("setStr").item_pe("a<b") == 'v:"a\\u003cb"'
    assert smd.path_string(("f:spec", "f:containers", 'k:{"name":"web"}', "f:image")) == \
        '.spec.containers[name="web"].image'
    assert smd.path_string(("f:x", 'k:{"containerPort":80,"protocol":"TCP"}', 'v:"a"', "i:3")) == \
        '.x[containerPort=80,protocol="TCP"][="a"][3]'
    with pytest.raises(smd.SchemaError, match="omits all key fields"):
        DEPLOYMENT.field("spec").field("template").field("spec").field("containers").item_pe({"image": "x"})


def test_field_set_operations_keep_membership() -> None:
    a = {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}}}
    # Removing a child keeps its parent a member: `f:labels: {.: {}, f:tier: {}}`.
    assert smd.fs_difference(a, {"f:metadata": {"f:labels": {"f:app": {}}}}) == \
        {"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}}
    # Removing every child leaves a member leaf; removing the member too empties the set.
    assert smd.fs_difference(a, {"f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}}}) == \
        {"f:metadata": {"f:labels": {}}}
    assert smd.fs_difference(a, {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}}}) == {}
    assert smd.fs_union({"f:x": {}}, {"f:x": {"f:y": {}}}) == {"f:x": {".": {}, "f:y": {}}}
    assert smd.fs_intersection(a, {"f:metadata": {"f:labels": {"f:app": {}}}}) == \
        {"f:metadata": {"f:labels": {"f:app": {}}}}
    assert smd.fs_has(a, ("f:metadata", "f:labels")) and not smd.fs_has(a, ("f:metadata",))
    assert [smd.path_string(p) for p in smd.fs_paths({"f:spec": {"f:replicas": {}}, "f:metadata": a["f:metadata"]})] \
        == [".metadata.labels", ".metadata.labels.app", ".metadata.labels.tier", ".spec.replicas"]


def test_to_field_set_of_an_applied_deployment() -> None:
    s = smd.to_field_set(deployment(), DEPLOYMENT)
    # Map entries and scalars are leaves; list items are members with children; the
    # atomic selector is a leaf; struct fields with children are no members.
    assert s["f:metadata"] == {"f:name": {}, "f:namespace": {}, "f:labels": {"f:app": {}}}
    assert s["f:spec"]["f:selector"] == {}
    assert s["f:spec"]["f:template"]["f:spec"]["f:containers"] == {'k:{"name":"nginx"}': {
        ".": {}, "f:name": {}, "f:image": {},
        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}
    assert smd.to_field_set({"free": {"a": {"b": 1}}, "setStr": ["x"]}, TOY) == {
        "f:free": {"f:a": {".": {}, "f:b": {}}}, "f:setStr": {'v:"x"': {}}}


# ------------------------------------------------------------------ compare


def test_compare_a_create_as_upstream_types_see_it() -> None:
    new = deployment()
    new["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}
    added = smd.compare({}, new, DEPLOYMENT).added
    spec = added["f:spec"]
    # spec, strategy, template, template.spec are Go value structs: present in the zero
    # object, so never added themselves; rollingUpdate (a pointer) and new maps are.
    assert "." not in spec and "." not in spec["f:strategy"] and "." in spec["f:strategy"]["f:rollingUpdate"]
    assert "." in spec["f:template"]["f:metadata"]["f:labels"]
    containers = spec["f:template"]["f:spec"]["f:containers"]
    assert "." not in containers                       # a null slice in the zero PodSpec
    assert containers['k:{"name":"nginx"}']["f:resources"] == {}   # always serialized by Go


def test_compare_only_walks_what_changed() -> None:
    old = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}],
                      "containerStatuses": [{"name": "c", "ready": False}]}}
    new = json.loads(json.dumps(old))
    new["status"]["conditions"][0]["status"] = "True"
    new["status"]["containerStatuses"][0]["ready"] = True
    new["status"]["podIP"] = "10.0.0.1"
    del new["status"]["conditions"][1]
    c = smd.compare(old, new, POD)
    assert c.modified == {"f:status": {"f:conditions": {'k:{"type":"Ready"}': {"f:status": {}}},
                                       "f:containerStatuses": {}}}        # an atomic list is one leaf
    assert c.added == {"f:status": {"f:podIP": {}}}
    assert c.removed == {"f:status": {"f:conditions": {'k:{"type":"Initialized"}': {
        ".": {}, "f:type": {}, "f:status": {}}}}}
    assert smd.compare(old, json.loads(json.dumps(old)), POD) == smd.Comparison({}, {}, {})


# -------------------------------------------------------------------- merge


@pytest.mark.parametrize("live,applied,merged", [
    (["a", "b"], ["b", "a"], ["b", "a"]),
    (["a", "b", "c"], ["c", "d", "e", "f"], ["a", "b", "c", "d", "e", "f"]),
    (["a", "b", "c", "g", "f"], ["c", "d", "e", "f"], ["a", "b", "c", "g", "d", "e", "f"]),
    (["c", "d", "e", "f"], ["a", "c", "e"], ["a", "c", "d", "e", "f"]),
    (["a", "b", "c", "d"], ["d", "e", "f", "a"], ["b", "c", "d", "e", "f", "a"]),
    (["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], ["1", "b", "2", "h", "3", "e", "4", "k", "l"],
     ["a", "1", "b", "c", "d", "f", "g", "2", "h", "i", "j", "3", "e", "4", "k", "l"]),
    (["a", "b", "b"], ["b"], ["a", "b"]),
    (["a", "b", "c", "d", "e", "c"], ["1", "b", "2", "e", "d"], ["a", "1", "b", "c", "2", "e", "c", "d"]),
])
def test_merge_orders_sets_as_upstream(live: list[str], applied: list[str], merged: list[str]) -> None:
    assert smd.merge({"setStr": live}, {"setStr": applied}, TOY) == {"setStr": merged}


def test_merge_keyed_lists_atomic_lists_and_maps() -> None:
    live = {"list": [{"key": "a", "id": 1}, {"key": "b", "id": 2}, {"key": "c", "id": 3, "value": {"x": "1"}}],
            "atomicList": ["a", "b"]}
    out = smd.merge(live, {"list": [{"key": "c", "id": 3, "value": {"y": "2"}}, {"key": "a", "id": 1, "nv": 5}],
                           "atomicList": ["z"]}, TOY)
    assert out["list"] == [{"key": "b", "id": 2}, {"key": "c", "id": 3, "value": {"x": "1", "y": "2"}},
                           {"key": "a", "id": 1, "nv": 5}]
    assert out["atomicList"] == ["z"]
    assert smd.merge({"atomicList": ["a"]}, {"atomicList": None}, TOY) == {"atomicList": None}
    with pytest.raises(smd.SchemaError, match="duplicate entries"):
        smd.merge(live, {"list": [{"key": "a", "id": 1}, {"key": "a", "id": 1}]}, TOY)


def test_remove_items_drops_subtrees_and_emptied_parents() -> None:
    obj = deployment()
    out = smd.remove_items(obj, {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:template": {"f:spec": {
        "f:containers": {'k:{"name":"nginx"}': {"f:ports": {}}}}}}}, DEPLOYMENT)
    assert "labels" not in out["metadata"]
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "nginx", "image": "nginx"}]
    assert obj["metadata"]["labels"] == {"app": "web"}             # inputs are never changed


# ------------------------------------------------------------- the manager


def test_update_entries_track_changes_and_hand_fields_over() -> None:
    created = json.loads(json.dumps(deployment()))
    fieldmanager.track(DEPLOY, None, created, "kubectl-create")
    assert list(owners(created)) == [("kubectl-create", "Update", "")]
    edited = json.loads(json.dumps(created))
    edited["spec"]["replicas"] = 5
    fieldmanager.track(DEPLOY, created, edited, "kubectl-edit")
    got = owners(edited)
    assert got[("kubectl-edit", "Update", "")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in got[("kubectl-create", "Update", "")]["f:spec"]
    # Nothing changed: entries (and their times) stay as they were.
    same = json.loads(json.dumps(edited))
    fieldmanager.track(DEPLOY, edited, same, "someone")
    assert same["metadata"]["managedFields"] == edited["metadata"]["managedFields"]
    # `managedFields: []` resets; an object without entries then stays untracked.
    reset = json.loads(json.dumps(edited))
    reset["metadata"]["managedFields"] = []
    fieldmanager.track(DEPLOY, edited, reset, "kubectl-edit")
    assert "managedFields" not in reset["metadata"]
    later = json.loads(json.dumps(reset))
    later["spec"]["replicas"] = 1
    fieldmanager.track(DEPLOY, reset, later, "kubectl-edit")
    assert "managedFields" not in later["metadata"]


def test_status_subresource_owns_only_status_and_the_main_resource_never_does() -> None:
    assert DEPLOY_RT is not None
    obj = json.loads(json.dumps(deployment()))
    obj["status"] = {"replicas": 1}
    fieldmanager.track(DEPLOY, None, obj, "kubectl-create")
    assert "f:status" not in owners(obj)[("kubectl-create", "Update", "")]
    new = json.loads(json.dumps(obj))
    new["status"] = {"replicas": 2, "readyReplicas": 2}
    fieldmanager.track(fieldmanager.shape_for(DEPLOY_RT, "status"), obj, new, "kube-controller-manager")
    assert owners(new)[("kube-controller-manager", "Update", "status")] == {
        "f:status": {"f:readyReplicas": {}, "f:replicas": {}}}


def test_update_managers_are_capped_into_ancient_changes() -> None:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    fieldmanager.track(CM, None, obj, "m0")
    for i in range(1, 13):
        new = json.loads(json.dumps(obj))
        new["data"][f"k{i}"] = str(i)
        new["metadata"]["managedFields"] = [dict(e, time=f"2024-01-01T00:00:{i:02d}Z")
                                            for e in new["metadata"].get("managedFields", [])]
        fieldmanager.track(CM, obj, new, f"m{i}")
        obj = new
    got = owners(obj)
    assert len(got) == 10 and ("ancient-changes", "Update", "") in got
    assert "f:k1" in got[("ancient-changes", "Update", "")]["f:data"]


def test_apply_conflicts_force_and_prune() -> None:
    first = fieldmanager.apply(DEPLOY, None, deployment(labels={"app": "web", "extra": "x"}), "kubectl", False)
    assert list(owners(first)) == [("kubectl", "Apply", "")]
    with pytest.raises(ApiError) as err:
        fieldmanager.apply(DEPLOY, first, deployment(replicas=4, labels={"app": "web", "extra": "y"}), "b", False)
    assert err.value.code == 409 and err.value.reason == "Conflict"
    assert err.value.message == ('Apply failed with 2 conflicts: conflict with "kubectl":\n'
                                 "- .metadata.labels.extra\n- .spec.replicas")
    assert err.value.details == {"causes": [
        {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"', "field": ".metadata.labels.extra"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"', "field": ".spec.replicas"}]}
    only_replicas = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                     "spec": {"replicas": 4}}
    forced = fieldmanager.apply(DEPLOY, first, only_replicas, "b", True)
    assert forced["spec"]["replicas"] == 4
    assert "f:replicas" not in owners(forced)[("kubectl", "Apply", "")]["f:spec"]
    # kubectl stops applying a label and the ports: they go, unless someone else owns them.
    slim = deployment(labels={"app": "web"}, containers=[{"name": "nginx", "image": "nginx"}])
    slim["spec"].pop("replicas")
    pruned = fieldmanager.apply(DEPLOY, forced, slim, "kubectl", False)
    assert pruned["metadata"]["labels"] == {"app": "web"}
    assert pruned["spec"]["template"]["spec"]["containers"] == [{"name": "nginx", "image": "nginx"}]
    assert pruned["spec"]["replicas"] == 4                        # b still owns it


def test_apply_of_an_update_owned_field_names_the_updater() -> None:
    live = json.loads(json.dumps(deployment()))
    fieldmanager.track(DEPLOY, None, live, "kubectl-create")
    with pytest.raises(ApiError) as err:
        fieldmanager.apply(DEPLOY, live, deployment(replicas=9), "kubectl", False)
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: '
                                 ".spec.replicas")
    # Applying the values as they are shares the fields instead.
    shared = fieldmanager.apply(DEPLOY, live, deployment(), "kubectl", False)
    assert "f:replicas" in owners(shared)[("kubectl", "Apply", "")]["f:spec"]
    assert "f:replicas" in owners(shared)[("kubectl-create", "Update", "")]["f:spec"]


def test_apply_refuses_what_upstream_refuses() -> None:
    with pytest.raises(ApiError, match="metadata.managedFields must be nil"):
        fieldmanager.apply(DEPLOY, None, dict(deployment(), metadata={"name": "w", "managedFields": []}), "k", False)
    with pytest.raises(ApiError, match="invalid object type: apps/v1beta1, Kind=Deployment"):
        fieldmanager.apply(DEPLOY, None, dict(deployment(), apiVersion="apps/v1beta1"), "k", False)
    dup = deployment(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])
    with pytest.raises(ApiError, match=r'\.spec\.template\.spec\.containers: duplicate entries for key \[name="a"\]'):
        fieldmanager.apply(DEPLOY, None, dup, "k", False)


# -------------------------------------------------------------------- scale


def test_scale_entries_map_between_parent_and_scale() -> None:
    assert DEPLOY_RT is not None
    parent = fieldmanager.apply(DEPLOY, None, deployment(), "kubectl", False)
    parent["metadata"]["uid"] = "u1"
    before = scale.before(DEPLOY_RT, parent)
    assert before["apiVersion"] == "autoscaling/v1" and before["status"]["selector"] == "app=web"
    assert [(e["manager"], e["apiVersion"], e["fieldsV1"]) for e in before["metadata"]["managedFields"]] == [
        ("kubectl", "autoscaling/v1", {"f:spec": {"f:replicas": {}}})]
    new_scale = json.loads(json.dumps(before))
    new_scale["spec"]["replicas"] = 3
    fieldmanager.track(scale.SHAPE, before, new_scale, "hpa")
    out = scale.updated_parent(DEPLOY_RT, parent, new_scale)
    assert out["spec"]["replicas"] == 3
    got = {(e["manager"], e["operation"], e.get("subresource", "")): e for e in out["metadata"]["managedFields"]}
    assert got[("hpa", "Update", "scale")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert got[("hpa", "Update", "scale")]["apiVersion"] == "apps/v1"
    assert "f:replicas" not in got[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]
    with pytest.raises(ApiError, match="must be greater than or equal to 0"):
        scale.updated_parent(DEPLOY_RT, parent, {"spec": {"replicas": -1}})
    with pytest.raises(ApiError, match="Precondition failed: UID in precondition: other, UID in object meta: u1"):
        scale.updated_parent(DEPLOY_RT, parent, {"metadata": {"uid": "other"}, "spec": {"replicas": 1}})
