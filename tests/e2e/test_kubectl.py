"""The API server through real kubectl binaries, old (1.27) and current (1.32).

Each test does what a user does and checks what kubectl prints, as it would
print it against a real cluster.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from kinns.testing import ClusterHandle, kubectl_binary

VERSIONS = ["1.27", "1.32"]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}, tier: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
        env: [{{name: MODE, value: "{mode}"}}]
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  type: {type}
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
"""


def dep(name: str, replicas: int = 2, image: str = "nginx:1.25", mode: str = "a") -> str:
    return DEPLOYMENT.format(name=name, replicas=replicas, image=image, mode=mode)


@pytest.mark.parametrize("v", VERSIONS)
def test_version_picks_matching_kubectl(cluster: ClusterHandle, v: str) -> None:
    out = cluster.kubectl("version", "-o", "json", version=v).stdout
    server = json.loads(out)["serverVersion"]
    assert server["major"] == "1" and server["minor"] == "32"


@pytest.mark.parametrize("v", VERSIONS)
def test_builtin_objects_exist(cluster: ClusterHandle, v: str) -> None:
    names = cluster.kubectl("get", "ns", "-o", "name", version=v).stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public",
            "namespace/kube-node-lease"} <= set(names)
    svc = cluster.kubectl("get", "svc", "kubernetes", version=v).stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1].split()[:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]


@pytest.mark.parametrize("v", VERSIONS)
def test_apply_three_times(cluster: ClusterHandle, v: str) -> None:
    name = f"apply{v.replace('.', '')}"
    r1 = cluster.kubectl("apply", "-f", "-", stdin=dep(name), version=v)
    assert f"deployment.apps/{name} created" in r1.stdout
    r2 = cluster.kubectl("apply", "-f", "-", stdin=dep(name), version=v)
    assert f"deployment.apps/{name} unchanged" in r2.stdout
    r3 = cluster.kubectl("apply", "-f", "-", stdin=dep(name, replicas=4, image="nginx:1.26", mode="b"), version=v)
    assert f"deployment.apps/{name} configured" in r3.stdout
    obj = json.loads(cluster.kubectl("get", "deploy", name, "-o", "json", version=v).stdout)
    c = obj["spec"]["template"]["spec"]["containers"]
    assert obj["spec"]["replicas"] == 4
    assert [x["name"] for x in c] == ["web"] and c[0]["image"] == "nginx:1.26"
    assert c[0]["env"] == [{"name": "MODE", "value": "b"}]
    assert c[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert obj["metadata"]["generation"] == 2
    # Removing a label in the file removes it from the object (three-way merge).
    edited = dep(name, replicas=4, image="nginx:1.26", mode="b").replace(", tier: web", "")
    cluster.kubectl("apply", "-f", "-", stdin=edited, version=v)
    labels = json.loads(cluster.kubectl("get", "deploy", name, "-o", "json", version=v).stdout)["metadata"]["labels"]
    assert labels == {"app": name}
    cluster.kubectl("delete", "deploy", name, version=v)


@pytest.mark.parametrize("v", VERSIONS)
def test_service_columns_and_defaults(cluster: ClusterHandle, v: str) -> None:
    name = f"svc{v.replace('.', '')}"
    cluster.kubectl("apply", "-f", "-", stdin=SERVICE.format(name=name, type="NodePort"), version=v)
    wide = cluster.kubectl("get", "svc", name, "-o", "wide", version=v).stdout.splitlines()
    assert wide[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    cells = wide[1].split()
    obj = json.loads(cluster.kubectl("get", "svc", name, "-o", "json", version=v).stdout)
    port = obj["spec"]["ports"][0]
    assert port["targetPort"] == 80 and port["protocol"] == "TCP"
    assert 30000 <= port["nodePort"] <= 32767
    assert cells[1] == "NodePort" and cells[2] == obj["spec"]["clusterIP"]
    assert cells[4] == f"80:{port['nodePort']}/TCP" and cells[6] == f"app={name}"
    cluster.kubectl("delete", "svc", name, version=v)


def test_selectors_and_show_labels(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "sel")
    for i, tier in enumerate(["front", "front", "back"]):
        cluster.kubectl("create", "configmap", f"sel{i}", "-n", "sel", "--from-literal=k=v")
        cluster.kubectl("label", "configmap", f"sel{i}", "-n", "sel", f"tier={tier}", f"idx=i{i}")
    cluster.kubectl("create", "configmap", "unlabelled", "-n", "sel")

    def names(*args: str) -> list[str]:
        return cluster.kubectl("get", "cm", "-n", "sel", *args, "-o", "name").stdout.split()

    assert names("-l", "tier=front") == ["configmap/sel0", "configmap/sel1"]
    # `!=` also matches objects without the label, as upstream (kube-root-ca.crt is in every namespace).
    assert names("-l", "tier!=front") == ["configmap/kube-root-ca.crt", "configmap/sel2", "configmap/unlabelled"]
    assert names("-l", "tier in (back),idx") == ["configmap/sel2"]
    assert names("-l", "idx notin (i0,i2),tier") == ["configmap/sel1"]
    assert names("-l", "!idx") == ["configmap/kube-root-ca.crt", "configmap/unlabelled"]
    out = cluster.kubectl("get", "cm", "sel0", "-n", "sel", "--show-labels").stdout.splitlines()
    assert out[0].split()[-1] == "LABELS" and out[1].split()[-1] == "idx=i0,tier=front"
    assert names("--field-selector", "metadata.name=sel1") == ["configmap/sel1"]
    assert names("--field-selector", "metadata.name!=sel1", "-l", "idx") == ["configmap/sel0", "configmap/sel2"]
    cluster.kubectl("delete", "cm", "-n", "sel", "-l", "idx")
    assert names("-l", "idx") == []


def test_patch_kinds(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "configmap", "pt", "--from-literal=a=1")
    cluster.kubectl("patch", "cm", "pt", "--type=merge", "-p", '{"data":{"b":"2"}}')
    cluster.kubectl("patch", "cm", "pt", "--type=json", "-p", '[{"op":"remove","path":"/data/a"}]')
    cluster.kubectl("patch", "cm", "pt", "-p", '{"metadata":{"labels":{"x":"y"}}}')  # strategic
    obj = json.loads(cluster.kubectl("get", "cm", "pt", "-o", "json").stdout)
    assert obj["data"] == {"b": "2"} and obj["metadata"]["labels"] == {"x": "y"}
    cluster.kubectl("delete", "cm", "pt")


def test_scale_subresource(cluster: ClusterHandle) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=dep("scaled", replicas=1))
    out = cluster.kubectl("scale", "deploy", "scaled", "--replicas=3").stdout
    assert "deployment.apps/scaled scaled" in out
    scale = cluster.http("GET", "/apis/apps/v1/namespaces/default/deployments/scaled/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == "app=scaled"
    cluster.kubectl("delete", "deploy", "scaled")


def test_watch_sees_changes_in_order(cluster: ClusterHandle) -> None:
    proc = subprocess.Popen(
        [kubectl_binary("1.32"), "--kubeconfig", str(cluster.kubeconfig), "get", "cm", "-w",
         "--output-watch-events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        cluster.kubectl("create", "configmap", "watched", "--from-literal=k=one")
        cluster.kubectl("patch", "cm", "watched", "--type=merge", "-p", '{"data":{"k":"two","j":"x"}}')
        cluster.kubectl("delete", "cm", "watched")
        time.sleep(1.0)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = out.splitlines()
    assert lines[0].split() == ["EVENT", "NAME", "DATA", "AGE"]
    # EVENT NAME DATA: the DATA column counts keys, so the patch shows as 1 -> 2.
    events = [line.split()[:3] for line in lines if "watched" in line]
    assert events == [["ADDED", "watched", "1"], ["MODIFIED", "watched", "2"], ["DELETED", "watched", "2"]]


def test_describe_shows_object_and_events(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "configmap", "described", "--from-literal=k=v")
    out = cluster.kubectl("describe", "cm", "described").stdout
    assert out.splitlines()[0].split() == ["Name:", "described"] and "k:" in out
    cluster.kubectl("apply", "-f", "-", stdin=SERVICE.format(name="described", type="ClusterIP"))
    uid = cluster.kubectl("get", "svc", "described", "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "described.1", "namespace": "default"},
        "involvedObject": {"kind": "Service", "name": "described", "namespace": "default", "uid": uid},
        "reason": "Testing", "message": "hello from the test", "type": "Normal",
        "source": {"component": "pytest"}, "count": 1,
    }
    assert cluster.http("POST", "/api/v1/namespaces/default/events", event).status == 201
    out = cluster.kubectl("describe", "svc", "described").stdout
    assert "Type:                     ClusterIP" in out
    events = out[out.index("Events:"):].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Normal", "Testing"] and "hello from the test" in events[3]
    cluster.kubectl("delete", "svc,cm", "described")


def test_cascading_delete(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "configmap", "owner", "--from-literal=k=v")
    owner = json.loads(cluster.kubectl("get", "cm", "owner", "-o", "json").stdout)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    for i in range(2):
        child = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"child{i}", "ownerReferences": [dict(ref, blockOwnerDeletion=True)]}}
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(child))
    cluster.kubectl("delete", "cm", "owner", "--cascade=foreground")
    deadline = time.time() + 20
    while time.time() < deadline:
        left = cluster.kubectl("get", "cm", "-o", "name").stdout.split()
        if not {"configmap/child0", "configmap/child1", "configmap/owner"} & set(left):
            break
        time.sleep(0.2)
    assert not {"configmap/child0", "configmap/child1", "configmap/owner"} & set(left)


def test_namespace_deletion_removes_contents(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.kubectl("create", "configmap", "inside", "-n", "doomed", "--from-literal=k=v")
    cluster.kubectl("delete", "namespace", "doomed", "--wait=true", timeout=60)
    r = cluster.kubectl("get", "ns", "doomed", check=False)
    assert r.returncode != 0 and 'namespaces "doomed" not found' in r.stderr
    r = cluster.http("GET", "/api/v1/namespaces/doomed/configmaps/inside")
    assert r.status == 404
