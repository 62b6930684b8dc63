"""Log lines in klog's structured text format, as Kubernetes components print them.

Learners compare `kubectl logs -n kube-system kube-proxy-…` with what
they read elsewhere, so kinns components that upstream writes in Go log
the same way:

    I1221 03:23:16.189324       1 server_linux.go:132] "Using nftables Proxier"

(severity letter, month-day, time with microseconds, the thread id, the
Go source file and line upstream logs from, then the quoted message and
`key=value` pairs).  `setup(component_file_map)` installs a `logging`
formatter producing exactly that; a record's `source` extra names the
upstream file:line, else the Python module and line are shown.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_LEVELS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E", logging.CRITICAL: "F"}


def _value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(json.dumps(x) if isinstance(x, str) else str(x) for x in v) + "]"
    return json.dumps(v) if isinstance(v, (dict, bool)) or v is None else str(v)


class KlogFormatter(logging.Formatter):
    """`logging` records → klog text lines.  Pass key/values as `extra={"kv": {...}}`."""

    def __init__(self, pid: int | None = None) -> None:
        super().__init__()
        self.pid = pid if pid is not None else os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        t = record.created
        head = time.strftime("%m%d %H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1e6):06d}"
        src = getattr(record, "source", None) or f"{record.module}.py:{record.lineno}"
        kv = getattr(record, "kv", None) or {}
        msg = json.dumps(record.getMessage())
        pairs = "".join(f" {k}={_value(v)}" for k, v in kv.items())
        line = f"{_LEVELS.get(record.levelno, 'I')}{head} {self.pid:>7} {src}] {msg}{pairs}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: int = logging.INFO, pid: int | None = None) -> None:
    """Send the root logger to stderr in klog format (what `kubectl logs` shows)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KlogFormatter(pid))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def info(log: logging.Logger, source: str, msg: str, **kv: Any) -> None:
    """One structured info line attributed to upstream's `source` (file.go:line)."""
    log.info(msg, extra={"source": source, "kv": kv})
