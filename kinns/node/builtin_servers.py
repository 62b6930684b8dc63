"""Built-in image behaviours that need more than a host binary.

These run inside a container process forked from the zygote (see
`zygote.py`), after it entered the pod's namespaces and its private root,
so they see the pod's hostname and network exactly as a real image would.
Everything they need is imported by the zygote before it forks, so a
container costs the pages it dirties, not a new interpreter.

- `netexec`: agnhost's test server, the one upstream network e2e tests
  use: HTTP `/hostname`, `/clientip` (caller's `ip:port`), `/echo?msg=`,
  `/dial?request=&host=&port=&protocol=http|udp&tries=` (JSON
  `{"responses": [...], "errors": [...]}`), `/shell?cmd=`, `/exit?code=`,
  `/healthz`, `/header?key=`; and a UDP server answering `hostname`,
  `echo <msg>` and `clientip`.
- `serve-hostname`: answers its hostname over HTTP (port 9376), or over
  TCP/UDP with `--tcp`/`--udp`.
- `hello-app`: the Google sample's "Hello, world!" page.
- `pause`: waits for SIGTERM/SIGINT and exits 0.
- component images (`kube-proxy`, `coredns`, `kube-apiserver`, ...): exec
  the kinns module that is the component (images.COMPONENT_IMAGES), e.g. kube-proxy (`kinns.proxy`) or DNS
  server (`kinns.dns`) in the container.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401 - imported here so forked servers do not import it
import http.client
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from .images import COMPONENT_IMAGES


def _flags(args: list[str]) -> dict[str, str]:
    """Go-style flags: `--a=b`, `-a=b`, `--a b`, bare `--a` (true)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            key = a.lstrip("-")
            if "=" in key:
                k, v = key.split("=", 1)
                out[k] = v
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                out[key] = args[i + 1]
                i += 1
            else:
                out[key] = "true"
        i += 1
    return out


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks socket.getfqdn(), a reverse DNS lookup
        # that in a pod goes to cluster DNS (and may time out): skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    server_version = "kinns"
    routes: dict[str, Callable[["_Handler", dict[str, list[str]]], tuple[int, str]]] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = self.routes.get(url.path) or self.routes.get("*")
        if route is None:
            self._answer(404, "404 page not found\n")
            return
        code, body = route(self, query)
        self._answer(code, body, "application/json" if body.startswith("{") else "text/plain; charset=utf-8")

    do_POST = do_GET
    do_HEAD = do_GET


def _serve_http(port: int, routes: dict[str, Callable[[_Handler, dict[str, list[str]]], tuple[int, str]]],
                background: bool = False) -> None:
    handler = type("Handler", (_Handler,), {"routes": routes})
    srv = _Server(("0.0.0.0", port), handler)
    _log(f"Started HTTP server on port {port}")
    if background:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    else:
        srv.serve_forever()


def _serve_udp(port: int, answer: Callable[[str, tuple[str, int]], str]) -> None:
    class H(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = answer(data.decode(errors="replace").strip(), self.client_address)
            sock.sendto(reply.encode(), self.client_address)

    srv = socketserver.ThreadingUDPServer(("0.0.0.0", port), H)
    srv.daemon_threads = True
    _log(f"Started UDP server on port {port}")
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def _first(q: dict[str, list[str]], key: str, default: str = "") -> str:
    return q.get(key, [default])[0]


def _dial_once(protocol: str, host: str, port: int, request: str, timeout: float = 2.0) -> str:
    if protocol == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(request.encode(), (host, port))
            return s.recv(65535).decode(errors="replace").strip()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/" + request.lstrip("/"))
        return conn.getresponse().read().decode(errors="replace").strip()
    finally:
        conn.close()


def netexec(args: list[str]) -> None:
    """agnhost netexec."""
    f = _flags(args)
    http_port = int(f.get("http-port", "8080"))
    udp_port = int(f.get("udp-port", "8081"))
    hostname = socket.gethostname()

    def r_hostname(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        return 200, hostname

    def r_clientip(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        return 200, f"{h.client_address[0]}:{h.client_address[1]}"

    def r_echo(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        return 200, _first(q, "msg")

    def r_dial(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        responses: list[str] = []
        errors: list[str] = []
        try:
            tries = int(_first(q, "tries", "1"))
            port = int(_first(q, "port"))
        except ValueError as e:
            return 400, f"bad parameters: {e}"
        for _ in range(max(1, tries)):
            try:
                responses.append(_dial_once(_first(q, "protocol", "http"), _first(q, "host"), port,
                                            _first(q, "request", "hostname")))
            except OSError as e:
                errors.append(str(e))
        return 200, json.dumps({"responses": responses, "errors": errors})

    def r_shell(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        p = subprocess.run(["sh", "-c", _first(q, "shellCommand") or _first(q, "cmd")],
                           capture_output=True, text=True)
        out = {"output": p.stdout + p.stderr}
        if p.returncode:
            out["error"] = f"exit status {p.returncode}"
        return 200, json.dumps(out)

    def r_exit(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        code = int(_first(q, "code", "0") or 0)
        threading.Timer(0.05, lambda: os._exit(code)).start()
        return 200, ""

    def r_header(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        return 200, h.headers.get(_first(q, "key"), "")

    def r_root(h: _Handler, q: dict[str, list[str]]) -> tuple[int, str]:
        return 200, f"NOW: {__import__('time').strftime('%Y-%m-%d %H:%M:%S')}"

    def udp(msg: str, peer: tuple[str, int]) -> str:
        word, _, rest = msg.partition(" ")
        if word == "hostname":
            return hostname
        if word == "echo":
            return rest
        if word == "clientip":
            return f"{peer[0]}:{peer[1]}"
        return ""

    _serve_udp(udp_port, udp)
    _serve_http(http_port, {"/hostname": r_hostname, "/clientip": r_clientip, "/echo": r_echo,
                            "/dial": r_dial, "/shell": r_shell, "/exit": r_exit, "/healthz": lambda h, q: (200, "ok"),
                            "/healthz/": lambda h, q: (200, "ok"), "/header": r_header, "/": r_root})


def serve_hostname(args: list[str]) -> None:
    """agnhost serve-hostname (and the old serve_hostname image)."""
    f = _flags(args)
    port = int(f.get("port", "9376"))
    hostname = socket.gethostname()
    if f.get("udp") == "true":
        _serve_udp(port, lambda msg, peer: hostname)
    if f.get("tcp") == "true":
        srv = socket.create_server(("0.0.0.0", port))
        _log(f"Serving on port {port}.")
        while True:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(hostname.encode())
    if f.get("http", "true") == "true" and f.get("udp") != "true":
        _serve_http(port, {"*": lambda h, q: (200, hostname)})
    else:
        _pause()


def hello_app(args: list[str]) -> None:
    """gcr.io/google-samples/hello-app."""
    f = _flags(args)
    hostname = socket.gethostname()
    version = f.get("version", "1.0")
    body = f"Hello, world!\nVersion: {version}\nHostname: {hostname}\n"
    _serve_http(int(f.get("port", "8080")), {"*": lambda h, q: (200, body)})


def _pause() -> None:
    while True:
        signal.pause()


def pause(args: list[str]) -> None:
    """The pause container: sleep until told to stop, then exit cleanly."""
    def done(signum: int, frame: object) -> None:
        os._exit(0)
    signal.signal(signal.SIGTERM, done)
    signal.signal(signal.SIGINT, done)
    _pause()


def _exec_component(module: str, args: list[str]) -> None:
    """Exec a kinns component (`python -m <module>`) as this container's
    process: a fresh interpreter of its own (the zygote's is stripped
    down), so `ps` shows the component's own process and its memory is its own."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.environ["PYTHONPATH"] = root
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def _component(module: str) -> Callable[[list[str]], None]:
    return lambda args: _exec_component(module, args)


BUILTINS: dict[str, Callable[[list[str]], None]] = {
    **{image: _component(module) for image, module in COMPONENT_IMAGES.items()},
    "netexec": netexec,
    "serve-hostname": serve_hostname,
    "hello-app": hello_app,
    "pause": pause,
}


def run(name: str, args: list[str]) -> None:
    """Run built-in `name` in this (already containerised) process."""
    BUILTINS[name](args)
