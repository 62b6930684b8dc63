"""Pod benchmark: pod start rate, CPU and memory of every kinns process, faults.

What a user of kinns waits for and pays for is pods: how long `kinns up`
takes, how fast a big Deployment becomes Ready, what each of the cluster's
processes costs meanwhile and once idle, and how fast the cluster heals.
This benchmark measures those end to end on real clusters (the `kinns` CLI,
kubectl, the HTTPS API), in one run, and prints each figure beside its goal
(issue 9) and a peer's where one is known (kind, k3s, upstream defaults):

  1. `kinns up --nodes 3`: wall-clock of the CLI, then until
     `kubectl get nodes` shows every Node Ready;
  2. `kubectl apply` of a 300-replica Deployment (image `nginx`, which kinns
     runs as busybox httpd; then agnhost `netexec`, a built-in server forked
     from the zygote) until status.readyReplicas / availableReplicas reach
     300; a pod watch gives the timeline (created, scheduled, Running,
     Ready) that says which stage is slow;
  3. CPU during that rollout, per process: utime+stime from /proc/<pid>/stat
     of the daemon and each node's kubelet and container runtime (zygote),
     and `cpu.stat` of each pod's cgroup for the control-plane static pods,
     kube-proxy, CoreDNS and the Deployment's containers (one line), as CPU
     seconds and % of one core; their sum as % of all cores, and the
     machine's load per core beside it (other work on the machine included):
     are both cores busy, and with what?
  4. memory: PSS (/proc/<pid>/smaps_rollup) of EVERY kinns process of the
     cluster (daemon, kubelets, zygotes, control-plane pods, kube-proxy,
     CoreDNS, containers), per kind of process and per pod;
  5. with the 300 agnhost pods running: a worker's kubelet SIGKILLed, until
     a new one runs and has reconciled (its Lease renewed, its network
     ready, its pods Ready with the same containers and restartCount, no
     container process lost); kube-apiserver SIGKILLed, until `/readyz`
     answers on the host port; `kinns stop`, then `kinns start` until all
     300 pods are Ready again in new containers;
  6. node failure, on a second 3-node cluster with
     `--node-monitor-grace-period 10s`: a Deployment whose pods tolerate
     `unreachable` for 5 s, `kinns node stop` of a worker, until the Node is
     Unknown, tainted, its pods evicted and their replacements Ready
     (expected: grace + tolerationSeconds after its last heartbeat); then
     `kinns node start` until it is Ready and untainted;
  7. pod network set-up rate, kinns vs the reference CNI plugins
     (bridge + host-local): `bench/net_setup.py` run as a subprocess;
  8. with `--scale`: `kinns up --nodes 50` and a 2,000-replica nginx
     Deployment (time to Ready, CPU, PSS total and per pod).

Every cluster lives under a temporary KINNS_STATE_DIR and KUBECONFIG (the
user's ~/.kube/config is never touched) and is removed with `kinns down`,
then checked for leftovers.  WARNING/ERROR lines of the daemon log, the
kubelet logs and the control-plane containers' logs are summarised at the
end.  Usage:

  .venv/bin/python bench/pods.py [--replicas 300] [--scale | --scale-only]
                                 [--no-faults] [--net-pods 200]
                                 [--py-spy DIR] [--keep-logs DIR]

The Deployments tolerate the control-plane taint: with the kubelet's
default maxPods of 110, three nodes of which one is tainted hold only 220
pods.  `--py-spy DIR` records the control-plane processes and kubelets
during each rollout (raw collapsed stacks, one file per process).  Figures
from a shared machine are noisy: the per-core load line says how much of
the machine other work took.
"""

from __future__ import annotations

import argparse
import datetime as dt
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kinns.node.cgroups import Cgroups  # noqa: E402
from kinns.testing import ClusterHandle, find_leaks, kubectl_binary, new_cluster_name  # noqa: E402
from clusterlogs import log_files, log_summary  # noqa: E402 - bench/ is the script's directory

CLK_TCK = os.sysconf("SC_CLK_TCK")

NS = "bench"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
# Each node takes 110 pods (the kubelet's default maxPods) and the control
# plane is tainted NoSchedule: without this toleration 3 nodes hold only
# 2 x 110 = 220 pods, and 80 of 300 replicas would stay Pending for good.
TOLERATE_CP = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]

PEER_UP = "kind 1-node create 12.5-17.1 s (kind#2893)"
PEER_SCALE = "kind fails to join > 5-10 nodes (kind#1945, #2491)"
PEER_MEM = "k3s agent 275 MB; k3d agent 138 MiB, server 465 MiB"
PEER_KUBELET = "kind: kubelet.service Restart=always, RestartSec=1s"
PEER_NODE_FAIL = "upstream defaults: 50 s grace + 300 s tolerationSeconds"
GOAL_RATE = ">= 100 pods/s on 2 cores"
GOAL_MEM = "<= 3 MB PSS/pod at 50 nodes, 2,000 pods"

# What a pod's name says about the kind of process it is (kube-system pods).
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SYSTEM_PODS = ("kube-proxy", "coredns")
# The node failure run: upstream's arithmetic with short numbers.
GRACE_S = 10
TOLERATION_S = 5


# --------------------------------------------------------------- helpers

@dataclass
class Row:
    measure: str
    value: str
    goal: str = "-"
    peer: str = "-"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, value: str, goal: str = "-", peer: str = "-") -> None:
        self.rows.append(Row(measure, value, goal, peer))
        print(f"  · {measure}: {value}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  ! {text}", flush=True)

    def print(self) -> None:
        cols = ("measure", "kinns", "goal", "peer")
        w = [max(len(cols[i]), *(len(getattr(r, f)) for r in self.rows))
             for i, f in enumerate(("measure", "value", "goal", "peer"))]
        line = "  ".join("-" * x for x in w)
        print()
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(cols)))
        print(line)
        for r in self.rows:
            print(f"{r.measure.ljust(w[0])}  {r.value.rjust(w[1])}  {r.goal.ljust(w[2])}  {r.peer}")
        print(line)
        for n in self.notes:
            print(f"note: {n}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def alive(pid: int, needle: bytes = b"") -> bool:
    """`pid` runs (not a zombie) and its command line carries `needle`."""
    if pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and (not needle or any(needle in a for a in cmdline(pid)))


def fmt_mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))] if xs else float("nan")


def ssl_ctx(c: ClusterHandle) -> ssl.SSLContext:
    pki = c.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def api_json(c: ClusterHandle, path: str) -> Any:
    """GET through the API; None while it does not answer (it may be down on purpose)."""
    try:
        r = c.http("GET", path)
    except OSError:
        return None
    return r.json() if r.status == 200 else None


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> float | None:
    """The perf_counter() moment `pred()` was first seen truthy, or None after `timeout`."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if pred():
            return time.perf_counter()
        time.sleep(interval)
    return None


def parse_time(ts: str) -> float:
    """An RFC 3339 time from the API (with or without microseconds) as a Unix time."""
    for f in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return dt.datetime.strptime(ts, f).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            pass
    return 0.0


def is_ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def container_ids(pod: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """(containerID, restartCount) of each container: changes when one was started again."""
    return tuple((s.get("containerID", ""), s.get("restartCount", 0))
                 for s in (pod.get("status") or {}).get("containerStatuses") or [])


def pods_of(c: ClusterHandle, selector: str = "") -> list[dict[str, Any]] | None:
    data = api_json(c, f"/api/v1/namespaces/{NS}/pods" + (f"?{selector}" if selector else ""))
    return None if data is None else list(data["items"])


# --------------------------------------------------------------- the cluster's processes

def proc_times(pid: int) -> tuple[float, float]:
    """(utime+stime, cutime+cstime) of a process in seconds, from /proc/<pid>/stat."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0, 0.0
    # f[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return (int(f[11]) + int(f[12])) / CLK_TCK, (int(f[13]) + int(f[14])) / CLK_TCK


def start_ticks(pid: int) -> int:
    """When a process started (field 22 of /proc/<pid>/stat)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 1 << 62


def pod_kind(ns: str, name: str) -> str:
    """The kind of process a pod is: a control-plane component, kube-proxy, CoreDNS, or a workload."""
    if ns == "kube-system":
        for kind in CONTROL_PLANE + SYSTEM_PODS:
            if name.startswith(kind + "-"):
                return kind
        return "kube-system pods"
    return "bench pods" if ns == NS else "other pods"


@dataclass
class PodCgroup:
    """One pod's cgroup on a node: its containers' processes and CPU time."""
    kind: str
    node: str
    pod: str            # namespace/name
    path: Path

    def pids(self) -> set[int]:
        out: set[int] = set()
        for dirpath, _dirs, _files in os.walk(self.path):
            try:
                out.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return out

    def cpu_s(self) -> float:
        """CPU seconds of every process the pod ever ran (cgroup v2 `cpu.stat` has it
        without the cpu controller), else of those running now."""
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except OSError:
            pass
        return sum(proc_times(p)[0] for p in self.pids())


@dataclass(frozen=True)
class Proc:
    kind: str           # daemon | kubelet | container-runtime | other: <what>
    node: str
    pid: int


@dataclass
class ClusterProcs:
    """Every process of one cluster, by kind.

    Outside the containers' cgroup: the cluster daemon (the nodes'
    "systemd"), each node's kubelet and container runtime (zygote), found
    from their pid files, and anything else that runs from the cluster's
    state directory or descends from those (helpers).  Inside cgroup
    `kinns/<cluster>/<node>/pod<uid>`: every container, the control plane's
    static pods included; the kubelet's pod directories
    (`<ns>_<name>_<uid>`) name the pod of each cgroup.
    """
    procs: list[Proc]
    pods: list[PodCgroup]

    @classmethod
    def find(cls, c: ClusterHandle) -> "ClusterProcs":
        st = c.state_dir
        nodes = sorted(p.name for p in (st / "kubelet").iterdir() if p.is_dir()) if (st / "kubelet").is_dir() else []
        procs: list[Proc] = []
        daemon = read_pid(st / "daemon.pid")
        if alive(daemon, b"kinns.cluster.daemon"):
            procs.append(Proc("daemon", "", daemon))
        for n in nodes:
            kubelet = read_pid(st / "kubelet" / n / "kubelet.pid")
            if alive(kubelet, b"kinns.node"):
                procs.append(Proc("kubelet", n, kubelet))
            zygote = read_pid(st / "runtime" / n / "zygote.pid")
            if alive(zygote, b"kinns.node.zygote"):
                procs.append(Proc("container-runtime", n, zygote))
        pods = cls._pod_cgroups(c, nodes)
        known = {p.pid for p in procs} | {pid for g in pods for pid in g.pids()}
        return cls(procs + cls._others(c, {p.pid for p in procs}, known), pods)

    @staticmethod
    def _pod_cgroups(c: ClusterHandle, nodes: list[str]) -> list[PodCgroup]:
        bases = Cgroups(f"kinns/{c.name}").dirs("")   # the v2 (tracking) hierarchy first
        if not bases:
            return []
        out = []
        for n in nodes:
            names: dict[str, tuple[str, str]] = {}
            try:
                for entry in os.listdir(c.state_dir / "kubelet" / n / "pods"):
                    parts = entry.split("_")
                    if len(parts) == 3:
                        names[parts[2]] = (parts[0], parts[1])
            except OSError:
                pass
            try:
                dirs = sorted(d for d in (bases[0] / n).iterdir() if d.is_dir() and d.name.startswith("pod"))
            except OSError:
                continue
            for d in dirs:
                ns, name = names.get(d.name[3:], ("?", d.name))
                out.append(PodCgroup(pod_kind(ns, name), n, f"{ns}/{name}", d))
        return out

    @staticmethod
    def _others(c: ClusterHandle, roots: set[int], known: set[int]) -> list[Proc]:
        """Processes run from the state directory or below a root, not yet counted."""
        marker = (str(c.state_dir) + "/").encode()
        parent: dict[int, int] = {}
        args: dict[int, list[bytes]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                parent[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            args[pid] = cmdline(pid)
        out = []
        for pid, argv in args.items():
            if pid in known or not argv or not argv[0]:
                continue
            tool = os.path.basename(argv[0].decode(errors="replace"))
            if tool.startswith(("kubectl", "py-spy")):
                continue   # ours, not the cluster's
            up, hops = parent.get(pid, 0), 0
            while up > 1 and up not in roots and hops < 64:
                up, hops = parent.get(up, 0), hops + 1
            if up in roots or any(marker in a for a in argv):
                what = argv[argv.index(b"-m") + 1].decode() if b"-m" in argv[:-1] else tool
                out.append(Proc(f"other: {what}", "", pid))
        return out

    def by_kind(self) -> dict[str, list[int]]:
        """kind -> pids, processes first, then pods' containers."""
        out: dict[str, list[int]] = {}
        for p in self.procs:
            out.setdefault(p.kind, []).append(p.pid)
        for g in self.pods:
            out.setdefault(g.kind, []).extend(g.pids())
        return out

    def pod_count(self, kind: str) -> int:
        return sum(1 for g in self.pods if g.kind == kind)

    def main_pid(self, kind: str) -> int:
        """The first-started live process of a pod kind (a static pod's component process)."""
        pids = [p for g in self.pods if g.kind == kind for p in g.pids() if alive(p)]
        return min(pids, key=start_ticks, default=0)


# --------------------------------------------------------------- CPU

def core_jiffies() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each core from /proc/stat (every process on the machine)."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)
            total = sum(v[:8])
            out.append((total - idle, total))
    return out


@dataclass
class CpuSample:
    """CPU seconds of every process of the cluster, and the machine's jiffies, at one moment."""
    at: float
    procs: dict[Proc, tuple[float, float]]         # own, reaped children
    pods: dict[Path, tuple[str, float]]            # pod cgroup -> kind, seconds
    cores: list[tuple[int, int]]

    @classmethod
    def take(cls, c: ClusterHandle) -> "CpuSample":
        cp = ClusterProcs.find(c)
        return cls(time.perf_counter(), {p: proc_times(p.pid) for p in cp.procs},
                   {g.path: (g.kind, g.cpu_s()) for g in cp.pods}, core_jiffies())


def report_cpu(report: Report, label: str, a: CpuSample, b: CpuSample) -> None:
    """CPU each kind of process used between two samples: seconds, % of one core; the sum
    as % of all cores; and how busy each core of the machine was (other work included)."""
    wall = b.at - a.at
    lines: dict[str, float] = {}
    helpers = 0.0
    label_prefix = os.path.commonprefix([q.node for q in b.procs if q.node])
    label_prefix = label_prefix[:label_prefix.rfind("-") + 1]     # "<cluster>-": show "worker2"
    for p, (own, reaped) in b.procs.items():
        own0, reaped0 = a.procs.get(p, (0.0, 0.0))      # a process started meanwhile counts from 0
        per_node = p.kind in ("kubelet", "container-runtime") and len({q.node for q in b.procs}) <= 4
        name = f"{p.kind} {p.node.removeprefix(label_prefix)}" if per_node else p.kind
        lines[name] = lines.get(name, 0.0) + own - own0
        if p.kind in ("daemon", "kubelet"):    # a zygote's reaped children are containers, counted by cgroup
            helpers += reaped - reaped0
    counts: collections.Counter[str] = collections.Counter(kind for kind, _ in b.pods.values())
    for path, (kind, used) in b.pods.items():
        name = kind if kind in CONTROL_PLANE else f"{kind} ({counts[kind]} pods' cgroups)"
        lines[name] = lines.get(name, 0.0) + used - a.pods.get(path, (kind, 0.0))[1]
    if helpers > 0.005:
        lines["helpers reaped by daemon/kubelets"] = helpers
    for name, used in sorted(lines.items(), key=lambda kv: -kv[1]):
        report.add(f"{label} cpu: {name}", f"{used:.2f} s, {100 * used / wall:.0f}% of a core")
    total = sum(lines.values())
    cores = len(b.cores)
    report.add(f"{label} cpu: all kinns processes, {wall:.2f} s window",
               f"{total:.2f} s, {100 * total / wall / cores:.0f}% of {cores} cores", "both cores busy")
    load = [100 * (bb - ab) / max(bt - at, 1) for (ab, at), (bb, bt) in zip(a.cores, b.cores)]
    report.add(f"{label} cpu: machine per core (all processes)", ", ".join(f"{x:.0f}%" for x in load))


# --------------------------------------------------------------- cluster up

def cluster_up(c: ClusterHandle, nodes: int, overlay: str, wait: float, report: Report, label: str,
               extra: list[str] | None = None) -> bool:
    """`kinns up`, timed; then poll `kubectl get nodes` until all Ready."""
    log(f"kinns up --name {c.name} --nodes {nodes} --overlay {overlay} {' '.join(extra or [])}")
    t0 = time.perf_counter()
    r = c.cli("up", "--name", c.name, "--nodes", str(nodes), "--overlay", overlay, "--wait", str(wait),
              *(extra or []), check=False, timeout=wait + 60)
    t_cli = time.perf_counter() - t0
    if r.returncode != 0:
        report.add(f"{label}: kinns up --nodes {nodes}", f"FAILED after {t_cli:.1f} s",
                   peer=PEER_UP if nodes <= 3 else PEER_SCALE)
        report.note(f"kinns up failed: {r.stderr.strip()[-600:]}")
        return False
    ready = 0
    names: list[str] = []
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        out = c.kubectl("get", "nodes", "-o", "json", check=False)
        if out.returncode == 0:
            items = json.loads(out.stdout)["items"]
            names = [n["metadata"]["name"] for n in items]
            ready = sum(1 for n in items for cond in n.get("status", {}).get("conditions", [])
                        if cond["type"] == "Ready" and cond["status"] == "True")
            if len(items) == nodes and ready == nodes:
                break
        time.sleep(0.1)
    t_ready = time.perf_counter() - t0
    peer = PEER_UP if nodes <= 3 else PEER_SCALE
    report.add(f"{label}: kinns up --nodes {nodes} (CLI returns)", f"{t_cli:.2f} s", "-", peer)
    report.add(f"{label}: ... until kubectl shows {nodes} Nodes Ready",
               f"{t_ready:.2f} s" if ready == nodes else f"{ready}/{nodes} Ready, {t_ready:.0f} s",
               "-", peer)
    if ready != nodes:
        report.note(f"only {ready}/{nodes} nodes Ready ({len(names)} registered)")
    return True


# --------------------------------------------------------------- deployment
# --------------------------------------------------------------- deployment

def deployment(name: str, replicas: int, image: str, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": image}
    if "agnhost" in image:
        container["args"] = ["netexec", "--http-port=8080"]
        container["ports"] = [{"containerPort": 8080}]
    else:
        container["ports"] = [{"containerPort": 80}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container],
                                           "tolerations": TOLERATE_CP + (tolerations or [])}}}}


@dataclass
class Rollout:
    replicas: int
    t_ready: float | None = None          # readyReplicas == replicas (from apply)
    t_available: float | None = None      # availableReplicas == replicas
    apply_s: float = 0.0                  # the kubectl apply call itself
    stages: dict[str, list[float]] = field(default_factory=dict)  # stage -> times (from apply) per pod
    last_status: dict[str, Any] = field(default_factory=dict)
    stuck: collections.Counter[str] = field(default_factory=collections.Counter)
    cpu: tuple[CpuSample, CpuSample] | None = None     # at the apply, and once all were Ready


def _pod_stage_times(pod: dict[str, Any]) -> tuple[bool, bool, bool]:
    st = pod.get("status") or {}
    scheduled = bool((pod.get("spec") or {}).get("nodeName"))
    running = st.get("phase") == "Running"
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    return scheduled, running, ready


async def run_rollout(c: ClusterHandle, name: str, replicas: int, image: str, timeout: float) -> Rollout:
    """Apply the Deployment with kubectl; poll its status through the API
    every 0.1 s until all replicas are ready; a watch on the namespace's
    pods records when each pod was created, scheduled, Running and Ready;
    CPU samples of the cluster's processes are taken at the apply and once
    all replicas are Ready."""
    ro = Rollout(replicas)
    ctx = ssl_ctx(c)
    seen: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=8)) as s:
        async with s.get(f"{c.server}/api/v1/namespaces/{NS}/pods") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        t0 = 0.0

        async def watch() -> None:
            url = f"{c.server}/api/v1/namespaces/{NS}/pods?watch=true&resourceVersion={rv}"
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
                async for line in r.content:
                    now = time.perf_counter()
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    pod = ev["object"]
                    rec = seen.setdefault(pod["metadata"]["name"], {"created": now})
                    for stage, ok in zip(("scheduled", "running", "ready"), _pod_stage_times(pod)):
                        if ok and stage not in rec:
                            rec[stage] = now

        wtask = asyncio.create_task(watch())
        await asyncio.sleep(0.2)  # let the watch connect
        manifest = json.dumps(deployment(name, replicas, image))
        cpu0 = CpuSample.take(c)
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            kubectl_binary("1.32"), "--kubeconfig", str(c.kubeconfig), "apply", "-f", "-",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(manifest.encode())
        ro.apply_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {err.decode()}")
        url = f"{c.server}/apis/apps/v1/namespaces/{NS}/deployments/{name}"
        while time.perf_counter() - t0 < timeout:
            async with s.get(url) as r:
                st = (await r.json()).get("status") or {}
            ro.last_status = st
            now = time.perf_counter() - t0
            if ro.t_ready is None and st.get("readyReplicas", 0) >= replicas:
                ro.t_ready = now
                ro.cpu = (cpu0, CpuSample.take(c))
            if ro.t_available is None and st.get("availableReplicas", 0) >= replicas:
                ro.t_available = now
            if ro.t_ready is not None and ro.t_available is not None:
                break
            await asyncio.sleep(0.1)
        if ro.cpu is None:
            ro.cpu = (cpu0, CpuSample.take(c))
        await asyncio.sleep(0.3)  # last watch events
        wtask.cancel()
        try:
            await wtask
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        if ro.t_ready is None:
            # where are the pods that did not make it?
            async with s.get(f"{c.server}/api/v1/namespaces/{NS}/pods") as r:
                for pod in (await r.json())["items"]:
                    sch, run, rdy = _pod_stage_times(pod)
                    if rdy:
                        continue
                    st = pod.get("status") or {}
                    waiting = [cs.get("state", {}).get("waiting", {}).get("reason", "")
                               for cs in st.get("containerStatuses") or []]
                    ro.stuck[f"phase={st.get('phase')} scheduled={sch} waiting={','.join(w for w in waiting if w)}"] += 1
    for rec in seen.values():
        for stage, t in rec.items():
            ro.stages.setdefault(stage, []).append(t - t0)
    return ro


def report_rollout(report: Report, label: str, ro: Rollout) -> None:
    n = ro.replicas
    if ro.t_ready is not None:
        report.add(f"{label}: apply -> {n} pods Ready (readyReplicas)", f"{ro.t_ready:.2f} s")
        report.add(f"{label}: pods/s to Ready", f"{n / ro.t_ready:.1f}/s", GOAL_RATE)
    else:
        report.add(f"{label}: apply -> {n} pods Ready", f"TIMEOUT {ro.last_status.get('readyReplicas', 0)}/{n}",
                   GOAL_RATE)
        for what, cnt in ro.stuck.most_common(5):
            report.note(f"{label}: {cnt} pods not Ready: {what}")
    if ro.t_available is not None:
        report.add(f"{label}: apply -> availableReplicas = {n}", f"{ro.t_available:.2f} s")
    parts = []
    for stage in ("created", "scheduled", "running", "ready"):
        ts = ro.stages.get(stage, [])
        if ts:
            parts.append(f"{stage} {len(ts)}: first {min(ts):.2f} p50 {pct(ts, 0.5):.2f} last {max(ts):.2f}")
    report.note(f"{label} timeline (s from apply; kubectl apply took {ro.apply_s:.2f} s): " + "; ".join(parts))
    if ro.cpu is not None:
        report_cpu(report, label, *ro.cpu)


def delete_and_wait(c: ClusterHandle, name: str, timeout: float, report: Report, label: str) -> None:
    t0 = time.perf_counter()
    c.kubectl("delete", "deployment", name, "-n", NS, "--wait=false")
    left = -1
    while time.perf_counter() - t0 < timeout:
        r = c.http("GET", f"/api/v1/namespaces/{NS}/pods")
        left = len(r.json()["items"])
        if left == 0:
            break
        time.sleep(0.25)
    took = time.perf_counter() - t0
    report.add(f"{label}: delete Deployment -> all pods gone",
               f"{took:.2f} s" if left == 0 else f"TIMEOUT, {left} left")


# --------------------------------------------------------------- memory

def measure_memory(c: ClusterHandle, pods: int, report: Report, label: str, idle: float) -> None:
    """PSS of every kinns process of the cluster once the pods idled: the total, per pod
    (all of it over the bench pods), the bench pods' own containers per pod, and per kind."""
    time.sleep(idle)
    cp = ClusterProcs.find(c)
    kinds = cp.by_kind()
    pss = {kind: sum(pss_kb(p) for p in pids) for kind, pids in kinds.items()}
    total = sum(pss.values())
    nprocs = sum(len(p) for p in kinds.values())
    report.add(f"{label}: PSS of every kinns process ({nprocs} procs, {len(cp.pods)} pods)", fmt_mib(total),
               "-", PEER_MEM)
    report.add(f"{label}: PSS per bench pod, counting every kinns process",
               f"{total / max(pods, 1) / 1024:.2f} MiB", GOAL_MEM)
    bench = cp.pod_count("bench pods")
    if bench:
        report.add(f"{label}: PSS per bench pod, its own containers",
                   f"{pss.get('bench pods', 0) / bench / 1024:.2f} MiB")
    parts = []
    for kind, kb in sorted(pss.items(), key=lambda kv: -kv[1]):
        n = cp.pod_count(kind) or len(kinds[kind])
        parts.append(f"{kind} {fmt_mib(kb)}" + (f" ({n}, {kb / n / 1024:.1f} each)" if n > 1 else ""))
    report.note(f"{label} PSS by kind: " + "; ".join(parts))


# --------------------------------------------------------------- net set-up

def net_setup(report: Report, pods: int) -> None:
    log(f"bench/net_setup.py --pods {pods}")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "net_setup.py"), "--pods", str(pods)],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        report.add("pod network set-up (net_setup.py)", "FAILED")
        report.note(f"net_setup.py: {r.stderr.strip()[-600:]}")
        return
    out = r.stdout
    print(out, flush=True)

    def grab(prefix: str) -> tuple[str, str]:
        m = re.search(re.escape(prefix) + r".*?ADD\s+([\d.]+) pods/s.*?DEL\s+([\d.]+) pods/s", out)
        return (m.group(1), m.group(2)) if m else ("?", "?")

    oa, od = grab("kinns add_pod (in-process)")
    sa, sd = grab("kinns setup_pod/teardown_pod")
    ra, rd = grab("reference bridge+host-local")
    m = re.search(r"kinns-cni exec'd.*?ADD\s+([\d.]+) pods/s", out)
    xa = m.group(1) if m else "?"
    m = re.search(r"speed-up in-process vs reference: ADD ([\d.]+)x, DEL ([\d.]+)x", out)
    sp = (m.group(1), m.group(2)) if m else ("?", "?")
    report.add(f"net: kinns add_pod ADD/DEL ({pods} pods)", f"{oa} / {od} pods/s")
    report.add("net: kinns setup_pod/teardown_pod (incl. netns)", f"{sa} / {sd} pods/s")
    report.add("net: kinns-cni exec'd per pod ADD", f"{xa} pods/s")
    report.add("net: reference bridge+host-local ADD/DEL", f"{ra} / {rd} pods/s", "-", "CNI reference plugins")
    report.add("net: speed-up in-process vs reference ADD/DEL", f"{sp[0]}x / {sp[1]}x", ">= 5x")


# --------------------------------------------------------------- faults

def secs(at: float | None, t0: float) -> str:
    return "TIMEOUT" if at is None else f"{at - t0:.2f} s"


def lease_renewed(c: ClusterHandle, node: str) -> float:
    """When the node's kubelet last renewed its Lease (Unix time; 0 while unknown)."""
    data = api_json(c, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}")
    return parse_time(((data or {}).get("spec") or {}).get("renewTime", ""))


def node_pods(c: ClusterHandle, node: str) -> dict[str, tuple[tuple[str, int], ...]] | None:
    """Ready bench pods on `node`: name -> their containers' (ID, restartCount)."""
    items = pods_of(c, "fieldSelector=" + urllib.parse.quote(f"spec.nodeName={node}"))
    return None if items is None else {p["metadata"]["name"]: container_ids(p) for p in items if is_ready(p)}


def new_kubelet(c: ClusterHandle, node: str, old: int) -> int:
    """A kubelet process for `node` other than `old`: a child of the daemon (seen before
    it wrote its pid file), or the one in the pid file."""
    daemon = read_pid(c.state_dir / "daemon.pid")
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{daemon}/task").iterdir():
            kids += [int(x) for x in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    flag = f"--hostname-override={node}".encode()
    for pid in kids + [read_pid(c.state_dir / "kubelet" / node / "kubelet.pid")]:
        if pid != old and alive(pid) and flag in cmdline(pid):
            return pid
    return 0


def kubelet_kill(c: ClusterHandle, report: Report, label: str) -> None:
    """SIGKILL a worker's kubelet: until the daemon runs a new one, until that one serves
    (its Lease renewed and its network ready after the kill), and until its pods are seen
    Ready with the same containers and restartCount; a few seconds later, check that no
    container was started again and no container process is gone."""
    node = f"{c.name}-worker"
    st = c.state_dir
    old = read_pid(st / "kubelet" / node / "kubelet.pid")
    before = node_pods(c, node)
    if not alive(old, b"kinns.node") or not before:
        report.add(f"{label}: kubelet SIGKILL", "SKIPPED (no kubelet or no pods)")
        return
    cg = Cgroups(f"kinns/{c.name}/{node}")
    procs_before = cg.pids()
    marker = st / "kubelet" / node / "network-ready"
    log(f"SIGKILL kubelet {old} of {node} ({len(before)} pods)")
    wall0 = time.time()
    t0 = time.perf_counter()
    os.kill(old, signal.SIGKILL)
    t_new = wait_until(lambda: new_kubelet(c, node, old), 20, 0.01)

    def serving() -> bool:
        try:
            net = marker.stat().st_mtime > wall0
        except OSError:
            return False
        return net and lease_renewed(c, node) > wall0

    t_serving = wait_until(serving, 20) if t_new else None
    t_rec = wait_until(lambda: node_pods(c, node) == before, 20, 0.1) if t_serving else None
    report.add(f"{label}: kubelet SIGKILL -> new kubelet process", secs(t_new, t0), "-", PEER_KUBELET)
    report.add(f"{label}: ... -> Lease renewed, network ready", secs(t_serving, t0))
    report.add(f"{label}: ... -> reconciled ({len(before)} pods Ready, same containers)", secs(t_rec, t0), "< 2 s")
    time.sleep(3)   # a few sync and probe rounds of the new kubelet
    after = node_pods(c, node) or {}
    changed = [n for n, ids in before.items() if after.get(n) != ids]
    lost = {p for p in procs_before - cg.pids() if not alive(p)}
    report.add(f"{label}: ... pods not Ready or restarted / container processes gone",
               f"{len(changed)} / {len(lost)}", "0 / 0")


def readyz(c: ClusterHandle) -> bool:
    try:
        with urllib.request.urlopen(c.server + "/readyz", context=ssl_ctx(c), timeout=1) as r:
            return bool(r.status == 200)
    except (OSError, ValueError):
        return False


def apiserver_kill(c: ClusterHandle, report: Report, label: str) -> None:
    """SIGKILL kube-apiserver (a static pod): until its kubelet runs it again and until
    `/readyz` answers on the host port."""
    cp = ClusterProcs.find(c)
    pid = cp.main_pid("kube-apiserver")
    pod = next((g for g in cp.pods if g.kind == "kube-apiserver"), None)
    if not pid or pod is None:
        report.add(f"{label}: kube-apiserver SIGKILL", "SKIPPED (not found)")
        return
    log(f"SIGKILL kube-apiserver {pid}")
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10, 0.005)
    t_new = wait_until(lambda: any(p != pid and alive(p) for p in pod.pids()), 60, 0.02)
    t_ready = wait_until(lambda: readyz(c), 60, 0.05)
    report.add(f"{label}: kube-apiserver SIGKILL -> new process", secs(t_new, t0))
    report.add(f"{label}: ... -> /readyz ok on the host port", secs(t_ready, t0))


def stop_start(c: ClusterHandle, report: Report, label: str, replicas: int) -> None:
    """`kinns stop`, then `kinns start` until every pod is Ready in a new container
    (the API keeps the statuses of before the stop, so a Ready condition alone says nothing)."""
    before = {p["metadata"]["name"]: (p["status"].get("podIP"), container_ids(p)) for p in pods_of(c) or []}
    log(f"kinns stop --name {c.name} ({len(before)} pods)")
    t0 = time.perf_counter()
    r = c.cli("stop", "--name", c.name, check=False, timeout=300)
    report.add(f"{label}: kinns stop ({len(before)} pods)",
               f"{time.perf_counter() - t0:.2f} s" if r.returncode == 0 else "FAILED")
    if r.returncode != 0:
        report.note(f"kinns stop: {r.stderr.strip()[-400:]}")
        return
    log(f"kinns start --name {c.name}")
    t0 = time.perf_counter()
    r = c.cli("start", "--name", c.name, "--wait", "120", check=False, timeout=200)
    t_cli = time.perf_counter()
    if r.returncode != 0:
        report.add(f"{label}: kinns start", "FAILED")
        report.note(f"kinns start: {r.stderr.strip()[-400:]}")
        return
    fresh: list[dict[str, Any]] = []

    def all_back() -> bool:
        items = pods_of(c)
        if items is None:
            return False
        fresh[:] = [p for p in items if is_ready(p)
                    and container_ids(p) != before.get(p["metadata"]["name"], (None, ()))[1]]
        return len(fresh) >= replicas

    t_ready = wait_until(all_back, 180, 0.25)
    same_ip = sum(1 for p in fresh if p["status"].get("podIP") == before.get(p["metadata"]["name"], ("",))[0])
    report.add(f"{label}: kinns start (CLI returns)", f"{t_cli - t0:.2f} s")
    report.add(f"{label}: kinns start -> {replicas} pods Ready again",
               secs(t_ready, t0) if t_ready else f"TIMEOUT, {len(fresh)}/{replicas}", "< 10 s")
    report.add(f"{label}: ... pods with the IP they had", f"{same_ip}/{len(fresh)}")


# --------------------------------------------------------------- node failure

def node_failure(c: ClusterHandle, report: Report, label: str, replicas: int = 6) -> None:
    """`kinns node stop` a worker under a Deployment that tolerates `unreachable` for
    TOLERATION_S, on a cluster with a GRACE_S grace period: until the Node is Unknown and
    tainted, its pods evicted and replaced; then `kinns node start` until it is Ready."""
    tol = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": TOLERATION_S} for k in ("unreachable", "not-ready")]
    dep = deployment("spread", replicas, AGNHOST, tol)
    dep["spec"]["template"]["spec"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}}}]
    c.kubectl("apply", "-f", "-", stdin=json.dumps(dep))
    if wait_until(lambda: sum(map(is_ready, pods_of(c) or [])) == replicas, 120, 0.5) is None:
        report.add(f"{label}: {replicas} pods Ready before the failure", "TIMEOUT")
        return
    victim = f"{c.name}-worker2"
    on_victim = {p["metadata"]["name"] for p in pods_of(c) or [] if p["spec"].get("nodeName") == victim}
    heartbeat = lease_renewed(c, victim)
    log(f"kinns node stop {victim} ({len(on_victim)} pods on it)")
    age = time.time() - heartbeat
    t0 = time.perf_counter()
    r = c.cli("node", "stop", "--name", c.name, victim, check=False)
    if r.returncode != 0:
        report.add(f"{label}: kinns node stop", "FAILED")
        report.note(f"kinns node stop: {r.stderr.strip()[-400:]}")
        return
    marks: dict[str, float] = {}

    def progress() -> bool:
        node = api_json(c, f"/api/v1/nodes/{victim}") or {}
        conds = {x["type"]: x["status"] for x in (node.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") == "Unknown":
            marks.setdefault("unknown", time.perf_counter())
        if any(t["key"] == "node.kubernetes.io/unreachable" and t["effect"] == "NoExecute"
               for t in (node.get("spec") or {}).get("taints") or []):
            marks.setdefault("tainted", time.perf_counter())
        pods = pods_of(c)
        if pods is not None:
            live = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
            if on_victim and not on_victim & live:
                marks.setdefault("evicted", time.perf_counter())
            if sum(1 for p in pods if is_ready(p) and p["spec"].get("nodeName") != victim) >= replicas:
                marks.setdefault("replaced", time.perf_counter())
        return {"unknown", "tainted", "replaced"} <= set(marks)

    wait_until(progress, 120, 0.2)

    def since(key: str) -> str:
        at = marks.get(key)
        return "TIMEOUT" if at is None else f"{at - t0:.1f} s ({at - t0 + age:.1f} s after its last heartbeat)"

    report.add(f"{label}: node stop -> Node Unknown", since("unknown"),
               f"{GRACE_S} s after last heartbeat (+ <= 5 s monitor period)")
    report.add(f"{label}: ... -> unreachable:NoExecute taint", since("tainted"), "with Unknown")
    report.add(f"{label}: ... -> its {len(on_victim)} pods evicted", since("evicted"), f"taint + {TOLERATION_S} s")
    report.add(f"{label}: ... -> {replicas} pods Ready elsewhere", since("replaced"),
               f"~ grace + tolerationSeconds = {GRACE_S + TOLERATION_S} s + pod start", PEER_NODE_FAIL)
    report.note(f"{label}: the last heartbeat was {age:.1f} s before the stop (Lease renewed every 10 s); "
                f"expected: Unknown and tainted {GRACE_S}-{GRACE_S + 5} s after it, evicted {TOLERATION_S} s "
                "later, replacements Ready after the scheduler and a pod start")
    t0 = time.perf_counter()
    c.cli("node", "start", "--name", c.name, victim, check=False)

    def back() -> bool:
        node = api_json(c, f"/api/v1/nodes/{victim}") or {}
        ready = any(x["type"] == "Ready" and x["status"] == "True" for x in (node.get("status") or {}).get("conditions") or [])
        return ready and not [t for t in (node.get("spec") or {}).get("taints") or []
                              if t["key"].startswith("node.kubernetes.io/")]

    report.add(f"{label}: node start -> Ready, untainted", secs(wait_until(back, 60, 0.2), t0))



# --------------------------------------------------------------- profiling

class Profiler:
    """Optional py-spy recording of the control plane and the kubelets during a rollout,
    one raw collapsed-stack file per process."""

    KINDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, c: ClusterHandle, tag: str) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.out_dir is None or not Path(spy).exists():
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        cp = ClusterProcs.find(c)
        targets = [(f"{p.kind}-{p.node}", p.pid) for p in cp.procs if p.kind in ("daemon", "kubelet")][:4]
        targets += [(kind, cp.main_pid(kind)) for kind in self.KINDS if cp.main_pid(kind)]
        for name, pid in targets:
            self.procs.append(subprocess.Popen(
                [spy, "record", "-p", str(pid), "-r", "50", "-f", "raw", "--nonblocking",
                 "-o", str(self.out_dir / f"{tag}.{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []


# --------------------------------------------------------------- phases

def keep_logs(args: argparse.Namespace, c: ClusterHandle) -> None:
    if args.keep_logs:
        dest = Path(args.keep_logs) / c.name
        dest.mkdir(parents=True, exist_ok=True)
        for source, path in log_files(c):
            try:
                shutil.copy(path, dest / (f"{source}.log" if source != "kubelet" else path.name))
            except OSError:
                pass


def finish(args: argparse.Namespace, c: ClusterHandle, root: Path, report: Report) -> None:
    """Summarise the cluster's logs, `kinns down` and look for leftovers."""
    for line in log_summary(c):
        report.note(f"logs of {c.name}: {line}")
    keep_logs(args, c)
    log(f"kinns down --name {c.name}")
    t0 = time.perf_counter()
    c.cli("down", "--name", c.name, check=False, timeout=600)
    log(f"kinns down took {time.perf_counter() - t0:.1f} s")
    leaks = find_leaks(c.name, root)
    if leaks:
        report.note(f"LEFT BEHIND by {c.name}: {leaks[:10]} ({len(leaks)} in all)")


def default_phase(args: argparse.Namespace, root: Path, report: Report, prof: Profiler) -> None:
    c = ClusterHandle(new_cluster_name("pb"), root)
    try:
        if not cluster_up(c, args.nodes, args.overlay, 120, report, "up"):
            return
        c.kubectl("create", "namespace", NS)
        for label, image, name in (("nginx", "nginx", "web"), ("agnhost", AGNHOST, "agn")):
            log(f"Deployment {name}: {args.replicas} x {image}")
            prof.start(c, f"rollout-{label}")
            ro = asyncio.run(run_rollout(c, name, args.replicas, image, args.timeout))
            prof.stop()
            tag = f"{label} x{args.replicas}"
            report_rollout(report, tag, ro)
            ready = int(ro.last_status.get("readyReplicas", 0))
            measure_memory(c, ready, report, f"{label} x{ready}", args.idle)
            if label == "agnhost" and not args.no_faults and ready == args.replicas:
                kubelet_kill(c, report, tag)
                apiserver_kill(c, report, tag)
                time.sleep(2)   # the kubelets' and controllers' watches come back
                stop_start(c, report, tag, args.replicas)
            delete_and_wait(c, name, args.timeout, report, tag)
    finally:
        finish(args, c, root, report)


def node_failure_phase(args: argparse.Namespace, root: Path, report: Report) -> None:
    c = ClusterHandle(new_cluster_name("pn"), root)
    try:
        if cluster_up(c, 3, args.overlay, 120, report, "node failure",
                      ["--node-monitor-grace-period", f"{GRACE_S}s"]):
            c.kubectl("create", "namespace", NS)
            node_failure(c, report, f"node failure (grace {GRACE_S} s, toleration {TOLERATION_S} s)")
    finally:
        finish(args, c, root, report)


def scale_phase(args: argparse.Namespace, root: Path, report: Report, prof: Profiler) -> None:
    c = ClusterHandle(new_cluster_name("ps"), root)
    try:
        if not cluster_up(c, args.scale_nodes, args.overlay, args.scale_timeout, report, "scale"):
            return
        c.kubectl("create", "namespace", NS)
        log(f"Deployment big: {args.scale_pods} x nginx on {args.scale_nodes} nodes")
        prof.start(c, "rollout-scale")
        ro = asyncio.run(run_rollout(c, "big", args.scale_pods, "nginx", args.scale_timeout))
        prof.stop()
        report_rollout(report, f"scale nginx x{args.scale_pods}", ro)
        ready = int(ro.last_status.get("readyReplicas", 0))
        measure_memory(c, ready, report, f"scale x{ready}", args.idle)
    finally:
        prof.stop()
        finish(args, c, root, report)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--overlay", choices=["vxlan", "host-gw"], default="vxlan")
    ap.add_argument("--replicas", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for a rollout")
    ap.add_argument("--idle", type=float, default=5, help="seconds pods idle before PSS is read")
    ap.add_argument("--no-faults", action="store_true",
                    help="skip the kubelet/API server kills, stop/start and the node failure run")
    ap.add_argument("--net-pods", type=int, default=200, help="pods for bench/net_setup.py (0: skip)")
    ap.add_argument("--scale", action="store_true", help="also run the 50-node, 2,000-pod run")
    ap.add_argument("--scale-only", action="store_true", help="run only the scale run")
    ap.add_argument("--scale-nodes", type=int, default=50)
    ap.add_argument("--scale-pods", type=int, default=2000)
    ap.add_argument("--scale-timeout", type=float, default=900)
    ap.add_argument("--py-spy", metavar="DIR", help="record the components with py-spy during rollouts into DIR")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy each cluster's logs into DIR before `kinns down`")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: kinns creates namespaces, links and cgroups")
    root = Path(tempfile.mkdtemp(prefix="kinns-podbench-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    report = Report()
    prof = Profiler(args.py_spy)
    try:
        if not args.scale_only:
            default_phase(args, root, report, prof)
            if not args.no_faults:
                node_failure_phase(args, root, report)
            if args.net_pods:
                net_setup(report, args.net_pods)
        if args.scale or args.scale_only:
            scale_phase(args, root, report, prof)
    finally:
        prof.stop()
        report.print()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
