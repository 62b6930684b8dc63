"""Cluster DNS as the notes and the Kubernetes DNS specification describe it, asked with `dig` from pods.

CoreDNS runs as the `coredns` Deployment behind the `kube-dns` Service at
10.96.0.10; a pod's resolv.conf names it; a node's does not.  Every query
here is a real DNS packet from inside a pod, through kube-proxy's rules, to
kinns' DNS server.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kinns.testing import ClusterHandle, wait_for
from tests.e2e.helpers import AGNHOST, apply, deployment, kexec, pods, running

NETEXEC = {"name": "agnhost", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
           "ports": [{"name": "http", "containerPort": 8080}]}


def service(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


@pytest.fixture(scope="module")
def dns(cluster: ClusterHandle) -> ClusterHandle:
    """Workloads the cases below resolve, and a client pod to ask from."""
    cluster.kubectl("create", "namespace", "other")
    apply(cluster, deployment("web", 2, NETEXEC))
    apply(cluster, service("web", selector={"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": 8080}]))
    other = deployment("web", 1, NETEXEC)
    other["metadata"]["namespace"] = "other"
    apply(cluster, other)
    apply(cluster, service("web2", "other", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 8080}]))
    apply(cluster, service("ext", type="ExternalName", externalName="example.com"))
    apply(cluster, service("nginx", clusterIP="None", selector={"app": "sts"},
                           ports=[{"name": "http", "port": 80}]))
    apply(cluster, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"},
                    "spec": {"serviceName": "nginx", "replicas": 2, "selector": {"matchLabels": {"app": "sts"}},
                             "template": {"metadata": {"labels": {"app": "sts"}},
                                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                                   "ports": [{"name": "http",
                                                                              "containerPort": 80}]}]}}}})
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "100000"]}]}})
    running(cluster, "app=web", 2)   # in "default"
    running(cluster, "app=sts", 2)
    wait_for(lambda: [p for p in pods(cluster) if p["metadata"]["name"] == "client"
                      and p["status"].get("phase") == "Running"])
    wait_for(lambda: len([p for p in pods(cluster, "k8s-app=kube-dns", ns="kube-system")
                          if all(c.get("ready") for c in p["status"].get("containerStatuses", []))]) == 2)
    wait_for(lambda: dig(cluster, "web.default.svc.cluster.local", "+short"))
    return cluster


def dig(cluster: ClusterHandle, *args: str) -> str:
    r = cluster.kubectl("exec", "client", "--", "dig", "+time=2", "+tries=1", *args, check=False, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else ""


def answers(cluster: ClusterHandle, *args: str) -> tuple[str, list[str]]:
    """(status, answer RRs as "name ttl IN type data" with single spaces)."""
    out = dig(cluster, "+noall", "+comments", "+answer", *args)
    status = re.search(r"status: (\w+)", out)
    rrs = [" ".join(line.split()) for line in out.splitlines() if line and not line.startswith(";")]
    return (status.group(1) if status else "no answer"), rrs


def cluster_ip(cluster: ClusterHandle, name: str, ns: str = "default") -> str:
    return cluster.kubectl("get", "svc", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout


def test_pod_resolv_conf_names_cluster_dns_and_the_node_cannot_resolve(dns: ClusterHandle) -> None:
    conf = dns.kubectl("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in conf
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in conf
    node = kexec(dns, f"node/{dns.name}-worker", "dig", "+time=1", "+tries=1", "+short",
                 "web.default.svc.cluster.local", check=False)
    assert cluster_ip(dns, "web") not in node.stdout


@pytest.mark.parametrize("proto", ["+notcp", "+tcp"])
def test_clusterip_service_a_record(dns: ClusterHandle, proto: str) -> None:
    status, rrs = answers(dns, proto, "web.default.svc.cluster.local", "A")
    assert status == "NOERROR"
    assert rrs == [f"web.default.svc.cluster.local. 30 IN A {cluster_ip(dns, 'web')}"]


def test_spec_cases(dns: ClusterHandle) -> None:
    ip = cluster_ip(dns, "web")
    sts = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods(dns, "app=sts")}
    client_ip = next(p["status"]["podIP"] for p in pods(dns) if p["metadata"]["name"] == "client")
    cases = [
        # (query args, status, expected answer data set (or None: don't care), description)
        (["_http._tcp.web.default.svc.cluster.local", "SRV"], "NOERROR",
         {"0 100 80 web.default.svc.cluster.local."}, "named-port SRV"),
        (["-x", ip], "NOERROR", {"web.default.svc.cluster.local."}, "PTR of a ClusterIP"),
        (["ext.default.svc.cluster.local", "CNAME"], "NOERROR", {"example.com."}, "ExternalName"),
        (["nginx.default.svc.cluster.local", "A"], "NOERROR", set(sts.values()), "headless: one A per endpoint"),
        (["sts-0.nginx.default.svc.cluster.local", "A"], "NOERROR", {sts["sts-0"]}, "StatefulSet pod name"),
        ([f"{client_ip.replace('.', '-')}.default.pod.cluster.local", "A"], "NOERROR", {client_ip}, "pod record"),
        (["dns-version.cluster.local", "TXT"], "NOERROR", {'"1.1.0"'}, "dns-version"),
        (["web2.other.svc.cluster.local", "A"], "NOERROR", {cluster_ip(dns, "web2", "other")}, "other namespace"),
        (["nosuch.default.svc.cluster.local", "A"], "NXDOMAIN", set(), "unknown service"),
        (["web.nosuchns.svc.cluster.local", "A"], "NXDOMAIN", set(), "unknown namespace"),
        (["web.default.svc.cluster.local", "AAAA"], "NOERROR", set(), "NODATA: no AAAA for IPv4"),
        (["svc.cluster.local", "A"], "NOERROR", set(), "NODATA: empty non-terminal"),
    ]
    for args, status, want, what in cases:
        got_status, rrs = answers(dns, *args)
        assert got_status == status, (what, rrs)
        assert {rr.split(" ", 4)[4] for rr in rrs} == want, (what, rrs)


def test_short_names_through_the_search_list(dns: ClusterHandle) -> None:
    assert dig(dns, "+search", "+short", "web") == cluster_ip(dns, "web")
    assert dig(dns, "+search", "+short", "web2.other") == cluster_ip(dns, "web2", "other")
    names = {p["metadata"]["name"] for p in pods(dns, "app=web")}
    body = dns.kubectl("exec", "client", "--", "curl", "-s", "-m", "3", "http://web/hostname").stdout
    assert body in names
    theirs = wait_for(lambda: dns.kubectl("get", "pods", "-n", "other", "-o", "jsonpath={.items[*].metadata.name}",
                                          check=False).stdout)
    assert wait_for(lambda: dns.kubectl("exec", "client", "--", "curl", "-s", "-m", "3", "http://web2.other/hostname",
                                        check=False).stdout) == theirs


def test_outside_names_get_servfail_when_the_upstream_is_unreachable(dns: ClusterHandle) -> None:
    # The node's resolv.conf names the host's resolver, which pods cannot
    # reach (kinns never forwards pod traffic off the host): CoreDNS's
    # forward gives up after its 5 s timeout and answers SERVFAIL.
    status, _ = answers(dns, "+time=8", "example.org", "A")
    assert status == "SERVFAIL"


def test_a_new_service_resolves_quickly_and_a_deleted_one_goes(dns: ClusterHandle) -> None:
    apply(dns, service("fresh", selector={"app": "web"}, ports=[{"port": 80}]))
    ip = cluster_ip(dns, "fresh")
    assert wait_for(lambda: dig(dns, "+short", "fresh.default.svc.cluster.local") == ip, timeout=5)
    dns.kubectl("delete", "svc", "fresh")
    assert wait_for(lambda: answers(dns, "fresh.default.svc.cluster.local")[0] == "NXDOMAIN", timeout=5)


def test_names_resolve_while_the_control_plane_is_stopped(dns: ClusterHandle) -> None:
    ip = cluster_ip(dns, "web")
    client_pid = _client_pid(dns)
    dns.cli("control-plane", "stop", "--name", dns.name)
    try:
        # kubectl cannot exec now (no API): enter the client pod's namespaces directly.
        import subprocess
        out = subprocess.run(["nsenter", "-t", client_pid, "-n", "dig", "@10.96.0.10", "+short", "+time=2",
                              "+tries=1", "web.default.svc.cluster.local"], text=True, capture_output=True).stdout.strip()
        assert out == ip
    finally:
        dns.cli("control-plane", "start", "--name", dns.name)


def _client_pid(cluster: ClusterHandle) -> str:
    """The host PID of the client pod's container (its process runs `sleep`)."""
    out = cluster.kubectl("exec", "client", "--", "sh", "-c", "cat /proc/1/stat 2>/dev/null; echo; echo $$").stdout
    del out
    import subprocess
    pids = subprocess.run(["pgrep", "-f", "^sleep 100000$"], text=True, capture_output=True).stdout.split()
    for pid in pids:
        env = open(f"/proc/{pid}/environ", "rb").read()
        if b"HOSTNAME=client\0" in env:
            return pid
    raise AssertionError(f"client pod process not found among {pids}")


def test_coredns_deployment_service_and_logs(dns: ClusterHandle) -> None:
    row = dns.kubectl("get", "svc", "-n", "kube-system", "kube-dns").stdout.splitlines()[1].split()
    assert row[:5] == ["kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP"]
    dep = json.loads(dns.kubectl("get", "deploy", "-n", "kube-system", "coredns", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 2 and dep["status"].get("readyReplicas") == 2
    name = pods(dns, "k8s-app=kube-dns", ns="kube-system")[0]["metadata"]["name"]
    assert re.match(r"coredns-\w+-\w{5}$", name)
    logs = dns.kubectl("logs", "-n", "kube-system", name).stdout
    assert ".:53" in logs and "CoreDNS-1.11.3" in logs


def _restart_coredns_with(dns: ClusterHandle, corefile: str) -> None:
    dns.kubectl("patch", "configmap", "coredns", "-n", "kube-system", "--type=merge",
                "-p", json.dumps({"data": {"Corefile": corefile}}))
    # kubectl refuses a second restart within the same second: ask again until it takes.
    wait_for(lambda: dns.kubectl("rollout", "restart", "deploy/coredns", "-n", "kube-system",
                                 check=False).returncode == 0, timeout=10)


def test_log_plugin_and_a_bad_corefile(dns: ClusterHandle) -> None:
    from kinns.cluster.addons import COREFILE
    try:
        _restart_coredns_with(dns, COREFILE.replace("    errors\n", "    errors\n    log\n"))
        dns.kubectl("rollout", "status", "deploy/coredns", "-n", "kube-system", "--timeout=60s")
        line = re.compile(r'\[INFO\] [\d.]+:\d+ - \d+ "A IN web\.default\.svc\.cluster\.local\. udp \d+ \w+ \d+" '
                          r'NOERROR qr,aa,rd \d+ [\d.]+s')

        def logged() -> bool:
            dig(dns, "+short", "web.default.svc.cluster.local")   # lands on one of the new replicas
            return any(line.search(dns.kubectl("logs", "-n", "kube-system", p["metadata"]["name"],
                                               check=False).stdout)
                       for p in pods(dns, "k8s-app=kube-dns", ns="kube-system")
                       if not p["metadata"].get("deletionTimestamp"))
        assert wait_for(logged, timeout=30)
        # A Corefile the server cannot read: the new pod never becomes Ready and says which line.
        _restart_coredns_with(dns, COREFILE.replace("    loop\n", "    loop\n    frobnicate on\n"))

        def broken() -> str:
            for p in pods(dns, "k8s-app=kube-dns", ns="kube-system"):
                out = dns.kubectl("logs", "-n", "kube-system", p["metadata"]["name"], check=False).stdout
                if "frobnicate" in out and not all(c.get("ready") for c in p["status"].get("containerStatuses", [])):
                    return out
            return ""
        assert re.search(r"Corefile:\d+", wait_for(broken, timeout=30))
        # The old replica keeps answering meanwhile.
        assert dig(dns, "+short", "web.default.svc.cluster.local") == cluster_ip(dns, "web")
    finally:
        _restart_coredns_with(dns, COREFILE)
        dns.kubectl("rollout", "status", "deploy/coredns", "-n", "kube-system", "--timeout=60s")
