"""`python -m kinns.netpol [--hostname-override=NODE] [--kubeconfig=FILE]`: the NetworkPolicy agent.

What the `registry.k8s.io/networking/kube-network-policies` image runs in
the `kube-network-policies` DaemonSet's pods (see kinns/node/images.py and
kinns/cluster/addons.py).  The node name comes from `--hostname-override`,
then $MY_NODE_NAME / $NODE_NAME, then the hostname, as upstream's agent
finds it; the kubeconfig from `--kubeconfig`, else the credentials kinns
mounts for the pod.  Flags of upstream's agent that kinns has no use for
(`--nfqueue-id`, `--fail-open`, `--v`, ...) are accepted and ignored.

On SIGTERM the table is left in place, so a restarting agent never opens
a gap in enforcement; the next agent takes the table over.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys

from ..klog import setup
from ..signals import run_until_signalled
from .agent import Agent, build

DEFAULT_KUBECONFIG = "/var/run/secrets/kinns.io/credentials/kubeconfig"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kube-network-policies")
    ap.add_argument("--hostname-override", default="")
    ap.add_argument("--kubeconfig", default="")
    ap.add_argument("--v", type=int, default=0)
    args, _unknown = ap.parse_known_args(argv)
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    node = (args.hostname_override or os.environ.get("MY_NODE_NAME") or os.environ.get("NODE_NAME")
            or socket.gethostname()).lower()
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    return asyncio.run(_run(build(kubeconfig, node)))


async def _run(agent: Agent) -> int:
    try:
        await run_until_signalled(agent.run())
    finally:
        await agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
