"""Reading container logs for `kubectl logs` (`--timestamps`, `--tail`,
`-f`, `--previous`).

The zygote writes each line as the CRI log format does:
`<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>`; `P` marks a
partial line continued by the next record.  The kubelet serves the text
with the prefix removed, or with the timestamp kept for `--timestamps`.
The previous run's log is simply the file of `restart_count - 1`.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator


def parse_line(line: str) -> tuple[str, str, bool, str]:
    """(timestamp, stream, is_full_line, text) of one CRI log record."""
    ts, stream, tag, text = line.rstrip("\n").split(" ", 3) if line.count(" ") >= 3 else (line, "", "F", "")
    return ts, stream, tag == "F", text


def _render(line: str, timestamps: bool, streams: set[str] | None) -> str | None:
    ts, stream, full, text = parse_line(line)
    if streams is not None and stream not in streams:
        return None
    out = f"{ts} {text}" if timestamps else text
    return out + "\n" if full else out


def read_log(path: Path, *, timestamps: bool = False, tail: int | None = None, since: float | None = None,
             follow: bool = False, until: Callable[[], bool] | None = None, poll: float = 0.1,
             streams: set[str] | None = None) -> Iterator[str]:
    """Yield the lines of a container log as `kubectl logs` shows them.

    With `follow`, keep yielding new lines until `until()` is true (e.g. the
    container exited) and the file is drained, or forever without `until`.
    `since` is a Unix time (for `--since`/`--since-time`)."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with f:
        first = f.readlines()
        if first and not first[-1].endswith("\n"):
            # a record being written right now: leave it for the follow loop
            f.seek(f.tell() - len(first.pop().encode()))
        if since is not None:
            first = [ln for ln in first if _ts_seconds(ln.split(" ", 1)[0]) >= since]
        if tail is not None:
            first = list(deque(first, maxlen=tail)) if tail > 0 else []
        for ln in first:
            out = _render(ln, timestamps, streams)
            if out is not None:
                yield out
        if not follow:
            return
        buf = ""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    out = _render(buf, timestamps, streams)
                    buf = ""
                    if out is not None:
                        yield out
                continue
            if until is not None and until():
                rest = f.read()
                for ln in (buf + rest).splitlines(keepends=True):
                    out = _render(ln, timestamps, streams)
                    if out is not None:
                        yield out
                return
            time.sleep(poll)


def _ts_seconds(ts: str) -> float:
    """Seconds since the epoch of an RFC3339Nano UTC timestamp."""
    try:
        base, frac = ts.rstrip("Z").split(".") if "." in ts else (ts.rstrip("Z"), "0")
        return time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + frac)
    except ValueError:
        return 0.0
