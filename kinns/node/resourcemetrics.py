"""The kubelet's resource metrics (`GET /metrics/resource` on :10250), from cgroups.

Upstream's kubelet asks cAdvisor for each container's cumulative CPU time
and working-set memory and exports them, with the pod and node totals, as
Prometheus text (pkg/kubelet/metrics/collectors/resource_metrics.go);
metrics-server scrapes that and turns two scrapes into rates.  kinns
already puts every container in a cgroup of its own (`cgroups.py`,
`kinns/<cluster>/<node>/pod<uid>/<container>-<restart>`), so this module
reads the same facts from there:

- CPU: `usage_usec` of the cgroup's `cpu.stat` (cgroup v2 keeps it for
  every cgroup, hierarchically, so a pod's and the node's include what
  their finished processes used), else v1's `cpuacct.usage`, else the
  processes' `utime+stime` (and their reaped children's) from /proc;
- memory working set, as cAdvisor computes it: usage minus inactive file
  pages (`memory.current` − `inactive_file` on v2, `memory.usage_in_bytes`
  − `total_inactive_file` on v1), where the cgroup has a memory
  controller; on hosts where kinns's cgroups have none (the hybrid layout
  gives v1 memory cgroups only to containers with a memory limit), the
  resident set of the container's processes from /proc.

A pod's memory is the sum of its containers', the node's the sum of its
pods' (a v1 memory cgroup above a container may hold only some of them);
CPU is read at each level.  The node is what kinns runs there: its pods
(the kubelet and the runtime are host processes, not charged to a node).

Division of labour: `collect()` reads (blocking file I/O, run in a
thread), `render()` writes the exposition with upstream's names; the
format itself is `kinns.api.promtext`, which the API server's
metrics.k8s.io (metrics-server's part) reads back.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..api.promtext import Family, render
from .cgroups import Cgroups

if TYPE_CHECKING:
    from .kubelet import Kubelet

PATH = "/metrics/resource"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    """Cumulative CPU (core-seconds) and working-set memory (bytes) of one cgroup."""

    cpu_seconds: float
    memory_bytes: int


@dataclass(frozen=True)
class ContainerUsage:
    namespace: str
    pod: str
    name: str
    started_at: float       # Unix seconds
    usage: Usage


@dataclass(frozen=True)
class PodUsage:
    namespace: str
    pod: str
    usage: Usage


@dataclass
class Snapshot:
    """One reading of a node: what `/metrics/resource` reports."""

    timestamp: float        # Unix seconds, for every sample
    node: Usage
    pods: list[PodUsage] = field(default_factory=list)
    containers: list[ContainerUsage] = field(default_factory=list)


# --------------------------------------------------------------------------- reading cgroups


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stat_value(text: str | None, key: str) -> int | None:
    """`key value` lines (cpu.stat, memory.stat): the value of `key`."""
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            try:
                return int(v)
            except ValueError:
                return None
    return None


class CgroupStats:
    """Usage of kinns cgroups (paths relative to a runtime's cgroup parent)."""

    def __init__(self, cgroups: Cgroups) -> None:
        self.cg = cgroups

    def _dir(self, base: Path | None, rel: str) -> Path | None:
        if base is None:
            return None
        d = base / self.cg.parent / rel if rel else base / self.cg.parent
        return d if d.is_dir() else None

    def cpu_seconds(self, rel: str) -> float:
        """Cumulative CPU time of everything in `rel` and below."""
        d = self._dir(self.cg.v2, rel)
        if d is not None:
            usec = _stat_value(_read(d / "cpu.stat"), "usage_usec")
            if usec is not None:
                return usec / 1e6
        for ctl in ("cpuacct", "cpu"):   # v1: cpuacct, alone or co-mounted with cpu
            d = self._dir(self.cg.root / ctl, rel)
            raw = _read(d / "cpuacct.usage") if d is not None else None
            if raw and raw.strip().isdigit():
                return int(raw) / 1e9
        return sum(_proc_cpu_seconds(pid) for pid in self.cg.pids(rel))

    def memory_bytes(self, rel: str) -> int:
        """Working set of the processes in `rel` (see the module docstring)."""
        d = self._dir(self.cg.v2, rel)
        current = _read(d / "memory.current") if d is not None else None
        if d is not None and current and current.strip().isdigit():
            inactive = _stat_value(_read(d / "memory.stat"), "inactive_file") or 0
            return max(0, int(current) - inactive)
        d = self._dir(self.cg.v1.get("memory"), rel)
        usage = _read(d / "memory.usage_in_bytes") if d is not None else None
        if d is not None and usage and usage.strip().isdigit():
            inactive = _stat_value(_read(d / "memory.stat"), "total_inactive_file") or 0
            return max(0, int(usage) - inactive)
        return sum(_proc_rss(pid) for pid in self.cg.pids(rel))

    def usage(self, rel: str) -> Usage:
        return Usage(self.cpu_seconds(rel), self.memory_bytes(rel))


def _proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process and of its reaped children (fields 14-17 of /proc/<pid>/stat)."""
    raw = _read(Path(f"/proc/{pid}/stat"))
    if raw is None:
        return 0.0
    fields = raw.rsplit(")", 1)[-1].split()
    try:
        return sum(int(x) for x in fields[11:15]) / _CLOCK_TICKS
    except (ValueError, IndexError):
        return 0.0


def _proc_rss(pid: int) -> int:
    raw = _read(Path(f"/proc/{pid}/statm"))
    try:
        return int(raw.split()[1]) * _PAGE if raw else 0
    except (ValueError, IndexError):
        return 0


# --------------------------------------------------------------------------- the node


@dataclass(frozen=True)
class RunningContainer:
    """What the kubelet knows of one running container: whose it is and its cgroup."""

    namespace: str
    pod: str
    pod_uid: str
    name: str
    cgroup: str             # relative to the runtime's cgroup parent
    started_at: float


def running_containers(kubelet: "Kubelet") -> list[RunningContainer]:
    """The containers this kubelet has running now (static pods' included)."""
    out = []
    for rec in list(kubelet.records.values()):
        namespace, _, pod = rec.key.partition("/")
        for name, run in list(rec.runs.items()):
            try:
                st = kubelet.runtime.status(run.id)
            except KeyError:
                continue
            if st.state == "running" and st.cgroup:
                out.append(RunningContainer(namespace, pod, rec.uid, name, st.cgroup, st.started_at))
    return out


def collect(stats: CgroupStats, containers: Iterable[RunningContainer]) -> Snapshot:
    """Read every container, pod and the node once (blocking)."""
    now = time.time()
    snap = Snapshot(now, Usage(0.0, 0))
    by_pod: dict[tuple[str, str, str], list[ContainerUsage]] = {}
    for c in containers:
        cu = ContainerUsage(c.namespace, c.pod, c.name, c.started_at, stats.usage(c.cgroup))
        snap.containers.append(cu)
        by_pod.setdefault((c.namespace, c.pod, c.pod_uid), []).append(cu)
    for (namespace, pod, uid), members in by_pod.items():
        memory = sum(m.usage.memory_bytes for m in members)
        snap.pods.append(PodUsage(namespace, pod, Usage(stats.cpu_seconds(f"pod{uid}"), memory)))
    snap.node = Usage(stats.cpu_seconds(""), sum(p.usage.memory_bytes for p in snap.pods))
    return snap


def exposition(snap: Snapshot) -> str:
    """The snapshot as the kubelet's `/metrics/resource` text, upstream's names and help."""
    ts = int(snap.timestamp * 1000)
    node_cpu = Family("node_cpu_usage_seconds_total", "Cumulative cpu time consumed by the node in core-seconds",
                      "counter")
    node_mem = Family("node_memory_working_set_bytes", "Current working set of the node in bytes", "gauge")
    c_cpu = Family("container_cpu_usage_seconds_total",
                   "Cumulative cpu time consumed by the container in core-seconds", "counter")
    c_mem = Family("container_memory_working_set_bytes", "Current working set of the container in bytes", "gauge")
    c_start = Family("container_start_time_seconds", "Start time of the container since unix epoch in seconds",
                     "gauge")
    p_cpu = Family("pod_cpu_usage_seconds_total", "Cumulative cpu time consumed by the pod in core-seconds",
                   "counter")
    p_mem = Family("pod_memory_working_set_bytes", "Current working set of the pod in bytes", "gauge")
    errors = Family("resource_scrape_error", "1 if there was an error while getting container metrics, 0 otherwise",
                    "gauge")
    node_cpu.add(snap.node.cpu_seconds, ts)
    node_mem.add(float(snap.node.memory_bytes), ts)
    for c in snap.containers:
        who = {"container": c.name, "pod": c.pod, "namespace": c.namespace}
        c_start.add(c.started_at, labels=who)
        c_cpu.add(c.usage.cpu_seconds, ts, who)
        c_mem.add(float(c.usage.memory_bytes), ts, who)
    for p in snap.pods:
        pod = {"pod": p.pod, "namespace": p.namespace}
        p_cpu.add(p.usage.cpu_seconds, ts, pod)
        p_mem.add(float(p.usage.memory_bytes), ts, pod)
    errors.add(0.0)
    return render([node_cpu, node_mem, c_cpu, c_mem, c_start, p_cpu, p_mem, errors])


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def serve(kubelet: "Kubelet") -> str:
    """`/metrics/resource` of this kubelet: which containers run is read on the
    event loop (the records change there), the cgroup files in a thread."""
    containers = running_containers(kubelet)
    stats = CgroupStats(kubelet.runtime.cgroups)
    return exposition(await asyncio.to_thread(collect, stats, containers))
