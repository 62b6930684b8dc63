"""The hand-written wire format: names, compression, truncation, decoding what we encode."""

from __future__ import annotations

import struct

import pytest

from kinns.dns import wire
from kinns.dns.wire import RR


@pytest.mark.parametrize("text,labels", [
    ("web.default.svc.cluster.local.", (b"web", b"default", b"svc", b"cluster", b"local")),
    (".", ()),
    ("a\\.b.c.", (b"a.b", b"c")),
    ("\\000x.", (b"\x00x",)),
], ids=["plain", "root", "escaped-dot", "escaped-byte"])
def test_names_round_trip(text: str, labels: tuple[bytes, ...]) -> None:
    assert wire.name_labels(text) == labels
    assert wire.labels_text(labels) == text


def test_name_limits() -> None:
    with pytest.raises(ValueError):
        wire.name_labels("a" * 64 + ".")
    with pytest.raises(ValueError):
        wire.name_labels(".".join(["a" * 63] * 4) + ".")


def test_compression_and_decoding() -> None:
    q = (wire.name_labels("x.default.svc.cluster.local."), wire.SRV, wire.IN)
    answer = [RR("x.default.svc.cluster.local.", wire.SRV, 5, (0, 50, 80, "a.x.default.svc.cluster.local.")),
              RR("x.default.svc.cluster.local.", wire.SRV, 5, (0, 50, 80, "b.x.default.svc.cluster.local."))]
    extra = [RR("a.x.default.svc.cluster.local.", wire.A, 5, "10.0.0.1"),
             RR("b.x.default.svc.cluster.local.", wire.AAAA, 5, "fd00::1")]
    data = wire.encode_message(1, wire.QR | wire.AA, q, answer, [], extra)
    msg = wire.decode_message(data)
    assert msg.answer == answer and msg.additional == extra
    # the owner names after the question are 2-byte pointers
    assert data.count(b"\x07cluster\x05local") < 5


def test_truncation_keeps_whole_records_and_sets_tc() -> None:
    q = (wire.name_labels("big.default.svc.cluster.local."), wire.A, wire.IN)
    answer = [RR("big.default.svc.cluster.local.", wire.A, 5, f"10.0.{i // 250}.{i % 250}") for i in range(100)]
    data = wire.encode_message(1, wire.QR, q, answer, limit=512)
    assert len(data) <= 512
    msg = wire.decode_message(data)
    assert msg.flags & wire.TC and 0 < len(msg.answer) < 100
    assert msg.answer == answer[:len(msg.answer)]
    # room for the OPT record is kept
    opt = wire.opt_rr(600)
    data = wire.encode_message(1, wire.QR, q, answer, opt=opt, limit=600)
    assert len(data) <= 600 and wire.decode_message(data).edns is not None


def test_parse_query_fields() -> None:
    q = wire.parse_query(wire.make_query("Web.Default.svc.cluster.local.", wire.AAAA, qid=99, edns=1232, do=True,
                                         options=[(10, b"abcdefgh")]))
    assert isinstance(q, wire.Query)
    assert (q.id, q.qtype, q.qclass, q.rd) == (99, wire.AAAA, wire.IN, True)
    assert q.qname == "Web.Default.svc.cluster.local." and q.name == "web.default.svc.cluster.local."
    assert q.edns == wire.Edns(1232, 0, True, 0, ((10, b"abcdefgh"),))


def test_compressed_question_name_is_accepted() -> None:
    # a question whose name points back into itself (legal, if odd): "a" + pointer to "b."
    pkt = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x01b\x00" + b"\x01a\xc0\x0c\x00\x01\x00\x01"
    # the question starts at 12 with "b." then garbage follows; parse the first name only
    q = wire.parse_query(pkt)
    assert isinstance(q, wire.Query) and q.qlabels == (b"b",)


def test_verdicts() -> None:
    assert wire.parse_query(b"short").rcode == wire.DROP  # type: ignore[union-attr]
    hdr = struct.pack("!HHHHHH", 1, 0, 1, 2, 0, 0)
    assert wire.parse_query(hdr + b"\x00\x00\x01\x00\x01").rcode == wire.FORMERR  # type: ignore[union-attr]


def test_rr_text() -> None:
    assert RR("a.", wire.TXT, 5, ('say "hi"',)).text() == 'a.\t5\tIN\tTXT\t"say \\"hi\\""'
    assert RR("z.", wire.SOA, 5, ("ns.dns.z.", "hostmaster.z.", 1, 7200, 1800, 86400, 5)).text() == \
        "z.\t5\tIN\tSOA\tns.dns.z. hostmaster.z. 1 7200 1800 86400 5"
    assert wire.flags_text(wire.QR | wire.AA | wire.RD) == "qr,aa,rd"
