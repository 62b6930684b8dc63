"""Job benchmark: N one-pod Jobs to completion, beside N bare one-shot Pods in the same run.

A Job is the batch user's unit of work: what they wait for is the Job's
Complete condition, and what the Job controller adds on top of the pod's
own start-run-exit is its cost.  Starts a real cluster with `kinns up`
(`--nodes`, ingress disabled) and, over HTTPS with the admin certificate
(as kubectl connects), with C concurrent clients:

  1. Jobs: creates N batch/v1 Jobs, each one pod (busybox `true`,
     restartPolicy Never), until every Job has the Complete condition;
  2. Pods (the peer): creates N bare Pods with the same pod spec until every
     one is phase Succeeded.

For each it prints the create phase (seconds, creates/s), the time from the
first create to the last Job Complete / Pod Succeeded and the completions/s
that gives, the p50/p90 of each object's latency from its create answer to
the watch event that shows it done (client clock, ms) and its stages (the
create answer -> its pod's first watch event -> that pod shown Succeeded ->
the Job shown Complete), the same from the server's own stamps
(creationTimestamp to the Complete condition's lastTransitionTime, or to a
pod's Ready=False PodCompleted transition; 1 s resolution), the peak number of active (not yet terminal) pods, and how
long deleting them took (Jobs with propagationPolicy Background, the
garbage collector removes their pods; Pods by deletecollection), until no
pod is left, so both phases start from the same state.  The Jobs/Pods ratio
sits beside every figure: the Job controller's cost.

The pods tolerate the control-plane taint (as bench/pods.py's), so every
node runs them; each node takes 110 non-terminal pods.  At the end: the
WARNING/ERROR lines of the daemon, kubelet and control-plane logs, `kinns
down`, and a check for anything the cluster left on the host.  Usage:

  .venv/bin/python bench/jobs.py [--jobs 1000] [--clients 16] [--nodes 3] [--timeout 900]

Figures from a shared 2-core machine are noisy; compare the two columns of
one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.testing import ClusterHandle, find_leaks, new_cluster_name  # noqa: E402
from clusterlogs import log_files, log_summary  # noqa: E402 - bench/ is the script's directory

NS = "bench"
TOLERATE_CP = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
POD_SPEC: dict[str, Any] = {
    "restartPolicy": "Never", "tolerations": TOLERATE_CP,
    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}
NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _ssl(c: ClusterHandle) -> ssl.SSLContext:
    pki = c.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))] if xs else float("nan")


def stamp(s: str | None) -> float | None:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def job_body(i: int) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"j{i}"},
            "spec": {"template": {"spec": POD_SPEC}}}


def pod_body(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"bench": "pod"}},
            "spec": POD_SPEC}


# --------------------------------------------------------------- watching

@dataclass
class Tracker:
    """What the watches saw: active pods (peak), objects done or failed, with client times."""
    kind: str                                   # "Job" or "Pod": what counts as done
    active: set[str] = field(default_factory=set)
    pods_seen: set[str] = field(default_factory=set)
    pods_failed: set[str] = field(default_factory=set)
    peak_active: int = 0
    done_at: dict[str, float] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    n: int = 0
    job_pods: dict[str, set[str]] = field(default_factory=dict)     # Job -> its pods' names
    deleted: set[str] = field(default_factory=set)                  # pods deleted while measuring
    measuring: bool = True
    pod_added_at: dict[str, float] = field(default_factory=dict)    # first event of each pod
    pod_done_at: dict[str, float] = field(default_factory=dict)     # first event showing it Succeeded

    def on_pod(self, typ: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        phase = pod.get("status", {}).get("phase")
        self.pods_seen.add(name)
        now = time.perf_counter()
        self.pod_added_at.setdefault(name, now)
        if phase == "Succeeded":
            self.pod_done_at.setdefault(name, now)
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Job" and ref.get("controller"):
                self.job_pods.setdefault(ref["name"], set()).add(name)
        if typ == "DELETED" and self.measuring:
            self.deleted.add(name)
        if typ == "DELETED" or phase in ("Succeeded", "Failed"):
            self.active.discard(name)
        else:
            self.active.add(name)
            self.peak_active = max(self.peak_active, len(self.active))
        if phase == "Failed":
            self.pods_failed.add(name)
        if self.kind == "Pod" and phase == "Succeeded":
            self._done(name)
        elif self.kind == "Pod" and phase == "Failed":
            self.failed.add(name)

    def on_job(self, typ: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        cond = condition(job, "Complete")
        if cond and cond.get("status") == "True":
            self._done(name)
        cond = condition(job, "Failed")
        if cond and cond.get("status") == "True":
            self.failed.add(name)

    def _done(self, name: str) -> None:
        self.done_at.setdefault(name, time.perf_counter())
        if len(self.done_at) >= self.n:
            self.all_done.set()


async def watch(session: aiohttp.ClientSession, url: str, on_event: Callable[[str, dict[str, Any]], None]) -> None:
    """LIST, then WATCH from its resourceVersion for good (reconnects; relists on 410 Gone)."""
    rv = ""
    while True:
        if not rv:
            async with session.get(url) as r:
                body = await r.json()
            rv = body["metadata"]["resourceVersion"]
            for item in body["items"]:
                on_event("MODIFIED", item)
        try:
            async with session.get(url, params={"watch": "1", "resourceVersion": rv,
                                                "allowWatchBookmarks": "true"}, timeout=NO_TIMEOUT) as r:
                async for line in r.content:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        rv = ""            # 410 Gone (or another error): relist
                        break
                    rv = ev["object"]["metadata"].get("resourceVersion", rv)
                    if ev["type"] != "BOOKMARK":
                        on_event(ev["type"], ev["object"])
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log(f"watch {url}: {exc!r}; again")
            await asyncio.sleep(0.2)


# --------------------------------------------------------------- one phase

@dataclass
class Phase:
    kind: str
    n: int
    create_s: float = 0.0
    done_s: float = float("nan")     # first create to the last done
    done: int = 0
    lat_ms: list[float] = field(default_factory=list)
    last_pod_s: float = float("nan")    # first create to the last pod Succeeded
    to_pod_ms: list[float] = field(default_factory=list)       # create answer -> its pod exists
    pod_run_ms: list[float] = field(default_factory=list)      # pod exists -> pod Succeeded
    to_done_ms: list[float] = field(default_factory=list)      # pod Succeeded -> Job Complete
    server_lat_s: list[float] = field(default_factory=list)
    peak_active: int = 0
    cleanup_s: float = float("nan")
    problems: list[str] = field(default_factory=list)


async def creates(session: aiohttp.ClientSession, url: str, n: int, clients: int,
                  body: Callable[[int], dict[str, Any]], created_at: dict[str, float]) -> None:
    """POST n objects with `clients` workers; every answer must be 201."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            obj = body(i)
            async with session.post(url, data=json.dumps(obj), headers={"Content-Type": "application/json"}) as r:
                if r.status != 201:
                    raise RuntimeError(f"create {obj['metadata']['name']}: {r.status} {await r.text()}")
                created_at[obj["metadata"]["name"]] = time.perf_counter()

    await asyncio.gather(*(worker() for _ in range(clients)))


async def count(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as r:
        return len((await r.json())["items"])


async def run_phase(c: ClusterHandle, kind: str, n: int, clients: int, timeout: float) -> Phase:
    base = c.server
    pods_url = f"{base}/api/v1/namespaces/{NS}/pods"
    jobs_url = f"{base}/apis/batch/v1/namespaces/{NS}/jobs"
    url, body = (jobs_url, job_body) if kind == "Job" else (pods_url, pod_body)
    ph = Phase(kind, n)
    tr = Tracker(kind, n=n)
    created_at: dict[str, float] = {}
    ctx = _ssl(c)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as watches, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=clients)) as session:
        tasks = [asyncio.create_task(watch(watches, pods_url, tr.on_pod))]
        if kind == "Job":
            tasks.append(asyncio.create_task(watch(watches, jobs_url, tr.on_job)))
        await asyncio.sleep(0.5)       # the watches are open before the first create
        log(f"{kind}s: creating {n} with {clients} clients")
        t0 = time.perf_counter()
        await creates(session, url, n, clients, body, created_at)
        ph.create_s = time.perf_counter() - t0
        log(f"{kind}s: created in {ph.create_s:.2f} s; waiting until all are done")
        try:
            await asyncio.wait_for(tr.all_done.wait(), timeout)
        except asyncio.TimeoutError:
            ph.problems.append(f"{kind}s: {len(tr.done_at)}/{n} done after {timeout:.0f} s "
                               f"({len(tr.failed)} failed, {len(tr.active)} pods active)")
        ph.done = len(tr.done_at)
        if tr.done_at:
            ph.done_s = max(tr.done_at.values()) - t0
        ph.lat_ms = [1000 * (tr.done_at[k] - created_at[k]) for k in tr.done_at if k in created_at]
        ph.peak_active = tr.peak_active
        if tr.pod_done_at:
            ph.last_pod_s = max(tr.pod_done_at.values()) - t0
        for obj, t_created in created_at.items():
            pods = sorted(tr.job_pods.get(obj, ()), key=lambda p: tr.pod_added_at[p]) if kind == "Job" else [obj]
            if not pods or pods[0] not in tr.pod_added_at:
                continue
            pod = pods[0]
            ph.to_pod_ms.append(1000 * (tr.pod_added_at[pod] - t_created))
            if pod in tr.pod_done_at:
                ph.pod_run_ms.append(1000 * (tr.pod_done_at[pod] - tr.pod_added_at[pod]))
                if kind == "Job" and obj in tr.done_at:
                    ph.to_done_ms.append(1000 * (tr.done_at[obj] - tr.pod_done_at[pod]))
        if tr.failed:
            ph.problems.append(f"{kind}s failed: {len(tr.failed)} ({sorted(tr.failed)[:5]})")
        if tr.pods_failed:
            ph.problems.append(f"pods Failed: {len(tr.pods_failed)} ({sorted(tr.pods_failed)[:5]})")
        if kind == "Job" and len(tr.pods_seen) != n:
            extra = {j: sorted(p) for j, p in tr.job_pods.items() if len(p) > 1}
            ph.problems.append(f"{len(tr.pods_seen)} pods for {n} one-pod Jobs; {len(extra)} Jobs had more than "
                               f"one, e.g. {dict(list(extra.items())[:3])}")
        if tr.deleted:
            ph.problems.append(f"{len(tr.deleted)} pods deleted before the bench deleted anything, "
                               f"e.g. {sorted(tr.deleted)[:5]}")
        tr.measuring = False
        log(f"{kind}s: {ph.done}/{n} done in {ph.done_s:.2f} s; reading the server's stamps")

        async with session.get(url) as r:
            items = (await r.json())["items"]
        unfinished: list[str] = []
        for obj in items:
            created = stamp(obj["metadata"].get("creationTimestamp"))
            if kind == "Job":
                cond = condition(obj, "Complete") or {}
                finished = stamp(cond.get("lastTransitionTime") if cond.get("status") == "True"
                                 else obj.get("status", {}).get("completionTime"))
                if obj.get("status", {}).get("succeeded") != 1 or obj.get("status", {}).get("failed"):
                    unfinished.append(f"{obj['metadata']['name']}: {obj.get('status')}")
            else:
                cond = condition(obj, "Ready") or {}
                finished = stamp(cond.get("lastTransitionTime")) if cond.get("reason") == "PodCompleted" else None
                if finished is None:
                    term = ((obj.get("status", {}).get("containerStatuses") or [{}])[0]
                            .get("state", {}).get("terminated") or {})
                    finished = stamp(term.get("finishedAt"))
            if created is not None and finished is not None:
                ph.server_lat_s.append(finished - created)
        if unfinished:
            ph.problems.append(f"{len(unfinished)} Jobs without succeeded=1, failed=0, e.g. {unfinished[:3]}")

        log(f"{kind}s: deleting")
        t1 = time.perf_counter()
        if kind == "Job":
            async with session.delete(jobs_url, params={"propagationPolicy": "Background"}) as r:
                if r.status != 200:
                    ph.problems.append(f"DELETE jobs: {r.status} {await r.text()}")
        else:
            async with session.delete(pods_url) as r:
                if r.status != 200:
                    ph.problems.append(f"DELETE pods: {r.status} {await r.text()}")
        deadline = time.perf_counter() + timeout
        left = (-1, -1)
        while time.perf_counter() < deadline:
            left = (await count(session, jobs_url), await count(session, pods_url))
            if left == (0, 0):
                ph.cleanup_s = time.perf_counter() - t1
                break
            await asyncio.sleep(0.25)
        else:
            async with session.get(pods_url) as r:
                stuck = (await r.json())["items"][:3]
            ph.problems.append(f"after deleting: {left[0]} Jobs, {left[1]} pods left after {timeout:.0f} s; "
                               f"e.g. {[(p['metadata']['name'], p['metadata'].get('finalizers'), p['metadata'].get('deletionTimestamp'), p.get('status', {}).get('phase')) for p in stuck]}")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    log(f"{kind}s: cleaned up in {ph.cleanup_s:.2f} s")
    return ph


# --------------------------------------------------------------- report

def report(jobs: Phase, pods: Phase, clients: int) -> None:
    def rate(p: Phase, seconds: float) -> float:
        return p.n / seconds if seconds else float("nan")

    rows: list[tuple[str, float, float, str]] = [
        ("create phase (s)", jobs.create_s, pods.create_s, ".2f"),
        (f"creates/s ({clients} clients)", rate(jobs, jobs.create_s), rate(pods, pods.create_s), ".0f"),
        ("first create -> all done (s)", jobs.done_s, pods.done_s, ".2f"),
        ("first create -> last pod Succeeded (s)", jobs.last_pod_s, pods.last_pod_s, ".2f"),
        ("completed/s", jobs.done / jobs.done_s, pods.done / pods.done_s, ".1f"),
        ("latency p50, create -> watch shows done (ms)", pct(jobs.lat_ms, 0.5), pct(pods.lat_ms, 0.5), ".0f"),
        ("latency p90 (ms)", pct(jobs.lat_ms, 0.9), pct(pods.lat_ms, 0.9), ".0f"),
        ("  stage p50: create -> its pod exists (ms)", pct(jobs.to_pod_ms, 0.5), pct(pods.to_pod_ms, 0.5), ".0f"),
        ("  stage p90: create -> its pod exists (ms)", pct(jobs.to_pod_ms, 0.9), pct(pods.to_pod_ms, 0.9), ".0f"),
        ("  stage p50: pod exists -> Succeeded (ms)", pct(jobs.pod_run_ms, 0.5), pct(pods.pod_run_ms, 0.5), ".0f"),
        ("  stage p90: pod exists -> Succeeded (ms)", pct(jobs.pod_run_ms, 0.9), pct(pods.pod_run_ms, 0.9), ".0f"),
        ("  stage p50: pod Succeeded -> Job Complete (ms)", pct(jobs.to_done_ms, 0.5), float("nan"), ".0f"),
        ("  stage p90: pod Succeeded -> Job Complete (ms)", pct(jobs.to_done_ms, 0.9), float("nan"), ".0f"),
        ("latency p50, server stamps (s, 1 s resolution)",
         pct(jobs.server_lat_s, 0.5), pct(pods.server_lat_s, 0.5), ".0f"),
        ("latency p90, server stamps (s)", pct(jobs.server_lat_s, 0.9), pct(pods.server_lat_s, 0.9), ".0f"),
        ("peak active pods", jobs.peak_active, pods.peak_active, ".0f"),
        ("delete until no pod left (s)", jobs.cleanup_s, pods.cleanup_s, ".2f"),
    ]
    w = max(len(r[0]) for r in rows)
    print()
    print(f"{'':{w}}  {f'{jobs.n} Jobs':>10}  {f'{pods.n} Pods':>10}  {'Jobs/Pods':>9}")
    for label, a, b, f in rows:
        ratio = f"{a / b:8.2f}x" if b and b == b and a == a else f"{'-':>9}"
        print(f"{label:{w}}  {a:10{f}}  {b:10{f}}  {ratio}")
    print(f"(done: {jobs.done}/{jobs.n} Jobs Complete, {pods.done}/{pods.n} Pods Succeeded)")
    for p in (jobs, pods):
        for problem in p.problems:
            print(f"PROBLEM: {problem}")


async def run(c: ClusterHandle, n: int, clients: int, timeout: float) -> tuple[Phase, Phase]:
    jobs = await run_phase(c, "Job", n, clients, timeout)
    pods = await run_phase(c, "Pod", n, clients, timeout)
    return jobs, pods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000, help="Jobs, and bare Pods after them")
    ap.add_argument("--clients", type=int, default=16, help="concurrent create clients")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for each phase's completions")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: kinns creates namespaces, links and cgroups")
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-jobs-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    c = ClusterHandle(new_cluster_name("jb"), root, ["--nodes", str(args.nodes), "--disable", "ingress",
                                                     "--wait", "90"])
    log(f"kinns up --name {c.name} --nodes {args.nodes}")
    t0 = time.perf_counter()
    c.up()
    try:
        log(f"up in {time.perf_counter() - t0:.1f} s")
        c.kubectl("create", "namespace", NS)
        deadline = time.time() + 60
        while c.kubectl("-n", NS, "get", "serviceaccount", "default", check=False).returncode != 0:
            if time.time() > deadline:
                raise SystemExit(f"no default ServiceAccount in namespace {NS} after 60 s")
            time.sleep(0.2)
        jobs, pods = asyncio.run(run(c, args.jobs, args.clients, args.timeout))
        report(jobs, pods, args.clients)
    finally:
        print()
        for line in log_summary(c):
            print(f"log {line}")
        log(f"kinns down --name {c.name}")
        c.cli("down", "--name", c.name, check=False, timeout=600)
        leaks = find_leaks(c.name, root)
        print(f"left behind by {c.name}: {leaks[:10]} ({len(leaks)} in all)" if leaks else
              f"nothing of {c.name} left on the host")


if __name__ == "__main__":
    main()
