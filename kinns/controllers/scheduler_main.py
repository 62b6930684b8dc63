"""`python -m kinns.controllers.scheduler_main --kubeconfig=FILE [flags]`: kube-scheduler.

What the `registry.k8s.io/kube-scheduler` static pod runs: the default
scheduler (scheduler.py) over HTTPS as `system:kube-scheduler`, leading
through the Lease `kube-system/kube-scheduler` (`--leader-elect`, default
on), with upstream's flags and exit codes (see app.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ..client import Client, InformerFactory
from ..klog import info, setup
from .app import VERSION, add_common_flags, exit_now, forever, kube_client, leader_election_flags, run_component
from .manager import start_scheduler

COMPONENT = "kube-scheduler"
log = logging.getLogger(COMPONENT)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=COMPONENT)
    add_common_flags(ap, COMPONENT)
    ap.add_argument("--config", default="", help="The path to the configuration file (kinns reads no profiles).")
    return ap


def main(argv: list[str] | None = None) -> int:
    args, unknown = parser().parse_known_args(argv)
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    if unknown:
        print(f"Error: unknown flag: {unknown[0].split('=')[0]}", file=sys.stderr)
        return 1
    try:
        client, _ = kube_client(args.kubeconfig, COMPONENT)
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(_run(args, client))


async def _run(args: argparse.Namespace, client: Client) -> int:
    info(log, "server.go:166", "Starting Kubernetes Scheduler", version=VERSION)

    async def work() -> None:
        factory = InformerFactory(client)
        stop = await start_scheduler(client, factory)
        try:
            await forever()
        finally:
            await stop()
            await factory.stop()

    code = await run_component(COMPONENT, client, work, leader_election_flags(args), source="server.go")
    if code != 0:
        exit_now(code)
    await client.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
