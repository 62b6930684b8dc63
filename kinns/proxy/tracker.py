"""Which Services changed: the change tracker between informers and the sync loop.

As upstream's ServiceChangeTracker/EndpointsChangeTracker, handlers do no
work: a Service or EndpointSlice event only marks its Service dirty.  One
`drain()` per sync recomputes the ServicePorts of dirty Services from the
informer caches and compares them with what was last synced, by value,
so a Service that was touched but ends up equal is not "changed".  The
result drives partial syncs (only changed Services' chains are rewritten)
and the conntrack clean-up of UDP endpoints that went away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .model import ServicePort, ServicePortName, service_ports

Obj = dict[str, Any]
SVC_LABEL = "kubernetes.io/service-name"


def slice_service(sl: Obj) -> tuple[str, str] | None:
    name = ((sl.get("metadata") or {}).get("labels") or {}).get(SVC_LABEL)
    return (sl["metadata"].get("namespace", "default"), name) if name else None


@dataclass
class Changes:
    """One drain: the full new table, the names that changed, and each change's before/after."""

    current: dict[ServicePortName, ServicePort]
    changed: frozenset[ServicePortName]
    pairs: list[tuple[ServicePort | None, ServicePort | None]] = field(default_factory=list)


class ChangeTracker:
    def __init__(self, get_service: Callable[[str, str], Obj | None],
                 get_slices: Callable[[str, str], Iterable[Obj]], *, excluded_cidrs: Iterable[str] = ()) -> None:
        self._get_service = get_service
        self._get_slices = get_slices
        self.excluded = tuple(excluded_cidrs)
        self.dirty: set[tuple[str, str]] = set()
        self.current: dict[ServicePortName, ServicePort] = {}
        self.service_changes = 0
        self.endpoint_changes = 0

    def on_service(self, svc: Obj) -> None:
        self.service_changes += 1
        self.dirty.add((svc["metadata"].get("namespace", "default"), svc["metadata"]["name"]))

    def on_slice(self, sl: Obj) -> None:
        key = slice_service(sl)
        if key:
            self.endpoint_changes += 1
            self.dirty.add(key)

    def mark_all(self, keys: Iterable[tuple[str, str]]) -> None:
        self.dirty.update(keys)

    @property
    def pending(self) -> bool:
        return bool(self.dirty)

    def drain(self) -> Changes:
        """Recompute dirty Services; return the new table and what changed."""
        dirty, self.dirty = self.dirty, set()
        current = dict(self.current)
        changed: set[ServicePortName] = set()
        pairs: list[tuple[ServicePort | None, ServicePort | None]] = []
        for ns, name in dirty:
            old = {n: sp for n, sp in current.items() if n.namespace == ns and n.name == name}
            svc = self._get_service(ns, name)
            new = {sp.name: sp for sp in service_ports(svc, self._get_slices(ns, name),
                                                       excluded_cidrs=self.excluded)} if svc else {}
            for n in old.keys() | new.keys():
                a, b = old.get(n), new.get(n)
                if a != b:
                    changed.add(n)
                    pairs.append((a, b))
                    if b is None:
                        del current[n]
                    else:
                        current[n] = b
        self.current = current
        return Changes(current, frozenset(changed), pairs)
