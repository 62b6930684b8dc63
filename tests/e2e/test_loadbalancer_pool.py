"""A LoadBalancer pool that runs out: `<pending>`, a Warning Event, and the address handed on when freed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from kinns.testing import ClusterHandle, new_cluster_name, wait_for
from tests.e2e.helpers import apply, deployment, running


@pytest.fixture(scope="module")
def cluster(state_root: Path) -> Iterator[ClusterHandle]:
    third = 100 + os.getpid() % 100
    fabric = f"172.29.{third}.0/24"
    c = ClusterHandle(new_cluster_name("lb"), state_root,
                      extra_args=["--fabric-subnet", fabric, "--lb-pool", f"172.29.{third}.240-172.29.{third}.240",
                                   "--disable", "ingress"])  # the ingress Service would take the one address
    c.up()
    try:
        yield c
    finally:
        c.down()


def lb(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}}


def external_ip(cluster: ClusterHandle, name: str) -> str:
    return cluster.kubectl("get", "svc", name).stdout.splitlines()[1].split()[3]


def test_exhausted_pool_leaves_the_service_pending_with_an_event(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("web", 1, {"name": "web", "image": "nginx:1.27"}))
    running(cluster, "app=web", 1)
    apply(cluster, lb("first"))
    ip = wait_for(lambda: (v := external_ip(cluster, "first")) != "<pending>" and v)
    assert ip.endswith(".240")
    assert wait_for(lambda: subprocess.run(["curl", "-s", "-m", "1", f"http://{ip}/"], capture_output=True,
                                           text=True).stdout.startswith("web-"))
    apply(cluster, lb("second"))
    event = wait_for(lambda: [e for e in json.loads(cluster.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=second", "-o", "json").stdout)["items"]
        if e["reason"] == "AllocationFailed"])[0]
    assert event["type"] == "Warning" and "exhausted" in event["message"]
    assert external_ip(cluster, "second") == "<pending>"
    cluster.kubectl("delete", "svc", "first")
    assert wait_for(lambda: external_ip(cluster, "second") == ip)
