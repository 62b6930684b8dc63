"""The `kinns ui` command: serve the live diagram of one cluster on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys

import click

from ..cli import NAME_OPTION, _fail, _running
from ..cluster.config import ClusterConfig


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@NAME_OPTION
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="port to serve on (0: any free port)")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="loopback address to bind (the page can read node rules and run traces: it is never served "
                   "to the network)")
def ui(name: str, port: int, address: str) -> None:
    """Serve a live web view of the cluster: fabric, nodes, pods, Services, rules and traces."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        _fail(f"--address {address!r} is not an IP address; use 127.0.0.1")
    if not loopback:
        _fail(f"--address {address} is not a loopback address; kinns ui serves only this machine "
              "(use 127.0.0.1 or ::1, and an SSH tunnel to reach it from elsewhere)")
    cfg = _running(name)
    try:
        asyncio.run(_serve(cfg, address, port))
    except OSError as exc:
        _fail(f"cannot serve on {address}:{port}: {exc.strerror or exc}; pick another with --port")


async def _serve(cfg: ClusterConfig, address: str, port: int) -> None:
    from aiohttp import web

    from ..client import Client, HttpTransport
    from .server import UiServer

    client = Client(HttpTransport.from_kubeconfig(cfg.state_dir / "kubeconfig"), user_agent="kinns-ui")
    server = UiServer(cfg, client)
    runner = web.AppRunner(server.app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, address, port)
        await site.start()      # a taken port fails here, before the watches start
        await server.start()    # the URL is printed once the diagram holds the whole cluster
        bound = runner.addresses[0][1] if runner.addresses else port
        host = f"[{address}]" if ":" in address else address
        click.echo(f"kinns ui: cluster {cfg.name} at http://{host}:{bound}/ (Ctrl-C to stop)")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await server.stop()
        await runner.cleanup()
        await client.close()
