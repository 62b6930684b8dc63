"""Shared fixtures: each test module gets its own named cluster.

Clusters live under a per-run state root and kubeconfig, so tests never
touch /var/lib/kinns or ~/.kube/config, and a leak check runs when each
cluster goes down.

`KINNS_TEST_STORE=etcd` runs every cluster of the run on etcd (`kinns up
--store etcd`, as CI does once per store; `ClusterHandle.up` adds the flag);
the default is the embedded SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from kinns.testing import ClusterHandle, new_cluster_name

TEST_STORE = os.environ.get("KINNS_TEST_STORE", "sqlite")
if TEST_STORE not in ("sqlite", "etcd"):
    raise pytest.UsageError(f"KINNS_TEST_STORE={TEST_STORE!r}: use sqlite or etcd")


def pytest_report_header() -> str:
    return f"kinns store: {TEST_STORE}"


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kinns-state")
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    return root


@pytest.fixture(scope="module")
def cluster(state_root: Path) -> Iterator[ClusterHandle]:
    """A running cluster shared by the tests of one module."""
    c = ClusterHandle(new_cluster_name(), state_root)
    c.up()
    try:
        yield c
    finally:
        c.down()
