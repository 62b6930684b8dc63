"""networking.k8s.io/v1 Ingress and IngressClass in the API server: upstream's
validation messages, the DefaultIngressClass admission (through the real
server in-process), IngressClass defaulting and immutability, and the rows
`kubectl get ingress` / `get ingressclass` print."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from kinns.api import tables, validation
from kinns.api.errors import ApiError
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.client import Client
from kinns.client.transport import InProcessTransport
from tests.ingress_cases import backend, ingress, rule

Obj = dict[str, Any]


def errors(kind: str, obj: Obj) -> list[str]:
    return [str(e) for e in validation.validate(kind, obj)]


def one_path(path: str, path_type: str | None, back: Obj | None = None) -> Obj:
    p: Obj = {"path": path, "backend": back or backend("web")}
    if path_type is not None:
        p["pathType"] = path_type
    return ingress("x", [{"host": "a.com", "http": {"paths": [p]}}])


@pytest.mark.parametrize("path,path_type,want", [
    ("/ok", "Exact", []),
    ("relative", "Prefix", ['spec.rules[0].http.paths[0].path: Invalid value: "relative": must be an absolute path']),
    ("/a//b", "Exact", ["spec.rules[0].http.paths[0].path: Invalid value: \"/a//b\": must not contain '//'"]),
    ("/a/../b", "Prefix", ["spec.rules[0].http.paths[0].path: Invalid value: \"/a/../b\": must not contain '/../'"]),
    ("/a/%2fb", "Prefix", ["spec.rules[0].http.paths[0].path: Invalid value: \"/a/%2fb\": must not contain '%2f'"]),
    ("/a/.", "Exact", ["spec.rules[0].http.paths[0].path: Invalid value: \"/a/.\": cannot end with '/.'"]),
    ("/a//b", "ImplementationSpecific", []),
    ("relative", "ImplementationSpecific",
     ['spec.rules[0].http.paths[0].path: Invalid value: "relative": must be an absolute path']),
    ("/x", None, ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]),
    ("/x", "Regex", ['spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: '
                     '"Exact", "ImplementationSpecific", "Prefix"']),
])
def test_paths_are_validated_for_their_path_type(path: str, path_type: str | None, want: list[str]) -> None:
    assert errors("Ingress", one_path(path, path_type)) == want


def test_hosts_backends_rules_and_the_class_annotation() -> None:
    assert errors("Ingress", ingress("x", [rule("1.2.3.4", [("Prefix", "/", backend("web"))])])) == [
        'spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address']
    wild = errors("Ingress", ingress("x", [rule("foo.*.com", [("Prefix", "/", backend("web"))])]))
    assert len(wild) == 1 and wild[0].startswith(
        'spec.rules[0].host: Invalid value: "foo.*.com": a wildcard DNS-1123 subdomain must start with \'*.\'')
    both = one_path("/", "Prefix", {"service": {"name": "web", "port": {"name": "http", "number": 80}}})
    assert errors("Ingress", both) == [
        'spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set both port name & port number']
    none = one_path("/", "Prefix", {"service": {"name": "web", "port": {}}})
    assert errors("Ingress", none) == [
        "spec.rules[0].http.paths[0].backend: Required value: port name or number is required"]
    empty = ingress("x", [])
    del empty["spec"]["rules"]
    assert errors("Ingress", empty) == ['spec: Invalid value: []networking.IngressRule(nil): '
                                        'either `defaultBackend` or `rules` must be specified']
    mismatch = ingress("x", [rule("a.com", [("Prefix", "/", backend("web"))])], cls="nginx")
    mismatch["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "other"}
    assert errors("Ingress", mismatch) == ['annotations.kubernetes.io/ingress.class: Invalid value: "other": '
                                           'must match `ingressClassName` when both are specified']


def test_ingress_class_controller_and_parameters() -> None:
    def cls(**spec: Any) -> Obj:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c"}, "spec": spec}
    assert errors("IngressClass", cls(controller="k8s.io/ingress-nginx")) == []
    assert errors("IngressClass", cls(controller="nginx")) == [
        'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']
    ns_scoped = cls(controller="a.io/b", parameters={"kind": "P", "name": "p", "scope": "Namespace"})
    assert errors("IngressClass", ns_scoped) == [
        "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]
    assert [str(e) for e in validation.validate_update("IngressClass", cls(controller="a.io/new"),
                                                       cls(controller="a.io/old"))] == [
        'spec.controller: Invalid value: "a.io/new": field is immutable']


def test_kubectl_rows() -> None:
    now = dt.datetime(2024, 1, 1, 0, 5, tzinfo=dt.timezone.utc)
    ing = ingress("web", [rule(h, [("Prefix", "/", backend("web"))]) for h in ("a.com", "", "b.com", "c.com", "d.com")],
                  tls=[{"hosts": ["a.com"], "secretName": "s"}])
    ing["status"] = {"loadBalancer": {"ingress": [{"ip": "172.18.0.200"}]}}
    assert tables.row_cells("Ingress", ing, now) == ["web", "nginx", "a.com,b.com,c.com + 2 more...", "172.18.0.200",
                                                     "80, 443", "5m"]
    bare = ingress("bare", [rule("", [("Prefix", "/", backend("web"))])], cls=None)
    assert tables.row_cells("Ingress", bare, now)[:5] == ["bare", "<none>", "*", "", "80"]
    ic = {"metadata": {"name": "nginx", "creationTimestamp": "2024-01-01T00:00:00Z"},
          "spec": {"controller": "k8s.io/ingress-nginx",
                   "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}
    assert tables.row_cells("IngressClass", ic, now) == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "5m"]


def test_default_ingress_class_admission(tmp_path: Path) -> None:
    async def go() -> None:
        api = ApiServer(SqliteStore(tmp_path / "state.db", durable=False))
        await api.bootstrap()
        client = Client(InProcessTransport(api.dispatch))

        async def create(name: str, **kw: Any) -> Obj:
            obj = ingress(name, [rule("a.com", [("Prefix", "/", backend("web"))])], created="", **kw)
            return await client.create(obj)

        assert "ingressClassName" not in (await create("before", cls=None))["spec"]   # no default class yet
        for name in ("nginx", "other"):
            await client.create({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                 "metadata": {"name": name, "annotations": {
                                     "ingressclass.kubernetes.io/is-default-class": "true"}},
                                 "spec": {"controller": f"example.com/{name}",
                                          "parameters": {"kind": "P", "name": "p"}}})
            await asyncio.sleep(1.01)   # creationTimestamp has a one-second grain
        got = await client.get(("networking.k8s.io/v1", "IngressClass"), "nginx")
        assert got["spec"]["parameters"]["scope"] == "Cluster"                        # SetDefaults_IngressClass
        assert (await create("defaulted", cls=None))["spec"]["ingressClassName"] == "other"   # the newest default
        assert (await create("chosen", cls="nginx"))["spec"]["ingressClassName"] == "nginx"
        legacy = ingress("legacy", [rule("a.com", [("Prefix", "/", backend("web"))])], created="", cls=None)
        legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
        assert "ingressClassName" not in (await client.create(legacy))["spec"]
        with pytest.raises(ApiError) as bad:
            await client.create(ingress("bad", [rule("a.com", [("Exact", "nope", backend("web"))])], created=""))
        assert bad.value.code == 422 and 'must be an absolute path' in bad.value.message
    asyncio.run(go())
