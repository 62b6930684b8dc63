"""Starts the control-plane controllers inside the cluster daemon.

Each controller talks to the API only through the client library, here over
the in-process transport (no sockets), exactly as it would over HTTPS.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from ..api.server import ApiServer
from ..cluster.config import ClusterConfig


async def start_controllers(api: ApiServer, cfg: ClusterConfig) -> Callable[[], Awaitable[None]]:
    async def stop() -> None:
        return None

    return stop
