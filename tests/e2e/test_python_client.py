"""The API server through the official `kubernetes` Python client."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kinns.testing import ClusterHandle


@pytest.fixture(scope="module")
def api(cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield c
    c.close()


def test_create_get_list_patch_delete(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"py{i}", labels={"set": "py", "i": str(i)}), data={"k": str(i)}))
    got = core.read_namespaced_config_map("py1", "default")
    assert got.data == {"k": "1"} and got.metadata.uid
    listed = core.list_namespaced_config_map("default", label_selector="set=py,i!=0")
    assert sorted(c.metadata.name for c in listed.items) == ["py1", "py2"]
    core.patch_namespaced_config_map("py2", "default", {"data": {"k": "patched"}})
    assert core.read_namespaced_config_map("py2", "default").data["k"] == "patched"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py0")))
    assert err.value.status == 409
    core.delete_collection_namespaced_config_map("default", label_selector="set=py")
    assert core.list_namespaced_config_map("default", label_selector="set=py").items == []


def test_deployment_and_scale(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pydep"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "pydep"}},
                 "template": {"metadata": {"labels": {"app": "pydep"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    }
    created = apps.create_namespaced_deployment("default", body)
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.template.spec.restart_policy == "Always"
    apps.patch_namespaced_deployment_scale("pydep", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment_scale("pydep", "default").spec.replicas == 4
    assert apps.read_namespaced_deployment("pydep", "default").spec.replicas == 4
    apps.delete_namespaced_deployment("pydep", "default")


def test_watch_in_order(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str, Any]] = []

    def follow() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10):
            obj = ev["object"]
            if obj.metadata.name == "pywatch":
                seen.append((ev["type"], obj.metadata.name, (obj.data or {}).get("k")))
                if ev["type"] == "DELETED":
                    w.stop()

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.5)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="pywatch"), data={"k": "1"}))
    core.patch_namespaced_config_map("pywatch", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("pywatch", "default")
    t.join(timeout=15)
    assert seen == [("ADDED", "pywatch", "1"), ("MODIFIED", "pywatch", "2"), ("DELETED", "pywatch", "2")]
