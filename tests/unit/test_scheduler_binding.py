"""The scheduler's binding write: a failed write never leaves a pod assumed.

The scheduler assumes a pod on its node before the binding is written (so
the next decision counts it).  If that write failed with anything but an
API error (a reset connection under load), the assumption used to stay:
the pod was never tried again and no Event said why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kinns.api.errors import ApiError
from kinns.controllers.scheduler import Scheduler

POD: dict[str, Any] = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": {}}


class Queue:
    def __init__(self) -> None:
        self.later: list[tuple[str, float]] = []

    def add_after(self, key: str, delay: float) -> None:
        self.later.append((key, delay))


class Client:
    """Fails the first binding write with `first`, then accepts."""

    def __init__(self, first: BaseException | None) -> None:
        self.first = first
        self.bindings: list[str] = []
        self.events: list[str] = []

    async def post_subresource(self, kind: Any, name: str, namespace: str, sub: str, body: dict[str, Any]) -> None:
        if self.first is not None:
            exc, self.first = self.first, None
            raise exc
        self.bindings.append(body["target"]["name"])

    def emit_event(self, obj: dict[str, Any], reason: str, message: str, **_: Any) -> None:
        self.events.append(reason)


def scheduler(client: Client) -> Scheduler:
    s = Scheduler.__new__(Scheduler)
    s.client = client  # type: ignore[assignment]
    s.queue = Queue()  # type: ignore[assignment]
    s._assumed = {"default/p": "n1"}
    s._delayed_claims = lambda pod: []  # type: ignore[method-assign]
    return s


def test_a_transport_error_forgets_the_assumption_and_retries() -> None:
    client = Client(ConnectionResetError("connection reset by peer"))
    s = scheduler(client)
    asyncio.run(s._bind("default/p", POD, "n1"))
    assert s._assumed == {}
    assert s.queue.later == [("default/p", 0.5)]  # type: ignore[attr-defined]
    assert client.events == []
    s._assumed["default/p"] = "n1"
    asyncio.run(s._bind("default/p", POD, "n1"))
    assert client.bindings == ["n1"] and client.events == ["Scheduled"]


def test_a_conflict_retries_and_a_deleted_pod_does_not() -> None:
    conflict = scheduler(Client(ApiError(409, "Conflict", "pod p is already assigned")))
    asyncio.run(conflict._bind("default/p", POD, "n1"))
    assert conflict._assumed == {} and conflict.queue.later == [("default/p", 0.5)]  # type: ignore[attr-defined]
    gone = scheduler(Client(ApiError(404, "NotFound", 'pods "p" not found')))
    asyncio.run(gone._bind("default/p", POD, "n1"))
    assert gone._assumed == {} and gone.queue.later == []  # type: ignore[attr-defined]


def test_a_written_binding_keeps_the_assumption_until_the_watch_shows_it() -> None:
    s = scheduler(Client(None))
    asyncio.run(s._bind("default/p", POD, "n1"))
    assert s._assumed == {"default/p": "n1"} and s.queue.later == []  # type: ignore[attr-defined]
