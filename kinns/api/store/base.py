"""The storage interface the REST layer depends on.

Objects are addressed by (resource, namespace, name), where resource is the
group-qualified plural (`pods`, `deployments.apps`) and namespace is "" for
cluster-scoped kinds.  The store owns `metadata.resourceVersion`: every write
gets the next value of one cluster-wide revision counter, as etcd does, and
every write becomes a watch event in that same order.

The interface is small on purpose so that an etcd backend can stand beside
the SQLite one: point reads, per-resource lists, conditional writes, and a
watch from a revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Key = tuple[str, str, str]  # (resource, namespace, name)


@dataclass(frozen=True)
class Event:
    """One committed change, as a watcher receives it."""

    revision: int
    type: str            # ADDED | MODIFIED | DELETED
    key: Key
    obj: dict[str, Any]  # the object after the change (before it, for DELETED)
    prev: dict[str, Any] | None = None


class ConflictError(Exception):
    """The expected resourceVersion does not match the stored one."""


class ExistsError(Exception):
    """Create of a key that already exists."""


class NotFoundError(Exception):
    """Update or delete of a key that does not exist."""


class TooOldError(Exception):
    """A watch asked to start before the oldest revision still remembered."""


class Store(Protocol):
    @property
    def revision(self) -> int: ...

    def get(self, key: Key) -> dict[str, Any] | None: ...

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

    async def create(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def update(self, key: Key, obj: dict[str, Any], expected_rv: str | None = None) -> dict[str, Any]: ...

    async def delete(self, key: Key, expected_rv: str | None = None) -> dict[str, Any]: ...

    def watch(self, resource: str, namespace: str | None, since: int) -> "WatcherLike": ...

    async def close(self) -> None: ...


class WatcherLike(Protocol):
    def __aiter__(self) -> "WatcherLike": ...

    async def __anext__(self) -> Event: ...

    async def next(self, timeout: float | None) -> Event | None:
        """The next event, or None when `timeout` passes first (for bookmarks)."""
        ...

    def stop(self) -> None: ...


class ObjectCache:
    """The in-memory copy of every object both stores answer reads from.

    SQLite and etcd keep the same shape, resource -> (namespace, name) ->
    object, filled at start and kept current by their own writes (SQLite)
    or watch (etcd); reads never touch the backend."""

    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]
    _revision: int

    @property
    def revision(self) -> int:
        return self._revision

    def get(self, key: Key) -> dict[str, Any] | None:
        return self._objects.get(key[0], {}).get((key[1], key[2]))

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self._objects.get(resource, {})
        if namespace is None:
            return [*items.values()]
        return [o for (ns, _), o in items.items() if ns == namespace]

    def count(self, resource: str) -> int:
        return len(self._objects.get(resource, {}))
