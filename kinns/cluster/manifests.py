"""The control-plane node's static pod manifests, with the flags really in force.

kubeadm clusters keep `/etc/kubernetes/manifests/kube-apiserver.yaml` and
friends on the control-plane node, and the notes teach `grep cluster-cidr`
and `grep service-cluster-ip-range` on them.  kinns's control plane is one
daemon, not static pods, but these files state the same facts (the ranges
the daemon really uses), so the lesson holds: `kinns exec
node/<cluster>-control-plane -- cat /etc/kubernetes/manifests/...`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .config import ClusterConfig


def node_etc(cfg: ClusterConfig, node: str) -> Path:
    """The directory layered over /etc when entering `node` (see nodeexec)."""
    return cfg.state_dir / "nodes" / node / "etc"


def _static_pod(name: str, image: str, command: list[str], ip: str) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"component": name, "tier": "control-plane"}},
        "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                 "containers": [{"name": name, "image": image, "command": command}]},
        "status": {},
    }


def write_control_plane_manifests(cfg: ClusterConfig, node: str, ip: str) -> Path:
    d = node_etc(cfg, node) / "kubernetes" / "manifests"
    d.mkdir(parents=True, exist_ok=True)
    lo, hi = cfg.node_port_range
    pods = {
        "kube-apiserver": ["kube-apiserver", f"--advertise-address={ip}", "--secure-port=6443",
                           f"--service-cluster-ip-range={cfg.service_cidr}",
                           f"--service-node-port-range={lo}-{hi}", "--etcd-servers=sqlite://state.db",
                           "--authorization-mode=Node,RBAC",
                           "--client-ca-file=/etc/kubernetes/pki/ca.crt",
                           "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                           "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
                           "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key"],
        "kube-controller-manager": ["kube-controller-manager", "--allocate-node-cidrs=true",
                                    f"--cluster-cidr={cfg.cluster_cidr}", "--node-cidr-mask-size=24",
                                    f"--service-cluster-ip-range={cfg.service_cidr}",
                                    "--use-service-account-credentials=true",
                                    "--controllers=garbagecollector,namespace,nodeipam,replicaset,deployment,daemonset,"
                                    "statefulset,endpoint,endpointslice,serviceaccount,root-ca-cert-publisher,"
                                    "clusterrole-aggregation,service-lb-controller"],
        "kube-scheduler": ["kube-scheduler", "--leader-elect=false"],
    }
    for name, cmd in pods.items():
        manifest = _static_pod(name, f"registry.k8s.io/{name}:v1.32.3", cmd, ip)
        (d / f"{name}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return d
