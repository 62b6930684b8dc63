"""Prometheus metrics under CoreDNS's names (plugin/metrics/vars, plugin/cache, plugin/forward, ...).

The packet loop must stay cheap, so it counts only one thing per query:
`Metrics.count(key)` where the key is (Meta, request size, response size)
— for a cache hit that tuple is precomputed in the cache entry — and one
duration bucket.  Everything CoreDNS exports is derived from those counts
when `/metrics` is scraped:

    coredns_dns_requests_total{server,zone,view,proto,family,type}
    coredns_dns_responses_total{server,zone,view,rcode,plugin}
    coredns_dns_request_duration_seconds{server,zone,view}     (histogram)
    coredns_dns_request_size_bytes / _response_size_bytes{server,zone,view,proto}
    coredns_dns_do_requests_total{server,zone,view}
    coredns_cache_hits_total{server,type,zones,view}, coredns_cache_misses_total, coredns_cache_entries
    coredns_forward_requests_total{to}, coredns_kubernetes_dns_programming_duration_seconds{service_kind}
    coredns_build_info, coredns_plugin_enabled, coredns_panics_total, coredns_reload_failed_total

Counting is done without locks: every packet thread has its own `Counts`
and the scrape sums them (a scrape racing an increment can be off by one
for an instant, never lose it for good).
"""

from __future__ import annotations

import bisect
from typing import Iterable

from .handler import Meta

VERSION, REVISION, GOVERSION = "1.11.3", "a6338e9", "go1.21.11"
TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))       # plugin.TimeBuckets
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)
PROGRAMMING_BUCKETS = tuple(0.001 * 2 ** i for i in range(20))

Key = tuple[Meta, int, int]


class Counts:
    """One packet thread's counters (proto and address family are the thread's socket's)."""

    __slots__ = ("proto", "family", "queries", "durations", "duration_sum")

    def __init__(self, proto: str, family: str) -> None:
        self.proto = proto
        self.family = family
        self.queries: dict[Key, int] = {}
        self.durations = [0] * (len(TIME_BUCKETS) + 1)
        self.duration_sum = 0.0

    def count(self, key: Key, seconds: float) -> None:
        q = self.queries
        q[key] = q.get(key, 0) + 1
        self.durations[bisect.bisect_left(TIME_BUCKETS, seconds)] += 1
        self.duration_sum += seconds


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items()) + "}"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _histogram(out: list[str], name: str, labels: dict[str, str], bounds: Iterable[float],
               counts: list[int], total: float) -> None:
    acc = 0
    for le, c in zip(bounds, counts):
        acc += c
        out.append(f"{name}_bucket{_labels(**labels, le=_num(le))} {acc}")
    acc += counts[-1]
    out.append(f'{name}_bucket{_labels(**labels, le="+Inf")} {acc}')
    out.append(f"{name}_sum{_labels(**labels)} {total!r}")
    out.append(f"{name}_count{_labels(**labels)} {acc}")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def _size_hist(sizes: dict[int, int]) -> tuple[list[int], float]:
    counts = [0] * (len(SIZE_BUCKETS) + 1)
    total = 0.0
    for size, n in sizes.items():
        counts[bisect.bisect_left(SIZE_BUCKETS, size)] += n
        total += size * n
    return counts, total


class Metrics:
    def __init__(self, server: str = "dns://:53", plugins: dict[str, list[str]] | None = None) -> None:
        self.server = server
        self.counts: list[Counts] = []
        self.plugins = plugins or {}
        self.cache_entries: dict[str, int] = {"success": 0, "denial": 0}
        self.cache_hits: dict[str, int] = {}
        self.cache_misses = 0
        self.forward_requests: dict[str, int] = {}
        self.programming: dict[str, list[int]] = {}
        self.programming_sum: dict[str, float] = {}
        self.panics = 0
        self.reload_failed = 0

    def counts_for(self, proto: str, family: str) -> Counts:
        c = Counts(proto, family)
        self.counts.append(c)
        return c

    def observe_programming(self, kind: str, seconds: float) -> None:
        """coredns_kubernetes_dns_programming_duration_seconds (headless / cluster_ip)."""
        b = self.programming.setdefault(kind, [0] * (len(PROGRAMMING_BUCKETS) + 1))
        b[bisect.bisect_left(PROGRAMMING_BUCKETS, seconds)] += 1
        self.programming_sum[kind] = self.programming_sum.get(kind, 0.0) + seconds

    def text(self) -> str:
        """The exposition text (Prometheus 0.0.4)."""
        s = self.server
        requests: dict[tuple[str, str, str, str], int] = {}
        responses: dict[tuple[str, str, str], int] = {}
        do: dict[str, int] = {}
        qsizes: dict[tuple[str, str], dict[int, int]] = {}
        rsizes: dict[tuple[str, str], dict[int, int]] = {}
        hits: dict[str, int] = dict(self.cache_hits)
        dur: dict[str, list[int]] = {}
        dur_sum: dict[str, float] = {}
        for c in list(self.counts):
            for (meta, qsize, rsize), n in list(c.queries.items()):
                k = (meta.zone, c.proto, c.family, meta.qtype)
                requests[k] = requests.get(k, 0) + n
                if meta.rcode:
                    rk = (meta.zone, meta.rcode, meta.plugin)
                    responses[rk] = responses.get(rk, 0) + n
                if meta.do:
                    do[meta.zone] = do.get(meta.zone, 0) + n
                qs = qsizes.setdefault((meta.zone, c.proto), {})
                qs[qsize] = qs.get(qsize, 0) + n
                if rsize:
                    rs = rsizes.setdefault((meta.zone, c.proto), {})
                    rs[rsize] = rs.get(rsize, 0) + n
            zone = "."
            d = dur.setdefault(zone, [0] * (len(TIME_BUCKETS) + 1))
            for i, n in enumerate(c.durations):
                d[i] += n
            dur_sum[zone] = dur_sum.get(zone, 0.0) + c.duration_sum
        out: list[str] = []

        def head(name: str, typ: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {typ}")

        head("coredns_build_info", "gauge", "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.")
        out.append(f"coredns_build_info{_labels(goversion=GOVERSION, revision=REVISION, version=VERSION)} 1")
        head("coredns_dns_requests_total", "counter", "Counter of DNS requests made per zone, protocol and family.")
        for (zone, proto, fam, typ), n in sorted(requests.items()):
            out.append(f"coredns_dns_requests_total{_labels(family=fam, proto=proto, server=s, type=typ, view='', zone=zone)} {n}")
        head("coredns_dns_responses_total", "counter", "Counter of response status codes.")
        for (zone, rcode, plugin), n in sorted(responses.items()):
            out.append(f"coredns_dns_responses_total{_labels(plugin=plugin, rcode=rcode, server=s, view='', zone=zone)} {n}")
        head("coredns_dns_do_requests_total", "counter", "Counter of DNS requests with DO bit set per zone.")
        for zone, n in sorted(do.items()):
            out.append(f"coredns_dns_do_requests_total{_labels(server=s, view='', zone=zone)} {n}")
        head("coredns_dns_request_duration_seconds", "histogram", "Histogram of the time (in seconds) each request took per zone.")
        for zone, counts in sorted(dur.items()):
            _histogram(out, "coredns_dns_request_duration_seconds", {"server": s, "view": "", "zone": zone},
                       TIME_BUCKETS, counts, dur_sum.get(zone, 0.0))
        for metric, sizes, help_ in (
                ("coredns_dns_request_size_bytes", qsizes, "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol."),
                ("coredns_dns_response_size_bytes", rsizes, "Size of the returned response in bytes.")):
            head(metric, "histogram", help_)
            for (zone, proto), by_size in sorted(sizes.items()):
                counts, total = _size_hist(by_size)
                _histogram(out, metric, {"proto": proto, "server": s, "view": "", "zone": zone}, SIZE_BUCKETS, counts, total)
        head("coredns_cache_hits_total", "counter", "The count of cache hits.")
        for typ, n in sorted(hits.items()):
            out.append(f"coredns_cache_hits_total{_labels(server=s, type=typ, view='', zones='.')} {n}")
        head("coredns_cache_misses_total", "counter", "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.")
        out.append(f"coredns_cache_misses_total{_labels(server=s, view='', zones='.')} {self.cache_misses}")
        head("coredns_cache_entries", "gauge", "The number of elements in the cache.")
        for typ, n in sorted(self.cache_entries.items()):
            out.append(f"coredns_cache_entries{_labels(server=s, type=typ, view='', zones='.')} {n}")
        head("coredns_forward_requests_total", "counter", "Counter of requests made per upstream.")
        for to, n in sorted(self.forward_requests.items()):
            out.append(f"coredns_forward_requests_total{_labels(to=to)} {n}")
        head("coredns_kubernetes_dns_programming_duration_seconds", "histogram",
             "Histogram of the time (in seconds) it took to program a dns instance.")
        for kind, counts in sorted(self.programming.items()):
            _histogram(out, "coredns_kubernetes_dns_programming_duration_seconds", {"service_kind": kind},
                       PROGRAMMING_BUCKETS, counts, self.programming_sum.get(kind, 0.0))
        head("coredns_plugin_enabled", "gauge", "A metric that indicates whether a plugin is enabled on per server and zone basis.")
        for zone, names in sorted(self.plugins.items()):
            for name in sorted(set(names)):
                out.append(f"coredns_plugin_enabled{_labels(name=name, server=s, view='', zone=zone)} 1")
        head("coredns_panics_total", "counter", "A metrics that counts the number of panics.")
        out.append(f"coredns_panics_total {self.panics}")
        head("coredns_reload_failed_total", "counter", "Counter of the number of failed reload attempts.")
        out.append(f"coredns_reload_failed_total {self.reload_failed}")
        return "\n".join(out) + "\n"
