"""API server benchmark: durable creates/s, LIST of 10,000 pods, watch latency.

Starts a real cluster with `kinns up` and measures over HTTPS with the admin
certificate, as kubectl would connect:
  1. creates per second with 16 concurrent clients, 10,000 ConfigMaps
     (each acknowledged only after its batch is fsynced);
  2. LIST latency of 10,000 pods (JSON, and as a Table as kubectl asks);
  3. watch delivery latency p50/p99 to 100 watchers (time from a write's
     acknowledgement start to each watcher receiving its event).
Prints figures next to the goals from the issue.  Usage:
  .venv/bin/python bench/api.py [--objects 10000] [--clients 16] [--watchers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.testing import ClusterHandle, new_cluster_name  # noqa: E402


def _ssl(c: ClusterHandle) -> ssl.SSLContext:
    pki = c.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


async def creates(c: ClusterHandle, n: int, clients: int, ns: str, kind: str) -> float:
    ctx = _ssl(c)
    url = f"{c.server}/api/v1/namespaces/{ns}/{kind}"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    def body(i: int) -> bytes:
        if kind == "pods":
            return json.dumps({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": f"p{i}", "labels": {"app": "bench"}},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}).encode()
        return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": f"c{i}"}, "data": {"k": "v"}}).encode()

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            async with session.post(url, data=body(i), headers={"Content-Type": "application/json"}) as r:
                if r.status != 201:
                    raise RuntimeError(f"create failed: {r.status} {await r.text()}")
                await r.read()

    conn = aiohttp.TCPConnector(ssl=ctx, limit=clients)
    async with aiohttp.ClientSession(connector=conn) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return n / (time.perf_counter() - start)


async def list_latency(c: ClusterHandle, ns: str, table: bool, rounds: int = 5) -> tuple[float, int]:
    ctx = _ssl(c)
    accept = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json" if table else "application/json")
    times = []
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        for _ in range(rounds):
            start = time.perf_counter()
            async with s.get(f"{c.server}/api/v1/namespaces/{ns}/pods", headers={"Accept": accept}) as r:
                data = await r.read()
            times.append(time.perf_counter() - start)
            doc = json.loads(data)
            count = len(doc.get("rows", doc.get("items", [])))
    return statistics.median(times), count


async def watch_latency(c: ClusterHandle, watchers: int, events: int) -> tuple[float, float]:
    ctx = _ssl(c)
    sent: dict[str, float] = {}
    delays: list[float] = []
    ready = 0
    conn = aiohttp.TCPConnector(ssl=ctx, limit=watchers + 4)
    async with aiohttp.ClientSession(connector=conn) as s:
        rv = (await (await s.get(f"{c.server}/api/v1/namespaces/wbench/configmaps")).json())["metadata"]["resourceVersion"]

        async def follow() -> None:
            nonlocal ready
            url = f"{c.server}/api/v1/namespaces/wbench/configmaps?watch=true&resourceVersion={rv}"
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
                ready += 1
                got = 0
                async for line in r.content:
                    ev = json.loads(line)
                    name = ev["object"]["metadata"]["name"]
                    delays.append(time.perf_counter() - sent[name])
                    got += 1
                    if got == events:
                        return

        tasks = [asyncio.create_task(follow()) for _ in range(watchers)]
        while ready < watchers:
            await asyncio.sleep(0.01)
        for i in range(events):
            name = f"w{i}"
            sent[name] = time.perf_counter()
            async with s.post(f"{c.server}/api/v1/namespaces/wbench/configmaps",
                              data=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
                              headers={"Content-Type": "application/json"}) as r:
                await r.read()
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    delays.sort()
    return delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--events", type=int, default=50)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    c = ClusterHandle(new_cluster_name("b"), root)
    t0 = time.perf_counter()
    c.up()
    up_s = time.perf_counter() - t0
    try:
        for ns in ("bench", "lbench", "wbench"):
            c.kubectl("create", "namespace", ns)
        rate = asyncio.run(creates(c, args.objects, args.clients, "bench", "configmaps"))
        asyncio.run(creates(c, args.objects, args.clients, "lbench", "pods"))
        list_json, n = asyncio.run(list_latency(c, "lbench", table=False))
        list_table, _ = asyncio.run(list_latency(c, "lbench", table=True))
        p50, p99 = asyncio.run(watch_latency(c, args.watchers, args.events))
    finally:
        c.down()
    rows = [
        ("kinns up (API ready)", f"{up_s:.2f} s", "-"),
        (f"durable creates/s ({args.clients} clients, {args.objects} objects)", f"{rate:,.0f}/s", ">= 1,000/s"),
        (f"LIST {n} pods, JSON (median of 5)", f"{list_json * 1000:.0f} ms", "< 500 ms"),
        (f"LIST {n} pods, Table (median of 5)", f"{list_table * 1000:.0f} ms", "< 500 ms"),
        (f"watch delivery p50 ({args.watchers} watchers)", f"{p50 * 1000:.1f} ms", "-"),
        (f"watch delivery p99 ({args.watchers} watchers)", f"{p99 * 1000:.1f} ms", "< 50 ms"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'kinns':>12}  goal")
    for name, val, goal in rows:
        print(f"{name:<{width}}  {val:>12}  {goal}")


if __name__ == "__main__":
    main()
