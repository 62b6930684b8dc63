"""kube-proxy benchmark: nftables mode against iptables mode, side by side in one run.

The notes say "iptables does not scale"; this measures it, and whether
kinns' nftables mode meets issue 6's goals.  These machines are shared and
noisy, so both modes are measured in the same run, interleaved (the mode
that goes first alternates between repetitions), and every absolute figure
has a ratio beside it.

1. Sync time (control plane).  Synthetic `ProxyState`s — ClusterIP
   Services of 10 endpoints, 1,000 and 10,000 of them — are fed to the
   backends (no API) and applied for real into scratch network namespaces
   with `IptablesBackend(netns=...)` / `NftablesBackend(netns=...)`; the
   whole `sync()` (render + apply) is timed:
     - full sync into an empty node (kube-proxy starting),
     - full resync over the same rules (the periodic resync),
     - one Service changed (one endpoint of the middle Service replaced,
       alternately two ways): a partial sync,
     - and, to say where the time goes, the pure render of a full sync
       (garbage collector off, as the nftables backend renders).
   Each is repeated and the median printed with `n=`; a measurement stops
   repeating once it has used `--budget` seconds (it always runs once), and
   a sync still running after `--sync-timeout` is killed and reported with
   how much of its input the tool had read.  A third size, 10,000 Services
   of 1 endpoint, is there because iptables-restore cannot load 10,000 x 10
   in any useful time on this machine (see the printed notes): with one
   endpoint the node still holds a 10,000-rule KUBE-SERVICES, which is what
   a connection's first packet walks.
2. TCP connect latency (data plane).  Per mode, three namespaces: a client
   (10.240.0.2), the node holding the rules (it routes between its two
   links, like a node forwarding pod traffic) and one server holding the 10
   endpoint addresses (10.240.1.2-11, port 8080, a Python accept loop).
   The first and the last Service — those whose rules iptables walks first
   and last in KUBE-SERVICES (checked against the restore input; nftables
   finds both with one verdict-map lookup) — lead to the server, the
   others to addresses never contacted.  A client process times
   `connect()` (SYN out, SYN-ACK back: the packet that walks the nat rules)
   to the first Service, the last one and the endpoint itself (no Service:
   the floor), at 10, 1,000 and 10,000 Services.  The 10-Service labs stay
   up all run and are measured again with every larger size, and so is a
   second, identical 10-Service lab per mode (the control): one client
   process enters each lab's namespace in turn (setns) and takes all (lab,
   target) pairs in short bursts, in random order, so "vs 10" compares
   figures taken in the same seconds, and the control's "vs 10" — two labs
   that should agree — is the noise floor of every other "vs 10".  Median
   and p99, microseconds.
3. Throughput pod → ClusterIP → pod against pod → pod across nodes in a
   real cluster (`kinns up --proxy-mode <mode>` under a temporary
   KINNS_STATE_DIR and KUBECONFIG, `kinns down` after): an `iperf3 -s` pod
   on one worker, a client pod on the other, a ClusterIP Service in front
   of the server; `kubectl exec iperf-client -- iperf3 -c <ip> -t 5 -J`,
   alternately to the pod IP and to the ClusterIP.
4. Peer figures: what upstream published (KEP-3453, KEP-3866, the blog post
   "NFTables mode for kube-proxy", two upstream threads), quoted with the
   source; "not found" where they gave no number.

Everything the run creates (namespaces, the processes in them, clusters,
the temporary state directory) is removed at the end, also after an error,
Ctrl-C or SIGTERM.  Needs root.  Usage:

  .venv/bin/python bench/proxy.py [--quick] [--skip-cluster] [--reps 3] [--connects 300]
                                  [--budget 90] [--sync-timeout 600] [--cluster-modes nftables,iptables]

`--quick`: 1,000 Services only (latency at 10 and 1,000), 2 repetitions,
150 connects per point.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kinns.proxy import iptables as ipt  # noqa: E402
from kinns.proxy.backend import ApplyError, Backend, SyncResult  # noqa: E402
from kinns.proxy.model import Endpoint, NodeFacts, ProxyState, ServicePort, ServicePortName  # noqa: E402
from kinns.testing import ClusterHandle, find_leaks, new_cluster_name  # noqa: E402

try:  # the nftables mode may not have landed in a checkout; the iptables half runs without it
    from kinns.proxy import nftables as nft
    NFT_MISSING = ""
except ImportError as exc:  # pragma: no cover - depends on the checkout
    nft = None  # type: ignore[assignment]
    NFT_MISSING = str(exc)

CLUSTER_CIDR = "10.240.0.0/12"        # client, server and dummy endpoints all live in it
CLIENT_IP, NODE_CLIENT_SIDE, NODE_SERVER_SIDE = "10.240.0.2", "10.240.0.1", "10.240.1.1"
SERVER_IPS = tuple(f"10.240.1.{i}" for i in range(2, 12))
DUMMY_BASE = int(ipaddress.ip_address("10.241.0.0"))
CLUSTER_IP_BASE = int(ipaddress.ip_address("10.96.0.10"))
SERVICE_PORT, TARGET_PORT = 80, 8080
NODE = NodeFacts("node-0", (NODE_CLIENT_SIDE,), cluster_cidr=CLUSTER_CIDR)

SERVER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4096)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

# One client process measures every lab of a window.  It enters each lab's
# client namespace with setns(2) to open sockets there (a socket stays in the
# namespace it was made in) and works in passes: each pass visits the labs in
# a fresh random order and, in each, every target (in a rotating order) for
# one untimed connect, then a burst of timed ones.  The untimed one absorbs
# the cost of arriving from another namespace and target, so every figure
# comes from a warm path, and load from anything else on the machine falls
# on all labs alike.  argv: count burst, then `netns=ip:port,ip:port...` per
# lab; out: per lab and target, one line of connect() durations in ns.
CLIENT = r"""
import ctypes, os, random, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
n, burst = int(sys.argv[1]), int(sys.argv[2])
labs = []
for arg in sys.argv[3:]:
    ns, addrs = arg.split("=", 1)
    labs.append((os.open(f"/run/netns/{ns}", os.O_RDONLY),
                 [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in addrs.split(",")]))
out = [[[] for _ in targets] for _, targets in labs]
def connect(addr):
    s = socket.socket(); s.settimeout(3)
    t = time.perf_counter_ns(); s.connect(addr); d = time.perf_counter_ns() - t
    s.close()
    return d
for p in range(-1, -(-n // burst)):
    for li in random.sample(range(len(labs)), len(labs)):
        fd, targets = labs[li]
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        for j in range(len(targets)):
            k = (p + j) % len(targets)
            connect(targets[k])
            if p >= 0:
                out[li][k] += [connect(targets[k]) for _ in range(burst)]
for per_lab in out:
    for xs in per_lab:
        print(" ".join(map(str, xs[:n])))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(netns: str | None, cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = (["ip", "netns", "exec", netns] if netns else []) + ["sh", "-c", cmd]
    r = subprocess.run(argv, text=True, capture_output=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd!r} in {netns}: {r.returncode} {r.stderr.strip()}")
    return r


# --------------------------------------------------------------- clean-up

class Janitor:
    """Everything the run creates, so that `close()` undoes it after any exit.

    Processes inside our namespaces (servers, an `iptables-restore` still
    running) are killed by pid before the namespace goes: deleting a
    namespace does not end the processes in it.
    """

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.clusters: list[ClusterHandle] = []

    def netns(self, name: str) -> str:
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        sh(name, "ip link set lo up")
        return name

    def spawn(self, argv: list[str]) -> subprocess.Popen[str]:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        return p

    @staticmethod
    def pids_inside(ns: str) -> list[int]:
        r = subprocess.run(["ip", "netns", "pids", ns], text=True, capture_output=True)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    @classmethod
    def kill_inside(cls, ns: str) -> None:
        for pid in cls.pids_inside(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def drop_netns(self, name: str) -> None:
        self.kill_inside(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def drop_cluster(self, c: ClusterHandle) -> list[str]:
        log(f"kinns down --name {c.name}")
        try:
            c.cli("down", "--name", c.name, check=False, timeout=300)
        except subprocess.TimeoutExpired:
            pass
        if c in self.clusters:
            self.clusters.remove(c)
        return find_leaks(c.name, c.state_root)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs.clear()
        for ns in list(reversed(self.namespaces)):
            self.drop_netns(ns)
        for c in list(self.clusters):
            leaks = self.drop_cluster(c)
            if leaks:
                print(f"LEFT BEHIND by cluster {c.name}: {leaks}", file=sys.stderr)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------- modes

@dataclass(frozen=True)
class Mode:
    """One kube-proxy mode as the bench drives it."""

    name: str
    make: Callable[[str], Backend]       # netns → backend
    render: Callable[[ProxyState], str]  # the pure full-sync render (no I/O)
    tool: str                            # what the backend feeds
    tag: str                             # one letter for namespace and link names


def available_modes() -> list[Mode]:
    modes = []
    if nft is not None:
        modes.append(Mode("nftables", lambda ns: nft.NftablesBackend(netns=ns),
                          lambda st: str(nft.render(st, None, None).tx), "nft -f", "n"))
    modes.append(Mode("iptables", lambda ns: ipt.IptablesBackend(netns=ns),
                      lambda st: ipt.render(st).text, "iptables-restore", "i"))
    return modes


def last_input(b: Backend) -> str:
    """The text the backend last handed to its tool (sizes, checks)."""
    return str(getattr(b, "last_transaction", None) or getattr(b, "last_input", ""))


# --------------------------------------------------------------- synthetic Services

class Size(NamedTuple):
    services: int
    endpoints: int = 10     # per Service

    def __str__(self) -> str:
        return f"{self.services:,}" + ("" if self.endpoints == 10 else f" x{self.endpoints} ep")


def service_name(i: int) -> ServicePortName:
    # Zero-padded, so name order (the order iptables writes KUBE-SERVICES in) is index order.
    return ServicePortName("bench", f"svc-{i:05d}", "", "TCP")


def service(i: int, size: Size, endpoint_ips: tuple[str, ...] | None = None) -> ServicePort:
    """Service `i`: the first and the last lead to the real server."""
    n, e = size
    if endpoint_ips is None:
        endpoint_ips = SERVER_IPS[:e] if i in (0, n - 1) else tuple(
            str(ipaddress.ip_address(DUMMY_BASE + i * e + j)) for j in range(e))
    eps = tuple(Endpoint(ip, TARGET_PORT, f"node-{j % 3}") for j, ip in enumerate(endpoint_ips))
    return ServicePort(service_name(i), str(ipaddress.ip_address(CLUSTER_IP_BASE + i)), SERVICE_PORT, endpoints=eps)


def synthetic_state(size: Size) -> ProxyState:
    return ProxyState({service_name(i): service(i, size) for i in range(size.services)}, NODE)


def changed_state(base: ProxyState, size: Size, variant: int) -> tuple[ProxyState, frozenset[ServicePortName]]:
    """`base` with the middle Service's last endpoint replaced (variant 0 or
    1, so that consecutive partial syncs each change something)."""
    mid = service_name(size.services // 2)
    old = base.services[mid]
    ips = tuple(e.ip for e in old.endpoints[:-1]) + (f"10.250.0.{1 + variant}",)
    services = dict(base.services)
    services[mid] = service(size.services // 2, size, ips)
    return ProxyState(services, NODE), frozenset({mid})


def iptables_walk_ends(restore_input: str) -> tuple[str, str]:
    """Destinations of the first and the last rule of nat KUBE-SERVICES."""
    dests = [line.split(" -d ", 1)[1].split()[0] for line in restore_input.splitlines()
             if line.startswith(f"-A {ipt.KUBE_SERVICES} ") and " -d " in line]
    return dests[0], dests[-1]


# --------------------------------------------------------------- the scratch topology

class Lab:
    """client ── node (the rules) ── server, in three fresh namespaces, for one mode."""

    def __init__(self, jan: Janitor, prefix: str, mode: Mode) -> None:
        self.jan, self.mode = jan, mode
        p = f"{prefix}{mode.tag}"
        self.node = jan.netns(f"{p}-node")
        self.cli = jan.netns(f"{p}-cli")
        self.srv = jan.netns(f"{p}-srv")
        c, s = f"{p}c", f"{p}s"
        sh(None, f"ip link add {c}0 netns {self.cli} type veth peer name {c}1 netns {self.node}")
        sh(None, f"ip link add {s}0 netns {self.srv} type veth peer name {s}1 netns {self.node}")
        sh(self.node, f"ip addr add {NODE_CLIENT_SIDE}/24 dev {c}1 && ip link set {c}1 up"
                      f" && ip addr add {NODE_SERVER_SIDE}/24 dev {s}1 && ip link set {s}1 up"
                      " && sysctl -qw net.ipv4.ip_forward=1")
        sh(self.cli, f"ip link set {c}0 name eth0 && ip addr add {CLIENT_IP}/24 dev eth0 && ip link set eth0 up"
                     f" && ip route add default via {NODE_CLIENT_SIDE}")
        addrs = " && ".join(f"ip addr add {ip}/24 dev eth0" for ip in SERVER_IPS)
        sh(self.srv, f"ip link set {s}0 name eth0 && {addrs} && ip link set eth0 up"
                     f" && ip route add default via {NODE_SERVER_SIDE}")
        self.server = jan.spawn(["ip", "netns", "exec", self.srv, "python3", "-c", SERVER])
        assert self.server.stdout is not None
        if self.server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the server in {self.srv} did not start")
        self.backend = mode.make(self.node)
        self.targets: dict[str, tuple[str, int]] = {}    # first / last / endpoint → (ip, port)
        self.born = time.monotonic()

    def client_arg(self) -> str:
        return f"{self.cli}=" + ",".join(f"{ip}:{port}" for ip, port in self.targets.values())

    def close(self) -> None:
        self.server.kill()
        self.server.wait()
        for ns in (self.cli, self.srv, self.node):
            self.jan.drop_netns(ns)


def connect_times(labs: list[Lab], n: int, burst: int = 10) -> list[dict[str, list[float]]]:
    """`n` timed connects from each lab's client to each of its targets, all
    interleaved in one process; per lab, microseconds per target."""
    r = subprocess.run([sys.executable, "-c", CLIENT, str(n), str(burst), *[lab.client_arg() for lab in labs]],
                       text=True, capture_output=True, timeout=120 + n * 3 * sum(len(lab.targets) for lab in labs))
    if r.returncode != 0:
        raise RuntimeError(f"connects failed: {r.stderr.strip().splitlines()[-1:]}")
    lines = iter(r.stdout.splitlines())
    return [{which: [int(x) / 1000 for x in next(lines).split()] for which in lab.targets} for lab in labs]


class SyncTimeout(RuntimeError):
    pass


def bytes_read(ns: str) -> str:
    """What the tools running in `ns` have read so far (their stdin: the ruleset)."""
    out = []
    for pid in Janitor.pids_inside(ns):
        try:
            comm = Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()).name
            rchar = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/io").read_text().splitlines()
                         if line.startswith("rchar:"))
        except (OSError, StopIteration, ValueError):
            continue
        out.append(f"{comm} had read {rchar / 1e6:.1f} MB")
    return ", ".join(out)


def timed_sync(b: Backend, state: ProxyState, changed: frozenset[ServicePortName] | None,
               netns: str, timeout: float) -> tuple[float, SyncResult]:
    """Seconds for one `sync()`.  Past `timeout` the tool running in `netns`
    is killed (the backend then raises) and SyncTimeout says how far it got."""
    box: dict[str, Any] = {}

    def work() -> None:
        t = time.perf_counter()
        try:
            box["r"] = b.sync(state, changed)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["e"] = e
        box["t"] = time.perf_counter() - t

    th = threading.Thread(target=work, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        progress = bytes_read(netns)
        Janitor.kill_inside(netns)
        th.join(60)
        size = len(last_input(b)) / 1e6
        raise SyncTimeout(f"not done after {timeout:.0f} s, killed ({progress or 'no tool running'} "
                          f"of its {size:.1f} MB input)")
    if "e" in box:
        raise box["e"]
    return box["t"], box["r"]


# --------------------------------------------------------------- figures

@dataclass
class Sample:
    """Repeated timings of one measurement in one mode."""

    times: list[float] = field(default_factory=list)
    note: str = ""          # why it stopped early or never ran

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def show(self, unit: str = "s") -> str:
        m = self.median
        if m is None:
            return self.note or "-"
        v = f"{m * 1000:.1f} ms" if unit == "ms" else f"{m:.3f} s" if m < 10 else f"{m:.1f} s"
        return f"{v} (n={len(self.times)})" + (f" [{self.note}]" if self.note else "")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def table(header: list[str], rows: list[list[str]]) -> None:
    w = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(header)).rstrip())
    print("  ".join("-" * x for x in w))
    for r in rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())


SYNC_KINDS = (("first", "full sync into an empty node"), ("resync", "full resync over the same rules"),
              ("partial", "one Service changed (partial)"), ("render", "pure render of a full sync"))
TARGETS = ("first", "last", "endpoint")   # first / last Service, the endpoint itself


@dataclass
class Results:
    modes: list[str]
    sync: dict[tuple[Size, str], dict[str, Sample]] = field(default_factory=dict)     # (size, kind) → mode → …
    sizes: dict[tuple[Size, str], str] = field(default_factory=dict)                  # (size, mode) → what was written
    latency: dict[tuple[Size, str, str], list[float]] = field(default_factory=dict)   # (size, mode, target) → µs
    reference: dict[tuple[Size, str, str], list[float]] = field(default_factory=dict)  # the 10-Service labs, alongside
    control: dict[tuple[Size, str, str], list[float]] = field(default_factory=dict)    # their identical twins, alongside
    latency_notes: dict[tuple[Size, str], str] = field(default_factory=dict)
    throughput: dict[str, dict[str, list[float]]] = field(default_factory=dict)       # mode → path → Gbit/s
    throughput_notes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(f"note: {text}")

    def lat_median(self, size: Size, mode: str, target: str) -> float | None:
        xs = self.latency.get((size, mode, target))
        return statistics.median(xs) if xs else None

    def vs_reference(self, size: Size, mode: str, target: str, control: bool = False) -> float | None:
        """Median at `size` (or of the control lab in that window) over the
        median of the 10-Service lab measured alongside (at the reference
        size itself, the reference is this size's own figures)."""
        a = self.control.get((size, mode, target)) if control else self.latency.get((size, mode, target))
        ref = self.reference.get((size, mode, target)) or (self.latency.get((size, mode, target)) if control else None)
        return statistics.median(a) / statistics.median(ref) if a and ref else None


# --------------------------------------------------------------- parts 1 and 2, one size at a time

class SizeRun:
    """Both modes at one size: a lab each, the syncs (when timed), then the connects."""

    def __init__(self, args: argparse.Namespace, jan: Janitor, res: Results, modes: list[Mode], size: Size,
                 prefix: str) -> None:
        self.args, self.jan, self.res, self.modes, self.size = args, jan, res, modes, size
        self.prefix = prefix
        self.base = synthetic_state(size)
        self.broken: dict[str, str] = {}    # mode → why its node holds no usable rules
        self.labs: dict[str, Lab] = {}

    def run(self, timed: bool, measure_latency: bool,
            alongside: list[tuple[dict[str, Lab], dict[tuple[Size, str, str], list[float]]]],
            keep: bool = False) -> None:
        """Syncs (timed or not), then connects, with the `alongside` labs
        (reference, control) measured interleaved with them into their own
        figures; `keep` leaves this size's labs up (to become one of those)."""
        first = self.base.services[service_name(0)].cluster_ip
        last = self.base.services[service_name(self.size.services - 1)].cluster_ip
        try:
            for m in self.modes:
                lab = self.labs[m.name] = Lab(self.jan, self.prefix, m)
                lab.targets = {"first": (first, SERVICE_PORT), "last": (last, SERVICE_PORT),
                               "endpoint": (SERVER_IPS[0], TARGET_PORT)}
            if timed:
                self.syncs()
            else:
                for m in self.modes:
                    self.attempt(m, "first", 0, Sample())
            if measure_latency:
                self.connects(alongside)
        finally:
            if not keep:
                self.close()

    def usable_labs(self) -> dict[str, Lab]:
        return {name: lab for name, lab in self.labs.items() if name not in self.broken}

    def close(self) -> None:
        for lab in self.labs.values():
            lab.close()

    # -- syncs -------------------------------------------------------------------

    def once(self, m: Mode, kind: str, rep: int) -> float:
        """One timed operation of `kind`; raises ApplyError/SyncTimeout on failure."""
        lab, timeout = self.labs[m.name], self.args.sync_timeout
        if kind == "render":
            gc.disable()
            try:
                t = time.perf_counter()
                m.render(self.base)
                return time.perf_counter() - t
            finally:
                gc.enable()
        if kind == "first" and rep > 0:
            # Further repetitions of "into an empty node" get a fresh namespace each.
            ns = self.jan.netns(f"{self.prefix}{m.tag}-empty{rep}")
            try:
                return timed_sync(m.make(ns), self.base, None, ns, timeout)[0]
            finally:
                self.jan.drop_netns(ns)
        if kind == "partial":
            state, changed = changed_state(self.base, self.size, rep % 2)
            return timed_sync(lab.backend, state, changed, lab.node, timeout)[0]
        t, r = timed_sync(lab.backend, self.base, None, lab.node, timeout)
        if kind == "first":
            layout = f", {r.layout} layout" if getattr(r, "layout", "") else ""
            self.res.sizes[(self.size, m.name)] = (f"{r.rules:,} rules{layout}, {len(last_input(lab.backend)) / 1e6:.1f}"
                                                   f" MB of {m.tool} input")
        return t

    def attempt(self, m: Mode, kind: str, rep: int, s: Sample) -> None:
        """`once`, its time appended to `s`; a failure is noted (and, when the
        lab's node got no rules, the mode is out for the rest of this size)."""
        label = dict(SYNC_KINDS)[kind]
        log(f"{self.size} Services, {m.name}: {label} #{rep + 1}")
        try:
            s.times.append(self.once(m, kind, rep))
            log(f"  {s.times[-1]:.3f} s")
        except (ApplyError, SyncTimeout) as e:
            s.note = f"FAILED: {str(e).splitlines()[0][:200]}"
            self.res.note(f"{m.name}, {self.size} Services, {label}: {e}"[:2000])
            if kind == "first" and rep == 0:
                self.broken[m.name] = f"{label} failed"

    def syncs(self) -> None:
        for kind, _ in SYNC_KINDS:
            want = max(self.args.reps, 5) if kind == "partial" else self.args.reps
            samples = {m.name: Sample() for m in self.modes}
            self.res.sync[(self.size, kind)] = samples
            for m in self.modes:
                first = self.res.sync[(self.size, "first")][m.name].median
                if m.name in self.broken and kind in ("resync", "partial"):
                    samples[m.name].note = f"not run: {self.broken[m.name]}"
                elif kind == "resync" and first is not None and first > self.args.budget:
                    samples[m.name].note = f"not run: a full sync takes {first:.0f} s > --budget"
            for rep in range(want):
                for m in (self.modes if rep % 2 == 0 else self.modes[::-1]):
                    s = samples[m.name]
                    if s.note or (rep > 0 and sum(s.times) >= self.args.budget):
                        continue
                    if kind == "first" and rep > 0 and m.name in self.broken:
                        continue
                    self.attempt(m, kind, rep, s)

    # -- connects ----------------------------------------------------------------

    def connects(self, alongside: list[tuple[dict[str, Lab], dict[tuple[Size, str, str], list[float]]]]) -> None:
        for m in self.modes:
            if m.name in self.broken:
                self.res.latency_notes[(self.size, m.name)] = f"not measured: {self.broken[m.name]}"
        live = self.usable_labs()
        if "iptables" in live:
            ends = iptables_walk_ends(last_input(live["iptables"].backend))
            want = (live["iptables"].targets["first"][0], live["iptables"].targets["last"][0])
            if ends != want:
                raise RuntimeError(f"KUBE-SERVICES walks {ends}, expected {want}")
        # (lab, where its figures go, under which mode name): this size's labs, then the ones alongside.
        runs = [(lab, self.res.latency, name) for name, lab in live.items()]
        runs += [(lab, store, name) for labs, store in alongside for name, lab in labs.items() if name in live]
        # Labs only a few seconds old measured slower than older twins (the
        # control showed 0.6-0.7x in the first window): let them settle.
        wait = self.args.settle - (time.monotonic() - max(lab.born for lab, _, _ in runs))
        if wait > 0:
            time.sleep(wait)
        log(f"{self.size} Services: {self.args.connects} connects per lab and target, {len(runs)} labs interleaved")
        got = connect_times([lab for lab, _, _ in runs], self.args.connects)
        for (_, store, name), per_target in zip(runs, got):
            for which, xs in per_target.items():
                store[(self.size, name, which)] = xs


# --------------------------------------------------------------- part 3: throughput

def iperf_objects(server_node: str, client_node: str) -> str:
    def pod(name: str, node: str, command: list[str], labels: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                         "containers": [{"name": "main", "image": "busybox", "command": command}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iperf"},
           "spec": {"selector": {"app": "iperf"}, "ports": [{"port": 5201, "targetPort": 5201}]}}
    items = [pod("iperf-server", server_node, ["iperf3", "-s"], {"app": "iperf"}),
             pod("iperf-client", client_node, ["sleep", "3600"], {"app": "client"}), svc]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def iperf_gbps(c: ClusterHandle, ip: str, seconds: int, tries: int = 5) -> float:
    """One `iperf3 -c ip -t seconds -J` from the client pod, in Gbit/s
    (retried while the server or the Service is not reachable yet)."""
    last = ""
    for _ in range(tries):
        r = c.kubectl("exec", "iperf-client", "--", "iperf3", "-c", ip, "-t", str(seconds), "-J",
                      check=False, timeout=seconds + 60)
        try:
            data = json.loads(r.stdout)
        except json.JSONDecodeError:
            data = {"error": (r.stderr or r.stdout).strip()[-300:]}
        if "error" not in data:
            return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
        last = str(data["error"])
        time.sleep(2)
    raise RuntimeError(f"iperf3 -c {ip} failed: {last}")


def throughput(args: argparse.Namespace, jan: Janitor, res: Results, mode: str, root: Path) -> None:
    c = ClusterHandle(new_cluster_name("pxb"), root)
    jan.clusters.append(c)
    try:
        log(f"kinns up --name {c.name} --proxy-mode {mode}")
        t0 = time.perf_counter()
        r = c.cli("up", "--name", c.name, "--proxy-mode", mode, "--wait", "120", check=False, timeout=400)
        if r.returncode != 0:
            raise RuntimeError(f"kinns up failed: {r.stderr.strip()[-600:]}")
        log(f"  up in {time.perf_counter() - t0:.1f} s")
        nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        workers = sorted(n["metadata"]["name"] for n in nodes
                         if "node-role.kubernetes.io/control-plane" not in n["metadata"].get("labels", {}))
        if len(workers) < 2:
            raise RuntimeError(f"need two workers, got {workers}")
        c.kubectl("apply", "-f", "-", stdin=iperf_objects(workers[0], workers[1]))
        c.kubectl("wait", "--for=condition=Ready", "pod/iperf-server", "pod/iperf-client", "--timeout=120s",
                  timeout=150)
        pod_ip = c.kubectl("get", "pod", "iperf-server", "-o", "jsonpath={.status.podIP}").stdout.strip()
        cluster_ip = c.kubectl("get", "svc", "iperf", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        log(f"  server {pod_ip} on {workers[0]}, Service {cluster_ip}, client on {workers[1]}")
        got: dict[str, list[float]] = {"direct": [], "clusterip": []}
        res.throughput[mode] = got
        for rnd in range(args.iperf_rounds):
            paths = [("direct", pod_ip), ("clusterip", cluster_ip)]
            for path, ip in (paths if rnd % 2 == 0 else paths[::-1]):
                got[path].append(iperf_gbps(c, ip, args.iperf_seconds))
                log(f"  {mode} {path} #{rnd + 1}: {got[path][-1]:.2f} Gbit/s")
    except (RuntimeError, AssertionError, subprocess.TimeoutExpired) as e:
        res.throughput_notes[mode] = f"FAILED: {str(e).strip().splitlines()[0][:200]}"
        res.note(f"throughput in {mode} mode: {e}"[:1500])
    finally:
        leaks = jan.drop_cluster(c)
        if leaks:
            res.note(f"LEFT BEHIND by {c.name}: {leaks}")


# --------------------------------------------------------------- part 4: peers

PEERS: list[tuple[str, str]] = [
    ("KEP-3453 'Minimizing iptables-restore input size' (iptables partial syncs), gce-5000Nodes scale test",
     "NetworkProgrammingLatency p50 about 27 s -> about 13 s once partial restores were enabled (2x at "
     "p50/p90/p99); with --iptables-min-sync-period 1s instead of 10s, p50 about 5 s "
     "[kubernetes/enhancements keps/sig-network/3453-minimize-iptables-restore/README.md]"),
    ("KEP-3866 'Add an nftables-based kube-proxy backend' (the nftables KEP: KEP-3453 is the iptables one)",
     "sync / programming latency: not found ('we never got entirely clear measurements of this': the iptables "
     "1000-node job runs minSyncPeriod 10s, the nftables one does not); data plane: a chart only, no numbers "
     "in its text [kubernetes/enhancements keps/sig-network/3866-nftables-proxy/README.md]"),
    ("Blog 'NFTables mode for kube-proxy' (kubernetes.io/blog/2025/02/28/nftables-kube-proxy), first-packet latency",
     "absolute numbers: not found (only in chart images; raw data in a linked spreadsheet). Its text: at 5,000 "
     "and 10,000 Services nftables' p50 is about iptables' best case (p01); at 30,000 Services nftables' worst "
     "case beats iptables' best case 'by a few microseconds'"),
    ("Same blog post, control plane (rule sync time)",
     "numbers: not found ('Unfortunately I don't have cool graphs for this part'); its text: iptables updates "
     "stay O(all Services) even with partial syncs, nftables updates are O(what changed)"),
    ("kubernetes/kubernetes#124272 (WIP nftables proxy, 2024-04-11), gce-100-performance job, nftables mode",
     "NetworkProgrammingLatency p50 1519.8 ms, p90 2282.2 ms, p99 6815.1 ms; InClusterNetworkLatency p50 12.5 ms, "
     "p99 24.75 ms (said to be 'the same' as the iptables job)"),
    ("kubernetes/kubernetes#135639 (open bug, 2025), nftables mode, 5,006 Services / 250,011 endpoints",
     "one full sync logged 'SyncProxyRules complete ... elapsed=13m15s' (kernel 6.1, m6i.8xlarge, 32 vCPU)"),
]


# --------------------------------------------------------------- report

def fmt_lat(xs: list[float] | None) -> str:
    return f"{statistics.median(xs):7.1f} / {pct(xs, 0.99):7.1f}" if xs else "-"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def print_report(args: argparse.Namespace, res: Results, sync_sizes: list[Size], lat_sizes: list[Size],
                 wall: float) -> None:
    modes = res.modes
    both = "nftables" in modes and "iptables" in modes
    print()
    print("=" * 100)
    print(f"kube-proxy benchmark: kernel {platform.release()}, {os.cpu_count()} CPUs, "
          f"{sh(None, 'iptables --version').stdout.strip()}, {sh(None, 'nft --version').stdout.strip()}")
    print(f"flags: {' '.join(sys.argv[1:]) or '(none)'}; wall time of the run: {wall / 60:.1f} min")
    print("=" * 100)

    print("\n1. Sync time, render + apply into a scratch node namespace (median of n). "
          "Size: Services of 10 endpoints unless marked\n")
    rows = []
    for size in sync_sizes:
        for kind, label in SYNC_KINDS:
            s = res.sync.get((size, kind), {})
            cells = [s[m].show("ms" if kind == "partial" else "s") if m in s else "-" for m in modes]
            r = ratio(s["nftables"].median, s["iptables"].median) if both and s else "-"
            rows.append([str(size), label, *cells, r])
        rows.append(["", "  ruleset written", *[res.sizes.get((size, m), "-") for m in modes], ""])
    table(["Services", "operation", *modes, "nft/ipt"], rows)

    small = lat_sizes[0]
    print(f"\n2. TCP connect latency through the node, microseconds: median / p99 of {args.connects} "
          f"connects per point.\n   'vs {small}': median over the median of the {small}-Service lab of the same "
          "mode, measured interleaved with it\n")
    rows = []
    for size in lat_sizes:
        for which in TARGETS:
            cells = [fmt_lat(res.latency.get((size, m, which))) if res.latency.get((size, m, which))
                     else res.latency_notes.get((size, m), "-") for m in modes]
            vs = [ratio(res.vs_reference(size, m, which), 1.0) if size != small else "" for m in modes]
            what = {"first": "first Service", "last": "last Service", "endpoint": "endpoint, no Service"}[which]
            rows.append([str(size), what, *cells,
                         ratio(res.lat_median(size, "nftables", which), res.lat_median(size, "iptables", which))
                         if both else "-", *vs])
        if any(res.control.get((size, m, "first")) for m in modes):
            rows.append(["", f"(control: a 2nd {small}-Service lab, first Service)", *["" for _ in modes], "",
                         *[ratio(res.vs_reference(size, m, "first", control=True), 1.0) for m in modes]])
    table(["Services", "target", *[f"{m} med / p99" for m in modes], "nft/ipt",
           *[f"{m} vs {small}" for m in modes]], rows)
    print()
    for m in modes:
        lf = [f"{s}: {ratio(res.lat_median(s, m, 'last'), res.lat_median(s, m, 'first'))}" for s in lat_sizes
              if res.lat_median(s, m, "last") is not None]
        print(f"  {m}: last / first Service (median) at " + ", ".join(lf))
    print("  rulesets in the node: " + "; ".join(f"{size} {m}: {res.sizes[(size, m)]}" for size in lat_sizes
                                                  for m in modes if (size, m) in res.sizes))

    print(f"\n3. Throughput across nodes in a kinns cluster, iperf3 -t {args.iperf_seconds}, Gbit/s "
          f"(mean of {args.iperf_rounds} alternating runs each)\n")
    if args.skip_cluster:
        print("  skipped (--skip-cluster)")
    else:
        rows = []
        for m in args.cluster_modes:
            got = res.throughput.get(m)
            if not got or not got["direct"] or not got["clusterip"]:
                rows.append([m, res.throughput_notes.get(m, "not run"), "", "", ""])
                continue
            d, c = statistics.mean(got["direct"]), statistics.mean(got["clusterip"])
            rows.append([m, f"{d:.2f}", f"{c:.2f}", f"{c / d:.0%}",
                         " ".join(f"{x:.2f}" for x in got["direct"]) + " | "
                         + " ".join(f"{x:.2f}" for x in got["clusterip"])])
        table(["mode", "pod -> pod", "pod -> ClusterIP -> pod", "ClusterIP / direct", "runs: direct | ClusterIP"],
              rows)

    print("\n4. Upstream's published figures (as found, not measured here)\n")
    for src, text in PEERS:
        print(f"  - {src}:\n      {text}")

    print("\nGoals (issue 6)")
    print_goals(args, res, sync_sizes, lat_sizes)
    if res.notes:
        print("\nNotes")
        for note in res.notes:
            print(f"  ! {note}")


def print_goals(args: argparse.Namespace, res: Results, sync_sizes: list[Size], lat_sizes: list[Size]) -> None:
    big = Size(10_000)
    if big not in sync_sizes:
        at = res.sync.get((sync_sizes[-1], "first"), {}).get("nftables", Sample())
        print(f"  nftables sync goals at {big}: not measured (--quick); full sync at {sync_sizes[-1]}: {at.show()}")
    for kind, what, limit, seconds in (("first", "full sync into an empty node", "2 s", 2.0),
                                       ("resync", "full resync", "2 s", 2.0),
                                       ("partial", "one Service changed", "50 ms", 0.05)):
        s = res.sync.get((big, kind), {}).get("nftables")
        if s is not None:
            status = "not measured" if s.median is None else verdict(s.median < seconds)
            print(f"  nftables {what} at {big} Services < {limit}: {status} "
                  f"({s.show('ms' if kind == 'partial' else 's')})")
    small = lat_sizes[0]
    top = big if big in lat_sizes else lat_sizes[-1]
    parts, ok = [], True
    for which in ("first", "last"):
        r = res.vs_reference(top, "nftables", which)
        if r is not None:
            ok = ok and r - 1 <= 0.10
            parts.append(f"{which} Service {r - 1:+.0%}")
    noise = res.vs_reference(top, "nftables", "first", control=True)
    if parts and noise is not None:
        parts.append(f"noise floor: the control lab {noise - 1:+.0%}")
    suffix = "" if top == big else f"  [the goal is at {big}; this run stops at {top}]"
    print(f"  nftables connect latency at {top} within 10% of {small} Services (median, interleaved): "
          + (f"{verdict(ok)} ({', '.join(parts)}){suffix}" if parts else "not measured"))
    for m in ([] if args.skip_cluster else args.cluster_modes):
        got = res.throughput.get(m)
        if got and got["direct"] and got["clusterip"]:
            r = statistics.mean(got["clusterip"]) / statistics.mean(got["direct"])
            print(f"  ClusterIP throughput >= 90% of direct ({m}): {verdict(r >= 0.9)} ({r:.0%})")
        else:
            print(f"  ClusterIP throughput >= 90% of direct ({m}): not measured")


# --------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 Services only, fewer repetitions")
    ap.add_argument("--skip-cluster", action="store_true", help="no kinns cluster (no throughput figures)")
    ap.add_argument("--reps", type=int, help="repetitions per sync measurement (default 3, --quick 2)")
    ap.add_argument("--connects", type=int, help="connects per latency point (default 300, --quick 150)")
    ap.add_argument("--budget", type=float, default=90,
                    help="seconds one sync measurement may use before it stops repeating (default 90)")
    ap.add_argument("--sync-timeout", type=float, default=600,
                    help="kill a single sync after this many seconds (default 600)")
    ap.add_argument("--cluster-modes", default="nftables,iptables", help="modes for the throughput part")
    ap.add_argument("--iperf-seconds", type=int, default=5)
    ap.add_argument("--iperf-rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=10,
                    help="seconds a lab must exist before its connects are timed (default 10)")
    args = ap.parse_args()
    args.reps = args.reps or (2 if args.quick else 3)
    args.connects = args.connects or (150 if args.quick else 300)
    args.cluster_modes = [m for m in args.cluster_modes.split(",") if m]
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench creates network namespaces")
    if args.quick:
        sync_sizes, lat_sizes = [Size(1_000)], [Size(10), Size(1_000)]
    else:
        sync_sizes = [Size(1_000), Size(10_000), Size(10_000, 1)]
        lat_sizes = [Size(10), Size(1_000), Size(10_000), Size(10_000, 1)]

    signal.signal(signal.SIGTERM, _terminate)
    modes = available_modes()
    res = Results([m.name for m in modes])
    if NFT_MISSING:
        res.note(f"nftables mode not importable ({NFT_MISSING}): iptables only")
    jan = Janitor()
    root = Path(tempfile.mkdtemp(prefix="kinns-proxybench-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    t0 = time.perf_counter()
    prefix = f"kpb{os.getpid() % 100000}"
    kept: list[SizeRun] = []     # the reference and control labs, up until the latency part is done
    try:
        control = SizeRun(args, jan, res, modes, lat_sizes[0], f"{prefix}c")
        log(f"=== control lab: {lat_sizes[0]} Services ===")
        control.run(timed=False, measure_latency=False, alongside=[], keep=True)
        kept.append(control)
        alongside = [(control.usable_labs(), res.control)]
        for k, size in enumerate(dict.fromkeys([*lat_sizes, *sync_sizes])):
            log(f"=== {size} Services ===")
            run = SizeRun(args, jan, res, modes, size, f"{prefix}{k}")
            is_ref = size == lat_sizes[0]
            run.run(timed=size in sync_sizes, measure_latency=size in lat_sizes, alongside=alongside, keep=is_ref)
            if is_ref:
                kept.append(run)
                alongside = [(run.usable_labs(), res.reference), *alongside]
        for run in kept:
            run.close()
        kept.clear()
        if not args.skip_cluster:
            for m in args.cluster_modes:
                throughput(args, jan, res, m, root)
    except KeyboardInterrupt:
        res.note("interrupted: the figures are partial")
    finally:
        jan.close()
        shutil.rmtree(root, ignore_errors=True)
    print_report(args, res, sync_sizes, lat_sizes, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
