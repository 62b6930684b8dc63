"""Talking to the nodes' kernels during a trace: the trace table, `nft monitor trace`, conntrack.

Everything runs inside the cluster's node namespaces (`nsenter --net`), never
in the host's: the host's firewall is not ours to change.  `Session` is the
one place rules are written and removed, as a context manager, so a trace
that fails, times out or is interrupted still deletes its tables and stops
its monitors.  Monitors are started first and waited for until their
netlink socket has joined the trace group (read from the process's own
/proc/<pid>/net/netlink), so the probe is never sent before anyone listens.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..net import netns as nsmod
from . import nftrace

NFNLGRP_NFTRACE = 9
NETLINK_NETFILTER = 12


class KernelError(Exception):
    pass


Cmd = tuple["str | None", list[str]]      # (namespace to run in, None: here; argv)


def spawn(ns: str | None, argv: list[str], **kw: Any) -> "subprocess.Popen[str]":
    """Start `argv` inside namespace `ns`: the calling thread enters it and forks there (a child
    starts in its parent thread's namespaces), which spares an `nsenter` exec per command."""
    with nsmod.entered(ns):
        return subprocess.Popen(argv, text=True, **kw)


def run_all(cmds: list[Cmd], stdin: str | None = None, timeout: float = 10) -> list[tuple[int, str, str]]:
    """Run commands in parallel; (returncode, stdout, stderr) each, in order."""
    procs = [spawn(ns, argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for ns, argv in cmds]
    out = []
    for p in procs:
        try:
            o, e = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
        out.append((p.returncode, o, e))
    return out


def _joined_trace_group(pid: int) -> bool:
    """True once process `pid` has a netfilter netlink socket in the trace multicast group."""
    try:
        with open(f"/proc/{pid}/net/netlink") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        cols = row.split()
        if len(cols) >= 4 and cols[1] == str(NETLINK_NETFILTER) and cols[2] == str(pid):
            if int(cols[3], 16) & (1 << (NFNLGRP_NFTRACE - 1)):
                return True
    return False


@dataclass
class Line:
    netns: str
    text: str
    at: float


class Session:
    """Trace tables and monitors in a set of namespaces, for one probe."""

    def __init__(self, namespaces: list[str]) -> None:
        self.namespaces = namespaces
        self.lines: queue.Queue[Line] = queue.Queue()
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []

    def _reader(self, ns: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            self.lines.put(Line(ns, text, time.monotonic()))

    def start(self, ready_timeout: float = 5.0) -> None:
        # Tables first: a monitor knows the rules that exist when it starts, so it can print
        # the trace table's own rules (which say whether a packet is the probe or its answer).
        results = run_all([(ns, ["nft", "-f", "-"]) for ns in self.namespaces], nftrace.table_script())
        for ns, (rc, _, err) in zip(self.namespaces, results):
            if rc != 0:
                raise KernelError(f"could not add table {nftrace.TABLE} in {ns}: {err.strip()}")
        for ns in self.namespaces:
            p = spawn(ns, ["nft", "monitor", "trace"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                      stdin=subprocess.DEVNULL, bufsize=1)
            self._procs.append(p)
            t = threading.Thread(target=self._reader, args=(ns, p), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + ready_timeout
        waiting = list(self._procs)
        while waiting:
            waiting = [p for p in waiting if not _joined_trace_group(p.pid)]
            for p in waiting:
                if p.poll() is not None:
                    raise KernelError(f"nft monitor trace exited with {p.returncode}")
            if waiting and time.monotonic() > deadline:
                raise KernelError("nft monitor trace did not start listening")
            if waiting:
                time.sleep(0.002)

    def stop(self) -> None:
        """Remove the tables and stop the monitors; safe to call more than once."""
        try:
            run_all([(ns, ["nft", "-f", "-"]) for ns in self.namespaces if nsmod.exists(ns)],
                     nftrace.delete_script())
        finally:
            for p in self._procs:
                if p.poll() is None:
                    p.terminate()
            for p in self._procs:
                try:
                    p.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for t in self._threads:
                t.join(timeout=1)
            self._procs.clear()

    def drain(self, quiet: float, limit: float) -> list[Line]:
        """Lines so far, waiting until none came for `quiet` seconds (at most `limit`)."""
        out: list[Line] = []
        deadline = time.monotonic() + limit
        while True:
            left = min(quiet, deadline - time.monotonic())
            if left <= 0:
                return out
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                return out


@contextmanager
def session(namespaces: list[str]) -> Iterator[Session]:
    s = Session(namespaces)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def conntrack(namespaces: list[str]) -> dict[str, list[str]]:
    """The probe's conntrack entries (those carrying the trace bit) per namespace."""
    mark = f"{nftrace.CT_BIT:#x}/{nftrace.CT_BIT:#x}"
    res = run_all([(ns, ["conntrack", "-L", "--mark", mark]) for ns in namespaces])
    return {ns: [ln for ln in out.splitlines() if ln.strip()] for ns, (_, out, _) in zip(namespaces, res)}


def table_left(ns: str) -> bool:
    """Whether a trace table exists in `ns` (tests check nothing is left behind)."""
    return run_all([(ns, ["nft", "list", "table", nftrace.FAMILY, nftrace.TABLE])])[0][0] == 0


_LINK = re.compile(r"^(?P<index>\d+): (?P<name>[^:@]+)(?:@if(?P<peer>\d+))?:")


def peer_links(pairs: list[tuple[str, str]], ifname: str = "eth0") -> list[str | None]:
    """For (pod namespace, node namespace) pairs: the node-side name of the pod's veth, the
    link whose index the pod's `eth0@ifN` names (`ip -o link`; no netlink import for two look-ups)."""
    cmds: list[Cmd] = [cmd for pod, node in pairs
                       for cmd in ((pod, ["ip", "-o", "link", "show", ifname]), (node, ["ip", "-o", "link"]))]
    res = run_all(cmds)
    out: list[str | None] = []
    for i in range(len(pairs)):
        pod_line = res[2 * i][1].strip()
        m = _LINK.match(pod_line)
        peer = m["peer"] if m else None
        name = None
        for ln in res[2 * i + 1][1].splitlines():
            n = _LINK.match(ln)
            if peer and n and n["index"] == peer:
                name = n["name"]
        out.append(name)
    return out
