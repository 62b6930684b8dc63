"""Small, synchronous calls to a cluster's API as its admin, for the CLI.

`kinns status`, `kinns exec` and the readiness wait only need a GET or two;
urllib with the admin client certificate keeps them free of the async
client (and quick to start).  Long-lived callers use kinns.client instead.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

from .certs import paths as cert_paths
from .config import ClusterConfig


def admin_ssl(cfg: ClusterConfig) -> ssl.SSLContext:
    """TLS that trusts the cluster's CA and presents the admin certificate."""
    certs = cert_paths(cfg.state_dir / "pki")
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
    return ctx


def get_json(cfg: ClusterConfig, path: str, timeout: float = 2.0) -> dict[str, Any]:
    """GET `path` as admin; urllib's errors (HTTPError carries the Status) propagate."""
    with urllib.request.urlopen(cfg.server_url + path, context=admin_ssl(cfg), timeout=timeout) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def ready(cfg: ClusterConfig, timeout: float = 1.0) -> bool:
    """Whether the API server answers /readyz with 200."""
    try:
        with urllib.request.urlopen(f"{cfg.server_url}/readyz", context=admin_ssl(cfg), timeout=timeout) as r:
            return bool(r.status == 200)
    except OSError:
        return False
