"""The same flat pod network with the host-gw overlay: plain routes via node IPs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from kinns.testing import ClusterHandle, new_cluster_name
from tests.e2e.test_nodes_and_pods import NETEXEC, apply, deployment, kexec, running


@pytest.fixture(scope="module")
def hostgw(state_root: Path) -> Iterator[ClusterHandle]:
    c = ClusterHandle(new_cluster_name("g"), state_root, ["--overlay", "host-gw"])
    c.up()
    try:
        yield c
    finally:
        c.down()


def test_routes_via_node_ips_and_traffic_without_nat(hostgw: ClusterHandle) -> None:
    nodes = json.loads(hostgw.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ip = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"] for n in nodes}
    cidr = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes}
    worker, worker2 = f"{hostgw.name}-worker", f"{hostgw.name}-worker2"
    routes = kexec(hostgw, f"node/{worker}", "ip", "route").stdout
    assert f"{cidr[worker2]} via {ip[worker2]} dev eth0" in routes
    assert "flannel.1" not in kexec(hostgw, f"node/{worker}", "ip", "link").stdout
    apply(hostgw, deployment("gw", 2, NETEXEC))
    items = running(hostgw, "app=gw", 2)
    a, b = items
    assert a["spec"]["nodeName"] != b["spec"]["nodeName"]
    out = kexec(hostgw, f"pod/{a['metadata']['name']}", "busybox", "wget", "-qO-",
                f"http://{b['status']['podIP']}:8080/clientip").stdout
    assert out.rsplit(":", 1)[0] == a["status"]["podIP"]
