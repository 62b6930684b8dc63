"""CustomResourceDefinitions served for real, through the real kubectl and the official Python client.

One cluster for the module.  A CronTab CRD (status and scale subresources,
printer columns, defaults, a pattern) is the upstream docs' example; a
Widget CRD (cluster-scoped, two versions) covers conversion; a tiny
operator written with `kubernetes.client.CustomObjectsApi` and
`watch.Watch` reconciles CronTabs the way it would on kind.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client, config, watch

from kinns.testing import ClusterHandle, wait_for

GROUP, VERSION, PLURAL = "stable.example.com", "v1", "crontabs"
CRD_NAME = f"{PLURAL}.{GROUP}"

CRONTAB_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"],
                  "categories": ["all"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas"}},
            "additionalPrinterColumns": [
                {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
            "schema": {"openAPIV3Schema": {
                "type": "object", "description": "CronTab runs an image on a schedule.",
                "properties": {
                    "spec": {"type": "object", "description": "What to run and when.", "required": ["cronSpec"],
                             "properties": {
                                 "cronSpec": {"type": "string", "description": "The schedule, in cron format.",
                                              "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                                 "image": {"type": "string"},
                                 "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}}},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                                "phase": {"type": "string"}}}}}},
        }],
    },
}


def crontab(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CronTab", "metadata": {"name": name},
            "spec": {"cronSpec": "* * * * */5", "image": "my-cron-image", **spec}}


def apply(cluster: ClusterHandle, obj: dict[str, Any], *args: str, version: str = "1.32",
          check: bool = True) -> Any:
    return cluster.kubectl("apply", "-f", "-", *args, stdin=yaml.safe_dump(obj), version=version, check=check)


def get_json(cluster: ClusterHandle, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def conditions(cluster: ClusterHandle, crd: str) -> dict[str, tuple[str, str, str]]:
    got = get_json(cluster, "crd", crd)
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in got["status"].get("conditions", [])}


@pytest.fixture(scope="module")
def crd(cluster: ClusterHandle) -> Iterator[None]:
    assert "created" in apply(cluster, CRONTAB_CRD).stdout
    yield


@pytest.fixture(scope="module")
def api(cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield c
    c.close()


def test_a_crd_is_established_and_discovered_at_once(cluster: ClusterHandle, crd: None) -> None:
    conds = conditions(cluster, CRD_NAME)
    assert conds["NamesAccepted"] == ("True", "NoConflicts", "no conflicts found")
    assert conds["Established"] == ("True", "InitialNamesAccepted", "the initial names have been accepted")
    lines = cluster.kubectl("api-resources", f"--api-group={GROUP}").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert lines[1].split() == [PLURAL, "ct", f"{GROUP}/{VERSION}", "true", "CronTab"]
    legacy = json.loads(cluster.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}").stdout)
    assert {r["name"]: r["verbs"] for r in legacy["resources"]} == {
        PLURAL: ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        f"{PLURAL}/status": ["get", "patch", "update"], f"{PLURAL}/scale": ["get", "patch", "update"]}
    agg = cluster.http("GET", "/apis", accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    group = next(g for g in agg.json()["items"] if g["metadata"]["name"] == GROUP)
    res = group["versions"][0]["resources"][0]
    assert (res["resource"], res["scope"], res["singularResource"], res["shortNames"], res["categories"]) == (
        PLURAL, "Namespaced", "crontab", ["ct"], ["all"])
    assert [s["subresource"] for s in res["subresources"]] == ["status", "scale"]
    index = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3").stdout)
    assert f"apis/{GROUP}/{VERSION}" in index["paths"]


def test_apply_get_with_printer_columns(cluster: ClusterHandle, crd: None) -> None:
    assert apply(cluster, crontab("my-cron")).stdout.strip() == f"crontab.{GROUP}/my-cron created"
    out = cluster.kubectl("get", "ct").stdout.splitlines()
    assert out[0].split() == ["NAME", "SPEC", "REPLICAS", "PHASE", "AGE"]
    assert out[1].split()[:7] == ["my-cron", "*", "*", "*", "*", "*/5", "1"]  # replicas defaulted, no phase yet
    assert f"crontab.{GROUP}/my-cron" in cluster.kubectl("get", "all").stdout
    assert "my-cron" in cluster.kubectl("get", "crontabs.v1.stable.example.com", version="1.27").stdout
    assert apply(cluster, crontab("my-cron", image="v2")).stdout.strip() == f"crontab.{GROUP}/my-cron configured"
    assert apply(cluster, crontab("my-cron", image="v3"), version="1.27").stdout.strip() == \
        f"crontab.{GROUP}/my-cron configured"
    assert get_json(cluster, "ct", "my-cron")["spec"]["image"] == "v3"


@pytest.mark.parametrize("version", ["1.32", "1.27"])
def test_explain(cluster: ClusterHandle, crd: None, version: str) -> None:
    out = cluster.kubectl("explain", "crontab.spec", version=version).stdout
    assert "KIND:       CronTab" in out and "What to run and when." in out
    assert "cronSpec\t<string> -required-" in out and "The schedule, in cron format." in out


def test_every_violation_is_listed(cluster: ClusterHandle, crd: None) -> None:
    bad = crontab("bad", cronSpec="nope", image=3, replicas=20)
    r = cluster.kubectl("create", "-f", "-", "--validate=false", stdin=yaml.safe_dump(bad), check=False)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        'The CronTab "bad" is invalid: ',
        r"""* spec.cronSpec: Invalid value: "nope": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'""",
        '* spec.image: Invalid value: "integer": spec.image in body must be of type string: "integer"',
        "* spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
    ]
    missing = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CronTab", "metadata": {"name": "bad"}, "spec": {}}
    r = cluster.kubectl("create", "-f", "-", stdin=yaml.safe_dump(missing), check=False)
    assert r.stderr.strip() == 'The CronTab "bad" is invalid: spec.cronSpec: Required value'


def test_unknown_fields_refused_warned_or_pruned(cluster: ClusterHandle, crd: None) -> None:
    extra = crontab("extra", bogus=True)
    r = apply(cluster, extra, check=False)
    assert r.stderr.strip() == (f'Error from server (BadRequest): error when creating "STDIN": CronTab in version "v1" '
                                'cannot be handled as a CronTab: strict decoding error: unknown field "spec.bogus"')
    r = apply(cluster, extra, "--validate=warn")
    assert 'Warning: unknown field "spec.bogus"' in r.stderr
    assert "bogus" not in get_json(cluster, "ct", "extra")["spec"]
    cluster.kubectl("delete", "ct", "extra")


def test_status_subresource_and_generation(cluster: ClusterHandle, crd: None) -> None:
    apply(cluster, crontab("st"))
    cluster.kubectl("patch", "ct", "st", "--subresource=status", "--type=merge",
                    "-p", '{"status":{"phase":"Running","replicas":1},"spec":{"image":"ignored"}}')
    got = get_json(cluster, "ct", "st")
    assert got["status"] == {"phase": "Running", "replicas": 1}
    assert got["spec"]["image"] == "my-cron-image" and got["metadata"]["generation"] == 1
    cluster.kubectl("patch", "ct", "st", "--type=merge", "-p", '{"status":{"phase":"Ignored"},"spec":{"image":"b"}}')
    got = get_json(cluster, "ct", "st")
    assert (got["status"]["phase"], got["spec"]["image"], got["metadata"]["generation"]) == ("Running", "b", 2)
    assert cluster.kubectl("get", "ct", "st").stdout.splitlines()[1].split()[7] == "Running"


def test_scale_subresource(cluster: ClusterHandle, crd: None) -> None:
    apply(cluster, crontab("sc"))
    assert cluster.kubectl("scale", "ct", "sc", "--replicas=3").stdout.strip() == f"crontab.{GROUP}/sc scaled"
    assert get_json(cluster, "ct", "sc")["spec"]["replicas"] == 3
    scale = json.loads(cluster.kubectl("get", "ct", "sc", "--subresource=scale", "-o", "json").stdout)
    assert (scale["apiVersion"], scale["kind"], scale["spec"]["replicas"]) == ("autoscaling/v1", "Scale", 3)
    r = cluster.kubectl("scale", "ct", "sc", "--replicas=11", check=False)
    assert "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10" in r.stderr


def test_selectors(cluster: ClusterHandle, crd: None) -> None:
    apply(cluster, {**crontab("lbl"), "metadata": {"name": "lbl", "labels": {"team": "a"}}})
    assert cluster.kubectl("get", "ct", "-l", "team=a", "-o", "name").stdout.split() == [f"crontab.{GROUP}/lbl"]
    assert cluster.kubectl("get", "ct", "--field-selector", "metadata.name=lbl", "-o", "name").stdout.split() == [
        f"crontab.{GROUP}/lbl"]
    r = cluster.kubectl("get", "ct", "--field-selector", "spec.image=x", check=False)
    assert r.stderr.strip() == (f'Error from server (BadRequest): Unable to find "{GROUP}/{VERSION}, Resource=crontabs" '
                                'that match label selector "", field selector "spec.image=x": "spec.image" is not a '
                                'known field selector: only "metadata.name", "metadata.namespace"')


def test_python_operator_reconciles(cluster: ClusterHandle, crd: None, api: client.ApiClient) -> None:
    """List + watch CronTabs, write status through the status subresource, as on kind."""
    co = client.CustomObjectsApi(api)
    events: list[tuple[str, str]] = []
    stop = threading.Event()
    listed = co.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)

    def operator() -> None:
        w = watch.Watch()
        for ev in w.stream(co.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL,
                           resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=20):
            obj = ev["object"]
            events.append((ev["type"], obj["metadata"]["name"]))
            want = obj["spec"].get("replicas")
            if ev["type"] != "DELETED" and (obj.get("status") or {}).get("replicas") != want:
                co.patch_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, obj["metadata"]["name"],
                                                         {"status": {"replicas": want, "phase": "Ready"}})
            if stop.is_set() and ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=operator, daemon=True)
    t.start()
    co.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontab("op", replicas=2))

    def status() -> dict[str, Any] | None:
        s = co.get_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "op").get("status")
        return s if s and s.get("replicas") == want else None

    want = 2
    assert wait_for(status, timeout=10) == {"replicas": 2, "phase": "Ready"}
    co.patch_namespaced_custom_object_scale(GROUP, VERSION, "default", PLURAL, "op", {"spec": {"replicas": 4}})
    want = 4
    assert wait_for(status, timeout=10) == {"replicas": 4, "phase": "Ready"}
    stop.set()
    co.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "op")
    t.join(timeout=20)
    mine = [e for e in events if e[1] == "op"]
    assert mine[0] == ("ADDED", "op") and mine[-1] == ("DELETED", "op") and ("MODIFIED", "op") in mine


def test_garbage_collection_and_namespace_deletion(cluster: ClusterHandle, crd: None) -> None:
    cluster.kubectl("create", "namespace", "crs")
    apply(cluster, crontab("owner"), "-n", "crs")
    uid = get_json(cluster, "ct", "owner", "-n", "crs")["metadata"]["uid"]
    ref = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "CronTab", "name": "owner", "uid": uid}]
    apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "owned", "namespace": "crs", "ownerReferences": ref}})
    apply(cluster, {**crontab("child"), "metadata": {"name": "child", "namespace": "crs", "ownerReferences": ref}})
    cluster.kubectl("delete", "ct", "owner", "-n", "crs")
    wait_for(lambda: cluster.kubectl("get", "cm,ct", "-n", "crs", "-o", "name").stdout.split() == [
        "configmap/kube-root-ca.crt"] or None, timeout=15)
    apply(cluster, crontab("left"), "-n", "crs")
    cluster.kubectl("delete", "namespace", "crs", "--timeout=30s")
    assert get_json(cluster, "ct", "-A", "--field-selector", "metadata.namespace=crs")["items"] == []


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.demo.kinns.dev"},
    "spec": {"group": "demo.kinns.dev", "scope": "Cluster",
             "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
             "versions": [
                 {"name": "v1beta1", "served": True, "storage": False, "deprecated": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object",
                                                               "x-kubernetes-preserve-unknown-fields": True}}}}},
                 {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "size": {"type": "string", "enum": ["small", "large"]},
                         "port": {"x-kubernetes-int-or-string": True}}}}}}}]}}


def test_versions_share_one_storage_version(cluster: ClusterHandle) -> None:
    apply(cluster, WIDGET_CRD)
    r = apply(cluster, {"apiVersion": "demo.kinns.dev/v1beta1", "kind": "Widget", "metadata": {"name": "w1"},
                        "spec": {"size": "small", "port": "http"}})
    assert "Warning: demo.kinns.dev/v1beta1 Widget is deprecated; use demo.kinns.dev/v1 Widget" in r.stderr
    assert get_json(cluster, "widgets.v1.demo.kinns.dev", "w1")["apiVersion"] == "demo.kinns.dev/v1"
    assert get_json(cluster, "widgets.v1beta1.demo.kinns.dev", "w1")["apiVersion"] == "demo.kinns.dev/v1beta1"
    assert get_json(cluster, "wd", "w1")["apiVersion"] == "demo.kinns.dev/v1"  # the preferred version
    assert get_json(cluster, "crd", "widgets.demo.kinns.dev")["status"]["storedVersions"] == ["v1"]
    bad = {"apiVersion": "demo.kinns.dev/v1", "kind": "Widget", "metadata": {"name": "w2"},
           "spec": {"size": "medium", "port": True}}
    r = cluster.kubectl("create", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert 'spec.size: Unsupported value: "medium": supported values: "small", "large"' in r.stderr
    assert 'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"' in r.stderr


def test_bad_crds_and_name_conflicts(cluster: ClusterHandle) -> None:
    gadget: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.demo.kinns.dev"},
        "spec": {"group": "demo.kinns.dev", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "kind": "Gadget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"properties": {"size": {"type": "string"}}}}}}}]}}
    r = apply(cluster, gadget, check=False)
    assert r.stderr.strip() == ('The CustomResourceDefinition "gadgets.demo.kinns.dev" is invalid: '
                                "spec.validation.openAPIV3Schema.properties[spec].type: Required value: "
                                "must not be empty for specified object fields")
    gadget["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] = "object"
    apply(cluster, gadget)
    conds = conditions(cluster, "gadgets.demo.kinns.dev")
    assert conds["NamesAccepted"] == ("False", "ShortNamesConflict", '"wd" is already in use')
    assert conds["Established"][0] == "False"
    two = dict(WIDGET_CRD, metadata={"name": "things.demo.kinns.dev"})
    two["spec"] = dict(WIDGET_CRD["spec"], names={"plural": "things", "kind": "Thing"},
                       versions=[dict(v, storage=True) for v in WIDGET_CRD["spec"]["versions"]])
    r = apply(cluster, two, check=False)
    assert "must have exactly one version marked as storage version" in r.stderr


def test_a_cr_in_the_same_file_as_its_new_crd(cluster: ClusterHandle) -> None:
    crd = dict(WIDGET_CRD, metadata={"name": "gizmos.demo.kinns.dev"})
    crd["spec"] = dict(WIDGET_CRD["spec"], names={"plural": "gizmos", "kind": "Gizmo"})
    cr = {"apiVersion": "demo.kinns.dev/v1", "kind": "Gizmo", "metadata": {"name": "g1"}, "spec": {"size": "small"}}
    both = yaml.safe_dump_all([crd, cr])
    r = cluster.kubectl("apply", "-f", "-", stdin=both, check=False)
    assert 'no matches for kind "Gizmo" in version "demo.kinns.dev/v1"' in r.stderr
    assert "ensure CRDs are installed first" in r.stderr
    assert "gizmo.demo.kinns.dev/g1 created" in cluster.kubectl("apply", "-f", "-", stdin=both).stdout


def test_deleting_a_crd_waits_for_finalizers_and_removes_its_objects(cluster: ClusterHandle, crd: None) -> None:
    apply(cluster, crontab("held"))
    cluster.kubectl("patch", "ct", "held", "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    cluster.kubectl("delete", "crd", CRD_NAME, "--wait=false")
    wait_for(lambda: conditions(cluster, CRD_NAME).get("Terminating", ("",))[0] == "True" or None, timeout=10)
    assert conditions(cluster, CRD_NAME)["Terminating"][1:] == (
        "InstanceDeletionInProgress", "CustomResource deletion is in progress")
    r = apply(cluster, crontab("late"), check=False)
    assert "create not allowed while custom resource definition is terminating" in r.stderr
    assert get_json(cluster, "ct", "held")["metadata"]["deletionTimestamp"]
    cluster.kubectl("patch", "ct", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    wait_for(lambda: cluster.kubectl("get", "crd", CRD_NAME, check=False).returncode != 0 or None, timeout=15)
    r = cluster.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
