"""The Gateway API through the real kubectl and real curl from the host, served by the ingress pods' nginx.

`kinns up` installs the GatewayClass, Gateway and HTTPRoute CRDs and the
GatewayClass `kinns`; a Gateway of that class gets the ingress
LoadBalancer's address, and every request here leaves the host for it.
Covered: statuses as `kubectl get` prints them, two paths to two
Deployments, host-based routing with a wildcard, a header match, a
weighted split, a redirect, a URL rewrite with a header change, HTTPS with
SNI from a listener's certificateRef, and bad input (a missing Gateway, a
missing Service answered 500, a Secret that is no certificate) with the
upstream conditions and nothing else changed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kinns.testing import ClusterHandle, wait_for
from tests.e2e.helpers import AGNHOST, apply, pods, running
from tests.unit.test_ingress_routing import make_cert

pytestmark = pytest.mark.e2e
GW = "gateway.networking.k8s.io/v1"


def serve_hostname(name: str, args: tuple[str, ...] = ("serve-hostname",)) -> dict[str, Any]:
    """A Deployment answering every path with its pod's name (or agnhost's netexec, for `echo`)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                         {"name": "web", "image": AGNHOST, "args": list(args)}]}}}}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 9376}]}}


def http_route(name: str, rules: list[dict[str, Any]], hosts: list[str], parent: str = "web") -> dict[str, Any]:
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [{"name": parent}], "hostnames": hosts, "rules": rules}}


def to(*backends: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"name": n, "port": 80, "weight": w} for n, w in backends]


def prefix(path: str, **kw: Any) -> list[dict[str, Any]]:
    return [{"path": {"type": "PathPrefix", "value": path}, **kw}]


def curl(lb: str, host: str, path: str, *extra: str, scheme: str = "http") -> tuple[int, str, str]:
    """(status, body, stderr) of one real curl from the host to the Gateway address."""
    port = 443 if scheme == "https" else 80
    r = subprocess.run(["curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}", "--resolve",
                        f"{host}:{port}:{lb}", *extra, f"{scheme}://{host}{path}"],
                       capture_output=True, text=True, timeout=10)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r.stderr


def eventually(lb: str, host: str, path: str, want: int = 200, *extra: str) -> str:
    def answered() -> str | None:
        status, body, _ = curl(lb, host, path, *extra)
        return body if status == want else None
    return str(wait_for(answered, timeout=40))


def pod_name(cluster: ClusterHandle, app: str) -> str:
    return str(pods(cluster, f"app={app}")[0]["metadata"]["name"])


def status_of(cluster: ClusterHandle, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-o", "json").stdout).get("status") or {}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


@pytest.fixture(scope="module")
def lb(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two backends, a Gateway of class kinns (HTTP, and HTTPS for secure.gw.example.com), its address."""
    for name in ("one", "two", "echo"):
        apply(cluster, serve_hostname(name, ("netexec", "--http-port=9376") if name == "echo" else ("serve-hostname",)))
        apply(cluster, service(name))
    d = tmp_path_factory.mktemp("tls")
    crt, key = make_cert("secure.gw.example.com")
    (d / "tls.crt").write_bytes(crt)
    (d / "tls.key").write_bytes(key)
    cluster.kubectl("create", "secret", "tls", "secure", f"--cert={d / 'tls.crt'}", f"--key={d / 'tls.key'}")
    apply(cluster, {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "web"}, "spec": {
        "gatewayClassName": "kinns", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.gw.example.com",
             "tls": {"certificateRefs": [{"name": "secure"}]}}]}})
    running(cluster, "app=one", 1)
    running(cluster, "app=two", 1)
    running(cluster, "app=echo", 1)
    st = wait_for(lambda: (s := status_of(cluster, "gateway", "web")).get("addresses") and s, timeout=60)
    return str(st["addresses"][0]["value"])


def test_statuses_as_kubectl_prints_them(cluster: ClusterHandle, lb: str) -> None:
    rows = [line.split() for line in cluster.kubectl("get", "gatewayclass").stdout.splitlines()]
    assert rows[0] == ["NAME", "CONTROLLER", "ACCEPTED", "AGE"]
    assert rows[1][:3] == ["kinns", "kinns.io/gateway-controller", "True"]
    got = wait_for(lambda: (r := cluster.kubectl("get", "gateway", "web").stdout.splitlines())[1].split()[3] == "True"
                   and r, timeout=30)
    assert got[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert got[1].split()[:4] == ["web", "kinns", lb, "True"]
    svc = json.loads(cluster.kubectl("get", "svc", "-n", "ingress-nginx", "ingress-nginx-controller", "-o",
                                     "json").stdout)
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == lb        # the ingress data plane's address
    apply(cluster, http_route("paths", [{"matches": prefix("/one"), "backendRefs": to(("one", 1))},
                                        {"matches": prefix("/two"), "backendRefs": to(("two", 1))}],
                              ["paths.gw.example.com"]))
    header = cluster.kubectl("get", "httproute").stdout.splitlines()
    assert header[0].split() == ["NAME", "HOSTNAMES", "AGE"]
    assert "paths.gw.example.com" in header[1]
    parent = wait_for(lambda: (status_of(cluster, "httproute", "paths").get("parents") or [None])[0], timeout=30)
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    listeners = wait_for(lambda: (ls := {x["name"]: x for x in status_of(cluster, "gateway", "web")["listeners"]})
                         ["http"]["attachedRoutes"] >= 1 and ls, timeout=30)
    assert conditions(listeners["http"])["Programmed"] == ("True", "Programmed")


def test_two_paths_to_two_deployments(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, http_route("paths", [{"matches": prefix("/one"), "backendRefs": to(("one", 1))},
                                        {"matches": prefix("/two"), "backendRefs": to(("two", 1))}],
                              ["paths.gw.example.com"]))
    assert eventually(lb, "paths.gw.example.com", "/one/hostname") == pod_name(cluster, "one")
    assert curl(lb, "paths.gw.example.com", "/two/hostname")[1] == pod_name(cluster, "two")
    assert curl(lb, "paths.gw.example.com", "/three")[0] == 404
    assert curl(lb, "paths.gw.example.com", "/onesie")[0] == 404           # PathPrefix is element-wise


def test_host_based_routing_with_a_wildcard_and_a_header_match(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, http_route("hosts", [
        {"matches": prefix("/", headers=[{"name": "X-Env", "value": "canary"}]), "backendRefs": to(("two", 1))},
        {"backendRefs": to(("one", 1))}], ["*.wild.gw.example.com"]))
    assert eventually(lb, "a.wild.gw.example.com", "/hostname") == pod_name(cluster, "one")
    assert curl(lb, "a.b.wild.gw.example.com", "/hostname")[1] == pod_name(cluster, "one")   # any depth
    assert curl(lb, "a.wild.gw.example.com", "/hostname", "-H", "X-Env: canary")[1] == pod_name(cluster, "two")
    assert curl(lb, "a.wild.gw.example.com", "/hostname", "-H", "X-Env: other")[1] == pod_name(cluster, "one")
    assert curl(lb, "wild.gw.example.com", "/hostname")[0] == 404


def test_weighted_split_hits_both_backends(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, http_route("split", [{"backendRefs": to(("one", 1), ("two", 1))}], ["split.gw.example.com"]))
    eventually(lb, "split.gw.example.com", "/hostname")
    answers = [curl(lb, "split.gw.example.com", "/hostname")[1] for _ in range(100)]
    one, two = answers.count(pod_name(cluster, "one")), answers.count(pod_name(cluster, "two"))
    assert one + two == 100 and one >= 20 and two >= 20, (one, two)


def test_redirect_and_url_rewrite_with_header_changes(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, http_route("filters", [
        {"matches": [{"path": {"type": "Exact", "value": "/old"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "hostname": "new.example.com",
                                                                     "statusCode": 301}}]},
        {"matches": prefix("/api"), "backendRefs": to(("echo", 1)),
         "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                                                     "replacePrefixMatch": "/echo"}}},
                     {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                         "set": [{"name": "X-Set", "value": "by-route"}]}}]},
        {"matches": prefix("/whole"), "backendRefs": to(("echo", 1)),
         "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                     "replaceFullPath": "/header"}}},
                     {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                         "set": [{"name": "X-Set", "value": "by-route"}]}}]}], ["filters.gw.example.com"]))
    eventually(lb, "filters.gw.example.com", "/old", 301)
    status, _body, err = curl(lb, "filters.gw.example.com", "/old", "-v")
    assert "Location: https://new.example.com/old" in err.replace("< location", "Location").replace("< Location",
                                                                                                     "Location")
    assert eventually(lb, "filters.gw.example.com", "/api?msg=rewritten") == "rewritten"   # /api → /echo
    assert curl(lb, "filters.gw.example.com", "/whole/x?key=X-Set")[1] == "by-route"          # → /header


def test_https_with_sni_from_the_listener_certificate(cluster: ClusterHandle, lb: str, tmp_path: Path) -> None:
    apply(cluster, http_route("secure", [{"backendRefs": to(("two", 1))}], ["secure.gw.example.com"]))
    ca = tmp_path / "ca.crt"
    secret = json.loads(cluster.kubectl("get", "secret", "secure", "-o", "json").stdout)
    import base64
    ca.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    got = wait_for(lambda: (r := curl(lb, "secure.gw.example.com", "/hostname", "--cacert", str(ca),
                                      scheme="https"))[0] == 200 and r, timeout=40)
    assert got[1] == pod_name(cluster, "two")


def test_bad_input_gets_upstream_conditions_and_changes_nothing_else(cluster: ClusterHandle, lb: str) -> None:
    apply(cluster, http_route("orphan", [{"backendRefs": to(("one", 1))}], ["orphan.gw.example.com"], parent="nosuch"))
    parent = wait_for(lambda: (status_of(cluster, "httproute", "orphan").get("parents") or [None])[0], timeout=30)
    assert conditions(parent)["Accepted"] == ("False", "NoMatchingParent")
    apply(cluster, http_route("missing", [{"matches": prefix("/gone"), "backendRefs": to(("nosuch", 1))},
                                          {"matches": prefix("/fine"), "backendRefs": to(("one", 1))}],
                              ["missing.gw.example.com"]))
    eventually(lb, "missing.gw.example.com", "/gone", 500)
    assert curl(lb, "missing.gw.example.com", "/fine/hostname")[1] == pod_name(cluster, "one")
    parent = wait_for(lambda: (p := (status_of(cluster, "httproute", "missing").get("parents") or [None])[0])
                      and conditions(p).get("ResolvedRefs", ("",))[0] == "False" and p, timeout=30)
    assert conditions(parent)["ResolvedRefs"] == ("False", "BackendNotFound")
    cluster.kubectl("create", "secret", "generic", "notacert", "--type=kubernetes.io/tls",
                    "--from-literal=tls.crt=hello", "--from-literal=tls.key=world")
    apply(cluster, {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "broken"}, "spec": {
        "gatewayClassName": "kinns", "listeners": [
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "broken.gw.example.com",
             "tls": {"certificateRefs": [{"name": "notacert"}]}}]}})
    listener = wait_for(lambda: (ls := status_of(cluster, "gateway", "broken").get("listeners")) and ls[0], timeout=30)
    assert conditions(listener)["ResolvedRefs"] == ("False", "InvalidCertificateRef")
    assert conditions(listener)["Programmed"] == ("False", "Invalid")
    assert curl(lb, "paths.gw.example.com", "/one/hostname")[1] == pod_name(cluster, "one")   # others unchanged
    r = cluster.kubectl("apply", "-f", "-", check=False, stdin=json.dumps(http_route(
        "badredirect", [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 307}}]}], [])))
    assert r.returncode != 0 and "statusCode" in r.stderr and "supported values" in r.stderr.lower()
