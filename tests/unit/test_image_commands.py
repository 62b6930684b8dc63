"""What language images give their users: commands by the expected names, or a clear refusal."""

from __future__ import annotations

import pytest

from kinns.node import images


def test_python_images_carry_python_and_pip_scripts() -> None:
    beh = images.resolve({"image": "python:3.12-slim", "command": ["python", "-c", "print(1)"]})
    assert beh.argv == ["python", "-c", "print(1)"]
    assert beh.files["/usr/local/bin/python"].startswith("#!/bin/sh\nexec python3 ")
    assert "python3 -m pip" in beh.files["/usr/local/bin/pip"]
    assert images.resolve({"image": "python"}).argv == ["python3"]   # the image's CMD
    assert images.resolve({"image": "busybox", "command": ["sh"]}).files == {}


def test_a_node_image_without_node_on_the_host_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(images.ImageError) as err:
        images.resolve({"image": "node:22", "command": ["node", "-e", "1"]})
    assert err.value.reason == "ErrImagePull" and "apt install nodejs" in err.value.message


def test_a_node_image_runs_node_when_the_host_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/node")
    assert images.resolve({"image": "node:22"}).argv == ["node"]
