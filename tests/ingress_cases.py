"""The Kubernetes docs' Ingress matching table (concepts/services-networking/ingress,
"Examples"), as data shared by the unit tests (the routing oracle) and the
integration tests (real nginx answering the same requests).

Each case: the paths of one Ingress as (pathType, path), the request path,
and the path expected to answer (None: no path matches, the default backend).
"""

from __future__ import annotations

from typing import Any

Case = tuple[str, list[tuple[str, str]], str, "str | None"]

DOCS_TABLE: list[Case] = [
    ("prefix-root", [("Prefix", "/")], "/any/thing", "/"),
    ("exact-same", [("Exact", "/foo")], "/foo", "/foo"),
    ("exact-other", [("Exact", "/foo")], "/bar", None),
    ("exact-trailing-request", [("Exact", "/foo")], "/foo/", None),
    ("exact-trailing-path", [("Exact", "/foo/")], "/foo", None),
    ("prefix-foo", [("Prefix", "/foo")], "/foo", "/foo"),
    ("prefix-foo-slash-req", [("Prefix", "/foo")], "/foo/", "/foo"),
    ("prefix-foo-slash", [("Prefix", "/foo/")], "/foo", "/foo/"),
    ("prefix-foo-slash-both", [("Prefix", "/foo/")], "/foo/", "/foo/"),
    ("prefix-element", [("Prefix", "/aaa/bb")], "/aaa/bbb", None),
    ("prefix-same", [("Prefix", "/aaa/bbb")], "/aaa/bbb", "/aaa/bbb"),
    ("prefix-ignores-trailing", [("Prefix", "/aaa/bbb/")], "/aaa/bbb", "/aaa/bbb/"),
    ("prefix-matches-trailing", [("Prefix", "/aaa/bbb")], "/aaa/bbb/", "/aaa/bbb"),
    ("prefix-subpath", [("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", "/aaa/bbb"),
    ("prefix-not-string", [("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
    ("longest-aaa", [("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", "/aaa"),
    ("longest-bbb", [("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/aaa/bbb", "/aaa/bbb"),
    ("longest-root", [("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/ccc", "/"),
    ("default-backend", [("Prefix", "/aaa")], "/ccc", None),
    ("exact-over-prefix", [("Prefix", "/foo"), ("Exact", "/foo")], "/foo", "/foo"),
]

# (rule host, request host, matches?) from the docs' hostname wildcard table.
HOST_TABLE: list[tuple[str, str, bool]] = [
    ("*.foo.com", "bar.foo.com", True),
    ("*.foo.com", "baz.bar.foo.com", False),
    ("*.foo.com", "foo.com", False),
    ("foo.bar.com", "foo.bar.com", True),
    ("foo.bar.com", "FOO.bar.com", True),
    ("foo.bar.com", "foo.bar.com:80", True),
    ("foo.bar.com", "bar.bar.com", False),
]


def backend(service: str, port: int | str = 80) -> dict[str, Any]:
    key = "name" if isinstance(port, str) else "number"
    return {"service": {"name": service, "port": {key: port}}}


def ingress(name: str, rules: list[dict[str, Any]], *, ns: str = "default", created: str = "2024-01-01T00:00:00Z",
            default: dict[str, Any] | None = None, tls: list[dict[str, Any]] | None = None,
            cls: str | None = "nginx") -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": rules}
    if cls is not None:
        spec["ingressClassName"] = cls
    if default is not None:
        spec["defaultBackend"] = default
    if tls is not None:
        spec["tls"] = tls
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:   # as the API server would have stamped it (unit tests); "" for objects to apply
        meta.update(creationTimestamp=created, uid=f"uid-{name}")
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def rule(host: str, paths: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"http": {"paths": [{"pathType": t, "path": p, "backend": b} for t, p, b in paths]}}
    if host:
        out["host"] = host
    return out


def service_name(case: str, index: int) -> str:
    """The Service that answers path `index` of a docs-table case."""
    return f"{case}-{index}"[-63:]


def case_ingresses(default_service: str = "") -> list[dict[str, Any]]:
    """One Ingress per docs-table case, each on host `<case>.example.com`."""
    out = []
    for case, paths, _req, _want in DOCS_TABLE:
        rules = [rule(f"{case}.example.com", [(t, p, backend(service_name(case, i))) for i, (t, p) in enumerate(paths)])]
        out.append(ingress(case, rules))
    return out
