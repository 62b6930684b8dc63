"""`python -m kinns.proxy --config=FILE [--hostname-override=NODE]`: run kube-proxy.

What the `registry.k8s.io/kube-proxy` image runs in the kube-proxy
DaemonSet's pods (see kinns/node/images.py).  The node name comes from
`--hostname-override`, then the config's `hostnameOverride`, then
$NODE_NAME, then the hostname, as upstream.
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
from .server import ProxyConfig, build

log = logging.getLogger("kube-proxy")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kube-proxy")
    ap.add_argument("--config", required=True)
    ap.add_argument("--hostname-override", default="")
    ap.add_argument("--v", type=int, default=0)
    args, _unknown = ap.parse_known_args(argv)
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    try:
        cfg = ProxyConfig.load(args.config)
    except (OSError, ValueError) as e:
        print(f'E0000 "Error running ProxyServer" err="{e}"', file=sys.stderr)
        return 1
    node = (args.hostname_override or cfg.hostname_override or os.environ.get("NODE_NAME")
            or socket.gethostname()).lower()
    return asyncio.run(_run(cfg, node))


async def _run(cfg: ProxyConfig, node: str) -> int:
    server = build(cfg, node)
    try:
        await run_until_signalled(server.run())
    except SystemExit as e:
        log.error("Error running ProxyServer", extra={"source": "server.go:548", "kv": {"err": str(e.code)}})
        return 1
    finally:
        await server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
