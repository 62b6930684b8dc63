"""Resource metrics end to end in pure code: cgroup files → the kubelet's
/metrics/resource text → metrics-server's points and rates → metrics.k8s.io values."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kinns.api import promtext
from kinns.api.metricsapi import cpu_quantity, go_duration, memory_quantity
from kinns.api.metricsstore import MetricsStore, Point, Scrape, decode, node_usage, pod_usage, rate
from kinns.node.cgroups import Cgroups
from kinns.node.resourcemetrics import (CgroupStats, ContainerUsage, PodUsage, RunningContainer, Snapshot, Usage,
                                        collect, exposition)


# --------------------------------------------------------------------------- the text format


@pytest.mark.parametrize("value,text", [
    (16089088.0, "1.6089088e+07"), (1234.56, "1234.56"), (1.718e9, "1.718e+09"), (0.5, "0.5"),
    (0.00012, "0.00012"), (0.00001, "1e-05"), (100000.0, "100000"), (1e6, "1e+06"), (3.0, "3"), (0.0, "0"),
    (-2.5, "-2.5"),
])
def test_values_print_as_go_shortest_g(value: float, text: str) -> None:
    assert promtext.go_float(value) == text
    assert float(text) == value


def test_families_render_sorted_with_help_type_and_sorted_labels_and_parse_back() -> None:
    b = promtext.Family("b_total", "B things", "counter")
    a = promtext.Family("a_bytes", "A bytes", "gauge")
    b.add(1.5, 1700000000123, {"pod": 'we"ird', "container": "c"})
    a.add(2048.0)
    empty = promtext.Family("c_none", "nothing", "gauge")
    text = promtext.render([b, empty, a])
    assert text.splitlines() == [
        "# HELP a_bytes [STABLE] A bytes", "# TYPE a_bytes gauge", "a_bytes 2048",
        "# HELP b_total [STABLE] B things", "# TYPE b_total counter",
        'b_total{container="c",pod="we\\"ird"} 1.5 1700000000123',
    ]
    samples = list(promtext.parse(text))
    assert samples[1] == promtext.Sample("b_total", (("container", "c"), ("pod", 'we"ird')), 1.5, 1700000000123)
    assert samples[0].timestamp_ms is None


def test_a_malformed_line_is_an_error() -> None:
    with pytest.raises(ValueError):
        list(promtext.parse("metric_without_value\n"))


# --------------------------------------------------------------------------- kubelet side


def _snapshot(ts: float, cpu: float, start: float = 100.0) -> Snapshot:
    c = ContainerUsage("default", "busy", "main", start, Usage(cpu, 4096 * 300))
    return Snapshot(ts, Usage(cpu + 2.0, 4096 * 300), [PodUsage("default", "busy", Usage(cpu + 0.01, 4096 * 300))], [c])


def test_the_exposition_has_upstreams_names_and_reads_back_as_points() -> None:
    text = exposition(_snapshot(1000.5, 12.25))
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert names == ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
                     "container_start_time_seconds", "node_cpu_usage_seconds_total", "node_memory_working_set_bytes",
                     "pod_cpu_usage_seconds_total", "pod_memory_working_set_bytes", "resource_scrape_error"]
    assert 'container_cpu_usage_seconds_total{container="main",namespace="default",pod="busy"} 12.25 1000500' in text
    assert "resource_scrape_error 0\n" in text
    scrape = decode(text)
    assert scrape.node == Point(1000.5, 14.25, 4096 * 300)
    assert scrape.pods == {("default", "busy"): {"main": Point(1000.5, 12.25, 4096 * 300, 100.0)}}


def _cgroup_tree(root: Path) -> Cgroups:
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    node = root / "kinns/c1/n1"
    for rel, usec in (("", 9_000_000), ("podU1", 3_000_000), ("podU1/main-0", 2_500_000)):
        (node / rel).mkdir(parents=True, exist_ok=True)
        (node / rel / "cpu.stat").write_text(f"usage_usec {usec}\nuser_usec 1\nsystem_usec 1\n")
    (node / "podU1/main-0/memory.current").write_text("1048576\n")
    (node / "podU1/main-0/memory.stat").write_text("anon 700000\ninactive_file 262144\nactive_file 4096\n")
    (node / "podU1/side-0").mkdir()
    return Cgroups("kinns/c1/n1", root=root)


def test_cgroup_v2_usage_is_cpu_stat_and_working_set(tmp_path: Path) -> None:
    stats = CgroupStats(_cgroup_tree(tmp_path))
    assert stats.cpu_seconds("podU1/main-0") == 2.5
    assert stats.memory_bytes("podU1/main-0") == 1048576 - 262144
    # no cpu.stat, no memory files, no processes: nothing used
    assert stats.usage("podU1/side-0") == Usage(0.0, 0)


def test_pods_and_the_node_add_up_their_containers_memory_and_read_their_own_cpu(tmp_path: Path) -> None:
    stats = CgroupStats(_cgroup_tree(tmp_path))
    running = [RunningContainer("default", "busy", "U1", "main", "podU1/main-0", 50.0),
               RunningContainer("default", "busy", "U1", "side", "podU1/side-0", 50.0)]
    snap = collect(stats, running)
    assert [p.usage for p in snap.pods] == [Usage(3.0, 1048576 - 262144)]
    assert snap.node == Usage(9.0, 1048576 - 262144)
    assert {c.name: c.usage.cpu_seconds for c in snap.containers} == {"main": 2.5, "side": 0.0}


# --------------------------------------------------------------------------- rates (metrics-server's rules)


def _scrape(ts: float, cpu: float, start: float = 100.0, containers: tuple[str, ...] = ("main",)) -> Scrape:
    return Scrape(ts, Point(ts, cpu * 2, 2048),
                  {("default", "busy"): {c: Point(ts, cpu, 1024 * 1024, start) for c in containers}})


def test_cpu_is_the_rate_between_two_points_of_one_run() -> None:
    got = pod_usage(_scrape(130.0, 9.0), _scrape(115.0, 6.0), ("default", "busy"))
    assert got is not None
    info, containers = got
    assert (info.timestamp, info.window) == (130.0, 15.0)
    assert containers[0][1].nanocores == 200_000_000 and containers[0][1].memory == 1024 * 1024
    node = node_usage(_scrape(130.0, 9.0), _scrape(115.0, 6.0))
    assert node is not None and node.nanocores == 400_000_000


def test_a_container_that_restarted_since_is_rated_from_its_start() -> None:
    got = pod_usage(_scrape(130.0, 2.0, start=126.0), _scrape(115.0, 6.0, start=100.0), ("default", "busy"))
    assert got is not None and got[0].window == 4.0 and got[1][0][1].nanocores == 500_000_000


def test_a_pod_with_a_container_that_cannot_be_rated_is_not_reported() -> None:
    # "side" was already running at the previous scrape but is missing from it
    last = _scrape(130.0, 9.0, containers=("main", "side"))
    assert pod_usage(last, _scrape(115.0, 6.0), ("default", "busy")) is None
    assert pod_usage(last, _scrape(115.0, 6.0), ("default", "other")) is None
    assert rate(Point(10.0, 1.0, 0), Point(10.0, 0.5, 0)) is None       # no window
    assert rate(Point(20.0, 1.0, 0), Point(10.0, 5.0, 0)) is None       # counter went back


@pytest.mark.parametrize("seconds,text", [(15.034, "15.034s"), (1.0, "1s"), (0.8, "800ms"), (60.5, "1m0.5s"),
                                          (3725.0, "1h2m5s"), (0.0000015, "1.5µs"), (0.0, "0s")])
def test_windows_print_as_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize("nanocores,text", [(123_000, "123u"), (250_000_000, "250m"), (1_500_000_000, "1500m"),
                                            (2_000_000_000, "2"), (1234567, "1234567n"), (0, "0")])
def test_cpu_is_a_nano_scaled_decimal_quantity(nanocores: int, text: str) -> None:
    assert cpu_quantity(nanocores) == text


@pytest.mark.parametrize("n,text", [(4096 * 300, "1200Ki"), (1024 * 1024 * 3, "3Mi"), (1000, "1k"), (1234, "1234")])
def test_memory_is_a_binary_quantity(n: int, text: str) -> None:
    assert memory_quantity(n) == text


# --------------------------------------------------------------------------- the on-demand store


class _Kubelet:
    """A kubelet whose CPU counter grows 0.25 core-seconds per second of its clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls = 0
        self.down = False

    async def fetch(self, node: str) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("dial tcp 172.18.0.3:10250: connect: connection refused")
        snap = Snapshot(self.now, Usage(self.now * 0.25, 4096), [], [])
        return exposition(snap)


def test_the_store_scrapes_twice_at_first_then_reuses_a_fresh_pair_then_rates_against_the_last() -> None:
    kubelet = _Kubelet()
    clock = [0.0]

    async def run() -> None:
        store = MetricsStore(kubelet.fetch, fresh=1.0, window=0.0, max_window=30.0, clock=lambda: clock[0])
        first = await store.scrapes("n1")
        assert first is not None and kubelet.calls == 2          # nothing to compare with: a second scrape
        kubelet.now += 15
        clock[0] += 0.5
        assert await store.scrapes("n1") == first and kubelet.calls == 2   # still fresh
        clock[0] += 1.0
        pair = await store.scrapes("n1")
        assert pair is not None and kubelet.calls == 3
        usage = node_usage(*pair)
        assert usage is not None and usage.window == 15.0 and usage.nanocores == 250_000_000
        kubelet.now += 60                                          # older than max_window: start again
        clock[0] += 60
        assert await store.scrapes("n1") is not None and kubelet.calls == 5
        kubelet.down = True
        clock[0] += 2
        assert await store.scrapes("n1") is None and kubelet.calls == 6
        clock[0] += 2
        assert await store.scrapes("n1") is None and kubelet.calls == 6   # a failure is not retried at once

    asyncio.run(run())
