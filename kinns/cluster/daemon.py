"""The cluster daemon: one process that runs a cluster's control plane.

`kinns up` starts it detached (`python -m kinns.cluster.daemon NAME`); it
opens the store, installs the add-ons (kube-proxy), serves the API over
HTTPS on the host's 127.0.0.1:<port> and on the control-plane node's
<IP>:6443, runs the controllers over the in-process client transport
(`controlplane.py`), starts the nodes, and writes `ready` in the state
directory once the API answers.  SIGTERM shuts it down cleanly; SIGUSR1
stops the control plane alone and SIGUSR2 starts it again; after a
SIGKILL, `kinns down` still finds everything by name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Awaitable, Callable

from ..api.http import server_ssl_context
from ..api.server import ApiServer
from ..api.store.sqlite import SqliteStore
from ..net.fabric import Fabric, choose_subnet
from . import addons
from .certs import component_identities, ensure_pki, ensure_sa_keypair
from .config import ClusterConfig
from .controlplane import NODE_API_PORT, ControlPlane
from .progress import report

log = logging.getLogger("kinns.daemon")

# Components that run beside the API: each gets the ApiServer and returns a
# coroutine to stop it.  Filled by later layers (controllers, nodes).
Component = Callable[[ApiServer, ClusterConfig], Awaitable[Callable[[], Awaitable[None]]]]


def components() -> list[Component]:
    from ..node.agents import start_nodes
    return [start_nodes]


async def run(cfg: ClusterConfig) -> None:
    state = cfg.state_dir
    ready = state / "ready"
    ready.unlink(missing_ok=True)
    if not cfg.fabric_subnet:
        cfg.fabric_subnet = choose_subnet(cfg.name)
        cfg.save()
    plan = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)
    cp_node = plan[0]
    certs = ensure_pki(state / "pki", ["localhost", "kubernetes", "kubernetes.default",
                                       "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                                       cp_node.name],
                       [cfg.api_host, "127.0.0.1", "10.96.0.1", cp_node.ip])
    sa_key, sa_pub = ensure_sa_keypair(state / "pki")
    component_identities(state / "pki", [n.name for n in plan], f"https://{cp_node.ip}:{NODE_API_PORT}",
                         state / "kubeconfigs")
    store = SqliteStore(state / "state.db")
    api = ApiServer(store, service_cidr=cfg.service_cidr, node_port_range=cfg.node_port_range,
                    advertise_address=cp_node.ip, secure_port=NODE_API_PORT)
    # --authorization-mode=Node,RBAC with x509, ServiceAccount-token and anonymous authentication.
    api.configure_auth_from_files(sa_key, sa_pub)
    await api.bootstrap()
    await addons.install(api, cfg, cp_node.ip, NODE_API_PORT)
    plane = ControlPlane(api, cfg, server_ssl_context(str(certs.server_cert), str(certs.server_key),
                                                      str(certs.ca_cert)))
    api.listen_in_node = plane.listen_in_node
    await plane.start()
    report(state, f"API server listening on {cfg.server_url} and https://{cp_node.ip}:{NODE_API_PORT}")
    stops: list[Callable[[], Awaitable[None]]] = []
    for comp in components():
        stops.append(await comp(api, cfg))
    ready.write_text(str(os.getpid()))
    log.info("cluster %s serving on %s", cfg.name, cfg.server_url)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(plane.stop()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(plane.start()))
    await stop.wait()
    log.info("shutting down")
    for s in reversed(stops):
        try:
            await s()
        except Exception:  # keep shutting down the rest
            log.exception("component stop failed")
    await plane.close()
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

