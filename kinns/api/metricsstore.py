"""metrics-server's scraper and storage, inside the API server.

On a kind cluster, metrics-server scrapes every kubelet's
`/metrics/resource` every 15 s, keeps the last two scrapes of each node
and answers metrics.k8s.io from them: CPU as the rate between the two
cumulative readings (so a reading always has a *window*), memory as the
last working set.  kinns has no separate metrics-server process; the API
server does the same work, lazily: a node is scraped when someone asks
for its metrics and the last scrape is older than `fresh` (1 s), and a
node with no earlier scrape to compare with (the first request, or
nothing asked for longer than `max_window`) is scraped twice, `window`
apart.  So `kubectl top` answers within a second or two, the HPA
controller's 15 s loop gets 15 s windows as from metrics-server, and an
idle cluster scrapes nothing.

Pure parts (`decode`, `rate`, `pod_usage`, `node_usage`) follow
metrics-server's storage rules (pkg/storage): a container is rated
against its previous point only if it has not restarted since; a
container that started after the previous scrape is rated from its start
(cumulative 0 then); a pod is reported only when every container it
reports can be rated, with the earliest timestamp among them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from . import promtext

log = logging.getLogger(__name__)

PodKey = tuple[str, str]           # (namespace, name)
Fetch = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class Point:
    """One reading: cumulative CPU and working set at a time, since `start`."""

    timestamp: float    # Unix seconds
    cpu: float          # core-seconds since start
    memory: int         # bytes
    start: float = 0.0  # Unix seconds; 0 when not known (the node)


@dataclass
class Scrape:
    """What one kubelet reported at once."""

    timestamp: float = 0.0
    node: Point | None = None
    pods: dict[PodKey, dict[str, Point]] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """A rate over a window: metrics.k8s.io's `timestamp`, `window` and `usage`."""

    timestamp: float
    window: float
    nanocores: int
    memory: int


# --------------------------------------------------------------------------- decoding


def decode(text: str) -> Scrape:
    """A kubelet's `/metrics/resource` exposition as points (ValueError if malformed)."""
    cpu: dict[tuple[str, str, str], tuple[float, float]] = {}
    mem: dict[tuple[str, str, str], float] = {}
    start: dict[tuple[str, str, str], float] = {}
    node_cpu: tuple[float, float] | None = None
    node_mem = 0.0
    for s in promtext.parse(text):
        ts = (s.timestamp_ms or 0) / 1000
        key = (s.label("namespace"), s.label("pod"), s.label("container"))
        if s.name == "container_cpu_usage_seconds_total":
            cpu[key] = (ts, s.value)
        elif s.name == "container_memory_working_set_bytes":
            mem[key] = s.value
        elif s.name == "container_start_time_seconds":
            start[key] = s.value
        elif s.name == "node_cpu_usage_seconds_total":
            node_cpu = (ts, s.value)
        elif s.name == "node_memory_working_set_bytes":
            node_mem = s.value
    out = Scrape()
    if node_cpu is not None:
        out.timestamp = node_cpu[0]
        out.node = Point(node_cpu[0], node_cpu[1], int(node_mem))
    for key, (ts, value) in cpu.items():
        if key in mem:   # metrics-server drops a container lacking either
            ns, pod, container = key
            out.pods.setdefault((ns, pod), {})[container] = Point(ts, value, int(mem[key]), start.get(key, 0.0))
            out.timestamp = max(out.timestamp, ts)
    return out


# --------------------------------------------------------------------------- rates


def rate(last: Point, prev: Point) -> Usage | None:
    """CPU between two points of the same run; None when they cannot be compared."""
    window = round(last.timestamp - prev.timestamp, 6)   # kubelet timestamps are ms: no float noise
    if window <= 0 or last.cpu < prev.cpu or last.start < prev.start:
        return None
    return Usage(last.timestamp, window, int((last.cpu - prev.cpu) / window * 1e9), last.memory)


def _baseline(point: Point, previous: Point | None, prev_scrape: float, min_fresh: float) -> Point | None:
    """What to rate a container's point against (metrics-server's podStorage.Store)."""
    if previous is not None and point.start <= previous.timestamp and previous.start == point.start:
        return previous
    if point.start > prev_scrape and point.timestamp - point.start >= min_fresh:
        return Point(point.start, 0.0, 0, point.start)   # started since: rate it from its start
    return None


def pod_usage(last: Scrape, prev: Scrape, key: PodKey,
              min_fresh: float = 1.0) -> tuple[Usage, list[tuple[str, Usage]]] | None:
    """The pod's time info and each container's usage; None unless every container can be rated."""
    points = last.pods.get(key)
    if not points:
        return None
    before = prev.pods.get(key, {})
    out: list[tuple[str, Usage]] = []
    earliest: Usage | None = None
    for name, point in points.items():
        base = _baseline(point, before.get(name), prev.timestamp, min_fresh)
        usage = rate(point, base) if base is not None else None
        if usage is None:
            return None
        out.append((name, usage))
        if earliest is None or usage.timestamp < earliest.timestamp:
            earliest = usage
    assert earliest is not None
    return earliest, out


def node_usage(last: Scrape, prev: Scrape) -> Usage | None:
    if last.node is None or prev.node is None:
        return None
    return rate(last.node, prev.node)


# --------------------------------------------------------------------------- the store


@dataclass
class _Held:
    taken: float                     # monotonic
    last: Scrape | None = None
    prev: Scrape | None = None
    failed: bool = False


class MetricsStore:
    """The last two scrapes of each node, refreshed on demand (see the module docstring)."""

    def __init__(self, fetch: Fetch, *, fresh: float = 1.0, window: float = 1.0, max_window: float = 30.0,
                 retry_failed: float = 10.0, timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.fresh = fresh
        self.window = window
        self.max_window = max_window
        self.retry_failed = retry_failed
        self.timeout = timeout
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _scrape(self, node: str) -> Scrape | None:
        try:
            return decode(await asyncio.wait_for(self._fetch(node), self.timeout))
        except Exception as exc:  # noqa: BLE001 - as metrics-server: log it, report the node as without metrics
            log.warning("Failed to scrape node %s: %s", node, exc or type(exc).__name__)
            return None

    async def scrapes(self, node: str) -> tuple[Scrape, Scrape] | None:
        """(last, previous) for `node`, at most `fresh` seconds old; None when its kubelet does not answer."""
        lock = self._locks.setdefault(node, asyncio.Lock())
        async with lock:
            held = self._held.get(node)
            age = self._clock() - held.taken if held is not None else None
            if held is not None and age is not None:
                if held.failed and age < self.retry_failed:
                    return None
                if not held.failed and age < self.fresh and held.last and held.prev:
                    return held.last, held.prev
            new = await self._scrape(node)
            if new is None:
                self._held[node] = _Held(self._clock(), failed=True)
                return None
            prev = held.last if held is not None else None
            if prev is None or not 0 < new.timestamp - prev.timestamp <= self.max_window:
                await asyncio.sleep(self.window)
                prev, new = new, await self._scrape(node)
                if new is None:
                    self._held[node] = _Held(self._clock(), failed=True)
                    return None
            self._held[node] = _Held(self._clock(), new, prev)
            return new, prev

    def forget(self, keep: set[str]) -> None:
        """Drop what is held for nodes no longer in `keep`."""
        for name in list(self._held):
            if name not in keep:
                self._held.pop(name, None)
                self._locks.pop(name, None)
