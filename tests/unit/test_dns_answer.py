"""The Kubernetes DNS specification as CoreDNS answers it: a table of cases, as CoreDNS's own tests.

Each case is (qname, qtype, rcode, answer, authority, additional) with the
records written as zone text; the check sorts both sides (CoreDNS's
test.SortAndCheck).  Queries go through the whole answering core
(`Handler.handle`: packet in, packet out) over `Records` loaded from
kinns.dns.fixtures — no API, no sockets.  The first table mirrors
plugin/kubernetes/handler_test.go (TTL 5, the plugin's default); the rest
covers what a kubeadm cluster adds (StatefulSet names, pods insecure,
PTR, NS, the negative SOA, the kubeadm Corefile's ttl/cache/loadbalance).
"""

from __future__ import annotations

import struct
import textwrap

import pytest

from kinns.dns import corefile, fixtures, wire
from kinns.dns.forward import Forwarder
from kinns.dns.handler import Handler
from kinns.dns.records import Records

SERIAL = 1499347823
PLAIN = textwrap.dedent("""\
    .:53 {
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        forward . /etc/resolv.conf
    }
""")
SOA5 = f"cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5"


def make_handler(text: str = PLAIN, objs: list[dict] | None = None, local_ips: tuple[str, ...] = ("10.244.0.2",),
                 synced: bool = True) -> Handler:
    cf = corefile.parse(text)
    records = Records(clock=lambda: SERIAL)
    records.replace(fixtures.cluster() if objs is None else objs)
    if synced:
        records.mark_synced()
    fwd = {i: Forwarder(b.forward, upstreams=[]) for i, b in enumerate(cf.blocks) if b.forward}
    return Handler(cf, records, local_ips=local_ips, forwarders=fwd)


@pytest.fixture(scope="module")
def plain() -> Handler:
    return make_handler()


def ask(h: Handler, name: str, qtype: int = wire.A, proto: str = "udp", **kw: object) -> wire.Message:
    ans = h.handle(wire.make_query(name, qtype, **kw), proto)  # type: ignore[arg-type]
    assert ans.data is not None
    return wire.decode_message(ans.data)


def texts(rrs: list[wire.RR]) -> list[str]:
    return sorted(" ".join(r.text().split()) for r in rrs)


def norm(lines: list[str]) -> list[str]:
    return sorted(" ".join(line.split()) for line in lines)


def check(msg: wire.Message, rcode: int, answer: list[str], ns: list[str], extra: list[str]) -> None:
    assert wire.RCODE_NAMES[msg.rcode] == wire.RCODE_NAMES[rcode]
    assert texts(msg.answer) == norm(answer)
    assert texts(msg.authority) == norm(ns)
    assert texts(msg.additional) == norm(extra)


T = wire
# (id, qname, qtype, rcode, answer, authority, additional)
COREDNS_CASES = [
    ("svc-A", "svc1.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"], [], []),
    ("svc-no-endpoints-A", "svcempty.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.1"], [], []),
    ("svc-SRV", "svc1.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."], [],
     ["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"]),
    ("svc6-SRV", "svc6.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["svc6.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc6.testns.svc.cluster.local."], [],
     ["svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"]),
    ("named-port-SRV", "_http._tcp.svc1.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."], [],
     ["svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"]),
    ("named-port-SRV-no-endpoints", "_http._tcp.svcempty.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_http._tcp.svcempty.testns.svc.cluster.local. 5 IN SRV 0 100 80 svcempty.testns.svc.cluster.local."], [],
     ["svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.1"]),
    ("headless-A", "hdls1.testns.svc.cluster.local.", T.A, T.NOERROR,
     [f"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.{i}" for i in (2, 3, 4, 5)], [], []),
    ("headless-portless-A", "hdlsprtls.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"], [], []),
    ("AAAA-of-v4-svc-NODATA", "svc1.testns.svc.cluster.local.", T.AAAA, T.NOERROR, [], [SOA5], []),
    ("AAAA-unknown-svc-NXDOMAIN", "svc0.testns.svc.cluster.local.", T.AAAA, T.NXDOMAIN, [], [SOA5], []),
    ("A-unknown-svc-NXDOMAIN", "svc0.testns.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("A-unknown-namespace-NXDOMAIN", "svc0.svc-nons.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("dns-version-TXT", "dns-version.cluster.local.", T.TXT, T.NOERROR,
     ['dns-version.cluster.local. 28800 IN TXT "1.1.0"'], [], []),
    ("TXT-of-svc-NODATA", "svc1.testns.svc.cluster.local.", T.TXT, T.NOERROR, [], [SOA5], []),
    ("TXT-unknown-NXDOMAIN", "svc0.svc-nons.svc.cluster.local.", T.TXT, T.NXDOMAIN, [], [SOA5], []),
    ("unknown-endpoint-NXDOMAIN", "bogusendpoint.hdls1.testns.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("endpoint-of-unknown-svc", "bogusendpoint.svc0.testns.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("svc6-AAAA", "svc6.testns.svc.cluster.local.", T.AAAA, T.NOERROR,
     ["svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"], [], []),
    ("svc6-named-SRV", "_http._tcp.svc6.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_http._tcp.svc6.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc6.testns.svc.cluster.local."], [],
     ["svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"]),
    ("headless-AAAA", "hdls1.testns.svc.cluster.local.", T.AAAA, T.NOERROR,
     ["hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
      "hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2"], [], []),
    ("svc-ENT-NODATA", "svc.cluster.local.", T.A, T.NOERROR, [], [SOA5], []),
    ("pod-ENT-NODATA", "pod.cluster.local.", T.A, T.NOERROR, [], [SOA5], []),
    ("namespace-ENT-NODATA", "testns.svc.cluster.local.", T.A, T.NOERROR, [], [SOA5], []),
    ("NS-below-apex-NODATA", "svc.cluster.local.", T.NS, T.NOERROR, [], [SOA5], []),
    ("NS-namespace-NODATA", "testns.svc.cluster.local.", T.NS, T.NOERROR, [], [SOA5], []),
    ("NS-nonexistent-NXDOMAIN", "foo.cluster.local.", T.NS, T.NXDOMAIN, [], [SOA5], []),
    ("NS-nonexistent-svc-NXDOMAIN", "foo.svc.cluster.local.", T.NS, T.NXDOMAIN, [], [SOA5], []),
    ("dual-stack-A", "svc-dual-stack.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3"], [], []),
    ("dual-stack-AAAA", "svc-dual-stack.testns.svc.cluster.local.", T.AAAA, T.NOERROR,
     ["svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3"], [], []),
    ("dual-stack-SRV", "svc-dual-stack.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["svc-dual-stack.testns.svc.cluster.local. 5 IN SRV 0 50 80 svc-dual-stack.testns.svc.cluster.local."], [],
     ["svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3",
      "svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3"]),
    ("SOA-below-apex-NODATA", "svc1.testns.svc.cluster.local.", T.SOA, T.NOERROR, [], [SOA5], []),
    ("below-ExternalName-NXDOMAIN", "endpoint.external.testns.svc.cluster.local.", T.CNAME, T.NXDOMAIN,
     [], [SOA5], []),
    ("two-below-ExternalName-NXDOMAIN", "subdomain.subdomain.external.testns.svc.cluster.local.", T.CNAME,
     T.NXDOMAIN, [], [SOA5], []),
    ("headless-SRV-per-endpoint", "_http._tcp.hdls1.testns.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.",
      "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.",
      "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.",
      "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.",
      "_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 dup-name.hdls1.testns.svc.cluster.local."], [],
     ["172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
      "172-0-0-3.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
      "5678-abcd--1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
      "5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
      "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
      "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5"]),
    ("v6-endpoint-AAAA", "5678-abcd--2.hdls1.testns.svc.cluster.local.", T.AAAA, T.NOERROR,
     ["5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2"], [], []),
    ("portless-endpoint-A", "172-0-0-20.hdlsprtls.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"], [], []),
    ("dashed-IP-endpoint-A", "172-0-0-2.hdls1.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"], [], []),
    ("endpoint-by-hostname", "dup-name.hdls1.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
      "dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5"], [], []),
    ("ExternalName-CNAME", "external.testns.svc.cluster.local.", T.CNAME, T.NOERROR,
     ["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."], [], []),
    ("ExternalName-A-no-upstream", "external.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."], [], []),
    ("ExternalName-to-internal-A", "external-to-service.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
      "svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"], [], []),
]

SOA_SERIAL = f"{SERIAL} 7200 1800 86400 5"
KUBEADM_CASES = [
    ("endpoint-of-ClusterIP-svc", "ep1a.svc1.testns.svc.cluster.local.", T.A, T.NOERROR,
     ["ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.0.0.1"], [], []),
    ("statefulset-pod-A", "web-0.nginx.default.svc.cluster.local.", T.A, T.NOERROR,
     ["web-0.nginx.default.svc.cluster.local. 5 IN A 10.244.1.10"], [], []),
    ("statefulset-pod-hostname-differs-from-name", "web-1.nginx.default.svc.cluster.local.", T.A, T.NOERROR,
     ["web-1.nginx.default.svc.cluster.local. 5 IN A 10.244.2.11"], [], []),
    ("statefulset-pod-not-ready-NXDOMAIN", "web-2.nginx.default.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("headless-ready-only", "nginx.default.svc.cluster.local.", T.A, T.NOERROR,
     ["nginx.default.svc.cluster.local. 5 IN A 10.244.1.10", "nginx.default.svc.cluster.local. 5 IN A 10.244.2.11"],
     [], []),
    ("headless-named-SRV-targets-hostnames", "_web._tcp.nginx.default.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_web._tcp.nginx.default.svc.cluster.local. 5 IN SRV 0 50 80 web-0.nginx.default.svc.cluster.local.",
      "_web._tcp.nginx.default.svc.cluster.local. 5 IN SRV 0 50 80 web-1.nginx.default.svc.cluster.local."], [],
     ["web-0.nginx.default.svc.cluster.local. 5 IN A 10.244.1.10",
      "web-1.nginx.default.svc.cluster.local. 5 IN A 10.244.2.11"]),
    ("headless-no-ready-endpoints-NXDOMAIN", "lonely.default.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("publishNotReadyAddresses", "eager.default.svc.cluster.local.", T.A, T.NOERROR,
     ["eager.default.svc.cluster.local. 5 IN A 10.244.3.4"], [], []),
    ("SRV-every-port", "web.default.svc.cluster.local.", T.SRV, T.NOERROR,
     ["web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
      "web.default.svc.cluster.local. 5 IN SRV 0 50 8080 web.default.svc.cluster.local."], [],
     ["web.default.svc.cluster.local. 5 IN A 10.96.0.50"]),
    ("SRV-named-port", "_http._tcp.web.default.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."], [],
     ["web.default.svc.cluster.local. 5 IN A 10.96.0.50"]),
    ("SRV-unknown-port-NXDOMAIN", "_https._tcp.web.default.svc.cluster.local.", T.SRV, T.NXDOMAIN, [], [SOA5], []),
    ("SRV-wrong-protocol-NXDOMAIN", "_http._udp.web.default.svc.cluster.local.", T.SRV, T.NXDOMAIN, [], [SOA5], []),
    ("SRV-UDP-port", "_dns._udp.kube-dns.kube-system.svc.cluster.local.", T.SRV, T.NOERROR,
     ["_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."],
     [], ["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]),
    ("another-namespace", "db.other.svc.cluster.local.", T.A, T.NOERROR,
     ["db.other.svc.cluster.local. 5 IN A 10.96.0.60"], [], []),
    ("pod-A-insecure", "10-244-1-5.default.pod.cluster.local.", T.A, T.NOERROR,
     ["10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5"], [], []),
    ("pod-AAAA-NODATA", "10-244-1-5.default.pod.cluster.local.", T.AAAA, T.NOERROR, [], [SOA5], []),
    ("pod-unknown-namespace-NXDOMAIN", "10-244-1-5.nons.pod.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("pod-not-an-IP-NXDOMAIN", "300-1-1-1.default.pod.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("pod-namespace-NODATA", "default.pod.cluster.local.", T.A, T.NOERROR, [], [SOA5], []),
    ("PTR-service", "50.0.96.10.in-addr.arpa.", T.PTR, T.NOERROR,
     ["50.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."], [], []),
    ("PTR-endpoint-dashed", "5.1.244.10.in-addr.arpa.", T.PTR, T.NOERROR,
     ["5.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-5.web.default.svc.cluster.local."], [], []),
    ("PTR-endpoint-hostname", "10.1.244.10.in-addr.arpa.", T.PTR, T.NOERROR,
     ["10.1.244.10.in-addr.arpa. 5 IN PTR web-0.nginx.default.svc.cluster.local."], [], []),
    ("PTR-v6-service", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", T.PTR, T.NOERROR,
     ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 IN PTR "
      "svc6.testns.svc.cluster.local."], [], []),
    # unknown addresses fall through to forward, and there is no upstream here: SERVFAIL at once
    ("PTR-unknown-falls-through", "9.9.9.10.in-addr.arpa.", T.PTR, T.SERVFAIL, [], [], []),
    ("PTR-not-ready-endpoint-falls-through", "7.2.244.10.in-addr.arpa.", T.PTR, T.SERVFAIL, [], [], []),
    ("external-name-no-upstream-SERVFAIL", "example.com.", T.A, T.SERVFAIL, [], [], []),
    ("apex-SOA", "cluster.local.", T.SOA, T.NOERROR, [SOA5], [], []),
    ("apex-A-NODATA", "cluster.local.", T.A, T.NOERROR, [], [SOA5], []),
    ("apex-NS", "cluster.local.", T.NS, T.NOERROR,
     ["cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."], [],
     ["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]),
    ("search-list-miss-1", "web.default.svc.cluster.local.default.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("search-list-miss-2", "example.com.default.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("search-list-miss-3", "example.com.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("search-list-miss-4", "example.com.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("MX-of-svc-NODATA", "svc1.testns.svc.cluster.local.", T.MX, T.NOERROR, [], [SOA5], []),
    ("MX-unknown-NXDOMAIN", "svc0.testns.svc.cluster.local.", T.MX, T.NXDOMAIN, [], [SOA5], []),
    ("unknown-type-NODATA", "svc1.testns.svc.cluster.local.", 65280, T.NOERROR, [], [SOA5], []),
    ("unknown-type-NXDOMAIN", "svc0.testns.svc.cluster.local.", 65280, T.NXDOMAIN, [], [SOA5], []),
    ("dns-version-A-NXDOMAIN", "dns-version.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("TXT-namespace-NXDOMAIN", "testns.svc.cluster.local.", T.TXT, T.NXDOMAIN, [], [SOA5], []),
    ("port-and-protocol-without-underscores", "http.tcp.web.default.svc.cluster.local.", T.A, T.NOERROR,
     ["http.tcp.web.default.svc.cluster.local. 5 IN A 10.96.0.50"], [], []),
    ("too-long-NXDOMAIN", "a._http._tcp.web.default.svc.cluster.local.", T.A, T.NXDOMAIN, [], [SOA5], []),
    ("case-kept", "Web.Default.SVC.Cluster.Local.", T.A, T.NOERROR,
     ["Web.Default.SVC.Cluster.Local. 5 IN A 10.96.0.50"], [], []),
    ("case-kept-in-SOA", "Nope.Default.SVC.Cluster.Local.", T.A, T.NXDOMAIN, [],
     [f"Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. {SOA_SERIAL}"], []),
]


@pytest.mark.parametrize("qname,qtype,rcode,answer,ns,extra",
                         [c[1:] for c in COREDNS_CASES + KUBEADM_CASES],
                         ids=[c[0] for c in COREDNS_CASES + KUBEADM_CASES])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_case(plain: Handler, proto: str, qname: str, qtype: int, rcode: int, answer: list[str],
              ns: list[str], extra: list[str]) -> None:
    msg = ask(plain, qname, qtype, proto)
    check(msg, rcode, answer, ns, extra)
    if rcode in (T.NOERROR, T.NXDOMAIN):
        assert msg.flags & T.AA, "kubernetes answers are authoritative"
    assert msg.flags & T.QR and msg.flags & T.RD and not msg.flags & T.RA
    assert msg.question == [(qname, qtype, T.IN)]


def test_answer_is_wire_valid_for_dnspython(plain: Handler) -> None:
    """An independent decoder agrees with ours on a packet with compression and SRV."""
    dns_message = pytest.importorskip("dns.message")
    data = plain.handle(wire.make_query("_http._tcp.hdls1.testns.svc.cluster.local.", T.SRV, edns=1232)).data
    assert data is not None
    m = dns_message.from_wire(data)
    ours = wire.decode_message(data)
    theirs = sorted(" ".join(line.split()) for rr in m.answer + m.additional for line in rr.to_text().splitlines())
    assert theirs == sorted(texts(ours.answer) + texts(ours.additional))
    assert m.edns == 0 and m.payload == 1232


# -------------------------------------------------------------- the kubeadm Corefile


@pytest.fixture(scope="module")
def kubeadm() -> Handler:
    return make_handler(corefile.KUBEADM_COREFILE)


def test_kubeadm_ttl_30(kubeadm: Handler) -> None:
    check(ask(kubeadm, "web.default.svc.cluster.local."), T.NOERROR,
          ["web.default.svc.cluster.local. 30 IN A 10.96.0.50"], [], [])
    check(ask(kubeadm, "nope.default.svc.cluster.local."), T.NXDOMAIN, [],
          [f"cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 30"], [])


def test_kubeadm_cache_caps_dns_version_ttl(kubeadm: Handler) -> None:
    """`cache 30` writes the capped TTL into every record of the reply (plugin/cache filterRRSlice)."""
    check(ask(kubeadm, "dns-version.cluster.local.", T.TXT), T.NOERROR,
          ['dns-version.cluster.local. 30 IN TXT "1.1.0"'], [], [])


def test_kubeadm_loadbalance_rotates_addresses(kubeadm: Handler) -> None:
    firsts = {str(ask(kubeadm, "hdls1.testns.svc.cluster.local.", qid=i).answer[0].data) for i in range(8)}
    assert firsts == {"172.0.0.2", "172.0.0.3", "172.0.0.4", "172.0.0.5"}
    cname_first = ask(kubeadm, "external-to-service.testns.svc.cluster.local.")
    assert [r.type for r in cname_first.answer] == [T.CNAME, T.A]


# -------------------------------------------------------------- EDNS, TC, TCP


def test_edns_echoed_with_client_size_and_do_bit(plain: Handler) -> None:
    msg = ask(plain, "web.default.svc.cluster.local.", edns=1232, do=True)
    assert msg.edns is not None and msg.edns.udp_size == 1232 and msg.edns.do and msg.edns.version == 0


def test_no_edns_no_opt(plain: Handler) -> None:
    assert ask(plain, "web.default.svc.cluster.local.").edns is None


def test_cookie_option_echoed(plain: Handler) -> None:
    """CoreDNS keeps NSID/EXPIRE/COOKIE/TCP-KEEPALIVE/PADDING in the OPT it echoes; drops the rest."""
    msg = ask(plain, "web.default.svc.cluster.local.", edns=4096, options=[(10, b"12345678"), (8, b"\x00\x01\x18\x00")])
    assert msg.edns is not None and msg.edns.options == ((10, b"12345678"),)


def test_badvers(plain: Handler) -> None:
    q = bytearray(wire.make_query("web.default.svc.cluster.local.", edns=1232))
    q[-5] = 1            # OPT TTL bytes: extended rcode, version (1), DO+Z
    msg = wire.decode_message(plain.handle(bytes(q)).data or b"")
    assert msg.rcode == T.BADVERS and msg.edns is not None and msg.edns.version == 0


@pytest.fixture(scope="module")
def big() -> Handler:
    return make_handler(objs=fixtures.cluster() + fixtures.big_headless(count=60))


def test_truncated_over_udp_without_edns(big: Handler) -> None:
    data = big.handle(wire.make_query("big.default.svc.cluster.local.")).data
    assert data is not None and len(data) <= 512
    msg = wire.decode_message(data)
    assert msg.flags & T.TC and 0 < len(msg.answer) < 60


def test_edns_size_lets_it_fit(big: Handler) -> None:
    msg = ask(big, "big.default.svc.cluster.local.", edns=4096)
    assert not msg.flags & T.TC and len(msg.answer) == 60


def test_tcp_never_truncates(big: Handler) -> None:
    msg = ask(big, "big.default.svc.cluster.local.", proto="tcp")
    assert not msg.flags & T.TC and len(msg.answer) == 60


def test_small_edns_size_means_512(big: Handler) -> None:
    data = big.handle(wire.make_query("big.default.svc.cluster.local.", edns=100)).data
    assert data is not None and 400 < len(data) <= 512 and wire.decode_message(data).flags & T.TC


# -------------------------------------------------------------- bad input


def _hdr(qid: int, flags: int, qd: int, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


Q_TAIL = b"\x03web\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01"
BAD = [
    ("short-packet-dropped", b"\x12\x34\x01", None, None),
    ("response-dropped", _hdr(7, T.QR, 1) + Q_TAIL, None, None),
    ("opcode-STATUS-NOTIMP", _hdr(7, 2 << 11 | T.RD, 1) + Q_TAIL, T.NOTIMP, 0),
    ("opcode-UPDATE-NOTIMP", _hdr(7, 5 << 11, 1) + Q_TAIL, T.NOTIMP, 0),
    ("two-questions-FORMERR", _hdr(7, T.RD, 2) + Q_TAIL + Q_TAIL, T.FORMERR, 0),
    ("no-question-FORMERR", _hdr(7, T.RD, 0), T.FORMERR, 0),
    ("header-only-SERVFAIL", _hdr(7, T.RD, 1), T.SERVFAIL, 0),
    ("label-over-63-FORMERR", _hdr(7, 0, 1) + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", T.FORMERR, 0),
    ("name-over-255-FORMERR", _hdr(7, 0, 1) + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", T.FORMERR, 0),
    ("pointer-loop-FORMERR", _hdr(7, 0, 1) + b"\xc0\x0c\x00\x01\x00\x01", T.FORMERR, 0),
    ("name-past-end-FORMERR", _hdr(7, 0, 1) + b"\x05ab", T.FORMERR, 0),
    ("bad-additional-FORMERR", _hdr(7, 0, 1, ar=1) + Q_TAIL + b"\x00\x00\x29\x10", T.FORMERR, 0),
    ("class-CH-REFUSED", _hdr(7, T.RD, 1) + Q_TAIL[:-2] + b"\x00\x03", T.REFUSED, 1),
    ("class-ANY-REFUSED", _hdr(7, T.RD, 1) + Q_TAIL[:-2] + b"\x00\xff", T.REFUSED, 1),
    ("AXFR-REFUSED", _hdr(7, 0, 1) + Q_TAIL[:-4] + b"\x00\xfc\x00\x01", T.REFUSED, 1),
]


@pytest.mark.parametrize("packet,rcode,qdcount", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(plain: Handler, packet: bytes, rcode: int | None, qdcount: int | None) -> None:
    ans = plain.handle(packet)
    if rcode is None:
        assert ans.data is None
        return
    assert ans.data is not None
    qid, flags, qd = struct.unpack_from("!HHH", ans.data)
    assert qid == 7 and flags & T.QR and flags & 0xF == rcode and qd == qdcount
    assert not flags & T.AA
    # and the server still answers the next good query
    assert ask(plain, "web.default.svc.cluster.local.").answer


def test_names_outside_every_block_refused() -> None:
    h = make_handler(".:53 {\n kubernetes cluster.local\n}\n".replace(".:53", "cluster.local:53"))
    assert ask(h, "example.com.").rcode == T.REFUSED


def test_no_next_plugin_servfail() -> None:
    h = make_handler(".:53 {\n kubernetes cluster.local\n}\n")
    msg = ask(h, "example.com.")
    assert msg.rcode == T.SERVFAIL and not msg.flags & T.AA and msg.question == [("example.com.", T.A, T.IN)]


# -------------------------------------------------------------- cache and sync


def test_cache_hit_patches_the_id(plain: Handler) -> None:
    a = plain.handle(wire.make_query("db.other.svc.cluster.local.", qid=1)).data
    hits = plain.hits
    b = plain.handle(wire.make_query("db.other.svc.cluster.local.", qid=2)).data
    assert plain.hits == hits + 1
    assert a is not None and b is not None and a[2:] == b[2:] and b[:2] == b"\x00\x02"


def test_record_change_invalidates_the_cache() -> None:
    h = make_handler()
    assert ask(h, "new.default.svc.cluster.local.").rcode == T.NXDOMAIN
    h.records.upsert(fixtures.service("default", "new", ["10.96.0.99"], [fixtures.port("http", 80)]))
    check(ask(h, "new.default.svc.cluster.local."), T.NOERROR, ["new.default.svc.cluster.local. 5 IN A 10.96.0.99"],
          [], [])
    h.records.delete(fixtures.service("default", "new"))
    assert ask(h, "new.default.svc.cluster.local.").rcode == T.NXDOMAIN


def test_unchanged_update_keeps_the_cache() -> None:
    h = make_handler()
    ask(h, "web.default.svc.cluster.local.")
    version = h.records.version
    p = fixtures.pod("default", "web-0", "10.244.1.10", hostname="web-0", subdomain="nginx")
    p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert not h.records.upsert(p)
    assert h.records.version == version and h.udp


def test_not_synced_is_servfail_not_nxdomain() -> None:
    h = make_handler(synced=False)
    msg = ask(h, "svc0.testns.svc.cluster.local.")
    check(msg, T.SERVFAIL, [], [SOA5], [])
    h.records.mark_synced()
    assert ask(h, "svc0.testns.svc.cluster.local.").rcode == T.NXDOMAIN


def test_ns_dns_name_without_own_endpoint() -> None:
    h = make_handler(local_ips=("192.0.2.1",))
    check(ask(h, "ns.dns.cluster.local."), T.NOERROR, ["ns.dns.cluster.local. 5 IN A 192.0.2.1"], [], [])
    check(ask(h, "cluster.local.", T.NS), T.NOERROR, ["cluster.local. 5 IN NS ns.dns.cluster.local."], [],
          ["ns.dns.cluster.local. 5 IN A 192.0.2.1"])


def test_pods_verified() -> None:
    text = PLAIN.replace("pods insecure", "pods verified")
    h = make_handler(text)
    check(ask(h, "10-244-1-10.default.pod.cluster.local."), T.NOERROR,
          ["10-244-1-10.default.pod.cluster.local. 5 IN A 10.244.1.10"], [], [])
    assert ask(h, "10-244-1-99.default.pod.cluster.local.").rcode == T.NXDOMAIN


def test_pods_disabled() -> None:
    h = make_handler(PLAIN.replace("pods insecure", "pods disabled"))
    assert ask(h, "10-244-1-10.default.pod.cluster.local.").rcode == T.NXDOMAIN
