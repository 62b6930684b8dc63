"""Userspace mode's load balancer: round robin with ClientIP affinity.

Upstream's userspace proxier (pkg/proxy/userspace/roundrobin.go, removed in
1.26) kept balancing apart from sockets behind a `LoadBalancer` interface;
so does kinns.  This module decides *which endpoint* a new connection or
UDP client gets; `userspace.py` owns the sockets and asks
`RoundRobin.next_endpoint` once per connection (again, with `reset=True`,
when dialling the endpoint it got failed).

What it keeps per balanced key (userspace.py uses one key per listener):

- the eligible endpoints, shuffled once whenever the *set* changes (as
  upstream shuffles, so that many proxies do not all start with the same
  endpoint) and then handed out in turn;
- with ClientIP affinity, client IP → (endpoint, last used).  A client
  sticks to its endpoint while it keeps coming back within the timeout;
  an endpoint that leaves the set takes its clients' records with it.

Which endpoints are eligible is the one place traffic policy enters:
`eligible_endpoints` applies `model.categorize` (ready first, serving and
terminating only as a fallback, Local policies restricted to this node),
so userspace agrees with the iptables and nftables modes.

Pure: no sockets, no threads started; the clock and the shuffle are
injected so tests can step time and fix the order.  A lock makes the
balancer safe to update from kube-proxy's sync while proxy tasks read it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, Sequence, TypeVar

from .model import Endpoint, ServicePort, categorize

K = TypeVar("K", bound=Hashable)


class NoEndpoints(LookupError):
    """The key is unknown or has no eligible endpoint: refuse the client."""


def eligible_endpoints(sp: ServicePort, node: str, *, external: bool) -> tuple[Endpoint, ...]:
    """The endpoints one kind of traffic to `sp` may use on `node`.

    Internal traffic (to the ClusterIP) follows internalTrafficPolicy,
    external traffic (NodePort, external and load-balancer IPs from
    outside) follows externalTrafficPolicy: Local means "this node's
    endpoints only", Cluster means "all of them"."""
    cat = categorize(sp, node)
    local = sp.external_local if external else sp.internal_local
    return cat.local if local else cat.cluster


def _addr(e: Endpoint) -> tuple[str, int]:
    """An endpoint's identity for balancing: its address, not its conditions."""
    return (e.ip, e.port)


@dataclass
class _Sticky:
    endpoint: Endpoint
    last_used: float


@dataclass
class _State:
    endpoints: list[Endpoint] = field(default_factory=list)
    index: int = 0
    affinity_timeout: int = 0                 # seconds; 0 = no affinity
    clients: dict[str, _Sticky] = field(default_factory=dict)


class RoundRobin(Generic[K]):
    """Round-robin balancer over keys (one per listener in userspace mode)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 shuffle: Callable[[list[Endpoint]], None] = random.shuffle) -> None:
        self._clock = clock
        self._shuffle = shuffle
        self._lock = threading.Lock()
        self._services: dict[K, _State] = {}

    # --- updates (kube-proxy's sync) -------------------------------------

    def set_endpoints(self, key: K, endpoints: Sequence[Endpoint], affinity_timeout: int = 0) -> None:
        """Replace `key`'s endpoints and affinity setting in one step.

        Nothing changes when the endpoint addresses are the same (order
        and conditions aside): the rotation and the sticky clients survive
        resyncs.  A new set is shuffled and the rotation restarts; clients
        whose endpoint left forget it.  Turning affinity off (or changing
        its timeout) drops the sticky records, as a new Service spec would.
        Endpoints are compared by address: a change of conditions only
        (ready → terminating, still eligible) refreshes the values."""
        with self._lock:
            st = self._services.setdefault(key, _State())
            if affinity_timeout != st.affinity_timeout:
                st.affinity_timeout = affinity_timeout
                st.clients.clear()
            fresh = {_addr(e): e for e in endpoints}
            st.clients = {ip: s for ip, s in st.clients.items() if _addr(s.endpoint) in fresh}
            for sticky in st.clients.values():
                sticky.endpoint = fresh[_addr(sticky.endpoint)]
            if fresh.keys() == {_addr(e) for e in st.endpoints}:
                st.endpoints = [fresh[_addr(e)] for e in st.endpoints]
                return
            st.endpoints = list(fresh.values())
            self._shuffle(st.endpoints)
            st.index = 0

    def remove(self, key: K) -> None:
        """Forget `key` (its listener closed)."""
        with self._lock:
            self._services.pop(key, None)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._services)

    def endpoints(self, key: K) -> tuple[Endpoint, ...]:
        """`key`'s endpoints in rotation order (for logs and tests)."""
        with self._lock:
            st = self._services.get(key)
            return tuple(st.endpoints) if st else ()

    def has_endpoints(self, key: K) -> bool:
        with self._lock:
            st = self._services.get(key)
            return bool(st and st.endpoints)

    # --- the hot path (one call per connection) --------------------------

    def next_endpoint(self, key: K, client_ip: str, reset: bool = False) -> Endpoint:
        """The endpoint for a new connection from `client_ip`.

        With affinity, a client seen within the timeout gets its previous
        endpoint again (and the timeout restarts), unless `reset`: the
        caller could not reach that endpoint, so the client moves on to the
        next one in turn and sticks to that instead.  Raises `NoEndpoints`
        when there is nothing to hand out."""
        with self._lock:
            st = self._services.get(key)
            if st is None or not st.endpoints:
                raise NoEndpoints(str(key))
            now = self._clock()
            if st.affinity_timeout and not reset:
                sticky = st.clients.get(client_ip)
                if sticky is not None and now - sticky.last_used < st.affinity_timeout:
                    sticky.last_used = now
                    return sticky.endpoint
            ep = st.endpoints[st.index]
            st.index = (st.index + 1) % len(st.endpoints)
            if st.affinity_timeout:
                st.clients[client_ip] = _Sticky(ep, now)
            return ep

    def expire_affinity(self) -> int:
        """Drop sticky records older than their timeout; returns how many.

        Expired records are already ignored by `next_endpoint`; this only
        keeps the tables from growing with clients that never return
        (upstream's CleanupStaleStickySessions, run after each sync)."""
        with self._lock:
            now = self._clock()
            dropped = 0
            for st in self._services.values():
                stale = [ip for ip, s in st.clients.items() if now - s.last_used >= st.affinity_timeout]
                for ip in stale:
                    del st.clients[ip]
                dropped += len(stale)
            return dropped
