"""The Node object a kubelet registers, and its heartbeat Lease.

What `kubectl get nodes -o wide` and `kubectl describe node` show comes
from here: the labels kubeadm/kind put on nodes (hostname, os, arch,
control-plane role), the control-plane taint, capacity read from the host
(this machine's CPUs and memory are what pods really share), addresses on
the fabric, node info (kernel, OS image, runtime) and the four conditions.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from typing import Any

KUBELET_VERSION = "v1.32.3"
RUNTIME_VERSION = "kinns://0.1.0"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
LEASE_SECONDS = 40


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _os_image() -> str:
    try:
        for line in open("/etc/os-release", encoding="utf-8"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _memory_kib() -> int:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _machine_id() -> str:
    try:
        return open("/etc/machine-id", encoding="utf-8").read().strip()
    except OSError:
        return ""


def node_object(name: str, ip: str, control_plane: bool, isolate: bool = True) -> dict[str, Any]:
    """The Node a kubelet registers.  A control-plane node is tainted NoSchedule
    (kubeadm's control-plane node isolation) unless `isolate` is False: kind
    removes the taint when the cluster has no other node, so its pods can run."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64" if platform.machine() in ("x86_64", "amd64") else platform.machine(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64" if platform.machine() in ("x86_64", "amd64") else platform.machine(),
    }
    spec: dict[str, Any] = {}
    if control_plane:
        labels[CONTROL_PLANE_ROLE] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        if isolate:
            spec["taints"] = [{"key": CONTROL_PLANE_ROLE, "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": node_status(name, ip),
    }


def node_status(name: str, ip: str, ready: bool = True) -> dict[str, Any]:
    cpus = str(os.cpu_count() or 1)
    mem = f"{_memory_kib()}Ki"
    capacity = {"cpu": cpus, "memory": mem, "pods": "110", "ephemeral-storage": "100Gi",
                "hugepages-2Mi": "0", "hugepages-1Gi": "0"}
    ts = now()

    def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {"type": ctype, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": ts, "lastTransitionTime": ts}

    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True" if ready else "False", "KubeletReady" if ready else "KubeletNotReady",
                 "kubelet is posting ready status" if ready else "container runtime network not ready"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": _machine_id(), "systemUUID": _machine_id(), "bootID": "",
            "kernelVersion": platform.release(), "osImage": _os_image(),
            "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux",
            "architecture": "amd64" if platform.machine() in ("x86_64", "amd64") else platform.machine(),
        },
    }


def lease_object(node: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease",
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()},
    }
