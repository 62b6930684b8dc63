"""From a query packet to a response packet: CoreDNS's server loop and plugin chain.

`Handler.handle(data, proto)` is the whole answering core, testable with
no network and no API: `Records` + wire query -> wire bytes.  It does what
CoreDNS's dnsserver and the plugins of kubeadm's Corefile do, in their
fixed order (plugin.cfg): log, errors, loadbalance, cache, kubernetes,
forward.

    packet ──► answer cache (key: packet after the ID) ──hit──► ID + bytes
                   │ miss
                   ▼
               parse_query ──bad──► drop / FORMERR / NOTIMP (miekg/dns's verdicts)
                   │                 REFUSED (class not IN), BADVERS (EDNS version)
                   ▼
               server block by zone ──none──► REFUSED
                   │
               kubernetes ──not ours / fallthrough──► forward ──none──► SERVFAIL
                   │                                     │
               cache TTL cap, loadbalance order, OPT echo, truncation to the client's size
                   ▼
               encode ──► store in the answer cache (when it depends on records only)

The answer cache is what makes a Python server fast: the bytes after the
2-byte ID fully determine the answer (name as asked, type, class, flags,
EDNS size and DO bit), so a hit is one dict look-up and one concatenation.
It is dropped whenever `Records` changes (any add/update/delete that
changes a slim record), so it never serves stale data.  Queries carrying
EDNS options (dig's cookie) are answered without it, since those bytes are
unique per client.  Answers that depended on the outside world (forwarded
names, an ExternalName's target) go in a second cache that also expires
by TTL, as CoreDNS's `cache` plugin would hold them.

Anything that needs the network raises `NeedsNetwork` unless the caller
allows it (`network=True`): the packet loop never blocks, it hands such
queries to worker threads.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

from . import wire
from .answer import Kubernetes, Outcome, is_subdomain, match_zone
from .corefile import CacheOptions, Corefile, LogOptions, ServerBlock
from .forward import Forwarder
from .records import Records
from .wire import RR, Query, Verdict

MAX_CACHE = 100_000      # entries per cache; a flood of unique names empties it rather than growing memory
MAX_LOOKUP_DEPTH = 8
MONITORED_TYPES = frozenset({"A", "AAAA", "NS", "PTR", "SRV", "SOA", "CNAME", "MX", "TXT", "NAPTR", "ANY", "DS",
                             "DNSKEY", "RRSIG", "NSEC", "NSEC3", "IXFR", "AXFR", "HINFO", "HTTPS", "SVCB", "CAA"})


class NeedsNetwork(Exception):
    """This query has to ask an upstream server: answer it from a worker thread."""


class Meta(NamedTuple):
    """What the metrics and the log plugin need to know about an answered query."""

    zone: str              # the server block's zone ("." ...), "dropped" for ignored packets
    qtype: str             # the metrics `type` label
    rcode: str
    plugin: str            # the plugin that wrote the answer ("" for the server itself)
    cache: str             # "success" / "denial" / "" : the kind for coredns_cache_* metrics
    log: str | None        # the log plugin's line without client, ID and duration; None: not logged
    do: bool = False


DROPPED = Meta("dropped", "other", "", "", "", None)


class Entry:
    """A cached answer: one or more byte strings (loadbalance orders) without the 2-byte ID."""

    __slots__ = ("variants", "n", "i", "meta", "key")

    def __init__(self, variants: list[bytes], meta: Meta, qsize: int) -> None:
        self.variants = variants
        self.n = len(variants)
        self.i = 0
        self.meta = meta
        self.key = (meta, qsize, len(variants[0]) + 2)     # what the metrics count per query

    def next(self) -> bytes:
        if self.n == 1:
            return self.variants[0]
        self.i = i = (self.i + 1) % self.n
        return self.variants[i]


class Answer(NamedTuple):
    data: bytes | None
    meta: Meta


class _Result(NamedTuple):
    answer: Answer
    variants: list[bytes]          # every order the loadbalance plugin serves (the first is `answer`)
    cacheable: bool = False
    ttl: float | None = None       # None: valid until the records change; else seconds (timed cache)


class _Missing(Exception):
    def __init__(self, target: str, qtype: int) -> None:
        super().__init__(target)
        self.target, self.qtype = target, qtype


def type_label(qtype: int) -> str:
    name = wire.type_name(qtype)
    return name if name in MONITORED_TYPES else "other"


class _Block:
    """One server block with its plugins instantiated."""

    def __init__(self, sb: ServerBlock, records: Records, local_ips: tuple[str, ...],
                 forwarder: Forwarder | None) -> None:
        self.sb = sb
        self.zone_label = sb.zones[0]
        self.kube = Kubernetes(records, sb.kubernetes, local_ips) if sb.kubernetes else None
        self.forward = forwarder
        self.cache = sb.cache
        self.log = sb.log
        self.loadbalance = sb.loadbalance


class Handler:
    def __init__(self, corefile: Corefile, records: Records, *, local_ips: tuple[str, ...] = (),
                 forwarders: dict[int, Forwarder] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`forwarders` maps a block's index to its Forwarder (made from the Corefile when absent)."""
        self.records = records
        self.clock = clock
        self.blocks: list[_Block] = []
        for i, sb in enumerate(corefile.blocks):
            fwd = (forwarders or {}).get(i)
            if fwd is None and sb.forward is not None:
                fwd = Forwarder(sb.forward, local_ips)
            self.blocks.append(_Block(sb, records, local_ips, fwd))
        self.udp: dict[bytes, Entry] = {}
        self.tcp: dict[bytes, Entry] = {}
        self.timed: dict[tuple[str, bytes], tuple[float, Entry]] = {}
        self.hits = 0
        self.misses = 0
        records.listeners.append(self.invalidate)

    # ------------------------------------------------------------ cache

    def invalidate(self) -> None:
        """Records changed: forget every cached answer (new dicts; readers keep the old ones)."""
        self.udp = {}
        self.tcp = {}
        self.timed = {}

    def cached(self, data: bytes, proto: str) -> Entry | None:
        entry = (self.udp if proto == "udp" else self.tcp).get(data[2:])
        if entry is not None:
            return entry
        if self.timed:
            hit = self.timed.get((proto, data[2:]))
            if hit is not None:
                if hit[0] > self.clock():
                    return hit[1]
                self.timed.pop((proto, data[2:]), None)
        return None

    def handle(self, data: bytes, proto: str = "udp", network: bool = False) -> Answer:
        """The response to one packet (None: drop it), with what metrics and logs need."""
        entry = self.cached(data, proto)
        if entry is not None:
            self.hits += 1
            return Answer(data[:2] + entry.next(), entry.meta)
        self.misses += 1
        return self.resolve(data, proto, network)

    # ---------------------------------------------------------- resolve

    def resolve(self, data: bytes, proto: str, network: bool) -> Answer:
        q = wire.parse_query(data)
        if isinstance(q, Verdict):
            return self._verdict(q)
        generation = self.records.version
        res = self._answer(q, proto, network, 0)
        if res.answer.data is not None and res.cacheable and (q.edns is None or not q.edns.options):
            self._store(data[2:], proto, Entry([v[2:] for v in res.variants], res.answer.meta, len(data)), res.ttl, generation)
        return res.answer

    def _store(self, key: bytes, proto: str, entry: Entry, ttl: float | None, generation: int) -> None:
        with self.records.lock:
            if self.records.version != generation:
                return          # the records changed while we answered: this answer may be stale
            if ttl is None:
                cache = self.udp if proto == "udp" else self.tcp
                if len(cache) >= MAX_CACHE:
                    cache.clear()
                cache[key] = entry
            elif ttl > 0:
                if len(self.timed) >= MAX_CACHE:
                    self.timed.clear()
                self.timed[(proto, key)] = (self.clock() + ttl, entry)

    def _verdict(self, v: Verdict) -> Answer:
        """Replies for packets that never reach a plugin (miekg/dns server.go, CoreDNS ServeDNS)."""
        if v.rcode == wire.DROP:
            return Answer(None, DROPPED)
        if v.rcode == wire.SERVFAIL:        # a header with no question: SetRcode copies RD/CD
            flags = wire.QR | (v.flags & 0x7800) | (v.flags & (wire.RD | wire.CD)) | v.rcode
        else:                               # SetRcodeFormatError keeps the header's other bits
            opcode = v.flags & 0x7800 if v.rcode == wire.NOTIMP else 0
            flags = wire.QR | (v.flags & (wire.RD | wire.TC | wire.RA | wire.AD | wire.CD)) | opcode | v.rcode
        meta = Meta("dropped", "other", wire.RCODE_NAMES.get(v.rcode, str(v.rcode)), "", "", None)
        return Answer(wire.encode_message(v.id, flags, None), meta)

    def _block_for(self, name: str) -> _Block | None:
        best: _Block | None = None
        best_len = -1
        for b in self.blocks:
            z = match_zone(name, b.sb.zones)
            if z and len(z) > best_len:
                best, best_len = b, len(z)
        return best

    def _answer(self, q: Query, proto: str, network: bool, depth: int) -> _Result:
        if q.qclass != wire.IN:
            return self._error(q, proto, wire.REFUSED, None, "", cacheable=True)
        if q.edns is not None and q.edns.version != 0:
            flags = wire.QR | (q.flags & 0x7800) | (q.flags & (wire.RD | wire.CD))
            data = wire.encode_message(q.id, flags, (q.qlabels, q.qtype, q.qclass),
                                       opt=wire.opt_rr(0, False, wire.BADVERS >> 4))
            return _Result(Answer(data, Meta(".", type_label(q.qtype), "BADVERS", "", "", None)), [data], True)
        block = self._block_for(q.name)
        if block is None:
            return self._error(q, proto, wire.REFUSED, None, "", cacheable=True)
        outcome = self._kubernetes(q, proto, network, depth, block) if block.kube is not None else None
        if outcome is None:
            return self._forward(q, proto, network, block)
        out, used_upstream = outcome
        if out.refused:
            return self._error(q, proto, wire.REFUSED, block, "kubernetes", cacheable=True)
        res = self._reply(q, proto, block, out, "kubernetes")
        if used_upstream:
            res = res._replace(ttl=self._ttl_of(block, out))
        return res

    def _kubernetes(self, q: Query, proto: str, network: bool, depth: int,
                    block: _Block) -> tuple[Outcome, bool] | None:
        """Run the kubernetes plugin under the records lock; None when the next plugin should answer.

        An ExternalName pointing outside the cluster needs an upstream
        look-up; that must not happen under the lock, so the plugin is
        run again once the look-ups it asked for are done.
        """
        assert block.kube is not None
        looked_up: dict[tuple[str, int], tuple[list[RR], bool] | None] = {}

        def upstream(target: str, qtype: int) -> tuple[list[RR], bool] | None:
            if (target, qtype) not in looked_up:
                raise _Missing(target, qtype)
            return looked_up[(target, qtype)]

        while True:
            try:
                with self.records.lock:
                    out = block.kube.serve(q.qname, q.qtype, upstream)
            except _Missing as m:
                looked_up[(m.target, m.qtype)] = self._lookup(m.target, m.qtype, proto, network, depth + 1)
                continue
            if out.next_plugin:
                return None
            return out, bool(looked_up)

    def _lookup(self, name: str, qtype: int, proto: str, network: bool, depth: int) -> tuple[list[RR], bool] | None:
        """CoreDNS's upstream.Lookup: resolve `name` through this server's own chain."""
        if depth > MAX_LOOKUP_DEPTH:
            return None
        q = wire.parse_query(wire.make_query(name, qtype))
        assert isinstance(q, Query)
        data = self._answer(q, proto, network, depth).answer.data
        if data is None:
            return None
        try:
            msg = wire.decode_message(data)
        except (wire.WireError, ValueError):
            return None
        return msg.answer, bool(msg.flags & wire.TC)

    # ----------------------------------------------------------- forward

    def _forward(self, q: Query, proto: str, network: bool, block: _Block) -> _Result:
        fwd = block.forward
        if fwd is None or not fwd.handles(q.name) or not fwd.available:
            return self._error(q, proto, wire.SERVFAIL, block, "")
        if not network:
            raise NeedsNetwork(q.name)
        if not fwd.acquire():
            return self._error(q, proto, wire.REFUSED, block, "forward")
        try:
            got = fwd.exchange(wire.make_query(q.qname, q.qtype, qid=q.id, rd=q.rd, qclass=q.qclass,
                                               edns=q.edns.udp_size if q.edns else None,
                                               do=bool(q.edns and q.edns.do)), tcp=proto == "tcp")
        finally:
            fwd.release()
        if got is None:
            return self._error(q, proto, wire.SERVFAIL, block, "forward")
        data, _to = got
        try:
            msg = wire.decode_message(data)
        except (wire.WireError, ValueError):
            return self._error(q, proto, wire.SERVFAIL, block, "forward")
        rcode = msg.rcode
        denial = rcode == wire.NXDOMAIN or (rcode == wire.NOERROR and not msg.answer)
        meta = self._meta(q, proto, block, rcode, msg.flags, len(data), "forward",
                          "denial" if denial else "success" if rcode == wire.NOERROR else "")
        ttl = 0.0
        if block.cache is not None and rcode in (wire.NOERROR, wire.NXDOMAIN):
            rrs = msg.answer + msg.authority + msg.additional
            lo, hi = _ttl_bounds(block.cache, denial)
            ttl = float(min(max(min((r.ttl for r in rrs), default=lo), lo), hi))
        return _Result(Answer(data, meta), [data], True, ttl)

    # ----------------------------------------------------------- replies

    def _opt(self, q: Query) -> bytes | None:
        """SizeAndDo: echo the client's OPT (version 0, its size and DO bit, the options CoreDNS keeps)."""
        if q.edns is None:
            return None
        return wire.opt_rr(q.edns.udp_size, q.edns.do, 0,
                           [o for o in q.edns.options if o[0] in wire.ECHOED_OPTIONS])

    @staticmethod
    def _limit(q: Query, proto: str) -> int:
        if proto == "tcp":
            return wire.MAX_MSG
        return max(q.edns.udp_size, wire.MIN_UDP) if q.edns is not None else wire.MIN_UDP

    @staticmethod
    def _reply_flags(q: Query) -> int:
        opcode = q.flags & 0x7800
        flags = wire.QR | opcode
        if opcode == 0:
            flags |= q.flags & (wire.RD | wire.CD)
        return flags

    def _error(self, q: Query, proto: str, rcode: int, block: _Block | None, plugin: str,
               cacheable: bool = False) -> _Result:
        """CoreDNS errorFunc: rcode, the question, the echoed OPT; not authoritative."""
        flags = self._reply_flags(q) | rcode
        data = wire.encode_message(q.id, flags, (q.qlabels, q.qtype, q.qclass), opt=self._opt(q),
                                   limit=self._limit(q, proto))
        return _Result(Answer(data, self._meta(q, proto, block, rcode, flags, len(data), plugin, "")), [data], cacheable)

    def _reply(self, q: Query, proto: str, block: _Block, out: Outcome, plugin: str) -> _Result:
        answer, authority, additional = out.answer, out.authority, out.additional
        denial = out.rcode == wire.NXDOMAIN or (out.rcode == wire.NOERROR and not answer)
        if block.cache is not None and not self._cache_disabled(block.cache, q.name, denial):
            if out.rcode in (wire.NOERROR, wire.NXDOMAIN):
                lo, hi = _ttl_bounds(block.cache, denial)
                ttl = min(max(_min_ttl(answer + authority + additional, denial), lo), hi)
            else:
                ttl = block.cache.min_denial_ttl       # failttl
            answer = [r.with_ttl(ttl) for r in answer]
            authority = [r.with_ttl(ttl) for r in authority]
            additional = [r.with_ttl(ttl) for r in additional]
        flags = self._reply_flags(q) | out.rcode | (wire.AA if out.authoritative else 0) | (wire.TC if out.truncated else 0)
        question = (q.qlabels, q.qtype, q.qclass)
        opt, limit = self._opt(q), self._limit(q, proto)
        orders = _balanced(answer) if block.loadbalance else [answer]
        variants = [wire.encode_message(q.id, flags, question, a, authority, additional, opt, limit) for a in orders]
        data = variants[0]
        meta = self._meta(q, proto, block, out.rcode, _u16(data, 2), len(data), plugin,
                          "denial" if denial else "success" if out.rcode == wire.NOERROR else "")
        # Before the first sync a miss is SERVFAIL: never keep that.
        return _Result(Answer(data, meta), variants, out.rcode != wire.SERVFAIL)

    @staticmethod
    def _cache_disabled(c: CacheOptions, name: str, denial: bool) -> bool:
        if not any(is_subdomain(z, name) for z in c.zones):
            return True
        zones = c.disable_denial if denial else c.disable_success
        return any(is_subdomain(z, name) for z in zones)

    def _ttl_of(self, block: _Block, out: Outcome) -> float:
        """How long an answer that asked upstream may be reused."""
        if block.cache is None:
            return 0.0
        denial = out.rcode == wire.NXDOMAIN or not out.answer
        lo, hi = _ttl_bounds(block.cache, denial)
        return float(min(max(_min_ttl(out.answer + out.authority + out.additional, denial), lo), hi))

    def _meta(self, q: Query, proto: str, block: _Block | None, rcode: int, rflags: int, rsize: int,
              plugin: str, kind: str) -> Meta:
        rname = wire.RCODE_NAMES.get(rcode, str(rcode))
        do = bool(q.edns and q.edns.do)
        line = None
        if block is not None and block.log is not None and _log_wants(block.log, q.name, rcode, kind):
            bufsize = self._limit(q, proto)
            line = (f'"{wire.type_name(q.qtype)} {wire.class_name(q.qclass)} {q.name} {proto} {q.size} '
                    f'{"true" if do else "false"} {bufsize}" {rname} {wire.flags_text(rflags)} {rsize}')
        zone = block.zone_label if block is not None else "."
        return Meta(zone, type_label(q.qtype), rname, plugin, kind, line, do)


def _u16(data: bytes, off: int) -> int:
    return (data[off] << 8) | data[off + 1]


def _ttl_bounds(c: CacheOptions, denial: bool) -> tuple[int, int]:
    return (c.min_denial_ttl, c.denial_ttl) if denial else (c.min_success_ttl, c.success_ttl)


def _min_ttl(rrs: list[RR], denial: bool) -> int:
    """dnsutil.MinimalTTL: the smallest TTL; for denials the SOA's (and its minimum field)."""
    if denial:
        soas = [r for r in rrs if r.type == wire.SOA]
        if soas:
            return min(min(r.ttl, int(r.data[6])) for r in soas)
    return min((r.ttl for r in rrs), default=0)


def _balanced(answer: list[RR]) -> list[list[RR]]:
    """The loadbalance plugin's orders: CNAMEs first, then the rest, then addresses, rotated."""
    addrs = [r for r in answer if r.type in (wire.A, wire.AAAA)]
    if len(answer) <= 1 or len(addrs) <= 1:
        return [answer]
    head = [r for r in answer if r.type == wire.CNAME] + [r for r in answer if r.type not in (wire.CNAME, wire.A, wire.AAAA)]
    n = min(len(addrs), 16)
    return [head + addrs[i:] + addrs[:i] for i in range(n)]


def _log_wants(opts: LogOptions, name: str, rcode: int, kind: str) -> bool:
    if not any(is_subdomain(z, name) for z in opts.names):
        return False
    if "all" in opts.classes:
        return True
    cls = "success" if kind == "success" else "denial" if kind == "denial" else "error"
    return cls in opts.classes
