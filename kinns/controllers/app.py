"""What kube-controller-manager and kube-scheduler share as processes.

Both are started by the control-plane node's kubelet as static pods: they
load a kubeconfig (`<state>/kubeconfigs/controller-manager.conf`,
`scheduler.conf`) and talk HTTPS to the API with that identity, take their
Lease in kube-system before doing anything (`--leader-elect`, default on,
upstream's flags and timings), and log in klog's format to stderr, where
`kubectl logs -n kube-system kube-controller-manager-<node>` reads it.

Exit codes are upstream's: SIGTERM/SIGINT stop the work, release the
lease and exit 0 ("Requested to terminate, exiting"); a lost lease exits 1
at once ("Leaderelection lost"), because another replica may already be
acting, and the kubelet restarts the container into a fresh candidate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from ..api.discovery import VERSION_INFO
from ..client import Client, HttpTransport, load_kubeconfig
from ..client.leaderelection import LeaderElectionConfig, LeaderElector, LeaseLock, new_identity
from ..klog import info
from ..signals import run_until_signalled

VERSION = VERSION_INFO["gitVersion"]
Work = Callable[[], Coroutine[Any, Any, None]]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration(text: str) -> float:
    """A Go duration flag value ("15s", "1m30s", "500ms") in seconds."""
    if text == "0":
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
    return sum(float(n) * _UNIT[u] for n, u in parts)


def go_bool(text: str) -> bool:
    """A Go bool flag value (`--flag=false`)."""
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def add_bool(ap: argparse.ArgumentParser, flag: str, default: bool, help: str) -> None:
    """`--flag`, `--flag=true|false`, as pflag's bool flags."""
    ap.add_argument(flag, type=go_bool, nargs="?", const=True, default=default, help=help)


@dataclass(frozen=True)
class LeaderElectionFlags:
    leader_elect: bool
    resource_name: str
    resource_namespace: str
    config: LeaderElectionConfig


def add_common_flags(ap: argparse.ArgumentParser, component: str) -> None:
    """--kubeconfig, --v and upstream's --leader-elect* flags with their defaults."""
    ap.add_argument("--kubeconfig", default="", help="Path to kubeconfig file with authorization and master location")
    ap.add_argument("--v", type=int, default=0, help="number for the log level verbosity")
    add_bool(ap, "--leader-elect", True, "Start a leader election client and gain leadership before executing "
                                         "the main loop.")
    ap.add_argument("--leader-elect-lease-duration", type=duration, default=15.0)
    ap.add_argument("--leader-elect-renew-deadline", type=duration, default=10.0)
    ap.add_argument("--leader-elect-retry-period", type=duration, default=2.0)
    ap.add_argument("--leader-elect-resource-lock", default="leases", choices=["leases"])
    ap.add_argument("--leader-elect-resource-name", default=component)
    ap.add_argument("--leader-elect-resource-namespace", default="kube-system")
    # Accepted for manifest compatibility; kinns serves no component HTTPS endpoint yet.
    for flag in ("--authentication-kubeconfig", "--authorization-kubeconfig", "--bind-address", "--secure-port",
                 "--client-ca-file", "--requestheader-client-ca-file", "--profiling"):
        ap.add_argument(flag, default="")


def leader_election_flags(args: argparse.Namespace) -> LeaderElectionFlags:
    cfg = LeaderElectionConfig(lease_duration=args.leader_elect_lease_duration,
                               renew_deadline=args.leader_elect_renew_deadline,
                               retry_period=args.leader_elect_retry_period)
    return LeaderElectionFlags(args.leader_elect, args.leader_elect_resource_name,
                               args.leader_elect_resource_namespace, cfg)


def kube_client(kubeconfig: str, component: str) -> tuple[Client, dict[str, Any]]:
    """An HTTPS client with the kubeconfig's identity, and the resolved kubeconfig."""
    if not kubeconfig:
        raise ValueError("--kubeconfig is required (kinns components never run in-cluster)")
    kc = load_kubeconfig(kubeconfig)
    transport = HttpTransport(kc["server"], ssl_context=kc["ssl_context"], token=kc.get("token"))
    return Client(transport, user_agent=f"{component}/{VERSION} (linux/amd64) kubernetes/{VERSION_INFO['gitCommit']}"), kc


async def run_component(component: str, client: Client, work: Work, le: LeaderElectionFlags, *,
                        source: str = "controllermanager.go") -> int:
    """Run `work` (while leading, with --leader-elect) until a signal or a lost lease; the exit code.

    0 after a signal, 1 after a lost lease, 255 (klog.Fatal's) when the work failed.
    """
    log = logging.getLogger(component)
    await client.wait_until_healthy()
    if le.leader_elect:
        lock = LeaseLock(client, le.resource_namespace, le.resource_name, new_identity(), event_component=component)
        main = LeaderElector(lock, le.config, on_started_leading=work).run()
    else:
        main = work()
    try:
        if await run_until_signalled(main):
            info(log, f"{source}:312", "Requested to terminate, exiting")
            return 0
    except Exception as exc:  # noqa: BLE001 - reported as klog.Fatal would
        log.critical("%s", exc, extra={"source": f"{source}:250"}, exc_info=not str(exc))
        return 255
    if le.leader_elect:
        log.error("Leaderelection lost", extra={"source": f"{source}:319"})
    else:
        log.error("the main loop ended unexpectedly", extra={"source": f"{source}:319"})
    return 1


async def forever() -> None:
    """Park the leading work: the controllers run in their own tasks until cancelled."""
    await asyncio.Event().wait()


def exit_now(code: int) -> None:
    """Flush the log and exit without unwinding (upstream's klog.FlushAndExit after a lost lease):
    a deposed leader must stop acting at once, not after a graceful stop."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)
