"""`python -m kinns.ingress [/nginx-ingress-controller] --flags`: the ingress controller.

What the `registry.k8s.io/ingress-nginx/controller` image runs (see
kinns/node/images.py), with ingress-nginx's own flags: `--ingress-class`,
`--controller-class`, `--watch-ingress-without-class`,
`--publish-service`, `--configmap`, `--election-id`, `--http-port`,
`--https-port`, `--healthz-port`, `--status-port`, `--kubeconfig`, and
kinns' own `--gateway-controller-name` (serve the Gateway API's classes
of that controllerName with the same nginx); the
flags kinns does not act on (`--validating-webhook…`, `--enable-metrics`)
are accepted and ignored.  The image's entrypoint path, when the manifest
names it as the first argument as upstream's does, is skipped.

Credentials: `--kubeconfig`, else $KUBECONFIG, else the kubeconfig in
kinns' component credentials Secret, else the pod's service-account token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from ..api.discovery import VERSION_INFO
from ..client import Client
from ..client.transport import HttpTransport
from ..klog import info, setup
from ..signals import run_until_signalled
from .controller import IngressController, Options, pod_identity
from .nginx import Nginx
from .nginxconf import Settings

log = logging.getLogger("ingress-nginx")
VERSION = "v1.12.1"
CREDENTIALS = Path("/var/run/secrets/kinns.io/credentials/kubeconfig")
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _bool(text: str) -> bool:
    return text.lower() in ("", "1", "t", "true", "yes")


def parse(argv: list[str]) -> argparse.Namespace:
    if argv and not argv[0].startswith("-"):
        argv = argv[1:]            # /nginx-ingress-controller
    ap = argparse.ArgumentParser(prog="nginx-ingress-controller")
    ap.add_argument("--ingress-class", default="nginx")
    ap.add_argument("--controller-class", default="k8s.io/ingress-nginx")
    ap.add_argument("--watch-ingress-without-class", nargs="?", const="true", default="false")
    ap.add_argument("--publish-service", default="")
    ap.add_argument("--configmap", default="")
    ap.add_argument("--election-id", default="ingress-controller-leader")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--https-port", type=int, default=443)
    ap.add_argument("--healthz-port", type=int, default=10254)
    ap.add_argument("--status-port", type=int, default=10246)
    ap.add_argument("--kubeconfig", default="")
    ap.add_argument("--nginx-conf-dir", default="/etc/nginx")
    ap.add_argument("--gateway-controller-name", default="")
    ap.add_argument("--v", type=int, default=0)
    ap.add_argument("--version", action="store_true")
    args, _unknown = ap.parse_known_args(argv)
    return args


def client_for(kubeconfig: str) -> Client:
    """The API client with the credentials found first (see the module docstring)."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path and CREDENTIALS.exists():
        path = str(CREDENTIALS)
    if path:
        transport = HttpTransport.from_kubeconfig(path)
    elif (SA_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        transport = HttpTransport(f"https://{host}:{port}", ca_file=str(SA_DIR / "ca.crt"),
                                  token=(SA_DIR / "token").read_text().strip())
    else:
        raise SystemExit("no --kubeconfig, $KUBECONFIG, credentials Secret or service account token")
    return Client(transport, user_agent=f"nginx-ingress-controller/{VERSION}")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"NGINX Ingress controller\n  Release:       {VERSION}\n  Repository:    kinns")
        return 0
    setup(logging.DEBUG if args.v >= 4 else logging.INFO)
    pod, ns = pod_identity()
    opts = Options(ingress_class=args.ingress_class, controller_class=args.controller_class,
                   watch_without_class=_bool(args.watch_ingress_without_class),
                   publish_service=args.publish_service, configmap=args.configmap, election_id=args.election_id,
                   namespace=ns or "ingress-nginx", pod_name=pod, healthz_port=args.healthz_port,
                   gateway_controller=args.gateway_controller_name)
    settings = Settings(http_port=args.http_port, https_port=args.https_port, status_port=args.status_port)
    info(log, "main.go:50", "NGINX Ingress controller", release=VERSION, build="kinns", repository="kinns",
         nginx="Debian nginx", kubernetes=VERSION_INFO["gitVersion"])
    nginx = Nginx(Path(args.nginx_conf_dir), settings)
    return asyncio.run(_run(IngressController(client_for(args.kubeconfig), opts, nginx), nginx))


async def _run(controller: IngressController, nginx: Nginx) -> int:
    code = 0
    try:
        if await run_until_signalled(controller.run()):
            info(log, "main.go:197", "Received SIGTERM, shutting down")
    except SystemExit as e:
        log.error("%s", e.code, extra={"source": "main.go:190"})
        code = 1
    finally:
        await asyncio.to_thread(nginx.stop)
        await controller.client.close()
    info(log, "main.go:201", "Exiting", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
