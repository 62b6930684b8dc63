"""Bad requests get the answer a real API server gives, and change nothing.

Table-driven: each case is a raw HTTPS request or a kubectl command, the
HTTP code / reason (or the message kubectl prints) a real cluster answers,
and then a check that the store is exactly as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from kinns.testing import ClusterHandle

NS = "/api/v1/namespaces/default"
APPS = "/apis/apps/v1/namespaces/default"


def svc(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ports": [{"port": 80}], "selector": {"app": name}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": base}


def deployment(name: str, selector: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: Any
    code: int
    reason: str
    content_type: str = "application/json"
    message: str = ""          # a substring of the Status message
    causes: list[str] = field(default_factory=list)  # fields named in details.causes


CASES = [
    Case("malformed-json", "POST", f"{NS}/configmaps", '{"apiVersion": "v1", "kind": ', 400, "BadRequest"),
    Case("malformed-yaml", "POST", f"{NS}/configmaps", "apiVersion: v1\nkind: [ConfigMap\n", 400, "BadRequest",
         content_type="application/yaml"),
    Case("unknown-resource", "POST", f"{NS}/widgets", {"apiVersion": "v1", "kind": "Widget"}, 404, "NotFound"),
    Case("unknown-group", "POST", "/apis/widgets.example.com/v1/namespaces/default/widgets",
         {"apiVersion": "widgets.example.com/v1", "kind": "Widget"}, 404, "NotFound"),
    Case("kind-mismatch", "POST", f"{NS}/configmaps", svc("mismatch"), 400, "BadRequest"),
    Case("bad-name", "POST", f"{NS}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}, 422, "Invalid",
         causes=["metadata.name"]),
    Case("port-zero", "POST", f"{NS}/services", svc("p0", ports=[{"port": 0}]), 422, "Invalid",
         message="must be between 1 and 65535, inclusive", causes=["spec.ports[0].port"]),
    Case("port-70000", "POST", f"{NS}/services", svc("p7", ports=[{"port": 70000}]), 422, "Invalid",
         causes=["spec.ports[0].port"]),
    Case("duplicate-port-names", "POST", f"{NS}/services",
         svc("dup", ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]), 422, "Invalid",
         message="Duplicate value", causes=["spec.ports[1].name"]),
    Case("nodeport-out-of-range", "POST", f"{NS}/services",
         svc("npr", type="NodePort", ports=[{"port": 80, "nodePort": 20000}]), 422, "Invalid",
         message="provided port is not in the valid range"),
    Case("nodeport-taken", "POST", f"{NS}/services",
         svc("npt", type="NodePort", ports=[{"port": 80, "nodePort": 30999}]), 422, "Invalid",
         message="provided port is already allocated"),
    Case("clusterip-out-of-range", "POST", f"{NS}/services", svc("ipr", clusterIP="10.0.0.5"), 422, "Invalid",
         message="not in the valid range"),
    Case("clusterip-taken", "POST", f"{NS}/services", svc("ipt", clusterIP="10.96.0.1"), 422, "Invalid",
         message="provided IP is already allocated"),
    Case("bad-service-type", "POST", f"{NS}/services", svc("typ", type="Magic"), 422, "Invalid",
         message="Unsupported value", causes=["spec.type"]),
    Case("selector-mismatch", "POST", f"{APPS}/deployments", deployment("sm", {"app": "a"}, {"app": "b"}),
         422, "Invalid", message="`selector` does not match template `labels`"),
    Case("pod-without-containers", "POST", f"{NS}/pods",
         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {"containers": []}},
         422, "Invalid", causes=["spec.containers"]),
    Case("missing-namespace", "POST", "/api/v1/namespaces/nowhere/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, 404, "NotFound",
         message='namespaces "nowhere" not found'),
    Case("already-exists", "POST", f"{NS}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing"}}, 409, "AlreadyExists"),
    Case("stale-resource-version", "PUT", f"{NS}/configmaps/existing",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing", "resourceVersion": "1"},
          "data": {"x": "y"}}, 409, "Conflict", message="the object has been modified"),
    Case("immutable-selector", "PUT", f"{APPS}/deployments/fixed",
         deployment("fixed", {"app": "other"}, {"app": "other"}), 422, "Invalid", message="field is immutable"),
    Case("immutable-clusterip", "PATCH", f"{NS}/services/stable", {"spec": {"clusterIP": "10.96.100.100"}},
         422, "Invalid", content_type="application/merge-patch+json"),
    Case("too-large", "POST", f"{NS}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x" * (4 << 20)}},
         413, "RequestEntityTooLarge"),
    Case("wrong-content-type", "POST", f"{NS}/configmaps", "name=x", 415, "UnsupportedMediaType",
         content_type="text/plain"),
    Case("bad-label-selector", "GET", f"{NS}/configmaps?labelSelector=a%20in%20(", None, 400, "BadRequest"),
    Case("bad-patch-type", "PATCH", f"{NS}/configmaps/existing", '{"data":{}}', 415, "UnsupportedMediaType",
         content_type="application/x-patch"),
    Case("json-patch-bad-path", "PATCH", f"{NS}/configmaps/existing",
         [{"op": "replace", "path": "/data/missing", "value": "x"}], 422, "Invalid",
         content_type="application/json-patch+json"),
]


def snapshot(cluster: ClusterHandle) -> dict[str, str]:
    """Every object a case could touch, with what a bad request could change.

    Controllers and kubelets keep writing status (the Deployment's pods come
    up), so Deployments are compared by generation (spec changes only) and
    controller-owned pods and the CA ConfigMap the controller-manager publishes
    are left out; everything else by resourceVersion.
    """
    out: dict[str, str] = {}
    for path in (f"{NS}/configmaps", f"{NS}/services", f"{NS}/pods", f"{APPS}/deployments", "/api/v1/namespaces"):
        for item in cluster.http("GET", path).json()["items"]:
            meta = item["metadata"]
            if path.endswith("/pods") and meta.get("ownerReferences"):
                continue
            if meta["name"] == "kube-root-ca.crt":   # the root-ca-cert-publisher's, written when it gets round to it
                continue
            key = f"{path}/{meta['name']}"
            out[key] = str(meta.get("generation")) if path.endswith("deployments") else meta["resourceVersion"]
    return out


@pytest.fixture(scope="module")
def prepared(cluster: ClusterHandle) -> ClusterHandle:
    assert cluster.http("POST", f"{NS}/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing"},
                         "data": {"a": "b"}}).status == 201
    assert cluster.http("POST", f"{NS}/services",
                        svc("taken", type="NodePort", ports=[{"port": 80, "nodePort": 30999}])).status == 201
    assert cluster.http("POST", f"{NS}/services", svc("stable")).status == 201
    assert cluster.http("POST", f"{APPS}/deployments", deployment("fixed", {"app": "f"}, {"app": "f"})).status == 201
    return cluster


def test_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_over_http(prepared: ClusterHandle, case: Case) -> None:
    before = snapshot(prepared)
    body = json.dumps(case.body) if isinstance(case.body, (dict, list)) else case.body
    r = prepared.http(case.method, case.path, body, content_type=case.content_type)
    assert r.status == case.code, r.body[:500]
    status = r.json()
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == case.code and status["reason"] == case.reason
    assert case.message in status["message"]
    fields = [c.get("field") for c in status.get("details", {}).get("causes", [])]
    for f in case.causes:
        assert f in fields, status
    assert snapshot(prepared) == before


KUBECTL_CASES = [
    # targetPort defaults to port, so upstream reports both fields, as a list.
    ("invalid-port", svc("kp", ports=[{"port": 0}]),
     'The Service "kp" is invalid: \n* spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive'),
    ("taken-nodeport", svc("kn", type="NodePort", ports=[{"port": 80, "nodePort": 30999}]),
     "provided port is already allocated"),
    ("selector-mismatch", deployment("ksm", {"app": "a"}, {"app": "b"}),
     'The Deployment "ksm" is invalid'),
    ("unknown-field", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kuf"}, "dataa": {}},
     'unknown field "dataa"'),
    ("unknown-kind", {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}},
     'no matches for kind "Widget" in version "v1"'),
]


@pytest.mark.parametrize("v", ["1.27", "1.32"])
@pytest.mark.parametrize("case", KUBECTL_CASES, ids=[c[0] for c in KUBECTL_CASES])
def test_bad_apply_through_kubectl(prepared: ClusterHandle, case: tuple[str, Any, str], v: str) -> None:
    before = snapshot(prepared)
    r = prepared.kubectl("apply", "-f", "-", stdin=json.dumps(case[1]), version=v, check=False)
    assert r.returncode != 0
    assert case[2] in r.stderr, r.stderr
    assert snapshot(prepared) == before


def test_malformed_file_through_kubectl(prepared: ClusterHandle) -> None:
    r = prepared.kubectl("apply", "-f", "-", stdin="apiVersion: v1\nkind: [ConfigMap\n", check=False)
    assert r.returncode != 0 and "error" in r.stderr.lower()
