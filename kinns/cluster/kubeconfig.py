"""Kubeconfig: one per cluster in its state directory, merged into the user's.

As kind does: the cluster, user and context are all named `kinns-<name>`;
`kinns up` merges them into the user's kubeconfig (the first file of
$KUBECONFIG, else ~/.kube/config) and makes the context current, so plain
`kubectl` works; `kinns down` removes exactly those three entries and
leaves every other cluster's alone.
"""

from __future__ import annotations

import base64
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from .certs import CertPaths


def context_name(cluster: str) -> str:
    return f"kinns-{cluster}"


def user_kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = [p for p in env.split(os.pathsep) if p]
    return Path(first[0]) if first else Path.home() / ".kube" / "config"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def build(cluster: str, server: str, certs: CertPaths) -> dict[str, Any]:
    name = context_name(cluster)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(certs.ca_cert)}}],
        "users": [{"name": name, "user": {"client-certificate-data": _b64(certs.admin_cert),
                                           "client-key-data": _b64(certs.admin_key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


@contextmanager
def _locked(path: Path, timeout: float = 10.0) -> Iterator[None]:
    """Hold `<path>.lock` as client-go does (created exclusively, removed
    after the write), so kubectl and kinns never write the file at once and
    no lock file is left behind to block `kubectl config` afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = Path(str(path) + ".lock")
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{lock} is held by another writer; remove it if no kubectl or kinns "
                                   "is writing the kubeconfig") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict):
            return data
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}}


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".kinns-tmp")
    tmp.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
    tmp.chmod(0o600)
    os.replace(tmp, path)


def write_own(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(path, config)


def merge_into_user(config: dict[str, Any], path: Path | None = None) -> Path:
    """Add (or replace) this cluster's entries in the user's kubeconfig."""
    path = path or user_kubeconfig_path()
    name = config["current-context"]
    with _locked(path):
        data = _load(path)
        for section in ("clusters", "users", "contexts"):
            entries = [e for e in (data.get(section) or []) if e.get("name") != name]
            entries.extend(config[section])
            data[section] = entries
        data["current-context"] = name
        _save(path, data)
    return path


def remove_from_user(cluster: str, path: Path | None = None) -> None:
    path = path or user_kubeconfig_path()
    if not path.exists():
        return
    name = context_name(cluster)
    with _locked(path):
        data = _load(path)
        for section in ("clusters", "users", "contexts"):
            data[section] = [e for e in (data.get(section) or []) if e.get("name") != name]
        if data.get("current-context") == name:
            data["current-context"] = ""
        _save(path, data)
