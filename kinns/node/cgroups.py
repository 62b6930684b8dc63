"""Control groups for pods and containers: tracking, limits, killing.

A container's processes are put in a cgroup of their own, under a pod
cgroup, under a parent that carries "kinns" in its name (e.g.
`kinns/<cluster>/<node>`).  That gives three things:

- every process a container started, even a daemon that double-forked,
  can be found and killed (`cgroup.kill`, else signalling `cgroup.procs`),
  so containers die with their pod and `cleanup()` works after the daemon
  was SIGKILLed;
- memory and CPU limits from `resources.limits`, where the kernel allows;
- a pids limit on each pod cgroup (the kubelet's `podPidsLimit`, see
  `runtime.DEFAULT_POD_PIDS_LIMIT`), so a fork bomb stays inside its pod;
- the OOM-killer's verdict, so a status can say `OOMKilled`.

Hosts differ: pure cgroup v2 (`/sys/fs/cgroup/cgroup.controllers`), the
hybrid layout with v2 at `/sys/fs/cgroup/unified` and controllers on v1
hierarchies, or v1 only.  `Cgroups` picks a tracking hierarchy (v2 when
present, else v1 `pids`/`memory`) and the places to write limits, and does
nothing (but still works) when none is writable.  The pids controller is
used from v2 when v2 has it, else from its v1 hierarchy; there every
container cgroup is made too (below its pod's), because a v1 limit covers
only the processes placed below it.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")

_SUFFIXES = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5, "e": 1000**6,
             "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4, "pi": 1024**5, "ei": 1024**6}


def parse_quantity(q: str | int | float) -> float:
    """A Kubernetes quantity (`128Mi`, `1G`, `500m`, `1e3`, `0.5`) as a number."""
    if isinstance(q, (int, float)):
        return float(q)
    s = str(q).strip()
    if s.endswith("m") and not s.endswith(("Mi", "mi")) and s[:-1].replace(".", "", 1).isdigit():
        return float(s[:-1]) / 1000
    i = len(s)
    while i > 0 and s[i - 1].isalpha():
        i -= 1
    num, suf = s[:i], s[i:].lower()
    if suf not in _SUFFIXES:
        # `1e3` style exponents end in a digit, handled by float()
        return float(s)
    return float(num) * _SUFFIXES[suf]


@dataclass
class Limits:
    """Resource limits of one container, in kernel units."""

    memory_bytes: int | None = None
    cpu_millis: int | None = None
    pids: int | None = None         # pids.max (set on pod cgroups)

    @classmethod
    def from_container(cls, container: dict[str, Any]) -> "Limits":
        lim = ((container.get("resources") or {}).get("limits")) or {}
        mem = lim.get("memory")
        cpu = lim.get("cpu")
        return cls(int(parse_quantity(mem)) if mem is not None else None,
                   max(1, int(round(parse_quantity(cpu) * 1000))) if cpu is not None else None)


def _write(path: Path, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


class Cgroups:
    """Cgroups below one kinns parent (a relative path such as `kinns/c1/n1`)."""

    PERIOD_US = 100_000

    def __init__(self, parent: str, root: Path = CGROUP_ROOT) -> None:
        if "kinns" not in parent:
            raise ValueError(f"cgroup parent {parent!r} must carry 'kinns' in its path")
        self.parent = parent.strip("/")
        self.root = root
        self.v2: Path | None = None
        if (root / "cgroup.controllers").exists():
            self.v2 = root
        elif (root / "unified" / "cgroup.procs").exists():
            self.v2 = root / "unified"
        self.v1: dict[str, Path] = {}
        for ctl in ("memory", "cpu", "pids"):
            p = root / ctl
            if (p / "cgroup.procs").exists() and p != self.v2:
                self.v1[ctl] = p
        self.v2_controllers: set[str] = set()
        if self.v2 is not None:
            try:
                self.v2_controllers = set((self.v2 / "cgroup.controllers").read_text().split())
            except OSError:
                pass

    # -- layout -----------------------------------------------------------
    def _tracking(self) -> list[Path]:
        """Hierarchies where every kinns process is placed."""
        if self.v2 is not None:
            return [self.v2]
        return [self.v1[c] for c in ("pids", "memory") if c in self.v1][:1]

    def dirs(self, rel: str) -> list[Path]:
        """Every directory that exists for `rel` (relative to the parent)."""
        bases = [self.v2] if self.v2 is not None else []
        bases += list(self.v1.values())
        return [b / self.parent / rel for b in bases if (b / self.parent / rel).is_dir()]

    def _pids_v1(self) -> Path | None:
        """The v1 pids hierarchy, when pids limits are written there."""
        p = self.v1.get("pids")
        if p is None or "pids" in self.v2_controllers or p in self._tracking():
            return None
        return p

    def create(self, rel: str, limits: Limits | None = None) -> list[str]:
        """Make the cgroup `rel` with `limits`; return the `cgroup.procs`
        files a process must write its pid to (before exec) to join it."""
        limits = limits or Limits()
        procs: list[str] = []
        for base in self._tracking():
            d = base / self.parent / rel
            if base == self.v2 and (limits.memory_bytes or limits.cpu_millis or limits.pids):
                self._enable_v2_controllers(d)
            try:
                d.mkdir(parents=True, exist_ok=True)
                procs.append(str(d / "cgroup.procs"))
            except OSError:
                continue
            if base == self.v2:
                if limits.memory_bytes and "memory" in self.v2_controllers:
                    _write(d / "memory.max", str(limits.memory_bytes))
                    _write(d / "memory.swap.max", "0")
                if limits.cpu_millis and "cpu" in self.v2_controllers:
                    _write(d / "cpu.max", f"{limits.cpu_millis * self.PERIOD_US // 1000} {self.PERIOD_US}")
                if limits.pids and "pids" in self.v2_controllers:
                    _write(d / "pids.max", str(limits.pids))
            elif limits.pids and base.name == "pids":
                _write(d / "pids.max", str(limits.pids))
        if limits.memory_bytes and "memory" in self.v1 and "memory" not in self.v2_controllers:
            d = self.v1["memory"] / self.parent / rel
            try:
                d.mkdir(parents=True, exist_ok=True)
                _write(d / "memory.limit_in_bytes", str(limits.memory_bytes))
                _write(d / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
                procs.append(str(d / "cgroup.procs"))
            except OSError:
                pass
        if limits.cpu_millis and "cpu" in self.v1 and "cpu" not in self.v2_controllers:
            d = self.v1["cpu"] / self.parent / rel
            try:
                d.mkdir(parents=True, exist_ok=True)
                _write(d / "cpu.cfs_period_us", str(self.PERIOD_US))
                _write(d / "cpu.cfs_quota_us", str(limits.cpu_millis * self.PERIOD_US // 1000))
                procs.append(str(d / "cgroup.procs"))
            except OSError:
                pass
        pids_v1 = self._pids_v1()
        if pids_v1 is not None:
            d = pids_v1 / self.parent / rel
            try:
                d.mkdir(parents=True, exist_ok=True)
                if limits.pids:
                    _write(d / "pids.max", str(limits.pids))
                procs.append(str(d / "cgroup.procs"))
            except OSError:
                pass
        return procs

    def _enable_v2_controllers(self, leaf: Path) -> None:
        """v2 limits need the controllers switched on in every ancestor."""
        assert self.v2 is not None
        wanted = " ".join(f"+{c}" for c in ("memory", "cpu", "pids") if c in self.v2_controllers)
        if not wanted:
            return
        cur = self.v2
        for part in leaf.relative_to(self.v2).parts[:-1]:
            _write(cur / "cgroup.subtree_control", wanted)
            cur = cur / part
            cur.mkdir(exist_ok=True)
        _write(cur / "cgroup.subtree_control", wanted)

    # -- inspection -------------------------------------------------------
    def pids(self, rel: str = "") -> set[int]:
        """All processes in `rel` and below, in any hierarchy."""
        out: set[int] = set()
        bases = [self.v2] if self.v2 is not None else []
        bases += list(self.v1.values())
        for b in bases:
            top = b / self.parent / rel if rel else b / self.parent
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in os.walk(top):
                try:
                    out.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
                except OSError:
                    pass
        return out

    def pids_current(self, rel: str) -> int | None:
        """Tasks charged to `rel` by the pids controller (zombies included),
        where a pids controller counts them."""
        bases = [self.v2] if self.v2 is not None and "pids" in self.v2_controllers else []
        bases += [self.v1["pids"]] if "pids" in self.v1 else []
        for b in bases:
            try:
                return int((b / self.parent / rel / "pids.current").read_text())
            except (OSError, ValueError):
                continue
        return None

    def oom_killed(self, rel: str) -> bool:
        """Did the kernel's OOM killer act in this cgroup?"""
        for d in self.dirs(rel):
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    for line in (d / name).read_text().splitlines():
                        k, _, v = line.partition(" ")
                        if k == key and int(v) > 0:
                            return True
                except (OSError, ValueError):
                    pass
        return False

    # -- teardown ---------------------------------------------------------
    def kill(self, rel: str = "", sig: int = signal.SIGKILL) -> None:
        """Signal every process in `rel` and below (`cgroup.kill` when it is
        SIGKILL and the kernel has it)."""
        if sig == signal.SIGKILL and self.v2 is not None:
            top = self.v2 / self.parent / rel if rel else self.v2 / self.parent
            if (top / "cgroup.kill").exists():
                _write(top / "cgroup.kill", "1")
        for pid in self.pids(rel):
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def remove(self, rel: str = "", timeout: float = 2.0) -> bool:
        """Kill what is left in `rel` and remove its directories, deepest
        first.  True when nothing remains."""
        deadline = time.monotonic() + timeout
        bases = [self.v2] if self.v2 is not None else []
        bases += list(self.v1.values())
        while True:
            self.kill(rel)
            left = False
            for b in bases:
                top = b / self.parent / rel if rel else b / self.parent
                if not top.is_dir():
                    continue
                for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            left = True
            if not left:
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        if not rel:
            self._remove_empty_ancestors(bases)
        return True

    def _remove_empty_ancestors(self, bases: list[Path]) -> None:
        """Drop `kinns/<cluster>` levels that became empty."""
        parts = Path(self.parent).parts
        for b in bases:
            for i in range(len(parts) - 1, 0, -1):
                try:
                    os.rmdir(b.joinpath(*parts[:i]))
                except OSError:
                    break


def find_parents(root: Path = CGROUP_ROOT) -> list[str]:
    """kinns cgroup parents present on the host (for leak checks)."""
    found: set[str] = set()
    for base in [root, root / "unified", root / "memory", root / "cpu", root / "pids"]:
        if (base / "cgroup.procs").exists():
            for dirpath, dirs, _ in os.walk(base):
                rel = os.path.relpath(dirpath, base)
                if "kinns" in rel:
                    found.add(rel)
                    dirs.clear()
    return sorted(found)
