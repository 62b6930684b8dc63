"""NetworkPolicy with real packets: upstream's e2e "truth table" model, probed from inside pods.

As test/e2e/network/netpol does it: namespaces x, y, z (labelled `ns=<name>`),
pods a, b, c in each (labelled `pod=<name>`), every pod serving 80 and 81 on
TCP and UDP with agnhost netexec and the named ports `serve-80-tcp`,
`serve-80-udp`, ...  Each case applies policies with kubectl, then every pod
probes every pod on every port from inside its own network namespace (one
`kubectl exec` per source, all probes in parallel, 1 s timeouts), and the
result is compared with the expected table, printed on failure the way
upstream's truthtable.go prints it (`.` reachable, `X` blocked).  A pod can
always reach itself (upstream's AllowLoopback).  Probes retry for a few
seconds, since a policy takes effect asynchronously; the tests also check
it does within about a second of the write.

The pods spread over two workers, so every table has same-node pairs
(bridged on cni0) and cross-node pairs (VXLAN); a second, small cluster
checks the same with the host-gw overlay.  Beyond the tables: a policy
seen through a Service (after DNAT), an open TCP connection and a UDP flow
cut when a policy starts denying them, kubelet probes passing a deny-all
policy, DNS under an egress lockdown, the node's table naming the policy
and counting drops, upstream's validation messages for bad CIDRs, and every
policy removed restoring full reachability.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kinns.testing import ClusterHandle, kubectl_binary, new_cluster_name, wait_for
from tests.e2e.helpers import AGNHOST

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = ((80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP"))
KEYS = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in PODS)
Expect = Callable[[str, str, int, str], bool]

# Runs inside a pod: probe [key, ip, port, protocol] targets in parallel, print {"key port proto": ok}.
PROBE = r"""
import json, socket, sys, threading
out = {}
def probe(key, ip, port, proto):
    ok = False
    try:
        if proto == "TCP":
            socket.create_connection((ip, port), timeout=1).close()
            ok = True
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(b"hostname", (ip, port))
            ok = bool(s.recv(100))
    except OSError:
        pass
    out[f"{key} {port} {proto}"] = ok
threads = [threading.Thread(target=probe, args=t) for t in json.loads(sys.argv[1])]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
"""

# Runs inside a pod: keep one TCP connection and one UDP flow busy for `secs`, print each
# second's outcome as [time, tcp ok, udp ok] (the server answers on the same connection).
HOLD = r"""
import json, socket, sys, time
ip, secs = sys.argv[1], float(sys.argv[2])
t = socket.create_connection((ip, 7000), timeout=1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(0.4)
t.settimeout(0.4)
start = time.time()
print("connected", flush=True)
while time.time() - start < secs:
    res = [round(time.time(), 2)]
    try:
        t.sendall(b"ping\n"); res.append(t.recv(10) == b"ping\n")
    except OSError:
        res.append(False)
    try:
        u.sendto(b"hostname", (ip, 80)); res.append(bool(u.recv(100)))
    except OSError:
        res.append(False)
    print(json.dumps(res), flush=True)
    time.sleep(0.2)
"""

# Runs inside a pod: one A query for `name` to the pod's nameserver (from resolv.conf), 1 s timeout.
RESOLVE = r"""
import socket, struct, sys
ns = next(l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver"))
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
try:
    s.sendto(q, (ns, 53)); r = s.recv(512)
except OSError:
    print("timeout"); sys.exit(0)
print(socket.inet_ntoa(r[-4:]) if struct.unpack(">H", r[6:8])[0] else "no answer")
"""

ECHO = ("import socket,threading\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('',7000)); s.listen(8)\n"
        "def h(c):\n"
        "  while True:\n"
        "    d=c.recv(100)\n"
        "    if not d: break\n"
        "    c.sendall(d)\n"
        "while True: threading.Thread(target=h,args=(s.accept()[0],),daemon=True).start()\n")


def server(port: int) -> dict[str, Any]:
    return {"name": f"cont-{port}", "image": AGNHOST,
            "args": ["netexec", f"--http-port={port}", f"--udp-port={port}"],
            "ports": [{"name": f"serve-{port}-tcp", "containerPort": port, "protocol": "TCP"},
                      {"name": f"serve-{port}-udp", "containerPort": port, "protocol": "UDP"}],
            # kubelet probes come from the pod's own node: a deny-all policy must not stop them
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}


def manifests() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"ns": ns}}}
                                   for ns in NAMESPACES]
    for ns in NAMESPACES:
        for p in PODS:
            containers = [server(80), server(81)]
            if (ns, p) == ("x", "a"):
                containers.append({"name": "echo", "image": "python:3", "command": ["python3", "-c", ECHO],
                                   "ports": [{"name": "echo", "containerPort": 7000}]})
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": p, "namespace": ns, "labels": {"pod": p, "ns": ns}},
                          "spec": {"containers": containers, "terminationGracePeriodSeconds": 0}})
    items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s-x-a", "namespace": "x"},
                  "spec": {"selector": {"pod": "a"}, "ports": [{"name": "tcp-80", "port": 80}]}})
    return items


@dataclass
class Model:
    ips: dict[str, str]
    nodes: dict[str, str]


@pytest.fixture(scope="module")
def model(cluster: ClusterHandle) -> Iterator[Model]:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests()}))

    def ready() -> dict[str, dict[str, Any]] | None:
        out = {}
        for ns in NAMESPACES:
            for pod in json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]:
                st = pod["status"]
                if not (st.get("podIP") and all(c.get("ready") for c in st.get("containerStatuses") or [{}])):
                    return None
                out[f"{ns}/{pod['metadata']['name']}"] = pod
        return out if len(out) == len(KEYS) else None
    pods = wait_for(ready, timeout=120, interval=1)
    m = Model({k: p["status"]["podIP"] for k, p in pods.items()}, {k: p["spec"]["nodeName"] for k, p in pods.items()})
    yield m


def policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


@pytest.fixture
def apply(cluster: ClusterHandle) -> Iterator[Callable[..., float]]:
    """Apply policies (returns the time of the write); every policy is deleted after the test."""
    def do(*pols: dict[str, Any]) -> float:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(pols)}))
        return time.time()
    yield do
    for ns in NAMESPACES:
        cluster.kubectl("delete", "networkpolicy", "--all", "-n", ns, check=False)


def kexec(cluster: ClusterHandle, key: str, *cmd: str, timeout: float = 30) -> str:
    ns, pod = key.split("/")
    return cluster.kubectl("exec", "-n", ns, pod, "-c", "cont-80", "--", *cmd, timeout=timeout).stdout


def probe_all(cluster: ClusterHandle, m: Model) -> dict[tuple[str, str, int, str], bool]:
    targets = [[dst, m.ips[dst], port, proto] for dst in KEYS for port, proto in PORTS]

    def from_(src: str) -> dict[tuple[str, str, int, str], bool]:
        raw = json.loads(kexec(cluster, src, "python3", "-c", PROBE, json.dumps(targets)))
        out = {}
        for k, ok in raw.items():
            dst, port, proto = k.split()
            out[(src, dst, int(port), proto)] = ok
        return out
    result: dict[tuple[str, str, int, str], bool] = {}
    with ThreadPoolExecutor(len(KEYS)) as pool:
        for part in pool.map(from_, KEYS):
            result.update(part)
    return result


def table(marks: dict[tuple[str, str, int, str], bool], port: int, proto: str) -> str:
    """truthtable.go's picture for one port/protocol."""
    head = f"{port}/{proto}" + "".join(f" {k:>4}" for k in KEYS)
    rows = [f"{src:<6}" + "".join(f" {'.' if marks[(src, dst, port, proto)] else 'X':>4}" for dst in KEYS)
            for src in KEYS]
    return "\n".join([head] + rows)


def check(cluster: ClusterHandle, m: Model, expect: Expect, tries: int = 4) -> float:
    """Probe until the tables match `expect` (loopback always allowed); the time it took."""
    want = {(s, d, port, proto): s == d or expect(s, d, port, proto)
            for s in KEYS for d in KEYS for port, proto in PORTS}
    t0 = time.time()
    for attempt in range(tries):
        got = probe_all(cluster, m)
        if got == want:
            return time.time() - t0
        if attempt < tries - 1:
            time.sleep(1)
    wrong = [k for k in want if got[k] != want[k]]
    pictures = "\n\n".join(f"expected:\n{table(want, p, pr)}\nobserved:\n{table(got, p, pr)}" for p, pr in PORTS
                           if any(k[2:] == (p, pr) for k in wrong))
    logs = cluster.kubectl("logs", "-n", "kube-system", "-l", "k8s-app=kube-network-policies", "--tail=8",
                           "--prefix", check=False).stdout
    raise AssertionError(f"{len(wrong)} probes differ, e.g. {wrong[:5]}\n{pictures}\nagents:\n{logs}")


def everything(s: str, d: str, port: int, proto: str) -> bool:
    return True


def ns_of(key: str) -> str:
    return key.split("/")[0]


# ------------------------------------------------------------------------- cases

def test_pods_spread_over_nodes_and_all_reachable(cluster: ClusterHandle, model: Model) -> None:
    assert len(set(model.nodes.values())) >= 2
    check(cluster, model, everything)
    out = cluster.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-network-policies", "-o", "wide").stdout
    assert out.count("Running") == 3, out


def test_default_deny_ingress(cluster: ClusterHandle, model: Model, apply: Callable[..., float]) -> None:
    written = apply(policy("x", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    took = check(cluster, model, lambda s, d, port, proto: ns_of(d) != "x")
    assert time.time() - written < 6 and took < 4
    # the table on x/a's node names the pod's isolation and counted the drops
    node = model.nodes["x/a"]
    listing = cluster.cli("exec", "--name", cluster.name, f"node/{node}", "--", "nft", "list", "table", "inet",
                          "kinns-network-policies").stdout
    line = next(l for l in listing.splitlines() if 'comment "x/a ingress: isolated by x/deny-all' in l)
    assert "counter packets 0 " not in line, line
    # kubelet readiness probes (from the pod's own node) still pass
    time.sleep(2)
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "x", "-o", "json").stdout)["items"]
    assert all(c["ready"] for p in pods for c in p["status"]["containerStatuses"])


def test_allow_from_label(cluster: ClusterHandle, model: Model, apply: Callable[..., float]) -> None:
    apply(policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or s == "x/b")


def test_allow_from_namespace_and_both_selectors(cluster: ClusterHandle, model: Model,
                                                  apply: Callable[..., float]) -> None:
    apply(policy("x", "allow-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or ns_of(s) == "y")
    # one peer with both selectors: AND; replaces the policy above
    apply(policy("x", "allow-y", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or s == "y/b")


def test_ipblock_with_except(cluster: ClusterHandle, model: Model, apply: Callable[..., float]) -> None:
    apply(policy("x", "egress-cidr", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                      "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                                      "except": [f"{model.ips['y/b']}/32"]}}]}]}))
    check(cluster, model, lambda s, d, port, proto: s != "x/a" or d != "y/b")


def test_egress_deny_with_dns_allowed(cluster: ClusterHandle, model: Model, apply: Callable[..., float]) -> None:
    def resolve() -> str:
        return kexec(cluster, "x/a", "python3", "-c", RESOLVE, "kubernetes.default.svc.cluster.local").strip()
    apply(policy("x", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]}))
    check(cluster, model, lambda s, d, port, proto: ns_of(s) != "x")
    assert resolve() == "timeout"
    apply(policy("x", "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"],
                                    "egress": [{"ports": [{"protocol": "UDP", "port": 53},
                                                          {"protocol": "TCP", "port": 53}]}]}))
    written = time.time()
    wait_for(lambda: resolve() == "10.96.0.1", timeout=10)
    assert time.time() - written < 5
    check(cluster, model, lambda s, d, port, proto: ns_of(s) != "x")


def test_named_ports(cluster: ClusterHandle, model: Model, apply: Callable[..., float]) -> None:
    apply(policy("x", "udp-80-only", {"podSelector": {"matchLabels": {"pod": "a"}},
                                      "ingress": [{"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]}))
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or (port, proto) == (80, "UDP"))


def test_end_port(cluster: ClusterHandle, model: Model, apply: Callable[..., float]) -> None:
    apply(policy("x", "range", {"podSelector": {"matchLabels": {"pod": "a"}},
                                "ingress": [{"ports": [{"protocol": "TCP", "port": 81, "endPort": 9000}]}]}))
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or (port, proto) == (81, "TCP"))


def test_policy_sees_backends_behind_a_service(cluster: ClusterHandle, model: Model,
                                               apply: Callable[..., float]) -> None:
    svc = json.loads(cluster.kubectl("get", "svc", "s-x-a", "-n", "x", "-o", "json").stdout)["spec"]["clusterIP"]
    connect = f"import socket; socket.create_connection(('{svc}', 80), timeout=1); print('ok')"
    apply(policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or s == "x/b")
    assert kexec(cluster, "x/b", "python3", "-c", connect).strip() == "ok"
    with pytest.raises(AssertionError):
        kexec(cluster, "x/c", "python3", "-c", connect)


def test_open_connections_are_cut_when_a_policy_denies_them(cluster: ClusterHandle, model: Model,
                                                            apply: Callable[..., float]) -> None:
    ns, pod = "y", "a"
    proc = subprocess.Popen([kubectl_binary("1.32"), "--kubeconfig", str(cluster.kubeconfig), "exec", "-n", ns, pod,
                             "-c", "cont-80", "--", "python3", "-c", HOLD, model.ips["x/a"], "7"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")) if proc.stdout else None)
    reader.start()
    wait_for(lambda: any(l.startswith("[") for l in lines), timeout=15)
    time.sleep(1)
    written = apply(policy("x", "deny-all", {"podSelector": {"matchLabels": {"pod": "a"}}}))
    proc.wait(timeout=30)
    reader.join()
    samples = [json.loads(l) for l in lines if l.startswith("[")]
    before = [s for s in samples if s[0] < written]
    after = [s for s in samples if s[0] > written + 2.5]
    assert before and all(s[1] and s[2] for s in before), samples
    assert after and not any(s[1] or s[2] for s in after), samples


def test_invalid_policies_are_refused_with_upstream_messages(cluster: ClusterHandle, model: Model,
                                                             apply: Callable[..., float]) -> None:
    apply(policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    before = cluster.kubectl("get", "networkpolicy", "-n", "x", "-o", "json").stdout
    cases = [
        ({"ipBlock": {"cidr": "10.0.0.0/33"}},
         'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, '
         '(e.g. 10.9.8.0/24 or 2001:db8::/64)'),
        ({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}},
         'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
    ]
    for peer, message in cases:
        r = cluster.kubectl("apply", "-f", "-", check=False, stdin=json.dumps(
            policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [peer]}]})))
        assert r.returncode == 1
        assert f'The NetworkPolicy "allow-b" is invalid: {message}' in r.stderr, r.stderr
    r = cluster.kubectl("create", "-f", "-", check=False, stdin=json.dumps(
        policy("x", "ports", {"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80},
                                                                        {"port": "http", "endPort": 81}]}]})))
    assert "spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`" in r.stderr
    assert "spec.ingress[0].ports[1].endPort: Invalid value: 81: may not be specified when `port` is non-numeric" \
        in r.stderr
    assert cluster.kubectl("get", "networkpolicy", "-n", "x", "-o", "json").stdout == before
    check(cluster, model, lambda s, d, port, proto: d != "x/a" or s == "x/b")
    assert "allow-b   pod=a" in cluster.kubectl("get", "netpol", "-n", "x").stdout


def test_removing_policies_restores_full_reachability(cluster: ClusterHandle, model: Model,
                                                      apply: Callable[..., float]) -> None:
    apply(policy("x", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
          policy("y", "deny-all", {"podSelector": {}}),
          policy("z", "only-x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels":
                                                                                                  {"ns": "x"}}}]}]}))
    check(cluster, model, lambda s, d, port, proto: ns_of(s) != "x" and ns_of(d) not in ("x", "y")
          and (ns_of(d) != "z" or ns_of(s) == "x"))
    for ns in NAMESPACES:
        cluster.kubectl("delete", "networkpolicy", "--all", "-n", ns)
    check(cluster, model, everything)
    node = model.nodes["x/a"]
    listing = cluster.cli("exec", "--name", cluster.name, f"node/{node}", "--", "nft", "list", "table", "inet",
                          "kinns-network-policies").stdout
    assert "chain pod-" not in listing and "chain policy-" not in listing


# ------------------------------------------------------------------ host-gw

@pytest.fixture(scope="module")
def hostgw(state_root: Path) -> Iterator[ClusterHandle]:
    c = ClusterHandle(new_cluster_name("g"), state_root, ["--overlay", "host-gw"])
    c.up()
    try:
        yield c
    finally:
        c.down()


def test_host_gw_cross_node_and_same_node_traffic_is_filtered(hostgw: ClusterHandle) -> None:
    """With host-gw, cross-node pod traffic is routed via eth0 instead of flannel.1: filtered all the same."""
    worker, worker2 = f"{hostgw.name}-worker", f"{hostgw.name}-worker2"
    placement = {"srv": (worker, {"app": "srv"}), "ok": (worker2, {"role": "ok"}),
                 "far": (worker2, {}), "near": (worker, {})}
    hostgw.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
         "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [server(80)]}}
        for name, (node, labels) in placement.items()]}))
    hostgw.kubectl("wait", "--for=condition=Ready", "pod", *placement, "--timeout=90s", timeout=120)
    assert "flannel.1" not in hostgw.cli("exec", "--name", hostgw.name, f"node/{worker}", "--", "ip", "link").stdout
    ip = json.loads(hostgw.kubectl("get", "pod", "srv", "-o", "json").stdout)["status"]["podIP"]
    targets = json.dumps([["srv", ip, 80, "TCP"], ["srv", ip, 80, "UDP"]])

    def reach(src: str) -> list[bool]:
        out = json.loads(hostgw.kubectl("exec", src, "--", "python3", "-c", PROBE, targets).stdout)
        return [out["srv 80 TCP"], out["srv 80 UDP"]]
    assert all(reach(src) == [True, True] for src in ("ok", "far", "near"))
    hostgw.kubectl("apply", "-f", "-", stdin=json.dumps(policy("default", "only-ok", {
        "podSelector": {"matchLabels": {"app": "srv"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "ok"}}}]}]})))
    wait_for(lambda: reach("far") == [False, False], timeout=10, interval=0.5)
    assert reach("near") == [False, False]
    assert reach("ok") == [True, True]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
