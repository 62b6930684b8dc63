"""The cluster DNS server process: what the `coredns` pods of kube-system run.

`python -m kinns.dns -conf /etc/coredns/Corefile` (the image
`registry.k8s.io/coredns/coredns:<version>` selects it) is CoreDNS as far
as the cluster can tell:

    informers (Services, EndpointSlices, Pods, Namespaces) ──► Records ──► Handler
         over HTTPS, own credentials                          (indexes)     │ answer cache
                                                                            ▼
    UDP :53  one thread, blocking recvfrom/sendto: cache hit = dict look-up + ID patch
    TCP :53  asyncio, length-prefixed, several queries per connection
    misses that need the network (forward, ExternalName targets) ──► worker threads
    :8080 /health   :8181 /ready (200 once the Corefile is valid and the informers synced)
    :9153 /metrics  (CoreDNS's metric names, see metrics.py)

The API server may go away: informers back off and retry, and the records
(and so the answers) stay as they were until the watch resumes.  With the
`log` plugin every query is printed in CoreDNS's format; the start-up
banner is CoreDNS's.  A Corefile that does not parse is reported with its
line and the server stays unready (the pod never becomes Ready) while
still answering /health.

`-fixtures FILE` replaces the informers with a file of API objects (YAML
or JSON, a list or a List), re-read when it changes: the integration tests
and the benchmark run the real server with no cluster at all.

Division of labour: wire.py (packets), records.py (indexes), answer.py
(the specification), handler.py (plugin chain, cache), corefile.py,
forward.py, metrics.py; this module only wires them to sockets and the API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from . import corefile as corefile_mod
from .corefile import Corefile, CorefileError
from .forward import local_addresses
from .handler import Answer, Handler, NeedsNetwork
from .metrics import Counts, Metrics, VERSION, GOVERSION, REVISION
from .records import Records

log = logging.getLogger("coredns")

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Where kinns mounts a component's credentials Secret (kinns.cluster.addons.SA_DIR) and its kubeconfig.
KINNS_CREDENTIALS_KUBECONFIG = Path("/var/run/secrets/kinns.io/credentials/kubeconfig")
TCP_IDLE = 10.0
RELOAD_POLL = 2.0
FIXTURE_POLL = 0.05
TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


class Output:
    """CoreDNS's log lines (`[INFO] ...`) on stdout, whole lines from any thread."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def info(self, text: str) -> None:
        self.line("[INFO] " + text)

    def warning(self, text: str) -> None:
        self.line("[WARNING] " + text)

    def error(self, text: str) -> None:
        self.line("[ERROR] " + text)


# ------------------------------------------------------------------ sources


def load_objects(path: str | Path) -> list[dict[str, Any]]:
    """API objects from a file: a YAML/JSON list, a `kind: List`, or YAML documents."""
    text = Path(path).read_text()
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if isinstance(doc, list):
            out += doc
        elif isinstance(doc, dict) and doc.get("kind", "").endswith("List"):
            out += doc.get("items") or []
        else:
            out.append(doc)
    return out


class FixtureSource:
    """Records from a file, re-read whenever it changes (no API server)."""

    def __init__(self, path: str, records: Records, out: Output) -> None:
        self.path = path
        self.records = records
        self.out = out

    async def run(self) -> None:
        seen: tuple[int, int, int] | None = None
        while True:
            try:
                st = os.stat(self.path)
                if seen != (st.st_ino, st.st_mtime_ns, st.st_size):
                    seen = (st.st_ino, st.st_mtime_ns, st.st_size)
                    objs = await asyncio.to_thread(load_objects, self.path)
                    self.records.replace(objs)
                    self.records.mark_synced()
            except (OSError, yaml.YAMLError, ValueError) as e:
                self.out.error(f"fixtures {self.path}: {e}")
            await asyncio.sleep(FIXTURE_POLL)


KINDS = (("v1", "Service"), ("discovery.k8s.io/v1", "EndpointSlice"), ("v1", "Pod"), ("v1", "Namespace"))


class InformerSource:
    """Records fed by informers over HTTPS, as CoreDNS's dnsControl.

    Credentials, first found wins: the `kubeconfig PATH [CONTEXT]` line of
    the kubernetes block, $KUBECONFIG, the kubeconfig in kinns's component
    credentials Secret, the pod's service-account token.
    """

    def __init__(self, kubeconfig: tuple[str, str] | None, records: Records, metrics: Metrics, out: Output) -> None:
        self.kubeconfig = kubeconfig
        self.records = records
        self.metrics = metrics
        self.out = out
        self.factory: Any = None
        self.client: Any = None

    def _client(self) -> Any:
        from ..client import Client
        from ..client.transport import HttpTransport
        path, context = self.kubeconfig or (os.environ.get("KUBECONFIG", "").split(os.pathsep)[0], "")
        if not path and KINNS_CREDENTIALS_KUBECONFIG.exists():
            path = str(KINNS_CREDENTIALS_KUBECONFIG)
        if path:
            transport = HttpTransport.from_kubeconfig(path, context or None)
        elif (SA_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
            host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            transport = HttpTransport(f"https://{host}:{port}", ca_file=str(SA_DIR / "ca.crt"),
                                      token=(SA_DIR / "token").read_text().strip())
        else:
            raise ValueError("no kubeconfig (KUBECONFIG, or `kubeconfig` in the kubernetes block) "
                             "and no in-cluster service account")
        agent = f"coredns/{VERSION} git_commit:{REVISION} (linux/amd64/{GOVERSION})"
        return Client(transport, user_agent=agent)

    async def run(self) -> None:
        from ..client import InformerFactory
        self.client = self._client()
        self.factory = InformerFactory(self.client)
        informers = []
        for api_version, kind in KINDS:
            inf = self.factory.informer(api_version, kind)
            inf.max_backoff = 5.0       # come back quickly after the control plane does
            inf.add_handlers(on_add=self._on(kind), on_update=self._on_update(kind), on_delete=self._off(kind))
            informers.append(inf)
        self.factory.start()
        next_note = time.monotonic() + 0.5
        while not all(i.has_synced for i in informers):
            await asyncio.sleep(0.05)
            if time.monotonic() >= next_note:
                self.out.info("plugin/kubernetes: waiting for Kubernetes API before starting server")
                next_note += 5.0
        self.records.mark_synced()
        await asyncio.Event().wait()

    def _on(self, kind: str) -> Callable[[dict[str, Any]], None]:
        def handler(obj: dict[str, Any]) -> None:
            self.records.upsert(obj, kind)
            if kind == "EndpointSlice":
                self._programming(obj)
        return handler

    def _on_update(self, kind: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
        on = self._on(kind)

        def handler(_old: dict[str, Any], new: dict[str, Any]) -> None:
            on(new)
        return handler

    def _off(self, kind: str) -> Callable[[dict[str, Any]], None]:
        def handler(obj: dict[str, Any]) -> None:
            self.records.delete(obj, kind)
        return handler

    def _programming(self, obj: dict[str, Any]) -> None:
        """coredns_kubernetes_dns_programming_duration_seconds for headless Services (as CoreDNS)."""
        meta = obj.get("metadata") or {}
        trigger = (meta.get("annotations") or {}).get(TRIGGER_ANNOTATION)
        svc = self.records.service(meta.get("namespace", ""), (meta.get("labels") or {}).get(
            "kubernetes.io/service-name", ""))
        if not trigger or svc is None or not svc.headless:
            return
        try:
            from datetime import datetime
            t = datetime.fromisoformat(trigger.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return
        self.metrics.observe_programming("headless_with_selector", max(time.time() - t, 0.0))

    async def close(self) -> None:
        if self.factory is not None:
            await self.factory.stop()
        if self.client is not None:
            await self.client.close()


# ------------------------------------------------------------------- server


def _hostport(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "0.0.0.0", int(port)


class DnsServer:
    def __init__(self, conf_path: str, *, fixtures: str | None = None, port: int | None = None,
                 out: Output | None = None, local_ips: tuple[str, ...] | None = None) -> None:
        self.conf_path = conf_path
        self.fixtures = fixtures
        self.port_override = port
        self.out = out or Output()
        self.records = Records()
        self.corefile: Corefile | None = None
        self.conf_error = ""
        self.conf_hash = ""
        self.handler: Handler | None = None
        self.metrics = Metrics()
        self.local_ips = local_ips if local_ips is not None else local_addresses()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="dns-slow")
        self.slow_counts = Counts("udp", "1")
        self.slow_tcp_counts = Counts("tcp", "1")
        self._slow_lock = threading.Lock()
        self.metrics.counts += [self.slow_counts, self.slow_tcp_counts]
        self.source: Any = None
        self.shutting_down = False
        self._stopping = threading.Event()
        self._udp_socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._tcp: asyncio.base_events.Server | None = None
        self._runners: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []

    # -- configuration

    def load_corefile(self) -> bool:
        try:
            text = Path(self.conf_path).read_text()
        except OSError as e:
            self.conf_error = f"Corefile: {e}"
            self.out.error(self.conf_error)
            return False
        self.conf_hash = hashlib.sha512(text.encode()).hexdigest()
        try:
            cf = corefile_mod.parse(text)
        except CorefileError as e:
            self.conf_error = str(e)
            self.out.error(self.conf_error)
            return False
        self.corefile, self.conf_error = cf, ""
        return True

    @property
    def port(self) -> int:
        if self.port_override is not None:
            return self.port_override
        return self.corefile.ports[0] if self.corefile else 53

    @property
    def ready(self) -> bool:
        return (self.corefile is not None and self.records.synced and self.handler is not None
                and not self.shutting_down)

    @property
    def lameduck(self) -> float:
        """`health { lameduck 5s }`: keep answering this long after SIGTERM (not Ready meanwhile)."""
        return max((b.lameduck for b in self.corefile.blocks), default=0.0) if self.corefile else 0.0

    def _make_handler(self, cf: Corefile) -> Handler:
        h = Handler(cf, self.records, local_ips=self.local_ips)
        self.metrics.plugins = {z: b.plugins for b in cf.blocks for z in b.zones}
        self.metrics.server = f"dns://:{self.port}"
        for b in h.blocks:
            if b.forward is not None and not b.forward.available:
                self.out.warning(f"plugin/forward: no upstream nameservers in {', '.join(b.forward.opts.to)}: "
                                 "names outside the cluster get SERVFAIL")
        return h

    # -- run

    async def run(self) -> None:
        ok = self.load_corefile()
        cf = self.corefile
        await self._start_http(cf)
        if not ok or cf is None:
            await asyncio.Event().wait()       # alive, never ready: the log says which line
            return
        self.handler = self._make_handler(cf)
        self._start_udp()
        await self._start_tcp()
        for b in cf.blocks:
            self.out.line(f"{' '.join(z for z in b.zones)}:{self.port}" if len(b.zones) == 1 else
                          " ".join(f"{z}:{self.port}" for z in b.zones))
        self.out.info(f"plugin/reload: Running configuration SHA512 = {self.conf_hash}")
        self.out.line(f"CoreDNS-{VERSION}")
        self.out.line(f"linux/amd64, {GOVERSION}, {REVISION}")
        kube = next((b.kubernetes for b in cf.blocks if b.kubernetes), None)
        if self.fixtures:
            self.source = FixtureSource(self.fixtures, self.records, self.out)
        elif kube is not None:
            self.source = InformerSource(kube.kubeconfig, self.records, self.metrics, self.out)
        else:
            self.records.mark_synced()
        if self.source is not None:
            self._tasks.append(asyncio.create_task(self._run_source()))
        self._tasks.append(asyncio.create_task(self._reload_loop()))
        self._tasks.append(asyncio.create_task(self._cache_gauge()))
        await asyncio.gather(*self._tasks)

    async def _run_source(self) -> None:
        try:
            await self.source.run()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - say why, stay up unready, as CoreDNS's plugin errors do
            self.out.error(f"plugin/kubernetes: {e}")
            await asyncio.Event().wait()

    async def _reload_loop(self) -> None:
        """The reload plugin: a changed Corefile is applied without a restart (or rejected, keeping the old)."""
        if self.corefile is None or not any("reload" in b.plugins for b in self.corefile.blocks):
            return
        while True:
            await asyncio.sleep(RELOAD_POLL)
            try:
                text = Path(self.conf_path).read_text()
            except OSError:
                continue
            digest = hashlib.sha512(text.encode()).hexdigest()
            if digest == self.conf_hash:
                continue
            self.conf_hash = digest
            try:
                cf = corefile_mod.parse(text)
            except CorefileError as e:
                self.metrics.reload_failed += 1
                self.out.error(f"Restart failed: {e}")
                continue
            if cf.ports != (self.corefile.ports if self.corefile else []):
                self.metrics.reload_failed += 1
                self.out.error("Restart failed: a changed port needs a restart of the server")
                continue
            self.corefile = cf
            self.handler = self._make_handler(cf)
            self.out.info("Reloading complete")
            self.out.info(f"plugin/reload: Running configuration SHA512 = {digest}")

    async def _cache_gauge(self) -> None:
        while True:
            h = self.handler
            if h is not None:
                entries = list(h.udp.values()) + list(h.tcp.values())
                self.metrics.cache_entries = {
                    "success": sum(1 for e in entries if e.meta.cache == "success"),
                    "denial": sum(1 for e in entries if e.meta.cache == "denial")}
                self.metrics.cache_misses = h.misses
            await asyncio.sleep(5)

    # -- UDP

    def _start_udp(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        except OSError:
            pass
        s.bind(("0.0.0.0", self.port))
        s.settimeout(0.5)
        self._udp_socks.append(s)
        counts = self.metrics.counts_for("udp", "1")
        t = threading.Thread(target=self._udp_loop, args=(s, counts), name="dns-udp", daemon=True)
        t.start()
        self._threads.append(t)

    def _udp_loop(self, sock: socket.socket, counts: Counts) -> None:
        """The packet loop: everything on a cache hit happens in these few lines."""
        recv, send = sock.recvfrom, sock.sendto
        perf = time.perf_counter
        count = counts.count
        stopping = self._stopping.is_set
        while True:
            try:
                data, addr = recv(4096)
            except socket.timeout:
                if stopping():
                    return
                continue
            except OSError:
                if stopping():
                    return
                continue
            t0 = perf()
            h = self.handler
            assert h is not None
            e = h.udp.get(data[2:])
            if e is not None:
                h.hits += 1
                try:
                    send(data[:2] + e.next(), addr)
                except OSError:
                    pass
                dt = perf() - t0
                count(e.key, dt)
                if e.meta.log is not None:
                    self._log_query(addr, data, e.meta.log, dt)
                continue
            self._udp_miss(h, sock, data, addr, counts, t0)

    def _udp_miss(self, h: Handler, sock: socket.socket, data: bytes, addr: Any, counts: Counts, t0: float) -> None:
        try:
            ans = h.handle(data, "udp")
        except NeedsNetwork:
            self.pool.submit(self._udp_slow, h, sock, data, addr, t0)
            return
        except Exception:  # noqa: BLE001 - one bad packet must not stop the loop (CoreDNS recovers panics)
            self.metrics.panics += 1
            log.exception("answering a UDP query")
            return
        self._udp_reply(sock, data, addr, ans, counts, t0)

    def _udp_slow(self, h: Handler, sock: socket.socket, data: bytes, addr: Any, t0: float) -> None:
        try:
            ans = h.handle(data, "udp", network=True)
        except Exception:  # noqa: BLE001
            self.metrics.panics += 1
            log.exception("answering a forwarded UDP query")
            return
        with self._slow_lock:
            self._udp_reply(sock, data, addr, ans, self.slow_counts, t0)

    def _udp_reply(self, sock: socket.socket, data: bytes, addr: Any, ans: Answer, counts: Counts, t0: float) -> None:
        if ans.data is not None:
            try:
                sock.sendto(ans.data, addr)
            except OSError:
                pass
        dt = time.perf_counter() - t0
        counts.count((ans.meta, len(data), len(ans.data) if ans.data else 0), dt)
        if ans.meta.log is not None:
            self._log_query(addr, data, ans.meta.log, dt)

    def _log_query(self, addr: Any, data: bytes, middle: str, seconds: float) -> None:
        qid = struct.unpack_from("!H", data)[0]
        self.out.info(f"{addr[0]}:{addr[1]} - {qid} {middle} {seconds:.9f}".rstrip("0").rstrip(".") + "s")

    # -- TCP

    async def _start_tcp(self) -> None:
        self._tcp = await asyncio.start_server(self._tcp_client, "0.0.0.0", self.port, reuse_address=True,
                                               backlog=1024)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                    data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                t0 = time.perf_counter()
                h = self.handler
                assert h is not None
                try:
                    ans = h.handle(data, "tcp")
                except NeedsNetwork:
                    ans = await loop.run_in_executor(self.pool, lambda: h.handle(data, "tcp", network=True))
                except Exception:  # noqa: BLE001
                    self.metrics.panics += 1
                    log.exception("answering a TCP query")
                    return
                if ans.data is not None:
                    writer.write(struct.pack("!H", len(ans.data)) + ans.data)
                    await writer.drain()
                dt = time.perf_counter() - t0
                with self._slow_lock:
                    self.slow_tcp_counts.count((ans.meta, len(data), len(ans.data) if ans.data else 0), dt)
                if ans.meta.log is not None:
                    self._log_query(peer, data, ans.meta.log, dt)
        except ConnectionError:
            return
        finally:
            writer.close()

    # -- HTTP: health, ready, metrics

    async def _start_http(self, cf: Corefile | None) -> None:
        from aiohttp import web
        health = cf.health if cf else "0.0.0.0:8080"
        ready = cf.ready if cf else "0.0.0.0:8181"
        prom = cf.prometheus if cf else None
        if cf is None:
            self.out.info("plugin/health: serving /health; /ready stays 503 until the Corefile parses")

        async def h_health(_req: web.Request) -> web.Response:
            return web.Response(text="OK")

        async def h_ready(_req: web.Request) -> web.Response:
            if self.ready:
                return web.Response(text="OK")
            why = "corefile" if self.corefile is None else "kubernetes"
            return web.Response(status=503, text=why)

        async def h_metrics(_req: web.Request) -> web.Response:
            h = self.handler
            if h is not None:
                self.metrics.cache_misses = h.misses
                self.metrics.cache_hits = {"success": h.hits}
            for b in (h.blocks if h else []):
                if b.forward is not None:
                    self.metrics.forward_requests = dict(b.forward.requests)
            return web.Response(text=self.metrics.text(), content_type="text/plain")

        routes: dict[tuple[str, int], list[tuple[str, Any]]] = {}
        for addr, path, fn in ((health, "/health", h_health), (ready, "/ready", h_ready), (prom, "/metrics", h_metrics)):
            if addr:
                routes.setdefault(_hostport(addr), []).append((path, fn))
        for (host, port), paths in routes.items():
            app = web.Application()
            for path, fn in paths:
                app.router.add_get(path, fn)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, host, port, reuse_address=True).start()
            self._runners.append(runner)

    async def close(self) -> None:
        self._stopping.set()
        for t in self._tasks:
            t.cancel()
        if self.source is not None and hasattr(self.source, "close"):
            await self.source.close()
        if self._tcp is not None:
            self._tcp.close()
        for s in self._udp_socks:
            s.close()
        for r in self._runners:
            await r.cleanup()
        self.pool.shutdown(wait=False, cancel_futures=True)

