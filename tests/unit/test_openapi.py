"""OpenAPI documents and strict field validation.

The document tests check structure; the kubectl tests run the real
versioned kubectl binaries against a throwaway aiohttp server that serves
only /version, legacy discovery and the OpenAPI endpoints, so they prove
that each client generation can parse what we serve (v3 JSON for current
kubectl, gnostic protobuf for 1.27).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kinns.api import discovery, openapi

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.{}"


# --------------------------------------------------------------------------
# A tiny protobuf reader, enough to check the wire format we write
# --------------------------------------------------------------------------

def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs of one message; nested messages stay bytes."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        fieldno, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _read_varint(buf, i)
            value, i = buf[i:i + size], i + size
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((fieldno, value))
    return out


def _field(buf: bytes, fieldno: int) -> list[Any]:
    return [v for f, v in _fields(buf) if f == fieldno]


def _named(buf: bytes, fieldno: int) -> dict[str, bytes]:
    """A repeated Named* field (name = 1, value = 2) as a dict."""
    out = {}
    for entry in _field(buf, fieldno):
        (name,) = _field(entry, 1)
        (value,) = _field(entry, 2) or [b""]
        out[name.decode()] = value
    return out


# --------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------

def test_v2_json_shape() -> None:
    doc = json.loads(openapi.openapi_v2_json())
    assert doc["swagger"] == "2.0"
    defs = doc["definitions"]
    dep = defs["io.k8s.api.apps.v1.Deployment"]
    assert dep["type"] == "object"
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert dep["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert "enum" not in dep["properties"]["kind"]
    assert defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert "$defs" not in json.dumps(defs)
    assert '"null"' not in json.dumps(defs)
    containers = defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"

    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["operationId"] == "patchAppsV1NamespacedDeployment"
    assert set(patch["consumes"]) >= {
        "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace", "pretty"}
    assert doc["paths"]["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert doc["paths"]["/api/v1/nodes/{name}"]["get"]["operationId"] == "readCoreV1Node"
    assert "/apis/apps/v1/watch/namespaces/{namespace}/deployments" in doc["paths"]
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"]
    assert scale["responses"]["200"]["schema"]["$ref"] == "#/definitions/io.k8s.api.autoscaling.v1.Scale"
    # every reference resolves
    refs = {r.split("/")[-1] for r in _all_refs(doc)}
    assert refs <= set(defs)


def _all_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            elif k == "properties":  # keys here are field names (JSONSchemaProps has "$ref")
                for sub in v.values():
                    yield from _all_refs(sub)
            else:
                yield from _all_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _all_refs(v)


def test_v2_protobuf_mirrors_json() -> None:
    doc = json.loads(openapi.openapi_v2_json())
    raw = openapi.openapi_v2_protobuf()
    assert _field(raw, 1) == [b"2.0"]
    defs = _named(_field(raw, 9)[0], 1)
    assert set(defs) == set(doc["definitions"])
    dep = defs["io.k8s.api.apps.v1.Deployment"]
    assert _field(dep, 4) == [doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["description"].encode()]
    assert _field(_field(dep, 22)[0], 1) == [b"object"]
    ext = _named(dep, 31)
    gvk_yaml = _field(ext["x-kubernetes-group-version-kind"], 2)[0].decode()
    assert gvk_yaml == "- group: apps\n  kind: Deployment\n  version: v1\n"
    props = _named(_field(dep, 25)[0], 1)
    assert _field(props["spec"], 1) == [b"#/definitions/io.k8s.api.apps.v1.DeploymentSpec"]

    paths = _named(_field(raw, 8)[0], 2)
    assert set(paths) == set(doc["paths"])
    patch = _field(paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"], 8)[0]
    assert _field(patch, 5) == [b"patchAppsV1NamespacedDeployment"]
    query_names = []
    for item in _field(patch, 8):
        (parameter,) = _field(item, 1)
        for non_body in _field(parameter, 2):
            for query in _field(non_body, 3):
                query_names += [n.decode() for n in _field(query, 4)]
    assert "fieldValidation" in query_names
    op_gvk = _field(_named(patch, 13)["x-kubernetes-group-version-kind"], 2)[0].decode()
    assert op_gvk == "group: apps\nkind: Deployment\nversion: v1\n"


def test_v3_index_and_documents() -> None:
    index = openapi.openapi_v3_index()["paths"]
    assert {"api", "apis", "api/v1", "apis/apps/v1"} <= set(index)
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=") and len(url.split("=")[1]) == 128
    doc = json.loads(openapi.openapi_v3_document("apis/apps/v1") or b"")
    assert doc["openapi"].startswith("3.0")
    schemas = doc["components"]["schemas"]
    assert "io.k8s.api.apps.v1.Deployment" in schemas
    assert "io.k8s.api.core.v1.PodSpec" in schemas  # referenced from the template
    assert "io.k8s.api.core.v1.Service" not in schemas  # other group-versions stay out
    spec = schemas["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]
    assert {r.split("/")[-1] for r in _all_refs(doc)} <= set(schemas)
    assert openapi.openapi_v3_document("/api/v1") == openapi.openapi_v3_document("api/v1")
    assert openapi.openapi_v3_document("apis/example.com/v1") is None


def test_generation_is_cached_and_fast() -> None:
    t = time.monotonic()
    openapi.openapi_v2_json()
    openapi.openapi_v2_protobuf()
    openapi.openapi_v3_index()
    assert time.monotonic() - t < 2
    assert openapi.openapi_v2_protobuf() is openapi.openapi_v2_protobuf()


# --------------------------------------------------------------------------
# Strict field validation
# --------------------------------------------------------------------------

def _deployment(**extra_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a/b": "c"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "nginx",
                    "resources": {"limits": {"cpu": "100m", "memory": 64}},
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}],
                }], "nodeSelector": {"x": "y"}},
            },
            **extra_spec,
        },
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
    }


def test_unknown_fields_none_for_valid_objects() -> None:
    assert openapi.unknown_fields(_deployment(), "io.k8s.api.apps.v1.Deployment") == []
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"any": "key"},
          "binaryData": {"b": "AA=="}}
    assert openapi.unknown_fields(cm, "io.k8s.api.core.v1.ConfigMap") == []
    managed = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "managedFields": [
        {"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]}}
    assert openapi.unknown_fields(managed, "io.k8s.api.core.v1.Pod") == []


def test_unknown_fields_paths() -> None:
    obj = _deployment(foo=1)
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    obj["metadata"]["bogus"] = True
    obj["top"] = 1
    assert openapi.unknown_fields(obj, "io.k8s.api.apps.v1.Deployment") == [
        'unknown field "metadata.bogus"',
        'unknown field "spec.template.spec.containers[0].imagePullPolicyy"',
        'unknown field "spec.foo"',
        'unknown field "top"',
    ]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}, {"port": 81, "nodeport": 30000}]}}
    assert openapi.unknown_fields(svc, "io.k8s.api.core.v1.Service") == ['unknown field "spec.ports[1].nodeport"']
    assert openapi.unknown_fields({"x": 1}, "no.such.Type") == []


# --------------------------------------------------------------------------
# Real kubectl against a throwaway server
# --------------------------------------------------------------------------

class _Server:
    """/version, legacy discovery and the OpenAPI endpoints; nothing else."""

    def __init__(self, legacy: bool = False) -> None:
        # legacy: act like a server without field validation (no /openapi/v3,
        # no fieldValidation parameter), which makes kubectl validate
        # client-side against our protobuf document.
        self.legacy = legacy
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((f"{request.method} {request.path_qs}", request.headers.get("Accept", "")))
            if request.method == "POST":
                return self._create(request, await request.json())
            return self._answer(request)

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            return runner

        asyncio.set_event_loop(self._loop)
        self._runner = self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def _create(self, request: Any, body: dict[str, Any]) -> Any:
        """POST: field validation as the REST layer does it, then echo."""
        from aiohttp import web

        schema = {"Deployment": "io.k8s.api.apps.v1.Deployment"}.get(body.get("kind", ""), "")
        unknown = openapi.unknown_fields(body, schema) if schema else []
        if unknown and request.query.get("fieldValidation") == "Strict":
            return web.json_response({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "strict decoding error: " + ", ".join(unknown), "reason": "BadRequest", "code": 400,
            }, status=400)
        return web.json_response(body, status=201)

    def _answer(self, request: Any) -> Any:
        from aiohttp import web

        path = request.path.rstrip("/")
        accept = request.headers.get("Accept", "")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                                      "platform": "linux/amd64"})
        if path == "/openapi/v2":
            if "protobuf" in accept:
                return web.Response(body=_legacy_v2_protobuf() if self.legacy else openapi.openapi_v2_protobuf(),
                                    content_type=openapi.V2_PROTOBUF_CONTENT_TYPE)
            return web.Response(body=openapi.openapi_v2_json(), content_type="application/json")
        if path.startswith("/openapi/v3") and self.legacy:
            pass
        elif path == "/openapi/v3":
            return web.json_response(openapi.openapi_v3_index())
        if path.startswith("/openapi/v3/"):
            doc = openapi.openapi_v3_document(path[len("/openapi/v3/"):])
            if doc is not None:
                return web.Response(body=doc, content_type="application/json")
        body: dict[str, Any] | None = None
        if path == "/api":
            body = discovery.api_versions(f"127.0.0.1:{self.port}")
        elif path == "/apis":
            body = discovery.api_group_list()
        elif path.startswith("/api/") and path.count("/") == 2:
            body = discovery.api_resource_list("", path.split("/")[2])
        elif path.startswith("/apis/") and path.count("/") == 3:
            _, _, group, version = path.split("/")
            body = discovery.api_resource_list(group, version)
        if body is not None:
            return web.json_response(body)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404}, status=404)

    def __enter__(self) -> "_Server":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@functools.cache
def _legacy_v2_protobuf() -> bytes:
    doc = copy.deepcopy(json.loads(openapi.openapi_v2_json()))
    for item in doc["paths"].values():
        for op in item.values():
            if isinstance(op, dict):
                op["parameters"] = [p for p in op.get("parameters", []) if p["name"] != "fieldValidation"]
    return openapi._pb_document(doc)


@pytest.fixture(scope="module")
def legacy_server() -> Iterator[_Server]:
    with _Server(legacy=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    with _Server() as srv:
        yield srv


def _kubectl(version: str, server: _Server, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = KUBECTL.format(version)
    if not os.path.exists(binary):
        pytest.skip(f"{binary} not installed")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    return subprocess.run(
        [binary, f"--server=http://127.0.0.1:{server.port}", f"--cache-dir={tmp_path / 'cache'}", *args],
        capture_output=True, text=True, timeout=60, env=env)


_REPLICAS_DOC = "Number of desired pods."


@pytest.mark.parametrize("version", ["1.27", "1.32", "1.33"])
def test_kubectl_explain_deployment_replicas(version: str, server: _Server, tmp_path: Path) -> None:
    res = _kubectl(version, server, tmp_path, "explain", "deployment.spec.replicas")
    assert res.returncode == 0, res.stderr
    assert "KIND:" in res.stdout and "Deployment" in res.stdout
    assert _REPLICAS_DOC in res.stdout
    assert "<integer>" in res.stdout


@pytest.mark.parametrize("version", ["1.27", "1.32"])
def test_kubectl_explain_pod_containers(version: str, server: _Server, tmp_path: Path) -> None:
    res = _kubectl(version, server, tmp_path, "explain", "pods.spec.containers")
    assert res.returncode == 0, res.stderr
    assert "List of containers belonging to the pod." in res.stdout
    assert "imagePullPolicy" in res.stdout


def test_kubectl_explain_v2_output_uses_protobuf(server: _Server, tmp_path: Path) -> None:
    """`--output=plaintext-openapiv2` makes a current kubectl read the v2
    protobuf document, the same path 1.27 uses for everything."""
    res = _kubectl("1.32", server, tmp_path, "explain", "svc.spec.ports", "--output=plaintext-openapiv2")
    assert res.returncode == 0, res.stderr
    assert "The list of ports that are exposed by this service." in res.stdout


BAD_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  bogusField: true
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
"""


@pytest.mark.parametrize("version", ["1.27", "1.32"])
def test_kubectl_uses_server_side_validation(version: str, server: _Server, tmp_path: Path) -> None:
    """Our PATCH operations declare fieldValidation, so kubectl leaves
    unknown-field checks to the server (as against a real 1.32 cluster):
    no client-side error, and the POST asks fieldValidation=Strict."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_DEPLOYMENT)
    res = _kubectl(version, server, tmp_path, "create", "--dry-run=client", "-o", "name", "-f", str(bad))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "deployment.apps/web"

    server.requests.clear()
    res = _kubectl(version, server, tmp_path, "create", "-f", str(bad))
    assert res.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogusField"' in res.stderr
    posts = [path for path, _ in server.requests if path.startswith("POST")]
    assert posts and "fieldValidation=Strict" in posts[0]


def test_kubectl_127_explain_reads_v2_protobuf(server: _Server, tmp_path: Path) -> None:
    res = _kubectl("1.27", server, tmp_path, "explain", "deploy.spec.replicas", "--output=plaintext-openapiv2")
    assert res.returncode == 0, res.stderr
    assert "FIELD:    replicas <integer>" in res.stdout
    assert "Number of desired pods." in res.stdout


@pytest.mark.parametrize("version", ["1.27", "1.32"])
def test_kubectl_client_side_validation_uses_protobuf(version: str, legacy_server: _Server, tmp_path: Path) -> None:
    """Against a server without field validation kubectl validates against
    the v2 protobuf itself: unknown fields are named, valid manifests pass."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_DEPLOYMENT.replace("image: nginx", "image: nginx\n        imagePullPolicyy: Always"))
    res = _kubectl(version, legacy_server, tmp_path, "apply", "--dry-run=client", "-f", str(bad))
    assert res.returncode == 1
    assert 'unknown field "bogusField" in io.k8s.api.apps.v1.DeploymentSpec' in res.stderr
    assert 'unknown field "imagePullPolicyy" in io.k8s.api.core.v1.Container' in res.stderr

    good = tmp_path / "good.yaml"
    good.write_text(GOOD_MANIFESTS)
    res = _kubectl(version, legacy_server, tmp_path, "create", "--dry-run=client", "-o", "name", "-f", str(good))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["deployment.apps/web", "service/web", "configmap/cfg"]


GOOD_MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  annotations: {example.com/note: "x"}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80, name: http}]
        env: [{name: A, value: "1"}]
        resources:
          limits: {cpu: 100m, memory: 64Mi}
          requests: {cpu: 0.1, memory: 1000}
        readinessProbe:
          httpGet: {path: /, port: http}
      volumes:
      - name: data
        emptyDir: {sizeLimit: 1Gi}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
  - port: 81
    targetPort: 8081
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  key: value
"""
