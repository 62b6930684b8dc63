"""Userspace mode with real packets: portals redirect, kube-proxy's sockets forward.

One testbed (tests/integration/proxy_testbed.py) and one UserspaceBackend
driving node1 serve the whole module; each test syncs the Services it
needs (a sync replaces the previous set) and probes from pods on node1,
from the node itself and from `ext` outside the cluster.  Endpoints see
the proxy as the client: node1's address on the way to them.

Helpers of this file's own: `apply` (sync a set of ServicePorts), `names`
(who answered), `listening` (the node's listening ports, to see the
listeners close), and routes added inside the test namespaces (node1 to
the service network, ext to an external IP via node1) — the testbed's
nodes have no default route.
"""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Iterator

import pytest

from kinns.proxy.backend import SyncResult
from kinns.proxy.model import Endpoint, ProxyState, ServicePort, ServicePortName
from kinns.proxy.userspace import ListenerKey, UserspaceBackend

from . import proxy_testbed
from .proxy_testbed import testbed  # noqa: F401  (the module fixture)

EXTERNAL_IP = "192.0.2.10"


@pytest.fixture(scope="module")
def backend(testbed: proxy_testbed.Testbed) -> Iterator[UserspaceBackend]:  # noqa: F811
    testbed.run("node1", "ip route add 10.96.0.0/12 dev eth0")
    testbed.run("ext", f"ip route add {EXTERNAL_IP}/32 via {testbed.node1_ip}")
    b = UserspaceBackend(netns=testbed.node1, node_ip=testbed.node1_ip)
    try:
        yield b
    finally:
        b.cleanup()
        b.close()


def svc(name: str, endpoints: tuple[Endpoint, ...], *, proto: str = "TCP", ip: str = "10.96.0.20",
        port: int = 80, **kw: object) -> ServicePort:
    return ServicePort(ServicePortName("default", name, "", proto), ip, port, endpoints=endpoints,
                       **kw)  # type: ignore[arg-type]


def apply(b: UserspaceBackend, tb: proxy_testbed.Testbed, *sps: ServicePort, full: bool = True) -> SyncResult:
    """Sync exactly `sps`; a partial sync (`full=False`) names them all as changed."""
    changed = None if full else frozenset(s.name for s in sps)
    return b.sync(ProxyState({s.name: s for s in sps}, tb.node_facts()), changed)


def names(answers: list[str | None] | list[str]) -> list[str]:
    """`pa 10.244.0.1` → `pa`; a failure → ""."""
    return [(a or "").split(" ")[0] for a in answers]


def listening(tb: proxy_testbed.Testbed) -> set[int]:
    out = tb.run("node1", "ss -Hltun").stdout.split("\n")
    return {int(line.split()[4].rsplit(":", 1)[1]) for line in out if line.strip()}


def test_cluster_ip_tcp_from_a_pod_round_robins_over_every_endpoint(backend: UserspaceBackend,
                                                                    testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed, svc("web", testbed.endpoints("pa", "pb", "pc")))
    got = names(testbed.many_http("pa", "10.96.0.20", 80, 6))
    assert sorted(got[:3]) == ["pa", "pb", "pc"]
    assert got[3:] == got[:3]                        # the same turn again
    # The endpoint sees the proxy: node1's address towards it.
    answers = testbed.many_http("pb", "10.96.0.20", 80, 3)
    assert sorted(answers) == ["pa 10.244.0.1", "pb 10.244.0.1", "pc 172.31.0.2"]


def test_cluster_ip_udp_from_a_pod_round_robins_over_every_endpoint(backend: UserspaceBackend,
                                                                    testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed, svc("dns", testbed.endpoints("pa", "pb", "pc", port=9000), proto="UDP", port=53))
    got = names([testbed.udp("pa", "10.96.0.20", 53) for _ in range(3)])
    assert sorted(got) == ["pa", "pb", "pc"]


UDP_FLOW = r"""
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
def ask():
    u.sendto(b"hi", ("10.96.0.20", 53)); return u.recv(4096).decode().split()[0]
first = [ask() for _ in range(3)]
time.sleep(1.0)                          # longer than the proxy's idle timeout
print(*first, ask())
"""


def test_udp_client_keeps_its_endpoint_until_idle(backend: UserspaceBackend,
                                                  testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    """The client cache: one source address:port is one flow until it idles out."""
    apply(backend, testbed, svc("dns", testbed.endpoints("pa", "pb", "pc", port=9000), proto="UDP", port=53))
    r = subprocess.run(["ip", "netns", "exec", testbed.netns_of("pa"), "python3", "-c", UDP_FLOW],
                       capture_output=True, text=True, timeout=20)
    a, b, c, later = r.stdout.split()
    assert a == b == c, r.stdout
    assert later != a                     # a new flow: the rotation had moved on


def test_node_port_from_outside_reaches_the_endpoints(backend: UserspaceBackend,
                                                      testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed,
          svc("web", testbed.endpoints("pa", "pb", "pc"), node_port=30080),
          svc("dns", testbed.endpoints("pa", "pb", "pc", port=9000), proto="UDP", port=53, node_port=30053))
    assert sorted(names(testbed.many_http("ext", testbed.node1_ip, 30080, 3))) == ["pa", "pb", "pc"]
    assert sorted(names([testbed.udp("ext", testbed.node1_ip, 30053) for _ in range(3)])) == ["pa", "pb", "pc"]


def test_node_itself_reaches_cluster_ip_and_node_port(backend: UserspaceBackend,
                                                      testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    """Locally generated traffic takes the KUBE-*-HOST chains (DNAT to the node IP)."""
    apply(backend, testbed, svc("web", testbed.endpoints("pa", "pc"), node_port=30080))
    assert sorted(names(testbed.many_http("node1", "10.96.0.20", 80, 2))) == ["pa", "pc"]
    assert sorted(names(testbed.many_http("node1", testbed.node1_ip, 30080, 2))) == ["pa", "pc"]


def test_external_ip_from_outside(backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed, svc("web", testbed.endpoints("pc"), external_ips=(EXTERNAL_IP,)))
    assert names([testbed.http("ext", EXTERNAL_IP, 80)]) == ["pc"]


def test_no_endpoints_is_refused_at_once(backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed, svc("empty", (), node_port=30081),
          svc("dns", (), proto="UDP", port=53, node_port=30053))
    for who, ip, port in (("pa", "10.96.0.20", 80), ("ext", testbed.node1_ip, 30081),
                          ("node1", "10.96.0.20", 80)):
        word, secs = testbed.connect_result(who, ip, port)
        assert (word, secs < 1) == ("refused", True), (who, ip, port, word, secs)
    assert testbed.udp("pa", "10.96.0.20", 53, timeout=1) is None
    # Endpoints arrive: the same listener now serves.
    apply(backend, testbed, svc("empty", testbed.endpoints("pb"), node_port=30081))
    assert names([testbed.http("pa", "10.96.0.20", 80)]) == ["pb"]


def test_client_ip_affinity_sticks(backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed,
          svc("sticky", testbed.endpoints("pa", "pb", "pc"), affinity_timeout=60),
          svc("sticky-udp", testbed.endpoints("pa", "pb", "pc", port=9000), proto="UDP", port=53,
              affinity_timeout=60))
    got = names(testbed.many_http("pa", "10.96.0.20", 80, 5))
    assert len(set(got)) == 1 and got[0] in ("pa", "pb", "pc")
    udp = names([testbed.udp("pb", "10.96.0.20", 53) for _ in range(3)])
    assert len(set(udp)) == 1 and udp[0] in ("pa", "pb", "pc")


def test_a_dead_endpoint_is_skipped(backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    """tryConnect: a refused dial moves on to the next endpoint within the same client connection."""
    dead = testbed.endpoints("pa", port=8081)
    apply(backend, testbed, svc("web", dead + testbed.endpoints("pb")))
    assert names(testbed.many_http("pa", "10.96.0.20", 80, 4)) == ["pb"] * 4


def test_external_policy_local_drops_outside_traffic_without_local_endpoints(
        backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed, svc("local", testbed.endpoints("pc"), node_port=30090, external_local=True))
    word, _ = testbed.connect_result("ext", testbed.node1_ip, 30090, timeout=1)
    assert word == "timeout"                                    # DROP, as the other modes
    assert names([testbed.http("pa", testbed.node1_ip, 30090)]) == ["pc"]   # pods go cluster-wide
    apply(backend, testbed, svc("local", testbed.endpoints("pa", "pc"), node_port=30090, external_local=True))
    assert set(names(testbed.many_http("ext", testbed.node1_ip, 30090, 3))) == {"pa"}


def test_endpoint_and_service_removal(backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    web = svc("web", testbed.endpoints("pa", "pb"))
    apply(backend, testbed, web, svc("other", testbed.endpoints("pc"), ip="10.96.0.21"))
    other_port = backend.ports()[ListenerKey(ServicePortName("default", "other", "", "TCP"))]
    assert other_port in listening(testbed)
    assert not apply(backend, testbed, svc("web", testbed.endpoints("pb")), full=False).full
    assert set(names(testbed.many_http("pa", "10.96.0.20", 80, 3))) == {"pb"}
    assert other_port not in listening(testbed)
    assert "10.96.0.21" not in testbed.run("node1", "iptables-save -t nat").stdout


def test_flushed_tables_are_noticed_and_a_full_sync_repairs_them(backend: UserspaceBackend,
                                                                 testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    apply(backend, testbed, svc("web", testbed.endpoints("pa")))
    assert not backend.tables_flushed()
    testbed.run("node1", "iptables -t nat -F PREROUTING")
    assert backend.tables_flushed()
    apply(backend, testbed, svc("web", testbed.endpoints("pa")))
    assert not backend.tables_flushed()
    assert names([testbed.http("pb", "10.96.0.20", 80)]) == ["pa"]
    # Jumps are not duplicated by repeated full syncs.
    apply(backend, testbed, svc("web", testbed.endpoints("pa")))
    saved = testbed.run("node1", "iptables-save").stdout
    jumps = collections.Counter(line for line in saved.splitlines()
                                if line.startswith(("-A PREROUTING", "-A OUTPUT", "-A INPUT")))
    assert len(jumps) == 5 and set(jumps.values()) == {1}


ECHO = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(16); print("ready", flush=True)
def echo(c):
    while d := c.recv(65536):
        c.sendall(d)
    c.shutdown(socket.SHUT_WR); c.close()
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
"""

UPLOAD = r"""
import socket, threading
c = socket.create_connection(("10.96.0.20", 80), timeout=10)
blob = bytes(range(256)) * 8192          # 2 MiB
def send():
    c.sendall(blob); c.shutdown(socket.SHUT_WR)
threading.Thread(target=send).start()
got = bytearray()
while d := c.recv(65536):
    got += d
print(got == blob, len(got))
"""


def test_a_large_stream_with_half_close_comes_back_whole(backend: UserspaceBackend,
                                                         testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    """Back-pressure both ways, and the client's FIN passed on while the reply still flows."""
    server = subprocess.Popen(["ip", "netns", "exec", testbed.netns_of("pc"), "python3", "-c", ECHO],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        apply(backend, testbed, svc("echo", (Endpoint(testbed.pods["pc"].ip, 7000, "node2"),)))
        r = subprocess.run(["ip", "netns", "exec", testbed.netns_of("pa"), "python3", "-c", UPLOAD],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.split() == ["True", str(256 * 8192)], r.stderr
    finally:
        server.kill()
        server.wait()


def test_cleanup_leaves_nothing(backend: UserspaceBackend, testbed: proxy_testbed.Testbed) -> None:  # noqa: F811
    """Last in the module: rules and listeners go, other chains in the same tables stay."""
    testbed.run("node1", "iptables -t nat -N KUBE-NODEPORTS && iptables -t nat -A OUTPUT -j KUBE-NODEPORTS")
    try:
        apply(backend, testbed, svc("web", testbed.endpoints("pa"), ip="10.96.0.30", node_port=30099),
              svc("empty", (), ip="10.96.0.31"))
        ours = set(backend.ports().values())
        assert len(ours) == 2 and ours <= listening(testbed)
        backend.cleanup()
        assert not ours & listening(testbed)
        saved = testbed.run("node1", "iptables-save").stdout
        assert "10.96.0.30" not in saved and "KUBE-PORTALS" not in saved and "KUBE-NODEPORT-" not in saved
        assert "-A OUTPUT -j KUBE-NODEPORTS" in saved                       # not ours: kept
        assert testbed.http("pa", "10.96.0.30", 80, timeout=1) is None
        assert backend.tables_flushed()
        backend.cleanup()                                                    # idempotent
    finally:
        testbed.run("node1", "iptables -t nat -D OUTPUT -j KUBE-NODEPORTS; iptables -t nat -X KUBE-NODEPORTS",
                    check=False)
