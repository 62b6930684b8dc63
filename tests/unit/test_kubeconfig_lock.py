"""Merging into a user's kubeconfig follows client-go's lock protocol and leaves no lock behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinns.cluster import kubeconfig


def _conf(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": f"kinns-{name}",
            "clusters": [{"name": f"kinns-{name}", "cluster": {"server": "https://127.0.0.1:1"}}],
            "contexts": [{"name": f"kinns-{name}", "context": {"cluster": f"kinns-{name}", "user": f"kinns-{name}"}}],
            "users": [{"name": f"kinns-{name}", "user": {}}]}


def test_merge_and_remove_leave_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "config"
    kubeconfig.merge_into_user(_conf("a"), path)
    kubeconfig.remove_from_user("a", path)
    assert path.exists() and not (tmp_path / "config.lock").exists()


def test_a_held_lock_is_waited_for_then_reported(tmp_path: Path) -> None:
    path = tmp_path / "config"
    (tmp_path / "config.lock").touch()     # kubectl writing, or a stale lock
    with pytest.raises(RuntimeError, match="config.lock is held by another writer"):
        with kubeconfig._locked(path, timeout=0.2):
            pass
    assert (tmp_path / "config.lock").exists()   # not ours: never removed
