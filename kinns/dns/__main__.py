"""`python -m kinns.dns -conf /etc/coredns/Corefile`: run the cluster DNS server (CoreDNS's flags).

What the `registry.k8s.io/coredns/coredns` image runs in the `coredns`
pods.  Flags as CoreDNS spells them (one dash): `-conf`, `-dns.port`,
`-version`, `-quiet`; and kinns's own `-fixtures FILE` to serve API
objects from a file instead of watching an API server (tests, benchmark).
The API credentials come from the `kubeconfig PATH [CONTEXT]` line of the
kubernetes block, else $KUBECONFIG, else the kubeconfig in kinns's
credentials Secret (/var/run/secrets/kinns.io/credentials/kubeconfig),
else the pod's service-account token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .metrics import GOVERSION, REVISION, VERSION
from .server import DnsServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="coredns", prefix_chars="-")
    ap.add_argument("-conf", "--conf", default="Corefile")
    ap.add_argument("-dns.port", "--dns.port", dest="port", type=int, default=None)
    ap.add_argument("-fixtures", "--fixtures", default=None)
    ap.add_argument("-version", "--version", action="store_true")
    ap.add_argument("-quiet", "--quiet", action="store_true")
    args, _unknown = ap.parse_known_args(argv)
    if args.version:
        print(f"CoreDNS-{VERSION}\nlinux/amd64, {GOVERSION}, {REVISION}")
        return 0
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s")
    return asyncio.run(_run(DnsServer(args.conf, fixtures=args.fixtures, port=args.port)))


async def _run(server: DnsServer) -> int:
    task = asyncio.ensure_future(server.run())
    loop = asyncio.get_running_loop()

    def stop() -> None:
        """SIGTERM: unready at once, keep answering through the lameduck period, then exit (CoreDNS health)."""
        if server.shutting_down:
            task.cancel()
            return
        server.shutting_down = True
        if server.lameduck > 0:
            server.out.info(f"plugin/health: Going into lameduck mode for {server.lameduck:g}s")
        loop.call_later(server.lameduck, task.cancel)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
