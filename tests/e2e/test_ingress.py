"""Ingress through the real kubectl and real HTTP from the host, as a user of ingress-nginx sees it.

`kinns up` installs ingress-nginx (Deployment, LoadBalancer Service, default
IngressClass `nginx`); every request here leaves the host for the address
in the Ingress's status, reaches nginx in the controller pod and goes
straight to a pod endpoint.  Covered: the status address and kubectl's
columns, two paths to two Deployments, host-based routing with wildcards,
the docs' Exact/Prefix table, TLS with SNI and the default certificate,
forwarded headers, WebSocket upgrades, a 404 for no match, upstream's
answers to bad input (503 and Events, the oldest Ingress winning a
conflict, the validation messages, a TLS Secret that is no certificate),
and endpoints following a scale-down and a rolling update with no failed
request.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kinns.ingress.certs import FAKE_CN
from kinns.ingress.routing import select
from kinns.testing import ClusterHandle, wait_for
from tests.e2e.helpers import AGNHOST, apply, pods, running
from tests.ingress_cases import DOCS_TABLE, backend, rule
from tests.ingress_cases import ingress as ingress_object
from tests.unit.test_ingress_routing import make_cert

pytestmark = pytest.mark.e2e

WS_SERVER = r'''
import base64, hashlib, socket, threading
G = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
def serve(c):
    with c:
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        lines = head.decode().split("\r\n")
        h = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        if h.get("upgrade", "").lower() != "websocket":
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        acc = base64.b64encode(hashlib.sha1((h["sec-websocket-key"] + G).encode()).digest()).decode()
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: " + acc + "\r\n\r\n").encode())
        while True:
            d = c.recv(4096)
            if not d:
                return
            c.sendall(d)
s = socket.create_server(("0.0.0.0", 8765))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


def ingress(name: str, rules: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """An Ingress as a user writes it (the server stamps creation time and uid)."""
    return ingress_object(name, rules, created="", **kw)


def serve_hostname(name: str, replicas: int) -> dict[str, Any]:
    """A Deployment answering every path with its pod's name, port named `http`.

    Its pods keep serving two seconds after they are deleted (a preStop
    sleep, what Kubernetes and ingress-nginx advise for rolling updates
    without errors): removing an endpoint from the Service and from nginx
    takes a moment, and a pod that is gone at once blackholes the requests
    already on their way to it until the connect times out."""
    container = {"name": "web", "image": AGNHOST, "args": ["serve-hostname"],
                 "ports": [{"name": "http", "containerPort": 9376}],
                 "lifecycle": {"preStop": {"exec": {"command": ["sleep", "2"]}}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def service(name: str, target: int | str, port_name: str = "") -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": target}
    if port_name:
        port["name"] = port_name
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [port]}}


@pytest.fixture(scope="module")
def lb(cluster: ClusterHandle) -> str:
    """Backends up, and the ingress controller's LoadBalancer address."""
    for name in ("one", "two"):
        apply(cluster, serve_hostname(name, 2))
    apply(cluster, service("one", "http", port_name="http"))     # reached by the Service port's name
    apply(cluster, service("two", 9376))                          # and by its number
    apply(cluster, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "headers"},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "headers"}},
                             "template": {"metadata": {"labels": {"app": "headers"}}, "spec": {"containers": [
                                 {"name": "netexec", "image": AGNHOST, "args": ["netexec", "--http-port=8080"]}]}}}})
    apply(cluster, service("headers", 8080))
    running(cluster, "app=one", 2)
    running(cluster, "app=two", 2)
    running(cluster, "app=headers", 1)
    svc = wait_for(lambda: json.loads(cluster.kubectl("get", "svc", "-n", "ingress-nginx", "ingress-nginx-controller",
                                                      "-o", "json").stdout)["status"].get("loadBalancer", {})
                   .get("ingress"), timeout=60)
    return str(svc[0]["ip"])


def request(lb: str, host: str, path: str, *, timeout: float = 5) -> tuple[int, str]:
    """One GET through the ingress on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection(lb, 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def eventually(lb: str, host: str, path: str, want: int = 200, timeout: float = 30) -> str:
    """The body once `host`+`path` answers `want` (the controller reloads after a write)."""
    def answered() -> str | None:
        try:
            status, body = request(lb, host, path)
        except OSError:
            return None
        return body if status == want else None
    return str(wait_for(answered, timeout=timeout))


def names(cluster: ClusterHandle, app: str) -> set[str]:
    return {p["metadata"]["name"] for p in pods(cluster, f"app={app}")}


def row(cluster: ClusterHandle, name: str) -> list[str]:
    """`kubectl get ingress NAME` cells, once the controller wrote the address."""
    def addressed() -> list[str] | None:
        cells = cluster.kubectl("get", "ingress", name).stdout.splitlines()[1].split()
        return cells if len(cells) > 5 and cells[3][0].isdigit() else None
    return wait_for(addressed, timeout=30)  # type: ignore[no-any-return]


def events(cluster: ClusterHandle, name: str, reason: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                                       "-o", "json").stdout)["items"]
    return [e for e in items if e["reason"] == reason]


def test_two_paths_to_two_deployments_and_the_status_address(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, ingress("paths", [rule("paths.example.com", [("Prefix", "/one", backend("one", "http")),
                                                                ("Prefix", "/two", backend("two", 80))])], cls=None))
    got = json.loads(cluster.kubectl("get", "ingress", "paths", "-o", "json").stdout)
    assert got["spec"]["ingressClassName"] == "nginx"          # DefaultIngressClass admission
    assert row(cluster, "paths")[:5] == ["paths", "nginx", "paths.example.com", lb, "80"]
    header = cluster.kubectl("get", "ingress", "paths").stdout.splitlines()[0]
    assert header.split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert eventually(lb, "paths.example.com", "/one") in names(cluster, "one")
    assert {request(lb, "paths.example.com", "/two/deeper")[1] for _ in range(6)} == names(cluster, "two")
    assert request(lb, "paths.example.com", "/three")[0] == 404
    # nginx sends requests straight to the pod endpoints (its access log, flushed each second, names them).
    ips = {p["status"]["podIP"] for p in pods(cluster, "app=one")}
    wait_for(lambda: any(f"[default-one-http] [] {ip}:9376" in cluster.kubectl(
        "logs", "-n", "ingress-nginx", "deploy/ingress-nginx-controller").stdout for ip in ips))


def test_host_based_routing_with_a_wildcard(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, ingress("hosts", [rule("a.example.com", [("Prefix", "/", backend("one", "http"))]),
                                     rule("*.wild.example.com", [("Prefix", "/", backend("two", 80))])]))
    assert eventually(lb, "a.example.com", "/") in names(cluster, "one")
    assert eventually(lb, "b.wild.example.com", "/") in names(cluster, "two")
    assert request(lb, "x.b.wild.example.com", "/")[0] == 404     # one label only
    assert request(lb, "wild.example.com", "/")[0] == 404
    assert request(lb, "nothing.example.com", "/")[0] == 404      # nothing matches: the controller's 404


def test_exact_and_prefix_as_the_docs_table(cluster: ClusterHandle, lb: str) -> None:
    """Each docs case on its own host; its paths to `one` (first) and `two` (second)."""
    cases = [c for c in DOCS_TABLE if len(c[1]) <= 2]
    ings = [ingress(case, [rule(f"{case}.docs.example.com", [(t, p, backend(("one", "two")[i], 80 if i else "http"))
                                                             for i, (t, p) in enumerate(paths)])])
            for case, paths, _req, _want in cases]
    for ing in ings:
        apply(cluster, ing)
    last = cases[-1]
    eventually(lb, f"{last[0]}.docs.example.com", last[2])
    for (case, paths, req, want), ing in zip(cases, ings):
        route = select([ing], f"{case}.docs.example.com", req)
        status, body = request(lb, f"{case}.docs.example.com", req)
        if want is None:
            assert route is None and status == 404, case
        else:
            assert route is not None and route.path == want and route.backend is not None
            assert status == 200 and body in names(cluster, route.backend.name), case


def test_tls_with_sni_and_the_default_certificate(cluster: ClusterHandle, lb: str, tmp_path: Path) -> None:
    crt, key = make_cert("secure.example.com")
    (tmp_path / "tls.crt").write_bytes(crt)
    (tmp_path / "tls.key").write_bytes(key)
    cluster.kubectl("create", "secret", "tls", "secure", f"--cert={tmp_path / 'tls.crt'}", f"--key={tmp_path / 'tls.key'}")
    apply(cluster, ingress("secure", [rule("secure.example.com", [("Prefix", "/", backend("headers"))])],
                           tls=[{"hosts": ["secure.example.com"], "secretName": "secure"}]))

    def curl(host: str, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["curl", "-sS", "-m", "5", "--resolve", f"{host}:443:{lb}", *extra,
                               f"https://{host}{path}"], capture_output=True, text=True, timeout=10)

    ok = wait_for(lambda: (r := curl("secure.example.com", "/header?key=X-Forwarded-Proto", "--cacert",
                                     str(tmp_path / "tls.crt"))).returncode == 0 and r, timeout=30)
    assert ok.stdout == "https"
    assert row(cluster, "secure")[4:6] == ["80,", "443"]
    other = curl("paths.example.com", "/one", "-k", "-v")         # no Secret for this host: the default certificate
    assert other.returncode == 0 and FAKE_CN in other.stderr


def test_forwarded_headers_name_the_client(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, ingress("hdr", [rule("hdr.example.com", [("Prefix", "/", backend("headers"))])]))
    eventually(lb, "hdr.example.com", "/hostname")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:   # the host's address toward the fabric
        s.connect((lb, 80))
        me = s.getsockname()[0]
    got = {k: request(lb, "hdr.example.com", f"/header?key={k}")[1]
           for k in ("X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto", "X-Forwarded-Host")}
    assert got == {"X-Forwarded-For": me, "X-Real-IP": me, "X-Forwarded-Proto": "http",
                   "X-Forwarded-Host": "hdr.example.com"}


def test_websocket_upgrade_passes_through(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ws", "labels": {"app": "ws"}},
                    "spec": {"containers": [{"name": "ws", "image": "python:3.12", "command": ["python3", "-c", WS_SERVER],
                                             "ports": [{"containerPort": 8765}]}]}})
    apply(cluster, service("ws", 8765))
    apply(cluster, ingress("ws", [rule("ws.example.com", [("Prefix", "/", backend("ws"))])]))
    running(cluster, "app=ws", 1)
    key = base64.b64encode(b"kinns-websocket!").decode()

    def exchange() -> bytes | None:
        try:
            with socket.create_connection((lb, 80), timeout=5) as s:
                s.sendall(f"GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade"
                          f"\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        return None
                    head += chunk
                if not head.startswith(b"HTTP/1.1 101"):
                    return None
                accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85").encode())
                                          .digest())
                assert b"Sec-WebSocket-Accept: " + accept in head
                s.sendall(b"\x81\x05hello")
                return s.recv(1024)
        except OSError:
            return None
    assert wait_for(exchange, timeout=30) == b"\x81\x05hello"


def test_bad_input_answers_as_upstream_and_changes_nothing_else(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, ingress("broken", [rule("paths.example.com", [("Prefix", "/missing", backend("nosuch")),
                                                                 ("Exact", "/noport", backend("one", 8080)),
                                                                 ("Prefix", "/one", backend("two", 80))])]))
    assert eventually(lb, "paths.example.com", "/missing", want=503)
    assert request(lb, "paths.example.com", "/noport")[0] == 503
    assert request(lb, "paths.example.com", "/one")[1] in names(cluster, "one")   # the older Ingress keeps /one
    warned = wait_for(lambda: {r: events(cluster, "broken", r) for r in ("ServiceNotFound", "ServicePortNotFound",
                                                                          "Conflict")}
                      if all(events(cluster, "broken", r) for r in ("ServiceNotFound", "ServicePortNotFound",
                                                                      "Conflict")) else None)
    assert all(e[0]["type"] == "Warning" for e in warned.values())
    assert 'Service "default/nosuch" not found' in warned["ServiceNotFound"][0]["message"]
    assert "already defined in ingress default/paths" in warned["Conflict"][0]["message"]
    # An invalid path for its pathType: refused with upstream's message; nothing else changes.
    bad = ingress("badpath", [rule("paths.example.com", [("Exact", "/a/../b", backend("one", "http")),
                                                         ("Prefix", "relative", backend("one", "http"))])])
    r = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert r.returncode != 0
    assert "spec.rules[0].http.paths[0].path: Invalid value: \"/a/../b\": must not contain '/../'" in r.stderr
    assert "spec.rules[0].http.paths[1].path: Invalid value: \"relative\": must be an absolute path" in r.stderr
    # A TLS Secret that is not a certificate: an Event, the host served with the default certificate.
    cluster.kubectl("create", "secret", "generic", "notacert", "--type=kubernetes.io/tls",
                    "--from-literal=tls.crt=hello", "--from-literal=tls.key=world")
    apply(cluster, ingress("badtls", [rule("badtls.example.com", [("Prefix", "/", backend("one", "http"))])],
                           tls=[{"hosts": ["badtls.example.com"], "secretName": "notacert"}]))
    ev = wait_for(lambda: events(cluster, "badtls", "InvalidTLSSecret"))
    assert "tls.crt does not hold a PEM certificate" in ev[0]["message"]
    served = wait_for(lambda: (r := subprocess.run(
        ["curl", "-sSkv", "-m", "5", "--resolve", f"badtls.example.com:443:{lb}", "https://badtls.example.com/"],
        capture_output=True, text=True, timeout=10)).stdout in names(cluster, "one") and r)
    assert FAKE_CN in served.stderr
    assert request(lb, "paths.example.com", "/two/x")[1] in names(cluster, "two")


class Loop:
    """Requests back to back through the ingress in a thread, counting every failure."""

    def __init__(self, lb: str, host: str) -> None:
        self.lb, self.host = lb, host
        self.ok = 0
        self.failures: list[str] = []
        self.answered: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = request(self.lb, self.host, "/two", timeout=15)
                if status == 200:
                    self.ok += 1
                    self.answered.add(body)
                else:
                    self.failures.append(f"{status} {body[:80]}")
            except OSError as e:
                self.failures.append(repr(e))

    def __enter__(self) -> "Loop":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)


@pytest.fixture
def loop(lb: str) -> Iterator[Loop]:
    with Loop(lb, "paths.example.com") as lp:
        yield lp


def test_endpoints_follow_a_scale_down_and_a_rolling_update_without_errors(cluster: ClusterHandle, lb: str,
                                                                           loop: Loop) -> None:
    cluster.kubectl("scale", "deployment", "two", "--replicas=1")
    wait_for(lambda: len(pods(cluster, "app=two")) == 1, timeout=60)
    (left,) = names(cluster, "two")
    mark = loop.ok
    wait_for(lambda: loop.ok > mark + 20)
    time.sleep(1)
    loop.answered.clear()
    mark = loop.ok
    wait_for(lambda: loop.ok > mark + 20)
    assert loop.answered == {left}                                 # the upstream lost the removed endpoint
    cluster.kubectl("scale", "deployment", "two", "--replicas=2")
    running(cluster, "app=two", 2)
    cluster.kubectl("rollout", "restart", "deployment", "two")
    cluster.kubectl("rollout", "status", "deployment", "two", "--timeout=120s", timeout=130)
    time.sleep(1)
    loop.answered.clear()
    mark = loop.ok
    wait_for(lambda: loop.ok > mark + 20)
    assert loop.answered <= names(cluster, "two") and left not in loop.answered
    assert loop.failures == [] and loop.ok > 100
