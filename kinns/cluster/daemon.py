"""The cluster daemon: one process that runs a cluster's control plane.

`kinns up` starts it detached (`python -m kinns.cluster.daemon NAME`); it
opens the store, serves the API over HTTPS, runs the controllers over the
in-process client transport, and writes `ready` in the state directory once
the API answers.  SIGTERM shuts it down cleanly; after a SIGKILL, `kinns
down` still finds everything by name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Awaitable, Callable

from ..api.http import serve, server_ssl_context
from ..api.server import ApiServer
from ..api.store.sqlite import SqliteStore
from .certs import ensure_pki
from .config import ClusterConfig
from .progress import report

log = logging.getLogger("kinns.daemon")

# Components that run beside the API: each gets the ApiServer and returns a
# coroutine to stop it.  Filled by later layers (controllers, nodes).
Component = Callable[[ApiServer, ClusterConfig], Awaitable[Callable[[], Awaitable[None]]]]


def components() -> list[Component]:
    from ..controllers.manager import start_controllers
    from ..node.agents import start_nodes
    return [start_controllers, start_nodes]


async def run(cfg: ClusterConfig) -> None:
    state = cfg.state_dir
    ready = state / "ready"
    ready.unlink(missing_ok=True)
    certs = ensure_pki(state / "pki", ["localhost", "kubernetes", "kubernetes.default",
                                       "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
                       [cfg.api_host, "127.0.0.1", "10.96.0.1"])
    store = SqliteStore(state / "state.db")
    api = ApiServer(store, service_cidr=cfg.service_cidr, node_port_range=cfg.node_port_range,
                    advertise_address=cfg.api_host, secure_port=cfg.api_port)
    await api.bootstrap()
    report(state, f"API server listening on {cfg.server_url}")
    runner = await serve(api, cfg.api_host, cfg.api_port,
                         server_ssl_context(str(certs.server_cert), str(certs.server_key), str(certs.ca_cert)),
                         upgrade_handlers=api.upgrade_handlers)
    stops: list[Callable[[], Awaitable[None]]] = []
    for comp in components():
        stops.append(await comp(api, cfg))
    ready.write_text(str(os.getpid()))
    log.info("cluster %s serving on %s", cfg.name, cfg.server_url)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    for s in reversed(stops):
        try:
            await s()
        except Exception:  # keep shutting down the rest
            log.exception("component stop failed")
    await runner.cleanup()
    await store.close()
    ready.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = ClusterConfig.load(args[0])
    if cfg is None:
        raise SystemExit(f"no configuration for cluster {args[0]!r}")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(run(cfg))


if __name__ == "__main__":
    main()

