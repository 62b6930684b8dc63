"""Ingress routing as the spec says: the docs' path and host tables, precedence,
default backends, conflicts, backends resolved to endpoints, TLS Secrets.

`select` is the oracle (one request); `build` is the plan nginx is rendered
from.  Both are checked here against the docs; tests/integration holds real
nginx to `select`.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kinns.ingress import certs, routing
from kinns.ingress.routing import DEFAULT_CERT, Snapshot, build, host_matches, is_ours, select
from tests.ingress_cases import DOCS_TABLE, HOST_TABLE, backend, ingress, rule

Obj = dict[str, Any]


@pytest.mark.parametrize("case,paths,request_path,want", DOCS_TABLE, ids=[c[0] for c in DOCS_TABLE])
def test_docs_table(case: str, paths: list[tuple[str, str]], request_path: str, want: str | None) -> None:
    ing = ingress(case, [rule("", [(t, p, backend(f"s{i}")) for i, (t, p) in enumerate(paths)])])
    got = select([ing], "any.example.com", request_path)
    if want is None:
        assert got is None
    else:
        assert got is not None and got.path == want
        if case == "exact-over-prefix":
            assert got.path_type == "Exact"


@pytest.mark.parametrize("pattern,host,want", HOST_TABLE)
def test_docs_host_table(pattern: str, host: str, want: bool) -> None:
    assert host_matches(pattern, host) is want
    ing = ingress("h", [rule(pattern, [("Prefix", "/", backend("web"))])])
    assert (select([ing], host, "/") is not None) is want


def test_exact_host_beats_wildcard_and_hostless_rules_take_the_rest() -> None:
    ing = ingress("h", [rule("*.foo.com", [("Prefix", "/", backend("wild"))]),
                        rule("www.foo.com", [("Prefix", "/", backend("www"))]),
                        rule("", [("Prefix", "/", backend("any"))])])
    names = {h: select([ing], h, "/x").backend.name for h in ("www.foo.com", "a.foo.com", "foo.com")}  # type: ignore[union-attr]
    assert names == {"www.foo.com": "www", "a.foo.com": "wild", "foo.com": "any"}


def test_implementation_specific_is_prefix() -> None:
    ing = ingress("i", [rule("", [("ImplementationSpecific", "/api", backend("api"))])])
    assert select([ing], "h", "/api/v1") is not None
    assert select([ing], "h", "/apiv1") is None


def test_default_backend_of_the_host_then_the_oldest() -> None:
    old = ingress("old", [rule("a.com", [("Prefix", "/x", backend("x"))])], default=backend("old-default"),
                  created="2024-01-01T00:00:00Z")
    new = ingress("new", [rule("b.com", [("Prefix", "/y", backend("y"))])], default=backend("b-default"),
                  created="2024-02-01T00:00:00Z")
    got = {h: select([new, old], h, "/nothing") for h in ("a.com", "b.com", "c.com")}
    assert {h: r.backend.name for h, r in got.items() if r and r.backend} == {
        "a.com": "old-default", "b.com": "b-default", "c.com": "old-default"}


def test_oldest_ingress_wins_a_conflict_and_the_other_gets_an_event() -> None:
    first = ingress("first", [rule("a.com", [("Prefix", "/api", backend("one"))])], created="2024-01-01T00:00:00Z")
    second = ingress("second", [rule("a.com", [("Prefix", "/api/", backend("two")),
                                               ("Prefix", "/other", backend("two"))])],
                     created="2024-01-02T00:00:00Z")
    assert select([second, first], "a.com", "/api/x").backend.name == "one"  # type: ignore[union-attr]
    plan = build(snapshot([second, first], services={"one": [80], "two": [80]}))
    conflicts = [e for e in plan.events if e.reason == "Conflict"]
    assert [(e.ingress, e.type) for e in conflicts] == [("default/second", "Warning")]
    assert "already defined in ingress default/first" in conflicts[0].message
    locs = {loc.path: loc.route.ingress for loc in server(plan, "a.com").locations if loc.route}
    assert locs["/api/"] == "default/first" and locs["/other/"] == "default/second"


# ---------------------------------------------------------------- the plan

def svc(name: str, ports: list[int | tuple[str, int]], ns: str = "default", kind: str = "ClusterIP") -> Obj:
    specs = [{"name": p[0], "port": p[1], "protocol": "TCP"} if isinstance(p, tuple)
             else {"port": p, "protocol": "TCP"} for p in ports]
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"type": kind, "ports": specs}}


def eps(name: str, port_name: str, port: int, ips: list[str], ready: bool = True, ns: str = "default") -> Obj:
    return {"metadata": {"name": f"{name}-abc", "namespace": ns, "labels": {routing.SERVICE_NAME_LABEL: name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def snapshot(ings: list[Obj], services: dict[str, list[Any]] | None = None,
             slices: list[Obj] | None = None, secrets: dict[str, Obj] | None = None) -> Snapshot:
    svcs = {f"default/{n}": svc(n, p) for n, p in (services or {}).items()}
    by_svc: dict[str, list[Obj]] = {}
    for s in slices or []:
        by_svc.setdefault(f"{s['metadata']['namespace']}/{s['metadata']['labels'][routing.SERVICE_NAME_LABEL]}",
                          []).append(s)
    return Snapshot(ings, svcs, lambda k: by_svc.get(k, []), secrets or {})


def server(plan: routing.Plan, name: str) -> routing.Server:
    return next(s for s in plan.servers if s.name == name)


def test_named_ports_resolve_through_the_service_to_ready_endpoints() -> None:
    ing = ingress("web", [rule("a.com", [("Prefix", "/", backend("web", "http"))])])
    plan = build(snapshot([ing], services={"web": [("http", 80), ("metrics", 9090)]},
                          slices=[eps("web", "http", 8080, ["10.244.1.5", "10.244.2.6"]),
                                  eps("web", "http", 8080, ["10.244.3.7"], ready=False)]))
    assert [(u.name, u.endpoints) for u in plan.upstreams] == [
        ("default-web-http", ("10.244.1.5:8080", "10.244.2.6:8080"))]
    root = next(loc for loc in server(plan, "a.com").locations if loc.path == "/")
    assert root.upstream == "default-web-http" and plan.events == []


def test_missing_service_or_port_answers_503_with_an_event() -> None:
    ing = ingress("bad", [rule("a.com", [("Prefix", "/nosvc", backend("missing")),
                                         ("Prefix", "/noport", backend("web", 8080)),
                                         ("Prefix", "/empty", backend("web", 80))])])
    plan = build(snapshot([ing], services={"web": [80]}))
    by_path = {loc.path: loc for loc in server(plan, "a.com").locations}
    assert by_path["/nosvc/"].status == by_path["/noport/"].status == by_path["/empty/"].status == 503
    reasons = sorted((e.reason, e.type) for e in plan.events)
    assert reasons == [("ServiceNotFound", "Warning"), ("ServicePortNotFound", "Warning")]
    msg = next(e.message for e in plan.events if e.reason == "ServicePortNotFound")
    assert 'Service "default/web" has no port 8080 (it has 80/TCP)' in msg and "503" in msg


def test_nothing_matches_is_a_404_from_the_controller() -> None:
    plan = build(snapshot([ingress("a", [rule("a.com", [("Exact", "/x", backend("web"))])])], services={"web": [80]}))
    default = server(plan, "_")
    assert [(loc.path, loc.status) for loc in default.locations] == [("/", 404)]
    assert next(loc for loc in server(plan, "a.com").locations if loc.path == "/").status == 404


def test_is_ours_by_class_annotation_or_none() -> None:
    classes = {"nginx": {"spec": {"controller": "k8s.io/ingress-nginx"}},
               "other": {"spec": {"controller": "example.com/other"}}}
    ours = ingress("a", [], cls="nginx")
    theirs = ingress("b", [], cls="other")
    legacy = ingress("c", [], cls=None)
    legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    bare = ingress("d", [], cls=None)
    assert [is_ours(i, "nginx", "k8s.io/ingress-nginx", classes, True) for i in (ours, theirs, legacy, bare)] == [
        True, False, True, True]
    assert not is_ours(bare, "nginx", "k8s.io/ingress-nginx", classes, False)


# ---------------------------------------------------------------- TLS

def make_cert(*names: str, key: ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, bytes]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def tls_secret(name: str, crt: bytes, key: bytes) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


def test_tls_secret_per_host_and_the_default_certificate_otherwise() -> None:
    good = tls_secret("good", *make_cert("a.com"))
    wild = tls_secret("wild", *make_cert("*.b.com"))
    crt, _ = make_cert("c.com")
    mismatched = tls_secret("mismatched", crt, make_cert("c.com")[1])
    garbage: Obj = {"metadata": {"name": "garbage", "namespace": "default"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": base64.b64encode(b"not a certificate").decode(),
                        "tls.key": base64.b64encode(b"nope").decode()}}
    ing = ingress("t", [rule(h, [("Prefix", "/", backend("web"))]) for h in ("a.com", "x.b.com", "c.com", "d.com")],
                  tls=[{"hosts": ["a.com"], "secretName": "good"}, {"hosts": ["*.b.com"], "secretName": "wild"},
                       {"hosts": ["c.com"], "secretName": "mismatched"}, {"hosts": ["d.com"], "secretName": "garbage"}])
    plan = build(snapshot([ing], services={"web": [80]},
                          secrets={f"default/{s['metadata']['name']}": s for s in (good, wild, mismatched, garbage)}))
    got = {s.name: s.certificate for s in plan.servers}
    assert got["a.com"] == "default-good.pem" and got["x.b.com"] == "default-wild.pem"
    assert got["c.com"] == got["d.com"] == got["_"] == DEFAULT_CERT
    assert sorted(plan.certificates) == ["default-good.pem", "default-wild.pem"]
    bad = sorted(e.message for e in plan.events if e.reason == "InvalidTLSSecret")
    assert len(bad) == 2
    assert "tls.crt does not hold a PEM certificate" in bad[0] and "d.com" in bad[0]
    assert "tls.key is not the private key" in bad[1] and "c.com" in bad[1]


def test_certificate_names_cover_one_label() -> None:
    assert certs.covers(("*.b.com",), "x.b.com")
    assert not certs.covers(("*.b.com",), "y.x.b.com") and not certs.covers(("*.b.com",), "b.com")
    fake = certs.default_certificate()
    assert "BEGIN CERTIFICATE" in fake.pem and "PRIVATE KEY" in fake.pem
