"""The `kinns trace` command: options, errors as one line, text or JSON out, exit 1 when not answered."""

from __future__ import annotations

import json

import click

from ..cli import NAME_OPTION, _fail, _running


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@NAME_OPTION
@click.option("-n", "--namespace", default="default", show_default=True, help="namespace of pods and Services")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--timeout", type=click.FloatRange(0.05, 60), default=2.0, show_default=True,
              help="seconds to wait for the answer")
@click.option("--protocol", type=click.Choice(["tcp", "udp", "icmp"]), default=None,
              help="override the probe's protocol (default: the Service port's, else TCP; ICMP without a port)")
@click.argument("source")
@click.argument("dest")
def trace(name: str, namespace: str, output: str, timeout: float, protocol: str | None, source: str,
          dest: str) -> None:
    """Send one real probe from SOURCE to DEST and show, from what the nodes' kernels
    did, the path it took: DNS, veth, bridge, routing, the kube-proxy rule and
    endpoint, NAT, NetworkPolicy, encapsulation, arrival and the answer.

    SOURCE: pod/NAME, node/NAME or host.  DEST: svc/NAME[:PORT], pod/NAME:PORT,
    ADDRESS[:PORT] (NodePort, LoadBalancer, pod IP), http://ADDRESS[:PORT]/PATH
    (an Ingress path) or a DNS name[:PORT].  Exits 1 when the probe got no answer.
    """
    from .targets import TargetError
    from .kernel import KernelError
    from .tracer import run
    from .text import render
    cfg = _running(name)
    try:
        result = run(cfg, source, dest, namespace=namespace, timeout=timeout, protocol=protocol)
    except (TargetError, KernelError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("trace interrupted (its rules were removed)")
    click.echo(json.dumps(result, indent=2) if output == "json" else render(result))
    if not result["ok"]:
        raise SystemExit(1)
