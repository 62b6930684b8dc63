"""NetworkPolicy benchmark: what 0, 100 and 1,000 policies cost a connection, and how fast a write lands.

Everything runs in a real cluster this script starts (`kinns up` under a
temporary KINNS_STATE_DIR, `kinns down` at the end, also after an error or
Ctrl-C), with the kube-network-policies agent on every node.  In namespace
`bench`:

* `srv` and `free` on the first worker: the same Python accept loop on
  8080 (accept, close) and `iperf3 -s` on 5201.  `srv` is the pod under
  test; `free` is selected by no policy, ever: the "no policy" control,
  measured in the same seconds as `srv` (these machines are shared and
  noisy, so every figure is taken beside its control, in interleaved
  bursts, and the ratio is what counts);
* `cli` on the second worker (cross-node, VXLAN) and `near` on the first
  (same node, bridged on cni0), both with label `role=client`;
* ten `decoy-<i>` pods spread over the workers, for policies to select.

Steps, at 0, 100 and 1,000 policies in force:

  spread     N-2 policies each select a decoy pod (allow ingress from
             pods of one label, in namespaces of another, on a port
             range), `isolate-srv` (selects `srv`, allows nothing) and
             `zz-allow-clients` (allows `role=client` into `srv` on 8080
             and 5201): the usual shape of a cluster, many applications
             with their own policies;
  on-server  (1,000 only) all N policies select `srv`; `zz-allow-clients`
             is the last by name, so a new connection walks all 1,000 policy
             chains before it is allowed: the worst case.

For each: TCP connect latency (a client process times `connect()` — the
SYN is what the policy rules judge — to `srv` and to `free`, in bursts of
--burst, alternating, --connects each; median and p99, microseconds),
throughput (`iperf3 -c` for --seconds, alternately to `srv` and `free`),
and the agent's last sync on `srv`'s node (rules, time).  Then the time
from a policy write to enforcement: a client probing `srv` every few
milliseconds while `zz-allow-clients` is deleted (time to the first refused
connect) and created again (time to the first accepted one), --writes
times each, with the N policies in force.

Goal (issue 11): connect latency and throughput within 10% of no policy
at 1,000 policies.  Needs root.  Usage:

  .venv/bin/python bench/netpol.py [--counts 0,100,1000] [--connects 2000] [--writes 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.testing import ClusterHandle, kubectl_binary, new_cluster_name, wait_for  # noqa: E402

NS = "bench"
DECOYS = 10
GOAL = "goal: connect latency and throughput at 1,000 policies within 10% of no policy"

SERVER = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 8080)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
"""

# In a client pod: argv = JSON {"targets": {name: ip}, "connects": n, "burst": b}; prints
# {name: [latencies in microseconds]}, bursts alternating between targets.
CONNECT = r"""
import json, socket, sys, time
cfg = json.loads(sys.argv[1])
out = {name: [] for name in cfg["targets"]}
names = sorted(cfg["targets"])
done = 0
while done < cfg["connects"]:
    for name in (names if (done // cfg["burst"]) % 2 == 0 else names[::-1]):
        ip = cfg["targets"][name]
        for _ in range(cfg["burst"]):
            s = socket.socket()
            s.settimeout(1)
            t = time.perf_counter()
            s.connect((ip, 8080))
            out[name].append((time.perf_counter() - t) * 1e6)
            s.close()
    done += cfg["burst"]
print(json.dumps(out))
"""

# In a client pod: connect to ip:8080 every `gap` seconds for `secs`; print [time, ok] changes.
WATCH = r"""
import json, socket, sys, time
ip, secs, gap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
last = None
print("ready", flush=True)
end = time.time() + secs
while time.time() < end:
    s = socket.socket(); s.settimeout(gap)
    t = time.time()
    try:
        s.connect((ip, 8080)); ok = True
    except OSError:
        ok = False
    s.close()
    if ok != last:
        print(json.dumps([t, ok]), flush=True)
        last = ok
    if ok:
        time.sleep(gap)
"""


def pod(name: str, node: str, labels: dict[str, str], command: list[str], iperf: bool = False) -> dict[str, Any]:
    containers = [{"name": "main", "image": "python:3", "command": command,
                   "ports": [{"name": "accept", "containerPort": 8080}]}]
    if iperf:
        containers.append({"name": "iperf", "image": "python:3", "command": ["iperf3", "-s", "-p", "5201"],
                           "ports": [{"name": "iperf", "containerPort": 5201}]})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": containers}}


def allow_clients() -> dict[str, Any]:
    return policy("zz-allow-clients", {"podSelector": {"matchLabels": {"app": "srv"}},
                                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                                                    "ports": [{"port": 8080}, {"port": 5201}]}]})


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def filler(i: int, on_server: bool) -> dict[str, Any]:
    """One of the N-1 other policies: a peer with both selectors, an ipBlock, a port range."""
    target = {"app": "srv"} if on_server else {"app": f"decoy-{i % DECOYS}"}
    return policy(f"p{i:04d}", {
        "podSelector": {"matchLabels": target},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"team": f"t{i}"}},
                               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}}},
                              {"ipBlock": {"cidr": f"172.{16 + i % 16}.0.0/16",
                                           "except": [f"172.{16 + i % 16}.{i % 250}.0/24"]}}],
                     "ports": [{"protocol": "TCP", "port": 9000 + i % 100, "endPort": 9100 + i % 100}]}]})


def kubectl_list(c: ClusterHandle, items: list[dict[str, Any]], verb: str = "apply") -> None:
    for i in range(0, len(items), 250):
        c.kubectl(verb, "-f", "-", timeout=300,
                  stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items[i:i + 250]}))


def exec_py(c: ClusterHandle, name: str, script: str, *args: str, timeout: float = 300) -> str:
    return c.kubectl("exec", "-n", NS, name, "-c", "main", "--", "python3", "-c", script, *args,
                     timeout=timeout).stdout


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Bench:
    def __init__(self, c: ClusterHandle, args: argparse.Namespace) -> None:
        self.c = c
        self.args = args
        self.ips: dict[str, str] = {}
        self.w1, self.w2 = f"{c.name}-worker", f"{c.name}-worker2"
        self.lines: list[str] = []

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def setup(self) -> None:
        sleep = ["python3", "-c", "import time; time.sleep(1e9)"]
        serve = ["python3", "-c", SERVER]
        items: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
        items += [pod("srv", self.w1, {"app": "srv"}, serve, iperf=True),
                  pod("free", self.w1, {"app": "free"}, serve, iperf=True),
                  pod("cli", self.w2, {"role": "client"}, sleep),
                  pod("near", self.w1, {"role": "client"}, sleep)]
        items += [pod(f"decoy-{i}", (self.w1, self.w2)[i % 2], {"app": f"decoy-{i}"}, serve) for i in range(DECOYS)]
        kubectl_list(self.c, items)
        names = [i["metadata"]["name"] for i in items[1:]]
        self.c.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod", *names, "--timeout=180s", timeout=240)
        for p in json.loads(self.c.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]:
            self.ips[p["metadata"]["name"]] = p["status"]["podIP"]

    def set_policies(self, n: int, on_server: bool) -> None:
        """Exactly the wanted policies in force, and the agent on srv's node done with them."""
        self.c.kubectl("delete", "networkpolicy", "--all", "-n", NS, "--wait=false", timeout=300)
        isolate = policy("isolate-srv", {"podSelector": {"matchLabels": {"app": "srv"}}})
        want = [filler(i, on_server) for i in range(max(0, n - 2))] + ([isolate, allow_clients()] if n else [])
        if want:
            kubectl_list(self.c, want)
        expect = sum(1 for p in want if on_server or not p["metadata"]["name"].startswith("p")
                     or int(p["metadata"]["name"][1:]) % 2 == 0)      # decoys on w1: even ones
        wait_for(lambda: self.policy_chains(self.w1) == expect, timeout=300, interval=1)
        time.sleep(2)

    def nft(self, node: str) -> str:
        return self.c.cli("exec", "--name", self.c.name, f"node/{node}", "--", "nft", "list", "table", "inet",
                          "kinns-network-policies", check=False).stdout

    def policy_chains(self, node: str) -> int:
        return len(re.findall(r"^\s*chain policy-ingress-", self.nft(node), re.M))

    def agent_sync(self, node: str) -> str:
        pods = json.loads(self.c.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-network-policies",
                                         "-o", "json").stdout)["items"]
        name = next(p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == node)
        logs = self.c.kubectl("logs", "-n", "kube-system", name).stdout
        syncs = [l for l in logs.splitlines() if "Syncing nftables rules" in l]
        if not syncs:
            return "no sync"
        kv = dict(re.findall(r'(\w+)="?([^" ]+)"?', syncs[-1].split("]", 1)[1]))
        return f"{kv.get('rules', '?')} rules in {kv.get('chains', '?')} chains, last sync {kv.get('elapsed', '?')}"

    def latency(self, client: str) -> dict[str, list[float]]:
        cfg = {"targets": {"srv": self.ips["srv"], "free": self.ips["free"]}, "connects": self.args.connects,
               "burst": self.args.burst}
        out: dict[str, list[float]] = json.loads(exec_py(self.c, client, CONNECT, json.dumps(cfg)))
        return out

    def iperf(self, target: str) -> float:
        r = self.c.kubectl("exec", "-n", NS, "cli", "-c", "main", "--", "iperf3", "-c", self.ips[target], "-p", "5201",
                           "-t", str(self.args.seconds), "-J", timeout=120)
        bps: float = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]
        return bps / 1e9

    def measure(self, label: str) -> None:
        for client, where in (("cli", "cross-node"), ("near", "same node")):
            lat = self.latency(client)
            s, f = lat["srv"], lat["free"]
            ms, mf = statistics.median(s), statistics.median(f)
            self.say(f"  {label:<22} connect {where:<10}: srv p50 {ms:6.0f} p99 {pct(s, .99):6.0f} µs | "
                     f"free p50 {mf:6.0f} p99 {pct(f, .99):6.0f} µs | srv/free p50 {ms / mf:5.2f} "
                     f"p99 {pct(s, .99) / pct(f, .99):5.2f}")
        rates: dict[str, list[float]] = {"srv": [], "free": []}
        for r in range(self.args.rounds):
            for t in (("srv", "free") if r % 2 == 0 else ("free", "srv")):
                rates[t].append(self.iperf(t))
        a, b = statistics.median(rates["srv"]), statistics.median(rates["free"])
        self.say(f"  {label:<22} iperf3 cross-node    : srv {a:5.2f} Gbit/s | free {b:5.2f} Gbit/s | srv/free {a / b:5.2f}")
        self.say(f"  {label:<22} agent on srv's node  : {self.agent_sync(self.w1)}")

    def write_to_enforcement(self, label: str) -> None:
        """Delete allow-clients (→ refused) and create it again (→ accepted), timing each from the write."""
        deny, allow = [], []
        secs = self.args.writes * 2 * 4 + 10
        proc = subprocess.Popen([kubectl_binary("1.32"), "--kubeconfig", str(self.c.kubeconfig), "exec", "-n", NS, "cli", "-c",
                                 "main", "--", "python3", "-c", WATCH, self.ips["srv"], str(secs), "0.02"],
                                stdout=subprocess.PIPE, text=True)
        events: list[tuple[float, bool]] = []
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("ready"):
                    ready.set()
                elif line.startswith("["):
                    t, ok = json.loads(line)
                    events.append((t, ok))
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ready.wait(30)
        time.sleep(1)

        def first(after: float, ok: bool) -> float:
            hit = wait_for(lambda: next((t for t, o in events if t > after and o == ok), None), timeout=15,
                           interval=0.01)
            return float(hit) - after
        try:
            for _ in range(self.args.writes):
                t = time.time()
                self.c.kubectl("delete", "networkpolicy", "-n", NS, "zz-allow-clients")
                deny.append(first(t, False))
                time.sleep(1)
                t = time.time()
                self.c.kubectl("create", "-f", "-", stdin=json.dumps(allow_clients()))
                allow.append(first(t, True))
                time.sleep(1)
        finally:
            proc.kill()
        self.say(f"  {label:<22} write → enforced     : deny median {statistics.median(deny) * 1000:5.0f} ms "
                 f"max {max(deny) * 1000:5.0f} ms | allow median {statistics.median(allow) * 1000:5.0f} ms "
                 f"max {max(allow) * 1000:5.0f} ms (n={len(deny)}; includes kubectl)")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--counts", default="0,100,1000")
    ap.add_argument("--connects", type=int, default=3000, help="connects per target per client")
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 seconds per run")
    ap.add_argument("--rounds", type=int, default=2, help="iperf3 runs per target")
    ap.add_argument("--writes", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: kinns creates network namespaces")
    counts = [int(x) for x in args.counts.split(",") if x]
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-netpol-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    c = ClusterHandle(new_cluster_name("bnp"), root)
    signal.signal(signal.SIGTERM, _terminate)
    t0 = time.time()
    c.up()
    try:
        b = Bench(c, args)
        b.setup()
        b.say(f"cluster {c.name} up, pods ready in {time.time() - t0:.0f}s; {GOAL}")
        for n in counts:
            b.set_policies(n, on_server=False)
            b.measure(f"{n} policies")
            if n:
                b.write_to_enforcement(f"{n} policies")
        if max(counts) >= 100:
            n = max(counts)
            b.set_policies(n, on_server=True)
            b.measure(f"{n} on srv")
            b.write_to_enforcement(f"{n} on srv")
    finally:
        if not args.keep:
            c.down()
            shutil.rmtree(root, ignore_errors=True)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt          # unwinds through main's finally: the cluster goes down


if __name__ == "__main__":
    main()
