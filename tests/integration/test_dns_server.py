"""The DNS server as its own process, with real packets, in scratch network namespaces.

`python -m kinns.dns -conf Corefile -fixtures FILE` runs in a namespace
this module creates (deleted in teardown, even after a failure), serving
records from a fixture file — no cluster, no API server — and is queried
with `dig` and with raw packets over UDP and TCP: answers by the
specification, TC on a big headless answer and the retry over TCP, EDNS,
prompt SERVFAIL for names outside the cluster (no upstream here),
malformed packets and a query flood not stopping it, CoreDNS's log and
metrics formats, records changing under it, and a Corefile it cannot
parse.  The last tests run it against a real kinns API server over HTTP
(informers, not fixtures): a Service created resolves within a second,
deleted it is NXDOMAIN, and with the API server stopped names still
resolve.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path
from typing import Iterator

import pytest

from kinns.dns import corefile, fixtures, wire
from kinns.dns.testbed import Testbed, write_fixtures

COREFILE = corefile.KUBEADM_COREFILE.replace("    errors\n", "    errors\n    log\n")


@pytest.fixture(scope="module")
def tb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with Testbed(tmp_path_factory.mktemp("dns")) as bed:
        yield bed


@pytest.fixture(scope="module")
def ns(tb: Testbed) -> str:
    """One namespace with the server in it, serving the fixture cluster plus a big headless Service."""
    name = tb.netns()
    resolv = tb.workdir / "resolv.conf"
    resolv.write_text("nameserver 10.255.255.53\n")    # unroutable in the namespace: no upstream
    text = COREFILE.replace("/etc/resolv.conf", str(resolv))
    tb.dns_server(name, text, fixtures=fixtures.cluster() + fixtures.big_headless(count=60))
    return name


def server_log(tb: Testbed) -> str:
    return (tb.workdir / "coredns.log").read_text()


def test_banner(tb: Testbed, ns: str) -> None:
    out = server_log(tb)
    assert ".:53\n[INFO] plugin/reload: Running configuration SHA512 = " in out
    assert "CoreDNS-1.11.3\nlinux/amd64, go1.21.11, a6338e9\n" in out


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dig_cluster_ip(tb: Testbed, ns: str, tcp: bool) -> None:
    out = tb.dig(ns, "web.default.svc.cluster.local", *(["+tcp"] if tcp else []))
    assert "status: NOERROR" in out and "flags: qr aa rd;" in out
    assert re.search(r"^web\.default\.svc\.cluster\.local\.\s+30\s+IN\s+A\s+10\.96\.0\.50$", out, re.M)


CASES = [
    ("headless", "nginx.default.svc.cluster.local.", wire.A, wire.NOERROR, {"10.244.1.10", "10.244.2.11"}),
    ("statefulset-pod", "web-0.nginx.default.svc.cluster.local.", wire.A, wire.NOERROR, {"10.244.1.10"}),
    ("named-port-SRV", "_http._tcp.web.default.svc.cluster.local.", wire.SRV, wire.NOERROR,
     {(0, 100, 80, "web.default.svc.cluster.local.")}),
    ("PTR", "50.0.96.10.in-addr.arpa.", wire.PTR, wire.NOERROR, {"web.default.svc.cluster.local."}),
    ("ExternalName", "external.testns.svc.cluster.local.", wire.CNAME, wire.NOERROR, {"ext.interwebs.test."}),
    ("pod", "10-244-1-5.default.pod.cluster.local.", wire.A, wire.NOERROR, {"10.244.1.5"}),
    ("dns-version", "dns-version.cluster.local.", wire.TXT, wire.NOERROR, {("1.1.0",)}),
    ("NODATA", "web.default.svc.cluster.local.", wire.AAAA, wire.NOERROR, set()),
    ("NXDOMAIN", "nope.default.svc.cluster.local.", wire.A, wire.NXDOMAIN, set()),
    ("other-namespace", "db.other.svc.cluster.local.", wire.A, wire.NOERROR, {"10.96.0.60"}),
    ("search-list-miss", "db.other.svc.cluster.local.default.svc.cluster.local.", wire.A, wire.NXDOMAIN, set()),
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name,qtype,rcode,data", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_spec_over_the_wire(tb: Testbed, ns: str, tcp: bool, name: str, qtype: int, rcode: int,
                            data: set[object]) -> None:
    msg = tb.query(ns, name, qtype, tcp=tcp)
    assert msg.rcode == rcode
    assert {r.data for r in msg.answer} == data
    if not data:
        assert [r.type for r in msg.authority] == [wire.SOA]


def test_truncated_then_tcp(tb: Testbed, ns: str) -> None:
    """No EDNS: 60 A records do not fit in 512 bytes, TC is set; dig retries over TCP and gets them all."""
    out = tb.dig(ns, "big.default.svc.cluster.local", "+noedns", "+ignore")
    assert re.search(r"flags: qr aa tc rd;", out) and "ANSWER: 60" not in out
    out = tb.dig(ns, "big.default.svc.cluster.local", "+noedns")
    assert "Truncated, retrying in TCP mode" in out and "ANSWER: 60," in out


def test_edns_buffer_size(tb: Testbed, ns: str) -> None:
    out = tb.dig(ns, "big.default.svc.cluster.local", "+bufsize=4096", "+ignore")
    assert "ANSWER: 60," in out and " tc " not in out.split("flags:")[1].split(";")[0]
    assert "; EDNS: version: 0, flags:; udp: 4096" in out
    out = tb.dig(ns, "big.default.svc.cluster.local", "+bufsize=800", "+ignore")   # 60 A records take 1030 bytes
    assert "flags: qr aa tc rd;" in out


def test_servfail_promptly_without_upstream(tb: Testbed, ns: str) -> None:
    t0 = time.monotonic()
    out = tb.dig(ns, "example.com", "+tries=1", "+time=5")
    assert "status: SERVFAIL" in out
    assert time.monotonic() - t0 < 1.5


def test_malformed_packets_do_not_stop_it(tb: Testbed, ns: str) -> None:
    s = tb.socket(ns)
    s.settimeout(1.0)
    garbage = [b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\xff" * 200, b"\x00\x01\x00\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c",
               struct.pack("!HHHHHH", 9, 0x8000, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01"]
    for g in garbage:
        s.sendto(g, ("127.0.0.1", 53))
    # two questions: FORMERR, header only
    s.sendto(struct.pack("!HHHHHH", 77, 0x0100, 2, 0, 0, 0) + b"\x01a\x00\x00\x01\x00\x01" * 2, ("127.0.0.1", 53))
    deadline = time.monotonic() + 2
    formerr = None
    while time.monotonic() < deadline:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        if data[:2] == b"\x00\x4d":
            formerr = data
            break
    s.close()
    assert formerr is not None and formerr[3] & 0xF == wire.FORMERR
    # a label over 63 bytes over TCP: FORMERR too, and the connection keeps serving
    bad = struct.pack("!HHHHHH", 5, 0, 1, 0, 0, 0) + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"
    reply = tb.exchange(ns, bad, tcp=True)
    assert reply is not None and reply[3] & 0xF == wire.FORMERR
    assert tb.query(ns, "web.default.svc.cluster.local.").answer


def test_flood_from_one_client(tb: Testbed, ns: str) -> None:
    """10,000 queries as fast as one socket can send: the server keeps answering everybody."""
    s = tb.socket(ns)
    s.setblocking(False)
    q = wire.make_query("nope.default.svc.cluster.local.")
    for i in range(10000):
        try:
            s.sendto(q, ("127.0.0.1", 53))
        except BlockingIOError:
            time.sleep(0.001)
    s.close()
    assert tb.query(ns, "web.default.svc.cluster.local.", tcp=True).answer
    assert tb.query(ns, "web.default.svc.cluster.local.").answer


def test_log_lines_in_coredns_format(tb: Testbed, ns: str) -> None:
    tb.query(ns, "web.default.svc.cluster.local.", qid=4217)
    time.sleep(0.2)
    line = re.compile(r'^\[INFO\] 127\.0\.0\.1:\d+ - 4217 "A IN web\.default\.svc\.cluster\.local\. udp 47 false 512" '
                      r"NOERROR qr,aa,rd \d+ \d+\.\d+s$", re.M)
    assert line.search(server_log(tb))


def test_health_ready_metrics(tb: Testbed, ns: str) -> None:
    assert tb.http(ns, 8080, "/health") == (200, "OK")
    assert tb.http(ns, 8181, "/ready") == (200, "OK")
    status, text = tb.http(ns, 9153, "/metrics")
    assert status == 200
    assert re.search(r'^coredns_dns_requests_total\{family="1",proto="udp",server="dns://:53",type="A",'
                     r'view="",zone="\."\} \d+$', text, re.M)
    assert re.search(r'^coredns_dns_responses_total\{plugin="kubernetes",rcode="NXDOMAIN",server="dns://:53",'
                     r'view="",zone="\."\} \d+$', text, re.M)
    for name in ("coredns_dns_request_duration_seconds_bucket", "coredns_cache_hits_total", "coredns_build_info",
                 "coredns_dns_response_size_bytes_bucket", "coredns_plugin_enabled"):
        assert name in text


def test_records_change_under_it(tb: Testbed, ns: str) -> None:
    objs = fixtures.cluster() + fixtures.big_headless(count=60)
    assert tb.query(ns, "late.default.svc.cluster.local.").rcode == wire.NXDOMAIN
    write_fixtures(tb.fixtures_path(), objs + [fixtures.service("default", "late", ["10.96.0.77"],
                                                                [fixtures.port("http", 80)])])
    deadline = time.monotonic() + 1.0
    while tb.query(ns, "late.default.svc.cluster.local.").rcode != wire.NOERROR:
        assert time.monotonic() < deadline, "a new Service did not resolve within a second"
        time.sleep(0.02)
    write_fixtures(tb.fixtures_path(), objs)
    deadline = time.monotonic() + 1.0
    while tb.query(ns, "late.default.svc.cluster.local.").rcode != wire.NXDOMAIN:
        assert time.monotonic() < deadline, "a deleted Service still resolved after a second"
        time.sleep(0.02)


def test_bad_corefile_never_ready(tb: Testbed) -> None:
    other = tb.netns()
    text = corefile.KUBEADM_COREFILE.replace("    loop\n", "    loop\n    frobnicate\n")
    p = tb.dns_server(other, text, fixtures=[], name="badconf", wait=False)
    tb.wait_http(other, 8080, "/health", p)
    assert tb.http(other, 8181, "/ready")[0] == 503
    assert "[ERROR] Corefile:18 - Error during parsing: Unknown directive 'frobnicate'" in p.output()
    assert tb.exchange(other, wire.make_query("web.default.svc.cluster.local."), timeout=0.5) is None


# ------------------------------------------------------------------ against a real API server


def test_informers_against_an_api_server(tb: Testbed) -> None:
    api_ns = tb.netns()
    api, kubeconfig = tb.api_server(api_ns)
    text = corefile.KUBEADM_COREFILE.replace("/etc/resolv.conf", str(tb.workdir / "resolv.conf"))
    tb.dns_server(api_ns, text, name="informers", env_kubeconfig=str(kubeconfig))
    # the apiserver's own `kubernetes` Service
    assert tb.query(api_ns, "kubernetes.default.svc.cluster.local.").answer
    svc = fixtures.service("default", "fresh", None, [fixtures.port("http", 80)])
    status, body = tb.http(api_ns, 6443, "/api/v1/namespaces/default/services", "POST", svc)
    assert status == 201, body
    t0 = time.monotonic()
    while tb.query(api_ns, "fresh.default.svc.cluster.local.").rcode != wire.NOERROR:
        assert time.monotonic() - t0 < 1.0, "a new Service did not resolve within a second"
        time.sleep(0.01)
    ip = tb.query(api_ns, "fresh.default.svc.cluster.local.").answer[0].data
    assert ip.startswith("10.")
    sl = fixtures.endpoint_slice("default", "fresh", [fixtures.endpoint("10.244.7.7")], [fixtures.port("http", 80)])
    assert tb.http(api_ns, 6443, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", "POST", sl)[0] == 201
    rev = ".".join(reversed("10.244.7.7".split("."))) + ".in-addr.arpa."
    t0 = time.monotonic()
    while not tb.query(api_ns, rev, wire.PTR).answer:
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.01)
    # the API server goes away: what resolved still resolves
    api.stop()
    time.sleep(0.5)
    assert {r.data for r in tb.query(api_ns, "fresh.default.svc.cluster.local.").answer} == {ip}
    assert tb.query(api_ns, "kubernetes.default.svc.cluster.local.", tcp=True).answer
    assert tb.http(api_ns, 8181, "/ready")[0] == 200


def test_service_deleted_is_nxdomain(tb: Testbed) -> None:
    api_ns = tb.netns()
    _api, kubeconfig = tb.api_server(api_ns, port=6444)
    # kubeconfig named in the Corefile, as CoreDNS allows
    text = corefile.KUBEADM_COREFILE.replace("ttl 30", f"ttl 30\n       kubeconfig {kubeconfig} kinns").replace(
        "/etc/resolv.conf", str(tb.workdir / "resolv.conf"))
    tb.dns_server(api_ns, text, name="informers2")
    svc = fixtures.service("default", "brief", None, [fixtures.port("http", 80)])
    assert tb.http(api_ns, 6444, "/api/v1/namespaces/default/services", "POST", svc)[0] == 201
    t0 = time.monotonic()
    while tb.query(api_ns, "brief.default.svc.cluster.local.").rcode != wire.NOERROR:
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.01)
    assert tb.http(api_ns, 6444, "/api/v1/namespaces/default/services/brief", "DELETE")[0] == 200
    t0 = time.monotonic()
    while tb.query(api_ns, "brief.default.svc.cluster.local.").rcode != wire.NXDOMAIN:
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.01)


def test_no_leftovers_after_close(tmp_path: Path) -> None:
    with Testbed(tmp_path) as bed:
        name = bed.netns()
        p = bed.dns_server(name, corefile.KUBEADM_COREFILE, fixtures=[])
    assert not p.alive()
    import subprocess
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


# ------------------------------------------------------------------ forwarding to a real upstream


def test_forward_to_an_upstream(tb: Testbed) -> None:
    """dnsmasq on 127.0.0.1:5300 plays the node's resolver: outside names and ExternalName targets go there."""
    fns = tb.netns()
    hosts = tb.workdir / "upstream.hosts"
    hosts.write_text("192.0.2.10 ext.interwebs.test\n198.51.100.7 www.example.com\n")
    up = tb.spawn(fns, ["dnsmasq", "--keep-in-foreground", "--port=5300", "--listen-address=127.0.0.1",
                        "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local=/test/",
                        "--local=/com/", "--pid-file=", "--user=root"], "upstream")
    deadline = time.monotonic() + 10
    while tb.exchange(fns, wire.make_query("www.example.com."), port=5300, timeout=0.2) is None:
        assert up.alive() and time.monotonic() < deadline, up.output()
    text = corefile.KUBEADM_COREFILE.replace("forward . /etc/resolv.conf", "forward . 127.0.0.1:5300")
    tb.dns_server(fns, text, fixtures=fixtures.cluster(), name="forwarding")
    for tcp in (False, True):
        msg = tb.query(fns, "www.example.com.", tcp=tcp)
        assert msg.rcode == wire.NOERROR and [r.data for r in msg.answer] == ["198.51.100.7"]
    assert tb.query(fns, "nope.example.com.").rcode == wire.NXDOMAIN
    # ExternalName: the CNAME, then the target's address from upstream
    msg = tb.query(fns, "external.testns.svc.cluster.local.")
    assert [(r.type, r.data) for r in msg.answer] == [(wire.CNAME, "ext.interwebs.test."), (wire.A, "192.0.2.10")]
    # cluster names never go upstream
    assert tb.query(fns, "nope.default.svc.cluster.local.").rcode == wire.NXDOMAIN
    # and the forwarded answer stays cached (cache 30; dnsmasq's TTL 0 counts as the 5 s minimum)
    # when the upstream goes away
    up.stop()
    assert [r.data for r in tb.query(fns, "www.example.com.").answer] == ["198.51.100.7"]
    t0 = time.monotonic()
    assert tb.query(fns, "other.example.com.").rcode == wire.SERVFAIL
    assert time.monotonic() - t0 < 2.5     # ECONNREFUSED from the dead upstream: no long timeout


def test_lameduck_on_sigterm(tb: Testbed) -> None:
    lns = tb.netns()
    text = corefile.KUBEADM_COREFILE.replace("lameduck 5s", "lameduck 1s")
    p = tb.dns_server(lns, text, fixtures=fixtures.cluster(), name="lameduck")
    p.popen.terminate()
    time.sleep(0.2)
    assert tb.http(lns, 8181, "/ready")[0] == 503
    assert tb.query(lns, "web.default.svc.cluster.local.").answer       # still answering
    assert p.popen.wait(5) == 0
    assert "[INFO] plugin/health: Going into lameduck mode for 1s" in p.output()
