"""Overlay benchmark: pod-to-pod throughput and request latency across nodes for host-gw, VXLAN and IP-in-IP.

One run starts a cluster per overlay (`kinns up --overlay host-gw|vxlan|ipip`
under a temporary KINNS_STATE_DIR; `kinns down` at the end, also after an
error or Ctrl-C), 3 nodes each, and in each puts `srv` on the first worker
(a TCP echo server on 8080 and `iperf3 -s`) and `cli` on the second, so
every byte crosses the overlay.  Where the kernel has no ipip module the
ipip cluster runs the user-space encapsulator: the compiled one when it is
built (scripts/setup.sh), and, for comparison, a second ipip cluster runs
the Python one (KINNS_IPIP_DATAPLANE=python) unless --no-python.

Measured, in interleaved rounds so every overlay sees the same load (the
machine is shared; compare the columns of one run, not runs):

  throughput  `iperf3 -c srv -t --seconds` from cli, one TCP stream, Gbit/s;
  latency     request/response over one TCP connection (64 bytes each way,
              as netperf's TCP_RR), --requests per round: median and p99, us.

Then, for the user-space encapsulators, their counters (packets, drops, and
for the compiled one TUN reads/writes: how many wire packets each 64 KiB
TSO read and each coalesced write carried).

Goal (issue 13): user-space IP-in-IP at least 30% of VXLAN's throughput and
under 2x its latency.  Needs root.  Usage:

  .venv/bin/python bench/overlay.py [--rounds 3] [--seconds 3] [--requests 3000] [--no-python]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.net import ipip  # noqa: E402
from kinns.testing import ClusterHandle, new_cluster_name  # noqa: E402

GOAL = "goal: user-space ipip >= 30% of VXLAN's throughput, latency < 2x VXLAN's"

ECHO = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 8080)); s.listen(64)
while True:
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (d := c.recv(4096)):
        c.sendall(d)
    c.close()
"""

# In cli: argv = ip, n; prints the n round-trip times in microseconds (JSON).
RR = r"""
import json, socket, sys, time
ip, n = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((ip, 8080), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg, out = b"x" * 64, []
for _ in range(n + 50):
    t = time.perf_counter()
    s.sendall(msg)
    got = 0
    while got < 64:
        got += len(s.recv(64 - got))
    out.append((time.perf_counter() - t) * 1e6)
print(json.dumps(out[50:]))
"""


def pod(name: str, node: str, command: list[str], iperf: bool = False) -> dict[str, Any]:
    containers = [{"name": "main", "image": "python:3", "command": command}]
    if iperf:
        containers.append({"name": "iperf", "image": "python:3", "command": ["iperf3", "-s", "-p", "5201"]})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": containers}}


class Overlay:
    """One cluster with srv and cli on different workers."""

    def __init__(self, label: str, root: Path, overlay: str, env: dict[str, str]) -> None:
        self.label, self.env = label, env
        self.c = ClusterHandle(new_cluster_name("bov"), root, ["--overlay", overlay, "--disable", "ingress"])
        self.mbps: list[float] = []
        self.rtt: list[float] = []
        self.srv_ip = ""

    def up(self) -> None:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)          # the daemon (and so the encapsulators) inherit it
        try:
            self.c.up()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        w1, w2 = f"{self.c.name}-worker", f"{self.c.name}-worker2"
        items = [pod("srv", w1, ["python3", "-c", ECHO], iperf=True),
                 pod("cli", w2, ["python3", "-c", "import time; time.sleep(1e9)"])]
        self.c.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        self.c.kubectl("wait", "--for=condition=Ready", "pod", "srv", "cli", "--timeout=180s", timeout=240)
        self.srv_ip = json.loads(self.c.kubectl("get", "pod", "srv", "-o", "json").stdout)["status"]["podIP"]

    def exec(self, *cmd: str, timeout: float = 120) -> str:
        return self.c.kubectl("exec", "cli", "-c", "main", "--", *cmd, timeout=timeout).stdout

    def throughput(self, seconds: int) -> None:
        out = json.loads(self.exec("iperf3", "-c", self.srv_ip, "-p", "5201", "-t", str(seconds), "-J"))
        self.mbps.append(out["end"]["sum_received"]["bits_per_second"] / 1e9)

    def latency(self, n: int) -> None:
        self.rtt += json.loads(self.exec("python3", "-c", RR, self.srv_ip, str(n)))

    def counters(self) -> list[str]:
        out = []
        for f in sorted((self.c.state_dir / "ipip").glob("*/counters.json")):
            out.append(f"{f.parent.name}: {f.read_text().strip()}")
        return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 seconds per round")
    ap.add_argument("--requests", type=int, default=3000, help="request/response pairs per round")
    ap.add_argument("--no-python", action="store_true", help="skip the Python encapsulator's cluster")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: kinns creates network namespaces")
    path = ipip.probe()
    compiled = (Path(sys.executable).parent / ipip.COMPILED).exists()
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-overlay-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    signal.signal(signal.SIGTERM, _terminate)
    runs = [Overlay("host-gw", root, "host-gw", {}), Overlay("vxlan", root, "vxlan", {})]
    if path == ipip.KERNEL:
        runs.append(Overlay("ipip (kernel)", root, "ipip", {}))
    else:
        runs.append(Overlay(f"ipip ({'compiled' if compiled else 'Python'} encapsulator)", root, "ipip",
                            {ipip.DATAPLANE_ENV: "compiled" if compiled else "python"}))
        if compiled and not args.no_python:
            runs.append(Overlay("ipip (Python encapsulator)", root, "ipip", {ipip.DATAPLANE_ENV: "python"}))
    try:
        t0 = time.time()
        for r in runs:
            r.up()
        print(f"{len(runs)} clusters up, pods ready in {time.time() - t0:.0f}s; ipip path here: {path}; {GOAL}",
              flush=True)
        for i in range(args.rounds):
            for r in runs:
                r.throughput(args.seconds)
                r.latency(args.requests)
            print(f"  round {i + 1}: " + " | ".join(f"{r.label} {r.mbps[-1]:.2f} Gbit/s" for r in runs), flush=True)
        vx = next(r for r in runs if r.label == "vxlan")
        vx_tp, vx_rtt = statistics.median(vx.mbps), statistics.median(vx.rtt)
        print(f"\n{'overlay':<32} {'Gbit/s (median)':>16} {'vs VXLAN':>9} {'RTT median us':>14} {'p99 us':>8} "
              f"{'vs VXLAN':>9}")
        for r in runs:
            tp, med = statistics.median(r.mbps), statistics.median(r.rtt)
            print(f"{r.label:<32} {tp:16.2f} {tp / vx_tp:8.0%} {med:14.0f} {pct(r.rtt, 0.99):8.0f} "
                  f"{med / vx_rtt:8.2f}x")
        for r in runs:
            for line in r.counters():
                print(f"  {r.label} counters {line}")
    finally:
        for r in runs:
            try:
                r.c.down()
            except AssertionError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt          # unwinds through main's finally: the clusters go down


if __name__ == "__main__":
    main()
