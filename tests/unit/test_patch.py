"""JSON, merge and strategic merge patch: what kubectl patch/apply/edit send."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kinns.api.errors import ApiError
from kinns.api.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch

DEPLOY = "io.k8s.api.apps.v1.Deployment"
SERVICE = "io.k8s.api.core.v1.Service"
POD = "io.k8s.api.core.v1.Pod"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "finalizers": ["a/one"],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web", "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"},
                                      {"containerPort": 443, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# ------------------------------------------------------------------ JSON patch

JSON_CASES = [
    ("add key", {"a": 1}, [{"op": "add", "path": "/b", "value": 2}], {"a": 1, "b": 2}),
    ("add replaces key", {"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),
    ("add at index", {"l": [1, 3]}, [{"op": "add", "path": "/l/1", "value": 2}], {"l": [1, 2, 3]}),
    ("add at end with -", {"l": [1]}, [{"op": "add", "path": "/l/-", "value": 2}], {"l": [1, 2]}),
    ("add at len", {"l": [1]}, [{"op": "add", "path": "/l/1", "value": 2}], {"l": [1, 2]}),
    ("remove key", {"a": 1, "b": 2}, [{"op": "remove", "path": "/a"}], {"b": 2}),
    ("remove index", {"l": [1, 2, 3]}, [{"op": "remove", "path": "/l/0"}], {"l": [2, 3]}),
    ("replace", {"a": {"b": 1}}, [{"op": "replace", "path": "/a/b", "value": [1]}], {"a": {"b": [1]}}),
    ("move", {"a": 1, "b": {}}, [{"op": "move", "from": "/a", "path": "/b/c"}], {"b": {"c": 1}}),
    ("copy", {"a": {"x": 1}}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": {"x": 1}, "b": {"x": 1}}),
    ("test then replace", {"a": 1}, [{"op": "test", "path": "/a", "value": 1},
                                     {"op": "replace", "path": "/a", "value": 5}], {"a": 5}),
    ("escapes ~1 and ~0", {"metadata": {"labels": {"app.io/x": "1", "t~": "2"}}},
     [{"op": "remove", "path": "/metadata/labels/app.io~1x"},
      {"op": "replace", "path": "/metadata/labels/t~0", "value": "3"}],
     {"metadata": {"labels": {"t~": "3"}}}),
    ("annotation with slash", {"metadata": {}},
     [{"op": "add", "path": "/metadata/annotations", "value": {}},
      {"op": "add", "path": "/metadata/annotations/example.com~1k", "value": "v"}],
     {"metadata": {"annotations": {"example.com/k": "v"}}}),
    ("empty list", {"a": 1}, [], {"a": 1}),
]


@pytest.mark.parametrize("name,doc,patch,want", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_json_patch(name: str, doc: dict, patch: list, want: dict) -> None:
    before = copy.deepcopy(doc)
    assert apply_json_patch(doc, patch) == want
    assert doc == before  # inputs untouched


JSON_ERRORS = [
    ("test fails", {"a": 1}, [{"op": "test", "path": "/a", "value": 2}], 422, "testing value /a failed"),
    ("test bool is not int", {"a": 1}, [{"op": "test", "path": "/a", "value": True}], 422, "failed"),
    ("test missing path", {"a": 1}, [{"op": "test", "path": "/b", "value": 1}], 422, "failed"),
    ("remove missing", {"a": 1}, [{"op": "remove", "path": "/b"}], 422, "missing"),
    ("replace missing", {"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], 422, "missing"),
    ("add under missing parent", {}, [{"op": "add", "path": "/a/b", "value": 1}], 422, "missing path"),
    ("index out of range", {"l": [1]}, [{"op": "remove", "path": "/l/1"}], 422, "out of bounds"),
    ("index leading zero", {"l": [1, 2]}, [{"op": "remove", "path": "/l/01"}], 422, "invalid array index"),
    ("move into child", {"a": {}}, [{"op": "move", "from": "/a", "path": "/a/b"}], 422, "own child"),
    ("unknown op", {}, [{"op": "frob", "path": "/a"}], 400, "frob"),
    ("missing value", {}, [{"op": "add", "path": "/a"}], 400, "value"),
    ("not a list", {}, {"op": "add"}, 400, "jsonpatch.Patch"),
]


@pytest.mark.parametrize("name,doc,patch,code,text", JSON_ERRORS, ids=[c[0] for c in JSON_ERRORS])
def test_json_patch_errors(name: str, doc: dict, patch: Any, code: int, text: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(ApiError) as e:
        apply_json_patch(doc, patch)
    assert e.value.code == code
    assert text in e.value.message
    assert doc == before


# ----------------------------------------------------------------- merge patch

MERGE_CASES = [
    ("add and replace", {"a": 1, "b": 2}, {"b": 3, "c": 4}, {"a": 1, "b": 3, "c": 4}),
    ("null deletes", {"a": 1, "b": 2}, {"a": None}, {"b": 2}),
    ("null on missing key", {"a": 1}, {"z": None}, {"a": 1}),
    ("nested", {"m": {"x": 1, "y": 2}}, {"m": {"y": None, "z": 3}}, {"m": {"x": 1, "z": 3}}),
    ("lists replaced", {"l": [1, 2, 3]}, {"l": [4]}, {"l": [4]}),
    ("new object strips nulls", {}, {"m": {"a": None, "b": 1}}, {"m": {"b": 1}}),
    ("scalar replaced by object", {"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ("empty patch", {"a": 1}, {}, {"a": 1}),
]


@pytest.mark.parametrize("name,doc,patch,want", MERGE_CASES, ids=[c[0] for c in MERGE_CASES])
def test_merge_patch(name: str, doc: dict, patch: dict, want: dict) -> None:
    before = copy.deepcopy(doc)
    assert apply_merge_patch(doc, patch) == want
    assert doc == before


@pytest.mark.parametrize("patch", [[1], "x", 3, None])
def test_merge_patch_must_be_object(patch: Any) -> None:
    with pytest.raises(ApiError) as e:
        apply_merge_patch({"a": 1}, patch)
    assert e.value.code == 400


def test_merge_patch_replaces_merge_key_lists() -> None:
    """--type=merge knows no merge keys: containers are replaced wholesale."""
    out = apply_merge_patch(deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}})
    assert containers(out) == [{"name": "x"}]


# ------------------------------------------------------- strategic merge patch


def smp(patch: dict, obj: dict | None = None, schema: str | None = DEPLOY) -> dict:
    base = obj if obj is not None else deployment()
    before = copy.deepcopy(base)
    out = apply_strategic_merge_patch(base, patch, schema)
    assert base == before  # never mutates
    return out


def test_smp_empty_patch_is_noop() -> None:
    """A second `kubectl apply` of an unchanged file sends {}."""
    assert smp({}) == deployment()


def test_smp_annotation_only() -> None:
    out = smp({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"x\":1}"}}})
    assert out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "{\"x\":1}"
    assert out["spec"] == deployment()["spec"]


def test_smp_replicas() -> None:
    out = smp({"spec": {"replicas": 3}})
    assert out["spec"]["replicas"] == 3
    assert containers(out) == containers(deployment())


def test_smp_label_removed_with_null() -> None:
    out = smp({"metadata": {"labels": {"tier": None}}})
    assert out["metadata"]["labels"] == {"app": "web"}


def test_smp_image_change_with_set_element_order() -> None:
    """What kubectl apply sends after editing one container's image."""
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"name": "web", "image": "nginx:1.26"}]}}}}
    out = smp(patch)
    web, side = containers(out)
    assert web["image"] == "nginx:1.26"
    assert web["ports"] == containers(deployment())[0]["ports"]  # merged, not replaced
    assert web["env"] == containers(deployment())[0]["env"]
    assert side == containers(deployment())[1]
    assert "$setElementOrder/containers" not in out["spec"]["template"]["spec"]


def test_smp_set_element_order_reorders() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}}}}
    assert [c["name"] for c in containers(smp(patch))] == ["sidecar", "web"]


def test_smp_single_container_set_element_order() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = [{"name": "web", "image": "nginx:1.25"}]
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                            "containers": [{"name": "web", "image": "nginx:1.26"}]}}}}
    assert containers(smp(patch, obj)) == [{"name": "web", "image": "nginx:1.26"}]


def test_smp_delete_container() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]}}}}
    assert [c["name"] for c in containers(smp(patch))] == ["web"]


def test_smp_add_container_appended() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "redis"}]}}}}
    assert [c["name"] for c in containers(smp(patch))] == ["web", "sidecar", "new"]


def test_smp_add_container_placed_by_order() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}, {"name": "sidecar"}],
        "containers": [{"name": "new", "image": "redis"}]}}}}
    assert [c["name"] for c in containers(smp(patch))] == ["web", "new", "sidecar"]


def test_smp_env_merge() -> None:
    """Edit one env var, add one, delete one: the kubectl apply shape."""
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{
            "name": "web",
            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
            "env": [{"name": "A", "value": "10"}, {"name": "C", "value": "3"},
                    {"$patch": "delete", "name": "B"}],
        }]}}}}
    assert containers(smp(patch))[0]["env"] == [{"name": "A", "value": "10"}, {"name": "C", "value": "3"}]


def test_smp_env_value_from_replaces_value() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "web", "env": [{"name": "A", "value": None,
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}}
    assert containers(smp(patch))[0]["env"][0] == {
        "name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def test_smp_container_ports_by_container_port() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "$setElementOrder/ports": [{"containerPort": 8080}, {"containerPort": 443}],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"$patch": "delete", "containerPort": 80},
                  {"containerPort": 443, "name": "https"}]}]}}}}
    assert containers(smp(patch))[0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 443, "protocol": "TCP", "name": "https"},
    ]


def test_smp_service_ports_by_port() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    out = smp({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, svc, SERVICE)
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443, "targetPort": 8443}]


def test_smp_non_merge_list_replaced() -> None:
    """`args` has no patch strategy: the patch list wins."""
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "args": ["sleep", "1"]}]}}}}
    assert containers(smp(patch))[1]["args"] == ["sleep", "1"]


def test_smp_primitive_list_union_and_delete() -> None:
    out = smp({"metadata": {"finalizers": ["b/two", "a/one"]}})
    assert out["metadata"]["finalizers"] == ["a/one", "b/two"]
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/one"]}})
    assert out["metadata"]["finalizers"] == []
    out = smp({"metadata": {"$setElementOrder/finalizers": ["b/two", "a/one"], "finalizers": ["b/two"]}})
    assert out["metadata"]["finalizers"] == ["b/two", "a/one"]


def test_smp_patch_replace_on_map_and_list() -> None:
    out = smp({"spec": {"selector": {"$patch": "replace", "matchLabels": {"x": "y"}}}})
    assert out["spec"]["selector"] == {"matchLabels": {"x": "y"}}
    patch = {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}}}
    assert containers(smp(patch)) == [{"name": "only", "image": "i"}]


def test_smp_patch_delete_on_map() -> None:
    out = smp({"spec": {"strategy": {"$patch": "delete"}}})
    assert out["spec"]["strategy"] == {}


def test_smp_retain_keys() -> None:
    """Switching a Deployment to Recreate: kubectl sends $retainKeys for the union type."""
    out = smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(ApiError) as e:
        smp({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}})
    assert e.value.code == 422


def test_smp_volumes_merge_by_name() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}}}}
    vols = smp(patch)["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in vols] == ["data", "cfg"]


def test_smp_new_key_strips_directives() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}],
                      "containers": [{"name": "c", "image": "i", "env": [{"name": "X", "value": "1"}]}]}}
    assert smp(patch, obj, POD)["spec"] == {"containers": [{"name": "c", "image": "i",
                                                            "env": [{"name": "X", "value": "1"}]}]}


def test_smp_without_schema_is_merge_patch() -> None:
    cr = {"apiVersion": "x.io/v1", "kind": "Foo", "spec": {"items": [{"name": "a", "v": 1}], "k": 1}}
    out = smp({"spec": {"items": [{"name": "b"}], "k": None}}, cr, None)
    assert out == {"apiVersion": "x.io/v1", "kind": "Foo", "spec": {"items": [{"name": "b"}]}}
    assert smp({"spec": {"k": 2}}, cr, "no.such.Definition")["spec"]["k"] == 2


def test_smp_kubectl_apply_sequence() -> None:
    """Patches recorded from kubectl 1.32 / 1.27 `apply` against a stub server, replayed in order."""
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["example.com/a"]},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "web", "image": "nginx:1.25",
                         "ports": [{"containerPort": 80}, {"containerPort": 443}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "side", "image": "busybox", "args": ["sleep", "3600"]}]}}}}
    # Edited replicas, a label, image, env B->C, port 443->8443, finalizer, strategy type.
    edit = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                         "$setElementOrder/finalizers": ["example.com/b"], "finalizers": ["example.com/b"],
                         "labels": {"tier": None}},
            "spec": {"replicas": 3,
                     "strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
                     "template": {"spec": {
                         "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                         "containers": [{
                             "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                             "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8443}],
                             "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                             "image": "nginx:1.26", "name": "web",
                             "ports": [{"containerPort": 8443}, {"$patch": "delete", "containerPort": 443}]}]}}}}
    obj = smp(edit, obj)
    assert obj["metadata"] == {"name": "web", "labels": {"app": "web"}, "finalizers": ["example.com/b"]}
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    assert containers(obj) == [
        {"name": "web", "image": "nginx:1.26", "ports": [{"containerPort": 80}, {"containerPort": 8443}],
         "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]},
        {"name": "side", "image": "busybox", "args": ["sleep", "3600"]}]
    # Dropped the sidecar and env A, replicas 2 (kubectl 1.27).
    drop = {"metadata": {}, "spec": {"replicas": 2, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$setElementOrder/env": [{"name": "C"}], "env": [{"$patch": "delete", "name": "A"}],
                        "name": "web"},
                       {"$patch": "delete", "name": "side"}]}}}}
    obj = smp(drop, obj)
    assert obj["spec"]["replicas"] == 2
    assert containers(obj) == [
        {"name": "web", "image": "nginx:1.26", "ports": [{"containerPort": 80}, {"containerPort": 8443}],
         "env": [{"name": "C", "value": "3"}]}]


SMP_ERRORS = [
    ("missing merge key", {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, 400,
     "map: map[image:x] does not contain declared merge key: name"),
    ("bad setElementOrder", {"spec": {"template": {"spec": {"$setElementOrder/containers": "web"}}}}, 400,
     "setElementOrder"),
    ("bad deleteFromPrimitiveList", {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400,
     "primitive list"),
    ("unknown directive", {"spec": {"selector": {"$patch": "frob"}}}, 400, "frob"),
]


@pytest.mark.parametrize("name,patch,code,text", SMP_ERRORS, ids=[c[0] for c in SMP_ERRORS])
def test_smp_errors(name: str, patch: dict, code: int, text: str) -> None:
    with pytest.raises(ApiError) as e:
        smp(patch)
    assert e.value.code == code
    assert text in e.value.message


@pytest.mark.parametrize("patch", [[{"op": "add"}], "x", None])
def test_smp_must_be_object(patch: Any) -> None:
    with pytest.raises(ApiError) as e:
        apply_strategic_merge_patch(deployment(), patch, DEPLOY)
    assert e.value.code == 400


def test_results_share_nothing_with_inputs() -> None:
    """Callers may mutate the result (resourceVersion, defaults) without touching the stored object or patch."""
    obj, patch = deployment(), {"metadata": {"labels": {"new": "1"}},
                                "spec": {"template": {"spec": {"containers": [{"name": "x", "env": [{"name": "E"}]}]}}}}
    before_obj, before_patch = copy.deepcopy(obj), copy.deepcopy(patch)
    for out in (apply_strategic_merge_patch(obj, patch, DEPLOY), apply_merge_patch(obj, patch),
                apply_json_patch(obj, [{"op": "add", "path": "/x", "value": patch}])):
        for c in (out["metadata"]["labels"], out["spec"]["template"]["spec"]):
            c["mutated"] = True
        if "x" in out:
            out["x"]["metadata"]["labels"]["mutated"] = "1"
        for c in containers(out):
            c.setdefault("env", []).append({"name": "Z"})
    assert obj == before_obj and patch == before_patch
