"""Services with real packets, in every kube-proxy mode.

The same checks run against a cluster in each mode (nftables, iptables,
userspace): the notes' own examples (`myapp-service` NodePort 30008 from the
host on every node, `nginx-service` from pods on every node), the spread
over endpoints, affinity, traffic policies, no-endpoint rejects, scaling,
LoadBalancer and hostPort from the host, UDP, the `kubernetes` Service from
a pod, rules repaired after a flush, and Services answering while the
control plane is stopped.  Everything is checked the way a user would:
kubectl, curl from the host, commands inside nodes and pods.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from kinns.testing import ClusterHandle, new_cluster_name, wait_for
from tests.e2e.helpers import AGNHOST, apply, deployment, kexec, pods, running

MODES = ["nftables", "iptables", "userspace"]
SUFFIX = "[bcdfghjklmnpqrstvwxz2456789]{5}"

NETEXEC = {"name": "agnhost", "image": AGNHOST, "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
           "ports": [{"name": "http", "containerPort": 8080}, {"name": "udp", "containerPort": 8081,
                                                                  "protocol": "UDP"}]}
NGINX = {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
ECHO = ("import socket,threading\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('',7000)); s.listen(8)\n"
        "def h(c):\n"
        "  while True:\n"
        "    d=c.recv(100)\n"
        "    if not d: break\n"
        "    c.sendall(d)\n"
        "while True: threading.Thread(target=h,args=(s.accept()[0],),daemon=True).start()\n")


def service(name: str, selector: dict[str, str] | None, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": ports, **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def svc(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "svc", name, "-o", "json").stdout)  # type: ignore[no-any-return]


def node_ips(cluster: ClusterHandle) -> dict[str, str]:
    items = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
            for n in items}


def curl(url: str, timeout: float = 2) -> str | None:
    """GET from the host; the body, or None."""
    r = subprocess.run(["curl", "-s", "-m", str(timeout), url], text=True, capture_output=True)
    return r.stdout.strip() if r.returncode == 0 else None


def status_code(url: str) -> str:
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2", url],
                       text=True, capture_output=True)
    return r.stdout


def wait_curl(url: str, timeout: float = 20) -> str:
    return wait_for(lambda: curl(url, 1), timeout=timeout)  # type: ignore[no-any-return]


def in_node(cluster: ClusterHandle, node: str, script: str, timeout: float = 60) -> str:
    """Run a Python script inside a node's network namespace; its stdout."""
    return kexec(cluster, f"node/{node}", "python3", "-c", script).stdout


def get_many(cluster: ClusterHandle, node: str, url: str, n: int) -> list[str]:
    """`n` HTTP GETs from inside `node`; each body ("" for a failure)."""
    script = ("import urllib.request\n"
              f"for _ in range({n}):\n"
              "  try: print(urllib.request.urlopen(%r, timeout=2).read().decode().strip())\n"
              "  except Exception: print('')\n") % url
    return in_node(cluster, node, script).splitlines()


def connect(cluster: ClusterHandle, node: str, ip: str, port: int) -> tuple[str, float]:
    script = ("import socket,time\n"
              "t=time.monotonic()\n"
              "try:\n"
              f"  socket.create_connection(({ip!r},{port}),timeout=3).close(); r='ok'\n"
              "except ConnectionRefusedError: r='refused'\n"
              "except OSError as e: r=type(e).__name__\n"
              "print(r, time.monotonic()-t)\n")
    word, secs = in_node(cluster, node, script).split()
    return word, float(secs)


# ----------------------------------------------------------------- the cluster

@pytest.fixture(scope="module", params=MODES)
def cluster(request: pytest.FixtureRequest, state_root: Path) -> Iterator[ClusterHandle]:
    """One cluster per mode, with the workloads every test below reads."""
    c = ClusterHandle(new_cluster_name(), state_root, extra_args=["--proxy-mode", request.param])
    c.up()
    try:
        apply(c, deployment("myapp", 1, {"name": "nginx", "image": "nginx:1.27"}))
        # The notes' example, verbatim.
        apply(c, service("myapp-service", {"app": "myapp"},
                         [{"port": 80, "targetPort": 80, "nodePort": 30008}], type="NodePort"))
        apply(c, deployment("nginx", 2, NGINX))
        apply(c, service("nginx-service", {"app": "nginx"}, [{"port": 80, "targetPort": 80}]))
        apply(c, deployment("web", 3, NETEXEC))
        apply(c, service("web", {"app": "web"}, [{"name": "http", "port": 80, "targetPort": "http"},
                                                 {"name": "udp", "port": 81, "targetPort": "udp",
                                                  "protocol": "UDP"}]))
        apply(c, {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "client"},
                  "spec": {"selector": {"matchLabels": {"app": "client"}},
                           "template": {"metadata": {"labels": {"app": "client"}},
                                        "spec": {"tolerations": [{"operator": "Exists"}],
                                                 "containers": [{"name": "c", "image": "curl",
                                                                 "command": ["sleep", "100000"]}]}}}})
        running(c, "app=myapp", 1)
        running(c, "app=nginx", 2)
        running(c, "app=web", 3)
        running(c, "app=client", 3)
        yield c
    finally:
        c.down()


def mode(cluster: ClusterHandle) -> str:
    args = cluster.extra_args
    return args[args.index("--proxy-mode") + 1]


# ----------------------------------------------------------------- kube-proxy

def test_kube_proxy_runs_as_a_daemonset_and_logs_its_mode(cluster: ClusterHandle) -> None:
    def ds_rows() -> list[str]:
        return cluster.kubectl("get", "ds", "-n", "kube-system", "kube-proxy").stdout.splitlines()
    out = wait_for(lambda: (lambda rows: rows if rows[1].split()[3] == "3" else None)(ds_rows()), timeout=30)
    assert out[0].split()[:6] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE"]
    assert out[1].split()[:4] == ["kube-proxy", "3", "3", "3"]
    items = pods(cluster, "k8s-app=kube-proxy", ns="kube-system")
    assert len(items) == 3
    assert {p["spec"]["nodeName"] for p in items} == set(node_ips(cluster))
    for p in items:
        assert re.fullmatch(f"kube-proxy-{SUFFIX}", p["metadata"]["name"])
        assert p["spec"]["hostNetwork"] is True
        assert p["status"]["podIP"] == node_ips(cluster)[p["spec"]["nodeName"]]
    conf = cluster.kubectl("get", "cm", "-n", "kube-system", "kube-proxy",
                           "-o", "jsonpath={.data.config\\.conf}").stdout
    assert f"mode: {mode(cluster)}" in conf
    logs = cluster.kubectl("logs", "-n", "kube-system", items[0]["metadata"]["name"]).stdout
    assert re.search(r'^I\d{4} [\d:.]+ +\d+ server_linux.go:\d+\] "Using ' + mode(cluster) + ' Proxier"$',
                     logs, re.M), logs


def test_kube_proxy_health_and_metrics(cluster: ClusterHandle) -> None:
    node = f"node/{cluster.name}-worker"
    health = json.loads(wait_for(lambda: kexec(cluster, node, "curl", "-s", "http://127.0.0.1:10256/healthz",
                                               check=False).stdout))
    assert health["lastUpdated"] and health["nodeEligible"] is True
    assert kexec(cluster, node, "curl", "-s", "http://127.0.0.1:10249/proxyMode").stdout == mode(cluster)
    metrics = kexec(cluster, node, "curl", "-s", "http://127.0.0.1:10249/metrics").stdout
    assert re.search(r'^kubeproxy_sync_proxy_rules_duration_seconds_bucket\{le="0.001"\} \d+$', metrics, re.M)
    assert re.search(r"^kubeproxy_sync_proxy_rules_last_timestamp_seconds \d+", metrics, re.M)
    assert "kubeproxy_network_programming_duration_seconds_count" in metrics


def test_rules_read_like_upstream_in_the_node(cluster: ClusterHandle) -> None:
    worker = f"{cluster.name}-worker"
    ip = svc(cluster, "myapp-service")["spec"]["clusterIP"]
    if mode(cluster) == "nftables":
        out = wait_for(lambda: (o := kexec(cluster, f"node/{worker}", "nft", "list", "table", "ip",
                                          "kube-proxy").stdout) and ip in o and o)
        assert "map service-ips" in out and "numgen random mod" in out
        assert re.search(r"chain service-\w{8}-default/myapp-service/tcp/", out)
    elif mode(cluster) == "iptables":
        out = wait_for(lambda: (o := kexec(cluster, f"node/{worker}", "iptables-save").stdout) and ip in o and o)
        assert ":KUBE-SERVICES" in out and "-A KUBE-NODEPORTS" in out
        assert '--comment "default/myapp-service cluster IP"' in out
        assert re.search(r"-A KUBE-SVC-\w{16} .*-j KUBE-SEP-\w{16}", out)
    else:
        out = wait_for(lambda: (o := kexec(cluster, f"node/{worker}", "iptables-save", "-t", "nat").stdout)
                       and ip in o and o)
        assert "KUBE-PORTALS-CONTAINER" in out and "KUBE-PORTALS-HOST" in out
        assert "default/myapp-service" in out


# ----------------------------------------------------------------- the notes' examples

def test_seed_nodeport_answers_on_every_node_from_the_host(cluster: ClusterHandle) -> None:
    (mine,) = pods(cluster, "app=myapp")
    for node, ip in node_ips(cluster).items():
        assert wait_curl(f"http://{ip}:30008/").startswith(mine["metadata"]["name"]), node


def test_seed_nginx_service_from_pods_on_every_node(cluster: ClusterHandle) -> None:
    ip = svc(cluster, "nginx-service")["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in pods(cluster, "app=nginx")}
    for client in pods(cluster, "app=client"):
        body = wait_for(lambda: cluster.kubectl("exec", client["metadata"]["name"], "--", "curl", "-s", "-m", "2",
                                                f"http://{ip}/", check=False).stdout.strip())
        assert body.split()[0] in names, client["spec"]["nodeName"]


def test_the_kubernetes_service_leads_to_the_api_from_a_pod(cluster: ClusterHandle) -> None:
    client = pods(cluster, "app=client")[0]["metadata"]["name"]
    out = wait_for(lambda: cluster.kubectl("exec", client, "--", "curl", "-sk", "-m", "2",
                                           "https://10.96.0.1/version", check=False).stdout)
    assert json.loads(out)["gitVersion"].startswith("v1.")
    ep = cluster.kubectl("get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[0].ip}:"
                         "{.subsets[0].ports[0].port}").stdout
    assert ep == f"{node_ips(cluster)[cluster.name + '-control-plane']}:6443"


# ----------------------------------------------------------------- load balancing

def test_every_endpoint_answers_and_the_split_is_fair(cluster: ClusterHandle) -> None:
    ip = svc(cluster, "web")["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in pods(cluster, "app=web")}
    answers = get_many(cluster, f"{cluster.name}-worker", f"http://{ip}/hostname", 300)
    counts = {n: answers.count(n) for n in names}
    assert sum(counts.values()) == 300, answers[:10]
    expected = 100.0
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 13.82, counts   # p = 0.001 with 2 degrees of freedom


def test_session_affinity_sticks(cluster: ClusterHandle) -> None:
    apply(cluster, service("web-sticky", {"app": "web"}, [{"port": 80, "targetPort": 8080}],
                           sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    ip = svc(cluster, "web-sticky")["spec"]["clusterIP"]
    answers = wait_for(lambda: (a := get_many(cluster, f"{cluster.name}-worker", f"http://{ip}/hostname", 30))
                       and all(a) and a)
    assert len(set(answers)) == 1, answers


def test_udp_service(cluster: ClusterHandle) -> None:
    ip = svc(cluster, "web")["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in pods(cluster, "app=web")}
    script = ("import socket\n"
              "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.settimeout(2)\n"
              f"u.sendto(b'hostname',({ip!r},81))\n"
              "print(u.recv(100).decode())\n")
    assert wait_for(lambda: kexec(cluster, f"node/{cluster.name}-worker2", "python3", "-c", script,
                                  check=False).stdout.strip()) in names


def test_udp_conntrack_follows_a_replaced_endpoint(cluster: ClusterHandle) -> None:
    """A UDP client keeps its source port; when its endpoint goes away kube-proxy
    deletes the stale conntrack entry, so the next datagram reaches the new pod."""
    apply(cluster, deployment("udp1", 1, NETEXEC))
    apply(cluster, service("udp1", {"app": "udp1"}, [{"name": "udp", "port": 81, "targetPort": 8081,
                                                      "protocol": "UDP"}]))
    (first,) = running(cluster, "app=udp1", 1)
    ip = svc(cluster, "udp1")["spec"]["clusterIP"]
    script = ("import socket\n"
              "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
              "u.bind(('',40123)); u.settimeout(1)\n"
              "try:\n"
              f"  u.sendto(b'hostname',({ip!r},81)); print(u.recv(100).decode())\n"
              "except OSError: print('')\n")   # EPERM/refused while the Service has no endpoint
    node = f"node/{cluster.name}-worker"
    assert wait_for(lambda: kexec(cluster, node, "python3", "-c", script).stdout.strip()) == first["metadata"]["name"]
    cluster.kubectl("delete", "pod", first["metadata"]["name"], "--grace-period=0")
    (second,) = wait_for(lambda: [p for p in running(cluster, "app=udp1", 1)
                                  if p["metadata"]["name"] != first["metadata"]["name"]])
    assert wait_for(lambda: kexec(cluster, node, "python3", "-c", script).stdout.strip() == second["metadata"]["name"],
                    timeout=15)


def test_no_endpoints_is_refused_at_once(cluster: ClusterHandle) -> None:
    apply(cluster, service("nothing", {"app": "nothing"}, [{"port": 80}]))
    ip = svc(cluster, "nothing")["spec"]["clusterIP"]
    wait_for(lambda: connect(cluster, f"{cluster.name}-worker", ip, 80)[0] == "refused")
    # Once the rules are in, a connection is refused at once (a REJECT, not a
    # dropped SYN that would hang until the client's retransmit or timeout).
    result, secs = connect(cluster, f"{cluster.name}-worker", ip, 80)
    assert result == "refused" and secs < 1.0


def test_a_target_port_no_container_declares_leaves_no_endpoints(cluster: ClusterHandle) -> None:
    apply(cluster, service("badport", {"app": "web"}, [{"port": 80, "targetPort": "no-such-port"}]))
    ip = svc(cluster, "badport")["spec"]["clusterIP"]
    wait_for(lambda: connect(cluster, f"{cluster.name}-worker", ip, 80)[0] == "refused")
    slices = json.loads(cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=badport",
                                        "-o", "json").stdout)["items"]
    assert all(not s.get("endpoints") for s in slices)


def test_scaling_changes_the_answering_set(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("scaled", 3, NETEXEC))
    apply(cluster, service("scaled", {"app": "scaled"}, [{"port": 80, "targetPort": 8080}]))
    running(cluster, "app=scaled", 3)
    ip = svc(cluster, "scaled")["spec"]["clusterIP"]
    worker = f"{cluster.name}-worker"
    wait_for(lambda: len(set(get_many(cluster, worker, f"http://{ip}/hostname", 40)) - {""}) == 3)
    cluster.kubectl("scale", "deploy/scaled", "--replicas=1")
    (left,) = running(cluster, "app=scaled", 1)
    wait_for(lambda: set(get_many(cluster, worker, f"http://{ip}/hostname", 20)) == {left["metadata"]["name"]},
             timeout=10)


# ----------------------------------------------------------------- traffic from outside

def test_external_traffic_policy_local(cluster: ClusterHandle) -> None:
    # healthCheckNodePort exists for LoadBalancers with ETP=Local, as upstream.
    apply(cluster, service("web-local", {"app": "web"}, [{"port": 80, "targetPort": 8080}], type="LoadBalancer",
                           externalTrafficPolicy="Local"))
    spec = svc(cluster, "web-local")["spec"]
    port, hc = spec["ports"][0]["nodePort"], spec["healthCheckNodePort"]
    ips = node_ips(cluster)
    with_eps = {p["spec"]["nodeName"] for p in pods(cluster, "app=web")}
    host_ip = subprocess.run(["ip", "-4", "-o", "route", "get", ips[sorted(with_eps)[0]]], text=True,
                             capture_output=True).stdout.split(" src ")[1].split()[0]
    for node, ip in ips.items():
        if node in with_eps:
            seen = wait_curl(f"http://{ip}:{port}/clientip").rsplit(":", 1)[0]
            # The client's own address survives (no masquerade) — except in
            # userspace mode, where kube-proxy itself opens the connection
            # from one of the node's addresses.
            if mode(cluster) == "userspace":
                assert seen != host_ip
            else:
                assert seen == host_ip
            health = wait_for(lambda: json.loads(curl(f"http://{ip}:{hc}/healthz") or "{}"))
            assert health["service"] == {"namespace": "default", "name": "web-local"}
            assert health["localEndpoints"] >= 1
        else:
            assert wait_for(lambda: status_code(f"http://{ip}:{hc}/") == "503")
            if mode(cluster) != "userspace":
                assert curl(f"http://{ip}:{port}/clientip", timeout=1) is None   # dropped: no local endpoint


def test_loadbalancer_gets_an_address_the_host_reaches(cluster: ClusterHandle) -> None:
    apply(cluster, service("web-lb", {"app": "web"}, [{"port": 80, "targetPort": 8080}], type="LoadBalancer"))
    lb = wait_for(lambda: (svc(cluster, "web-lb").get("status", {}).get("loadBalancer", {}).get("ingress")
                           or [{}])[0].get("ip"))
    row = cluster.kubectl("get", "svc", "web-lb").stdout.splitlines()[1].split()
    assert row[1] == "LoadBalancer" and row[3] == lb
    assert lb not in node_ips(cluster).values()
    names = {p["metadata"]["name"] for p in pods(cluster, "app=web")}
    assert wait_curl(f"http://{lb}/hostname") in names


def test_host_port_answers_on_the_node(cluster: ClusterHandle) -> None:
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostport", "labels": {"app": "hp"}},
                    "spec": {"containers": [{**NETEXEC, "ports": [{"containerPort": 8080, "hostPort": 18080}]}]}})
    (p,) = running(cluster, "app=hp", 1)
    ip = node_ips(cluster)[p["spec"]["nodeName"]]
    assert wait_curl(f"http://{ip}:18080/hostname") == "hostport"
    cluster.kubectl("delete", "pod", "hostport", "--grace-period=0")
    wait_for(lambda: curl(f"http://{ip}:18080/hostname", 1) is None)


# ----------------------------------------------------------------- resilience

def test_flushed_rules_are_repaired(cluster: ClusterHandle) -> None:
    ip = node_ips(cluster)[f"{cluster.name}-worker2"]
    wait_curl(f"http://{ip}:30008/")
    flush = ["nft", "flush", "ruleset"] if mode(cluster) == "nftables" else ["iptables", "-t", "nat", "-F"]
    kexec(cluster, f"node/{cluster.name}-worker2", *flush)
    assert wait_curl(f"http://{ip}:30008/", timeout=30)


def test_services_keep_answering_while_the_control_plane_is_stopped(cluster: ClusterHandle) -> None:
    apply(cluster, deployment("echo", 1, {"name": "echo", "image": "busybox", "command": ["python3", "-c", ECHO]}))
    apply(cluster, service("echo", {"app": "echo"}, [{"port": 7000, "nodePort": 30070}], type="NodePort"))
    running(cluster, "app=echo", 1)
    ips = node_ips(cluster)
    worker = ips[f"{cluster.name}-worker"]
    lb = svc(cluster, "web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    web_ip = svc(cluster, "web")["spec"]["clusterIP"]
    conn = wait_for(lambda: _echo_connection(worker, 30070))
    try:
        cluster.cli("control-plane", "stop", "--name", cluster.name)
        assert cluster.kubectl("get", "nodes", check=False).returncode != 0
        conn.sendall(b"still there")
        assert conn.recv(100) == b"still there"
        assert curl(f"http://{worker}:30008/")
        assert curl(f"http://{lb}/hostname")
        assert all(get_many(cluster, f"{cluster.name}-worker2", f"http://{web_ip}/hostname", 5))
        new = _echo_connection(worker, 30070)
        assert new is not None
        new.close()
    finally:
        conn.close()
        cluster.cli("control-plane", "start", "--name", cluster.name)
    cluster.kubectl("get", "nodes")
    # kube-proxy resyncs: a Service made after the restart answers.
    apply(cluster, service("after", {"app": "web"}, [{"port": 80, "targetPort": 8080}], type="NodePort"))
    port = svc(cluster, "after")["spec"]["ports"][0]["nodePort"]
    assert wait_curl(f"http://{worker}:{port}/hostname", timeout=30)


def _echo_connection(ip: str, port: int) -> socket.socket | None:
    try:
        s = socket.create_connection((ip, port), timeout=2)
        s.sendall(b"hello")
        if s.recv(100) == b"hello":
            return s
        s.close()
    except OSError:
        pass
    return None


# ----------------------------------------------------------------- bad input

def test_bad_service_input(cluster: ClusterHandle) -> None:
    r = cluster.kubectl("create", "service", "nodeport", "dup", "--tcp=80:80", "--node-port=30008", check=False)
    assert r.returncode != 0 and "provided port is already allocated" in r.stderr
    apply(cluster, service("inpods", {"app": "web"}, [{"port": 80, "targetPort": 8080}],
                           externalIPs=["10.244.1.77"]))
    events = wait_for(lambda: [e for e in json.loads(cluster.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=inpods", "-o", "json").stdout)["items"]
        if e["type"] == "Warning"])
    assert "10.244.1.77" in events[0]["message"]
