"""Storage as kind has it, checked with kubectl: the default local-path class,
claims bound to provisioned volumes, data that outlives pods (and
StatefulSets), static volumes, and volumes that go with their claims."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kinns import testing
from kinns.testing import ClusterHandle


def wait_for(pred: Any, timeout: float = 60, interval: float = 0.3) -> Any:
    """Storage steps (provisioning, binding) get a longer default wait."""
    return testing.wait_for(pred, timeout, interval)


def apply(cluster: ClusterHandle, *objs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


def get(cluster: ClusterHandle, kind: str, name: str) -> dict[str, Any] | None:
    r = cluster.kubectl("get", kind, name, "-o", "json", check=False)
    if r.returncode != 0:
        assert "NotFound" in r.stderr, r.stderr
        return None
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def claim(name: str, size: str = "100Mi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


def pod_with_claim(name: str, claim_name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
                     "terminationGracePeriodSeconds": 1, **spec}}


def running(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        p = get(cluster, "pod", name)
        st = (p or {}).get("status") or {}
        ready = st.get("phase") == "Running" and all(c.get("ready") for c in st.get("containerStatuses") or [{}])
        return p if ready else None
    return wait_for(ok)  # type: ignore[no-any-return]


def bound(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        c = get(cluster, "pvc", name)
        return c if c and c.get("status", {}).get("phase") == "Bound" else None
    return wait_for(ok)  # type: ignore[no-any-return]


def kexec(cluster: ClusterHandle, pod: str, *cmd: str, check: bool = True) -> str:
    r = cluster.kubectl("exec", pod, "--", *cmd, check=check)
    return r.stdout


def test_default_storage_class_is_local_path(cluster: ClusterHandle) -> None:
    def row() -> list[str] | None:
        lines = cluster.kubectl("get", "sc").stdout.splitlines()
        return next((line.split() for line in lines[1:] if line.startswith("standard")), None)
    r = wait_for(row)
    assert r[:5] == ["standard", "(default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer"]


def test_claim_binds_to_provisioned_volume_and_data_outlives_the_pod(cluster: ClusterHandle) -> None:
    apply(cluster, claim("st-data"), pod_with_claim("st-writer", "st-data", "echo hello > /data/greeting; sleep 3600"))
    pvc = bound(cluster, "st-data")
    uid = pvc["metadata"]["uid"]
    assert pvc["spec"]["storageClassName"] == "standard"  # DefaultStorageClass admission
    row = cluster.kubectl("get", "pvc", "st-data").stdout.splitlines()[1].split()
    assert row[1:3] == ["Bound", f"pvc-{uid}"] and row[5] == "standard"
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    assert pvc["status"]["capacity"] == {"storage": "100Mi"}
    assert pvc["status"]["accessModes"] == ["ReadWriteOnce"]
    ann = pvc["metadata"]["annotations"]
    assert ann["pv.kubernetes.io/bind-completed"] == "yes"
    assert ann["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert ann["volume.kubernetes.io/storage-provisioner"] == "rancher.io/local-path"
    writer = running(cluster, "st-writer")
    node = writer["spec"]["nodeName"]
    assert ann["volume.kubernetes.io/selected-node"] == node

    pv = get(cluster, "pv", f"pvc-{uid}")
    assert pv is not None
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
    assert pv["spec"]["hostPath"]["type"] == "DirectoryOrCreate"
    assert pv["spec"]["hostPath"]["path"].endswith(f"/local-path-provisioner/pvc-{uid}_default_st-data")
    assert pv["spec"]["hostPath"]["path"].startswith(str(cluster.state_dir))
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0] == {
        "key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    assert pv["spec"]["claimRef"]["uid"] == uid and pv["status"]["phase"] == "Bound"

    rows = cluster.kubectl("get", "pv").stdout.splitlines()
    row = next(line.split() for line in rows if line.startswith(f"pvc-{uid}"))
    assert row[1:7] == ["100Mi", "RWO", "Delete", "Bound", "default/st-data", "standard"]
    rows = cluster.kubectl("get", "pvc", "st-data").stdout.splitlines()
    assert rows[1].split()[:4] == ["st-data", "Bound", f"pvc-{uid}", "100Mi"]

    wait_for(lambda: kexec(cluster, "st-writer", "cat", "/data/greeting", check=False) == "hello\n")
    cluster.kubectl("delete", "pod", "st-writer", "--wait=true")
    apply(cluster, pod_with_claim("st-reader", "st-data", "sleep 3600"))
    reader = running(cluster, "st-reader")
    assert reader["spec"]["nodeName"] == node  # the volume's node affinity
    assert kexec(cluster, "st-reader", "cat", "/data/greeting") == "hello\n"
    cluster.kubectl("delete", "pod", "st-reader", "--wait=false")


def test_container_filesystem_is_ephemeral_volume_is_not(cluster: ClusterHandle) -> None:
    # The container exits (and is restarted) when /data/exit-now appears.
    script = "until [ -e /data/exit-now ]; do sleep 0.2; done; rm -f /data/exit-now; exit 1"
    apply(cluster, claim("st-eph"), pod_with_claim("st-eph", "st-eph", script))
    running(cluster, "st-eph")
    kexec(cluster, "st-eph", "sh", "-c", "echo mine > /scratch.txt && echo kept > /data/kept.txt")
    assert kexec(cluster, "st-eph", "cat", "/scratch.txt") == "mine\n"
    kexec(cluster, "st-eph", "touch", "/data/exit-now")

    def restarted() -> bool:
        p = get(cluster, "pod", "st-eph") or {}
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        return bool(cs.get("restartCount", 0) >= 1 and "running" in cs.get("state", {}))
    wait_for(restarted, timeout=90)
    r = cluster.kubectl("exec", "st-eph", "--", "cat", "/scratch.txt", check=False)
    assert r.returncode != 0 and "No such file" in r.stderr + r.stdout
    assert kexec(cluster, "st-eph", "cat", "/data/kept.txt") == "kept\n"
    cluster.kubectl("delete", "pod", "st-eph", "--wait=false")


def test_statefulset_claims_outlive_the_set(cluster: ClusterHandle) -> None:
    sts = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web", "replicas": 2, "selector": {"matchLabels": {"app": "st-web"}},
            "template": {"metadata": {"labels": {"app": "st-web"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox",
                                "command": ["sh", "-c", "hostname > /data/host; sleep 3600"],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Mi"}}}}],
        },
    }
    apply(cluster, sts)
    for i in (0, 1):
        running(cluster, f"web-{i}")
        c = bound(cluster, f"data-web-{i}")
        assert c["spec"]["volumeName"] == f"pvc-{c['metadata']['uid']}"
        wait_for(lambda: kexec(cluster, f"web-{i}", "cat", "/data/host", check=False) == f"web-{i}\n")
    cluster.kubectl("delete", "statefulset", "web", "--wait=true")
    wait_for(lambda: get(cluster, "pod", "web-0") is None and get(cluster, "pod", "web-1") is None)
    out = cluster.kubectl("get", "pvc").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["data-web-0"][1] == "Bound" and rows["data-web-1"][1] == "Bound"


def test_static_hostpath_volume_binds_classless_claim(cluster: ClusterHandle, tmp_path: Path) -> None:
    def static(name: str, size: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels},
                "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                         "hostPath": {"path": str(tmp_path / name)}}}
    apply(cluster, static("st-static-big", "5Gi", {"set": "st"}), static("st-static-fit", "1Gi", {"set": "st"}),
          static("st-static-tiny", "10Mi", {"set": "st"}))
    wait_for(lambda: (get(cluster, "pv", "st-static-fit") or {}).get("status", {}).get("phase") == "Available")
    apply(cluster, claim("st-static-claim", "500Mi", storageClassName="",
                         selector={"matchLabels": {"set": "st"}}))
    c = bound(cluster, "st-static-claim")
    assert c["spec"]["volumeName"] == "st-static-fit"  # the smallest that fits
    assert c["status"]["capacity"] == {"storage": "1Gi"}
    pv = get(cluster, "pv", "st-static-fit")
    assert pv is not None and pv["status"]["phase"] == "Bound"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert pv["spec"]["claimRef"]["name"] == "st-static-claim"
    apply(cluster, pod_with_claim("st-static-pod", "st-static-claim", "echo static > /data/f; sleep 3600"))
    running(cluster, "st-static-pod")
    wait_for(lambda: (tmp_path / "st-static-fit" / "f").exists())
    assert (tmp_path / "st-static-fit" / "f").read_text() == "static\n"
    # Retain (a static volume's default): the claim goes, the volume and data stay, Released.
    cluster.kubectl("delete", "pod", "st-static-pod", "--wait=true")
    cluster.kubectl("delete", "pvc", "st-static-claim", "--wait=true")
    wait_for(lambda: (get(cluster, "pv", "st-static-fit") or {}).get("status", {}).get("phase") == "Released")
    assert (tmp_path / "st-static-fit" / "f").exists()
    cluster.kubectl("delete", "pv", "st-static-big", "st-static-fit", "st-static-tiny")


def test_deleting_claim_of_delete_class_removes_volume(cluster: ClusterHandle) -> None:
    apply(cluster, claim("st-gone"), pod_with_claim("st-gone", "st-gone", "echo x > /data/x; sleep 3600"))
    c = bound(cluster, "st-gone")
    name = c["spec"]["volumeName"]
    pv = get(cluster, "pv", name)
    assert pv is not None
    path = Path(pv["spec"]["hostPath"]["path"])
    running(cluster, "st-gone")
    wait_for(lambda: (path / "x").exists())
    cluster.kubectl("delete", "pod", "st-gone", "--wait=true")
    cluster.kubectl("delete", "pvc", "st-gone", "--wait=true")
    wait_for(lambda: get(cluster, "pv", name) is None)
    wait_for(lambda: not path.exists())
    assert name not in cluster.kubectl("get", "pv").stdout


def test_immediate_claim_keeps_pod_pending(cluster: ClusterHandle) -> None:
    apply(cluster, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "st-nowhere"},
                    "provisioner": "example.com/nothing", "volumeBindingMode": "Immediate"},
          claim("st-stuck", storageClassName="st-nowhere"), pod_with_claim("st-stuck", "st-stuck", "sleep 3600"))
    wait_for(lambda: "FailedScheduling" in cluster.kubectl("describe", "pod", "st-stuck").stdout)
    assert "pod has unbound immediate PersistentVolumeClaims" in cluster.kubectl("describe", "pod", "st-stuck").stdout
    assert (get(cluster, "pvc", "st-stuck") or {})["status"]["phase"] == "Pending"
    cluster.kubectl("delete", "pod", "st-stuck", "--wait=false")
    cluster.kubectl("delete", "pvc", "st-stuck", "--wait=false")


def test_local_volumes_wait_for_the_consumer_and_pin_its_node(cluster: ClusterHandle, tmp_path: Path) -> None:
    node = f"{cluster.name}-worker2"
    (tmp_path / "st-local").mkdir()
    apply(cluster,
          {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "st-local"},
           "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"},
          {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "st-local-pv"},
           "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "st-local",
                    "persistentVolumeReclaimPolicy": "Retain", "local": {"path": str(tmp_path / "st-local")},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}},
          claim("st-local-claim", storageClassName="st-local"))
    wait_for(lambda: "WaitForFirstConsumer" in cluster.kubectl("describe", "pvc", "st-local-claim").stdout)
    assert (get(cluster, "pvc", "st-local-claim") or {})["status"]["phase"] == "Pending"
    apply(cluster, pod_with_claim("st-local-pod", "st-local-claim", "echo local > /data/f; sleep 3600"))
    c = bound(cluster, "st-local-claim")
    assert c["spec"]["volumeName"] == "st-local-pv"
    assert running(cluster, "st-local-pod")["spec"]["nodeName"] == node
    wait_for(lambda: (tmp_path / "st-local" / "f").exists())
    # No volume left for a second claim: its pod stays Pending, saying why.
    apply(cluster, claim("st-local-claim2", storageClassName="st-local"),
          pod_with_claim("st-local-pod2", "st-local-claim2", "sleep 3600"))
    wait_for(lambda: "FailedScheduling" in cluster.kubectl("describe", "pod", "st-local-pod2").stdout)
    out = cluster.kubectl("describe", "pod", "st-local-pod2").stdout
    assert "2 node(s) didn't find available persistent volumes to bind" in out, out
    assert "1 node(s) had untolerated taint" in out, out
    cluster.kubectl("delete", "pod", "st-local-pod", "st-local-pod2", "--wait=true")
    cluster.kubectl("delete", "pvc", "st-local-claim", "st-local-claim2", "--wait=true")
    cluster.kubectl("delete", "pv", "st-local-pv")


def test_claim_in_use_is_protected(cluster: ClusterHandle) -> None:
    apply(cluster, claim("st-held"), pod_with_claim("st-holder", "st-held", "sleep 3600"))
    c = bound(cluster, "st-held")
    assert "kubernetes.io/pvc-protection" in c["metadata"]["finalizers"]
    running(cluster, "st-holder")
    name = c["spec"]["volumeName"]
    cluster.kubectl("delete", "pvc", "st-held", "--wait=false")
    time.sleep(2)
    row = cluster.kubectl("get", "pvc", "st-held").stdout.splitlines()[1].split()
    assert row[1] == "Terminating"
    assert get(cluster, "pv", name) is not None
    cluster.kubectl("delete", "pod", "st-holder", "--wait=true")
    wait_for(lambda: get(cluster, "pvc", "st-held") is None)
    wait_for(lambda: get(cluster, "pv", name) is None)
