"""Open the store a cluster is configured with: SQLite (the default) or etcd.

`ClusterConfig.store` chooses, as `kinns up --store` set it.  SQLite keeps
its file in the cluster's state directory; etcd is reached at `etcd_servers`
(kube-apiserver's `--etcd-servers`, the first URL is used), or, when that
is not given, where the cluster's etcd recorded it was started
(`kinns.cluster.etcd.client_url`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .etcd import EtcdStore
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from ...cluster.config import ClusterConfig

STORES = ("sqlite", "etcd")


def open_store(cfg: "ClusterConfig", etcd_servers: str = "") -> SqliteStore | EtcdStore:
    if cfg.store == "sqlite":
        return SqliteStore(cfg.state_dir / "state.db")
    if cfg.store == "etcd":
        if not etcd_servers:
            from ...cluster.etcd import client_url
            etcd_servers = client_url(cfg.state_dir)
        return EtcdStore(etcd_servers.split(",")[0])
    raise ValueError(f"unknown store {cfg.store!r}: choose one of {', '.join(STORES)}")
