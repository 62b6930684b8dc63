"""`python -m kinns.controllers --kubeconfig=FILE [flags]`: kube-controller-manager.

What the `registry.k8s.io/kube-controller-manager` static pod runs on the
control-plane node.  Flags are upstream's (`--controllers`,
`--allocate-node-cidrs`, `--cluster-cidr`, `--node-cidr-mask-size`,
`--service-cluster-ip-range`, `--use-service-account-credentials`,
`--node-monitor-grace-period`, `--horizontal-pod-autoscaler-sync-period`,
`--horizontal-pod-autoscaler-downscale-stabilization`, `--root-ca-file`, the `--leader-elect*`
family), plus kinns's `--state-dir` (or `--cluster-name`, looked up under
$KINNS_STATE_DIR): the local-path provisioner keeps volumes there and the
load-balancer controller reads the cluster's address pool from it.
Unknown flags are refused, as pflag refuses them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..client import Client, InformerFactory
from ..client.transport import make_ssl_context
from ..cluster.config import ClusterConfig
from ..klog import info, setup
from .app import (VERSION, LeaderElectionFlags, add_bool, add_common_flags, duration, exit_now, forever,
                  kube_client, leader_election_flags, run_component)
from .clientbuilder import ClientBuilder, ServiceAccountClientBuilder, SimpleClientBuilder
from .manager import ControllerOptions, start_controllers, validate_controllers

COMPONENT = "kube-controller-manager"
log = logging.getLogger(COMPONENT)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=COMPONENT)
    add_common_flags(ap, COMPONENT)
    add_bool(ap, "--allocate-node-cidrs", False, "Should CIDRs for Pods be allocated and set on the cloud provider.")
    ap.add_argument("--cluster-cidr", default="", help="CIDR Range for Pods in cluster.")
    ap.add_argument("--node-cidr-mask-size", type=int, default=24, help="Mask size for node cidr in cluster.")
    ap.add_argument("--service-cluster-ip-range", default="", help="CIDR Range for Services in cluster.")
    ap.add_argument("--controllers", default="*", help="A list of controllers to enable. '*' enables all on-by-"
                    "default controllers, 'foo' enables the controller named 'foo', '-foo' disables it.")
    add_bool(ap, "--use-service-account-credentials", False,
             "If true, use individual service account credentials for each controller.")
    ap.add_argument("--node-monitor-grace-period", type=duration, default=50.0,
                    help="Amount of time which we allow running Node to be unresponsive before marking it unhealthy.")
    ap.add_argument("--horizontal-pod-autoscaler-sync-period", type=duration, default=15.0,
                    help="The period for syncing the number of pods in horizontal pod autoscaler.")
    ap.add_argument("--horizontal-pod-autoscaler-downscale-stabilization", type=duration, default=300.0,
                    help="Period for which autoscaler will look backwards and not scale down below any "
                         "recommendation it made during that period.")
    ap.add_argument("--root-ca-file", default="", help="If set, this root certificate authority will be included "
                    "in service account's token secret.")
    ap.add_argument("--cluster-name", default="kubernetes", help="The instance prefix for the cluster.")
    ap.add_argument("--state-dir", default="", help="(kinns) the cluster's state directory.")
    # kubeadm passes these; kinns's API server signs what they would sign.
    for flag in ("--cluster-signing-cert-file", "--cluster-signing-key-file", "--service-account-private-key-file"):
        ap.add_argument(flag, default="")
    return ap


def load_cluster(args: argparse.Namespace) -> ClusterConfig:
    if args.state_dir:
        return ClusterConfig.load_from(Path(args.state_dir))
    cfg = ClusterConfig.load(args.cluster_name)
    if cfg is None:
        raise ValueError(f"no kinns cluster named {args.cluster_name!r}: pass --state-dir=<its state directory>")
    return cfg


def options(args: argparse.Namespace, cfg: ClusterConfig, kc: dict[str, Any]) -> ControllerOptions:
    """Flags over the cluster's settings; the root CA from --root-ca-file, else the kubeconfig's (as upstream)."""
    opts = ControllerOptions.from_config(cfg)
    ca = opts.root_ca_pem
    if args.root_ca_file:
        ca = Path(args.root_ca_file).read_text()
    elif kc.get("ca_data"):
        ca = kc["ca_data"].decode()
    elif kc.get("ca_file"):
        ca = Path(kc["ca_file"]).read_text()
    return replace(opts, root_ca_pem=ca, allocate_node_cidrs=args.allocate_node_cidrs,
                   cluster_cidr=args.cluster_cidr or opts.cluster_cidr,
                   node_cidr_mask_size=args.node_cidr_mask_size,
                   service_cluster_ip_range=args.service_cluster_ip_range or opts.service_cluster_ip_range,
                   node_monitor_grace_period=args.node_monitor_grace_period,
                   horizontal_pod_autoscaler_sync_period=args.horizontal_pod_autoscaler_sync_period,
                   horizontal_pod_autoscaler_downscale_stabilization=args.horizontal_pod_autoscaler_downscale_stabilization)


def client_builder(args: argparse.Namespace, client: Client, kc: dict[str, Any]) -> ClientBuilder:
    if not args.use_service_account_credentials:
        return SimpleClientBuilder(client)
    ca = make_ssl_context(kc.get("ca_file"), ca_data=kc.get("ca_data"))
    return ServiceAccountClientBuilder(client, kc["server"], ca)


def main(argv: list[str] | None = None) -> int:
    args, unknown = parser().parse_known_args(argv)
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    if unknown:
        print(f"Error: unknown flag: {unknown[0].split('=')[0]}", file=sys.stderr)
        return 1
    try:
        selection = validate_controllers([c.strip() for c in args.controllers.split(",") if c.strip()])
        cfg = load_cluster(args)
        client, kc = kube_client(args.kubeconfig, COMPONENT)
        opts = options(args, cfg, kc)
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(_run(args, cfg, opts, selection, client, kc))


async def _run(args: argparse.Namespace, cfg: ClusterConfig, opts: ControllerOptions, selection: list[str],
               client: Client, kc: dict[str, Any]) -> int:
    info(log, "controllermanager.go:185", "Starting", version=VERSION)
    le: LeaderElectionFlags = leader_election_flags(args)

    async def work() -> None:
        factory = InformerFactory(client)
        try:
            stop = await start_controllers(client_builder(args, client, kc), factory, cfg, options=opts,
                                           selection=selection)
        except Exception as exc:
            await factory.stop()
            raise RuntimeError(f"error starting controllers: {exc}") from exc
        try:
            await forever()
        finally:
            await stop()

    code = await run_component(COMPONENT, client, work, le)
    if code != 0:
        exit_now(code)
    await client.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
