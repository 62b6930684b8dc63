"""One trace, start to end: look up, arm the nodes, send the probe, read what the kernels did.

Order matters for correctness, not only speed: the trace tables and their
monitors are in place (and listening) before the probe leaves; the probe
runs in a thread while the main thread watches the events, so a drop
verdict ends the wait at once instead of at the timeout; the monitors are
drained until quiet, the probe's conntrack entries read, and then the
tables removed - in a `finally`, with SIGTERM turned into an exception for
the duration so `kill` cleans up as Ctrl-C does.  One trace at a time per
cluster (a lock file in its state directory): the tables of two traces
would mark each other's probes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

from ..cluster.config import ClusterConfig
from ..cluster.adminapi import get_json as api_get
from ..filelock import file_lock
from . import hops as hopmod
from . import kernel, probe
from .nftrace import Parser
from ..net.desired import pod_netns
from .targets import Plan, plan as make_plan


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM (and SIGINT, which Python already raises) end the trace through its finally blocks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old_term = signal.signal(signal.SIGTERM, _raise)
    old_int = signal.signal(signal.SIGINT, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def _cluster_lock(cfg: ClusterConfig) -> AbstractContextManager[None]:
    """One trace per cluster at a time: two would share the trace tables."""
    return file_lock(cfg.state_dir / "trace.lock")


def _veths(cluster: str, p: Plan, endpoint_ip: str | None = None) -> dict[str, str]:
    """Node-side veth names of the source and destination pods (the links' own peer indexes)."""
    pods = {pod.key: pod for pod in (p.source_pod, p.dest_pod, p.pods_by_ip.get(endpoint_ip or ""))
            if pod is not None and pod.node in p.nodes}
    names = kernel.peer_links([(pod_netns(cluster, pod.uid), p.nodes[pod.node]) for pod in pods.values()])
    return {name: key for key, name in zip(pods, names) if name}


def _onward(p: Plan, ctx: hopmod.Context, node: str, src: str | None,
            only: set[str] | None = None) -> tuple[str, int, str] | None:
    (_, out, _), = kernel.run_all([(p.nodes[node], ["conntrack", "-L", "-p", p.protocol])])
    lines = [ln for ln in out.splitlines() if not only or any(f"dst={ip} " in ln for ip in only)]
    return hopmod.onward_connection(lines, ctx, p.protocol, src)


def _endpoint_of(p: Plan, ip: str, port: int) -> dict[str, Any]:
    pod = p.pods_by_ip.get(ip)
    return {"pod": pod.name if pod else None, "namespace": pod.namespace if pod else None, "ip": ip, "port": port}


def _userspace_endpoint(cfg: ClusterConfig, p: Plan, ctx: hopmod.Context, hops: list[dict[str, Any]],
                        node: str) -> dict[str, Any] | None:
    """Userspace kube-proxy: the endpoint its own connection went to (the node's conntrack table)."""
    ips: set[str] = set()
    if p.service is not None:
        sel = f"kubernetes.io/service-name={p.service['name']}"
        slices = api_get(cfg, f"/apis/discovery.k8s.io/v1/namespaces/{p.service['namespace']}/endpointslices"
                         f"?labelSelector={sel}")
        ips = {a for s in slices.get("items", []) for e in s.get("endpoints") or [] for a in e.get("addresses", [])}
    found = _onward(p, ctx, node, None, ips)
    if found is None:
        return None
    ip, port, line = found
    ep = _endpoint_of(p, ip, port)
    where = next(i for i, h in enumerate(hops) if h["step"] == "nat") + 1
    hops.insert(where, {"step": "nat", "node": node,
                        "summary": f"kube-proxy (userspace) connected from the node to "
                                   f"{'pod ' + ep['pod'] + ' ' if ep['pod'] else ''}{ip}:{port}",
                        "detail": {"conntrack": line}})
    return ep


def _ingress_backend(p: Plan, ctx: hopmod.Context, hops: list[dict[str, Any]],
                     endpoint: dict[str, Any]) -> dict[str, Any] | None:
    """An HTTP probe that reached an ingress controller: the pod it proxied the request to."""
    ctl = p.pods_by_ip.get(endpoint["ip"])
    if p.http is None or ctl is None or ctl.node not in p.nodes or "ingress" not in ctl.namespace:
        return None
    found = _onward(p, ctx, ctl.node, ctl.ip)
    if found is None:
        return None
    ip, port, line = found
    ep = _endpoint_of(p, ip, port)
    at = max((i + 1 for i, h in enumerate(hops) if h["step"] == "arrive"), default=len(hops))
    hops.insert(at, {"step": "service", "node": ctl.node,
                 "summary": f"ingress controller {ctl.name} proxied GET {p.http[1]} (Host {p.http[0]}) to "
                            f"{'pod ' + ep['pod'] + ' ' if ep['pod'] else ''}{ip}:{port}",
                 "detail": {"controller": ctl.key, "conntrack": line, "path": p.http[1]}})
    return ep


def _dns_hop(p: Plan) -> dict[str, Any] | None:
    if p.dns is None:
        return None
    tried = ", ".join(f"{t['name']} {t['rcode']}" for t in p.dns["tried"])
    if p.dns["address"]:
        summary = f"{p.dns['name']} → {p.dns['address']} (asked {p.dns['server']}: {tried})"
    else:
        summary = f"no address for it (asked {p.dns['server']}: {tried})"
    return {"step": "dns", "node": p.source_node, "summary": summary, "detail": dict(p.dns)}


def _veth_hop(p: Plan, veths: dict[str, str]) -> dict[str, Any] | None:
    if p.source_pod is None:
        return None
    veth = next((v for v, k in veths.items() if k == p.source_pod.key), None)
    return {"step": "veth", "node": p.source_node,
            "summary": f"pod {p.source_pod.name} ({p.source_pod.ip}) eth0 → {veth or '?'} on cni0 of {p.source_node}",
            "detail": {"pod_interface": "eth0", "node_interface": veth, "bridge": "cni0"}}


def run(cfg: ClusterConfig, source: str, dest: str, namespace: str = "default", timeout: float = 2.0,
        protocol: str | None = None) -> dict[str, Any]:
    """Trace one probe from SOURCE to DEST; the contract's JSON object (see kinns/trace/__init__.py)."""
    t0 = time.monotonic()
    p = make_plan(cfg, source, dest, namespace, protocol, timeout)
    result: dict[str, Any] = {"source": p.source_label, "dest": p.dest_label, "protocol": p.protocol, "ok": False,
                              "resolved": p.resolved, "endpoint": None, "hops": [], "stopped": None}
    dns = _dns_hop(p)
    if dns is not None:
        result["hops"].append(dns)
    if not p.address:
        result["stopped"] = {"step": "dns", "reason": "NXDOMAIN", "policy": None, "rule": None}
        result["seconds"] = round(time.monotonic() - t0, 3)
        return result
    veths = _veths(cfg.name, p)
    namespaces = list(p.nodes.values())
    node_of = {ns: n for n, ns in p.nodes.items()}
    with _signals_raise(), _cluster_lock(cfg), kernel.session(namespaces) as s:
        cancel = threading.Event()
        box: list[probe.Outcome] = []
        th = threading.Thread(target=lambda: box.append(
            probe.send(p.source_ns, p.protocol, p.address, p.port, timeout, cancel, p.http)), daemon=True)
        th.start()
        parsers = {ns: Parser() for ns in namespaces}
        events: dict[str, list[Any]] = {ns: [] for ns in namespaces}

        raw: list[str] = []

        def take(lines: list[kernel.Line]) -> None:
            for ln in lines:
                raw.append(f"{node_of[ln.netns]}: {ln.text.rstrip()}")
                ev = parsers[ln.netns].feed(ln.text)
                if ev is not None:
                    events[ln.netns].append(ev)
                    if ev.probe and ev.verdict == "drop":
                        cancel.set()
        while th.is_alive():
            take(s.drain(0.01, 0.05))
        th.join()
        take(s.drain(0.03, 0.3))
        ct = kernel.conntrack(namespaces)
    outcome = box[0] if box else probe.Outcome(False, "error", error="probe did not run")
    if outcome.local[1]:    # entries of earlier traces still carry the bit until they expire
        ct = {ns: [ln for ln in lines if f"sport={outcome.local[1]} " in ln] for ns, lines in ct.items()}
    ctx = hopmod.Context(p.protocol, p.address, p.port, p.source_node,
                         pod_names={ip: (pi.namespace, pi.name) for ip, pi in p.pods_by_ip.items()},
                         node_ips=p.node_ips, veths=veths, source_label=p.source_label)
    xt = [ns for ns, evs in events.items() if hopmod.uses_iptables(evs)]
    for ns, (_, saved, _) in zip(xt, kernel.run_all([(ns, ["iptables-save"]) for ns in xt])):
        hopmod.annotate_xt(events[ns], saved)
    flows = [hopmod.split(node_of[ns], evs) for ns, evs in events.items()]
    hops, stopped, endpoint = hopmod.build(flows, ctx)
    ep_pod = p.pods_by_ip.get(endpoint["ip"]) if endpoint else None
    if ep_pod is not None and ep_pod.key not in veths.values():    # the kernel chose it: name its veth too
        ctx.veths.update(_veths(cfg.name, p, ep_pod.ip))
        hops, stopped, endpoint = hopmod.build(flows, ctx)
    redirect = next((h for h in hops if h["step"] == "nat" and "REDIRECT" in h["summary"]), None)
    if redirect is not None and endpoint is None and redirect["node"] in p.nodes:
        endpoint = _userspace_endpoint(cfg, p, ctx, hops, redirect["node"])
    if endpoint is not None and p.http is not None and outcome.ok:
        endpoint = _ingress_backend(p, ctx, hops, endpoint) or endpoint
    vh = _veth_hop(p, veths)
    result["hops"] += ([vh] if vh else []) + hops
    for h in result["hops"]:
        if h["step"] == "nat" and h["node"] in p.nodes and ct.get(p.nodes[h["node"]]) and \
                "conntrack" not in h["detail"]:
            h["detail"]["conntrack"] = ct[p.nodes[h["node"]]][0]
    if endpoint is None and p.dest_pod is not None:
        endpoint = {"pod": p.dest_pod.name, "namespace": p.dest_pod.namespace, "ip": p.dest_pod.ip, "port": p.port}
    result["endpoint"] = endpoint
    if stopped is None and not outcome.ok:
        stopped = hopmod.answer_stop(outcome.result, result["hops"], ctx)
    if outcome.answer:
        result["answer"] = outcome.answer
    result["stopped"] = stopped
    result["ok"] = outcome.ok and stopped is None
    result["probe"] = {"result": outcome.result, "local": f"{outcome.local[0]}:{outcome.local[1]}",
                       "error": outcome.error, "seconds": round(outcome.seconds, 4)}
    result["conntrack"] = {node_of[ns]: lines for ns, lines in ct.items() if lines}
    if os.environ.get("KINNS_TRACE_RAW"):     # the monitors' own lines, for debugging a reading
        result["raw"] = raw
    result["seconds"] = round(time.monotonic() - t0, 3)
    return result
