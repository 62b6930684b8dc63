"""The transport-neutral request/response pair of the API server.

`ApiServer.dispatch(Request) -> Response` is the seam between the REST logic
and the wire.  The HTTPS front end (aiohttp) builds a `Request` from the
socket; the in-process client transport builds one directly, so components
running inside the daemon skip TLS and sockets entirely but still go through
exactly the same validation, admission and storage code as kubectl does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator


@dataclass
class Request:
    method: str                      # GET, POST, PUT, PATCH, DELETE
    path: str                        # /api/v1/namespaces/default/pods/web
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)   # lower-case names
    body: bytes = b""
    # In-process callers may pass an already-decoded body and skip JSON.
    obj: Any = None
    # Who sent it (a kinns.api.user.UserInfo), set by the HTTPS front end's
    # authentication.  None means an in-process caller inside the daemon,
    # which is trusted as the control plane's own components are.
    user: Any = None

    def param(self, name: str, default: str = "") -> str:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    # A JSON-able object (the usual case), or raw bytes with content_type.
    obj: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    # For watch: an async iterator of event dicts {"type":..., "object":...};
    # the front end streams them as JSON lines.
    stream: AsyncIterator[dict[str, Any]] | None = None
    # For raw streams (kubectl logs -f): bytes written as they come.
    raw_stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
