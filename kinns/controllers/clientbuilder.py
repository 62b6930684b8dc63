"""Which identity each controller acts as (upstream's controller-manager clientbuilder).

kube-controller-manager reads and watches with its own credentials (one
shared informer factory; `system:kube-controller-manager` may list and
watch everything) but, with `--use-service-account-credentials` (kubeadm
sets it), every controller *writes* as its own ServiceAccount in
kube-system, `system:serviceaccount:kube-system:<controller>`, bound by the
bootstrap policy to `system:controller:<controller>` and nothing more.  A
bug in one controller then cannot do what another's role allows, and the
audit trail says who did what.

- `SimpleClientBuilder`: every controller shares the manager's identity
  (its user agent says which controller is speaking).
- `ServiceAccountClientBuilder`: creates the ServiceAccount if missing,
  asks the TokenRequest API for a one-hour token (the manager's role allows
  `create serviceaccounts/token`), and talks HTTPS with that bearer token
  and the cluster CA only, renewing the token at 80% of its life, as
  upstream's DynamicControllerClientBuilder does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import time
from typing import Protocol

from ..api.errors import ApiError
from ..client.client import Client
from ..client.transport import HttpTransport

log = logging.getLogger(__name__)

SA_NAMESPACE = "kube-system"
TOKEN_SECONDS = 3600
LEEWAY = 0.2          # renew when 20% of the lifetime is left
RETRY_SECONDS = 10.0  # after a failed renewal


class ClientBuilder(Protocol):
    """Gives each named controller the client it should act through."""

    async def client(self, name: str) -> Client: ...

    async def close(self) -> None: ...


class SimpleClientBuilder:
    """All controllers act as the manager itself, over the manager's transport."""

    def __init__(self, root: Client) -> None:
        self.root = root

    async def client(self, name: str) -> Client:
        return Client(self.root.transport, registry=self.root.registry, user_agent=f"{self.root.user_agent}/{name}")

    async def close(self) -> None:
        return None   # the transport is the root client's; its owner closes it


class ServiceAccountClientBuilder:
    """One ServiceAccount token (kept fresh) per controller, over HTTPS."""

    def __init__(self, root: Client, server: str, ca: ssl.SSLContext, *, namespace: str = SA_NAMESPACE,
                 expiration_seconds: int = TOKEN_SECONDS) -> None:
        self.root = root
        self.server = server
        self.ca = ca          # trusts the cluster CA, presents no client certificate
        self.namespace = namespace
        self.expiration_seconds = expiration_seconds
        self._clients: dict[str, Client] = {}
        self._refreshers: list[asyncio.Task[None]] = []

    async def client(self, name: str) -> Client:
        if name in self._clients:
            return self._clients[name]
        await self._ensure_service_account(name)
        token, lifetime = await self._token(name)
        transport = HttpTransport(self.server, ssl_context=self.ca, token=token)
        user = f"system:serviceaccount:{self.namespace}:{name}"
        c = Client(transport, registry=self.root.registry, user_agent=f"{self.root.user_agent}/{user}")
        self._clients[name] = c
        self._refreshers.append(asyncio.create_task(self._keep_fresh(name, transport, lifetime),
                                                    name=f"token-{name}"))
        return c

    async def _ensure_service_account(self, name: str) -> None:
        try:
            await self.root.get(("v1", "ServiceAccount"), name, self.namespace)
            return
        except ApiError as exc:
            if exc.code != 404:
                raise
        try:
            await self.root.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                    "metadata": {"name": name, "namespace": self.namespace}})
        except ApiError as exc:
            if exc.code != 409:
                raise

    async def _token(self, name: str) -> tuple[str, float]:
        """A fresh token and its lifetime in seconds."""
        answer = await self.root.post_subresource(
            ("v1", "ServiceAccount"), name, self.namespace, "token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": self.expiration_seconds}})
        status = answer.get("status") or {}
        lifetime = float(self.expiration_seconds)
        expires = status.get("expirationTimestamp")
        if expires:
            when = dt.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
            lifetime = max(1.0, when.timestamp() - time.time())
        return str(status["token"]), lifetime

    async def _keep_fresh(self, name: str, transport: HttpTransport, lifetime: float) -> None:
        wait = lifetime * (1 - LEEWAY)
        while True:
            await asyncio.sleep(wait)
            try:
                transport.token, lifetime = await self._token(name)
                wait = lifetime * (1 - LEEWAY)
            except Exception as exc:  # noqa: BLE001 - the old token is still valid for a while
                log.error("failed to refresh the token of %s/%s: %s", self.namespace, name, exc)
                wait = RETRY_SECONDS

    async def close(self) -> None:
        for t in self._refreshers:
            t.cancel()
        await asyncio.gather(*self._refreshers, return_exceptions=True)
        self._refreshers = []
        for c in self._clients.values():
            await c.close()
        self._clients = {}
