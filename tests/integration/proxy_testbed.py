"""A two-node network in namespaces for testing kube-proxy backends with real packets.

The backends (`kinns.proxy.iptables`, `nftables`, `userspace`) are tested
here without a cluster: the testbed builds, entirely inside network
namespaces it names with a unique prefix (nothing on the host changes):

```
  ext (172.31.0.1) ─┐                      "outside the cluster": the host's role
  node1 (…0.2) ─────┼─ br0 in fab          node fabric, one L2 segment
  node2 (…0.3) ─────┘
  node1: cni0 10.244.0.1/24 ── pa 10.244.0.2, pb 10.244.0.3
  node2: cni0 10.244.1.1/24 ── pc 10.244.1.2
```

Nodes forward and route each other's pod /24 via the fabric (host-gw
style), and send everything else to `ext`, as kinns nodes route to the host.  Every pod runs one small server: TCP port 8080 answers an HTTP
request with `<pod> <client-ip>` and UDP port 9000 answers any datagram the
same way, so a test sees which endpoint answered and whether the client
address was masqueraded.  Apply a backend with `netns=tb.node1` and probe
with `tb.http(...)`, `tb.udp(...)`, `tb.connect_result(...)`.

`Testbed` is a context manager; `close()` deletes every namespace and kills
the servers even after a failed test.
"""

from __future__ import annotations

import itertools
import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from kinns.proxy.model import Endpoint, NodeFacts, ServicePort, ServicePortName

_counter = itertools.count()

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080)); s.listen(128)
    while True:
        c, a = s.accept()
        def serve(c=c, a=a):
            try:
                c.settimeout(2); c.recv(4096)
                body = f"{name} {a[0]}\n".encode()
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            except OSError:
                pass
            finally:
                c.close()
        threading.Thread(target=serve, daemon=True).start()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 9000))
    while True:
        data, a = u.recvfrom(4096)
        u.sendto(f"{name} {a[0]}\n".encode(), a)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
"""


@dataclass(frozen=True)
class Pod:
    name: str
    netns: str
    ip: str
    node: str    # "node1" or "node2"


def sh(netns: str | None, cmd: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a shell command line, inside `netns` when given."""
    argv = (["ip", "netns", "exec", netns] if netns else []) + ["sh", "-c", cmd]
    r = subprocess.run(argv, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd!r} in {netns}: {r.returncode} {r.stderr.strip()}")
    return r


class Testbed:
    """Two nodes, three pods and an outside client, all in fresh namespaces."""

    __test__ = False   # a fixture class, not a test class, despite its name

    cluster_cidr = "10.244.0.0/16"
    node1_ip = "172.31.0.2"
    node2_ip = "172.31.0.3"
    ext_ip = "172.31.0.1"

    def __init__(self) -> None:
        p = f"kpt{os.getpid() % 100000}x{next(_counter)}"
        self.prefix = p
        self.fab, self.node1, self.node2, self.ext = f"{p}-fab", f"{p}-n1", f"{p}-n2", f"{p}-ext"
        self.pods = {
            "pa": Pod("pa", f"{p}-pa", "10.244.0.2", "node1"),
            "pb": Pod("pb", f"{p}-pb", "10.244.0.3", "node1"),
            "pc": Pod("pc", f"{p}-pc", "10.244.1.2", "node2"),
        }
        self._servers: list[subprocess.Popen[str]] = []
        self._namespaces: list[str] = []

    # -- life cycle ----------------------------------------------------------

    def __enter__(self) -> "Testbed":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ns(self, name: str) -> None:
        subprocess.run(["ip", "netns", "add", name], check=True)
        self._namespaces.append(name)
        sh(name, "ip link set lo up")

    def _build(self) -> None:
        for ns in (self.fab, self.node1, self.node2, self.ext, *(pod.netns for pod in self.pods.values())):
            self._ns(ns)
        sh(self.fab, "ip link add br0 type bridge && ip link set br0 up")
        for i, (ns, ip) in enumerate(((self.ext, self.ext_ip), (self.node1, self.node1_ip),
                                      (self.node2, self.node2_ip))):
            a, b = f"{self.prefix[:6]}f{i}", f"{self.prefix[:6]}g{i}"
            sh(None, f"ip link add {a} netns {self.fab} type veth peer name {b} netns {ns}")
            sh(self.fab, f"ip link set {a} master br0 up")
            sh(ns, f"ip link set {b} name eth0 && ip addr add {ip}/24 dev eth0 && ip link set eth0 up")
        for ns, cidr_gw, other_cidr, other_ip in ((self.node1, "10.244.0.1/24", "10.244.1.0/24", self.node2_ip),
                                                   (self.node2, "10.244.1.1/24", "10.244.0.0/24", self.node1_ip)):
            sh(ns, f"ip link add cni0 type bridge && ip addr add {cidr_gw} dev cni0 && ip link set cni0 up"
                   f" && ip route add {other_cidr} via {other_ip} && ip route add default via {self.ext_ip}"
                   " && sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1")
        for i, pod in enumerate(self.pods.values()):
            node = self.node1 if pod.node == "node1" else self.node2
            gw = "10.244.0.1" if pod.node == "node1" else "10.244.1.1"
            a = f"{self.prefix[:6]}v{i}"
            sh(None, f"ip link add {a} netns {node} type veth peer name eth0 netns {pod.netns}")
            sh(node, f"ip link set {a} master cni0 up")
            sh(pod.netns, f"ip addr add {pod.ip}/24 dev eth0 && ip link set eth0 up && ip route add default via {gw}")
            # cni0 hairpin, as the CNI bridge plugin sets it: a pod reaching itself via a Service.
            sh(node, f"bridge link set dev {a} hairpin on")
        for pod in self.pods.values():
            proc = subprocess.Popen(["ip", "netns", "exec", pod.netns, "python3", "-c", SERVER, pod.name],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._servers.append(proc)
        for proc in self._servers:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for pod in self.pods.values():   # the TCP listener follows "ready" by a hair
            deadline = time.time() + 5
            while self.http(pod.netns, pod.ip, 8080, timeout=1) is None and time.time() < deadline:
                time.sleep(0.05)

    def close(self) -> None:
        for proc in self._servers:
            proc.kill()
            proc.wait()
        self._servers.clear()
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._namespaces.clear()

    # -- facts for renderers ---------------------------------------------------

    def node_facts(self, node: str = "node1") -> NodeFacts:
        ip = self.node1_ip if node == "node1" else self.node2_ip
        return NodeFacts(name=node, node_ips=(ip,), cluster_cidr=self.cluster_cidr)

    def endpoints(self, *pods: str, port: int = 8080, ready: bool = True, serving: bool | None = None,
                  terminating: bool = False) -> tuple[Endpoint, ...]:
        """Endpoint values for the named pods (`port` 8080 for TCP, 9000 for UDP)."""
        return tuple(Endpoint(self.pods[p].ip, port, self.pods[p].node, ready,
                              ready if serving is None else serving, terminating) for p in pods)

    def netns_of(self, who: str) -> str:
        """`pa`/`pb`/`pc`, `node1`/`node2`, or `ext` → its namespace name."""
        if who in self.pods:
            return self.pods[who].netns
        return {"node1": self.node1, "node2": self.node2, "ext": self.ext}[who]

    # -- probes ------------------------------------------------------------------

    def http(self, who: str, ip: str, port: int, timeout: float = 2) -> str | None:
        """GET http://ip:port/ from `who` (a name from `netns_of` or a namespace);
        the answer `<pod> <client-ip>`, or None on any failure."""
        ns = who if who.startswith(self.prefix) else self.netns_of(who)
        r = sh(ns, f"curl -s -m {timeout} http://{ip}:{port}/", check=False, timeout=timeout + 5)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None

    def many_http(self, who: str, ip: str, port: int, n: int, timeout: float = 2) -> list[str]:
        """`n` requests in one process (fast); each answer, or "" for a failure."""
        ns = who if who.startswith(self.prefix) else self.netns_of(who)
        script = ("import socket,sys\n"
                  f"for _ in range({n}):\n"
                  "  try:\n"
                  f"    s=socket.create_connection(({ip!r},{port}),timeout={timeout})\n"
                  "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); d=b''\n"
                  "    while True:\n"
                  "      c=s.recv(4096)\n"
                  "      if not c: break\n"
                  "      d+=c\n"
                  "    s.close(); print(d.split(b'\\r\\n\\r\\n',1)[-1].decode().strip())\n"
                  "  except OSError: print('')\n")
        r = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", script], text=True,
                           capture_output=True, timeout=n * timeout + 10)
        return r.stdout.splitlines()

    def udp(self, who: str, ip: str, port: int, timeout: float = 2, src_port: int = 0) -> str | None:
        """One datagram to ip:port from `who`; the answer or None."""
        ns = who if who.startswith(self.prefix) else self.netns_of(who)
        script = ("import socket\n"
                  "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                  f"u.bind(('0.0.0.0',{src_port})); u.settimeout({timeout})\n"
                  f"u.sendto(b'hi',({ip!r},{port}))\n"
                  "try: print(u.recv(4096).decode().strip())\n"
                  "except OSError: pass\n")
        r = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", script], text=True,
                           capture_output=True, timeout=timeout + 10)
        return r.stdout.strip() or None

    def connect_result(self, who: str, ip: str, port: int, timeout: float = 3) -> tuple[str, float]:
        """Try a TCP connect: ("ok" | "refused" | "unreachable" | "timeout" | error, seconds)."""
        ns = who if who.startswith(self.prefix) else self.netns_of(who)
        script = ("import socket,time,errno\n"
                  "t=time.monotonic()\n"
                  "try:\n"
                  f"  socket.create_connection(({ip!r},{port}),timeout={timeout}).close(); r='ok'\n"
                  "except ConnectionRefusedError: r='refused'\n"
                  "except socket.timeout: r='timeout'\n"
                  "except OSError as e: r='unreachable' if e.errno in (errno.EHOSTUNREACH,errno.ENETUNREACH) "
                  "else errno.errorcode.get(e.errno,str(e))\n"
                  "print(r, time.monotonic()-t)\n")
        r = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", script], text=True,
                           capture_output=True, timeout=timeout + 10)
        word, secs = r.stdout.split()
        return word, float(secs)

    def run(self, who: str, cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A shell command in `who`'s namespace (e.g. `iptables-save`, `conntrack -L`)."""
        ns = who if who.startswith(self.prefix) else self.netns_of(who)
        return sh(ns, cmd, check=check)


def service_port(name: str, ip: str, eps: tuple[Endpoint, ...], *, port: int = 80, proto: str = "TCP",
                 **kw: Any) -> ServicePort:
    """A ServicePort `default/<name>` (port name `http` for TCP, `dns` for UDP) for the backends' tests."""
    return ServicePort(ServicePortName("default", name, "http" if proto == "TCP" else "dns", proto), ip, port,
                       endpoints=eps, **kw)


@pytest.fixture(scope="module")
def testbed() -> Iterator[Testbed]:
    """One testbed per test module (import this fixture into the module)."""
    with Testbed() as tb:
        yield tb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quote(s: str) -> str:
    return shlex.quote(s)
