"""What every namespace gets for its pods' identities: a `default` ServiceAccount and the cluster CA.

Two kube-controller-manager controllers, one reconcile per namespace each:

- `ServiceAccountsController` (upstream's serviceaccounts-controller):
  an active namespace has a ServiceAccount named `default`; it is created
  when the namespace appears and again if someone deletes it.
- `RootCACertPublisher` (upstream's root-ca-cert-publisher): an active
  namespace has the ConfigMap `kube-root-ca.crt` whose `ca.crt` is the
  cluster CA, which the `kube-api-access-*` volume of every pod projects
  next to the token so in-cluster clients can verify the API server;
  edits to it are put back.

Terminating namespaces are left alone (the namespace controller is
emptying them).  Both run on the shared informers of the controller
manager, unfiltered, so they add no watch of their own (the garbage
collector already watches every ConfigMap and ServiceAccount; a second,
name-filtered watch would cost the API server a wake-up per ConfigMap
write); creates that race with another writer just meet 409 and stop.
"""

from __future__ import annotations

import logging

from ..api.errors import ApiError
from ..client.client import Client, Obj
from ..client.informer import InformerFactory
from .base import Controller

log = logging.getLogger(__name__)

DEFAULT_SA = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def _active(ns: Obj | None) -> bool:
    return ns is not None and not (ns.get("metadata") or {}).get("deletionTimestamp") \
        and (ns.get("status") or {}).get("phase") != "Terminating"


def _namespace_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


class ServiceAccountsController(Controller):
    name = "serviceaccounts-controller"
    workers = 2

    def setup(self) -> None:
        self.namespaces = self.factory.informer("v1", "Namespace")
        self.namespaces.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n))
        self.accounts = self.factory.informer("v1", "ServiceAccount")
        self.accounts.add_handlers(on_delete=self._account_gone)

    def _account_gone(self, sa: Obj) -> None:
        if (sa.get("metadata") or {}).get("name") == DEFAULT_SA:
            self.enqueue(_namespace_of(sa))

    async def reconcile(self, key: str) -> float | None:
        if not _active(self.namespaces.get(key)) or self.accounts.get(f"{key}/{DEFAULT_SA}") is not None:
            return None
        try:
            await self.client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                      "metadata": {"name": DEFAULT_SA, "namespace": key}})
        except ApiError as exc:
            if exc.code not in (403, 404, 409):    # gone or terminating meanwhile, or already there
                raise
        return None


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *, ca_pem: str,
                 workers: int | None = None) -> None:
        super().__init__(client, factory, workers=workers)
        self.ca_pem = ca_pem

    def setup(self) -> None:
        self.namespaces = self.factory.informer("v1", "Namespace")
        self.namespaces.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n))
        self.configmaps = self.factory.informer("v1", "ConfigMap")
        self.configmaps.add_handlers(on_update=lambda o, n: self._configmap_changed(n),
                                     on_delete=self._configmap_changed)

    def _configmap_changed(self, cm: Obj) -> None:
        if (cm.get("metadata") or {}).get("name") == ROOT_CA_CONFIGMAP:
            self.enqueue(_namespace_of(cm))

    def desired(self, namespace: str) -> Obj:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                             "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {"ca.crt": self.ca_pem}}

    async def reconcile(self, key: str) -> float | None:
        if not _active(self.namespaces.get(key)):
            return None
        cm = self.configmaps.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        try:
            if cm is None:
                await self.client.create(self.desired(key))
            elif (cm.get("data") or {}) != {"ca.crt": self.ca_pem} or \
                    (cm["metadata"].get("annotations") or {}).get(DESCRIPTION_ANNOTATION) != DESCRIPTION:
                new = dict(cm, data={"ca.crt": self.ca_pem})
                new["metadata"] = dict(cm["metadata"], annotations={**(cm["metadata"].get("annotations") or {}),
                                                                    DESCRIPTION_ANNOTATION: DESCRIPTION})
                new.pop("binaryData", None)
                await self.client.update(new)
        except ApiError as exc:
            if exc.code not in (403, 404, 409):
                raise
        return None
