"""`kinns exec node/<name>` and `kinns exec pod/<name>`: a shell where the real thing is.

A node is its network namespace plus what the control-plane node's files
say: entering one runs the command in the node's netns, with its own
hostname and a private mount namespace in which the node's files (such as
/etc/kubernetes/manifests) are layered over the host's /etc.
/etc/kubernetes is the node's own and writable, as on a kubeadm node.
The host is untouched.  A pod is entered through its running container
process (found by its cgroup), with the container's namespaces, root and
working directory, as `kubectl exec` would.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

from ..net.fabric import Fabric
from ..node.cgroups import Cgroups
from .adminapi import get_json
from .config import ClusterConfig
from .manifests import node_etc

# The node's files over the host's /etc, read-only, except /etc/kubernetes, which is
# the node's own and writable: moving a static pod manifest out of it stops the component.
_NODE_SCRIPT = ('mount -t overlay kinns-node-etc -o "lowerdir=$KINNS_ETC:/etc" /etc && '
                'if [ -d "$KINNS_ETC/kubernetes" ]; then mount --bind "$KINNS_ETC/kubernetes" /etc/kubernetes; fi && '
                'hostname "$KINNS_NODE" && exec "$@"')


class ExecError(Exception):
    pass


def node_command(cfg: ClusterConfig, node: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    nodes = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)
    match = next((n for n in nodes if n.name == node), None)
    if match is None:
        names = ", ".join(n.name for n in nodes)
        raise ExecError(f'node "{node}" not found in cluster {cfg.name} (nodes: {names})')
    etc = node_etc(cfg, node)
    etc.mkdir(parents=True, exist_ok=True)
    cmd = ["nsenter", f"--net=/run/netns/{match.netns}", "unshare", "--mount", "--uts", "--propagation",
           "private", "--", "sh", "-c", _NODE_SCRIPT, "kinns-exec", *argv]
    return cmd, {"KINNS_ETC": str(etc), "KINNS_NODE": node}


def _get(cfg: ClusterConfig, path: str) -> dict[str, Any]:
    try:
        return get_json(cfg, path, timeout=10)
    except urllib.error.HTTPError as e:
        raise ExecError(json.loads(e.read()).get("message", str(e))) from None


def pod_command(cfg: ClusterConfig, namespace: str, pod: str, container: str | None,
                argv: list[str]) -> list[str]:
    obj = _get(cfg, f"/api/v1/namespaces/{namespace}/pods/{pod}")
    names = [c["name"] for c in obj["spec"]["containers"]]
    name = container or names[0]
    if name not in names:
        raise ExecError(f"container {name} is not valid for pod {pod}")
    statuses = {s["name"]: s for s in (obj.get("status") or {}).get("containerStatuses", [])}
    st = statuses.get(name)
    if st is None or "running" not in (st.get("state") or {}):
        raise ExecError(f'container "{name}" in pod "{pod}" is not running')
    runtime_dir = cfg.state_dir / "runtime" / obj["spec"].get("nodeName", "")
    parent = json.loads((runtime_dir / "runtime.json").read_text())["cgroup_parent"]
    pids = sorted(Cgroups(parent).pids(f"pod{obj['metadata']['uid']}/{name}-{st.get('restartCount', 0)}"))
    if not pids:
        raise ExecError(f'container "{name}" in pod "{pod}" has no running process')
    return ["nsenter", "-t", str(pids[0]), "-n", "-u", "-m", "-r", "-w", "--", *argv]

