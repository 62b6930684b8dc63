"""Scratch network namespaces with a DNS server in them, for the integration tests and the benchmark.

Nothing here touches the host's network: every namespace is created with
a unique name (`kdns<pid>x<n>`), holds only its loopback, and is deleted
by `close()` together with every process started in it (each process is
killed by its own PID, never by name).

    with Testbed() as tb:
        ns = tb.netns()
        srv = tb.dns_server(ns, COREFILE, fixtures=objs)     # python -m kinns.dns, waits for /ready
        msg = tb.query(ns, "web.default.svc.cluster.local.")  # wire.Message
        api = tb.api_server(ns)                                # a kinns API server over plain HTTP

Queries are sent from this process: a socket opened while the calling
thread is inside the namespace (setns) stays there.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..net import netns as netns_mod
from . import wire

_counter = itertools.count()
PYTHON = sys.executable

API_SCRIPT = r"""
import asyncio, sys
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.api.http import serve

async def main():
    api = ApiServer(SqliteStore(sys.argv[1], durable=False))
    await api.bootstrap()
    await serve(api, "127.0.0.1", int(sys.argv[2]), None)
    print("serving", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path
    netns: str

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM twice (the DNS server's second one skips its lameduck wait), then SIGKILL."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(0.2)
            except subprocess.TimeoutExpired:
                self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Testbed:
    __test__ = False      # not a pytest test class

    workdir: Path
    prefix: str = field(default_factory=lambda: f"kdns{os.getpid() % 100000}x{next(_counter)}")
    namespaces: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    def __enter__(self) -> "Testbed":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def netns(self) -> str:
        name = f"{self.prefix}n{len(self.namespaces)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()

    # ---------------------------------------------------------- processes

    def spawn(self, ns: str, argv: list[str], name: str) -> Proc:
        log = self.workdir / f"{name}.log"
        out = open(log, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        popen = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                                 env=env, cwd=str(Path(__file__).resolve().parents[2]))
        out.close()
        p = Proc(popen, log, ns)
        self.procs.append(p)
        return p

    def dns_server(self, ns: str, corefile: str, *, fixtures: list[dict[str, Any]] | None = None,
                   name: str = "coredns", wait: bool = True, env_kubeconfig: str | None = None) -> Proc:
        conf = self.workdir / f"{name}.Corefile"
        conf.write_text(corefile)
        argv = [PYTHON, "-m", "kinns.dns", "-conf", str(conf)]
        if fixtures is not None:
            fx = self.fixtures_path(name)
            write_fixtures(fx, fixtures)
            argv += ["-fixtures", str(fx)]
        if env_kubeconfig:
            argv = ["env", f"KUBECONFIG={env_kubeconfig}", *argv]
        p = self.spawn(ns, argv, name)
        if wait:
            self.wait_http(ns, 8181, "/ready", p)
        return p

    def fixtures_path(self, name: str = "coredns") -> Path:
        return self.workdir / f"{name}.fixtures.json"

    def api_server(self, ns: str, port: int = 6443) -> tuple[Proc, Path]:
        """A kinns API server on 127.0.0.1:`port` (plain HTTP), and a kubeconfig for it."""
        script = self.workdir / "api.py"
        script.write_text(API_SCRIPT)
        p = self.spawn(ns, [PYTHON, str(script), str(self.workdir / "api.db"), str(port)], "apiserver")
        self.wait_http(ns, port, "/version", p)
        kubeconfig = self.workdir / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kinns",
            "clusters": [{"name": "kinns", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "contexts": [{"name": "kinns", "context": {"cluster": "kinns", "user": "coredns"}}],
            "users": [{"name": "coredns", "user": {}}]}))
        return p, kubeconfig

    # ------------------------------------------------------------- probes

    def http(self, ns: str, port: int, path: str, method: str = "GET", body: Any = None,
             timeout: float = 5.0) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"} if data else {})
        with netns_mod.entered(ns):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

    def wait_http(self, ns: str, port: int, path: str, proc: Proc | None = None, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.http(ns, port, path, timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            if proc is not None and not proc.alive():
                raise AssertionError(f"{proc.log.name} exited:\n{proc.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} on :{port} not 200 after {timeout}s\n"
                                     f"{proc.output() if proc else ''}")
            time.sleep(0.05)

    def socket(self, ns: str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        with netns_mod.entered(ns):
            return socket.socket(socket.AF_INET, kind)

    def exchange(self, ns: str, packet: bytes, *, tcp: bool = False, port: int = 53,
                 timeout: float = 3.0) -> bytes | None:
        """Send one packet, return the reply (None on timeout)."""
        s = self.socket(ns, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            if tcp:
                s.connect(("127.0.0.1", port))
                s.sendall(struct.pack("!H", len(packet)) + packet)
                head = _recv_exact(s, 2)
                return _recv_exact(s, struct.unpack("!H", head)[0])
            s.sendto(packet, ("127.0.0.1", port))
            return s.recv(65535)
        except socket.timeout:
            return None
        finally:
            s.close()

    def query(self, ns: str, name: str, qtype: int = wire.A, *, tcp: bool = False, port: int = 53,
              **kw: Any) -> wire.Message:
        reply = self.exchange(ns, wire.make_query(name, qtype, **kw), tcp=tcp, port=port)
        assert reply is not None, f"no answer for {name}"
        return wire.decode_message(reply)

    def dig(self, ns: str, *args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", ns, "dig", "@127.0.0.1", *args], capture_output=True,
                              text=True, timeout=30).stdout


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def write_fixtures(path: Path, objs: list[dict[str, Any]]) -> None:
    """Replace the fixture file atomically (the server re-reads it when it changes)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(objs))
    os.replace(tmp, path)
