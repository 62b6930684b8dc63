"""Benchmark: start N idle nginx-like pods with the kinns runtime; print the
start rate (to Ready = a TCP probe on port 80 answers) and memory (PSS) per pod.

Each pod gets its own network namespace, created before the clock starts
(that is the network plugin's work, measured elsewhere), so every pod
listens on port 80 as in a cluster.  PSS is summed from
/proc/<pid>/smaps_rollup over every process in the runtime's cgroups plus
the zygote, whose cost is shared by all pods.

    sudo .venv/bin/python bench/runtime_mem.py -n 200
"""

from __future__ import annotations

import argparse
import ctypes
import socket
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinns.node.runtime import Runtime, cleanup  # noqa: E402
from kinns.node.sandbox import create_sandbox  # noqa: E402


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def tcp_ready(netns: str, port: int, timeout: float = 30) -> bool:
    """A TCP readiness probe from inside the pod's network namespace: this
    thread enters it (setns is per thread), connects, and comes back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(netns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.002)
        return False
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(fd)
        os.close(home)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200, help="pods")
    ap.add_argument("--workers", type=int, default=8, help="threads calling the runtime, as pod workers")
    ap.add_argument("--image", default="nginx:1.25",
                    help="nginx:1.25 (busybox httpd) or registry.k8s.io/e2e-test-images/agnhost:2.47 (netexec "
                         "forked from the zygote)")
    ap.add_argument("--idle", type=float, default=2.0, help="seconds to settle before measuring memory")
    a = ap.parse_args()
    tag = f"kinns-rtbench{os.getpid() % 10000}"
    names = [f"{tag}-{i}" for i in range(a.n)]
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names), text=True, check=True)
    for n in names:
        subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
    try:
        run(a, names)
    finally:
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in names), text=True)


def run(a: argparse.Namespace, names: list[str]) -> None:
    state = Path(tempfile.mkdtemp(prefix="kinns-rtbench-"))
    rt = Runtime(state)
    try:
        def start_pod(i: int) -> int:
            pod = {"metadata": {"name": f"web-{i}", "namespace": "default", "uid": str(uuid.uuid4())}, "spec": {}}
            sb = create_sandbox(state, pod, netns=f"/run/netns/{names[i]}", pod_ip="127.0.0.1")
            c: dict = {"name": "web", "image": a.image, "ports": [{"containerPort": 80}]}
            if "agnhost" in a.image:
                c["args"] = ["netexec", "--http-port=80", "--udp-port=81"]
            st = rt.start_container(sb, c)
            assert st.state == "running", st
            assert tcp_ready(sb.netns or "", 80)
            return st.pid

        t0 = time.monotonic()
        with ThreadPoolExecutor(a.workers) as pool:  # like a kubelet's pod workers
            pids = list(pool.map(start_pod, range(a.n)))
        t_ready = time.monotonic() - t0
        check = subprocess.run(["ip", "netns", "exec", names[-1], "curl", "-s", "http://127.0.0.1/"],
                               capture_output=True, text=True).stdout.strip()
        time.sleep(a.idle)
        procs = rt.cgroups.pids()
        containers_kb = sum(pss_kb(p) for p in procs)
        zygote_kb = pss_kb(rt._zygote.pid)
        total = containers_kb + zygote_kb
        print(f"pods: {a.n} ({a.image})  processes: {len(procs)}  answer of last pod: {check!r}")
        print(f"all Ready (TCP probe answered) after {t_ready:.2f}s  rate: {a.n / t_ready:.0f} pods/s to Ready")
        print(f"PSS total: {total / 1024:.1f} MiB (containers {containers_kb / 1024:.1f} MiB, "
              f"zygote {zygote_kb / 1024:.1f} MiB)  per pod: {total / a.n:.0f} KiB "
              f"(containers only {containers_kb / a.n:.0f} KiB)")
    finally:
        rt.close()
        cleanup(state)
        subprocess.run(["rm", "-rf", str(state)])


if __name__ == "__main__":
    main()
