"""The Kubernetes DNS specification (schema 1.1.0), answered as CoreDNS answers it.

This is CoreDNS's kubernetes plugin (plugin/kubernetes: handler.go,
parse.go, kubernetes.go, reverse.go, ns.go) and the lookup helpers it
calls (plugin/backend_lookup.go), re-derived in Python over `Records`:

* `parse_request` splits a name inside the zone into
  `[endpoint | _port._proto].service.namespace.(svc|pod)`; anything
  longer is an invalid request (NXDOMAIN).
* `Kubernetes.records` finds "service entries" (host, port, target name)
  for a name: a Service's cluster IPs per matching port, a headless
  Service's published endpoints (or any Service's endpoints when an
  endpoint label is asked), an ExternalName's target, a pod's dashed IP.
* `Kubernetes.serve` turns entries into records by query type exactly as
  CoreDNS's handler does, including the NXDOMAIN/NODATA split (other
  types do a "fake A lookup"), SERVFAIL before the first sync,
  `fallthrough` for the reverse zones, SRV weights (floor(100/n)),
  CNAME chasing for ExternalName (inside the zone here, outside through
  the `upstream` callback), PTR for Service and endpoint addresses, NS
  and SOA at the apex and `dns-version` TXT.

Everything is pure: `Records` in, an `Outcome` (rcode, sections, whether
to pass the query to the next plugin) out.  Wire encoding, caching and
the network live in handler.py and server.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, NamedTuple

from . import wire
from .records import Address, EndpointSlice, Records
from .wire import RR

DNS_SCHEMA_VERSION = "1.1.0"
DEFAULT_TTL = 5
MAX_CNAME_CHAIN = 10
IP4_ARPA = ".in-addr.arpa."
IP6_ARPA = ".ip6.arpa."

# upstream(name, qtype) -> (answer records, truncated), or None when the look-up failed.
Upstream = Callable[[str, int], "tuple[list[RR], bool] | None"]


class NameError_(Exception):
    """errNoItems / errNsNotExposed / errInvalidRequest: the name does not exist."""


@dataclass(frozen=True)
class KubeOptions:
    """The `kubernetes` block of the Corefile."""

    zones: tuple[str, ...] = ("cluster.local.",)
    ttl: int = DEFAULT_TTL
    pods: str = "disabled"                       # disabled | insecure | verified
    fallthrough: tuple[str, ...] | None = None   # None: off; (): every zone
    endpoint_pod_names: bool = False
    namespaces: frozenset[str] = frozenset()     # `namespaces` option: only these are exposed
    kubeconfig: tuple[str, str] | None = None    # (path, context)

    @property
    def primary_zone(self) -> str:
        """The first zone that is not a reverse zone (CoreDNS primaryZone())."""
        for z in self.zones:
            if not is_reverse(z):
                return z
        return self.zones[0]


@dataclass
class Outcome:
    rcode: int = wire.NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    authoritative: bool = True
    truncated: bool = False
    next_plugin: bool = False     # not ours (or fallthrough): the next plugin answers
    refused: bool = False         # the plugin returned REFUSED without writing (AXFR)


class Entry(NamedTuple):
    """CoreDNS's msg.Service: where a name points."""

    host: str          # an IP, or a name (CNAME), or "" for TXT
    port: int
    key: str           # the target's own name (SRV targets, additional records)
    ttl: int
    text: str = ""


class Request(NamedTuple):
    """CoreDNS's recordRequest."""

    port: str = ""
    protocol: str = ""
    endpoint: str = ""
    service: str = ""
    namespace: str = ""
    pod_or_svc: str = ""


# ------------------------------------------------------------- name helpers


def match_zone(name: str, zones: tuple[str, ...]) -> str:
    """The longest of `zones` that `name` (lower-case, fqdn) is in, or ""."""
    best = ""
    for z in zones:
        if (name == z or z == "." or name.endswith("." + z)) and len(z) > len(best):
            best = z
    return best


def is_subdomain(parent: str, child: str) -> bool:
    parent, child = parent.lower(), child.lower()
    return parent == "." or child == parent or child.endswith("." + parent)


def is_reverse(name: str) -> bool:
    return name.endswith(IP4_ARPA) or name.endswith(IP6_ARPA) or name in ("in-addr.arpa.", "ip6.arpa.")


def trim_zone(name: str, zone: str) -> str:
    if name == zone:
        return ""
    return name[:-len(zone) - 1] if zone != "." else name[:-1]


def split_labels(base: str) -> list[str]:
    return base.split(".") if base else []


@lru_cache(maxsize=4096)
def host_type(host: str) -> int:
    """A, AAAA, TXT (no host) or CNAME, as msg.Service.HostType."""
    if not host:
        return wire.TXT
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return wire.CNAME
    return wire.A if ip.version == 4 else wire.AAAA


def parse_ip(text: str) -> str:
    """Go's net.ParseIP(text).String(), or "" when it does not parse."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def address_from_reverse(name: str) -> str:
    """`4.3.2.1.in-addr.arpa.` -> `1.2.3.4` (dnsutil.ExtractAddressFromReverse); "" if not an address."""
    if name.endswith(IP4_ARPA):
        segs = name[:-len(IP4_ARPA)].split(".")[::-1]
        ip = parse_ip(".".join(segs))
        return ip if ip and ":" not in ip else ""
    if name.endswith(IP6_ARPA):
        segs = name[:-len(IP6_ARPA)].split(".")[::-1]
        groups = ["".join(segs[i * 4:i * 4 + 4]) for i in range(len(segs) // 4)]
        return parse_ip(":".join(groups))
    return ""


def parse_request(name: str, zone: str) -> Request:
    """Split a name in the zone into its parts (CoreDNS parseRequest, without multicluster/zonal)."""
    base = trim_zone(name, zone)
    if base in ("", "svc", "pod"):
        return Request()
    segs = split_labels(base)
    last = len(segs) - 1
    pod_or_svc = segs[last]
    if pod_or_svc not in ("svc", "pod"):
        raise NameError_("invalid query name")
    last -= 1
    if last < 0:
        return Request(pod_or_svc=pod_or_svc)
    namespace = segs[last]
    last -= 1
    if last < 0:
        return Request(namespace=namespace, pod_or_svc=pod_or_svc)
    service = segs[last]
    last -= 1
    if last < 0:
        return Request(service=service, namespace=namespace, pod_or_svc=pod_or_svc)
    if last == 0:
        return Request(endpoint=segs[0], service=service, namespace=namespace, pod_or_svc=pod_or_svc)
    if last == 1:
        return Request(port=segs[0].removeprefix("_"), protocol=segs[1].removeprefix("_"),
                       service=service, namespace=namespace, pod_or_svc=pod_or_svc)
    raise NameError_("invalid query name")    # too long


def _match(a: str, b: str) -> bool:
    return a == b or a.lower() == b.lower()


def _match_port(r: Request, name: str, protocol: str) -> bool:
    return (not r.port or _match(r.port, name)) and (not r.protocol or _match(r.protocol, protocol))


# ------------------------------------------------------------------- plugin


class Kubernetes:
    """The kubernetes plugin over a `Records` (see module doc)."""

    def __init__(self, records: Records, opts: KubeOptions, local_ips: tuple[str, ...] = ()) -> None:
        self.records = records
        self.opts = opts
        self.local_ips = local_ips

    # -- entry point

    def serve(self, qname: str, qtype: int, upstream: Upstream | None = None) -> Outcome:
        """Answer `qname` (as asked, fqdn) for `qtype`, or say the next plugin should."""
        name = qname.lower()
        zone_l = match_zone(name, self.opts.zones)
        if not zone_l:
            return Outcome(next_plugin=True)
        zone = qname[len(qname) - len(zone_l):]     # keep the case the client used
        answer: list[RR] = []
        extra: list[RR] = []
        truncated = False
        try:
            if qtype in (wire.A, wire.AAAA):
                answer, truncated = self._address(qname, zone, qtype, [], upstream)
            elif qtype == wire.TXT:
                answer = self._txt(qname, zone)
            elif qtype == wire.CNAME:
                answer = self._cname(qname, zone)
            elif qtype == wire.PTR:
                answer = self._ptr(qname, zone)
            elif qtype == wire.MX:
                self.services(name, zone, qtype)     # nothing in Kubernetes is a mail host
            elif qtype == wire.SRV:
                answer, extra = self._srv(qname, zone)
            elif qtype == wire.SOA:
                if name == zone_l:
                    answer = [self.soa(zone)]
            elif qtype in (wire.AXFR, wire.IXFR):
                return Outcome(rcode=wire.REFUSED, refused=True)
            elif qtype == wire.NS and name == zone_l:
                answer, extra = self._ns(qname, zone)
            else:
                # A fake A look-up tells NODATA from NXDOMAIN.
                self._address(qname, zone, wire.A, [], upstream)
        except NameError_:
            if self._falls_through(name):
                return Outcome(next_plugin=True)
            rcode = wire.NXDOMAIN if self.records.synced else wire.SERVFAIL
            return Outcome(rcode=rcode, authority=[self.soa(zone)])
        if not answer:
            return Outcome(authority=[self.soa(zone)])
        return Outcome(answer=answer, additional=extra, truncated=truncated)

    def _falls_through(self, name: str) -> bool:
        ft = self.opts.fallthrough
        if ft is None:
            return False
        return not ft or any(is_subdomain(z, name) for z in ft)

    def soa(self, zone: str) -> RR:
        ttl = self.opts.ttl
        return RR(zone, wire.SOA, min(ttl, 300),
                  ("ns.dns." + zone, "hostmaster." + zone, self.records.modified & 0xFFFFFFFF,
                   7200, 1800, 86400, ttl))

    # -- finding entries (kubernetes.go)

    def _ns_exposed(self, ns: str) -> bool:
        if self.opts.namespaces and ns not in self.opts.namespaces:
            return False
        return self.records.namespace_exists(ns)

    def records_for(self, name: str, zone: str) -> list[Entry]:
        """CoreDNS Kubernetes.Records."""
        r = parse_request(name, zone.lower())
        if not r.pod_or_svc:
            return []
        if is_reverse(name):
            raise NameError_("no items")
        if not self._ns_exposed(r.namespace):
            raise NameError_("namespace not exposed")
        if r.pod_or_svc == "pod":
            return self._find_pods(r, zone)
        return self._find_services(r, zone)

    def _find_pods(self, r: Request, zone: str) -> list[Entry]:
        mode = self.opts.pods
        if mode == "disabled":
            raise NameError_("pods disabled")
        if not r.service:
            return []
        podname = r.service
        if podname.count("-") == 3 and "--" not in podname:
            ip = podname.replace("-", ".")
        else:
            ip = podname.replace("-", ":")
        key = f"{podname}.{r.namespace}.pod.{zone}"
        if mode == "insecure":
            if not parse_ip(ip):
                raise NameError_("not an address")
            return [Entry(ip, 0, key, self.opts.ttl)]
        out = [Entry(ip, 0, key, self.opts.ttl) for p in self.records.pods_at(ip) if _match(r.namespace, p.namespace)]
        if not out:
            raise NameError_("no such pod")
        return out

    def _find_services(self, r: Request, zone: str) -> list[Entry]:
        if not r.service:
            return []
        svc = self.records.service(r.namespace, r.service)
        if svc is None:
            raise NameError_("no such service")
        ttl = self.opts.ttl
        base = f"{svc.name}.{svc.namespace}.svc.{zone}"
        if svc.type == "ExternalName":
            if r.endpoint or r.port or r.protocol or host_type(svc.external_name) != wire.CNAME:
                raise NameError_("no items")
            return [Entry(svc.external_name, 0, base, ttl)]
        out: list[Entry] = []
        if svc.headless or r.endpoint:
            epn = self.opts.endpoint_pod_names
            eps = self.records.endpoints_named(svc, r.endpoint, epn) if r.endpoint else self.records.endpoints(svc, epn)
            for host, a, sl in eps:
                for p in sl.ports:
                    if _match_port(r, p.name, p.protocol):
                        out.append(Entry(a.ip, p.port, f"{host}.{base}", ttl))
            if not out:
                raise NameError_("no items")
            return out
        matched = False
        for p in svc.ports:
            if _match_port(r, p.name, p.protocol):
                matched = True
                out += [Entry(ip, p.port, base, ttl) for ip in svc.cluster_ips]
        if not matched:
            raise NameError_("no items")
        return out

    def services(self, name: str, zone: str, qtype: int) -> list[Entry]:
        """CoreDNS Kubernetes.Services: the entries for `name` as a `qtype` query sees them."""
        zl = zone.lower()
        if qtype == wire.TXT:
            if split_labels(trim_zone(name, zl)) == ["dns-version"]:
                return [Entry("", 0, name, 28800, DNS_SCHEMA_VERSION)]
            try:
                found = self.records_for(name, zone)
            except NameError_:
                found = []
            if found:
                return []
            raise NameError_("no items")
        if qtype == wire.NS:
            return [Entry(ip, 0, n, self.opts.ttl) for n, ip in self.ns_addrs(zone)]
        if name == "ns.dns." + zl:
            want = qtype
            return [Entry(ip, 0, name, self.opts.ttl) for _, ip in self.ns_addrs(zone) if host_type(ip) == want]
        found = self.records_for(name, zone)
        if qtype != wire.SRV:
            return found
        return [e for e in found if host_type(e.host) != wire.CNAME]

    def ns_addrs(self, zone: str) -> list[tuple[str, str]]:
        """(name, address) of this DNS service (CoreDNS nsAddrs): found via our own endpoint."""
        out: list[tuple[str, str]] = []
        found = False
        for local in self.local_ips:
            for sl in self.records.slices_at(local):
                svc = self.records.service(sl.namespace, sl.service)
                if not any(a.ip == local for a in self._published_in(sl)):
                    continue
                found = True
                if svc is None:
                    continue
                base = f"{svc.name}.{svc.namespace}.svc.{zone}"
                if svc.headless:
                    for a in self._published_in(sl):
                        host = self.records.endpoint_hostname(sl.namespace, sl.service, a, self.opts.endpoint_pod_names)
                        out.append((f"{host}.{base}", a.ip))
                else:
                    out += [(base, ip) for ip in svc.cluster_ips]
        if not found:
            out = [("ns.dns." + zone, ip) for ip in self.local_ips]
        return out

    def _published_in(self, sl: EndpointSlice) -> list[Address]:
        svc = self.records.service(sl.namespace, sl.service)
        return [a for a in sl.addresses if a.ready or (svc is not None and svc.publish_not_ready)]

    # -- records by type (backend_lookup.go)

    def _apex_services(self, name: str, zone: str, qtype: int) -> list[Entry]:
        """checkForApex: the apex answers from `apex.dns.<zone>` when that exists (it never does here)."""
        if name != zone.lower():
            return self.services(name, zone, qtype)
        try:
            return self.services("apex.dns." + zone.lower(), zone, qtype)
        except NameError_:
            return self.services(name, zone, qtype)

    def _address(self, qname: str, zone: str, qtype: int, previous: list[RR],
                 upstream: Upstream | None) -> tuple[list[RR], bool]:
        name = qname.lower()
        entries = self._apex_services(name, zone, qtype)
        out: list[RR] = []
        seen: set[str] = set()
        truncated = False
        for e in entries:
            what = host_type(e.host)
            if what == wire.CNAME:
                target = wire.fqdn(e.host)
                if target.lower() == name or len(previous) > MAX_CNAME_CHAIN:
                    continue
                cname = RR(qname, wire.CNAME, e.ttl, target)
                if any(p.type == wire.CNAME and p.name.lower() == qname.lower() and str(p.data).lower() == target.lower()
                       for p in previous):
                    continue
                if is_subdomain(zone, target):
                    try:
                        more, tc = self._address(target, zone, qtype, previous + [cname], upstream)
                    except NameError_:
                        more, tc = [], False
                    if more:
                        out += [cname] + more
                    truncated |= tc
                    continue
                found = upstream(target, qtype) if upstream is not None else None
                if found is None:
                    continue
                answers, tc = found
                truncated |= tc
                out += [cname] + answers
            elif what == qtype and e.host not in seen:
                seen.add(e.host)
                out.append(RR(qname, qtype, e.ttl, e.host))
        return out, truncated

    def _txt(self, qname: str, zone: str) -> list[RR]:
        entries = self.services(qname.lower(), zone, wire.TXT)
        return [RR(qname, wire.TXT, e.ttl, (e.text,)) for e in entries if e.text]

    def _cname(self, qname: str, zone: str) -> list[RR]:
        entries = self.services(qname.lower(), zone, wire.CNAME)
        if entries and host_type(entries[0].host) == wire.CNAME:
            return [RR(qname, wire.CNAME, entries[0].ttl, wire.fqdn(entries[0].host))]
        return []

    def _srv(self, qname: str, zone: str) -> tuple[list[RR], list[RR]]:
        entries = self.services(qname.lower(), zone, wire.SRV)
        weight = max(int(100.0 / len(entries)), 1) if entries else 0
        answer: list[RR] = []
        extra: list[RR] = []
        seen_srv: set[tuple[str, int]] = set()
        seen_addr: set[tuple[str, str]] = set()
        for e in entries:
            if e.port == -1:
                continue
            what = host_type(e.host)
            if what not in (wire.A, wire.AAAA):
                continue
            if (e.key, e.port) not in seen_srv:
                seen_srv.add((e.key, e.port))
                answer.append(RR(qname, wire.SRV, e.ttl, (0, weight, e.port, e.key)))
            if (e.key, e.host) not in seen_addr:
                seen_addr.add((e.key, e.host))
                extra.append(RR(e.key, what, e.ttl, e.host))
        return answer, extra

    def _ns(self, qname: str, zone: str) -> tuple[list[RR], list[RR]]:
        answer: list[RR] = []
        extra: list[RR] = []
        seen: set[str] = set()
        for e in self.services("ns.dns." + zone.lower(), zone, wire.NS):
            what = host_type(e.host)
            if what not in (wire.A, wire.AAAA):
                continue
            extra.append(RR(e.key, what, e.ttl, e.host))
            if e.key not in seen:
                seen.add(e.key)
                answer.append(RR(qname, wire.NS, e.ttl, e.key))
        return answer, extra

    def _ptr(self, qname: str, zone: str) -> list[RR]:
        name = qname.lower()
        ip = address_from_reverse(name)
        if not ip:
            self.records_for(name, zone)
            return []
        hosts = self._reverse(ip)
        if not hosts:
            raise NameError_("no items")
        out: list[RR] = []
        for h in hosts:
            if not any(r.data == h for r in out):
                out.append(RR(qname, wire.PTR, self.opts.ttl, h))
        return out

    def _reverse(self, ip: str) -> list[str]:
        """serviceRecordForIP: the first Service with that cluster IP, else every endpoint with it."""
        zone = self.opts.primary_zone
        for svc in self.records.services_at(ip):
            if self.opts.namespaces and svc.namespace not in self.opts.namespaces:
                continue
            return [f"{svc.name}.{svc.namespace}.svc.{zone}"]
        out = []
        for sl in self.records.slices_at(ip):
            if self.opts.namespaces and sl.namespace not in self.opts.namespaces:
                continue
            for a in self._published_in(sl):
                if a.ip == ip:
                    host = self.records.endpoint_hostname(sl.namespace, sl.service, a, self.opts.endpoint_pod_names)
                    out.append(f"{host}.{sl.service}.{sl.namespace}.svc.{zone}")
        return out

