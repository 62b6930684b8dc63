"""Pod network set-up rate: kinns' in-process add_pod vs the reference plugins.

One run, one fabric, two nodes: pods on node 0 are attached with
`kinns.net.pod_network.add_pod` (what the kubelet calls), pods on node 1 by
exec'ing Debian's reference `bridge` plugin (which execs `host-local`) with
the same configuration, exactly as a CNI runtime would.  Pod namespaces are
created before the clock starts for both.  Also times the `kinns-cni`
executable (a Python process per pod) so the cost of exec is visible, then
DEL for each.  The issue's goal: at least 5x the reference plugins' rate.
Usage:
  .venv/bin/python bench/net_setup.py [--pods 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.net import cleanup, desired, fabric, netns, overlay, pod_network

REF = "/usr/lib/cni/bridge"


def free_subnet() -> str:
    routes = fabric.host_routes()
    for x in range(240, 255):
        cand = f"172.31.{x}.0/24"
        if not desired.overlaps(cand, routes):
            return cand
    raise SystemExit("no free 172.31.240-254.0/24 for the bench fabric")


def exec_plugin(node_ns: str, cmd: list[str], command: str, cid: str, pod: str, conf: str) -> None:
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": netns.path(pod), "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    # the child inherits this thread's namespace: no extra `ip netns exec`
    with netns.entered(node_ns):
        r = subprocess.run(cmd, input=conf, env=env, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} {command} failed: {r.stdout}{r.stderr}")


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} pods/s  ({seconds / n * 1000:6.2f} ms/pod)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--exec-pods", type=int, default=40, help="pods for the exec'd kinns-cni run")
    args = ap.parse_args()
    n = args.pods
    if not 0 < n <= 250:
        raise SystemExit("--pods must be 1..250 (one node's /24)")
    cluster = f"bench{os.getpid() % 10000}"
    tmp = Path(tempfile.mkdtemp(prefix="kinns-net-bench-"))
    try:
        nodes = fabric.Fabric.create(cluster, free_subnet(), 3)
        ours_node, ref_node, exec_node = nodes
        overlay.setup_node(ours_node, nodes, "vxlan")
        pods = {k: [desired.pod_netns(cluster, f"{k}{i}") for i in range(cnt)]
                for k, cnt in (("o", n), ("r", n), ("x", args.exec_pods))}
        for names in pods.values():
            for p in names:
                netns.create(p)

        conf = json.dumps({"cniVersion": "1.0.0", "name": "kinns", "type": "bridge", "bridge": "cni0",
                           "isGateway": True, "hairpinMode": True, "mtu": 1450,
                           "ipam": {"type": "host-local", "subnet": ref_node.pod_cidr,
                                    "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp / "ref")}})
        # Rounds alternate between ours and the reference so that load from
        # anything else on the machine hits both alike.
        rounds = [range(k, n, 4) for k in range(4)]
        ours_add = ours_del = ref_add = ref_del = 0.0
        ips: list[str] = []
        for rnd in rounds:
            t = time.perf_counter()
            ips += [pod_network.add_pod(ours_node, pods["o"][i], f"o{i}", state_dir=tmp,
                                        mode="vxlan")["ips"][0]["address"] for i in rnd]
            ours_add += time.perf_counter() - t
            t = time.perf_counter()
            for i in rnd:
                exec_plugin(ref_node.netns, [REF], "ADD", f"r{i}", pods["r"][i], conf)
            ref_add += time.perf_counter() - t
        assert len(set(ips)) == n
        for rnd in rounds:
            t = time.perf_counter()
            for i in rnd:
                pod_network.del_pod(ours_node, pods["o"][i], f"o{i}", state_dir=tmp, mode="vxlan")
            ours_del += time.perf_counter() - t
            t = time.perf_counter()
            for i in rnd:
                exec_plugin(ref_node.netns, [REF], "DEL", f"r{i}", pods["r"][i], conf)
            ref_del += time.perf_counter() - t

        # kinns-cni exec'd per pod (same config as the reference)
        xconf = json.loads(conf)
        xconf["ipam"].update(subnet=exec_node.pod_cidr, dataDir=str(tmp / "exec"))
        ours_exec = [sys.executable, "-m", "kinns.net.cni_plugin"]
        t = time.perf_counter()
        for i, p in enumerate(pods["x"]):
            exec_plugin(exec_node.netns, ours_exec, "ADD", f"x{i}", p, json.dumps(xconf))
        exec_add = time.perf_counter() - t

        # last, as the kernel frees these namespaces in the background:
        # the kubelet's whole-sandbox calls (namespace create + attach, release + drop)
        t = time.perf_counter()
        for i in range(n):
            pod_network.setup_pod(ours_node, f"uid{i}", state_dir=tmp, mode="vxlan")
        sb_add = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(n):
            pod_network.teardown_pod(ours_node, f"uid{i}", state_dir=tmp, mode="vxlan")
        sb_del = time.perf_counter() - t

        print(f"pod network set-up, {n} pods per plugin (pod namespaces made beforehand)")
        print(f"  kinns add_pod (in-process)      ADD {rate(n, ours_add)}   DEL {rate(n, ours_del)}")
        print(f"  kinns setup_pod/teardown_pod    ADD {rate(n, sb_add)}   DEL {rate(n, sb_del)}"
              "  (incl. netns create/delete)")
        print(f"  reference bridge+host-local     ADD {rate(n, ref_add)}   DEL {rate(n, ref_del)}")
        print(f"  kinns-cni exec'd ({args.exec_pods} pods)       ADD {rate(args.exec_pods, exec_add)}")
        print(f"  speed-up in-process vs reference: ADD {ref_add / ours_add:.1f}x, DEL {ref_del / ours_del:.1f}x"
              f"  (goal: >= 5x)")
    finally:
        cleanup.teardown(cluster)
        shutil.rmtree(tmp, ignore_errors=True)
        left = cleanup.leftovers(cluster)
        if left:
            print("LEFT BEHIND:", left, file=sys.stderr)


if __name__ == "__main__":
    main()
