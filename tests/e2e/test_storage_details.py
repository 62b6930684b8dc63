"""Storage details through kubectl, with real files: subPath and subPathExpr (and what
they refuse), read-only mounts, memory-backed emptyDirs, sizeLimit eviction, Immediate
binding, pv/pvc protection, expansion, StatefulSet claim retention, and claims wanted
by pods on two nodes (ReadWriteOnce) or by two pods (ReadWriteOncePod)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kinns.testing import ClusterHandle, wait_for

from .helpers import apply, pod

BUSY = {"image": "busybox", "command": ["sh", "-c"]}


def sh(name: str, script: str, *mounts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, **BUSY, "args": [script], "volumeMounts": list(mounts), **extra}


def get(cluster: ClusterHandle, kind: str, name: str) -> dict[str, Any] | None:
    r = cluster.kubectl("get", kind, name, "-o", "json", check=False)
    if r.returncode != 0:
        assert "NotFound" in r.stderr, r.stderr
        return None
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def claim(name: str, size: str = "10Mi", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}}


def claim_volume(name: str, claim_name: str, **source: Any) -> dict[str, Any]:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim_name, **source}}


def running(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        p = get(cluster, "pod", name)
        st = (p or {}).get("status") or {}
        return p if st.get("phase") == "Running" and all(c.get("ready") for c in st.get("containerStatuses") or [{}]) \
            else None
    return wait_for(ok, 60)  # type: ignore[no-any-return]


def waiting(cluster: ClusterHandle, name: str, container: str) -> dict[str, Any]:
    """The container's waiting state once it has a reason other than ContainerCreating."""
    def ok() -> dict[str, Any] | None:
        st = ((get(cluster, "pod", name) or {}).get("status") or {}).get("containerStatuses") or []
        w = next((c["state"].get("waiting") for c in st if c["name"] == container), None)
        return w if w and w.get("reason") != "ContainerCreating" else None
    return wait_for(ok, 60)  # type: ignore[no-any-return]


def kexec(cluster: ClusterHandle, name: str, script: str, container: str = "") -> str:
    args = ["exec", name] + (["-c", container] if container else []) + ["--", "sh", "-c", script]
    r = cluster.kubectl(*args, check=False)
    return r.stdout + r.stderr


def events(cluster: ClusterHandle, name: str, reason: str) -> list[dict[str, Any]]:
    r = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name},reason={reason}",
                        "-o", "json")
    return json.loads(r.stdout)["items"]  # type: ignore[no-any-return]


def zygote_mounts(cluster: ClusterHandle, node: str, text: str) -> list[str]:
    """Mount points of the node runtime's mount namespace (where kinns makes tmpfs and subPath mounts)."""
    pid = (cluster.state_dir / "runtime" / node / "zygote.pid").read_text().strip()
    return [line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if text in line]


def test_subpath_expr_gives_each_pod_its_directory_and_read_only_mounts_are(cluster: ClusterHandle) -> None:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    cluster.kubectl("create", "configmap", "sd-cfg", "--from-literal=app.conf=port=80")
    apply(cluster, pod("sd-logs", sh("c", "echo hello > /logs/out; sleep 3600",
                                     {"name": "data", "mountPath": "/logs", "subPathExpr": "logs/$(POD_NAME)"},
                                     {"name": "data", "mountPath": "/all"},
                                     {"name": "data", "mountPath": "/ro", "readOnly": True},
                                     {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                                     {"name": "cfg", "mountPath": "/cfg"}, env=env),
                       volumes=[{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "sd-cfg"}}],
                       terminationGracePeriodSeconds=1))
    running(cluster, "sd-logs")
    assert kexec(cluster, "sd-logs", "cat /all/logs/sd-logs/out; cat /ro/logs/sd-logs/out").split() == ["hello"] * 2
    assert kexec(cluster, "sd-logs", "cat /etc/app.conf").strip() == "port=80"      # a file by subPath
    assert "Read-only file system" in kexec(cluster, "sd-logs", "touch /ro/x")
    # configMap volumes are read-only whatever the mount says, as upstream
    assert "Read-only file system" in kexec(cluster, "sd-logs", "echo x > /cfg/new")
    cluster.kubectl("delete", "pod/sd-logs", "configmap/sd-cfg", "--wait=false")


def test_subpath_expr_with_a_missing_variable_is_a_container_config_error(cluster: ClusterHandle) -> None:
    apply(cluster, pod("sd-noenv", sh("c", "sleep 3600", {"name": "d", "mountPath": "/d", "subPathExpr": "$(NOPE)/x"}),
                       volumes=[{"name": "d", "emptyDir": {}}], terminationGracePeriodSeconds=1))
    w = waiting(cluster, "sd-noenv", "c")
    assert w == {"reason": "CreateContainerConfigError", "message": "missing value for NOPE"}
    row = cluster.kubectl("get", "pod", "sd-noenv", "--no-headers").stdout.split()
    assert row[2] == "CreateContainerConfigError"
    cluster.kubectl("delete", "pod", "sd-noenv", "--wait=false")


def test_api_refuses_absolute_and_backstepping_subpaths(cluster: ClusterHandle) -> None:
    bad = pod("sd-bad", sh("c", "true", {"name": "d", "mountPath": "/a", "subPath": "/etc"},
                           {"name": "d", "mountPath": "/b", "subPathExpr": "x/../../$(HOME)"}),
              volumes=[{"name": "d", "emptyDir": {}}])
    r = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert r.returncode != 0
    assert 'spec.containers[0].volumeMounts.subPath: Invalid value: "/etc": must be a relative path' in r.stderr
    assert ("spec.containers[0].volumeMounts.subPathExpr: Invalid value: \"x/../../$(HOME)\": must not contain '..'"
            in r.stderr)
    assert get(cluster, "pod", "sd-bad") is None


def test_a_subpath_symlink_out_of_the_volume_is_refused(cluster: ClusterHandle) -> None:
    """One pod plants links in a shared claim; a subPath through the one leading out of the
    volume is refused, one that stays inside is followed.  (A ReadWriteOnce claim: all
    three pods share it on one node, which upstream allows.)"""
    apply(cluster, claim("sd-shared"))
    apply(cluster, pod("sd-planter", sh("c", "mkdir -p /d/real && echo inside > /d/real/f && ln -sfn /etc /d/escape"
                                             " && ln -sfn real /d/inside && sleep 3600", {"name": "d", "mountPath": "/d"}),
                       volumes=[claim_volume("d", "sd-shared")], terminationGracePeriodSeconds=1))
    running(cluster, "sd-planter")
    apply(cluster, pod("sd-escape", sh("c", "sleep 3600", {"name": "d", "mountPath": "/x", "subPath": "escape"}),
                       volumes=[claim_volume("d", "sd-shared")], terminationGracePeriodSeconds=1))
    apply(cluster, pod("sd-inside", sh("c", "sleep 3600", {"name": "d", "mountPath": "/x", "subPath": "inside"}),
                       volumes=[claim_volume("d", "sd-shared", readOnly=True)], terminationGracePeriodSeconds=1))
    assert waiting(cluster, "sd-escape", "c") == {
        "reason": "CreateContainerConfigError",
        "message": 'failed to prepare subPath for volumeMount "d" of container "c"'}
    running(cluster, "sd-inside")
    assert kexec(cluster, "sd-inside", "cat /x/f").strip() == "inside"
    # a claim mounted with `readOnly: true` in the pod's volume is read-only in every mount
    assert "Read-only file system" in kexec(cluster, "sd-inside", "touch /x/g")
    warnings = [e["message"] for e in events(cluster, "sd-escape", "Failed")]
    assert 'Error: failed to prepare subPath for volumeMount "d" of container "c"' in warnings
    cluster.kubectl("delete", "pod", "sd-planter", "sd-escape", "sd-inside", "--wait=false")


def test_memory_emptydir_is_a_tmpfs_of_its_size_limit_gone_with_the_pod(cluster: ClusterHandle) -> None:
    apply(cluster, pod("sd-mem", sh("c", "sleep 3600", {"name": "m", "mountPath": "/m"},
                                    {"name": "n", "mountPath": "/n"},
                                    resources={"limits": {"memory": "64Mi"}}),
                       volumes=[{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "5Mi"}},
                                {"name": "n", "emptyDir": {"medium": "Memory"}}], terminationGracePeriodSeconds=1))
    p = running(cluster, "sd-mem")
    mounts = kexec(cluster, "sd-mem", "grep -E ' /(m|n) ' /proc/mounts")
    assert "tmpfs /m tmpfs rw,nosuid,nodev,relatime,size=5120k" in mounts
    assert "tmpfs /n tmpfs rw,nosuid,nodev,relatime,size=65536k" in mounts   # the pod's memory limit
    out = kexec(cluster, "sd-mem", "dd if=/dev/zero of=/m/big bs=1M count=8 2>&1; ls -l /m/big")
    assert "No space left on device" in out and " 5242880 " in out
    node, uid = p["spec"]["nodeName"], p["metadata"]["uid"]
    assert len(zygote_mounts(cluster, node, uid)) == 2
    cluster.kubectl("delete", "pod", "sd-mem")
    assert zygote_mounts(cluster, node, uid) == []


def test_an_emptydir_over_its_size_limit_gets_the_pod_evicted(cluster: ClusterHandle) -> None:
    apply(cluster, pod("sd-fill", sh("c", "dd if=/dev/zero of=/cache/f bs=1M count=3; sleep 3600",
                                     {"name": "cache", "mountPath": "/cache"}),
                       volumes=[{"name": "cache", "emptyDir": {"sizeLimit": "2Mi"}}]))

    def evicted() -> dict[str, Any] | None:
        st = (get(cluster, "pod", "sd-fill") or {}).get("status") or {}
        return st if st.get("phase") == "Failed" else None
    st = wait_for(evicted, 60)
    message = 'Usage of EmptyDir volume "cache" exceeds the limit "2Mi". '
    assert (st["reason"], st["message"]) == ("Evicted", message)
    assert [e["type"] for e in events(cluster, "sd-fill", "Evicted")] == ["Warning"]
    assert "terminated" in st["containerStatuses"][0]["state"]
    describe = cluster.kubectl("describe", "pod", "sd-fill").stdout
    assert "Reason:           Evicted" in describe
    cluster.kubectl("delete", "pod", "sd-fill", "--wait=false")


def test_an_immediate_class_binds_at_once_and_volumes_in_use_are_protected(cluster: ClusterHandle) -> None:
    apply(cluster, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sd-now"},
                    "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
                    "volumeBindingMode": "Immediate"})
    apply(cluster, claim("sd-now", storageClassName="sd-now"))
    pvc = wait_for(lambda: (c := get(cluster, "pvc", "sd-now")) and c["status"].get("phase") == "Bound" and c, 30)
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    pv_name = pvc["spec"]["volumeName"]
    pv = get(cluster, "pv", pv_name)
    assert pv is not None and "nodeAffinity" not in pv["spec"]   # the file system every node shares
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    apply(cluster, pod("sd-user", sh("c", "sleep 3600", {"name": "d", "mountPath": "/d"}),
                       volumes=[claim_volume("d", "sd-now")], terminationGracePeriodSeconds=1))
    running(cluster, "sd-user")
    # a bound volume and a claim in use are only marked for deletion
    cluster.kubectl("delete", "pv", pv_name, "--wait=false")
    cluster.kubectl("delete", "pvc", "sd-now", "--wait=false")
    pv_row = cluster.kubectl("get", "pv", pv_name, "--no-headers").stdout.split()
    assert pv_row[4] == "Terminating"
    assert cluster.kubectl("get", "pvc", "sd-now", "--no-headers").stdout.split()[1] == "Terminating"
    cluster.kubectl("delete", "pod", "sd-user")
    wait_for(lambda: get(cluster, "pvc", "sd-now") is None and get(cluster, "pv", pv_name) is None, 30)
    cluster.kubectl("delete", "storageclass", "sd-now")


def test_a_claim_of_the_default_class_can_grow(cluster: ClusterHandle) -> None:
    apply(cluster, claim("sd-grow"))
    apply(cluster, pod("sd-grower", sh("c", "sleep 3600", {"name": "d", "mountPath": "/d"}),
                       volumes=[claim_volume("d", "sd-grow")], terminationGracePeriodSeconds=1))
    running(cluster, "sd-grower")
    sc = cluster.kubectl("get", "sc", "standard", "--no-headers").stdout.split()
    assert sc[-2] == "true"   # ALLOWVOLUMEEXPANSION
    cluster.kubectl("patch", "pvc", "sd-grow", "-p", '{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}')

    def grown() -> dict[str, Any] | None:
        c = get(cluster, "pvc", "sd-grow") or {}
        return c if (c.get("status") or {}).get("capacity", {}).get("storage") == "1Gi" else None
    c = wait_for(grown, 30)
    assert c["status"]["allocatedResources"] == {"storage": "1Gi"}
    assert "conditions" not in c["status"] and "allocatedResourceStatuses" not in c["status"]
    pv = get(cluster, "pv", c["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["capacity"]["storage"] == "1Gi"
    assert [e["message"] for e in events(cluster, "sd-grow", "VolumeResizeSuccessful")] == ["Resize volume succeeded"]
    r = cluster.kubectl("patch", "pvc", "sd-grow", "-p", '{"spec":{"resources":{"requests":{"storage":"10Mi"}}}}',
                        check=False)
    assert "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity" in r.stderr
    cluster.kubectl("delete", "pod", "sd-grower", "--wait=false")


def test_a_class_without_expansion_refuses_a_bigger_claim(cluster: ClusterHandle) -> None:
    apply(cluster, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sd-fixed"},
                    "provisioner": "rancher.io/local-path", "volumeBindingMode": "Immediate"})
    apply(cluster, claim("sd-fixed", storageClassName="sd-fixed"))
    wait_for(lambda: ((get(cluster, "pvc", "sd-fixed") or {}).get("status") or {}).get("phase") == "Bound", 30)
    r = cluster.kubectl("patch", "pvc", "sd-fixed", "-p", '{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}',
                        check=False)
    assert r.stderr.strip() == ('Error from server (Forbidden): persistentvolumeclaims "sd-fixed" is forbidden: only '
                                "dynamically provisioned pvc can be resized and the storageclass that provisions the "
                                "pvc must support resize")
    cluster.kubectl("delete", "pvc", "sd-fixed")
    cluster.kubectl("delete", "storageclass", "sd-fixed")


def test_statefulset_claims_go_as_the_retention_policy_says(cluster: ClusterHandle) -> None:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sd-web"},
           "spec": {"replicas": 2, "podManagementPolicy": "Parallel", "serviceName": "sd-web",
                    "selector": {"matchLabels": {"app": "sd-web"}},
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
                    "template": {"metadata": {"labels": {"app": "sd-web"}},
                                 "spec": {"terminationGracePeriodSeconds": 1,
                                          "containers": [sh("c", "sleep 3600", {"name": "data", "mountPath": "/d"})]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}}}]}}
    apply(cluster, sts)

    def owners() -> dict[str, list[str]]:
        items = json.loads(cluster.kubectl("get", "pvc", "-l", "app=sd-web", "-o", "json").stdout)["items"]
        return {c["metadata"]["name"]: [r["kind"] for r in c["metadata"].get("ownerReferences") or []] for c in items}
    wait_for(lambda: owners() == {"data-sd-web-0": ["StatefulSet"], "data-sd-web-1": ["StatefulSet"]}, 60)
    cluster.kubectl("scale", "sts", "sd-web", "--replicas=1")
    wait_for(lambda: owners() == {"data-sd-web-0": ["StatefulSet"]}, 60)   # went with its pod
    cluster.kubectl("delete", "sts", "sd-web")
    wait_for(lambda: owners() == {}, 60)


def test_a_rwo_claim_wanted_on_another_node_is_refused_by_the_scheduler(cluster: ClusterHandle) -> None:
    node1, node2 = f"{cluster.name}-worker", f"{cluster.name}-worker2"
    apply(cluster, claim("sd-rwo"))
    for name, node in (("sd-rwo-a", node1), ("sd-rwo-b", node2)):
        apply(cluster, pod(name, sh("c", "sleep 3600", {"name": "d", "mountPath": "/d"}),
                           volumes=[claim_volume("d", "sd-rwo")], nodeSelector={"kubernetes.io/hostname": node},
                           terminationGracePeriodSeconds=1))
        if name == "sd-rwo-a":
            running(cluster, name)
    want = (f"0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had "
            "untolerated taint {node-role.kubernetes.io/control-plane: }, 1 node(s) had volume node affinity "
            "conflict. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    wait_for(lambda: want in [e["message"] for e in events(cluster, "sd-rwo-b", "FailedScheduling")], 30)
    assert (get(cluster, "pod", "sd-rwo-b") or {})["status"]["phase"] == "Pending"
    cluster.kubectl("delete", "pod", "sd-rwo-a", "sd-rwo-b", "--wait=false")


def test_a_rwop_claim_serves_one_pod_at_a_time(cluster: ClusterHandle) -> None:
    apply(cluster, claim("sd-solo", modes=("ReadWriteOncePod",)))
    for name in ("sd-solo-a", "sd-solo-b"):
        apply(cluster, pod(name, sh("c", "sleep 3600", {"name": "d", "mountPath": "/d"}),
                           volumes=[claim_volume("d", "sd-solo")], terminationGracePeriodSeconds=1))
        if name == "sd-solo-a":
            running(cluster, name)
    want = ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
            "2 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode. "
            "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption "
            "victims found for incoming pod.")
    wait_for(lambda: want in [e["message"] for e in events(cluster, "sd-solo-b", "FailedScheduling")], 30)
    cluster.kubectl("delete", "pod", "sd-solo-a")
    running(cluster, "sd-solo-b")   # the claim is free again
    cluster.kubectl("delete", "pod", "sd-solo-b", "--wait=false")
