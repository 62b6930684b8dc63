"""The WARNING/ERROR lines of a benchmark cluster's logs, summarised.

Shared by the benchmarks (bench/pods.py, bench/jobs.py): what a run's
daemon, kubelets and control-plane containers complained about, counted per
source with the most frequent messages (numbers, IDs and the cluster's name
folded so that repeats count together).
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kinns.testing import ClusterHandle  # noqa: E402

CRI_PREFIX = re.compile(r"^\S+ (?:stdout|stderr) [FP] ")
KLOG = re.compile(r"^([WEF])\d{4} [\d:.]+\s+\d+ ([^\]]+)\] (.*)")
PYLOG = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (.*)")


def log_files(c: ClusterHandle) -> Iterator[tuple[str, Path]]:
    """(source, file): the daemon's log, each kubelet's, each control-plane container's."""
    st = c.state_dir
    yield "daemon", st / "daemon.log"
    for p in sorted((st / "logs").glob("kubelet-*.log")):
        yield "kubelet", p
    for p in sorted(st.glob(f"kubelet/{c.name}-control-plane/pods/*/logs/*/*.log")):
        yield p.parent.name, p


def log_summary(c: ClusterHandle, top: int = 4) -> list[str]:
    """Per source, how many WARNING/ERROR lines and tracebacks, and its most frequent
    messages (numbers, IDs and the cluster's name folded so repeats count together)."""
    counts: dict[str, collections.Counter[str]] = {}
    levels: dict[str, collections.Counter[str]] = {}
    for source, path in log_files(c):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = CRI_PREFIX.sub("", line)
            if line.startswith("Traceback"):
                levels.setdefault(source, collections.Counter())["tracebacks"] += 1
                continue
            m = KLOG.match(line)
            if m:
                level, msg = {"W": "W", "E": "E", "F": "F"}[m.group(1)], f"{m.group(2)}] {m.group(3)}"
            elif (m := PYLOG.match(line)) is not None:
                level, msg = m.group(1)[0], m.group(2)
            else:
                continue
            msg = re.sub(r"ConnectionKey\(.*?\)\)?", "", msg.replace(c.name, "<cluster>"))
            msg = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{12,}", "<id>", msg)
            msg = re.sub(r"\d+(\.\d+)?", "N", msg)[:150]
            levels.setdefault(source, collections.Counter())[level] += 1
            counts.setdefault(source, collections.Counter())[f"{level} {msg}"] += 1
    out = []
    for source, lv in levels.items():
        out.append(f"{source}: " + ", ".join(f"{n} {k}" for k, n in sorted(lv.items())))
        ranked = sorted(counts.get(source, collections.Counter()).items(), key=lambda kv: (kv[0][0] == "W", -kv[1]))
        out += [f"  {n:5d} x {msg}" for msg, n in ranked[:top]]
    return out
