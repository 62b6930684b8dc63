"""The `kinns` command: up, down, status, kubeconfig, demo.

Conventions every subcommand keeps: `--name` (default `kinns`) picks the
cluster; its kubeconfig context is `kinns-<name>`; one cluster's commands
never touch another's.  Errors are one line saying what to do, exit code 1.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

# Heavier modules (netlink, the node layer) are imported inside the commands
# that need them, so `kinns status` and friends start quickly.
from .cluster import adminapi, kubeconfig
from .cluster.certs import paths as cert_paths
from .cluster.config import ClusterConfig, ConfigError, validate_name

console = Console(stderr=True)

NAME_OPTION = click.option("--name", default="kinns", show_default=True, help="cluster name")


def _fail(msg: str) -> NoReturn:
    console.print(f"[red]ERROR:[/red] {msg}", highlight=False)
    raise SystemExit(1)


def _pid(cfg: ClusterConfig) -> int | None:
    """The daemon's pid if it is alive."""
    from .cluster.lifecycle import daemon_pid
    return daemon_pid(cfg)


def _load(name: str) -> ClusterConfig | None:
    """The cluster's saved settings, or None; a damaged file is a clear error."""
    try:
        return ClusterConfig.load(name)
    except ConfigError as exc:
        _fail(str(exc))


def _running(name: str) -> ClusterConfig:
    """The config of a running cluster, or a clear error and exit 1."""
    cfg = _load(name)
    if cfg is None or _pid(cfg) is None:
        _fail(f'cluster "{name}" is not running; start it with `kinns up --name {name}`')
    return cfg


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_sizes(nodes: int, pod_subnet: str) -> str | None:
    """Why a node count cannot work with the pod network, or None."""
    try:
        net = ipaddress.ip_network(pod_subnet)
    except ValueError as exc:
        return f"invalid --pod-subnet {pod_subnet!r}: {exc}"
    if net.version != 4 or net.prefixlen > 24:
        return f"--pod-subnet {pod_subnet} must be an IPv4 range of /24 or larger (each node gets a /24)"
    ranges = 2 ** (24 - net.prefixlen)
    if nodes < 1:
        return "--nodes must be at least 1"
    if nodes > ranges:
        return (f"--nodes {nodes} is more than the pod network {pod_subnet} allows: it has room for "
                f"{ranges} nodes (a /24 each); use a larger --pod-subnet or fewer nodes")
    if nodes > 250:
        return f"--nodes {nodes} is more than one fabric /24 can address (at most 250)"
    return None


def _check_fabric(cfg: ClusterConfig) -> str | None:
    """The node network must not overlap the pod or service networks."""
    fabric = ipaddress.ip_network(cfg.fabric_subnet, strict=False)
    for what, cidr in (("--pod-subnet", cfg.cluster_cidr), ("service network", cfg.service_cidr)):
        if fabric.overlaps(ipaddress.ip_network(cidr)):
            return f"--fabric-subnet {cfg.fabric_subnet} overlaps the {what} {cidr}; choose a separate range"
    if fabric.prefixlen < 16:
        return f"--fabric-subnet {cfg.fabric_subnet} is too large: use a /16 to /29"
    return None


def _check_lb_pool(cfg: ClusterConfig, text: str) -> str | None:
    """A LoadBalancer pool must be addresses of the fabric the host reaches, and not the nodes'."""
    if not text:
        return None
    from .controllers.servicelb import parse_pool
    try:
        pool = parse_pool(text)
    except ValueError as exc:
        return f"--lb-pool: {exc}"
    fabric = ipaddress.IPv4Network(cfg.fabric_subnet, strict=False)
    if pool.first not in fabric or pool.last not in fabric:
        return f"--lb-pool {text} is outside the fabric subnet {fabric}; the host reaches LoadBalancers only there"
    first_free = fabric.network_address + 2 + cfg.nodes
    if pool.first < first_free:
        return (f"--lb-pool {text} overlaps the host (.1) and node addresses (up to {first_free - 1}); "
                f"start it at {first_free} or later")
    return None


def _check_proxy_mode(mode: str) -> str | None:
    """IPVS needs the ip_vs kernel module; refuse before anything is created."""
    if mode == "ipvs" and not Path("/proc/net/ip_vs").exists():
        return ("--proxy-mode ipvs needs the ip_vs kernel module, and this kernel has none (no /proc/net/ip_vs); "
                "use --proxy-mode nftables (the default), iptables or userspace")
    if mode == "ipvs":
        return "--proxy-mode ipvs is not built in kinns yet; use nftables (the default), iptables or userspace"
    return None


class LazyGroup(click.Group):
    """A group whose larger commands live in their own packages and are imported
    only when named (`kinns trace`, `kinns ui`), so `kinns status` stays quick."""

    LAZY: dict[str, str] = {
        "trace": "kinns.trace.command:trace",
        "ui": "kinns.ui.command:ui",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.LAZY:
            return super().get_command(ctx, cmd_name)
        import importlib
        module, attr = self.LAZY[cmd_name].split(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """kinns: a real multi-node Kubernetes cluster in network namespaces."""


@main.command()
@NAME_OPTION
@click.option("--nodes", default=3, show_default=True, help="number of nodes (one control plane + workers)")
@click.option("--overlay", type=click.Choice(["vxlan", "host-gw", "ipip"]), default="vxlan", show_default=True,
              help="flannel's VXLAN, host-gw routes, or Calico's IP-in-IP (kernel ipip, else a user-space TUN encapsulator)")
@click.option("--proxy-mode", type=click.Choice(["nftables", "iptables", "userspace", "ipvs"]), default="nftables",
              show_default=True, help="kube-proxy's mode (written into the kube-proxy ConfigMap)")
@click.option("--pod-subnet", default="10.244.0.0/16", show_default=True, help="cluster CIDR; a /24 per node")
@click.option("--fabric-subnet", default="", help="node network (default: a free 172.18.x.0/24)")
@click.option("--lb-pool", default="", help="LoadBalancer addresses, FIRST-LAST in the fabric subnet "
              "(default: the top of it, .200-.254 of a /24)")
@click.option("--wait", default=60.0, show_default=True, help="seconds to wait for the cluster to be ready")
@click.option("--store", type=click.Choice(["sqlite", "etcd"]), default="sqlite", show_default=True,
              help="where the API server keeps objects: embedded SQLite, or etcd as a static pod")
@click.option("--node-monitor-grace-period", default="", metavar="DURATION",
              help="kube-controller-manager's --node-monitor-grace-period (default 50s)")
@click.option("--disable", multiple=True, type=click.Choice(["ingress"]),
              help="leave out a packaged add-on, as k3s --disable (ingress: the ingress-nginx controller)")
def up(name: str, nodes: int, overlay: str, proxy_mode: str, pod_subnet: str, fabric_subnet: str,
       lb_pool: str, wait: float, store: str, node_monitor_grace_period: str, disable: tuple[str, ...]) -> None:
    """Start a cluster and merge its kubeconfig context kinns-NAME."""
    err = validate_name(name) or _check_sizes(nodes, pod_subnet) or _check_proxy_mode(proxy_mode)
    if err:
        _fail(err)
    old = _load(name)
    if old is not None and _pid(old) is not None:
        _fail(f'cluster "{name}" is already running (context kinns-{name}); '
              f"use another --name, or `kinns down --name {name}` first")
    if old is not None and (old.state_dir / "kubeconfigs").is_dir():
        # A stopped (or crashed, or rebooted-away) cluster: bring it back as it was.
        console.print(f"Cluster [bold]{name}[/bold] exists and is stopped: starting it with its saved settings "
                      f"(as `kinns start --name {name}`; `kinns down --name {name}` first for a new one)",
                      highlight=False)
        _start_and_wait(old, wait, "started")
        return
    cfg = ClusterConfig(name=name, nodes=nodes, overlay=overlay, proxy_mode=proxy_mode,
                        cluster_cidr=pod_subnet, fabric_subnet=fabric_subnet, store=store)
    if old is not None:
        cfg.api_port = old.api_port
        cfg.fabric_subnet = cfg.fabric_subnet or old.fabric_subnet
    from .net.fabric import FabricOverlapError, check_subnet, choose_subnet
    if cfg.fabric_subnet:
        try:
            check_subnet(name, cfg.fabric_subnet)
        except FabricOverlapError as exc:
            _fail(str(exc))
    else:
        # Chosen here, not in the daemon, so the control-plane node's address
        # (where the API listens for the cluster) is known before it starts.
        cfg.fabric_subnet = choose_subnet(name)
    err = _check_fabric(cfg) or _check_lb_pool(cfg, lb_pool)
    if err:
        _fail(err)
    cfg.lb_pool = lb_pool
    if overlay == "ipip":
        from .net.ipip import IpipUnavailable, dataplane, probe
        try:
            cfg.ipip_path = probe()
        except IpipUnavailable as exc:
            _fail(str(exc))
        how = ("the kernel's ipip module" if cfg.ipip_path == "kernel"
               else f"a user-space encapsulator per node ({dataplane()}; this kernel has no ipip module)")
        console.print(f"Overlay ipip: tunl0 by {how}", highlight=False)
    cfg.api_port = cfg.api_port or _free_port(cfg.api_host)
    if node_monitor_grace_period:
        cfg.extra["node-monitor-grace-period"] = node_monitor_grace_period
    if disable:
        cfg.extra["disable"] = ",".join(sorted(set(disable)))
    cfg.save()
    _start_and_wait(cfg, wait, "up")


def _start_and_wait(cfg: ClusterConfig, wait: float, verb: str) -> None:
    """Launch the daemon, wait for `ready` (API answering, every node's network set), merge the context."""
    from .cluster.lifecycle import start_daemon
    from .cluster.progress import latest, reset
    name = cfg.name
    start = time.monotonic()
    reset(cfg.state_dir)
    proc = start_daemon(cfg)
    with console.status(f"Starting cluster [bold]{name}[/bold] …") as status:
        while True:
            if proc.poll() is not None:
                tail = (cfg.state_dir / "daemon.log").read_text(errors="replace").strip().splitlines()[-5:]
                _fail(f"the cluster daemon exited ({proc.returncode}):\n  " + "\n  ".join(tail))
            if (cfg.state_dir / "ready").exists() and adminapi.ready(cfg):
                break
            if time.monotonic() - start > wait:
                _fail(f"the cluster was not ready within {wait:.0f}s; see {cfg.state_dir / 'daemon.log'} "
                      f"and {cfg.state_dir / 'logs'}")
            status.update(f"Starting cluster [bold]{name}[/bold] ({cfg.nodes} nodes) … {latest(cfg.state_dir)}")
            time.sleep(0.05)
    certs = cert_paths(cfg.state_dir / "pki")
    conf = kubeconfig.build(name, cfg.server_url, certs)
    kubeconfig.write_own(cfg.state_dir / "kubeconfig", conf)
    path = kubeconfig.merge_into_user(conf)
    elapsed = time.monotonic() - start
    console.print(f"[green]✓[/green] Cluster [bold]{name}[/bold] is {verb} in {elapsed:.2f}s: {cfg.nodes} nodes "
                  f"Ready (API {cfg.server_url}, context kinns-{name} in {path})", highlight=False)


@main.command()
@NAME_OPTION
def down(name: str) -> None:
    """Stop a cluster and remove everything it created."""
    try:
        cfg = ClusterConfig.load(name)
    except ConfigError:  # damaged settings: everything is still found by name
        cfg = ClusterConfig(name=name)
    if cfg is None:
        _fail(f'no cluster named "{name}" exists (nothing to remove)')
    from .cluster.lifecycle import stop_daemon
    from .cluster.teardown import teardown
    stop_daemon(cfg, timeout=10)
    teardown(cfg)
    kubeconfig.remove_from_user(name)
    console.print(f"[green]✓[/green] Cluster [bold]{name}[/bold] removed", highlight=False)


def _existing(name: str) -> ClusterConfig:
    cfg = _load(name)
    if cfg is None:
        _fail(f'no cluster named "{name}" exists; start one with `kinns up --name {name}`')
    return cfg


@main.command()
@NAME_OPTION
def stop(name: str) -> None:
    """Stop every process of a cluster and keep its state (`kinns start` brings it back)."""
    from .cluster.lifecycle import stop_cluster
    cfg = _existing(name)
    start = time.monotonic()
    stop_cluster(cfg)
    console.print(f"[green]✓[/green] Cluster [bold]{name}[/bold] stopped in {time.monotonic() - start:.2f}s; "
                  f"its state is kept in {cfg.state_dir} (`kinns start --name {name}`)", highlight=False)


@main.command()
@NAME_OPTION
@click.option("--wait", default=60.0, show_default=True, help="seconds to wait for the cluster to be ready")
def start(name: str, wait: float) -> None:
    """Start a stopped (or crashed, or rebooted-away) cluster with every object it had."""
    cfg = _existing(name)
    if _pid(cfg) is not None:
        _fail(f'cluster "{name}" is already running; `kinns stop --name {name}` first to restart it')
    _start_and_wait(cfg, wait, "started")


@main.group("node")
def node_group() -> None:
    """Take a node down as if its machine died, and bring it back."""


def _node_power(name: str, node: str, on: bool, done: str) -> None:
    """Stop or start NODE through lifecycle; its refusals are one-line errors."""
    from .cluster.lifecycle import LifecycleError, start_node, stop_node
    cfg = _running(name)
    try:
        (start_node if on else stop_node)(cfg, node)
    except LifecycleError as exc:
        _fail(str(exc))
    console.print(f"[green]✓[/green] Node [bold]{node}[/bold] {done}", highlight=False)


@node_group.command("stop")
@NAME_OPTION
@click.argument("node")
def node_stop(name: str, node: str) -> None:
    """Kill NODE's kubelet and containers and cut its link: its addresses stop answering."""
    _node_power(name, node, False, "stopped: its kubelet and pods are gone and its address does not answer; "
                "the node lifecycle controller marks it NotReady after --node-monitor-grace-period")


@node_group.command("start")
@NAME_OPTION
@click.argument("node")
def node_start(name: str, node: str) -> None:
    """Power NODE back on: its link comes up and its kubelet starts again."""
    _node_power(name, node, True, "started")


def _node_rows(cfg: ClusterConfig) -> list[dict[str, str]]:
    """Nodes as the API reports them (empty when it does not answer)."""
    try:
        data = adminapi.get_json(cfg, "/api/v1/nodes")
    except OSError:
        return []
    rows = []
    for n in data.get("items", []):
        conditions = n.get("status", {}).get("conditions", [])
        ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
        status = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", ""), "Unknown")
        ip = next((a["address"] for a in n.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"), "")
        rows.append({"name": n["metadata"]["name"], "status": status, "internalIP": ip,
                     "podCIDR": n.get("spec", {}).get("podCIDR", "")})
    return rows


@main.command()
@NAME_OPTION
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(name: str, output: str) -> None:
    """Show a cluster: its API, nodes, and every component process with its node and state."""
    from .cluster.lifecycle import components_json
    from .cluster.manifests import API_PORT
    from .net.fabric import Fabric
    cfg = _existing(name)
    pid = _pid(cfg)
    api = bool(pid) and adminapi.ready(cfg)
    state = "running" if api else ("stopped" if not pid else "control-plane-stopped")
    cp = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)[0] if cfg.fabric_subnet else None
    comps = components_json(cfg)
    nodes = _node_rows(cfg) if api else []
    doc = {"name": name, "state": state, "pid": pid, "api": cfg.server_url,
           "apiInCluster": f"https://{cp.ip}:{API_PORT}" if cp else "", "proxyMode": cfg.proxy_mode,
           "store": cfg.store, "overlay": cfg.overlay, "controlPlane": _control_plane_state(cfg),
           "context": f"kinns-{name}", "stateDir": str(cfg.state_dir), "nodes": nodes, "components": comps}
    if output == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"Cluster {name}: {state}" + (f" (daemon pid {pid})" if pid else ""))
        click.echo(f"API:     {cfg.server_url} on the host, {doc['apiInCluster']} in the cluster "
                   f"(context kinns-{name})")
        click.echo(f"Network: {cfg.overlay} overlay, kube-proxy {cfg.proxy_mode} mode; store: {cfg.store}")
        if nodes:
            click.echo("")
            click.echo(_table(["NODE", "STATUS", "INTERNAL-IP", "POD-CIDR"],
                              [[n["name"], n["status"], n["internalIP"], n["podCIDR"]] for n in nodes]))
        click.echo("")
        click.echo(_table(["COMPONENT", "NODE", "PID", "STATE"],
                          [[str(c["name"]), str(c["node"]), str(c["pid"] or "-"), str(c["state"])] for c in comps]))
    if state != "running":
        raise SystemExit(1)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows])


@main.group("control-plane")
def control_plane() -> None:
    """Stop or start the API server, controller-manager and scheduler.

    As on a kubeadm node: their static pod manifests move out of (stop) or
    back into (start) /etc/kubernetes/manifests, and the control-plane
    node's kubelet stops or starts them.  Nodes, pods, kube-proxy and the
    rules it wrote keep running: Services keep answering.
    """


def _control_plane_state(cfg: ClusterConfig) -> str:
    from .cluster.manifests import manifest_dir, stopped_dir
    from .net.fabric import Fabric
    if not cfg.fabric_subnet:
        return "unknown"
    cp = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)[0].name
    if (manifest_dir(cfg, cp) / "kube-apiserver.yaml").exists():
        return "running"
    return "stopped" if (stopped_dir(cfg, cp) / "kube-apiserver.yaml").exists() else "unknown"


def _move_manifests(name: str, want: str) -> None:
    from .cluster.manifests import manifest_dir, stopped_dir
    from .net.fabric import Fabric
    cfg = _running(name)
    cp = Fabric.plan(cfg.name, cfg.fabric_subnet, cfg.nodes, cfg.cluster_cidr)[0].name
    src, dst = (manifest_dir(cfg, cp), stopped_dir(cfg, cp))
    if want == "running":
        src, dst = dst, src
    dst.mkdir(parents=True, exist_ok=True)
    for stem in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        if (src / f"{stem}.yaml").exists():
            (src / f"{stem}.yaml").rename(dst / f"{stem}.yaml")
    deadline = time.monotonic() + 30
    while adminapi.ready(cfg) != (want == "running"):
        if time.monotonic() > deadline:
            _fail(f"the control plane did not become {want} within 30s; see "
                  f"{cfg.state_dir / 'logs' / f'kubelet-{cp}.log'}")
        time.sleep(0.05)


@control_plane.command("stop")
@NAME_OPTION
def control_plane_stop(name: str) -> None:
    """Move the control plane's manifests out of /etc/kubernetes/manifests: the kubelet stops them."""
    _move_manifests(name, "stopped")
    console.print(f"[green]✓[/green] Control plane of [bold]{name}[/bold] stopped: the API does not answer; "
                  "pods, kube-proxy and Services keep running", highlight=False)


@control_plane.command("start")
@NAME_OPTION
def control_plane_start(name: str) -> None:
    """Move the manifests back: the kubelet starts the API server, controller-manager and scheduler."""
    _move_manifests(name, "running")
    console.print(f"[green]✓[/green] Control plane of [bold]{name}[/bold] running", highlight=False)


@main.command(name="kubeconfig")
@NAME_OPTION
def kubeconfig_cmd(name: str) -> None:
    """Print the cluster's kubeconfig."""
    cfg = _load(name)
    if cfg is None or not (cfg.state_dir / "kubeconfig").exists():
        _fail(f'no cluster named "{name}" exists; start one with `kinns up --name {name}`')
    click.echo((cfg.state_dir / "kubeconfig").read_text(), nl=False)


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@NAME_OPTION
@click.option("-n", "--namespace", default="default", show_default=True, help="namespace of a pod")
@click.option("-c", "--container", default=None, help="container of a pod (default: the first)")
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(name: str, namespace: str, container: str | None, target: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in node/NAME's or pod/NAME's namespaces (e.g. `-- ip route`)."""
    from .cluster.nodeexec import ExecError, node_command, pod_command
    cfg = _running(name)
    kind, _, obj = target.partition("/")
    env = dict(os.environ)
    try:
        if kind in ("node", "nodes", "no"):
            argv, extra = node_command(cfg, obj, list(command))
            env.update(extra)
        elif kind in ("pod", "pods", "po"):
            argv = pod_command(cfg, namespace, obj, container, list(command))
        else:
            _fail(f'target must be node/<name> or pod/<name>, not "{target}"')
    except ExecError as exc:
        _fail(str(exc))
    os.execvpe(argv[0], argv, env)


@main.command()
@NAME_OPTION
def demo(name: str) -> None:
    """Deploy the demo app (Deployment + NodePort Service) with kubectl."""
    from .cluster.demo import DEMO_MANIFEST, ask, next_steps
    cfg = _running(name)
    kubectl = ["kubectl", "--kubeconfig", str(cfg.state_dir / "kubeconfig")]
    r = subprocess.run([*kubectl, "apply", "-f", "-"], input=DEMO_MANIFEST, text=True, capture_output=True)
    if r.returncode != 0:
        _fail(f"kubectl apply of the demo failed: {r.stderr.strip()}")
    click.echo(r.stdout.rstrip())
    subprocess.run([*kubectl, "rollout", "status", "deploy/hello", "--timeout=60s"], check=False)
    subprocess.run([*kubectl, "get", "pods", "-l", "app=hello", "-o", "wide"], check=False)
    out = subprocess.run([*kubectl, "get", "pods", "-l", "app=hello", "-o",
                          "jsonpath={.items[0].metadata.name} {.items[0].status.podIP}"],
                         text=True, capture_output=True).stdout.split()
    pod, ip = (out[0], out[1]) if len(out) == 2 else ("<pod>", "<pod IP>")

    def get(*args: str) -> str:
        return subprocess.run([*kubectl, "get", *args], text=True, capture_output=True).stdout.strip()

    cluster_ip = get("svc", "hello", "-o", "jsonpath={.spec.clusterIP}")
    node_port = get("svc", "hello", "-o", "jsonpath={.spec.ports[0].nodePort}")
    nodes = get("nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.addresses[0].address} {end}")
    node_ips = dict(item.split("=", 1) for item in nodes.split())
    proxy = get("pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy", "-o", "jsonpath={.items[0].metadata.name}")
    click.echo("")
    for node, node_ip in sorted(node_ips.items()):
        answer = ask(f"http://{node_ip}:{node_port}/")
        click.echo(f"curl http://{node_ip}:{node_port}/  ({node}) → {answer or 'no answer'}")
    worker = node_ips.get(f"{name}-worker") or next(iter(node_ips.values()), "<node IP>")
    click.echo("")
    click.echo(next_steps(name, pod, ip, proxy_mode=cfg.proxy_mode, cluster_ip=cluster_ip, node_port=node_port,
                          worker_ip=worker, kube_proxy_pod=proxy or "<kube-proxy pod>"))


if __name__ == "__main__":
    main()
