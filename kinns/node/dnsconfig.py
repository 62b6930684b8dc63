"""Pod /etc/resolv.conf, computed the way the kubelet computes it.

The kubelet decides a pod's DNS from its `dnsPolicy` and optional
`dnsConfig`, then hands servers/searches/options to the runtime, which
writes the file.  This module does both halves as pure functions (no file
system access except what the caller passes in), so the rules can be tested
table-style:

- ClusterFirst (the default): the cluster DNS Service IP only; search list
  `<ns>.svc.<zone> svc.<zone> <zone>` followed by the node's own search
  list; `options ndots:5`.  A hostNetwork pod with ClusterFirst falls back
  to Default, as upstream; ClusterFirstWithHostNet keeps the cluster setup.
- Default: the node's resolv.conf as it is.
- None: nothing but `dnsConfig`.
- `dnsConfig` is merged into every policy: servers and searches appended
  without duplicates, options merged by name (the pod's value wins).
- Limits as the kubelet applies them: 3 nameservers, 32 search domains and
  2048 characters of search list; the excess is dropped.

The text layout (search, nameserver lines, options) follows what
containerd writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_NDOTS = "ndots:5"


@dataclass
class DNSConfig:
    """What ends up in a resolv.conf: servers, search domains, options."""

    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The file text, in the order containerd writes it."""
        out = []
        if self.searches:
            out.append("search " + " ".join(self.searches))
        out += [f"nameserver {s}" for s in self.servers]
        if self.options:
            out.append("options " + " ".join(self.options))
        return "\n".join(out) + "\n" if out else ""


def parse_resolv_conf(text: str) -> DNSConfig:
    """Parse a node resolv.conf: `nameserver`, `search`/`domain` (the last one
    wins, as in glibc), `options`; comments and unknown lines are ignored."""
    cfg = DNSConfig()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, *rest = line.split()
        if key == "nameserver" and rest:
            cfg.servers.append(rest[0])
        elif key in ("search", "domain"):
            cfg.searches = [d.rstrip(".") if d != "." else d for d in rest]
        elif key == "options":
            cfg.options += rest
    return cfg


def _dedup(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    """Options are keyed by name (`ndots:5` has name `ndots`); a pod's
    dnsConfig option replaces a same-named one, keeping its position."""
    merged: dict[str, str] = {}
    for text in base:
        merged[text.split(":", 1)[0]] = text
    for opt in extra:
        name = opt.get("name")
        if not name:
            continue
        value = opt.get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def _apply_limits(cfg: DNSConfig) -> DNSConfig:
    servers = cfg.servers[:MAX_NAMESERVERS]
    searches: list[str] = []
    total = 0
    for s in cfg.searches[:MAX_SEARCHES]:
        add = len(s) + (1 if searches else 0)
        if total + add > MAX_SEARCH_CHARS:
            break
        searches.append(s)
        total += add
    return DNSConfig(servers, searches, cfg.options)


def effective_policy(pod: dict[str, Any], cluster_dns: list[str]) -> str:
    """The policy that really applies: ClusterFirst becomes Default for
    hostNetwork pods and when the cluster has no DNS configured."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_net = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirst" and host_net:
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and not cluster_dns:
        policy = "Default"
    return policy


def pod_dns_config(pod: dict[str, Any], *, cluster_dns: list[str], cluster_domain: str = "cluster.local",
                   host_resolv: str = "") -> DNSConfig:
    """Servers/searches/options for `pod`, given the cluster DNS IPs, the
    cluster domain and the text of the node's resolv.conf."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    host = parse_resolv_conf(host_resolv)
    policy = effective_policy(pod, cluster_dns)
    if policy == "None":
        cfg = DNSConfig()
    elif policy == "ClusterFirst":
        zone = cluster_domain.strip(".")
        cfg = DNSConfig(list(cluster_dns),
                        _dedup([f"{ns}.svc.{zone}", f"svc.{zone}", zone] + host.searches),
                        [DEFAULT_NDOTS])
    else:  # Default
        cfg = host
    extra = spec.get("dnsConfig") or {}
    if extra:
        cfg = DNSConfig(_dedup(cfg.servers + list(extra.get("nameservers") or [])),
                        _dedup(cfg.searches + list(extra.get("searches") or [])),
                        _merge_options(cfg.options, list(extra.get("options") or [])))
    return _apply_limits(cfg)


def resolv_conf(pod: dict[str, Any], *, cluster_dns: list[str], cluster_domain: str = "cluster.local",
                host_resolv: str = "") -> str:
    """The /etc/resolv.conf text for `pod`."""
    return pod_dns_config(pod, cluster_dns=cluster_dns, cluster_domain=cluster_domain,
                          host_resolv=host_resolv).render()
