"""Real nginx (Debian's) running the configuration kinns renders, against
backends on the loopback: every request is answered as `routing.select`
says (the docs' tables), with the headers, TLS/SNI and WebSocket upgrades
upstream ingress-nginx gives, and reloads that neither drop a connection
in flight nor ever install a configuration nginx refuses.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kinns.ingress import certs, routing
from kinns.ingress.nginx import ConfigError, Nginx
from kinns.ingress.nginxconf import Settings, render
from tests.ingress_cases import DOCS_TABLE, backend, case_ingresses, ingress, rule, service_name
from tests.unit.test_ingress_routing import make_cert, tls_secret

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (scripts/setup.sh)")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"


class Backend(BaseHTTPRequestHandler):
    """Answers JSON naming itself, the path and the headers it got; echoes after a WebSocket upgrade."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.headers.get("Upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept.decode())
            self.end_headers()
            self.wfile.flush()
            data = self.rfile.read1(1024)
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        body = json.dumps({"name": self.server.name, "path": self.path,  # type: ignore[attr-defined]
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Fleet:
    """Backends by Service name, and the Snapshot that points Services at them."""

    def __init__(self) -> None:
        self.servers: dict[str, ThreadingHTTPServer] = {}

    def add(self, name: str) -> None:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
        srv.daemon_threads = True
        srv.name = name  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.servers[name] = srv

    def snapshot(self, ings: list[dict[str, Any]], secrets: dict[str, Any] | None = None) -> routing.Snapshot:
        services = {f"default/{n}": {"metadata": {"name": n, "namespace": "default"},
                                     "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
                    for n in self.servers}
        slices = {f"default/{n}": [{"addressType": "IPv4",
                                    "ports": [{"name": "http", "port": s.server_address[1], "protocol": "TCP"}],
                                    "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}]
                  for n, s in self.servers.items()}
        return routing.Snapshot(ings, services, lambda k: slices.get(k, []), secrets or {})

    def close(self) -> None:
        for s in self.servers.values():
            s.shutdown()
            s.server_close()


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet()
    yield f
    f.close()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    s = Settings(http_port=free_port(), https_port=free_port(), status_port=free_port(), listen_address="127.0.0.1",
                 ssl_dir=str(tmp_path / "ssl"), temp_dir=str(tmp_path / "tmp"), worker_processes="1",
                 access_log=False)
    n = Nginx(tmp_path / "conf", s)
    n.prepare(certs.default_certificate().pem)
    yield n
    n.stop(graceful=2)


def run(n: Nginx, snap: routing.Snapshot) -> routing.Plan:
    plan = routing.build(snap)
    n.write_certificates(plan.certificates)
    text = render(plan, n.settings)
    if n.proc is None:
        n.start(text)
    else:
        n.apply(text)
    asyncio.run(n.wait_live(text, timeout=10))
    return plan


def get(n: Nginx, host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", f"Host: {host}"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{n.settings.http_port}{path}"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    body, _, code = out.rpartition("\n")
    try:
        return int(code), json.loads(body)
    except json.JSONDecodeError:
        return int(code), {"text": body}


def test_nginx_answers_the_docs_table_as_the_model_does(fleet: Fleet, nginx: Nginx) -> None:
    for case, paths, _req, _want in DOCS_TABLE:
        for i in range(len(paths)):
            fleet.add(service_name(case, i))
    ings = case_ingresses()
    run(nginx, fleet.snapshot(ings))
    for case, paths, request_path, want in DOCS_TABLE:
        host = f"{case}.example.com"
        oracle = routing.select(ings, host, request_path)
        assert (oracle is None) == (want is None), case
        code, body = get(nginx, host, request_path)
        if want is None:
            assert code == 404, case
        else:
            assert oracle is not None and oracle.backend is not None
            assert (code, body["name"], body["path"]) == (200, oracle.backend.name, request_path), case


def test_hosts_wildcards_default_backend_and_headers(fleet: Fleet, nginx: Nginx) -> None:
    for name in ("wild", "www", "any", "fallback"):
        fleet.add(name)
    ing = ingress("hosts", [rule("*.foo.com", [("Prefix", "/", backend("wild"))]),
                            rule("www.foo.com", [("Prefix", "/api", backend("www"))]),
                            rule("", [("Prefix", "/any", backend("any"))])], default=backend("fallback"))
    run(nginx, fleet.snapshot([ing]))
    cases = {("a.foo.com", "/x"): "wild", ("www.foo.com", "/api/v1"): "www", ("www.foo.com", "/x"): "fallback",
             ("a.b.foo.com", "/any"): "any", ("foo.com", "/x"): "fallback", ("WWW.Foo.com:80", "/api"): "www"}
    for (host, path), want in cases.items():
        code, body = get(nginx, host, path, {"X-Forwarded-For": "6.6.6.6"})
        assert (code, body["name"]) == (200, want), (host, path)
    _, body = get(nginx, "www.foo.com", "/api?q=1")
    h = body["headers"]
    assert h["x-real-ip"] == h["x-forwarded-for"] == "127.0.0.1"   # the client's, not a forged one
    assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"] == "www.foo.com"
    assert h["x-original-uri"] == "/api?q=1" and len(h["x-request-id"]) == 32


def test_tls_with_sni_and_the_default_certificate(fleet: Fleet, nginx: Nginx, tmp_path: Path) -> None:
    fleet.add("web")
    crt, key = make_cert("secure.example.com")
    ing = ingress("tls", [rule("secure.example.com", [("Prefix", "/", backend("web"))]),
                          rule("plain.example.com", [("Prefix", "/", backend("web"))])],
                  tls=[{"hosts": ["secure.example.com"], "secretName": "secure"}])
    run(nginx, fleet.snapshot([ing], {"default/secure": tls_secret("secure", crt, key)}))
    (tmp_path / "ca.pem").write_bytes(crt)
    port = nginx.settings.https_port

    def curl(host: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["curl", "-sS", "--resolve", f"{host}:{port}:127.0.0.1", *extra,
                               f"https://{host}:{port}/hello"], capture_output=True, text=True, timeout=10)

    r = curl("secure.example.com", "--cacert", str(tmp_path / "ca.pem"))
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["name"] == "web" and body["headers"]["x-forwarded-proto"] == "https"
    r = curl("plain.example.com", "-k", "-v")
    assert r.returncode == 0 and certs.FAKE_CN in r.stderr


def test_websocket_upgrade_passes_through(fleet: Fleet, nginx: Nginx) -> None:
    fleet.add("ws")
    run(nginx, fleet.snapshot([ingress("ws", [rule("ws.example.com", [("Prefix", "/", backend("ws"))])])]))
    key = base64.b64encode(b"0123456789abcdef").decode()
    with socket.create_connection(("127.0.0.1", nginx.settings.http_port), timeout=5) as s:
        s.sendall(f"GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1024)
        assert head.startswith(b"HTTP/1.1 101")
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
        assert b"Sec-WebSocket-Accept: " + want in head
        s.sendall(b"\x81\x05hello")
        assert s.recv(1024) == b"\x81\x05hello"


def test_reload_keeps_requests_in_flight_and_refuses_a_bad_config(fleet: Fleet, nginx: Nginx) -> None:
    fleet.add("old")
    fleet.add("new")
    run(nginx, fleet.snapshot([ingress("r", [rule("r.example.com", [("Prefix", "/", backend("old"))])])]))
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(zip(("code", "body"), get(nginx, "r.example.com", "/slow"))))
    t.start()
    time.sleep(0.3)
    run(nginx, fleet.snapshot([ingress("r", [rule("r.example.com", [("Prefix", "/", backend("new"))])])]))
    assert get(nginx, "r.example.com", "/")[1]["name"] == "new"
    t.join()
    assert result["code"] == 200 and result["body"]["name"] == "old"   # the old worker finished it
    live = nginx.live
    with pytest.raises(ConfigError):
        nginx.apply(live.replace("proxy_redirect off;", "proxy_redirect off; no_such_directive;"))
    assert nginx.live == live and nginx.conf.read_text() == live
    assert get(nginx, "r.example.com", "/")[1]["name"] == "new"
