"""The pod sandbox: what the containers of one pod share.

In Kubernetes a sandbox is the pause container holding the pod's
namespaces.  Here the network namespace is made by the network plugin (a
named netns at /run/netns/<name>), and the rest needs no process at all: a
per-pod directory holds the files every container of the pod sees,

  <state>/pods/<ns>_<name>_<uid>/
      etc/hosts, etc/resolv.conf, etc/hostname   bound into each container
      logs/<container>/<restart>.log             like /var/log/pods

and each container gets its own UTS namespace with the pod's hostname, so
all containers of a pod agree on hostname, localhost and DNS settings.
The sandbox also carries what the runtime needs of the pod spec to fence
its containers in: whether they use the node's PID and IPC namespaces
(hostPID, hostIPC), share one PID namespace (shareProcessNamespace), and
the pod-level securityContext (runAsUser, fsGroup, ...; see `security`).
`/etc/hosts` is written as the kubelet writes it (its "Kubernetes-managed
hosts file" header, the pod IP with hostname or FQDN, hostAliases);
resolv.conf comes from `dnsconfig`.  hostNetwork pods get the node's files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kinns.node.dnsconfig import resolv_conf

HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
HOSTS_LOCAL = ("127.0.0.1\tlocalhost\n"
               "::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\n"
               "fe00::0\tip6-mcastprefix\n"
               "fe00::1\tip6-allnodes\n"
               "fe00::2\tip6-allrouters\n")


def pod_hostname(pod: dict[str, Any], cluster_domain: str = "cluster.local") -> tuple[str, str]:
    """(hostname, fqdn or "") as the kubelet derives them: `spec.hostname`
    or the pod name cut to 63 characters (no trailing `-`/`.`), and with
    `spec.subdomain` the FQDN `<host>.<sub>.<ns>.svc.<zone>`;
    `setHostnameAsFQDN` makes the FQDN the kernel hostname."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    host = spec.get("hostname") or meta.get("name", "")
    if len(host) > 63:
        host = host[:63].rstrip("-.")
    fqdn = ""
    if spec.get("subdomain"):
        fqdn = f"{host}.{spec['subdomain']}.{meta.get('namespace') or 'default'}.svc.{cluster_domain.strip('.')}"
    return host, fqdn


def hosts_file(pod: dict[str, Any], pod_ips: list[str], cluster_domain: str = "cluster.local") -> str:
    """The kubelet's managed /etc/hosts for a pod that is not on the host network."""
    host, fqdn = pod_hostname(pod, cluster_domain)
    text = HOSTS_HEADER + HOSTS_LOCAL
    for ip in pod_ips:
        text += f"{ip}\t{fqdn}\t{host}\n" if fqdn else f"{ip}\t{host}\n"
    aliases = (pod.get("spec") or {}).get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for a in aliases:
            text += f"{a['ip']}\t" + "\t".join(a.get("hostnames") or []) + "\n"
    return text


@dataclass
class Sandbox:
    """A pod's shared state; plain data so it can be saved and reloaded."""

    uid: str
    name: str
    namespace: str
    hostname: str
    ip: str
    netns: str | None
    dir: str
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    share_pid: bool = False
    security_context: dict[str, Any] = field(default_factory=dict)   # the pod's securityContext

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def log_path(self, container: str, restart_count: int) -> Path:
        """Where the log of the `restart_count`-th run of `container` goes."""
        return self.path / "logs" / container / f"{restart_count}.log"

    def etc_binds(self) -> list[tuple[str, str, bool]]:
        """(host file, container path, read-only) for the shared /etc files."""
        return [(str(self.path / "etc" / f), f"/etc/{f}", False) for f in ("hosts", "resolv.conf", "hostname")]

    def save(self) -> None:
        (self.path / "sandbox.json").write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, directory: Path) -> "Sandbox":
        return cls(**json.loads((directory / "sandbox.json").read_text()))


def create_sandbox(state_dir: Path, pod: dict[str, Any], *, netns: str | None, pod_ip: str,
                   pod_ips: list[str] | None = None, cluster_dns: list[str] | None = None,
                   cluster_domain: str = "cluster.local", host_resolv: str = "/etc/resolv.conf",
                   host_hosts: str = "/etc/hosts", node_name: str = "") -> Sandbox:
    """Write the pod's directory and shared files; idempotent.

    `netns` is the path of the network namespace the containers join: the
    pod's own, or for hostNetwork pods the node's (None: the daemon's own).
    `pod_ip` is the pod's IP (the node IP for hostNetwork pods).
    hostNetwork pods see the node's hosts file, the node's resolv.conf (per
    dnsPolicy) and the node name as hostname.  `cluster_dns` defaults to
    the kube-dns ClusterIP 10.96.0.10."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ns = meta.get("namespace") or "default"
    host_net = bool(spec.get("hostNetwork"))
    host, fqdn = pod_hostname(pod, cluster_domain)
    d = Path(state_dir) / "pods" / f"{ns}_{meta['name']}_{meta['uid']}"
    (d / "etc").mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(exist_ok=True)
    try:
        host_resolv_text = Path(host_resolv).read_text()
    except OSError:
        host_resolv_text = ""
    dns = ["10.96.0.10"] if cluster_dns is None else cluster_dns
    if host_net:
        try:
            hosts = Path(host_hosts).read_text()
        except OSError:
            hosts = HOSTS_HEADER + HOSTS_LOCAL
        kernel_host = node_name
    else:
        hosts = hosts_file(pod, pod_ips or [pod_ip], cluster_domain)
        kernel_host = fqdn if (fqdn and spec.get("setHostnameAsFQDN")) else host
    (d / "etc" / "hosts").write_text(hosts)
    (d / "etc" / "resolv.conf").write_text(resolv_conf(pod, cluster_dns=dns, cluster_domain=cluster_domain,
                                                       host_resolv=host_resolv_text))
    (d / "etc" / "hostname").write_text((kernel_host or host) + "\n")
    # Not saved as sandbox.json: nothing reads it back (the kubelet rebuilds
    # its pods from the API), and on the nojournal ext4 this runs on, every
    # new inode costs ~0.4 ms of kernel time skipping recently deleted ones.
    return Sandbox(uid=meta["uid"], name=meta["name"], namespace=ns, hostname=kernel_host, ip=pod_ip,
                   netns=netns, dir=str(d), host_network=host_net, host_pid=bool(spec.get("hostPID")),
                   host_ipc=bool(spec.get("hostIPC")), share_pid=bool(spec.get("shareProcessNamespace")),
                   security_context=dict(spec.get("securityContext") or {}))


def remove_sandbox_dir(sandbox: Sandbox) -> None:
    """Delete the pod's directory (logs included), as the kubelet does when
    the pod object is gone."""
    shutil.rmtree(sandbox.path, ignore_errors=True)
