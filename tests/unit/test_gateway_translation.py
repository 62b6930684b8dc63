"""The Gateway API as routes: attachment, hostnames, precedence, statuses, and nginx's text for them.

Pure logic (kinns/ingress/gateway.py, routing.py, nginxconf.py); the e2e
module holds real nginx to the same semantics.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kinns.ingress import gateway, nginxconf, routing
from kinns.ingress.gatewayapi_crds import CONTROLLER_NAME, crds
from tests.unit.test_ingress_routing import make_cert, tls_secret

Obj = dict[str, Any]
GC = {"metadata": {"name": "kinns", "generation": 1}, "spec": {"controllerName": CONTROLLER_NAME}}
SERVICES = {f"default/{n}": {"metadata": {"name": n, "namespace": "default"},
                             "spec": {"ports": [{"port": 80, "targetPort": 9376}]}} for n in ("one", "two")}


def gw(listeners: list[Obj], name: str = "gw") -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "generation": 2, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"gatewayClassName": "kinns", "listeners": listeners}}


HTTP = {"name": "http", "port": 80, "protocol": "HTTP"}


def route(name: str, rules: list[Obj], hosts: list[str] | None = None, parents: list[Obj] | None = None,
          created: str = "2024-01-02T00:00:00Z") -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "generation": 1, "creationTimestamp": created},
            "spec": {"parentRefs": parents or [{"name": "gw"}], "hostnames": hosts or [], "rules": rules}}


def to(*backends: tuple[str, int]) -> list[Obj]:
    return [{"name": n, "port": 80, "weight": w} for n, w in backends]


def translate(routes: list[Obj], gateways: list[Obj] | None = None, secrets: dict[str, Obj] | None = None
              ) -> gateway.Translation:
    return gateway.translate(CONTROLLER_NAME, [GC], gateways or [gw([HTTP])], routes, SERVICES, secrets or {},
                             ["172.18.0.240"])


def cond(status: Obj, type_: str) -> tuple[str, str]:
    c = next(c for c in status["conditions"] if c["type"] == type_)
    return c["status"], c["reason"]


def test_crds_are_structural_with_upstream_columns() -> None:
    from kinns.api.crdvalidation import default_crd, validate_crd
    cols = {c["spec"]["names"]["kind"]: [x["name"] for x in c["spec"]["versions"][0]["additionalPrinterColumns"]]
            for c in crds()}
    assert cols == {"GatewayClass": ["Controller", "Accepted", "Description", "Age"],
                    "Gateway": ["Class", "Address", "Programmed", "Age"], "HTTPRoute": ["Hostnames", "Age"]}
    for c in crds():
        default_crd(c)
        c["status"] = {"storedVersions": ["v1"]}      # what the server's create strategy sets
        assert validate_crd(c) == []


def test_statuses_of_class_gateway_and_route() -> None:
    t = translate([route("r", [{"backendRefs": to(("one", 1))}])])
    assert cond(t.classes["kinns"], "Accepted") == ("True", "Accepted")
    st = t.gateways["default/gw"]
    assert st["addresses"] == [{"type": "IPAddress", "value": "172.18.0.240"}]
    assert cond(st, "Programmed") == ("True", "Programmed")
    assert st["listeners"][0]["attachedRoutes"] == 1
    parent = t.http_routes["default/r"]["parents"][0]
    assert parent["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "default",
                                   "name": "gw"}
    assert cond(parent, "Accepted") == ("True", "Accepted") and cond(parent, "ResolvedRefs") == ("True", "ResolvedRefs")


def test_bad_input_conditions_and_nothing_served() -> None:
    t = translate([route("nogw", [{"backendRefs": to(("one", 1))}], parents=[{"name": "nosuch"}]),
                   route("regex", [{"matches": [{"path": {"type": "RegularExpression", "value": "/a.*"}}],
                                    "backendRefs": to(("one", 1))}]),
                   route("missing", [{"backendRefs": to(("nosuch", 1))}], hosts=["m.example.com"])])
    assert cond(t.http_routes["default/nogw"]["parents"][0], "Accepted") == ("False", "NoMatchingParent")
    assert cond(t.http_routes["default/regex"]["parents"][0], "Accepted") == ("False", "UnsupportedValue")
    missing = t.http_routes["default/missing"]["parents"][0]
    assert cond(missing, "Accepted") == ("True", "Accepted")
    assert cond(missing, "ResolvedRefs") == ("False", "BackendNotFound")
    assert {r.ingress for r in t.routes} == {"default/missing"}
    plan = routing.build(routing.Snapshot([], SERVICES, lambda _k: [], {}, t.routes))
    (srv,) = [s for s in plan.servers if s.name == "m.example.com"]
    assert [loc.status for loc in srv.locations if loc.path == "/"] == [500]    # the spec's answer


def test_invalid_certificate_ref_and_a_good_one() -> None:
    crt, key = make_cert("secure.example.com")
    secrets = {"default/good": tls_secret("good", crt, key),
               "default/bad": {"metadata": {"name": "bad", "namespace": "default"}, "type": "Opaque",
                               "data": {"foo": "YmFy"}}}
    listeners = [{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.example.com",
                  "tls": {"certificateRefs": [{"name": "good"}]}},
                 {"name": "broken", "port": 443, "protocol": "HTTPS", "hostname": "other.example.com",
                  "tls": {"certificateRefs": [{"name": "bad"}]}},
                 {"name": "odd", "port": 8080, "protocol": "HTTP"}]
    t = translate([route("r", [{"backendRefs": to(("one", 1))}])], [gw(listeners)], secrets)
    ls = {x["name"]: x for x in t.gateways["default/gw"]["listeners"]}
    assert cond(ls["https"], "ResolvedRefs") == ("True", "ResolvedRefs")
    assert cond(ls["broken"], "ResolvedRefs") == ("False", "InvalidCertificateRef")
    assert cond(ls["broken"], "Programmed") == ("False", "Invalid")
    assert cond(ls["odd"], "Accepted") == ("False", "PortUnavailable")
    assert (ls["https"]["attachedRoutes"], ls["broken"]["attachedRoutes"]) == (1, 0)
    assert set(t.certificates) == {"secure.example.com"}


@pytest.mark.parametrize("listener,route_hosts,want", [
    ("", [], [""]),
    ("*.example.com", [], ["*.example.com"]),
    ("*.example.com", ["a.example.com", "a.b.example.com", "example.com", "x.other.com"],
     ["a.b.example.com", "a.example.com"]),
    ("a.example.com", ["*.example.com"], ["a.example.com"]),
    ("*.example.com", ["*.b.example.com"], ["*.b.example.com"]),
    ("a.example.com", ["b.example.com"], []),
])
def test_hostname_intersection(listener: str, route_hosts: list[str], want: list[str]) -> None:
    assert gateway.intersect(listener, route_hosts) == want


def test_wildcards_cover_any_number_of_labels() -> None:
    t = translate([route("w", [{"backendRefs": to(("one", 1))}], hosts=["*.gw.example.com"])])
    for host, hit in (("a.gw.example.com", True), ("a.b.gw.example.com", True), ("gw.example.com", False)):
        assert (routing.select([], host, "/", routes=t.routes) is not None) is hit, host


def test_precedence_exact_prefix_method_headers_query_then_age() -> None:
    def m(path: str = "/", type_: str = "PathPrefix", **kw: Any) -> Obj:
        return {"path": {"type": type_, "value": path}, **kw}
    old = route("old", [{"matches": [m("/a")], "backendRefs": to(("one", 1))}], created="2024-01-01T00:00:00Z")
    new = route("new", [
        {"matches": [m("/a")], "backendRefs": to(("two", 1))},                                  # loses to old (age)
        {"matches": [m("/a", "Exact")], "backendRefs": to(("two", 1))},
        {"matches": [m("/a/b", method="POST")], "backendRefs": to(("one", 1))},
        {"matches": [m("/a/b", headers=[{"name": "X-A", "value": "1"}])], "backendRefs": to(("two", 1))},
        {"matches": [m("/a/b", headers=[{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}])],
         "backendRefs": to(("one", 1))},
        {"matches": [m("/a/b", queryParams=[{"name": "q", "value": "1"}])], "backendRefs": to(("two", 1))},
    ])
    rs = translate([new, old]).routes

    def sel(path: str, method: str = "GET", headers: dict[str, str] | None = None,
            query: dict[str, str] | None = None) -> tuple[str, str, str]:
        r = routing.select([], "any.host", path, routes=rs, method=method, headers=headers, query=query)
        assert r is not None and r.split[0].ref is not None
        return r.ingress, r.path_type, r.split[0].ref.name
    assert sel("/a") == ("default/new", "Exact", "two")
    assert sel("/a/x") == ("default/old", "Prefix", "one")
    assert sel("/a/b/c", "POST", {"X-A": "1", "X-B": "2"}, {"q": "1"})[2] == "one"          # method first
    assert sel("/a/b/c", "GET", {"X-A": "1", "X-B": "2"}, {"q": "1"})[2] == "one"           # most headers
    assert sel("/a/b/c", "GET", {"X-A": "1"}, {"q": "1"})[2] == "two"
    assert sel("/a/b/c", "GET", {}, {"q": "1"})[2] == "two"
    assert sel("/a/b/c") == ("default/old", "Prefix", "one")                                # falls back to /a


def build_and_render(routes: list[Obj]) -> str:
    t = translate(routes)
    slices = {f"default/{n}": [{"addressType": "IPv4", "ports": [{"port": 9376}],
                                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]}]
              for n, ip in (("one", "10.244.1.5"), ("two", "10.244.2.5"))}
    plan = routing.build(routing.Snapshot([], SERVICES, lambda k: slices.get(k, []), {}, t.routes, t.certificates))
    return nginxconf.render(plan, nginxconf.Settings(temp_dir="/tmp/kinns-gw-unit"))


def test_rendered_split_guards_redirect_rewrite_and_headers() -> None:
    text = build_and_render([route("r", [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/split"}}], "backendRefs": to(("one", 3), ("two", 1))},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/h"}, "headers": [{"name": "X-Env", "value": "canary"}]}],
         "backendRefs": to(("two", 1))},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/h"}}], "backendRefs": to(("one", 1))},
        {"matches": [{"path": {"type": "Exact", "value": "/old"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
         "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                                                     "replacePrefixMatch": "/v2"}}},
                     {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                         "set": [{"name": "X-Set", "value": "yes"}], "add": [{"name": "X-Add", "value": "more"}],
                         "remove": ["X-Gone"]}}],
         "backendRefs": to(("two", 1))}])])
    assert 'split_clients "$request_id"' in text and '75.00% "default-one-80";' in text and '* "default-two-80";' in text
    assert "error_page 418 = @r0; return 418;" in text and "location @r0 {" in text
    assert 'return 301 "https://$host$request_uri";' in text
    assert 'rewrite "^/api(/.*)$" "/v2$1" break;' in text
    assert 'proxy_set_header X-Set "yes";' in text and 'proxy_set_header X-Gone "";' in text
    assert "proxy_set_header X-Forwarded-For \"$remote_addr\";" in text       # the rest restated


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_rendered_text(tmp_path: Path) -> None:
    crt, key = make_cert("ingress.local")
    text = build_and_render([route("r", [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/split"}, "method": "GET",
                      "queryParams": [{"name": "v", "value": "2"}]}], "backendRefs": to(("one", 1), ("nosuch", 1))},
        {"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "add": [{"name": "X-Add", "value": 'a "quoted" value'}]}}], "backendRefs": to(("one", 1))}],
        hosts=["*.example.com"])])
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    (ssl / routing.DEFAULT_CERT).write_bytes(crt + key)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text.replace("/etc/ingress-controller/ssl", str(ssl)).replace("/tmp/kinns-gw-unit", str(tmp_path)))
    r = subprocess.run(["nginx", "-t", "-q", "-c", str(conf), "-e", "stderr"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
