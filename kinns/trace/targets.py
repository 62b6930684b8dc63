"""What SOURCE and DEST name: parsed from the command line, then looked up in the API.

SOURCE is `pod/NAME`, `node/NAME` or `host`.  DEST is `svc/NAME[:PORT]`,
`pod/NAME:PORT`, `ADDRESS[:PORT]` (a node's NodePort, a LoadBalancer IP, a
pod IP), `http://ADDRESS[:PORT]/PATH` (an Ingress path: the probe is an HTTP
GET), or a DNS name `NAME[:PORT]`, resolved as the source would resolve it
(a pod asks the nameserver in its own /etc/resolv.conf with its search
list; the host and nodes use the host's resolver).  A port-less address or
name is pinged (ICMP).  `parse_source`/`parse_dest` are pure; `plan` does
the API look-ups and the DNS query, and returns everything the probe and
the hop builder need.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..cluster.config import ClusterConfig
from ..cluster.adminapi import get_json
from ..dns import wire
from ..net import netns as nsmod
from ..net.desired import node_netns, pod_netns
from ..node.dnsconfig import parse_resolv_conf


class TargetError(Exception):
    """SOURCE or DEST is malformed or names nothing; the message says what to fix."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str                 # pod | node | host
    name: str = ""


@dataclass(frozen=True)
class DestSpec:
    kind: str                 # svc | pod | addr | name
    name: str                 # service/pod name, address or DNS name
    port: str = ""            # number or (svc/pod) a port name; "" = none given
    path: str | None = None   # an HTTP path: the probe is a GET


def parse_source(text: str) -> SourceSpec:
    if text == "host":
        return SourceSpec("host")
    kind, _, name = text.partition("/")
    if kind in ("pod", "po", "pods") and name:
        return SourceSpec("pod", name)
    if kind in ("node", "no", "nodes") and name:
        return SourceSpec("node", name)
    raise TargetError(f'source "{text}": use pod/NAME, node/NAME or host')


def _split_port(text: str) -> tuple[str, str]:
    host, sep, port = text.rpartition(":")
    return (host, port) if sep and host else (text, "")


def parse_dest(text: str) -> DestSpec:
    if "://" in text:
        url = urlsplit(text)
        if url.scheme != "http" or not url.hostname:
            raise TargetError(f'destination "{text}": only http://ADDRESS[:PORT]/PATH URLs are traced')
        return DestSpec(_addr_kind(url.hostname), url.hostname, str(url.port or 80), url.path or "/")
    kind, sep, rest = text.partition("/")
    if sep and kind in ("svc", "service", "services") and rest:
        name, port = _split_port(rest)
        return DestSpec("svc", name, port)
    if sep and kind in ("pod", "po", "pods") and rest:
        name, port = _split_port(rest)
        if not port:
            raise TargetError(f'destination "{text}": give the port, pod/NAME:PORT')
        return DestSpec("pod", name, port)
    addr, slash, path = text.partition("/")
    host, port = _split_port(addr)
    if not host or (port and not port.isdigit()):
        raise TargetError(f'destination "{text}": use svc/NAME[:PORT], pod/NAME:PORT, ADDRESS[:PORT], '
                          f"http://ADDRESS/PATH or a DNS name")
    return DestSpec(_addr_kind(host), host, port, "/" + path if slash else None)


def _addr_kind(host: str) -> str:
    try:
        ipaddress.IPv4Address(host)
        return "addr"
    except ValueError:
        return "name"


# ------------------------------------------------------------------ looked up

@dataclass
class PodInfo:
    namespace: str
    name: str
    node: str
    ip: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Plan:
    """Everything a trace needs, resolved before the probe is sent."""

    source_label: str
    dest_label: str
    protocol: str
    address: str
    port: int
    source_ns: str | None              # network namespace the probe leaves from (None: the host)
    source_node: str | None
    source_pod: PodInfo | None = None
    http: tuple[str, str] | None = None
    resolved: dict[str, str] | None = None
    dns: dict[str, Any] | None = None   # the DNS exchange, when a name was given
    service: dict[str, Any] | None = None
    nodes: dict[str, str] = field(default_factory=dict)        # node name -> its netns
    node_ips: dict[str, str] = field(default_factory=dict)     # node IP -> node name
    pods_by_ip: dict[str, PodInfo] = field(default_factory=dict)
    dest_pod: PodInfo | None = None


def _pods(items: list[dict[str, Any]]) -> dict[str, PodInfo]:
    out: dict[str, PodInfo] = {}
    for p in items:
        st, spec, md = p.get("status") or {}, p.get("spec") or {}, p["metadata"]
        ip = st.get("podIP")
        if ip and not spec.get("hostNetwork") and st.get("phase") in ("Running", "Pending"):
            out[ip] = PodInfo(md["namespace"], md["name"], spec.get("nodeName", ""), ip, md["uid"])
    return out


def _get(cfg: ClusterConfig, path: str, what: str) -> dict[str, Any]:
    try:
        return get_json(cfg, path, timeout=10)
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("message", str(e))
        except ValueError:
            msg = str(e)
        raise TargetError(f"{what}: {msg}") from None
    except OSError as e:
        raise TargetError(f"{what}: the API server did not answer ({e})") from None


def _pod(cfg: ClusterConfig, namespace: str, name: str) -> PodInfo:
    p = _get(cfg, f"/api/v1/namespaces/{namespace}/pods/{name}", f"pod/{name}")
    found = _pods([p])
    if not found:
        raise TargetError(f'pod "{name}" in namespace {namespace} has no pod IP yet (or uses the host network)')
    return next(iter(found.values()))


def _service_port(svc: dict[str, Any], port: str) -> dict[str, Any]:
    ports = svc["spec"].get("ports") or []
    name = svc["metadata"]["name"]
    if not ports:
        raise TargetError(f'service "{name}" has no ports')
    if not port:
        return ports[0]  # type: ignore[no-any-return]
    for p in ports:
        if str(p.get("port")) == port or p.get("name") == port:
            return p  # type: ignore[no-any-return]
    have = ", ".join(str(p.get("name") or p["port"]) for p in ports)
    raise TargetError(f'service "{name}" has no port {port} (ports: {have})')


def _pod_port(cfg: ClusterConfig, pod: PodInfo, port: str) -> int:
    if port.isdigit():
        return int(port)
    obj = _get(cfg, f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}", f"pod/{pod.name}")
    for c in obj["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
    raise TargetError(f'pod "{pod.name}" has no port named {port}')


def _resolv_conf(cfg: ClusterConfig, pod: PodInfo) -> str:
    # imported here: it brings in netlink, which only a pod's DNS look-up needs
    from ..cluster.nodeexec import ExecError, pod_command
    try:
        cmd = pod_command(cfg, pod.namespace, pod.name, None, ["cat", "/etc/resolv.conf"])
    except ExecError as e:
        raise TargetError(f"pod/{pod.name}: {e}") from None
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    return r.stdout


def _query(ns: str | None, server: str, name: str, timeout: float) -> wire.Message | None:
    with nsmod.entered(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.connect((server, 53))
        qid = int(time.monotonic_ns() & 0xFFFF)
        sock.send(wire.make_query(name, wire.A, qid=qid))
        while True:
            msg = wire.decode_message(sock.recv(4096))
            if msg.id == qid:
                return msg
    except (OSError, wire.WireError):
        return None
    finally:
        sock.close()


def resolve_in_pod(cfg: ClusterConfig, pod: PodInfo, ns: str, name: str, timeout: float) -> dict[str, Any]:
    """Resolve `name` as the pod's resolver would: its nameserver, search list and ndots."""
    conf = parse_resolv_conf(_resolv_conf(cfg, pod))
    ndots = next((int(o.split(":")[1]) for o in conf.options if o.startswith("ndots:")), 1)
    bare = name.rstrip(".")
    if name.endswith(".") or bare.count(".") >= ndots:
        candidates = [bare] + [f"{bare}.{s}" for s in conf.searches] if not name.endswith(".") else [bare]
    else:
        candidates = [f"{bare}.{s}" for s in conf.searches] + [bare]
    server = conf.servers[0] if conf.servers else ""
    tried: list[dict[str, str]] = []
    for cand in candidates:
        msg = _query(ns, server, cand, timeout) if server else None
        if msg is None:
            tried.append({"name": cand, "rcode": "no answer"})
            break
        addrs = [rr.data for rr in msg.answer if rr.type == wire.A]
        rcode = {0: "NOERROR", 3: "NXDOMAIN", 2: "SERVFAIL"}.get(msg.rcode, str(msg.rcode))
        tried.append({"name": cand, "rcode": rcode})
        if addrs:
            return {"server": server, "tried": tried, "name": cand, "address": str(addrs[0]),
                    "answers": [str(a) for a in addrs]}
    return {"server": server, "tried": tried, "name": None, "address": None}


def resolve_on_host(name: str) -> dict[str, Any]:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as e:
        return {"server": "host resolver", "tried": [{"name": name, "rcode": str(e.strerror)}],
                "name": None, "address": None}
    addrs = sorted({str(i[4][0]) for i in infos})
    return {"server": "host resolver", "tried": [{"name": name, "rcode": "NOERROR"}], "name": name,
            "address": addrs[0], "answers": addrs}


def plan(cfg: ClusterConfig, source: str, dest: str, namespace: str = "default", protocol: str | None = None,
         timeout: float = 2.0) -> Plan:
    src, dst = parse_source(source), parse_dest(dest)
    with ThreadPoolExecutor(4) as pool:
        f_nodes = pool.submit(_get, cfg, "/api/v1/nodes", "nodes")
        f_pods = pool.submit(_get, cfg, "/api/v1/pods", "pods")
        f_svc = pool.submit(_get, cfg, f"/api/v1/namespaces/{namespace}/services/{dst.name}",
                            f"svc/{dst.name}") if dst.kind == "svc" else None
        nodes_obj, pods_obj = f_nodes.result(), f_pods.result()
        svc = f_svc.result() if f_svc is not None else None
    nodes: dict[str, str] = {}
    node_ips: dict[str, str] = {}
    for n in nodes_obj.get("items", []):
        nm = n["metadata"]["name"]
        nodes[nm] = node_netns(cfg.name, nm)
        for a in (n.get("status") or {}).get("addresses") or []:
            if a.get("type") == "InternalIP":
                node_ips[a["address"]] = nm
    pods_by_ip = _pods(pods_obj.get("items", []))
    by_name = {(p.namespace, p.name): p for p in pods_by_ip.values()}

    source_pod: PodInfo | None = None
    if src.kind == "pod":
        source_pod = by_name.get((namespace, src.name)) or _pod(cfg, namespace, src.name)
        source_ns, source_node = pod_netns(cfg.name, source_pod.uid), source_pod.node
        source_label = f"pod/{src.name}"
    elif src.kind == "node":
        if src.name not in nodes:
            raise TargetError(f'node "{src.name}" not found in cluster {cfg.name} (nodes: {", ".join(nodes)})')
        source_ns, source_node, source_label = nodes[src.name], src.name, f"node/{src.name}"
    else:
        source_ns, source_node, source_label = None, None, "host"
    if source_ns is not None and not nsmod.exists(source_ns):
        raise TargetError(f"{source_label} has no network namespace {source_ns} (is it running?)")

    p = Plan(source_label, dest, protocol or "tcp", "", 0, source_ns, source_node, source_pod,
             nodes=nodes, node_ips=node_ips, pods_by_ip=pods_by_ip)
    if dst.kind == "svc":
        assert svc is not None
        sp = _service_port(svc, dst.port)
        ip = svc["spec"].get("clusterIP") or ""
        if not ip or ip == "None":
            raise TargetError(f'service "{dst.name}" is headless (no ClusterIP); trace one of its pods: pod/NAME:PORT')
        p.address, p.port = ip, int(sp["port"])
        p.protocol = protocol or str(sp.get("protocol", "TCP")).lower()
        p.dest_label = f"svc/{dst.name}:{sp['port']}"
        p.service = {"namespace": namespace, "name": dst.name, "port": sp.get("name") or str(sp["port"]),
                     "type": svc["spec"].get("type", "ClusterIP")}
        p.resolved = {"name": f"{dst.name}.{namespace}.svc.cluster.local", "address": ip}
    elif dst.kind == "pod":
        pod = by_name.get((namespace, dst.name)) or _pod(cfg, namespace, dst.name)
        p.address, p.port, p.dest_pod = pod.ip, _pod_port(cfg, pod, dst.port), pod
        p.dest_label = f"pod/{dst.name}:{p.port}"
    else:
        if dst.kind == "name":
            if source_pod is not None:
                p.dns = resolve_in_pod(cfg, source_pod, source_ns or "", dst.name, min(timeout, 0.5))
            else:
                p.dns = resolve_on_host(dst.name)
            if p.dns["address"]:
                p.resolved = {"name": p.dns["name"], "address": p.dns["address"]}
            p.address = p.dns["address"] or ""
        else:
            p.address = dst.name
        p.port = int(dst.port) if dst.port else 0
        if not p.port:
            p.protocol = "icmp"
        if dst.path is not None:
            p.http = (dst.name if not dst.port or dst.port == "80" else f"{dst.name}:{dst.port}", dst.path)
    if p.address in pods_by_ip:
        p.dest_pod = pods_by_ip[p.address]
    return p
