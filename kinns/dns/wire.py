"""DNS wire format: just enough of RFC 1035/6891 for a cluster DNS server, by hand.

The packet path of `kinns.dns` needs three things from the wire, and
this module gives exactly those, with no DNS library underneath (a library
would parse every query into objects; the server wants to avoid parsing
at all on a cache hit):

* `parse_query(data)` decodes a request the way CoreDNS's Go library
  (miekg/dns) does, including its verdicts on bad input: a header shorter
  than 12 bytes or a response (QR=1) is dropped, an opcode other than
  QUERY/NOTIFY is NOTIMP, anything but one question (or too many records
  in the other sections) is FORMERR, a name that does not decode (labels
  over 63, names over 255, pointer loops, truncation) is FORMERR.
* `encode_message(...)` writes a response with name compression and
  truncates it to the client's buffer as miekg's `Msg.Truncate` does
  (whole records, answer first, TC when anything was dropped).
* `RR` is the small record type the answer code builds; `RR.text()`
  renders it as zone text (the form the unit tests compare).

Names are presentation strings with a trailing dot (`web.default.svc.
cluster.local.`); labels that hold dots, backslashes or bytes outside
printable ASCII are escaped as `\\.`/`\\DDD`, as miekg does, so any wire
name survives the round trip.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, NamedTuple, Sequence

# Types and classes this server speaks about.
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, AXFR, IXFR, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 252, 251, 255
IN, CH, HS, CLASS_NONE, CLASS_ANY = 1, 3, 4, 254, 255

TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
              28: "AAAA", 33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
              48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR", 252: "AXFR", 255: "ANY",
              257: "CAA"}
CLASS_NAMES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}

# Response codes (RFC 1035 4.1.1, RFC 6891 for BADVERS).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}

# Header flag bits (second 16-bit word).
QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
OPCODE_QUERY, OPCODE_NOTIFY = 0, 4

# EDNS options CoreDNS echoes back (plugin/pkg/edns: NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING).
ECHOED_OPTIONS = frozenset({3, 9, 10, 11, 12})
MIN_UDP = 512
MAX_MSG = 65535

_HEADER = struct.Struct("!HHHHHH")
_U16 = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")


def type_name(t: int) -> str:
    return TYPE_NAMES.get(t) or f"TYPE{t}"


def class_name(c: int) -> str:
    return CLASS_NAMES.get(c) or f"CLASS{c}"


# ----------------------------------------------------------------- names

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/+=@!#$%&'^`{|}~[]<>?,:")


def label_text(label: bytes) -> str:
    """One wire label in presentation form (miekg's escaping)."""
    if all(b in _PLAIN for b in label):
        return label.decode("ascii")
    out = []
    for b in label:
        if b in (0x2E, 0x5C, 0x28, 0x29, 0x3B, 0x20, 0x22, 0x40, 0x24):  # . \ ( ) ; space " @ $
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return "".join(out)


def labels_text(labels: Sequence[bytes]) -> str:
    return "".join(label_text(lb) + "." for lb in labels) or "."


@lru_cache(maxsize=8192)
def name_labels(name: str) -> tuple[bytes, ...]:
    """A presentation name (escapes allowed) as wire labels; the trailing dot is optional."""
    if name in (".", ""):
        return ()
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        if c == "\\" and i + 1 < n:
            if name[i + 1:i + 4].isdigit() and len(name[i + 1:i + 4]) == 3:
                cur.append(int(name[i + 1:i + 4]))
                i += 4
                continue
            cur += name[i + 1].encode("latin-1")
            i += 2
            continue
        if c == ".":
            if not cur:
                raise ValueError(f"empty label in {name!r}")
            labels.append(bytes(cur))
            cur = bytearray()
        else:
            cur += c.encode("latin-1")
        i += 1
    if cur:
        labels.append(bytes(cur))
    for lb in labels:
        if len(lb) > 63:
            raise ValueError(f"label longer than 63 bytes in {name!r}")
    if sum(len(lb) + 1 for lb in labels) + 1 > 255:
        raise ValueError(f"name longer than 255 bytes: {name!r}")
    return tuple(labels)


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


class WireError(ValueError):
    """A packet that does not decode (the server answers FORMERR)."""


def read_name(data: bytes, off: int) -> tuple[tuple[bytes, ...], int]:
    """Decode a (possibly compressed) name at `off`; returns labels and the offset after it."""
    labels: list[bytes] = []
    end = -1
    hops = 0
    total = 1
    n = len(data)
    while True:
        if off >= n:
            raise WireError("name runs past the end of the packet")
        c = data[off]
        if c == 0:
            off += 1
            break
        kind = c & 0xC0
        if kind == 0xC0:
            if off + 1 >= n:
                raise WireError("truncated compression pointer")
            hops += 1
            if hops > 126:
                raise WireError("too many compression pointers")
            if end < 0:
                end = off + 2
            off = ((c & 0x3F) << 8) | data[off + 1]
            continue
        if kind:
            raise WireError("bad label type")    # 0x40 / 0x80: labels over 63 or extended types
        total += c + 1
        if total > 255:
            raise WireError("name longer than 255 bytes")
        if off + 1 + c > n:
            raise WireError("label runs past the end of the packet")
        labels.append(data[off + 1:off + 1 + c])
        off += 1 + c
    return tuple(labels), (end if end >= 0 else off)


# ---------------------------------------------------------------- queries


@dataclass(slots=True)
class Edns:
    udp_size: int
    version: int
    do: bool
    ext_rcode: int
    options: tuple[tuple[int, bytes], ...]


@dataclass(slots=True)
class Query:
    """A decoded request: header fields, the one question, and its OPT record (if any)."""

    id: int
    flags: int
    qlabels: tuple[bytes, ...]
    qtype: int
    qclass: int
    edns: Edns | None
    size: int                     # bytes on the wire (the log plugin's "size")
    question_complete: bool = True

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    @property
    def qname(self) -> str:
        """The question name as asked (case kept), in presentation form."""
        return labels_text(self.qlabels)

    @property
    def name(self) -> str:
        """The question name lower-cased (what lookups use, as CoreDNS's state.Name())."""
        return labels_text(tuple(lb.lower() for lb in self.qlabels))


class Verdict(NamedTuple):
    """What to do with a request that cannot be answered normally (see `parse_query`)."""

    rcode: int         # -1: drop silently
    id: int
    flags: int
    query: Query | None = None


DROP = -1


def parse_query(data: bytes) -> Query | Verdict:
    """Decode a request, or say how miekg/dns (and so CoreDNS) would refuse it."""
    if len(data) < 12:
        return Verdict(DROP, 0, 0)
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & QR:
        return Verdict(DROP, qid, flags)
    opcode = (flags >> 11) & 0xF
    if opcode not in (OPCODE_QUERY, OPCODE_NOTIFY):
        return Verdict(NOTIMP, qid, flags)
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        return Verdict(FORMERR, qid, flags)
    n = len(data)
    try:
        if n == 12:
            # miekg stops reading when the packet ends: no question at all (CoreDNS: SERVFAIL).
            return Verdict(SERVFAIL, qid, flags)
        labels, off = read_name(data, 12)
        qtype = qclass = 0
        complete = off + 4 <= n
        if off + 2 <= n:
            qtype = _U16.unpack_from(data, off)[0]
        if complete:
            qclass = _U16.unpack_from(data, off + 2)[0]
        off += 4
        edns: Edns | None = None
        for _ in range(an + ns + ar if complete else 0):
            if off >= n:
                break      # counts that lie are forgiven, as miekg does
            _, off = read_name(data, off)
            if off + 10 > n:
                raise WireError("truncated record")
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, off)
            off += 10
            if off + rdlen > n:
                raise WireError("record data runs past the end")
            if rtype == OPT:
                edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000), ttl >> 24,
                            _options(data[off:off + rdlen]))
            off += rdlen
    except WireError:
        return Verdict(FORMERR, qid, flags)
    return Query(qid, flags, labels, qtype, qclass, edns, n, complete)


def _options(rdata: bytes) -> tuple[tuple[int, bytes], ...]:
    out = []
    i = 0
    while i + 4 <= len(rdata):
        code, length = struct.unpack_from("!HH", rdata, i)
        if i + 4 + length > len(rdata):
            raise WireError("truncated EDNS option")
        out.append((code, rdata[i + 4:i + 4 + length]))
        i += 4 + length
    if i != len(rdata):
        raise WireError("trailing bytes in OPT")
    return tuple(out)


def make_query(name: str, qtype: int = A, *, qid: int = 0x1234, rd: bool = True, qclass: int = IN,
               edns: int | None = None, do: bool = False, options: Iterable[tuple[int, bytes]] = (),
               opcode: int = 0) -> bytes:
    """A query packet (tests, benchmarks, the forwarder's own look-ups)."""
    flags = (RD if rd else 0) | (opcode << 11)
    out = bytearray(_HEADER.pack(qid, flags, 1, 0, 0, 1 if edns is not None else 0))
    for lb in name_labels(name):
        out.append(len(lb))
        out += lb
    out.append(0)
    out += struct.pack("!HH", qtype, qclass)
    if edns is not None:
        opts = b"".join(struct.pack("!HH", c, len(v)) + v for c, v in options)
        out += b"\x00" + struct.pack("!HHIH", OPT, edns, 0x8000 if do else 0, len(opts)) + opts
    return bytes(out)


# ---------------------------------------------------------------- records


class RR(NamedTuple):
    """One resource record.  `data` by type: A/AAAA an address string; NS/CNAME/PTR a name;
    SRV (priority, weight, port, target); TXT a tuple of strings; SOA (mname, rname, serial,
    refresh, retry, expire, minimum); anything else raw bytes."""

    name: str
    type: int
    ttl: int
    data: Any
    rclass: int = IN

    def text(self) -> str:
        """Zone-file text, as miekg's `RR.String()` (and `dig`) print it."""
        return f"{self.name}\t{self.ttl}\t{class_name(self.rclass)}\t{type_name(self.type)}\t{rdata_text(self)}"

    def with_ttl(self, ttl: int) -> "RR":
        return self._replace(ttl=ttl)


def rdata_text(rr: RR) -> str:
    d = rr.data
    if rr.type == SRV:
        p, w, port, target = d
        return f"{p} {w} {port} {target}"
    if rr.type == SOA:
        return " ".join(str(x) for x in d)
    if rr.type == TXT:
        return " ".join('"%s"' % s.replace("\\", "\\\\").replace('"', '\\"') for s in d)
    if isinstance(d, bytes):
        return "\\# %d %s" % (len(d), d.hex())
    return str(d)


class _Writer:
    """Appends names and records to a packet, compressing names against earlier ones."""

    __slots__ = ("buf", "names")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.names: dict[tuple[bytes, ...], int] = {}

    def name(self, labels: tuple[bytes, ...], compress: bool = True) -> None:
        buf = self.buf
        for i in range(len(labels)):
            suffix = tuple(lb.lower() for lb in labels[i:])
            ptr = self.names.get(suffix) if compress else None
            if ptr is not None:
                buf += _U16.pack(0xC000 | ptr)
                return
            if len(buf) < 0x3FFF:
                self.names.setdefault(suffix, len(buf))
            buf.append(len(labels[i]))
            buf += labels[i]
        buf.append(0)

    def rr(self, rr: RR) -> None:
        self.name(name_labels(rr.name))
        buf = self.buf
        fixed_at = len(buf)
        buf += _RR_FIXED.pack(rr.type, rr.rclass, rr.ttl & 0xFFFFFFFF, 0)
        start = len(buf)
        t, d = rr.type, rr.data
        if t == A:
            buf += ipaddress.IPv4Address(d).packed
        elif t == AAAA:
            buf += ipaddress.IPv6Address(d).packed
        elif t in (CNAME, PTR, NS):
            self.name(name_labels(d))
        elif t == SRV:
            p, w, port, target = d
            buf += struct.pack("!HHH", p, w, port)
            self.name(name_labels(target), compress=False)   # RFC 2782: no compression in SRV targets
        elif t == TXT:
            for s in d:
                raw = s.encode()
                buf.append(len(raw))
                buf += raw
        elif t == SOA:
            mname, rname, *nums = d
            self.name(name_labels(mname))
            self.name(name_labels(rname))
            buf += struct.pack("!IIIII", *nums)
        else:
            buf += d
        struct.pack_into("!H", buf, fixed_at + 8, len(buf) - start)


def opt_rr(udp_size: int, do: bool = False, ext_rcode: int = 0, options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """The OPT pseudo-record (RFC 6891): root name, class = UDP size, TTL = ext-rcode/version/DO."""
    opts = b"".join(struct.pack("!HH", c, len(v)) + v for c, v in options)
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", OPT, udp_size, ttl, len(opts)) + opts


def encode_message(qid: int, flags: int, question: tuple[tuple[bytes, ...], int, int] | None,
                   answer: Sequence[RR] = (), authority: Sequence[RR] = (), additional: Sequence[RR] = (),
                   opt: bytes | None = None, limit: int = MAX_MSG) -> bytes:
    """A response packet, cut to `limit` bytes the way miekg's Msg.Truncate cuts it.

    Whole records are kept in section order (answer, authority,
    additional) while they fit next to the OPT record; TC is set when any
    record had to go.  Records are written with name compression (CoreDNS
    compresses when a reply would not fit otherwise; smaller is never wrong).
    """
    w = _Writer()
    w.buf += b"\x00" * 12
    if question is not None:
        labels, qtype, qclass = question
        w.name(labels)
        w.buf += struct.pack("!HH", qtype, qclass)
    budget = max(limit, MIN_UDP) - (len(opt) if opt is not None else 0)
    counts = [0, 0, 0]
    truncated = False
    for i, section in enumerate((answer, authority, additional)):
        for rr in section:
            if truncated:
                break
            mark, names = len(w.buf), len(w.names)
            w.rr(rr)
            if len(w.buf) > budget:
                del w.buf[mark:]
                if len(w.names) != names:   # forget names written by the dropped record
                    w.names = {k: v for k, v in w.names.items() if v < mark}
                truncated = True
                break
            counts[i] += 1
    if truncated:
        flags |= TC
    arcount = counts[2]
    if opt is not None:
        w.buf += opt
        arcount += 1
    _HEADER.pack_into(w.buf, 0, qid, flags, 1 if question is not None else 0, counts[0], counts[1], arcount)
    return bytes(w.buf)


# ------------------------------------------------------------- decoding answers


@dataclass
class Message:
    """A decoded response (tests and the forwarder's cache look at these)."""

    id: int
    flags: int
    question: list[tuple[str, int, int]]
    answer: list[RR]
    authority: list[RR]
    additional: list[RR]
    edns: Edns | None

    @property
    def rcode(self) -> int:
        ext = self.edns.ext_rcode if self.edns else 0
        return (ext << 4) | (self.flags & 0xF)


def _rdata(data: bytes, off: int, rtype: int, rdlen: int) -> Any:
    end = off + rdlen
    if rtype == A and rdlen == 4:
        return str(ipaddress.IPv4Address(data[off:end]))
    if rtype == AAAA and rdlen == 16:
        return str(ipaddress.IPv6Address(data[off:end]))
    if rtype in (CNAME, PTR, NS):
        return labels_text(read_name(data, off)[0])
    if rtype == SRV:
        p, w, port = struct.unpack_from("!HHH", data, off)
        return (p, w, port, labels_text(read_name(data, off + 6)[0]))
    if rtype == SOA:
        m, o = read_name(data, off)
        r, o = read_name(data, o)
        return (labels_text(m), labels_text(r), *struct.unpack_from("!IIIII", data, o))
    if rtype == TXT:
        out, i = [], off
        while i < end:
            ln = data[i]
            out.append(data[i + 1:i + 1 + ln].decode("utf-8", "replace"))
            i += 1 + ln
        return tuple(out)
    return bytes(data[off:end])


def decode_message(data: bytes) -> Message:
    """Decode a whole message (responses included)."""
    if len(data) < 12:
        raise WireError("short packet")
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    off = 12
    question = []
    for _ in range(qd):
        labels, off = read_name(data, off)
        qt, qc = struct.unpack_from("!HH", data, off)
        off += 4
        question.append((labels_text(labels), qt, qc))
    sections: list[list[RR]] = [[], [], []]
    edns = None
    for i, count in enumerate((an, ns, ar)):
        for _ in range(count):
            labels, off = read_name(data, off)
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, off)
            off += 10
            if off + rdlen > len(data):
                raise WireError("record data runs past the end")
            if rtype == OPT:
                edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000), ttl >> 24,
                            _options(data[off:off + rdlen]))
            else:
                sections[i].append(RR(labels_text(labels), rtype, ttl, _rdata(data, off, rtype, rdlen), rclass))
            off += rdlen
    return Message(qid, flags, question, sections[0], sections[1], sections[2], edns)


def flags_text(flags: int) -> str:
    """The log plugin's `{>rflags}`: `qr,aa,rd` and so on."""
    names = (("qr", QR), ("aa", AA), ("tc", TC), ("rd", RD), ("ra", RA), ("ad", AD), ("cd", CD))
    return ",".join(n for n, bit in names if flags & bit)
