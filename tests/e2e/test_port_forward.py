"""`kubectl port-forward` against a real cluster, over both wire protocols.

kubectl 1.31+ tunnels SPDY through a WebSocket (`SPDY/3.1+portforward.k8s.io`);
1.27–1.30, and 1.32 with `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, speak plain
SPDY/3.1.  Each case runs a real kubectl as a subprocess on a free local
port and talks to it like a user would: an HTTP request to the built-in
nginx (which answers "<pod name> <pod IP>"), several connections at once,
megabytes both ways with half-close, a Service resolved client-side, and a
port nothing listens on.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from kinns.testing import ClusterHandle, kubectl_binary

# (kubectl version, extra environment): plain SPDY, WebSocket tunnel, SPDY again.
CLIENTS = [
    pytest.param("1.27", {}, id="1.27-spdy"),
    pytest.param("1.32", {}, id="1.32-ws"),
    pytest.param("1.32", {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}, id="1.32-spdy"),
]

# A TCP server for bulk transfers: port 9000 answers "<md5> <length>" of
# everything received once the client half-closes; port 9001 sends 4 MiB
# and closes.
BULK_SERVER = """
import hashlib, socket, threading
def sink(c):
    h = hashlib.md5(); n = 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b); n += len(b)
    c.sendall(f"{h.hexdigest()} {n}\\n".encode()); c.close()
def source(c):
    blk = bytes(range(256)) * 256
    for _ in range(64):
        c.sendall(blk)
    c.close()
def serve(port, fn):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(9001, source), daemon=True).start()
serve(9000, sink)
"""
SOURCE_BYTES = bytes(range(256)) * 256 * 64

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web-svc}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
"""


def _pods() -> str:
    web = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "main", "image": "nginx"}]}}
    bulk = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bulk"},
            "spec": {"containers": [{"name": "main", "image": "python:3.11",
                                     "command": ["python3", "-c", BULK_SERVER]}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [web, bulk]})


@pytest.fixture(scope="module")
def pods(cluster: ClusterHandle) -> ClusterHandle:
    cluster.kubectl("apply", "-f", "-", stdin=_pods())
    cluster.kubectl("apply", "-f", "-", stdin=SERVICE)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "pod/bulk", "--timeout=90s", timeout=120)
    return cluster


def pod_ip(c: ClusterHandle, name: str) -> str:
    return c.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortForward:
    """A running `kubectl port-forward`, its output collected as it comes."""

    def __init__(self, c: ClusterHandle, version: str, env: dict[str, str], target: str,
                 remotes: list[int]) -> None:
        self.locals = [free_port() for _ in remotes]
        args = [f"{lp}:{rp}" for lp, rp in zip(self.locals, remotes)]
        self.proc = subprocess.Popen(
            [kubectl_binary(version), "--kubeconfig", str(c.kubeconfig), "port-forward", target, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._collect, args=(f, sink), daemon=True)
                        for f, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _collect(f: object, sink: list[str]) -> None:
        for line in f:   # type: ignore[attr-defined]
            sink.append(line)

    @property
    def port(self) -> int:
        return self.locals[0]

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from kubectl port-forward:\n{self.output()}")
            if self.proc.poll() is not None:
                time.sleep(0.2)     # let the reader threads finish
                if text in self.output():
                    return
                raise AssertionError(f"kubectl port-forward exited ({self.proc.returncode}) "
                                     f"before {text!r}:\n{self.output()}")
            time.sleep(0.05)

    def ready(self) -> "PortForward":
        for lp in self.locals:
            self.wait_for(f"Forwarding from 127.0.0.1:{lp}")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self.threads:
            t.join(5)


@pytest.fixture
def forwards() -> Iterator[list[PortForward]]:
    started: list[PortForward] = []
    yield started
    for pf in started:
        pf.stop()


def forward(started: list[PortForward], c: ClusterHandle, version: str, env: dict[str, str], target: str,
            *remotes: int) -> PortForward:
    pf = PortForward(c, version, env, target, list(remotes))
    started.append(pf)
    return pf.ready()


def curl(port: int, path: str = "/") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}{path}"],
                          text=True, capture_output=True, timeout=20)


def http_get(port: int) -> str:
    """A whole HTTP/1.0 exchange on one socket (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        return _read_all(s).decode(errors="replace")


def _read_all(s: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


@pytest.mark.parametrize("version,env", CLIENTS)
def test_curl(pods: ClusterHandle, forwards: list[PortForward], version: str, env: dict[str, str]) -> None:
    pf = forward(forwards, pods, version, env, "pod/web", 80)
    r = curl(pf.port)
    assert r.returncode == 0, r.stderr + pf.output()
    assert r.stdout.strip() == f"web {pod_ip(pods, 'web')}"
    # The forward stays up for the next connection.
    r = curl(pf.port)
    assert r.returncode == 0 and "web" in r.stdout, r.stderr + pf.output()
    assert "Handling connection for" in pf.output()
    assert pf.proc.poll() is None


@pytest.mark.parametrize("version,env", CLIENTS)
def test_concurrent_connections(pods: ClusterHandle, forwards: list[PortForward], version: str,
                                env: dict[str, str]) -> None:
    pf = forward(forwards, pods, version, env, "pod/web", 80)
    # Two connections open at once, answered in the opposite order.
    with socket.create_connection(("127.0.0.1", pf.port), timeout=10) as a, \
            socket.create_connection(("127.0.0.1", pf.port), timeout=10) as b:
        b.sendall(b"GET / HTTP/1.0\r\nHost: b\r\n\r\n")
        got_b = _read_all(b).decode()
        a.sendall(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
        got_a = _read_all(a).decode()
    for got in (got_a, got_b):
        assert got.startswith("HTTP/1.") and "web " in got, got
    # And a burst of parallel ones.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: http_get(pf.port), range(16)))
    assert all("web " in a for a in answers), answers
    assert pf.proc.poll() is None, pf.output()


@pytest.mark.parametrize("version,env", CLIENTS)
def test_bulk_both_ways(pods: ClusterHandle, forwards: list[PortForward], version: str,
                        env: dict[str, str]) -> None:
    pf = forward(forwards, pods, version, env, "pod/bulk", 9000, 9001)
    up, down = pf.locals
    data = os.urandom(6 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", up), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)            # reaches the pod as EOF
        answer = _read_all(s).decode().split()
    assert answer == [hashlib.md5(data).hexdigest(), str(len(data))], pf.output()
    with socket.create_connection(("127.0.0.1", down), timeout=30) as s:
        got = _read_all(s)                    # ends when the pod closes
    assert len(got) == len(SOURCE_BYTES) and got == SOURCE_BYTES, pf.output()


@pytest.mark.parametrize("version", ["1.27", "1.32"])
def test_service_resolves_to_pod(pods: ClusterHandle, forwards: list[PortForward], version: str) -> None:
    # kubectl picks a pod behind the Service and maps port 8080 to targetPort 80.
    pf = forward(forwards, pods, version, {}, "svc/web-svc", 8080)
    r = curl(pf.port)
    assert r.returncode == 0 and r.stdout.startswith("web "), r.stderr + pf.output()


@pytest.mark.parametrize("version,env", CLIENTS)
def test_nothing_listening(pods: ClusterHandle, forwards: list[PortForward], version: str,
                           env: dict[str, str]) -> None:
    pf = forward(forwards, pods, version, env, "pod/web", 81)
    r = curl(pf.port)
    assert r.returncode != 0                  # the local connection is closed empty
    pf.wait_for(f"an error occurred forwarding {pf.port} -> 81")
    out = pf.output()
    assert "error forwarding port 81 to pod web" in out and "connection refused" in out, out
    # Every kubectl since 1.23 closes its whole connection after an error on
    # an error stream (as against a real kubelet) and exits.
    pf.wait_for("lost connection to pod")
    pf.proc.wait(10)
    assert pf.proc.returncode != 0
    # The server is fine: a new forward works.
    pf2 = forward(forwards, pods, version, env, "pod/web", 80)
    assert curl(pf2.port).stdout.startswith("web ")


def test_errors_before_upgrade(pods: ClusterHandle) -> None:
    r = pods.http("POST", "/api/v1/namespaces/default/pods/web/portforward")
    assert r.status == 400 and "Upgrade request required" in r.json()["message"]
    r = pods.http("POST", "/api/v1/namespaces/default/pods/nope/portforward")
    assert r.status == 404 and r.json()["reason"] == "NotFound"
    k = pods.kubectl("port-forward", "pod/nope", f"{free_port()}:80", check=False, timeout=30)
    assert k.returncode != 0 and 'pods "nope" not found' in k.stderr


def test_python_client_channel_protocol(pods: ClusterHandle) -> None:
    # The Python client speaks the older WebSocket protocol (v4.channel.k8s.io,
    # ports in the query, one connection per port).
    from kubernetes import client, config
    from kubernetes.stream import portforward

    api = config.new_client_from_config(config_file=str(pods.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="80,81")
        s = pf.socket(80)
        s.setblocking(True)
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):       # the session ends when both ports are done
            got += chunk
        assert f"web {pod_ip(pods, 'web')}".encode() in got, got
        deadline = time.monotonic() + 10
        while pf.error(81) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "connection refused" in (pf.error(81) or ""), pf.error(81)
        s.close()
        pf.close()
    finally:
        api.close()
