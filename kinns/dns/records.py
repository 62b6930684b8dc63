"""The DNS server's view of the cluster: slim records and one index per query shape.

CoreDNS's kubernetes plugin does not keep API objects: at informer time it
converts each Service, EndpointSlice and Pod into a stripped-down struct
(plugin/kubernetes/object: `ToService`, `EndpointSliceToEndpoints`,
`ToPod`) and keeps indexes keyed the way queries arrive (`SvcIndex`,
`SvcIndexReverse`, `EpIndex`, `EpIndexReverse`, `PodIndex`).  This module
does the same in Python, with frozen `__slots__` dataclasses and plain
dicts updated per watch event:

    services        (ns, name)            -> Service         A/SRV/CNAME by name
    service_ips     cluster IP            -> {(ns, name)}    PTR of a Service address
    slices          (ns, slice name)      -> EndpointSlice
    slices_of       (ns, service)         -> {slice name}    headless A, endpoint names, SRV
    endpoint_ips    endpoint IP           -> {(ns, slice)}   PTR of an endpoint address
    pods_by_ip      pod IP                -> {(ns, name)}    `pods verified`; pod hostname +
                                                             subdomain behind an endpoint
                                                             (StatefulSet pod names)
    namespaces      names of Namespace objects               NXDOMAIN vs NODATA
    endpoints       (ns, service)         -> [(label, Address, slice)]   built on first use
    endpoint_names  (ns, service)         -> {label: [...]}  headless hostnames, built on first use

The last two join slices, Services (publishNotReadyAddresses) and Pods
(hostname + subdomain), so they are built lazily per Service and dropped
on any change rather than maintained event by event.

An update that does not change the slim record (a Pod's status heartbeat,
a Service's annotations) changes nothing, so the answer cache in front of
this stays valid; any real change bumps `version` (cache generation) and
`modified` (the SOA serial, Unix seconds as CoreDNS's `Modified()`), and
calls the listeners.

Everything here is pure: no sockets, no API; the answering code and its
tests use `Records` directly, the server feeds it from informers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

Obj = Mapping[str, Any]
Key = tuple[str, str]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    port: int        # -1: the Service or slice declares no ports (CoreDNS's sentinel)
    protocol: str


NO_PORTS = (Port("", -1, ""),)


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]
    publish_not_ready: bool = False

    @property
    def headless(self) -> bool:
        return bool(self.cluster_ips) and self.cluster_ips[0] == "None"

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Address:
    ip: str
    hostname: str
    ready: bool
    target_name: str = ""


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str
    ports: tuple[Port, ...]
    addresses: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    ips: tuple[str, ...]
    hostname: str
    subdomain: str


# ------------------------------------------------------------ conversions


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _ports(items: Iterable[Mapping[str, Any]] | None) -> tuple[Port, ...]:
    out = tuple(Port(str(p.get("name") or ""), int(p["port"]) if p.get("port") is not None else -1,
                     str(p.get("protocol") or "TCP")) for p in items or ())
    return out or NO_PORTS


def to_service(obj: Obj) -> Service:
    """The slim Service (CoreDNS object.ToService)."""
    meta, spec = _meta(obj), obj.get("spec") or {}
    ips = tuple(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    return Service(meta.get("namespace", ""), meta.get("name", ""), spec.get("type") or "ClusterIP", ips,
                   spec.get("externalName") or "", _ports(spec.get("ports")),
                   bool(spec.get("publishNotReadyAddresses")))


def to_slice(obj: Obj) -> EndpointSlice | None:
    """The slim EndpointSlice (CoreDNS EndpointSliceToEndpoints); None for FQDN slices or orphans."""
    meta = _meta(obj)
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service or obj.get("addressType") == "FQDN":
        return None
    addrs = []
    for ep in obj.get("endpoints") or ():
        ready = (ep.get("conditions") or {}).get("ready")
        ref = ep.get("targetRef") or {}
        target = ref.get("name") or "" if len(ref.get("name") or "") < 64 else ""
        for ip in ep.get("addresses") or ():
            addrs.append(Address(ip, ep.get("hostname") or "", ready is None or bool(ready), target))
    return EndpointSlice(meta.get("namespace", ""), meta.get("name", ""), service, _ports(obj.get("ports")),
                         tuple(addrs))


def to_pod(obj: Obj) -> Pod:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    ips = tuple(p["ip"] for p in status.get("podIPs") or () if p.get("ip")) or (
        (status["podIP"],) if status.get("podIP") else ())
    if spec.get("hostNetwork"):
        ips = ()      # a host-network pod's IP is the node's: CoreDNS skips them in the pod index
    return Pod(meta.get("namespace", ""), meta.get("name", ""), ips, spec.get("hostname") or "",
               spec.get("subdomain") or "")


def _add(index: dict[Any, set[Any]], key: Any, value: Any) -> None:
    index.setdefault(key, set()).add(value)


def _discard(index: dict[Any, set[Any]], key: Any, value: Any) -> None:
    s = index.get(key)
    if s is not None:
        s.discard(value)
        if not s:
            del index[key]


class Records:
    """The indexes, updated per event (`upsert`/`delete` take API objects of any of the kinds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.services: dict[Key, Service] = {}
        self.service_ips: dict[str, set[Key]] = {}
        self.slices: dict[Key, EndpointSlice] = {}
        self.slices_of: dict[Key, set[str]] = {}
        self.endpoint_ips: dict[str, set[Key]] = {}
        self.pods: dict[Key, Pod] = {}
        self.pods_by_ip: dict[str, set[Key]] = {}
        self.namespaces: set[str] = set()
        self._ns_services: dict[str, int] = {}
        self.version = 0
        self.modified = int(clock())
        self.synced = False
        self.listeners: list[Callable[[], None]] = []
        # Writers (the informer thread) and readers answering a cache miss (packet threads) share it.
        self.lock = threading.RLock()
        self._endpoints: dict[tuple[str, str, bool], list[tuple[str, Address, EndpointSlice]]] = {}
        self._endpoint_names: dict[tuple[str, str, bool], dict[str, list[tuple[str, Address, EndpointSlice]]]] = {}

    # ---------------------------------------------------------------- events

    def upsert(self, obj: Obj, kind: str | None = None) -> bool:
        """Apply an ADDED/MODIFIED object; True when an answer may have changed.

        `kind` is for objects that do not say theirs (items of a List).
        """
        with self.lock:
            return self._upsert(obj, kind or obj.get("kind"))

    def delete(self, obj: Obj, kind: str | None = None) -> bool:
        """Apply a DELETED object; True when an answer may have changed."""
        with self.lock:
            return self._delete(obj, kind or obj.get("kind"))

    def mark_synced(self) -> None:
        """Every informer has listed once: misses are NXDOMAIN from now on, not SERVFAIL."""
        with self.lock:
            if not self.synced:
                self.synced = True
                self._changed()

    def _upsert(self, obj: Obj, kind: Any) -> bool:
        if kind == "Service":
            return self._set_service(to_service(obj))
        if kind == "EndpointSlice":
            sl = to_slice(obj)
            meta = _meta(obj)
            if sl is None:
                return self._drop_slice((meta.get("namespace", ""), meta.get("name", "")))
            return self._set_slice(sl)
        if kind == "Pod":
            return self._set_pod(to_pod(obj))
        if kind == "Namespace":
            name = _meta(obj).get("name", "")
            if name in self.namespaces:
                return False
            self.namespaces.add(name)
            return self._changed()
        raise ValueError(f"records: unexpected kind {kind!r}")

    def _delete(self, obj: Obj, kind: Any) -> bool:
        meta = _meta(obj)
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "Service":
            return self._drop_service(key)
        if kind == "EndpointSlice":
            return self._drop_slice(key)
        if kind == "Pod":
            return self._drop_pod(key)
        if kind == "Namespace":
            if key[1] not in self.namespaces:
                return False
            self.namespaces.discard(key[1])
            return self._changed()
        raise ValueError(f"records: unexpected kind {kind!r}")

    def replace(self, objs: Iterable[Obj]) -> None:
        """Make the records equal this set of objects (the fixture source, tests)."""
        objs = list(objs)
        with self.lock:
            want = {(o.get("kind"), _meta(o).get("namespace", ""), _meta(o).get("name", "")) for o in objs}
            for kind, have in (("Service", self.services), ("EndpointSlice", self.slices), ("Pod", self.pods)):
                for ns, name in [k for k in have if (kind, *k) not in want]:
                    self._delete({"metadata": {"namespace": ns, "name": name}}, kind)
            for ns in [n for n in self.namespaces if ("Namespace", "", n) not in want]:
                self._delete({"metadata": {"name": ns}}, "Namespace")
            for obj in objs:
                self._upsert(obj, obj.get("kind"))

    def _changed(self) -> bool:
        self._endpoints.clear()
        self._endpoint_names.clear()
        self.version += 1
        self.modified = int(self.clock())
        for fn in self.listeners:
            fn()
        return True

    # -- services

    def _set_service(self, svc: Service) -> bool:
        old = self.services.get(svc.key)
        if old == svc:
            return False
        if old is not None:
            self._unindex_service(old)
        self.services[svc.key] = svc
        self._ns_services[svc.namespace] = self._ns_services.get(svc.namespace, 0) + 1
        for ip in svc.cluster_ips:
            if ip and ip != "None":
                _add(self.service_ips, ip, svc.key)
        return self._changed()

    def _unindex_service(self, svc: Service) -> None:
        for ip in svc.cluster_ips:
            _discard(self.service_ips, ip, svc.key)
        left = self._ns_services.get(svc.namespace, 0) - 1
        if left > 0:
            self._ns_services[svc.namespace] = left
        else:
            self._ns_services.pop(svc.namespace, None)

    def _drop_service(self, key: Key) -> bool:
        old = self.services.pop(key, None)
        if old is None:
            return False
        self._unindex_service(old)
        return self._changed()

    # -- endpoint slices

    def _set_slice(self, sl: EndpointSlice) -> bool:
        key = (sl.namespace, sl.name)
        old = self.slices.get(key)
        if old == sl:
            return False
        if old is not None:
            self._unindex_slice(key, old)
        self.slices[key] = sl
        _add(self.slices_of, (sl.namespace, sl.service), sl.name)
        for a in sl.addresses:
            _add(self.endpoint_ips, a.ip, key)
        return self._changed()

    def _unindex_slice(self, key: Key, sl: EndpointSlice) -> None:
        _discard(self.slices_of, (sl.namespace, sl.service), sl.name)
        for a in sl.addresses:
            _discard(self.endpoint_ips, a.ip, key)

    def _drop_slice(self, key: Key) -> bool:
        old = self.slices.pop(key, None)
        if old is None:
            return False
        self._unindex_slice(key, old)
        return self._changed()

    # -- pods

    def _set_pod(self, pod: Pod) -> bool:
        key = (pod.namespace, pod.name)
        old = self.pods.get(key)
        if old == pod:
            return False
        if old is not None:
            self._unindex_pod(key, old)
        self.pods[key] = pod
        for ip in pod.ips:
            _add(self.pods_by_ip, ip, key)
        return self._changed()

    def _unindex_pod(self, key: Key, pod: Pod) -> None:
        for ip in pod.ips:
            _discard(self.pods_by_ip, ip, key)

    def _drop_pod(self, key: Key) -> bool:
        old = self.pods.pop(key, None)
        if old is None:
            return False
        self._unindex_pod(key, old)
        return self._changed()

    # ---------------------------------------------------------------- reads

    def namespace_exists(self, ns: str) -> bool:
        """A Namespace object is known (or, failing a Namespace watch, a Service lives there)."""
        return ns in self.namespaces or ns in self._ns_services

    def service(self, ns: str, name: str) -> Service | None:
        return self.services.get((ns, name))

    def service_slices(self, ns: str, name: str) -> list[EndpointSlice]:
        """The Service's slices in a stable order (by slice name)."""
        names = self.slices_of.get((ns, name))
        if not names:
            return []
        return [self.slices[(ns, n)] for n in sorted(names)]

    def published(self, svc: Service, sl: EndpointSlice) -> Iterator[Address]:
        """The addresses DNS publishes: ready ones, or all with publishNotReadyAddresses."""
        for a in sl.addresses:
            if a.ready or svc.publish_not_ready:
                yield a

    def endpoint_hostname(self, namespace: str, service: str, a: Address, endpoint_pod_names: bool = False) -> str:
        """An endpoint's DNS label (CoreDNS endpointHostname).

        The slice's `hostname` first; then a pod at that IP whose
        `hostname` + `subdomain` name this Service (what upstream's
        EndpointSlice controller copies into `hostname`); then, with
        `endpoint_pod_names`, the pod's name; else the dashed IP.
        """
        if a.hostname:
            return a.hostname
        for key in self.pods_by_ip.get(a.ip, ()):
            pod = self.pods[key]
            if pod.namespace == namespace and pod.hostname and pod.subdomain.lower() == service.lower():
                return pod.hostname
        if endpoint_pod_names and a.target_name:
            return a.target_name
        if "." in a.ip:
            return a.ip.replace(".", "-")
        if ":" in a.ip:
            h = a.ip.replace(":", "-")
            return h + "0" if h.endswith("-") else h
        return ""

    def endpoints(self, svc: Service, endpoint_pod_names: bool = False) -> list[tuple[str, Address, EndpointSlice]]:
        """The Service's published endpoints with their DNS labels, in answer order (call under `lock`)."""
        key = (svc.namespace, svc.name, endpoint_pod_names)
        got = self._endpoints.get(key)
        if got is None:
            got = [(self.endpoint_hostname(svc.namespace, svc.name, a, endpoint_pod_names), a, sl)
                   for sl in self.service_slices(svc.namespace, svc.name) for a in self.published(svc, sl)]
            self._endpoints[key] = got
        return got

    def endpoints_named(self, svc: Service, label: str,
                        endpoint_pod_names: bool = False) -> list[tuple[str, Address, EndpointSlice]]:
        """The endpoints whose DNS label is `label` (case-insensitive; call under `lock`)."""
        key = (svc.namespace, svc.name, endpoint_pod_names)
        idx = self._endpoint_names.get(key)
        if idx is None:
            idx = {}
            for e in self.endpoints(svc, endpoint_pod_names):
                idx.setdefault(e[0].lower(), []).append(e)
            self._endpoint_names[key] = idx
        return idx.get(label.lower(), [])

    def pods_at(self, ip: str) -> list[Pod]:
        return [self.pods[k] for k in sorted(self.pods_by_ip.get(ip, ()))]

    def services_at(self, ip: str) -> list[Service]:
        return [self.services[k] for k in sorted(self.service_ips.get(ip, ()))]

    def slices_at(self, ip: str) -> list[EndpointSlice]:
        return [self.slices[k] for k in sorted(self.endpoint_ips.get(ip, ()))]
