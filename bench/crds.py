"""Custom resource benchmark: CR creates/s beside ConfigMap creates/s, and a Table LIST of them.

Starts a real cluster with `kinns up`, applies a CRD with a schema (pattern,
bounds, defaults, the status and scale subresources, printer columns) and
measures over HTTPS with the admin certificate, as kubectl connects:
  1. creates per second of N custom resources with C concurrent clients
     (every one pruned, defaulted and validated against the schema), next to
     the same number of ConfigMaps (a built-in kind with little validation);
  2. latency of listing them all as the Table `kubectl get` asks for
     (printer columns evaluated per row).
Usage:
  .venv/bin/python bench/crds.py [--objects 2000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.testing import ClusterHandle, new_cluster_name  # noqa: E402

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.bench.kinns.dev"},
    "spec": {"group": "bench.kinns.dev", "scope": "Namespaced",
             "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                    "statusReplicasPath": ".status.replicas"}},
                           "additionalPrinterColumns": [
                               {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                               {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                               {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                               "type": "object", "required": ["cronSpec"], "properties": {
                                   "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                                   "image": {"type": "string", "maxLength": 200},
                                   "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}}}}}}}]}}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _ssl(c: ClusterHandle) -> ssl.SSLContext:
    pki = c.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


async def creates(c: ClusterHandle, url: str, n: int, clients: int, body: Callable[[int], dict[str, Any]]) -> float:
    """Objects created per second; every answer must be 201."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            async with session.post(url, data=json.dumps(body(i)),
                                    headers={"Content-Type": "application/json"}) as r:
                if r.status != 201:
                    raise RuntimeError(f"create {i}: {r.status} {await r.text()}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ssl(c), limit=clients)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return n / (time.perf_counter() - start)


async def table_list(c: ClusterHandle, url: str) -> tuple[float, int]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ssl(c))) as session:
        start = time.perf_counter()
        async with session.get(url, headers={"Accept": TABLE}) as r:
            rows = len((await r.json())["rows"])
        return time.perf_counter() - start, rows


async def run(c: ClusterHandle, n: int, clients: int) -> None:
    c.kubectl("apply", "-f", "-", stdin=json.dumps(CRD))
    cr_url = f"{c.server}/apis/bench.kinns.dev/v1/namespaces/default/crontabs"
    cm_url = f"{c.server}/api/v1/namespaces/default/configmaps"
    cr_rate = await creates(c, cr_url, n, clients, lambda i: {
        "apiVersion": "bench.kinns.dev/v1", "kind": "CronTab", "metadata": {"name": f"ct{i}"},
        "spec": {"cronSpec": "*/5 * * * *", "image": "busybox", "unknown": i}})
    cm_rate = await creates(c, cm_url, n, clients, lambda i: {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm{i}"}, "data": {"k": "v"}})
    seconds, rows = await table_list(c, cr_url)
    print(f"custom resource creates/s ({clients} clients, {n} objects): {cr_rate:8.0f}")
    print(f"ConfigMap creates/s       ({clients} clients, {n} objects): {cm_rate:8.0f}")
    print(f"Table LIST of {rows} custom resources (printer columns):  {seconds * 1000:8.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kinns-bench-crds-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    c = ClusterHandle(new_cluster_name(), root)
    c.up()
    try:
        asyncio.run(run(c, args.objects, args.clients))
    finally:
        c.down()


if __name__ == "__main__":
    main()
