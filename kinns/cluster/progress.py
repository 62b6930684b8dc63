"""Start-up progress shared between the daemon and `kinns up`'s display.

The daemon appends one line per stage to `<state>/progress`; the CLI shows
the latest line beside its spinner, so a user sees where start-up is (and
where it stopped, if it fails).
"""

from __future__ import annotations

from pathlib import Path


def report(state_dir: Path, text: str) -> None:
    with open(state_dir / "progress", "a", encoding="utf-8") as f:
        f.write(text + "\n")


def latest(state_dir: Path) -> str:
    try:
        lines = (state_dir / "progress").read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def reset(state_dir: Path) -> None:
    (state_dir / "progress").unlink(missing_ok=True)
