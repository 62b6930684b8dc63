"""State files of the node agents that must survive their process.

Two shapes, both safe against a crash at any moment:

- `write_atomic(path, text)`: a whole file replaced at once (a temporary
  file renamed over it), for records that change rarely, such as the
  kubelet's pod checkpoints (`checkpoint.py`).
- `Journal`: an append-only file of JSON lines, for the container runtime's
  table, which changes on every container start and exit.  Rewriting a
  table of hundreds of containers on each change would cost more than the
  start itself (a new inode and the whole table each time); appending one
  line costs a couple of microseconds.  Each line is one write(2) of a
  whole record, so a crash leaves at worst a torn last line, which loading
  skips.  When the file has grown well past the live table it is
  compacted: the live table written to a temporary file and renamed over
  the journal, so a reader sees the old file or the new one, never half.

A journal line is `{"k": kind, "id": key, "v": value}`; a value of null
deletes the key.  `load()` folds the lines into `{kind: {key: value}}`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

Table = dict[str, dict[str, Any]]

# Compact once this many lines were appended beyond twice the live table.
COMPACT_SLACK = 1024


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Journal:
    """An append-only table on disk.  `snapshot` returns the live table
    (what the owner holds in memory) when the file is compacted; it is
    called with the journal's lock held, so it must not wait for a lock
    that a caller of `put` may hold."""

    def __init__(self, path: Path, snapshot: Callable[[], Table]) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lines = 0
        self._live = 0

    def load(self) -> Table:
        """The table as the journal leaves it; torn or foreign lines are skipped."""
        table: Table = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return table
        lines = data.split(b"\n")
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                kind, key, value = str(rec["k"]), str(rec["id"]), rec.get("v")
            except (ValueError, KeyError, TypeError):
                if n != len(lines) - 1:  # the last line may be torn by a crash; anything else is worth a word
                    log.warning("%s:%d: skipping an unreadable record", self.path, n + 1)
                continue
            if value is None:
                table.get(kind, {}).pop(key, None)
            else:
                table.setdefault(kind, {})[key] = value
        self._lines = len(lines)
        self._live = sum(len(v) for v in table.values())
        return table

    def put(self, kind: str, key: str, value: Any) -> None:
        """Record `key` of `kind` as `value` (None: forget it)."""
        line = (json.dumps({"k": kind, "id": key, "v": value}, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.write(self._fd, line)
            self._lines += 1
            if self._lines > 2 * self._live + COMPACT_SLACK:
                self._compact()

    def _compact(self) -> None:
        table = self._snapshot()
        text = "".join(json.dumps({"k": kind, "id": key, "v": value}, separators=(",", ":")) + "\n"
                       for kind, rows in table.items() for key, value in rows.items())
        write_atomic(self.path, text)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._live = self._lines = sum(len(v) for v in table.values())

    def compact(self) -> None:
        with self._lock:
            self._compact()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def remove(self) -> None:
        """Forget everything (the runtime shut down: nothing it knew is alive)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.path.unlink(missing_ok=True)
            self._lines = self._live = 0
