"""`kinns trace` benchmark: how long one trace takes, beside the plain ways of asking the same question.

Starts its own cluster (3 nodes, VXLAN, nftables kube-proxy, no ingress
controller) under a temporary KINNS_STATE_DIR and removes it at the end
(also after an error or Ctrl-C).  Deploys `web` (2 agnhost netexec pods),
Service `web` and a busybox `client` pod, then times, in interleaved
rounds so a noisy machine hits all of them alike:

  trace (in-process)  kinns.trace.run(cfg, "pod/client", "svc/web"): plan,
                      arm every node, probe, read the kernels, clean up;
  trace (CLI)         `kinns trace pod/client svc/web -o json`, a new process;
  kinns exec wget     `kinns exec pod/client -- wget -qO- http://web/`: the
                      same destination from the same source, no trace (the peer);
  kubectl exec wget   `kubectl exec client -- wget ...`: the naive way through the API.

Prints the median and p90 of each (seconds) and the trace's ratio to the
peers.  Goal (issue 12): a trace under 1 s.  Needs root.  Usage:

  .venv/bin/python bench/trace.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kinns.testing import ClusterHandle, new_cluster_name, wait_for  # noqa: E402

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
OBJECTS = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "agnhost", "image": AGNHOST,
                                                    "args": ["netexec", "--http-port=8080"]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
     "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "100000"]}]}},
]


def _timed(fn: Callable[[], bool]) -> float:
    t0 = time.perf_counter()
    if not fn():
        raise RuntimeError("a timed step failed")
    return time.perf_counter() - t0


def _stats(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):.3f} s  p90 {xs[int(0.9 * (len(xs) - 1))]:.3f} s  (n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-trace-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    c = ClusterHandle(new_cluster_name("bt"), root, ["--disable", "ingress"])
    print(f"kinns up {c.name} ...", flush=True)
    c.up()
    try:
        for obj in OBJECTS:
            c.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
        wait_for(lambda: c.kubectl("get", "pods", "-o", "jsonpath={.items[*].status.containerStatuses[*].ready}")
                 .stdout.split().count("true") == 3, timeout=120)
        from kinns.cluster.config import ClusterConfig
        from kinns.trace import run
        cfg = ClusterConfig.load(c.name)
        assert cfg is not None
        env = c.env()
        kinns = [sys.executable, "-m", "kinns.cli"]
        wget = ["wget", "-qO-", "-T", "5", "http://web/"]

        def in_process() -> bool:
            return bool(run(cfg, "pod/client", "svc/web")["ok"])

        def cli() -> bool:
            r = subprocess.run([*kinns, "trace", "--name", c.name, "pod/client", "svc/web", "-o", "json"],
                               env=env, capture_output=True, text=True)
            return r.returncode == 0

        def kinns_exec() -> bool:
            r = subprocess.run([*kinns, "exec", "--name", c.name, "pod/client", "--", *wget], env=env,
                               capture_output=True, text=True)
            return r.returncode == 0

        def kubectl_exec() -> bool:
            return c.kubectl("exec", "client", "--", *wget, check=False).returncode == 0

        cases = {"trace (in-process)": in_process, "trace (CLI)": cli, "kinns exec wget": kinns_exec,
                 "kubectl exec wget": kubectl_exec}
        for fn in cases.values():     # warm caches (imports, TLS, page cache) once
            fn()
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                times[name].append(_timed(fn))
        print(f"\n{args.rounds} rounds, pod/client -> svc/web (3 nodes, VXLAN, nftables), seconds:")
        for name, xs in times.items():
            print(f"  {name:<20} {_stats(xs)}")
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\n  trace CLI / kinns exec wget   = {med['trace (CLI)'] / med['kinns exec wget']:.2f}x")
        print(f"  trace CLI / kubectl exec wget = {med['trace (CLI)'] / med['kubectl exec wget']:.2f}x")
        goal = "met" if med["trace (CLI)"] < 1.0 else "NOT met"
        print(f"  goal (a trace under 1 s): {goal}")
    finally:
        c.down()


if __name__ == "__main__":
    main()
