"""The control-plane node's static pod manifests: what its kubelet runs.

As on a kubeadm cluster, `/etc/kubernetes/manifests/` on the control-plane
node holds `kube-apiserver.yaml`, `kube-controller-manager.yaml`,
`kube-scheduler.yaml` (and `etcd.yaml` with `--store etcd`); the node's
kubelet runs each as a static pod and publishes a mirror pod
`<component>-<node>` in kube-system.  Moving a file out of the directory
(`kinns exec node/<cluster>-control-plane -- mv ...`) stops that component,
putting it back starts it.  The flags are upstream's (kubeadm's
phases/controlplane/manifests.go) plus `--kinns-state-dir`, and the
cluster's state directory is mounted from the host as kubeadm mounts
/etc/kubernetes/pki.  The notes' `grep cluster-cidr` on these files shows
the ranges really in force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .config import ClusterConfig

KUBE_VERSION = "v1.32.3"
ETCD_IMAGE = "registry.k8s.io/etcd:3.5.16-0"
API_PORT = 6443


def node_etc(cfg: ClusterConfig, node: str) -> Path:
    """The directory layered over /etc when entering `node` (see nodeexec)."""
    return cfg.state_dir / "nodes" / node / "etc"


def manifest_dir(cfg: ClusterConfig, node: str) -> Path:
    """The node's /etc/kubernetes/manifests (the kubelet's --pod-manifest-path)."""
    return node_etc(cfg, node) / "kubernetes" / "manifests"


def stopped_dir(cfg: ClusterConfig, node: str) -> Path:
    """Where `kinns control-plane stop` moves the manifests (beside, not in, the watched directory)."""
    return node_etc(cfg, node) / "kubernetes" / "manifests-stopped"


def static_pod(name: str, image: str, command: list[str], state_dir: Path, *,
               probe_port: int | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A control-plane static pod as kubeadm writes one: hostNetwork, system-node-critical,
    labels component/tier, the state directory mounted from the host."""
    container: dict[str, Any] = {"name": name, "image": image, "command": command,
                                 "imagePullPolicy": "IfNotPresent",
                                 "volumeMounts": [{"name": "kinns-state", "mountPath": str(state_dir)}]}
    meta: dict[str, Any] = {"name": name, "namespace": "kube-system",
                            "labels": {"component": name, "tier": "control-plane"}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"hostNetwork": True, "priority": 2000001000, "priorityClassName": "system-node-critical",
                 "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [container],
                 "volumes": [{"name": "kinns-state",
                              "hostPath": {"path": str(state_dir), "type": "DirectoryOrCreate"}}]},
        "status": {},
    }


def control_plane_pods(cfg: ClusterConfig, ip: str, node: str) -> dict[str, dict[str, Any]]:
    """File stem → static pod, for the control-plane node at `ip`."""
    st = cfg.state_dir
    pki = st / "pki"
    lo, hi = cfg.node_port_range
    store = getattr(cfg, "store", "sqlite")
    etcd_url = f"http://{ip}:2379" if store == "etcd" else f"sqlite://{st / 'state.db'}"
    conf = st / "kubeconfigs"
    grace = cfg.extra.get("node-monitor-grace-period", "50s")
    pods = {
        "kube-apiserver": static_pod("kube-apiserver", f"registry.k8s.io/kube-apiserver:{KUBE_VERSION}", [
            "kube-apiserver", f"--advertise-address={ip}", "--allow-privileged=true",
            "--authorization-mode=Node,RBAC", f"--client-ca-file={pki / 'ca.crt'}",
            "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
            f"--etcd-servers={etcd_url}", f"--secure-port={API_PORT}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={cfg.service_cidr}", f"--service-node-port-range={lo}-{hi}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kinns-state-dir={st}"], st,
            annotations={"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{ip}:{API_PORT}"}),
        "kube-controller-manager": static_pod(
            "kube-controller-manager", f"registry.k8s.io/kube-controller-manager:{KUBE_VERSION}", [
                "kube-controller-manager", "--allocate-node-cidrs=true",
                f"--authentication-kubeconfig={conf / 'controller-manager.conf'}",
                f"--authorization-kubeconfig={conf / 'controller-manager.conf'}",
                "--bind-address=127.0.0.1", f"--client-ca-file={pki / 'ca.crt'}",
                f"--cluster-cidr={cfg.cluster_cidr}", f"--cluster-name={cfg.name}",
                "--controllers=*,bootstrapsigner,tokencleaner",
                f"--kubeconfig={conf / 'controller-manager.conf'}", "--leader-elect=true",
                "--node-cidr-mask-size=24", f"--node-monitor-grace-period={grace}",
                f"--service-cluster-ip-range={cfg.service_cidr}",
                "--use-service-account-credentials=true", f"--state-dir={st}"], st),
        "kube-scheduler": static_pod("kube-scheduler", f"registry.k8s.io/kube-scheduler:{KUBE_VERSION}", [
            "kube-scheduler", f"--authentication-kubeconfig={conf / 'scheduler.conf'}",
            f"--authorization-kubeconfig={conf / 'scheduler.conf'}", "--bind-address=127.0.0.1",
            f"--kubeconfig={conf / 'scheduler.conf'}", "--leader-elect=true"], st),
    }
    if store == "etcd":
        from .etcd import etcd_argv
        pods["etcd"] = static_pod("etcd", ETCD_IMAGE, etcd_argv(cfg, node, ip), st,
                                  annotations={"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                                               f"http://{ip}:2379"})
    return pods


def write_control_plane_manifests(cfg: ClusterConfig, node: str, ip: str) -> Path:
    """Write the manifests once, when the cluster is made (as `kubeadm init` does): on a
    restart, what a user moved out or edited stays as they left it."""
    d = manifest_dir(cfg, node)
    marker = d.parent / ".kinns-manifests-written"
    if marker.exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    for stem, pod in control_plane_pods(cfg, ip, node).items():
        tmp = d / f".{stem}.yaml.tmp"
        tmp.write_text(yaml.safe_dump(pod, sort_keys=False))
        tmp.rename(d / f"{stem}.yaml")
    marker.touch()
    return d
