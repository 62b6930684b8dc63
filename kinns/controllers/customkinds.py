"""The custom kinds a cluster serves right now, for controllers that handle every kind.

Upstream's garbage collector and namespace controller learn which resources
exist from discovery, re-read as it changes, so objects of a freshly
created CRD are collected and a namespace's custom resources deleted with
it.  kinns controllers learn the same from the CustomResourceDefinitions
themselves, through the shared informer: each served CRD contributes its
preferred version's `ResourceType` (crdkind.py, the same function the API
server serves from).  On every change the clients' registries are widened
so `(apiVersion, kind)` lookups and informers work for custom kinds, and
listeners are told.
"""

from __future__ import annotations

import logging
from typing import Callable

from ..api.crdkind import CRD_KIND, GROUP, extended_registry, is_served, preferred_type
from ..api.resources import ResourceType
from ..client.client import Client, Obj
from ..client.informer import InformerFactory

log = logging.getLogger(__name__)


class CustomKinds:
    """CRD-defined kinds, kept current from a CRD informer."""

    def __init__(self, factory: InformerFactory, *clients: Client) -> None:
        self.clients = [factory.client, *clients]
        self.types: list[ResourceType] = []
        self._listeners: list[Callable[[], None]] = []
        self.crds = factory.informer(f"{GROUP}/v1", CRD_KIND)
        self.crds.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                               on_delete=self._changed)

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _changed(self, _: Obj) -> None:
        crds = self.crds.list()
        registry = extended_registry(crds)
        for c in self.clients:
            c.registry = registry
        types = [preferred_type(crd) for crd in crds if is_served(crd)]
        new = [t for t in types if t is not None]
        if [(t.api_version, t.kind) for t in new] == [(t.api_version, t.kind) for t in self.types]:
            self.types = new
            return
        self.types = new
        log.debug("custom kinds: %s", ", ".join(f"{t.kind}.{t.group}" for t in new) or "none")
        for cb in self._listeners:
            cb()
