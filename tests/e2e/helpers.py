"""Small helpers the e2e modules share: kubectl JSON, waiting for pods, `kinns exec`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from kinns.testing import ClusterHandle, wait_for

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def pods(cluster: ClusterHandle, selector: str = "", ns: str = "default") -> list[dict[str, Any]]:
    args = ["get", "pods", "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    items: list[dict[str, Any]] = json.loads(cluster.kubectl(*args).stdout)["items"]
    return items


def running(cluster: ClusterHandle, selector: str, n: int) -> list[dict[str, Any]]:
    def ok() -> list[dict[str, Any]] | None:
        items = pods(cluster, selector)
        ready = [p for p in items if p["status"].get("phase") == "Running" and p["status"].get("podIP")
                 and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]
        return ready if len(ready) == n else None
    return wait_for(ok)  # type: ignore[no-any-return]


def kexec(cluster: ClusterHandle, target: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "kinns.cli", "exec", "--name", cluster.name, target, "--", *cmd],
                       env=cluster.env(), text=True, capture_output=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"kinns exec {target} {cmd} failed: {r.stderr}")
    return r


def apply(cluster: ClusterHandle, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def deployment(name: str, replicas: int, container: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": list(containers), **spec}}


NETEXEC = {"name": "agnhost", "image": AGNHOST, "args": ["netexec", "--http-port=8080", "--udp-port=8081"]}
