"""The pure parts of `kinns trace`: argument forms, the trace table, reading monitor lines into hops."""

from __future__ import annotations

import pytest

from kinns.trace import hops, nftrace
from kinns.trace.targets import DestSpec, SourceSpec, TargetError, parse_dest, parse_source


def test_sources() -> None:
    assert parse_source("pod/web-1") == SourceSpec("pod", "web-1")
    assert parse_source("node/kinns-worker") == SourceSpec("node", "kinns-worker")
    assert parse_source("host") == SourceSpec("host")
    for bad in ("web-1", "pod/", "svc/web"):
        with pytest.raises(TargetError, match="pod/NAME, node/NAME or host"):
            parse_source(bad)


@pytest.mark.parametrize("text, spec", [
    ("svc/web", DestSpec("svc", "web", "")),
    ("svc/web:http", DestSpec("svc", "web", "http")),
    ("pod/web-1:8080", DestSpec("pod", "web-1", "8080")),
    ("172.18.0.3:30080", DestSpec("addr", "172.18.0.3", "30080")),
    ("10.244.1.5", DestSpec("addr", "10.244.1.5", "")),
    ("web.default.svc.cluster.local:80", DestSpec("name", "web.default.svc.cluster.local", "80")),
    ("http://172.18.0.200/app", DestSpec("addr", "172.18.0.200", "80", "/app")),
    ("172.18.0.200:8080/app/x", DestSpec("addr", "172.18.0.200", "8080", "/app/x")),
])
def test_destinations(text: str, spec: DestSpec) -> None:
    assert parse_dest(text) == spec


def test_bad_destinations_say_what_to_write() -> None:
    with pytest.raises(TargetError, match="pod/NAME:PORT"):
        parse_dest("pod/web-1")
    with pytest.raises(TargetError, match="http://"):
        parse_dest("https://x/")
    with pytest.raises(TargetError, match="svc/NAME"):
        parse_dest("10.0.0.1:http")


def test_table_marks_only_the_probe_and_deletes_cleanly() -> None:
    text = nftrace.table_script()
    assert "hook prerouting priority -150" in text and "hook output priority -150" in text
    assert f"ip dscp {nftrace.PROBE_DSCP} ct state new ct mark set" in text
    # every nftrace rule is qualified by the probe's DSCP or its connection's mark
    for line in text.splitlines():
        if "nftrace set 1" in line:
            assert f"{nftrace.PROBE_DSCP}" in line or f"{nftrace.CT_BIT:#010x}" in line
    assert nftrace.delete_script().splitlines() == ["add table inet kinns-trace", "delete table inet kinns-trace"]


# A recorded trace (trimmed): pod 10.244.0.4 on worker2 to Service 10.103.171.24:80, endpoint
# 10.244.2.4:8080 on worker, over VXLAN; then the SYN-ACK.
SRC = """\
trace id a1 inet kinns-trace probe-prerouting packet: iif "cni0" ip saddr 10.244.0.4 ip daddr 10.103.171.24 ip dscp 0x2d ip id 51515 ip protocol tcp tcp sport 55950 tcp dport 80 tcp flags == syn
trace id a1 inet kinns-trace probe-prerouting rule ip dscp 0x2d ct state new ct mark set ct mark | 0x00100000 meta nftrace set 1 return (verdict return)
trace id a1 ip kube-proxy nat-prerouting rule jump services (verdict jump services)
trace id a1 ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-SUSTUHLJ-default/web/tcp/http)
trace id a1 ip kube-proxy service-SUSTUHLJ-default/web/tcp/http rule numgen random mod 2 vmap { 0 : goto endpoint-E7-default/web/tcp/http__10.244.0.3/8080, 1 : goto endpoint-JH-default/web/tcp/http__10.244.2.4/8080 } (verdict goto endpoint-JH-default/web/tcp/http__10.244.2.4/8080)
trace id a1 ip kube-proxy endpoint-JH-default/web/tcp/http__10.244.2.4/8080 rule meta l4proto tcp dnat to 10.244.2.4:8080 (verdict accept)
trace id b2 inet kinns-network-policies egress packet: iif "cni0" oif "flannel.1" ip saddr 10.244.0.4 ip daddr 10.244.2.4 ip dscp 0x2d ip id 51515 ip protocol tcp tcp sport 55950 tcp dport 8080 tcp flags == syn
trace id b2 inet kinns-network-policies egress policy accept
trace id c3 inet kinns-trace probe-output packet: oif "eth0" ip saddr 172.18.92.4 ip daddr 172.18.92.3 ip dscp cs0 ip id 9438 ip protocol udp udp sport 57648 udp dport 8472
trace id c3 inet kinns-trace probe-output rule udp dport 8472 @nh,408,8 & 0xfc == 0xb4 meta nftrace set 1 return (verdict return)
trace id d4 inet kinns-trace probe-prerouting packet: iif "flannel.1" ip saddr 10.244.2.4 ip daddr 10.244.0.4 ip dscp cs0 ip id 0 ip protocol tcp tcp sport 8080 tcp dport 55950 tcp flags == 0x12
trace id d4 inet kinns-trace probe-prerouting rule ct direction reply ct mark & 0x00100000 == 0x00100000 tcp flags syn,rst meta nftrace set 1 return (verdict return)
trace id d4 inet kinns-trace probe-postrouting packet: iif "flannel.1" oif "cni0" ip saddr 10.103.171.24 ip daddr 10.244.0.4 ip dscp cs0 ip id 0 ip protocol tcp tcp sport 80 tcp dport 55950 tcp flags == 0x12
"""
DST = """\
trace id e5 inet kinns-trace probe-prerouting packet: iif "flannel.1" ip saddr 10.244.0.4 ip daddr 10.244.2.4 ip dscp 0x2d ip id 51515 ip protocol tcp tcp sport 55950 tcp dport 8080 tcp flags == syn
trace id e5 inet kinns-trace probe-prerouting rule ip dscp 0x2d ct state new ct mark set ct mark | 0x00100000 meta nftrace set 1 return (verdict return)
trace id e5 inet kinns-network-policies ingress packet: iif "flannel.1" oif "cni0" ip saddr 10.244.0.4 ip daddr 10.244.2.4 ip dscp 0x2d ip id 51515 ip protocol tcp tcp sport 55950 tcp dport 8080 tcp flags == syn
trace id e5 inet kinns-network-policies ingress rule ip daddr vmap @ingress-pods (verdict jump pod-ingress-default/web-2)
trace id e5 inet kinns-network-policies pod-ingress-default/web-2 rule jump policy-ingress-default/deny-web (verdict jump policy-ingress-default/deny-web)
trace id e5 inet kinns-network-policies pod-ingress-default/web-2 rule counter packets 0 bytes 0 drop comment "default/web-2 ingress: isolated by default/deny-web; no rule allows" (verdict drop)
"""


def _events(text: str) -> list[nftrace.Event]:
    p = nftrace.Parser()
    return [e for line in text.splitlines() if (e := p.feed(line)) is not None]


CTX = hops.Context("tcp", "10.103.171.24", 80, "worker2",
                   pod_names={"10.244.0.4": ("default", "client"), "10.244.2.4": ("default", "web-2")},
                   node_ips={"172.18.92.3": "worker", "172.18.92.4": "worker2"},
                   veths={"veth5f3a409d": "default/web-2"})


def test_parser_tells_probe_answer_and_tunnel_apart() -> None:
    ev = _events(SRC)
    kinds = {(e.trace_id, e.kind_of_packet) for e in ev}
    assert ("a1", "probe") in kinds and ("b2", "probe") in kinds      # b2: same IP id, new trace id
    assert ("c3", "encap") in kinds and ("d4", "reply") in kinds
    assert ev[0].packet["saddr"] == "10.244.0.4" and ev[0].packet["flags"] == "syn"


def test_hops_from_a_recorded_service_trace() -> None:
    flows = [hops.split("worker", []), hops.split("worker2", _events(SRC))]
    out, stopped, endpoint = hops.build(flows, CTX)
    assert stopped is None
    assert endpoint == {"pod": "web-2", "namespace": "default", "ip": "10.244.2.4", "port": 8080}
    assert [h["step"] for h in out] == ["bridge", "service", "nat", "route", "encap", "reply"]
    assert "default/web" in out[1]["summary"]
    assert out[4]["detail"]["outer_dst"] == "172.18.92.3" and "node worker" in out[4]["summary"]
    assert "SYN-ACK" in out[5]["summary"] and "10.103.171.24:80" in out[5]["summary"]


def test_a_policy_drop_names_the_policy_and_ends_the_path() -> None:
    flows = [hops.split("worker2", _events(SRC)), hops.split("worker", _events(DST))]
    out, stopped, _ = hops.build(flows, CTX)
    assert stopped is not None and stopped["reason"] == "dropped by policy"
    assert stopped["policy"] == "default/deny-web" and "drop" in stopped["rule"]
    assert any(h["step"] == "policy" and h["node"] == "worker" for h in out)
    assert not any(h["step"] == "arrive" for h in out)


def test_iptables_comments_come_from_iptables_save() -> None:
    saved = ('-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/empty has no endpoints" '
             "-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n")
    ev = _events('trace id f6 ip filter KUBE-SERVICES packet: iif "cni0" ip saddr 10.244.0.4 ip daddr 10.96.5.5 '
                 "ip dscp 0x2d ip id 7 ip protocol tcp tcp sport 1 tcp dport 80 tcp flags == syn\n"
                 "trace id f6 ip filter KUBE-SERVICES rule meta l4proto tcp ip daddr 10.96.5.5  tcp dport 80 "
                 "counter packets 0 bytes 0 reject (verdict drop)")
    hops.annotate_xt(ev, saved)
    assert ev[1].rule.endswith('comment "default/empty has no endpoints"')
    out, stopped, _ = hops.build([hops.split("n1", ev)], hops.Context("tcp", "10.96.5.5", 80, "n1"))
    assert stopped is not None and stopped["reason"] == "no endpoints"


def test_a_proxys_onward_connection_is_its_newest_to_a_pod() -> None:
    ctx = hops.Context("tcp", "10.96.0.9", 80, None,
                       pod_names={"10.244.1.4": ("default", "web-1"), "10.244.1.5": ("default", "web-2"),
                                  "10.244.1.9": ("ingress-nginx", "ctl")})
    lines = [
        "tcp      6 80 TIME_WAIT src=10.244.1.1 dst=10.244.1.4 sport=4001 dport=8080 src=10.244.1.4 dst=10.244.1.1 sport=8080 dport=4001 [ASSURED] mark=0 use=1",
        "tcp      6 119 TIME_WAIT src=10.244.1.1 dst=10.244.1.5 sport=4002 dport=8080 src=10.244.1.5 dst=10.244.1.1 sport=8080 dport=4002 [ASSURED] mark=0 use=1",
        "tcp      6 431999 ESTABLISHED src=10.244.1.9 dst=10.244.1.4 sport=4003 dport=8080 src=10.244.1.4 dst=10.244.1.9 sport=8080 dport=4003 [ASSURED] mark=0 use=1",
        "udp      17 29 src=10.244.1.1 dst=10.244.1.4 sport=53 dport=53 src=10.244.1.4 dst=10.244.1.1 sport=53 dport=53 mark=0 use=1",
    ]
    assert hops.onward_connection(lines, ctx, "tcp") == ("10.244.1.5", 8080, lines[1])      # from the node
    assert hops.onward_connection(lines, ctx, "tcp", "10.244.1.9") == ("10.244.1.4", 8080, lines[2])
    assert hops.onward_connection(lines, ctx, "udp", "10.244.9.9") is None
