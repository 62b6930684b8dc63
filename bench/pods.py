"""Pod benchmark: cluster start, pod start rate, memory per pod, pod network set-up.

What a user of kinns waits for and pays for is pods: how long `kinns up`
takes, how fast a big Deployment becomes Ready, and how much memory the
pods cost once idle.  This benchmark measures those end to end on a real
cluster (the `kinns up` CLI, kubectl, the HTTPS API), in one run, and
prints them next to the goals and to the figures of peers (kind, k3s, k3d):

  1. `kinns up --nodes 3`: wall-clock of the CLI, then until
     `kubectl get nodes` shows every Node Ready;
  2. `kubectl apply` of a 300-replica Deployment (image `nginx`, which
     kinns runs as busybox httpd; then agnhost `netexec`, a built-in
     server forked from the zygote) until the Deployment's
     status.readyReplicas / availableReplicas reach 300, polled through
     the API every 0.1 s; a pod watch opened before the apply gives the
     timeline (first/last pod created, scheduled, Running, Ready) that
     says which stage is slow;
  3. memory: PSS (/proc/<pid>/smaps_rollup) of every process in the
     cluster's cgroups (`kinns/<cluster>`: the containers), the zygote and
     the daemon (API server, controllers and all kubelets), total and per
     pod, after the pods idled a few seconds;
  4. pod network set-up rate, kinns vs the reference CNI plugins
     (bridge + host-local): `bench/net_setup.py` run as a subprocess once
     the cluster is down, so both figures come from the same run;
  5. with `--scale`: `kinns up --nodes 50` and a 2,000-replica nginx
     Deployment (time to Ready, PSS total and per pod).

Every cluster lives under a temporary KINNS_STATE_DIR and KUBECONFIG (the
user's ~/.kube/config is never touched) and is removed with `kinns down`,
then checked for leftovers.  Warnings and errors of the daemon log are
summarised at the end.  Usage:

  .venv/bin/python bench/pods.py [--replicas 300] [--scale | --scale-only]
                                 [--net-pods 200] [--py-spy DIR] [--keep-logs DIR]

The Deployments tolerate the control-plane taint: with the kubelet's
default maxPods of 110, three nodes of which one is tainted hold only 220
pods.  `--py-spy DIR` records the daemon during each rollout (raw
collapsed stacks) to find where time goes; the pod timeline in the notes
says which stage (created / scheduled / Running / Ready) sets the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kinns.node.cgroups import Cgroups  # noqa: E402
from kinns.testing import ClusterHandle, find_leaks, kubectl_binary, new_cluster_name  # noqa: E402

NS = "bench"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
# Each node takes 110 pods (the kubelet's default maxPods) and the control
# plane is tainted NoSchedule: without this toleration 3 nodes hold only
# 2 x 110 = 220 pods, and 80 of 300 replicas would stay Pending for good.
TOLERATE_CP = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]

PEER_UP = "kind 1-node create 12.5-17.1 s (kind#2893)"
PEER_SCALE = "kind fails to join > 5-10 nodes (kind#1945, #2491)"
PEER_MEM = "k3s agent 275 MB; k3d agent 138 MiB, server 465 MiB"


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


def daemon_log_summary(c: ClusterHandle, top: int = 8) -> list[str]:
    """Distinct WARNING/ERROR messages of the daemon log (numbers and
    names folded so repeats count together), most frequent first."""
    try:
        text = (c.state_dir / "daemon.log").read_text(errors="replace")
    except OSError:
        return []
    counts: collections.Counter[str] = collections.Counter()
    tracebacks = 0
    for line in text.splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        m = re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) (.*)", line)
        if not m:
            continue
        msg = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<uid>", m.group(2))
        msg = re.sub(r"\d+(\.\d+)?", "N", msg)[:160]
        counts[f"{m.group(1)} {msg}"] += 1
    out = [f"{n:6d} x {msg}" for msg, n in counts.most_common(top)]
    if tracebacks:
        out.append(f"{tracebacks:6d} x Traceback")
    return out


# --------------------------------------------------------------- cluster up

def cluster_up(c: ClusterHandle, nodes: int, overlay: str, wait: float, report: Report, label: str) -> bool:
    """`kinns up`, timed; then poll `kubectl get nodes` until all Ready."""
    log(f"kinns up --name {c.name} --nodes {nodes} --overlay {overlay}")
    t0 = time.perf_counter()
    r = c.cli("up", "--name", c.name, "--nodes", str(nodes), "--overlay", overlay, "--wait", str(wait),
              check=False, timeout=wait + 60)
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

def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
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
                                  "spec": {"containers": [container], "tolerations": TOLERATE_CP}}}}


@dataclass
class Rollout:
    replicas: int
    t_ready: float | None = None          # readyReplicas == replicas (from apply)
    t_available: float | None = None      # availableReplicas == replicas
    apply_s: float = 0.0                  # the kubectl apply call itself
    stages: dict[str, list[float]] = field(default_factory=dict)  # stage -> times (from apply) per pod
    last_status: dict[str, Any] = field(default_factory=dict)
    stuck: collections.Counter[str] = field(default_factory=collections.Counter)


def _pod_stage_times(pod: dict[str, Any]) -> tuple[bool, bool, bool]:
    st = pod.get("status") or {}
    scheduled = bool((pod.get("spec") or {}).get("nodeName"))
    running = st.get("phase") == "Running"
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    return scheduled, running, ready


async def run_rollout(c: ClusterHandle, name: str, replicas: int, image: str, timeout: float) -> Rollout:
    """Apply the Deployment with kubectl; poll its status through the API
    every 0.1 s until all replicas are ready; a watch on the namespace's
    pods records when each pod was created, scheduled, Running and Ready."""
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
            if ro.t_available is None and st.get("availableReplicas", 0) >= replicas:
                ro.t_available = now
            if ro.t_ready is not None and ro.t_available is not None:
                break
            await asyncio.sleep(0.1)
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
        report.add(f"{label}: pods/s to Ready", f"{n / ro.t_ready:.1f}/s", ">= 100 pods/s")
    else:
        report.add(f"{label}: apply -> {n} pods Ready", f"TIMEOUT {ro.last_status.get('readyReplicas', 0)}/{n}",
                   ">= 100 pods/s")
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
    dt = time.perf_counter() - t0
    report.add(f"{label}: delete Deployment -> all pods gone",
               f"{dt:.2f} s" if left == 0 else f"TIMEOUT, {left} left")


# --------------------------------------------------------------- memory

def measure_memory(c: ClusterHandle, pods: int, report: Report, label: str, idle: float,
                   goal: str = "<= 3 MB PSS per idle pod", peer: str = PEER_MEM) -> None:
    time.sleep(idle)
    procs = Cgroups(f"kinns/{c.name}").pids()
    containers = sum(pss_kb(p) for p in procs)
    zygote_pid = read_pid(c.state_dir / "runtime" / "zygote.pid")
    daemon_pid = read_pid(c.state_dir / "daemon.pid")
    zygote = pss_kb(zygote_pid) if zygote_pid else 0
    daemon = pss_kb(daemon_pid) if daemon_pid else 0
    total = containers + zygote + daemon
    per = total / pods if pods else 0
    report.add(f"{label}: PSS total ({pods} pods, {len(procs)} container procs)",
               f"{fmt_mib(total)}", "-", peer)
    report.add(f"{label}:   containers / zygote / daemon",
               f"{fmt_mib(containers)} / {fmt_mib(zygote)} / {fmt_mib(daemon)}")
    report.add(f"{label}: PSS per pod (all incl. daemon)", f"{per / 1024:.2f} MiB", goal)
    report.add(f"{label}: PSS per pod (containers + zygote)",
               f"{(containers + zygote) / max(pods, 1) / 1024:.2f} MiB", goal)


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


# --------------------------------------------------------------- profiling

class Profiler:
    """Optional py-spy recording of the daemon during a rollout."""

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, c: ClusterHandle, tag: str) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.out_dir is None or not Path(spy).exists():
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        pid = read_pid(c.state_dir / "daemon.pid")
        self.proc = subprocess.Popen([spy, "record", "-p", str(pid), "-r", "50", "-f", "raw", "--nonblocking",
                                      "-o", str(self.out_dir / f"{tag}.txt")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


# --------------------------------------------------------------- phases

def keep_log(args: argparse.Namespace, c: ClusterHandle) -> None:
    if args.keep_logs:
        Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy(c.state_dir / "daemon.log", Path(args.keep_logs) / f"{c.name}.daemon.log")
        except OSError:
            pass


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
            report_rollout(report, f"{label} x{args.replicas}", ro)
            ready = int(ro.last_status.get("readyReplicas", 0))
            measure_memory(c, ready, report, f"{label} x{ready}", args.idle)
            delete_and_wait(c, name, args.timeout, report, f"{label} x{args.replicas}")
    finally:
        for line in daemon_log_summary(c):
            report.note(f"daemon.log ({c.name}): {line}")
        keep_log(args, c)
        log(f"kinns down --name {c.name}")
        c.cli("down", "--name", c.name, check=False)
        leaks = find_leaks(c.name, root)
        if leaks:
            report.note(f"LEFT BEHIND by {c.name}: {leaks}")


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
        for line in daemon_log_summary(c):
            report.note(f"daemon.log ({c.name}): {line}")
        keep_log(args, c)
        log(f"kinns down --name {c.name}")
        t0 = time.perf_counter()
        c.cli("down", "--name", c.name, check=False, timeout=600)
        report.add(f"scale: kinns down ({args.scale_nodes} nodes)", f"{time.perf_counter() - t0:.1f} s")
        leaks = find_leaks(c.name, root)
        if leaks:
            report.note(f"LEFT BEHIND by {c.name}: {leaks[:10]} ({len(leaks)} in all)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--overlay", choices=["vxlan", "host-gw"], default="vxlan")
    ap.add_argument("--replicas", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for a rollout")
    ap.add_argument("--idle", type=float, default=5, help="seconds pods idle before PSS is read")
    ap.add_argument("--net-pods", type=int, default=200, help="pods for bench/net_setup.py (0: skip)")
    ap.add_argument("--scale", action="store_true", help="also run the 50-node, 2,000-pod run")
    ap.add_argument("--scale-only", action="store_true", help="run only the scale run")
    ap.add_argument("--scale-nodes", type=int, default=50)
    ap.add_argument("--scale-pods", type=int, default=2000)
    ap.add_argument("--scale-timeout", type=float, default=900)
    ap.add_argument("--py-spy", metavar="DIR", help="record the daemon with py-spy during rollouts into DIR")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy each cluster's daemon.log into DIR before `kinns down`")
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
