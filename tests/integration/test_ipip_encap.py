"""The user-space IP-in-IP data planes on real namespaces, without a cluster.

Two nodes on a fabric with the ipip overlay (tunl0 is a TUN device here),
each running one encapsulator: the compiled helper (when built) and the
Python one.  Checked: ICMP and a TCP bulk transfer between the nodes' pod
ranges, the fabric carrying protocol-4 packets of at most 1500 bytes with
node addresses outside, pod addresses inside and correct inner checksums,
and `tunnel_hop` naming what `kinns trace` shows.  Nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinns.net import cleanup, fabric, ipip, overlay
from kinns.net.desired import NodeNet
from tests.integration.test_net_fabric import free_subnet

CLUSTER = f"ie{os.getpid() % 10000}"
COMPILED = Path(sys.executable).parent / ipip.COMPILED


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[NodeNet]]:
    try:
        ns = fabric.Fabric.create(CLUSTER, free_subnet(180), 2)
        overlay.setup_cluster(ns, "ipip")
        yield ns
    finally:
        cleanup.teardown(CLUSTER)
        assert cleanup.leftovers(CLUSTER) == []


def in_ns(ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=30)


@pytest.fixture(params=["compiled", "python"])
def encapsulators(request: pytest.FixtureRequest, nodes: list[NodeNet], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if ipip.probe() == ipip.KERNEL:
        pytest.skip("this kernel has ipip: tunl0 is the kernel's device, no encapsulator runs")
    if request.param == "compiled" and not COMPILED.exists():
        pytest.skip(f"{COMPILED} is not built (scripts/setup.sh builds it)")
    monkeypatch.setenv(ipip.DATAPLANE_ENV, request.param)
    procs = [subprocess.Popen(["nsenter", f"--net=/run/netns/{n.netns}", "--",
                               *ipip.encapsulator_argv(n.name, tmp_path / f"{n.name}.json")],
                              stderr=subprocess.DEVNULL) for n in nodes]
    try:
        a, b = nodes
        deadline = time.monotonic() + 10
        while in_ns(a.netns, "ping", "-c1", "-W1", b.pod_gateway).returncode != 0:
            assert time.monotonic() < deadline, "no answer through the tunnel"
        yield request.param
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def test_tunnel_carries_icmp_and_tcp_as_ip_in_ip(nodes: list[NodeNet], encapsulators: str) -> None:
    a, b = nodes
    fab = f"kinns-{CLUSTER}-fabric"
    capture = subprocess.Popen(["ip", "netns", "exec", fab, "tcpdump", "-vv", "-nli", "fabric0", "-c", "300",
                                "ip proto 4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = subprocess.Popen(["ip", "netns", "exec", b.netns, "iperf3", "-s", "-1", "-B", b.pod_gateway],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert capture.stderr is not None and "listening" in capture.stderr.readline()
        time.sleep(0.3)
        ping = in_ns(a.netns, "ping", "-c2", "-W2", b.pod_gateway)
        assert "2 received" in ping.stdout
        bulk = in_ns(a.netns, "iperf3", "-c", b.pod_gateway, "-n", "20M")
        assert bulk.returncode == 0 and "receiver" in bulk.stdout, bulk.stderr
        out, _ = capture.communicate(timeout=20)
    finally:
        capture.kill()
        server.kill()
        server.wait()
    lines = out.splitlines()
    assert any(line.strip().startswith(f"{a.ip} > {b.ip}: IP (tos") for line in lines), out[:2000]   # outer
    assert any(line.strip().startswith(f"{a.vtep_ip}.") and f" > {b.pod_gateway}.5201:" in line
               for line in lines), out[:2000]                                                      # inner
    outer = [int(line.rsplit("length ", 1)[1].rstrip(")")) for line in lines if "proto IPIP (4)" in line]
    assert len(outer) == 300 and max(outer) <= 1500          # real packets within the link MTU, no super-frames
    assert "(correct)" in out and "incorrect" not in out


def test_tunnel_hop_names_encapsulation_and_outer_addresses(nodes: list[NodeNet], encapsulators: str) -> None:
    a, b = nodes
    hop = ipip.tunnel_hop(a.netns, b.pod_gateway)
    assert hop == ipip.TunnelHop("tunl0", a.ip, b.ip, ipip.USERSPACE)
    assert ipip.tunnel_hop(a.netns, a.pod_gateway) is None
