"""kube-proxy's Prometheus metrics, with upstream's names (pkg/proxy/metrics).

Served as text on the metrics address (127.0.0.1:10249 `/metrics`), next
to `/proxyMode`.  Only what kinns measures is exported; names, types and
bucket layouts are upstream's so dashboards and learners' queries carry
over.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field


def _exp_buckets(start: float, factor: float, count: int) -> list[float]:
    return [start * factor ** i for i in range(count)]


@dataclass
class Histogram:
    name: str
    help: str
    buckets: list[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, v: float) -> None:
        i = bisect.bisect_left(self.buckets, v)
        for j in range(i, len(self.buckets)):
            self.counts[j] += 1
        self.total += v
        self.n += 1

    def text(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for b, c in zip(self.buckets, self.counts):
            lines.append(f'{self.name}_bucket{{le="{b:g}"}} {c}')
        lines += [f'{self.name}_bucket{{le="+Inf"}} {self.n}', f"{self.name}_sum {self.total:g}",
                  f"{self.name}_count {self.n}"]
        return "\n".join(lines)


class ProxyMetrics:
    def __init__(self, mode: str) -> None:
        sync_buckets = _exp_buckets(0.001, 2, 15)
        self.mode = mode
        self.sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds", sync_buckets)
        self.full = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds for full resyncs", sync_buckets)
        self.partial = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                 "SyncProxyRules latency in seconds for partial resyncs", sync_buckets)
        self.programming = Histogram(
            "kubeproxy_network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds",
            [0.25 * i for i in range(1, 21)] + [5.5 + 0.5 * i for i in range(10)]
            + [12.0 + 2 * i for i in range(10)] + [30.0, 40.0, 50.0, 60.0, 120.0, 180.0, 240.0, 300.0])
        self.last_sync = 0.0
        self.last_queued = 0.0
        self.service_changes = 0
        self.endpoint_changes = 0
        self.failures = 0
        self.rules: dict[str, int] = {}

    def text(self) -> str:
        g = [
            ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge",
             "The last time proxy rules were successfully synced", f"{self.last_sync:.3f}"),
            ("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "gauge",
             "The last time a sync of proxy rules was queued", f"{self.last_queued:.3f}"),
            ("kubeproxy_sync_proxy_rules_service_changes_total", "counter",
             "Cumulative proxy rules Service changes", str(self.service_changes)),
            ("kubeproxy_sync_proxy_rules_endpoint_changes_total", "counter",
             "Cumulative proxy rules Endpoint changes", str(self.endpoint_changes)),
        ]
        fail = ("kubeproxy_sync_proxy_rules_nftables_sync_failures_total" if self.mode == "nftables"
                else "kubeproxy_sync_proxy_rules_iptables_restore_failures_total")
        g.append((fail, "counter", "Cumulative proxy rules sync failures", str(self.failures)))
        out = [h.text() for h in (self.sync, self.full, self.partial, self.programming)]
        for name, typ, help_, value in g:
            out.append(f"# HELP {name} {help_}\n# TYPE {name} {typ}\n{name} {value}")
        if self.rules:
            name = ("kubeproxy_sync_proxy_rules_nftables_objects" if self.mode == "nftables"
                    else "kubeproxy_sync_proxy_rules_iptables_total")
            out.append(f"# HELP {name} Number of proxy rules programmed\n# TYPE {name} gauge")
            out += [f'{name}{{table="{t}"}} {n}' for t, n in sorted(self.rules.items())]
        return "\n".join(out) + "\n"

    def synced(self, seconds: float, full: bool) -> None:
        self.sync.observe(seconds)
        (self.full if full else self.partial).observe(seconds)
        self.last_sync = time.time()
