"""Paths inside a container's root never resolve onto the host (the /var/run -> /run case)."""

from __future__ import annotations

import os
from pathlib import Path

from kinns.node.zygote import _in_root


def test_absolute_symlink_stays_in_root(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")
    assert _in_root(str(tmp_path), "/var/run/secrets/x") == str(tmp_path / "run" / "secrets" / "x")


def test_relative_symlink_and_dotdot_stay_in_root(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("../../..", tmp_path / "a" / "b" / "up")
    assert _in_root(str(tmp_path), "/a/b/up/etc") == str(tmp_path / "etc")
    assert _in_root(str(tmp_path), "/../../etc/passwd") == str(tmp_path / "etc" / "passwd")
