"""The NetworkPolicy agent: one process per node, in the node's network namespace.

Started by the node's kubelet as the `kube-network-policies` DaemonSet's
container (`python -m kinns.netpol --hostname-override=$(MY_NODE_NAME)`),
it talks to the API server over HTTPS with its own client certificate
(`system:serviceaccount:kube-system:kube-network-policies`, allowed by the
ClusterRole of the same name to list and watch pods, namespaces and
networkpolicies), as kind's kindnetd and sigs.k8s.io/kube-network-policies
do:

    informers (Pods, Namespaces, NetworkPolicies) ── request() ──┐
                                                                 ▼
    BoundedFrequencyRunner ──► sync: Cluster ─► rules.render(node) ─► transaction ─► nft -f
                                                                      └─► conntrack: cut flows now denied

Handlers only ask for a sync, and only when something a policy can see
changed (a pod's IP, labels, node, named ports; a namespace's labels; any
policy); a burst becomes one sync (`MIN_SYNC`), so a policy write reaches
the kernel well within a second.  A sync that renders the same table
writes nothing.  The rules live in the kernel: while the API server is
away the informers retry and the table stays as it was.  A check every few
seconds notices the table gone (`nft flush ruleset`) and rewrites it from
scratch; so does the first sync after a start or a failed write.
Unlike kube-network-policies there is no NFQUEUE and no userspace verdict:
every decision is a rule in the table (see rules.py).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from ..api.discovery import VERSION_INFO
from ..client import Client, InformerFactory
from ..client.transport import HttpTransport
from ..klog import info
from ..proxy.runner import BoundedFrequencyRunner
from . import conntrack
from .model import Cluster, namespace_labels, pod_from_api, policy_from_api, slim_pod
from .rules import BASE_CHAINS, FAMILY, TABLE, Ruleset, render, transaction

log = logging.getLogger("kube-network-policies")

MIN_SYNC = 0.1             # seconds between syncs during a burst of changes
RESYNC = 60.0              # a full re-render even with no changes
CANARY_INTERVAL = 5.0
BRIDGE_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
Obj = dict[str, Any]


class ApplyError(RuntimeError):
    """nft refused the transaction; the message carries its complaint."""


def nft_apply(text: str, netns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["nft", "-f", "-"]
    r = subprocess.run(cmd, input=text, text=True, capture_output=True)
    if r.returncode != 0:
        raise ApplyError(f"nft -f failed ({r.returncode}): {r.stderr.strip()[:2000]}")


def table_present(netns: str | None = None) -> bool:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["nft", "list", "chain", FAMILY, TABLE,
                                                                BASE_CHAINS[1][0]]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def delete_table(netns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["nft", "delete", "table", FAMILY, TABLE]
    subprocess.run(cmd, capture_output=True)


def ensure_bridge_netfilter() -> str:
    """Same-node pod-to-pod traffic is bridged on cni0; it reaches the inet FORWARD hook only
    with br_netfilter's bridge-nf-call-iptables=1.  Returns a problem to log, or ""."""
    try:
        if BRIDGE_SYSCTL.read_text().strip() == "1":
            return ""
        BRIDGE_SYSCTL.write_text("1\n")
        return ""
    except OSError as e:
        return (f"cannot enable {BRIDGE_SYSCTL} ({e}): policies will not apply between pods "
                "on the same node")


T = TypeVar("T")


class ParseCache(Generic[T]):
    """API objects turned into values once per resourceVersion: with 1,000 policies, parsing
    them again on every sync would cost more than rendering."""

    def __init__(self, parse: Callable[[Obj], T]) -> None:
        self.parse = parse
        self._cache: dict[str, tuple[str, T]] = {}

    def __call__(self, objs: list[Obj]) -> list[T]:
        out: list[T] = []
        cache: dict[str, tuple[str, T]] = {}
        for obj in objs:
            meta = obj.get("metadata") or {}
            key = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
            rv = meta.get("resourceVersion") or ""
            hit = self._cache.get(key)
            if hit is None or hit[0] != rv or not rv:
                hit = (rv, self.parse(obj))
            cache[key] = hit
            out.append(hit[1])
        self._cache = cache
        return out


class Agent:
    def __init__(self, client: Client, node_name: str, *, netns: str | None = None,
                 min_sync: float = MIN_SYNC) -> None:
        self.client = client
        self.node_name = node_name
        self.netns = netns                        # None: the agent's own namespace (the node's)
        self.factory = InformerFactory(client)
        self.pods = self.factory.informer("v1", "Pod")
        self.pods.transform = slim_pod
        self.namespaces = self.factory.informer("v1", "Namespace")
        self.policies = self.factory.informer("networking.k8s.io/v1", "NetworkPolicy")
        for inf in (self.pods, self.namespaces, self.policies):
            inf.max_backoff = 5.0
        self.runner = BoundedFrequencyRunner(self._sync, min_interval=min_sync, max_interval=RESYNC)
        self.written: Ruleset | None = None       # what the table holds; None = unknown
        self.syncs = 0
        self.writes = 0
        self.last_write = 0.0                     # time.time() of the last table change
        self.cut = 0                              # conntrack entries deleted
        self._pod_values = ParseCache(pod_from_api)
        self._policy_values = ParseCache(policy_from_api)
        self._cutter: asyncio.Task[None] | None = None
        self._cut_again = False

    # ---- handlers: ask for a sync when something policies can see changed

    def _watch(self, inf: Any, project: Callable[[Obj], object], only_with_policies: bool = False) -> None:
        """Ask for a sync when what `project` sees of an object changed.  With
        `only_with_policies`, not while no NetworkPolicy exists and the table is
        empty: then no pod is isolated whatever pods do, and on a 50-node
        cluster every agent re-rendered for every pod of a rollout."""
        def request() -> None:
            if not only_with_policies or self._policies_matter():
                self.runner.request()

        def changed(old: Obj, new: Obj) -> None:
            if project(old) != project(new):
                request()
        inf.add_handlers(on_add=lambda _o: request(), on_update=changed, on_delete=lambda _o: request())

    def _policies_matter(self) -> bool:
        # the table first: while policies exist it has chains, and listing them costs a copy per event
        return self.written is None or bool(self.written.chains) or bool(self.policies.list())

    # ---- the loop

    async def run(self) -> None:
        info(log, "main.go:138", "kube-network-policies", version=VERSION_INFO["gitVersion"], node=self.node_name)
        problem = ensure_bridge_netfilter() if self.netns is None else ""
        if problem:
            log.error(problem)
        self._watch(self.pods, pod_from_api, only_with_policies=True)
        self._watch(self.namespaces, namespace_labels, only_with_policies=True)
        self._watch(self.policies, lambda o: (o.get("metadata", {}).get("labels"), o.get("spec")))
        info(log, "controller.go:211", "Starting controller", name="kube-network-policies")
        self.factory.start()
        for inf in (self.pods, self.namespaces, self.policies):
            await inf.wait_for_sync()
        info(log, "shared_informer.go:320", "Caches are synced for kube-network-policies")
        await self.runner.run_once()
        await asyncio.gather(self.runner.loop(), self._canary())

    def cluster(self) -> Cluster:
        pods = [p for p in self._pod_values(self.pods.list()) if p is not None]
        nss = {(o.get("metadata") or {}).get("name", ""): namespace_labels(o) for o in self.namespaces.list()}
        return Cluster(pods, nss, self._policy_values(self.policies.list()))

    async def _sync(self) -> None:
        self.syncs += 1
        t0 = time.perf_counter()
        rs = render(self.cluster(), self.node_name)
        text = transaction(rs, self.written)
        if not text:
            return
        fresh = self.written is None
        self.written = None                       # unknown until nft says yes
        await asyncio.to_thread(nft_apply, text, self.netns)
        self.written = rs
        self.writes += 1
        self.last_write = time.time()
        info(log, "controller.go:420", "Syncing nftables rules", fresh=fresh, pods=len(rs.isolated),
             chains=len(rs.chains), rules=rs.rule_count, elapsed=f"{time.perf_counter() - t0:.3f}s")
        self._cut_again = True
        if self._cutter is None or self._cutter.done():
            self._cutter = asyncio.ensure_future(self._cut())

    async def _cut(self) -> None:
        """Delete the conntrack entries of connections the table now denies, beside the sync
        loop (a big cut must not hold up the next policy), again after every newer write."""
        while self._cut_again:
            self._cut_again = False
            rs = self.written
            if rs is None:
                continue
            t0 = time.perf_counter()
            try:
                flows = await asyncio.to_thread(conntrack.list_flows, self.netns)
                stale = conntrack.plan(flows, rs)
                n = await asyncio.to_thread(conntrack.delete, stale, self.netns) if stale else 0
            except Exception:  # noqa: BLE001 - the rules hold; the next write tries again
                log.exception("cutting denied connections")
                continue
            self.cut += n
            if n:
                info(log, "controller.go:331", "Connections no longer allowed by network policies deleted from conntrack",
                     flows=n, elapsed=f"{time.perf_counter() - t0:.3f}s")

    async def _canary(self) -> None:
        """Notice the table flushed behind our back and write it again from scratch."""
        while True:
            await asyncio.sleep(CANARY_INTERVAL)
            if self.written is not None and not await asyncio.to_thread(table_present, self.netns):
                info(log, "controller.go:256", "nftables table missing; writing it again", table=TABLE)
                self.written = None
                self.runner.request()

    async def close(self) -> None:
        if self._cutter is not None:
            self._cutter.cancel()
        await self.factory.stop()
        await self.client.close()


def build(kubeconfig: str, node_name: str) -> Agent:
    transport = HttpTransport.from_kubeconfig(kubeconfig)
    version = VERSION_INFO["gitVersion"]
    return Agent(Client(transport, user_agent=f"kube-network-policies/{version} (linux/amd64) kubernetes"),
                 node_name)
