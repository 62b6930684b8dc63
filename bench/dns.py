"""Cluster DNS benchmark: kinns.dns against dnsmasq, with dnsperf, in one run.

Everything happens in scratch network namespaces this script creates and
deletes (nothing on the host changes).  Both servers get the same zone: a
cluster of --services Services in --namespaces namespaces (every tenth one
headless with three endpoints) — kinns.dns from a fixture file, dnsmasq
as host records (`--addn-hosts`, with `--local=/cluster.local/` so names
it does not know are NXDOMAIN, as a cluster DNS answers them).

The query mix is what pods with `ndots:5` send (kubelet's resolv.conf,
search `<ns>.svc.cluster.local svc.cluster.local cluster.local`): glibc
asks A and AAAA for every candidate, so a lookup of
  * `web` from its own namespace is 1 hit (A) + 1 NODATA (AAAA);
  * `web.other` is 2 search-list misses (NXDOMAIN) then the hit;
  * `web.other.svc.cluster.local` (4 dots < 5) is 6 misses then the hit;
  * an unknown Service is NXDOMAIN all the way.
Per server (alternating, --rounds times, medians reported):
  1. throughput: dnsperf with no rate limit for --seconds, and the server
     process's CPU use in that time (so qps per core);
  2. latency: dnsperf -v at the same fixed rate for both (half the slower
     server's throughput), p50/p99 from the per-query latencies.
Then the time from a Service's creation to its first answer, through the
real path: a kinns API server in the namespace, kinns.dns watching it with
informers, a UDP query every millisecond until the name answers.

Usage: .venv/bin/python bench/dns.py [--services 1000] [--seconds 8] [--rounds 3] [--updates 50]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.dns import corefile, fixtures, wire  # noqa: E402
from kinns.dns.testbed import Proc, Testbed  # noqa: E402

ZONE = "cluster.local"


def corefile_for(resolv: Path) -> str:
    """kubeadm's Corefile, forwarding to the given resolv.conf."""
    return corefile.KUBEADM_COREFILE.replace("/etc/resolv.conf", str(resolv))

GOALS = "goals: >= 20,000 qps per core, >= 0.5x dnsmasq, update-to-answer p99 < 100 ms"


# ------------------------------------------------------------------ the zone


def build_cluster(services: int, namespaces: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """API objects for kinns.dns and (name, ip) host records for dnsmasq."""
    objs: list[dict[str, Any]] = [fixtures.namespace(f"ns{i}") for i in range(namespaces)]
    objs.append(fixtures.namespace("default"))
    hosts: list[tuple[str, str]] = []
    for i in range(services):
        ns, name = f"ns{i % namespaces}", f"svc{i}"
        fq = f"{name}.{ns}.svc.{ZONE}"
        if i % 10 == 9:
            eps = [f"10.244.{i // 200}.{(i % 200) + j * 50 + 1}" for j in range(3)]
            objs.append(fixtures.service(ns, name, ["None"], [fixtures.port("http", 80)]))
            objs.append(fixtures.endpoint_slice(ns, name, [fixtures.endpoint(ip) for ip in eps],
                                                [fixtures.port("http", 8080)]))
            for ip in eps:
                hosts.append((fq, ip))
                hosts.append((f"{ip.replace('.', '-')}.{fq}", ip))
        else:
            ip = f"10.96.{i // 250}.{i % 250 + 1}"
            objs.append(fixtures.service(ns, name, [ip], [fixtures.port("http", 80)]))
            hosts.append((fq, ip))
    return objs, hosts


def query_mix(services: int, namespaces: int, lookups: int, seed: int = 1) -> list[str]:
    """dnsperf input lines: the queries pods send for `lookups` name look-ups (see module doc)."""
    rnd = random.Random(seed)
    search = lambda ns: [f"{ns}.svc.{ZONE}", f"svc.{ZONE}", ZONE]  # noqa: E731
    lines: list[str] = []
    for _ in range(lookups):
        i = rnd.randrange(services)
        ns, name = f"ns{i % namespaces}", f"svc{i}"
        kind = rnd.random()
        if kind < 0.35:            # short name from the Service's own namespace
            client_ns, asked = ns, name
        elif kind < 0.70:          # name.namespace from another namespace
            client_ns, asked = "default", f"{name}.{ns}"
        elif kind < 0.90:          # the full name: ndots:5 tries the search list first
            client_ns, asked = "default", f"{name}.{ns}.svc.{ZONE}"
        else:                      # a Service that does not exist
            client_ns, asked = "default", f"nosuch{i}.{ns}.svc.{ZONE}"
        candidates = [f"{asked}.{s}" for s in search(client_ns)]
        if asked.endswith(ZONE):
            candidates.append(asked)
        for cand in candidates:
            lines += [f"{cand} A", f"{cand} AAAA"]
            if cand == f"{name}.{ns}.svc.{ZONE}":
                break
    return lines


# ------------------------------------------------------------------ measuring


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(tb: Testbed, ns: str, queries: Path, seconds: float, rate: int | None = None,
            verbose: bool = False) -> dict[str, Any]:
    argv = ["ip", "netns", "exec", ns, "dnsperf", "-s", "127.0.0.1", "-d", str(queries), "-l", str(seconds),
            "-c", "8", "-q", "200", "-t", "2"]
    if rate:
        argv += ["-Q", str(rate)]
    if verbose:
        argv += ["-v"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    codes = re.search(r"Response codes:\s+(.*)", out)
    res: dict[str, Any] = {"qps": qps, "lost": int(lost.group(1)) if lost else 0,
                           "codes": codes.group(1).strip() if codes else ""}
    if verbose:
        lat = sorted(float(m.group(1)) for m in re.finditer(r"^> (?!T )\S+ \S+ \S+ ([\d.]+)$", out, re.M))
        res["p50"] = lat[len(lat) // 2] if lat else float("nan")
        res["p99"] = lat[int(len(lat) * 0.99)] if lat else float("nan")
    return res


def throughput(tb: Testbed, ns: str, proc: Proc, queries: Path, seconds: float) -> dict[str, Any]:
    c0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
    res = dnsperf(tb, ns, queries, seconds)
    res["cpu"] = (cpu_seconds(proc.popen.pid) - c0) / (time.monotonic() - t0)
    res["per_core"] = res["qps"] / max(res["cpu"], 1e-9)
    return res


def start_dnsmasq(tb: Testbed, ns: str, hosts: list[tuple[str, str]]) -> Proc:
    hosts_file = tb.workdir / "dnsmasq.hosts"
    hosts_file.write_text("".join(f"{ip} {name}\n" for name, ip in hosts))
    p = tb.spawn(ns, ["dnsmasq", "--keep-in-foreground", "--port=53", "--listen-address=127.0.0.1",
                      "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts_file}",
                      f"--local=/{ZONE}/", "--cache-size=10000", "--dns-forward-max=1000",
                      "--pid-file=", "--user=root"], "dnsmasq")
    deadline = time.monotonic() + 10
    while tb.exchange(ns, wire.make_query(hosts[0][0] + "."), timeout=0.2) is None:
        if not p.alive() or time.monotonic() > deadline:
            raise SystemExit(f"dnsmasq did not start:\n{p.output()}")
    return p


def update_to_answer(tb: Testbed, n: int) -> list[float]:
    """Seconds from POSTing a Service to kinns.dns answering its name (informers over HTTP)."""
    ns = tb.netns()
    _api, kubeconfig = tb.api_server(ns)
    resolv = tb.workdir / "resolv.conf"
    tb.dns_server(ns, corefile_for(resolv), name="informers", env_kubeconfig=str(kubeconfig))
    sock = tb.socket(ns)
    sock.settimeout(0.05)
    out = []
    for i in range(n):
        name = f"upd{i}"
        q = wire.make_query(f"{name}.default.svc.{ZONE}.", qid=i)
        t0 = time.perf_counter()
        status, body = tb.http(ns, 6443, "/api/v1/namespaces/default/services", "POST",
                               fixtures.service("default", name, None, [fixtures.port("http", 80)]))
        assert status == 201, body
        while True:
            sock.sendto(q, ("127.0.0.1", 53))
            try:
                reply = sock.recv(4096)
            except OSError:
                continue
            if reply[:2] == q[:2] and reply[3] & 0xF == wire.NOERROR and struct_u16(reply, 6) > 0:
                break
            time.sleep(0.001)
        out.append(time.perf_counter() - t0)
    sock.close()
    return out


def struct_u16(b: bytes, off: int) -> int:
    return (b[off] << 8) | b[off + 1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(int(len(xs) * p), len(xs) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--lookups", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=50)
    args = ap.parse_args()

    objs, hosts = build_cluster(args.services, args.namespaces)
    lines = query_mix(args.services, args.namespaces, args.lookups)
    with tempfile.TemporaryDirectory(prefix="kinns-dns-bench-") as tmp, Testbed(Path(tmp)) as tb:
        queries = tb.workdir / "queries.txt"
        queries.write_text("\n".join(lines) + "\n")
        resolv = tb.workdir / "resolv.conf"
        resolv.write_text("")              # no upstream: nothing in the mix leaves the cluster zone
        ours_ns, theirs_ns = tb.netns(), tb.netns()
        ours = tb.dns_server(ours_ns, corefile_for(resolv), fixtures=objs)
        theirs = start_dnsmasq(tb, theirs_ns, hosts)
        n_a = sum(1 for line in lines if line.endswith(" A"))
        print(f"zone: {args.services} Services in {args.namespaces} namespaces; mix: {len(lines)} queries "
              f"from {args.lookups} look-ups ({n_a} A, {len(lines) - n_a} AAAA), dnsperf -c 8 -q 200, "
              f"{args.seconds:g}s x {args.rounds} rounds each, alternating")
        # warm both (our answer cache, dnsmasq's cache) with one pass through the file
        for ns in (ours_ns, theirs_ns):
            subprocess.run(["ip", "netns", "exec", ns, "dnsperf", "-s", "127.0.0.1", "-d", str(queries), "-n", "1"],
                           capture_output=True, timeout=120)
        runs: dict[str, list[dict[str, Any]]] = {"kinns.dns": [], "dnsmasq": []}
        for _ in range(args.rounds):
            runs["kinns.dns"].append(throughput(tb, ours_ns, ours, queries, args.seconds))
            runs["dnsmasq"].append(throughput(tb, theirs_ns, theirs, queries, args.seconds))
        med = {k: {f: statistics.median(r[f] for r in v) for f in ("qps", "cpu", "per_core")} for k, v in runs.items()}
        rate = int(min(m["qps"] for m in med.values()) * 0.5)
        lat = {"kinns.dns": dnsperf(tb, ours_ns, queries, args.seconds, rate, verbose=True),
               "dnsmasq": dnsperf(tb, theirs_ns, queries, args.seconds, rate, verbose=True)}
        print(f"\n{'server':<10} {'qps':>9} {'cpu':>6} {'qps/core':>9} {'lost':>6}   "
              f"latency at {rate} qps: {'p50 ms':>7} {'p99 ms':>7}   response codes (last run)")
        for k in runs:
            m, last, lt = med[k], runs[k][-1], lat[k]
            print(f"{k:<10} {m['qps']:>9.0f} {m['cpu']:>6.2f} {m['per_core']:>9.0f} {last['lost']:>6}   "
                  f"{'':>21}{lt['p50'] * 1000:>7.3f} {lt['p99'] * 1000:>7.3f}   {last['codes']}")
        ratio = med["kinns.dns"]["qps"] / med["dnsmasq"]["qps"]
        ratio_core = med["kinns.dns"]["per_core"] / med["dnsmasq"]["per_core"]
        rounds = {k: ", ".join("%.0f" % r["qps"] for r in v) for k, v in runs.items()}
        print(f"\nkinns.dns / dnsmasq: {ratio:.2f}x qps, {ratio_core:.2f}x qps per core "
              f"(rounds: {rounds['kinns.dns']} vs {rounds['dnsmasq']})")
        if args.updates:
            ups = update_to_answer(tb, args.updates)
            print(f"Service created (API POST) -> first answer, {len(ups)} Services: "
                  f"p50 {pct(ups, 0.5) * 1000:.1f} ms, p99 {pct(ups, 0.99) * 1000:.1f} ms, "
                  f"max {max(ups) * 1000:.1f} ms")
        print(GOALS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
