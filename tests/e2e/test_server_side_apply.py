"""Server-side apply and field ownership, through the real kubectl and the official Python client.

What a user of `kubectl apply --server-side`, Flux, Argo CD or a Python
operator sees on a real cluster: managedFields entries per manager, the
409 "Apply failed with 1 conflict" when a second manager changes a field
another owns, `--force-conflicts` taking the field over, fields the
applier stops applying removed, and the scale subresource (what `kubectl
scale`, HPAs and client-go's scale client use) taking an autoscaling/v1
Scale and owning `.spec.replicas` as `subresource: scale`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

from kinns.testing import ClusterHandle, kubectl_binary, wait_for

NGINX = {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}


def deployment(name: str, replicas: int = 2, labels: dict[str, str] | None = None,
               containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels if labels is not None else {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": containers or [dict(NGINX)]}}}}


def ssa(cluster: ClusterHandle, obj: dict[str, Any], *args: str, check: bool = True,
        version: str = "1.32") -> Any:
    return cluster.kubectl("apply", "--server-side", "-f", "-", *args, stdin=json.dumps(obj), check=check,
                           version=version)


def get(cluster: ClusterHandle, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-o", "json", "--show-managed-fields").stdout
    return json.loads(out)  # type: ignore[no-any-return]


def entries(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """managedFields by (manager, operation, subresource)."""
    return {(e["manager"], e["operation"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}


def with_replicas(scale: Any, replicas: int) -> Any:
    scale.spec.replicas = replicas
    return scale


def retry_on_conflict(write: Callable[[], Any]) -> Any:
    """client-go's retry.RetryOnConflict: controllers write the parent meanwhile."""
    for _ in range(10):
        try:
            return write()
        except ApiException as exc:
            if exc.status != 409:
                raise
    return write()


@pytest.fixture(scope="module")
def api(cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield c
    c.close()


def test_apply_records_ownership_as_upstream(cluster: ClusterHandle) -> None:
    r = ssa(cluster, deployment("own"))
    assert "deployment.apps/own serverside-applied" in r.stdout
    shown = yaml.safe_load(cluster.kubectl("get", "deploy", "own", "-o", "yaml", "--show-managed-fields").stdout)
    mine = entries(shown)[("kubectl", "Apply", "")]
    assert mine["apiVersion"] == "apps/v1" and mine["fieldsType"] == "FieldsV1" and mine["time"].endswith("Z")
    assert mine["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {}, "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}}}}
    # Without --show-managed-fields kubectl hides them, as against any cluster.
    assert "managedFields" not in cluster.kubectl("get", "deploy", "own", "-o", "yaml").stdout
    # A second identical apply leaves the entry as it was.
    ssa(cluster, deployment("own"))
    again = entries(get(cluster, "deploy", "own"))[("kubectl", "Apply", "")]
    assert (again["fieldsV1"], again["time"]) == (mine["fieldsV1"], mine["time"])


def test_create_and_controllers_are_update_entries(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "deployment", "made", "--image=nginx", "--replicas=1")
    obj = get(cluster, "deploy", "made")
    made = entries(obj)[("kubectl-create", "Update", "")]
    spec = made["fieldsV1"]["f:spec"]
    # Value structs (spec, strategy, template) are no members; pointers and new list items are.
    assert "." not in spec and "." not in spec["f:strategy"] and "." in spec["f:strategy"]["f:rollingUpdate"]
    assert set(spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']) >= {
        ".", "f:image", "f:imagePullPolicy", "f:name", "f:terminationMessagePath", "f:terminationMessagePolicy"}
    # The deployment controller writes status through /status under its own name.
    def status_entry() -> Any:
        return entries(get(cluster, "deploy", "made")).get(("kube-controller-manager", "Update", "status"))
    st = wait_for(status_entry)
    assert "f:conditions" in st["fieldsV1"]["f:status"]


def test_second_manager_conflicts_then_forces(cluster: ClusterHandle) -> None:
    ssa(cluster, deployment("two", replicas=2))
    r = ssa(cluster, deployment("two", replicas=4), "--field-manager=team-b", check=False)
    assert r.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in r.stderr
    assert get(cluster, "deploy", "two")["spec"]["replicas"] == 2      # nothing changed
    # Same value: shared ownership, no conflict.
    ssa(cluster, deployment("two", replicas=2), "--field-manager=team-b")
    owners = entries(get(cluster, "deploy", "two"))
    assert "f:replicas" in owners[("team-b", "Apply", "")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in owners[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]
    # --force-conflicts: team-b takes the field, kubectl loses it.
    ssa(cluster, deployment("two", replicas=4), "--field-manager=team-b", "--force-conflicts")
    obj = get(cluster, "deploy", "two")
    assert obj["spec"]["replicas"] == 4
    owners = entries(obj)
    assert "f:replicas" in owners[("team-b", "Apply", "")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]


def test_two_conflicts_listed_with_kubectl_127(cluster: ClusterHandle) -> None:
    ssa(cluster, deployment("many", replicas=1, labels={"app": "many", "tier": "web"}))
    changed = deployment("many", replicas=3, labels={"app": "many", "tier": "db"})
    r = ssa(cluster, changed, "--field-manager=other", check=False, version="1.27")
    assert r.returncode != 0
    assert ('Apply failed with 2 conflicts: conflict with "kubectl":\n'
            "- .metadata.labels.tier\n- .spec.replicas") in r.stderr


def test_fields_dropped_from_the_config_are_removed(cluster: ClusterHandle) -> None:
    side = {"name": "side", "image": "busybox", "command": ["sleep", "3600"],
            "env": [{"name": "MODE", "value": "a"}, {"name": "KEEP", "value": "b"}]}
    ssa(cluster, deployment("drop", labels={"app": "drop", "extra": "x"}, containers=[dict(NGINX), side]))
    # Another manager owns one label too: it stays when kubectl stops applying it.
    cluster.kubectl("label", "deploy", "drop", "team=blue")
    slim_side = {"name": "side", "image": "busybox", "command": ["sleep", "3600"],
                 "env": [{"name": "KEEP", "value": "b"}]}
    ssa(cluster, deployment("drop", labels={"app": "drop"}, containers=[{"name": "nginx", "image": "nginx"}, slim_side]))
    obj = get(cluster, "deploy", "drop")
    assert obj["metadata"]["labels"] == {"app": "drop", "team": "blue"}
    nginx, kept = obj["spec"]["template"]["spec"]["containers"]
    assert "ports" not in nginx
    assert kept["env"] == [{"name": "KEEP", "value": "b"}]
    assert entries(obj)[("kubectl-label", "Update", "")]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}}}}
    # Dropping a whole container removes it.
    ssa(cluster, deployment("drop", labels={"app": "drop"}, containers=[{"name": "nginx", "image": "nginx"}]))
    names = [c["name"] for c in get(cluster, "deploy", "drop")["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx"]


def test_scale_then_apply_conflicts_with_the_scale_subresource(cluster: ClusterHandle, tmp_path: Path) -> None:
    ssa(cluster, deployment("sc", replicas=2))
    # `kubectl scale` sends no fieldManager: the manager is its User-Agent's program
    # name, so run it under the name users type (the harness's binary is kubectl.1.32).
    (tmp_path / "kubectl").symlink_to(kubectl_binary("1.32"))
    subprocess.run([str(tmp_path / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "scale", "deploy", "sc",
                    "--replicas=3"], check=True, capture_output=True, timeout=60)
    obj = get(cluster, "deploy", "sc")
    assert obj["spec"]["replicas"] == 3
    scaled = entries(obj)[("kubectl", "Update", "scale")]
    assert scaled["apiVersion"] == "apps/v1" and scaled["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entries(obj)[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]
    r = ssa(cluster, deployment("sc", replicas=2), check=False)
    assert r.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: '
            ".spec.replicas") in r.stderr
    assert "--force-conflicts" in r.stderr


def test_client_side_apply_upgrades_to_server_side(cluster: ClusterHandle) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "csa"}, "data": {"a": "1", "b": "2"}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(cm))
    assert ("kubectl-client-side-apply", "Update", "") in entries(get(cluster, "cm", "csa"))
    cm["data"]["b"] = "3"
    ssa(cluster, cm)          # fields set by the client-side apply: no conflict
    obj = get(cluster, "cm", "csa")
    assert obj["data"] == {"a": "1", "b": "3"}
    assert entries(obj)[("kubectl", "Apply", "")]["fieldsV1"]["f:data"] == {"f:a": {}, "f:b": {}}


def test_untracked_object_first_apply(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "configmap", "bfa", "--from-literal=k=v")
    cluster.kubectl("patch", "configmap", "bfa", "--type=merge", "-p", '{"metadata":{"managedFields":[{}]}}')
    assert "managedFields" not in get(cluster, "cm", "bfa")["metadata"]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bfa"}, "data": {"k": "w"}}
    r = ssa(cluster, cm, check=False)
    assert 'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.k' in r.stderr


def test_python_client_apply_and_conflict(api: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = deployment("pyssa", replicas=1)
    body["metadata"]["namespace"] = "default"
    out = deployments.server_side_apply(body=body, field_manager="py-operator")
    managers = {(e.manager, e.operation) for e in out.metadata.managedFields}
    assert ("py-operator", "Apply") in managers
    body["spec"]["replicas"] = 5
    with pytest.raises(ApiException) as err:
        deployments.server_side_apply(body=body, field_manager="other-operator")
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "py-operator": .spec.replicas'
    assert status["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                            "message": 'conflict with "py-operator"', "field": ".spec.replicas"}]
    forced = deployments.server_side_apply(body=body, field_manager="other-operator", force_conflicts=True)
    assert forced.spec.replicas == 5


def test_python_client_scale_subresource(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment("pyscale", replicas=1))
    scale = apps.read_namespaced_deployment_scale("pyscale", "default")
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1" and scale.spec.replicas == 1
    assert scale.status.selector == "app=pyscale"
    # What client-go's scale client and lightkube send: a PUT of an autoscaling/v1 Scale
    # (read-modify-write, retried when the deployment controller wrote in between).
    put = retry_on_conflict(lambda: apps.replace_namespaced_deployment_scale(
        "pyscale", "default", with_replicas(apps.read_namespaced_deployment_scale("pyscale", "default"), 3)))
    assert put.spec.replicas == 3
    assert apps.read_namespaced_deployment("pyscale", "default").spec.replicas == 3
    patched = apps.patch_namespaced_deployment_scale("pyscale", "default", {"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2
    # A stale resourceVersion is a conflict; the parent's kind is refused.
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("pyscale", "default", with_replicas(scale, 4))
    assert err.value.status == 409
    assert "the object has been modified" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as bad:
        apps.replace_namespaced_deployment_scale("pyscale", "default", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pyscale"}, "spec": {"replicas": 1}})
    assert bad.value.status == 400
    assert "does not match the expected API version (autoscaling/v1)" in json.loads(bad.value.body)["message"]
    with pytest.raises(ApiException) as neg:
        apps.patch_namespaced_deployment_scale("pyscale", "default", {"spec": {"replicas": -1}})
    assert neg.value.status == 422
    assert 'Scale.autoscaling "pyscale" is invalid: spec.replicas: Invalid value: -1: must be greater than or ' \
           "equal to 0" == json.loads(neg.value.body)["message"]


def test_scale_of_replicasets_statefulsets_and_replication_controllers(cluster: ClusterHandle,
                                                                      api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    template = {"metadata": {"labels": {"app": "s"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}
    apps.create_namespaced_replica_set("default", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "s-rs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "s"}}, "template": template}})
    apps.create_namespaced_stateful_set("default", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s-sts"},
        "spec": {"replicas": 0, "serviceName": "s", "selector": {"matchLabels": {"app": "s"}}, "template": template}})
    core.create_namespaced_replication_controller("default", {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "s-rc"},
        "spec": {"replicas": 0, "selector": {"app": "s"}, "template": template}})
    for read, replace, name in (
            (apps.read_namespaced_replica_set_scale, apps.replace_namespaced_replica_set_scale, "s-rs"),
            (apps.read_namespaced_stateful_set_scale, apps.replace_namespaced_stateful_set_scale, "s-sts"),
            (core.read_namespaced_replication_controller_scale,
             core.replace_namespaced_replication_controller_scale, "s-rc")):
        want = 0 if name == "s-sts" else 1
        assert read(name, "default").status.selector == "app=s", name
        done = retry_on_conflict(lambda: replace(name, "default", with_replicas(read(name, "default"), want)))
        assert done.spec.replicas == want
    cluster.kubectl("scale", "rs", "s-rs", "--replicas=0")
    assert get(cluster, "rs", "s-rs")["spec"]["replicas"] == 0
    for kind, name in (("rs", "s-rs"), ("sts", "s-sts"), ("rc", "s-rc")):
        cluster.kubectl("delete", kind, name, "--wait=false")
