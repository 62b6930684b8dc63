"""Ingress benchmark: what the ingress hop costs a request, and how fast a write is served.

Everything runs in a real cluster this script starts (`kinns up` under a
temporary KINNS_STATE_DIR, `kinns down` at the end, also after an error or
Ctrl-C), with the ingress-nginx controller `kinns up` installs.

1. Throughput and latency.  `wrk` (Debian's) runs in a client pod
   (`kubectl exec client -- wrk ...`, so both paths start at the same
   place; a ClusterIP is only reachable from inside the cluster) against
   the same backend pods two ways:
     direct   wrk → the Service's ClusterIP (kube-proxy DNAT) → a pod;
     ingress  wrk → the ingress LoadBalancer address (kube-proxy DNAT) →
              nginx in the controller pod → a pod endpoint.
   Runs alternate (direct, ingress, ingress with the access log off,
   direct, ...) --reps times; the median of each is printed with p50/p99
   from wrk's latency distribution, and the CPU each pod used per request
   (from the pods' cgroups: client, ingress controller, backends), which
   says where the time goes on a machine whose cores everything shares.
   Two backends:
     return-200  real nginx answering `return 200` from memory: the
                 backend does almost nothing, so this is the proxy's worst
                 case (it does more work per request than the backend);
     web         kinns' `nginx` image behaviour (busybox httpd, one process
                 per connection): what `kubectl create deployment
                 --image=nginx` runs here.
   The ingress is installed with its access log on (as ingress-nginx
   ships); "ingress, no log" sets `disable-access-log: "true"` in the
   controller's ConfigMap for its runs.
2. Reload with 1,000 Ingresses.  --ingresses Ingresses (one host each,
   created by kubectl in batches of 250) are loaded; the time until the
   last one answers through the LoadBalancer is printed.  Then, --writes
   times: one more Ingress is created and the time from the write to its
   first 200 measured (polling every 5 ms), then it is deleted and the
   time to the first 404 measured; and the controller's own figure for
   each of those syncs (render + `nginx -t` + swap + SIGHUP, from its log).

Goal (issue 11): ingress at least 70% of direct ClusterIP requests/s.
Needs root, nginx and wrk (scripts/setup.sh).  Usage:

  .venv/bin/python bench/ingress.py [--seconds 8] [--reps 3] [--connections 32] [--threads 2]
                                    [--ingresses 1000] [--writes 5] [--skip-throughput] [--skip-reload]
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinns.testing import ClusterHandle, new_cluster_name, wait_for  # noqa: E402

Obj = dict[str, Any]
FAST_CONF = """worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fcgi;
  uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  server { listen 8080; location / { default_type text/plain; return 200 "$hostname\\n"; } }
}
"""
CONTROLLER = ("-n", "ingress-nginx", "deploy/ingress-nginx-controller")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- objects

def deployment(name: str, container: Obj, volumes: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": [container]}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def service(name: str, target: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": target}]}}


def ingress(name: str, host: str, svc: str) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}}


def workload() -> list[Obj]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fast-conf"}, "data": {"nginx.conf": FAST_CONF}},
        deployment("fast", {"name": "nginx", "image": "debian:12",
                            "command": ["nginx", "-c", "/etc/fast/nginx.conf", "-g", "daemon off;"],
                            "ports": [{"containerPort": 8080}],
                            "volumeMounts": [{"name": "conf", "mountPath": "/etc/fast"}]},
                   [{"name": "conf", "configMap": {"name": "fast-conf"}}]),
        service("fast", 8080),
        deployment("web", {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}),
        service("web", 80),
        ingress("fast", "fast.bench.example.com", "fast"),
        ingress("web", "web.bench.example.com", "web"),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "labels": {"app": "client"}},
         "spec": {"containers": [{"name": "c", "image": "debian:12", "command": ["sleep", "infinity"]}]}},
    ]


def kubectl_apply(c: ClusterHandle, items: list[Obj], verb: str = "apply") -> None:
    c.kubectl(verb, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), timeout=300)


# ---------------------------------------------------------------- measuring

def get(lb: str, host: str, timeout: float = 2) -> int:
    try:
        conn = http.client.HTTPConnection(lb, 80, timeout=timeout)
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status
    except OSError:
        return 0


def served(lb: str, host: str, want: int = 200, timeout: float = 120) -> float:
    """Seconds until `host` answers `want` through the ingress (polling every 5 ms)."""
    start = time.monotonic()
    while get(lb, host) != want:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{host} did not answer {want} within {timeout:g}s")
        time.sleep(0.005)
    return time.monotonic() - start


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Obj:
    """requests/s, p50/p99 (ms), requests, errors (socket errors + non-2xx) from `wrk --latency`."""
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct.get("50", 0.0), "p99": pct.get("99", 0.0), "requests": total,
            "errors": errors + (int(non2xx.group(1)) if non2xx else 0)}


class Cpu:
    """CPU used by pods, from their cgroups (cpu.stat usage_usec), by role."""

    def __init__(self, cluster: str, roles: dict[str, list[str]]) -> None:
        self.files: dict[str, list[str]] = {}
        for role, uids in roles.items():
            found: list[str] = []
            for uid in uids:
                for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                    found += glob.glob(f"{root}/kinns/{cluster}/*/pod{uid}/cpu.stat")
            self.files[role] = found

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, files in self.files.items():
            total = 0
            for f in files:
                try:
                    total += int(re.search(r"usage_usec (\d+)", Path(f).read_text()).group(1))  # type: ignore[union-attr]
                except (OSError, AttributeError):
                    pass
            out[role] = total
        return out


def wrk(c: ClusterHandle, url: str, host: str | None, a: argparse.Namespace) -> str:
    cmd = ["exec", "client", "--", "wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{a.seconds}s", "--latency"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    return c.kubectl(*cmd, url, timeout=a.seconds + 60).stdout


def set_access_log(c: ClusterHandle, lb: str, on: bool) -> None:
    c.kubectl("patch", "configmap", "-n", "ingress-nginx", "ingress-nginx-controller", "--type", "merge",
              "-p", json.dumps({"data": {"disable-access-log": "false" if on else "true"}}))
    time.sleep(1.5)     # a sync and a reload; the next requests land on the new workers
    served(lb, "fast.bench.example.com")


def throughput(c: ClusterHandle, lb: str, cpu: Cpu, a: argparse.Namespace) -> None:
    backends = {"return-200": ("fast", "fast.bench.example.com"), "web": ("web", "web.bench.example.com")}
    paths = ["direct", "ingress", "ingress, no log"]
    results: dict[tuple[str, str], list[Obj]] = {}
    for backend, (svc, host) in backends.items():
        ip = json.loads(c.kubectl("get", "svc", svc, "-o", "json").stdout)["spec"]["clusterIP"]
        for rep in range(a.reps):
            order = paths if rep % 2 == 0 else list(reversed(paths))
            for path in order:
                if path != "direct":
                    set_access_log(c, lb, path == "ingress")
                before = cpu.read()
                out = wrk(c, f"http://{ip}/" if path == "direct" else f"http://{lb}/",
                          None if path == "direct" else host, a)
                used = {k: v - before[k] for k, v in cpu.read().items()}
                r = parse_wrk(out)
                r["cpu"] = {k: v / max(r["requests"], 1) for k, v in used.items()}
                results.setdefault((backend, path), []).append(r)
                log(f"{backend:10} {path:16} {r['rps']:9.0f} req/s  p99 {r['p99']:7.2f} ms  errors {r['errors']}")
    set_access_log(c, lb, True)
    print(f"\n1. Throughput: wrk -t{a.threads} -c{a.connections} -d{a.seconds}s from a client pod, "
          f"median of {a.reps} alternating runs")
    print(f"{'backend':11} {'path':16} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  "
          f"{'CPU us/request: client ingress backends':>40}  {'vs direct':>9}")
    for backend in backends:
        direct = statistics.median(r["rps"] for r in results[(backend, "direct")])
        for path in paths:
            rs = results[(backend, path)]
            rps = statistics.median(r["rps"] for r in rs)
            cpu_cells = "  ".join(f"{statistics.median(r['cpu'][k] for r in rs):6.1f}"
                                  for k in ("client", "ingress", "backends"))
            print(f"{backend:11} {path:16} {rps:9.0f} {statistics.median(r['p50'] for r in rs):7.2f} "
                  f"{statistics.median(r['p99'] for r in rs):7.2f} {sum(r['errors'] for r in rs):6d}  "
                  f"{cpu_cells:>40}  {rps / direct:8.0%}")
    print("goal: ingress >= 70% of direct req/s")


def controller_reloads(c: ClusterHandle, since: str) -> list[float]:
    out = c.kubectl("logs", *CONTROLLER, f"--since-time={since}").stdout
    return [float(x) for x in re.findall(r'"Backend successfully reloaded" seconds=([0-9.]+)', out)]


def reload(c: ClusterHandle, lb: str, a: argparse.Namespace) -> None:
    n = a.ingresses
    start = time.monotonic()
    for lo in range(0, n, 250):
        kubectl_apply(c, [ingress(f"bulk-{i}", f"h{i}.bulk.example.com", "fast") for i in range(lo, min(n, lo + 250))],
                      verb="create")
    created = time.monotonic() - start
    served(lb, f"h{n - 1}.bulk.example.com", timeout=300)
    loaded = time.monotonic() - start
    log(f"{n} Ingresses created in {created:.1f}s, all served after {loaded:.1f}s")
    time.sleep(2)
    add, remove, ctl, written = [], [], [], []
    for i in range(a.writes):
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        obj = ingress(f"probe-{i}", f"probe{i}.bench.example.com", "fast")
        t0 = time.monotonic()
        c.kubectl("create", "-f", "-", stdin=json.dumps(obj))
        written.append(time.monotonic() - t0)
        served(lb, f"probe{i}.bench.example.com")
        add.append(time.monotonic() - t0)
        time.sleep(1)
        t0 = time.monotonic()
        c.kubectl("delete", "ingress", f"probe-{i}")
        served(lb, f"probe{i}.bench.example.com", want=404)
        remove.append(time.monotonic() - t0)
        time.sleep(1)
        ctl += controller_reloads(c, since)[-2:]
        log(f"write {i}: served after {add[-1] * 1000:.0f} ms, removed after {remove[-1] * 1000:.0f} ms")
    print(f"\n2. Reload with {n} Ingresses (+ the bench's own)")
    print(f"   initial load: {n} created in {created:.1f} s, all answering {loaded:.1f} s after the first write")
    print(f"   one Ingress created → answering: median {statistics.median(add) * 1000:.0f} ms, "
          f"max {max(add) * 1000:.0f} ms (n={len(add)}; kubectl create itself took "
          f"{statistics.median(written) * 1000:.0f} ms of it)")
    print(f"   one Ingress deleted → 404:       median {statistics.median(remove) * 1000:.0f} ms, "
          f"max {max(remove) * 1000:.0f} ms")
    if ctl:
        print(f"   controller sync (render, nginx -t, swap, SIGHUP): median {statistics.median(ctl) * 1000:.0f} ms, "
              f"max {max(ctl) * 1000:.0f} ms (n={len(ctl)})")


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ingresses", type=int, default=1000)
    ap.add_argument("--writes", type=int, default=5)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-reload", action="store_true")
    a = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/setup.sh installs it)")
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-ingress-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    c = ClusterHandle(new_cluster_name("bi"), root)

    def stop(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        log(f"kinns up --name {c.name}")
        c.up()
        kubectl_apply(c, workload())
        for app, n in (("fast", 2), ("web", 2), ("client", 1)):
            wait_for(lambda: len([p for p in json.loads(c.kubectl("get", "pods", "-l", f"app={app}", "-o",
                                                                  "json").stdout)["items"]
                                  if p["status"].get("phase") == "Running"]) == n, timeout=120)
        lb = wait_for(lambda: (json.loads(c.kubectl("get", "svc", *CONTROLLER[:2], "ingress-nginx-controller", "-o",
                                                    "json").stdout)["status"].get("loadBalancer", {})
                               .get("ingress") or [{}])[0].get("ip"), timeout=120)
        served(lb, "fast.bench.example.com")
        served(lb, "web.bench.example.com")
        print(f"cluster {c.name}: ingress-nginx at {lb}; nginx {subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}, "
              f"{subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.splitlines()[0]}, "
              f"{os.cpu_count()} CPUs shared by everything")
        uids = {}
        for role, sel, ns in (("client", "app=client", "default"), ("backends", "app in (fast,web)", "default"),
                              ("ingress", "app.kubernetes.io/component=controller", "ingress-nginx")):
            items = json.loads(c.kubectl("get", "pods", "-n", ns, "-l", sel, "-o", "json").stdout)["items"]
            uids[role] = [p["metadata"]["uid"] for p in items]
        cpu = Cpu(c.name, uids)
        if not a.skip_throughput:
            throughput(c, lb, cpu, a)
        if not a.skip_reload:
            reload(c, lb, a)
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        log(f"kinns down --name {c.name}")
        c.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
