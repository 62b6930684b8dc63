"""kube-proxy's historical userspace mode: the proxy is a process, not rules.

Upstream's first proxier (pkg/proxy/userspace, deprecated in 1.23 and
removed in 1.26) moved every Service connection through kube-proxy
itself.  kinns keeps it as a teaching mode, split as upstream split it:

1. Listeners.  For each ServicePort kube-proxy opens a socket on the node
   (TCP or UDP, a random local port) and proxies what arrives there to an
   endpoint: TCP connection by connection (`_tcp_session`: dial with
   upstream's tryConnect, growing timeouts, next endpoint on failure, then
   copy both ways), UDP per client address (`_UdpListener`: one connected
   socket per client towards its endpoint, dropped after an idle timeout,
   as upstream's client cache).  Which endpoint: `roundrobin.RoundRobin`,
   round robin with ClientIP affinity, kept apart from sockets.
2. Portals (`render`, pure).  iptables nat rules in upstream's userspace
   chains steer a Service's addresses to its listener: traffic arriving
   from pods or outside is REDIRECTed (KUBE-PORTALS-CONTAINER from
   PREROUTING, KUBE-NODEPORT-CONTAINER last in PREROUTING for NodePorts),
   locally generated traffic is DNATed to the node IP (KUBE-PORTALS-HOST
   and KUBE-NODEPORT-HOST from OUTPUT), since REDIRECT on the output path
   goes to 127.0.0.1, which needs route_localnet.  A listener with no
   endpoints behind it is refused in the filter chain KUBE-PORTALS-FILTER
   (from INPUT, matching the listener's port, which redirected packets
   carry): REJECT when the Service has no usable endpoint anywhere, DROP
   when only *local* ones are missing, as the iptables and nftables modes
   do.  So a client is refused at once instead of connecting to a proxy
   with nothing behind it, and the refusal does not depend on the node
   having a route for the Service's address.
3. The applier (`UserspaceBackend`) keeps the listeners on a thread of
   their own running an asyncio loop inside the node's network namespace,
   and writes the portal chains with one `iptables-restore --noflush`.

Traffic policies give a ServicePort up to two listeners: `internal` (the
ClusterIP, and pod or node traffic to external addresses when
externalTrafficPolicy is Local, as upstream short-circuits it) and
`external` (NodePort, external and load-balancer IPs from outside), the
latter only when the two policies differ, because then the endpoints do.
SCTP ports are skipped: upstream's userspace proxier never spoke SCTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

from ..net import netns as netns_mod
from .backend import SyncResult, run
from .model import Endpoint, ProxyState, ServicePort, ServicePortName, categorize
from .roundrobin import NoEndpoints, RoundRobin, eligible_endpoints

log = logging.getLogger("kube-proxy")

T = TypeVar("T")

CONTAINER_PORTALS = "KUBE-PORTALS-CONTAINER"
HOST_PORTALS = "KUBE-PORTALS-HOST"
CONTAINER_NODEPORTS = "KUBE-NODEPORT-CONTAINER"
HOST_NODEPORTS = "KUBE-NODEPORT-HOST"
PORTAL_FILTER = "KUBE-PORTALS-FILTER"
NAT_CHAINS = (CONTAINER_PORTALS, HOST_PORTALS, CONTAINER_NODEPORTS, HOST_NODEPORTS)
CHAINS = {"nat": NAT_CHAINS, "filter": (PORTAL_FILTER,)}

# Upstream's tryConnect: how long each successive endpoint dial may take.
DIAL_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)
# KubeProxyConfiguration.udpIdleTimeout's default.
UDP_IDLE_TIMEOUT = 0.25
UDP_BUFFER = 65535
COPY_CHUNK = 64 * 1024


# --- what listens ------------------------------------------------------------

class ListenerKey(NamedTuple):
    """One listener: a ServicePort's internal one, or its external one."""

    name: ServicePortName
    external: bool = False

    def __str__(self) -> str:
        return f"{self.name} (external)" if self.external else str(self.name)


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """What a listener balances over."""

    protocol: str
    endpoints: tuple[Endpoint, ...]
    affinity_timeout: int


def proxied(state: ProxyState) -> list[ServicePort]:
    """The ServicePorts userspace mode serves, in a stable order (SCTP is skipped)."""
    return sorted((sp for sp in state.services.values() if sp.protocol in ("TCP", "UDP")),
                  key=lambda sp: tuple(sp.name))


def _splits(sp: ServicePort) -> bool:
    """True when outside traffic needs a listener of its own (the policies differ)."""
    return sp.externally_accessible and sp.external_local != sp.internal_local


def _external_keys(sp: ServicePort) -> tuple[ListenerKey, ListenerKey]:
    """For an external destination: (key for pod/node traffic, key for outside traffic).

    With externalTrafficPolicy Local, traffic from pods and from the node
    itself follows the internal policy (upstream's "pod traffic for …
    external destinations" short-circuit); with Cluster, all of it uses
    the cluster-wide endpoints."""
    internal = ListenerKey(sp.name)
    if not _splits(sp):
        return internal, internal
    external = ListenerKey(sp.name, True)
    return (internal if sp.external_local else external), external


def listener_specs(state: ProxyState) -> dict[ListenerKey, ListenerSpec]:
    """Every listener `state` needs and the endpoints behind it."""
    out: dict[ListenerKey, ListenerSpec] = {}
    for sp in proxied(state):
        out[ListenerKey(sp.name)] = ListenerSpec(
            sp.protocol, eligible_endpoints(sp, state.node.name, external=False), sp.affinity_timeout)
        if _splits(sp):
            out[ListenerKey(sp.name, True)] = ListenerSpec(
                sp.protocol, eligible_endpoints(sp, state.node.name, external=True), sp.affinity_timeout)
    return out


# --- portal rules (pure) -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Jump:
    """A jump from a built-in chain into one of ours."""

    table: str
    chain: str
    target: str
    args: str
    first: bool     # inserted at the top (portals) or appended (node ports: last)

    def spec(self) -> str:
        return f"{self.args} -j {self.target}"


_PORTALS_FIRST = '-m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules"'
_NODEPORTS_LAST = ('-m addrtype --dst-type LOCAL -m comment --comment '
                   '"handle service NodePorts; NOTE: this must be the last rule in the chain"')
_FILTER_NEW = '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals without endpoints"'

JUMPS = (
    Jump("nat", "PREROUTING", CONTAINER_PORTALS, _PORTALS_FIRST, True),
    Jump("nat", "OUTPUT", HOST_PORTALS, _PORTALS_FIRST, True),
    Jump("nat", "PREROUTING", CONTAINER_NODEPORTS, _NODEPORTS_LAST, False),
    Jump("nat", "OUTPUT", HOST_NODEPORTS, _NODEPORTS_LAST, False),
    Jump("filter", "INPUT", PORTAL_FILTER, _FILTER_NEW, True),
)


@dataclass
class Ruleset:
    """Rendered chain contents: `-A` lines per table (jumps are the applier's)."""

    nat: list[str]
    filter: list[str]

    @property
    def rules(self) -> int:
        return len(self.nat) + len(self.filter)

    def restore_text(self, jump_fixes: Mapping[str, list[str]] | None = None) -> str:
        """The `iptables-restore --noflush` input: declaring a chain flushes it,
        so the chains are rewritten whole; other chains stay untouched."""
        fixes = jump_fixes or {}
        out: list[str] = []
        for table, lines in (("nat", self.nat), ("filter", self.filter)):
            out.append(f"*{table}")
            out += [f":{c} - [0:0]" for c in CHAINS[table]]
            out += lines
            out += fixes.get(table, [])
            out.append("COMMIT")
        return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class _Portal:
    """One destination of a ServicePort (an IP:port, or a node port on any local address)."""

    ip: str | None          # None: a node port
    port: int
    inside: ListenerKey     # for pods (and the node itself)
    outside: ListenerKey    # for everyone else


def _portals(sp: ServicePort) -> Iterator[_Portal]:
    internal = ListenerKey(sp.name)
    yield _Portal(sp.cluster_ip, sp.port, internal, internal)
    inside, outside = _external_keys(sp)
    for ip in (*sp.external_ips, *sp.load_balancer_ips):
        yield _Portal(ip, sp.port, inside, outside)
    if sp.node_port:
        yield _Portal(None, sp.node_port, inside, outside)


def _match(sp: ServicePort, portal: _Portal, *, source: str = "") -> str:
    """The match part of a portal rule, in the order iptables-save prints it."""
    proto = sp.protocol.lower()
    parts = [f"-s {source}"] if source else []
    if portal.ip is not None:
        parts.append(f"-d {portal.ip}/32")
    parts.append(f'-p {proto} -m comment --comment "{sp.name}" -m {proto} --dport {portal.port}')
    return " ".join(parts)


def render(state: ProxyState, ports: Mapping[ListenerKey, int], node_ip: str) -> Ruleset:
    """The portal chains for `state`, given the port each listener got.

    Per destination: from-container rules REDIRECT to the listener (pod
    traffic first when externalTrafficPolicy Local sends it elsewhere than
    outside traffic), from-host rules DNAT to `node_ip`:port.  A listener
    with no endpoints is refused in the filter chain by its port: REJECT
    when the Service has no usable endpoint anywhere, DROP when only local
    ones are missing.  A listener that did not open gets no rules."""
    specs = listener_specs(state)
    nat: dict[str, list[str]] = {c: [] for c in NAT_CHAINS}
    filt: list[str] = []
    for sp in proxied(state):
        for portal in _portals(sp):
            inside, outside = ports.get(portal.inside), ports.get(portal.outside)
            container, host = ((CONTAINER_PORTALS, HOST_PORTALS) if portal.ip is not None
                               else (CONTAINER_NODEPORTS, HOST_NODEPORTS))
            match = _match(sp, portal)
            if inside and portal.inside != portal.outside:
                source = _match(sp, portal, source=state.node.cluster_cidr)
                nat[container].append(f"-A {container} {source} -j REDIRECT --to-ports {inside}")
            if outside:
                nat[container].append(f"-A {container} {match} -j REDIRECT --to-ports {outside}")
            if inside:
                nat[host].append(f"-A {host} {match} -j DNAT --to-destination {node_ip}:{inside}")
        has_any = categorize(sp, state.node.name).has_any
        why, verdict = ("has no local endpoints", "DROP") if has_any else ("has no endpoints", "REJECT")
        for key in (ListenerKey(sp.name), ListenerKey(sp.name, True)):
            if key in specs and key in ports and not specs[key].endpoints:
                proto = sp.protocol.lower()
                filt.append(f'-A {PORTAL_FILTER} -p {proto} -m comment --comment "{sp.name} {why}"'
                            f" -m {proto} --dport {ports[key]} -j {verdict}")
    return Ruleset([line for c in NAT_CHAINS for line in nat[c]], filt)


# --- reading iptables-save (pure) -------------------------------------------------

def parse_save(text: str) -> dict[str, tuple[set[str], list[str]]]:
    """iptables-save output → per table (chain names, `-A` lines)."""
    out: dict[str, tuple[set[str], list[str]]] = {}
    cur: tuple[set[str], list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = out.setdefault(line[1:].strip(), (set(), []))
        elif cur is None:
            continue
        elif line.startswith(":"):
            cur[0].add(line[1:].split()[0])
        elif line.startswith("-A "):
            cur[1].append(line)
    return out


def _target(rule: str) -> str:
    """The chain or target a saved `-A` rule jumps to ("" if none)."""
    words = rule.split()
    return words[-1] if len(words) > 3 and words[-2] in ("-j", "-g") else ""


def _jumps_to(rules: list[str], chain: str, target: str) -> list[str]:
    return [r for r in rules if r.split()[1] == chain and _target(r) == target]


def jump_fixes(saved: str) -> dict[str, list[str]]:
    """Lines that make the jumps into our chains exactly one each.

    Missing jumps are inserted (portals first, node ports last, as
    upstream orders them); duplicates are deleted.  Applied on full syncs,
    where upstream's iptablesInit ensures them."""
    tables = parse_save(saved)
    out: dict[str, list[str]] = {}
    for j in JUMPS:
        have = _jumps_to(tables.get(j.table, (set(), []))[1], j.chain, j.target)
        fix = out.setdefault(j.table, [])
        if not have:
            fix.append(f"-I {j.chain} 1 {j.spec()}" if j.first else f"-A {j.chain} {j.spec()}")
        fix += ["-D" + r[2:] for r in have[1:]]
    return out


def missing(saved: str) -> list[str]:
    """Our chains and jumps absent from `saved` (someone flushed the tables)."""
    tables = parse_save(saved)
    gone = [f"{t} {c}" for t, cs in CHAINS.items() for c in cs if c not in tables.get(t, (set(), []))[0]]
    gone += [f"{j.table} {j.chain} -j {j.target}" for j in JUMPS
             if not _jumps_to(tables.get(j.table, (set(), []))[1], j.chain, j.target)]
    return gone


def render_cleanup(saved: str) -> str:
    """Restore input deleting our jumps (from any built-in chain) and chains; "" if none exist.

    Only the chains named in CHAINS are touched: other modes' chains
    (KUBE-SERVICES, KUBE-NODEPORTS, …) and anyone else's rules stay."""
    tables = parse_save(saved)
    out: list[str] = []
    for table, ours in CHAINS.items():
        chains, rules = tables.get(table, (set(), []))
        present = [c for c in ours if c in chains]
        jumps = [r for r in rules if r.split()[1] not in ours and _target(r) in ours]
        if not present and not jumps:
            continue
        out += [f"*{table}", *("-D" + r[2:] for r in jumps), *(f":{c} - [0:0]" for c in present),
                *(f"-X {c}" for c in present), "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


# --- the proxy (sockets on the loop thread) -------------------------------------

def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a client connection with RST, as a refused connection would look."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def _dial(ep: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to `ep`; the socket is made on the loop thread, i.e. in the node namespace."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (ep.ip, ep.port))
        return await asyncio.open_connection(sock=sock, limit=COPY_CHUNK)
    except BaseException:
        sock.close()
        raise


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on (the other direction may go on)."""
    while data := await src.read(COPY_CHUNK):
        dst.write(data)
        await dst.drain()
    if dst.can_write_eof():
        dst.write_eof()


class _UdpClient:
    """One client's flow to its endpoint: a connected socket, read by the loop."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.last = time.monotonic()


class _UdpListener(asyncio.DatagramProtocol):
    """A UDP listener: datagrams from each client go to its endpoint, replies come back.

    As upstream's client cache: the first datagram of a client (address
    and port) picks an endpoint; the flow lives until it is idle for the
    backend's `udp_idle_timeout`, then the next datagram picks again."""

    def __init__(self, proxy: "_Proxy", key: ListenerKey) -> None:
        self.proxy = proxy
        self.key = key
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[tuple[str, int], _UdpClient] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        client = self.clients.get(addr) or self._connect(addr)
        if client is None:
            return
        client.last = time.monotonic()
        try:
            client.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass                  # a full buffer drops the datagram, as UDP may
        except OSError as e:      # e.g. ECONNREFUSED from an earlier ICMP error
            log.debug("udp %s → %s: %s", addr, client.endpoint, e)
            self.drop(addr)

    def _connect(self, addr: tuple[str, int]) -> _UdpClient | None:
        """Pick the client's endpoint and connect a socket to it (as many tries as tryConnect's)."""
        reset = False
        for _ in DIAL_TIMEOUTS:
            try:
                ep = self.proxy.balancer.next_endpoint(self.key, addr[0], reset)
            except NoEndpoints:
                return None
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect((ep.ip, ep.port))
            except OSError as e:
                sock.close()
                log.debug("udp dial %s: %s", ep, e)
                reset = True
                continue
            client = _UdpClient(sock, ep)
            self.clients[addr] = client
            loop = asyncio.get_running_loop()
            loop.add_reader(sock.fileno(), self._reply, addr, client)
            loop.call_later(self.proxy.udp_idle_timeout, self._expire, addr, client)
            return client
        return None

    def _reply(self, addr: tuple[str, int], client: _UdpClient) -> None:
        try:
            data = client.sock.recv(UDP_BUFFER)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.drop(addr)
            return
        client.last = time.monotonic()
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _expire(self, addr: tuple[str, int], client: _UdpClient) -> None:
        if self.clients.get(addr) is not client:
            return
        left = client.last + self.proxy.udp_idle_timeout - time.monotonic()
        if left > 0:
            asyncio.get_running_loop().call_later(left, self._expire, addr, client)
        else:
            self.drop(addr)

    def drop(self, addr: tuple[str, int]) -> None:
        client = self.clients.pop(addr, None)
        if client is not None:
            asyncio.get_running_loop().remove_reader(client.sock.fileno())
            client.sock.close()

    def prune(self, keep: set[tuple[str, int]]) -> None:
        """Forget flows whose endpoint is no longer eligible."""
        for addr, client in list(self.clients.items()):
            if (client.endpoint.ip, client.endpoint.port) not in keep:
                self.drop(addr)

    def close(self) -> None:
        for addr in list(self.clients):
            self.drop(addr)
        if self.transport is not None:
            self.transport.close()


@dataclass
class _Listener:
    """One open listener: its port and what closes it."""

    key: ListenerKey
    port: int
    closer: asyncio.Server | _UdpListener


class _Proxy:
    """The listeners and their traffic; every method runs on the loop thread."""

    def __init__(self, balancer: RoundRobin[ListenerKey], udp_idle_timeout: float) -> None:
        self.balancer = balancer
        self.udp_idle_timeout = udp_idle_timeout
        self.listeners: dict[ListenerKey, _Listener] = {}
        self.sessions: set[asyncio.Task[None]] = set()

    async def ensure(self, specs: Mapping[ListenerKey, ListenerSpec]) -> dict[ListenerKey, int]:
        """Open listeners for new keys; the port of every open one.

        A listener that fails to open is logged and left out: its
        Service gets no portal this round and the next sync tries again."""
        for key, spec in specs.items():
            if key not in self.listeners:
                try:
                    self.listeners[key] = await self._open(key, spec.protocol)
                    log.info("Opened proxy port for service %s on %s port %d",
                             key, spec.protocol, self.listeners[key].port)
                except OSError as e:
                    log.error("Failed to open proxy port for service %s: %s", key, e)
            else:
                closer = self.listeners[key].closer
                if isinstance(closer, _UdpListener):
                    closer.prune({(e.ip, e.port) for e in spec.endpoints})
        return {k: li.port for k, li in self.listeners.items()}

    async def _open(self, key: ListenerKey, protocol: str) -> _Listener:
        loop = asyncio.get_running_loop()
        kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            port = int(sock.getsockname()[1])
            if protocol == "TCP":
                server = await asyncio.start_server(
                    lambda r, w: self._track(self._tcp_session(key, r, w)), sock=sock, backlog=1024)
                return _Listener(key, port, server)
            udp = _UdpListener(self, key)
            await loop.create_datagram_endpoint(lambda: udp, sock=sock)
            return _Listener(key, port, udp)
        except BaseException:
            sock.close()
            raise

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.sessions.add(task)
        task.add_done_callback(self.sessions.discard)

    async def _tcp_session(self, key: ListenerKey, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        """One client connection: find an endpoint that answers, then copy both ways."""
        peer = writer.get_extra_info("peername")
        upstream = await self._try_connect(key, peer[0] if peer else "")
        if upstream is None:
            _reset(writer)
            return
        up_reader, up_writer = upstream
        tasks = [asyncio.ensure_future(_pipe(reader, up_writer)), asyncio.ensure_future(_pipe(up_reader, writer))]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut           # a clean EOF waits for the other direction; an error ends both
        except OSError:
            for w in (writer, up_writer):
                w.transport.abort()
        finally:
            for t in tasks:
                t.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _try_connect(self, key: ListenerKey, client_ip: str
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Upstream's tryConnect: each failed dial moves on (reset affinity) with a longer timeout."""
        reset = False
        for timeout in DIAL_TIMEOUTS:
            try:
                ep = self.balancer.next_endpoint(key, client_ip, reset)
            except NoEndpoints:
                log.debug("no endpoints for %s", key)
                return None
            try:
                return await asyncio.wait_for(_dial(ep), timeout)
            except (OSError, asyncio.TimeoutError) as e:
                log.warning("Dial failed for service %s endpoint %s: %s", key, ep, e or "timeout")
                reset = True
        return None

    async def close(self, keys: list[ListenerKey]) -> None:
        """Stop listening for `keys` (open TCP connections go on, as upstream's do)."""
        for key in keys:
            li = self.listeners.pop(key, None)
            if li is None:
                continue
            li.closer.close()
            log.info("Closed proxy port %d for service %s", li.port, key)

    async def shutdown(self) -> None:
        await self.close(list(self.listeners))
        for t in list(self.sessions):
            t.cancel()
        await asyncio.gather(*self.sessions, return_exceptions=True)


class _LoopThread:
    """An asyncio loop on a thread that lives in the node's network namespace.

    setns(2) switches only the calling thread, so entering once at the
    start puts every socket this loop creates (listeners and dials to
    endpoints) in the node, while kube-proxy's own loop stays put."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"userspace-proxy-{netns or 'node'}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            with netns_mod.entered(self.netns):
                loop = asyncio.new_event_loop()
                self.loop = loop
                self._ready.set()
                try:
                    loop.run_forever()
                finally:
                    loop.close()
        except BaseException as e:     # reported to the constructor, never raised on the thread
            self._error = e
            self._ready.set()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coro` on the loop and wait for its result."""
        assert self.loop is not None
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


# --- the backend -------------------------------------------------------------------

class UserspaceBackend:
    """kube-proxy's userspace mode for one node: listeners plus portal rules.

    `netns` is the node's namespace when driven from outside (tests);
    kube-proxy itself already runs in it and passes None.  `node_ip` is
    where locally generated traffic is DNATed to (default: the node's
    first IP from the state).  The listener thread starts on the first
    sync, so constructing one just to `cleanup()` opens nothing."""

    mode = "userspace"

    def __init__(self, netns: str | None = None, node_ip: str = "", *,
                 udp_idle_timeout: float = UDP_IDLE_TIMEOUT,
                 balancer: RoundRobin[ListenerKey] | None = None) -> None:
        self.netns = netns
        self.node_ip = node_ip
        self.balancer: RoundRobin[ListenerKey] = balancer or RoundRobin()
        self._proxy = _Proxy(self.balancer, udp_idle_timeout)
        self._thread: _LoopThread | None = None
        self._lock = threading.Lock()

    # -- kernel I/O --

    def _save(self) -> str:
        return "".join(run(["iptables-save", "-t", t], netns=self.netns).stdout for t in CHAINS)

    def _restore(self, text: str) -> None:
        run(["iptables-restore", "--noflush"], input=text, netns=self.netns)

    def _loop(self) -> _LoopThread:
        if self._thread is None:
            self._thread = _LoopThread(self.netns)
        return self._thread

    # -- Backend --

    def sync(self, state: ProxyState, changed: frozenset[ServicePortName] | None) -> SyncResult:
        """Listeners and portals for `state`.

        Order keeps clients from meeting a half-made Service: endpoints go
        to the balancer and new listeners open before the rules point at
        them; listeners of removed ServicePorts close after their rules are
        gone.  The chains are small, so every sync rewrites them whole;
        full syncs (`changed` None) also check the jumps into them."""
        with self._lock:
            specs = listener_specs(state)
            for key, spec in specs.items():
                self.balancer.set_endpoints(key, spec.endpoints, spec.affinity_timeout)
            loop = self._loop()
            ports = loop.call(self._proxy.ensure(specs))
            rules = render(state, ports, self.node_ip or state.node.node_ips[0])
            fixes = jump_fixes(self._save()) if changed is None else None
            self._restore(rules.restore_text(fixes))
            stale = [k for k in ports if k not in specs]
            loop.call(self._proxy.close(stale))
            for key in stale:
                self.balancer.remove(key)
            self.balancer.expire_affinity()
            return SyncResult(full=changed is None, rules=rules.rules, services_written=len(proxied(state)))

    def ports(self) -> dict[ListenerKey, int]:
        """Each open listener's local port (for logs and tests)."""
        with self._lock:
            return {k: li.port for k, li in self._proxy.listeners.items()}

    def tables_flushed(self) -> bool:
        """True when a chain or jump of ours is gone (the caller then does a full sync)."""
        gone = missing(self._save())
        if gone:
            log.info("userspace portal rules missing: %s", ", ".join(gone))
        return bool(gone)

    def cleanup(self) -> None:
        """Remove our chains and the jumps to them, and stop listening."""
        with self._lock:
            text = render_cleanup(self._save())
            if text:
                self._restore(text)
            if self._thread is not None:
                keys = list(self._proxy.listeners)
                self._thread.call(self._proxy.close(keys))
                for key in keys:
                    self.balancer.remove(key)

    def close(self) -> None:
        """Stop the listener thread (rules stay; `cleanup` removes them)."""
        with self._lock:
            if self._thread is not None:
                try:
                    self._thread.call(self._proxy.shutdown(), timeout=10)
                except (concurrent.futures.TimeoutError, RuntimeError) as e:
                    log.warning("userspace proxy shutdown: %s", e)
                self._thread.stop()
                self._thread = None

