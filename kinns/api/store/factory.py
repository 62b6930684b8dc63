"""Open the store a cluster is configured with: SQLite (the default) or etcd.

kube-apiserver's `--etcd-servers` decides when given: `sqlite://<file>` for
the embedded store (kinns' spelling), `http(s)://host:2379[,...]` for etcd
(the first URL is used).  Without it, `ClusterConfig.store` (as `kinns up
--store` set it) decides: SQLite in the cluster's state directory, or the
etcd that `kinns.cluster.etcd.EtcdServer` recorded there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .etcd import EtcdStore
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from ...cluster.config import ClusterConfig

STORES = ("sqlite", "etcd")


def open_store(cfg: "ClusterConfig", etcd_servers: str = "") -> SqliteStore | EtcdStore:
    if etcd_servers.startswith("sqlite://"):
        path = Path(etcd_servers[len("sqlite://"):])
        return SqliteStore(path if path.is_absolute() else cfg.state_dir / path)
    if etcd_servers:
        return EtcdStore(etcd_servers.split(",")[0])
    if cfg.store == "sqlite":
        return SqliteStore(cfg.state_dir / "state.db")
    if cfg.store == "etcd":
        from ...cluster.etcd import client_url
        return EtcdStore(client_url(cfg.state_dir))
    raise ValueError(f"unknown store {cfg.store!r}: choose one of {', '.join(STORES)}")
