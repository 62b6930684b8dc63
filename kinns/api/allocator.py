"""Cluster IPs and node ports for Services, handed out as upstream does.

The API server, not a controller, gives a Service its `clusterIP` and its
`nodePort`s, at create time, so `kubectl create svc` answers with the
address filled in.  This module is that bookkeeping: two pools (addresses
of the service CIDR, ports of the NodePort range), rebuilt from the stored
Services at start, and the three moments that change them: create
(`allocate`), update (`update`, type changes) and delete (`release`).

Faithful where a user can tell (pkg/registry/core/service/ipallocator,
portallocator and allocator/bitmap.go in v1.32):
- Dynamic picks are random and come from the upper band of a pool first;
  the lower band (min(max(16, size/16), 256) addresses, min(max(16,
  size/32), 128) ports) is left for explicit requests, so a user asking for
  `.10` rarely collides with a random pick.  Nothing is reserved otherwise:
  `.1` (`kubernetes`) and `.10` (`kube-dns`) are ordinary static requests.
- Explicit requests are honoured or refused with upstream's words
  ("provided IP is already allocated", "the provided IP (...) is not in the
  valid range. The range of valid IPs is ...", and the port equivalents).
- A create or update either fully succeeds or leaves the pools as they were.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from typing import Any, Iterable

from .defaults import NODE_PORT_TYPES, needs_health_check_port, prepare_service_update
from .errors import INVALID, ApiError, FieldError, invalid

Obj = dict[str, Any]


class _Full(Exception):
    """No free value left in a pool."""


class _NotInRange(Exception):
    pass


class _Taken(Exception):
    pass


class _Pool:
    """A set of integers 0..size-1 with upstream's banded random allocation."""

    def __init__(self, size: int, offset: int, rng: random.Random) -> None:
        self.size = size
        self.offset = offset if 0 < offset < size else 0
        self.used: set[int] = set()
        self._rng = rng

    def take(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise _NotInRange()
        if i in self.used:
            raise _Taken()
        self.used.add(i)

    def take_next(self) -> int:
        """A random free value, trying the upper band [offset, size) first."""
        if len(self.used) >= self.size:
            raise _Full()
        for lo, hi in ((self.offset, self.size), (0, self.offset)):
            n = hi - lo
            if n <= 0:
                continue
            start = self._rng.randrange(n)
            for k in range(n):
                i = lo + (start + k) % n
                if i not in self.used:
                    self.used.add(i)
                    return i
        raise _Full()

    def free(self, i: int) -> None:
        self.used.discard(i)


def _band(size: int, lo: int, hi: int, step: int) -> int:
    """Upstream's reserved lower band: min(max(lo, size/step), hi); 0 for tiny pools."""
    if size <= lo:
        return 0
    return max(lo, min(size // step, hi))


class _Txn:
    """Undo log of one create/update: allocations to revert, releases to defer."""

    def __init__(self, owner: "ServiceAllocator") -> None:
        self.owner = owner
        self.ips: list[int] = []
        self.ports: list[int] = []
        self.release_ips: list[int] = []
        self.release_ports: list[int] = []

    def rollback(self) -> None:
        for i in self.ips:
            self.owner._ips.free(i)
        for p in self.ports:
            self.owner._ports.free(p)

    def commit(self) -> None:
        for i in self.release_ips:
            self.owner._ips.free(i)
        for p in self.release_ports:
            self.owner._ports.free(p)


class ServiceAllocator:
    """ClusterIP and NodePort pools of one API server (thread-safe)."""

    def __init__(self, service_cidr: str = "10.96.0.0/12",
                 node_port_range: tuple[int, int] = (30000, 32767),
                 rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(service_cidr, strict=False)
        self.cidr = str(self.network)
        self.family = "IPv6" if self.network.version == 6 else "IPv4"
        total = self.network.num_addresses
        # Neither the network address nor (IPv4) the broadcast address is usable;
        # IPv6 pools are capped as upstream's bitmap is.
        size = total - 2 if self.network.version == 4 else min(total, 65536) - 1
        self._rng = rng or random.Random()
        self._ips = _Pool(max(size, 0), _band(total, 16, 256, 16), self._rng)
        self.port_base, self.port_max = node_port_range
        port_count = self.port_max - self.port_base + 1
        self._ports = _Pool(port_count, _band(port_count, 16, 128, 32), self._rng)
        self._lock = threading.RLock()

    # -------------------------------------------------------------- queries

    def ip_allocated(self, ip: str) -> bool:
        i = self._ip_index(ip)
        return i is not None and i in self._ips.used

    def port_allocated(self, port: int) -> bool:
        return (port - self.port_base) in self._ports.used

    @property
    def ips_in_use(self) -> int:
        return len(self._ips.used)

    @property
    def ports_in_use(self) -> int:
        return len(self._ports.used)

    # ------------------------------------------------------------ lifecycle

    def load(self, services: Iterable[Obj]) -> None:
        """Rebuild both pools from the stored Services (at start-up)."""
        with self._lock:
            for svc in services:
                spec = svc.get("spec") or {}
                for ip in _cluster_ips(spec):
                    i = self._ip_index(ip)
                    if i is not None:
                        self._ips.used.add(i)
                for port in _node_ports(spec):
                    if self.port_base <= port <= self.port_max:
                        self._ports.used.add(port - self.port_base)

    def allocate(self, svc: Obj) -> None:
        """Fill clusterIP(s) and nodePorts of a new Service (after defaults and validation)."""
        with self._lock:
            txn = _Txn(self)
            try:
                spec = svc.setdefault("spec", {})
                if spec.get("type", "ClusterIP") != "ExternalName":
                    self._alloc_cluster_ip(svc, txn)
                if spec.get("type") in NODE_PORT_TYPES:
                    self._alloc_node_ports(svc, set(), txn)
                if needs_health_check_port(spec):
                    self._alloc_health_check(svc, txn)
            except BaseException:
                txn.rollback()
                raise
            txn.commit()

    def update(self, old: Obj, new: Obj) -> None:
        """Carry allocations over an update; allocate/release on type changes."""
        with self._lock:
            prepare_service_update(new, old)
            spec, ospec = new.setdefault("spec", {}), old.get("spec") or {}
            otype, ntype = ospec.get("type", "ClusterIP"), spec.get("type", "ClusterIP")
            txn = _Txn(self)
            try:
                # Cluster IPs: only a change to or from ExternalName moves them.
                if otype == "ExternalName" and ntype != "ExternalName":
                    self._alloc_cluster_ip(new, txn)
                elif otype != "ExternalName" and ntype == "ExternalName":
                    txn.release_ips += [i for i in map(self._ip_index, _cluster_ips(ospec)) if i is not None]
                # Node ports.
                old_ports = set(_node_ports(ospec, health=False))
                if ntype in NODE_PORT_TYPES:
                    self._alloc_node_ports(new, old_ports, txn)
                new_ports = set(_node_ports(spec, health=False))
                txn.release_ports += [p - self.port_base for p in old_ports - new_ports
                                      if self.port_base <= p <= self.port_max]
                # Health check node port of LoadBalancer + Local.
                old_hc = ospec.get("healthCheckNodePort") if needs_health_check_port(ospec) else None
                if needs_health_check_port(spec):
                    if not spec.get("healthCheckNodePort") or spec.get("healthCheckNodePort") != old_hc:
                        self._alloc_health_check(new, txn)
                if old_hc and spec.get("healthCheckNodePort") != old_hc:
                    txn.release_ports.append(int(old_hc) - self.port_base)
            except BaseException:
                txn.rollback()
                raise
            txn.commit()

    def release(self, svc: Obj) -> None:
        """Give back everything a deleted Service held."""
        with self._lock:
            spec = svc.get("spec") or {}
            for ip in _cluster_ips(spec):
                i = self._ip_index(ip)
                if i is not None:
                    self._ips.free(i)
            for port in _node_ports(spec):
                self._ports.free(port - self.port_base)

    # -------------------------------------------------------------- helpers

    def _ip_index(self, ip: Any) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except (ValueError, TypeError):
            return None
        if addr.version != self.network.version or addr not in self.network:
            return None
        i = int(addr) - int(self.network.network_address) - 1
        return i if 0 <= i < self._ips.size else None

    def _alloc_cluster_ip(self, svc: Obj, txn: _Txn) -> None:
        spec = svc["spec"]
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        if ips and ips[0] == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            return
        name = (svc.get("metadata") or {}).get("name", "")
        if ips:
            ip = ips[0]
            i = self._ip_index(ip)
            try:
                if i is None:
                    raise _NotInRange()
                self._ips.take(i)
            except _NotInRange:
                raise self._ip_error(name, ips, f"failed to allocate IP {ip}: the provided IP ({ip}) is not "
                                                f"in the valid range. The range of valid IPs is {self.cidr}") from None
            except _Taken:
                raise self._ip_error(name, ips, f"failed to allocate IP {ip}: provided IP is already allocated") from None
        else:
            try:
                i = self._ips.take_next()
            except _Full:
                raise ApiError(500, "InternalError",
                               "Internal error occurred: failed to allocate a serviceIP: range is full") from None
            ip = str(self.network.network_address + 1 + i)
        txn.ips.append(i)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec["ipFamilies"] = [self.family]
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _ip_error(self, name: str, ips: list[str], detail: str) -> ApiError:
        rendered = "[]string{" + ", ".join(f'"{ip}"' for ip in ips) + "}"
        return invalid("Service", "", name, [FieldError(INVALID, "spec.clusterIPs", detail=f"{rendered}: {detail}")])

    def _take_port(self, name: str, field: str, port: int, txn: _Txn) -> None:
        if not self.port_base <= port <= self.port_max:
            detail = (f"provided port is not in the valid range. The range of valid ports is "
                      f"{self.port_base}-{self.port_max}")
            raise invalid("Service", "", name, [FieldError(INVALID, field, port, detail)])
        try:
            self._ports.take(port - self.port_base)
        except _Taken:
            raise invalid("Service", "", name,
                          [FieldError(INVALID, field, port, "provided port is already allocated")]) from None
        txn.ports.append(port - self.port_base)

    def _next_port(self, txn: _Txn) -> int:
        try:
            i = self._ports.take_next()
        except _Full:
            raise ApiError(500, "InternalError",
                           "Internal error occurred: failed to allocate a nodePort: range is full") from None
        txn.ports.append(i)
        return self.port_base + i

    def _alloc_node_ports(self, svc: Obj, kept: set[int], txn: _Txn) -> None:
        """Requested ports are taken, missing ones picked; ports held before are kept.

        Two ports of one Service with the same `port` (TCP and UDP 53, say)
        share one nodePort, as upstream does.
        """
        spec = svc["spec"]
        name = (svc.get("metadata") or {}).get("name", "")
        allocate_new = spec.get("type") == "NodePort" or spec.get("allocateLoadBalancerNodePorts", True) is not False
        by_port: dict[Any, int] = {}
        taken_here: set[int] = set()
        ports = spec.get("ports") or []
        for idx, p in enumerate(ports):
            if not isinstance(p, dict):
                continue
            field = f"spec.ports[{idx}].nodePort"
            requested = p.get("nodePort") or 0
            if requested:
                if requested not in kept and requested not in taken_here:
                    self._take_port(name, field, requested, txn)
                    taken_here.add(requested)
                by_port.setdefault(p.get("port"), requested)
                continue
            if not allocate_new:
                continue
            shared = by_port.get(p.get("port"))
            if shared is None:
                # A later port with the same number may carry the user's choice.
                for later in ports[idx + 1:]:
                    if isinstance(later, dict) and later.get("port") == p.get("port") and later.get("nodePort"):
                        shared = later["nodePort"]
                        break
            if shared is None:
                shared = self._next_port(txn)
                taken_here.add(shared)
            elif shared not in kept and shared not in taken_here:
                self._take_port(name, field, shared, txn)
                taken_here.add(shared)
            p["nodePort"] = shared
            by_port[p.get("port")] = shared

    def _alloc_health_check(self, svc: Obj, txn: _Txn) -> None:
        spec = svc["spec"]
        name = (svc.get("metadata") or {}).get("name", "")
        requested = spec.get("healthCheckNodePort") or 0
        if requested:
            self._take_port(name, "spec.healthCheckNodePort", requested, txn)
        else:
            spec["healthCheckNodePort"] = self._next_port(txn)


def _cluster_ips(spec: Obj) -> list[str]:
    if spec.get("type") == "ExternalName":
        return []
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if isinstance(ip, str) and ip != "None"]


def _node_ports(spec: Obj, health: bool = True) -> list[int]:
    out = [p["nodePort"] for p in spec.get("ports") or []
           if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]]
    if health and isinstance(spec.get("healthCheckNodePort"), int) and spec["healthCheckNodePort"]:
        out.append(spec["healthCheckNodePort"])
    return out
