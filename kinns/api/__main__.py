"""`python -m kinns.api`: kube-apiserver, as the control-plane node's static pod runs it.

The `registry.k8s.io/kube-apiserver` image of `/etc/kubernetes/manifests/
kube-apiserver.yaml` runs this (see kinns/node/images.py), with kubeadm's
flags: it opens the store named by `--etcd-servers` (`sqlite://<file>` for
the embedded default, `http://host:2379` for etcd), loads the cluster CA,
its serving certificate and the ServiceAccount keys, bootstraps the
built-in objects (RBAC policy, the `kubernetes` Service, namespaces) and
the add-ons (kube-proxy, CoreDNS), and serves HTTPS on
`--bind-address:--secure-port` inside the control-plane node's network
namespace (the pod is hostNetwork).  The host reaches it through the port
the cluster daemon publishes, as kind's docker port mapping does.

`--kinns-state-dir` names the cluster's state directory (kinns-specific:
the add-ons need the cluster's settings).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from ..klog import setup
from ..cluster.config import ClusterConfig

log = logging.getLogger("kube-apiserver")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="kube-apiserver")
    ap.add_argument("--advertise-address", required=True)
    ap.add_argument("--bind-address", default="0.0.0.0")
    ap.add_argument("--secure-port", type=int, default=6443)
    ap.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    ap.add_argument("--service-node-port-range", default="30000-32767")
    ap.add_argument("--etcd-servers", default="")
    ap.add_argument("--tls-cert-file", default="")
    ap.add_argument("--tls-private-key-file", default="")
    ap.add_argument("--client-ca-file", default="")
    ap.add_argument("--service-account-key-file", default="")
    ap.add_argument("--service-account-signing-key-file", default="")
    ap.add_argument("--kubelet-client-certificate", default="")
    ap.add_argument("--kubelet-client-key", default="")
    ap.add_argument("--kubelet-certificate-authority", default="")
    ap.add_argument("--kinns-state-dir", required=True)
    ap.add_argument("--v", type=int, default=0)
    args, _unknown = ap.parse_known_args(argv)   # flags we only state (authorization-mode, ...) are accepted
    return args


async def run(args: argparse.Namespace) -> int:
    from ..cluster import addons
    from .http import make_app, server_ssl_context
    from .nodeproxy import KubeletClientConfig
    from .server import ApiServer
    from .store.factory import open_store

    from aiohttp import web

    state = Path(args.kinns_state_dir)
    cfg = ClusterConfig.load_from(state)
    lo, hi = (int(x) for x in args.service_node_port_range.split("-"))
    pki = state / "pki"
    store = open_store(cfg, args.etcd_servers)
    api = ApiServer(store, service_cidr=args.service_cluster_ip_range, node_port_range=(lo, hi),
                    advertise_address=args.advertise_address, secure_port=args.secure_port)
    api.configure_auth_from_files(Path(args.service_account_signing_key_file or pki / "sa.key"),
                                  Path(args.service_account_key_file or pki / "sa.pub"))
    await api.bootstrap()
    await addons.install(api, cfg, args.advertise_address, args.secure_port)
    ssl_ctx = server_ssl_context(args.tls_cert_file or str(pki / "apiserver.crt"),
                                 args.tls_private_key_file or str(pki / "apiserver.key"),
                                 args.client_ca_file or str(pki / "ca.crt"))
    # logs/exec/attach/port-forward go to the kubelets (nodeproxy.py) with this identity.
    api.node_proxy.configure(KubeletClientConfig(
        Path(args.kubelet_client_certificate or pki / "apiserver-kubelet-client.crt"),
        Path(args.kubelet_client_key or pki / "apiserver-kubelet-client.key"),
        Path(args.kubelet_certificate_authority or pki / "ca.crt")))
    runner = web.AppRunner(make_app(api), access_log=None, handle_signals=False,
                           shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, args.bind_address, args.secure_port, ssl_context=ssl_ctx, reuse_address=True,
                       backlog=1024)
    await site.start()
    log.info("Serving securely on %s:%d", args.bind_address, args.secure_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
