"""Termination messages: what a container says about why it ended.

Every container gets a file of its own, provided by the kubelet and bound
at its `terminationMessagePath` (default `/dev/termination-log`), as
upstream's kubelet creates `pods/<uid>/containers/<name>/<id>` and the
runtime mounts it.  When the run has exited, the file's last 4096 bytes
become `state.terminated.message` (then `lastState`'s).  With
`terminationMessagePolicy: FallbackToLogsOnError` a run that failed
(non-zero exit) and wrote nothing there gets the tail of its log instead:
the last 80 lines, at most 2048 bytes.

One file per run, `<pod dir>/termination/<container>.<restart count>`,
kept for the current and the previous run (what `lastState` shows), so
a message survives the restart that follows it, and a kubelet restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import logs
from .runtime import ContainerStatus, Mount
from .sandbox import Sandbox

DEFAULT_PATH = "/dev/termination-log"
MAX_MESSAGE = 4096           # kubecontainer.MaxContainerTerminationMessageLength
MAX_LOG_LINES = 80           # MaxContainerTerminationMessageLogLines
MAX_LOG_BYTES = 2048         # MaxContainerTerminationMessageLogLength


def message_file(sandbox: Sandbox, container: str, restart_count: int) -> Path:
    return sandbox.path / "termination" / f"{container}.{restart_count}"


def prepare(sandbox: Sandbox, container: dict[str, Any], restart_count: int, privileged: bool) -> list[Mount]:
    """Make the run's empty, world-writable message file (any user the
    container runs as may write it) and drop the one of two runs ago;
    the bind mount that puts it at the container's path.  A privileged
    container sees the node's own /dev, so no file is bound there."""
    path = str(container.get("terminationMessagePath") or DEFAULT_PATH)
    if privileged and (path == "/dev" or path.startswith("/dev/")):
        return []
    name = str(container["name"])
    f = message_file(sandbox, name, restart_count)
    f.parent.mkdir(exist_ok=True)
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.fchmod(fd, 0o666)
    finally:
        os.close(fd)
    if restart_count >= 2:
        message_file(sandbox, name, restart_count - 2).unlink(missing_ok=True)
    return [Mount(str(f), path)]


def _tail_bytes(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(size - limit, 0))
            return f.read(limit)
    except OSError:
        return b""


def log_tail(log_path: str) -> str:
    """The end of a run's log as the message (readLastStringFromContainerLogs)."""
    text = "".join(logs.read_log(Path(log_path), tail=MAX_LOG_LINES)) if log_path else ""
    data = text.encode()[-MAX_LOG_BYTES:]
    return data.decode(errors="replace")


def message(sandbox: Sandbox | None, container: dict[str, Any], run: ContainerStatus) -> str:
    """The termination message of an exited run: the runtime's own message
    (a start error), then what the container left for us."""
    policy = container.get("terminationMessagePolicy") or "File"
    fallback = policy == "FallbackToLogsOnError" and run.exit_code not in (0, None) and run.reason != "StartError"
    text = ""
    if sandbox is not None:
        text = _tail_bytes(message_file(sandbox, run.name, run.restart_count), MAX_MESSAGE).decode(errors="replace")
    if not text and fallback:
        text = log_tail(run.log_path)
    if run.message and text:
        return f"{run.message}: {text}"
    return run.message or text
