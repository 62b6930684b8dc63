"""The kubelet: registers a node and runs the pods bound to it.

Division of labour: the kubelet talks to the API (Node, Lease, pod status,
Events) and decides; the network plugin (`kinns.net`) gives each pod its
namespace and address; the runtime (`runtime.Runtime`) runs container
processes; `podstatus` turns what happened into the status users read.

One reconcile per pod key, level-triggered: compare the pod's spec with the
containers the runtime has, start what is missing (after the restart
back-off, CrashLoopBackOff), and write the status when it changed.  A pod
with a deletionTimestamp is stopped (SIGTERM, grace period, SIGKILL), its
network torn down, and then deleted for good with grace period 0, as
upstream's kubelet finishes a graceful deletion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import aiohttp

from ..api.errors import ApiError
from ..client.client import Client, Obj
from ..client.informer import InformerFactory
from ..controllers.base import Controller
from ..net import overlay, pod_network, portmap
from ..net.desired import NodeNet, vtep_mac
from . import images, nodeinfo, staticpods, volumes
from .localstorage import EmptyDirLimits
from .mountns import NodeMounts
from .checkpoint import PodCheckpoints
from .downward import resource_value
from .envvars import container_env, pod_fields, service_env
from .containers import all_containers
from .podstatus import pod_status, ts
from .podsync import PodSync
from .probes import Prober
from .runtime import ContainerStatus, Runtime
from .sandbox import Sandbox, create_sandbox, remove_sandbox_dir

log = logging.getLogger(__name__)
T = TypeVar("T")

# Blocking node work (netlink, namespaces, sandbox files, stopping processes)
# runs here, apart from the default executor the API store and others share.
_NODE_IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kinns-node")


async def _io(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_NODE_IO, functools.partial(fn, *args, **kwargs))


def _route_facts(node: Obj) -> tuple[Any, ...]:
    """What peers route by: the node's pod range and its InternalIP."""
    addrs = [a.get("address") for a in (node.get("status") or {}).get("addresses", [])
             if a.get("type") == "InternalIP"]
    return ((node.get("spec") or {}).get("podCIDR"), tuple(addrs))


LEASE_RENEW = 10.0
STATUS_EVERY = 30.0


TERMINAL_PHASES = ("Succeeded", "Failed")
SANDBOX_RETRY_SECONDS = 5.0


@dataclass
class PodRecord:
    """What this kubelet holds for one pod."""

    uid: str
    key: str
    sandbox: Sandbox | None = None
    attached_ip: str = ""
    start_time: str = ""
    runs: dict[str, ContainerStatus] = field(default_factory=dict)       # latest run per container
    previous: dict[str, ContainerStatus] = field(default_factory=dict)   # the run before
    restarts: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    backoff: dict[str, float] = field(default_factory=dict)              # current back-off seconds
    retry_at: dict[str, float] = field(default_factory=dict)             # no restart before this time
    events_sent: set[str] = field(default_factory=set)
    volumes: dict[str, str] | None = None                                # host path per volume, once prepared
    network_released: bool = False                                       # finished: its address given back


class Kubelet(Controller):
    workers = 4

    def __init__(self, client: Client, node: NodeNet, runtime: Runtime, *, state_dir: Path,
                 control_plane: bool, overlay_mode: str, cluster_cidr: str,
                 cluster_dns: str = "10.96.0.10", factory: InformerFactory | None = None,
                 manifest_dir: Path | None = None, isolate_control_plane: bool = True) -> None:
        self.name = f"kubelet-{node.name}"
        super().__init__(client, factory or InformerFactory(client))
        self.node = node
        self.runtime = runtime
        self.state_dir = state_dir
        self.control_plane = control_plane
        self.isolate_control_plane = isolate_control_plane   # False in a one-node cluster, as kind
        self.overlay_mode = overlay_mode
        self.cluster_cidr = cluster_cidr
        self.cluster_dns = cluster_dns
        self.records: dict[str, PodRecord] = {}     # by pod UID
        # The same records by pod key: reconcile looked its record up by
        # scanning all of them, O(pods on the node) for every pod event.
        self._by_key: dict[str, PodRecord] = {}
        self.network_ready = asyncio.Event()
        self.prober = Prober(node.netns, runtime)
        # Init containers, sidecars, ephemeral containers, lifecycle hooks (podsync.py).
        self.podsync = PodSync(self)
        self._loops: list[asyncio.Task[None]] = []
        self._node_uid = ""
        self._net_dirty = False
        self._net_task: asyncio.Task[None] | None = None
        self._net_signature: object = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Projected ServiceAccount tokens of this node's pods, renewed with the heartbeat.
        self.tokens = volumes.TokenManager()
        # tmpfs and subPath mounts live in the runtime's mount namespace; emptyDir sizeLimit eviction.
        self.mounts = NodeMounts(runtime.state_dir)
        self.emptydir_limits = EmptyDirLimits(self)
        # What this kubelet runs, on disk, for the kubelet that comes after it (see checkpoint.py).
        self.checkpoints = PodCheckpoints(self, state_dir / "kubelet" / node.name / "checkpoints", _io)
        # Static pods (--pod-manifest-path) by key; they run whether or not the API answers.
        self.manifest_dir = manifest_dir
        self.static: dict[str, Obj] = {}
        self._manifest_errors: dict[str, str] = {}
        self._static_locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------- informers

    def setup(self) -> None:
        self.pods = self.factory.informer("v1", "Pod", field_selector=f"spec.nodeName={self.node.name}")
        self.pods.add_handlers(on_add=self.enqueue_obj, on_update=lambda o, n: self.enqueue_obj(n),
                               on_delete=self.enqueue_obj)
        self.services = self.factory.informer("v1", "Service")
        self.nodes = self.factory.informer("v1", "Node")
        self.nodes.add_handlers(on_add=self._node_event, on_update=self._node_changed,
                                on_delete=self._node_event)

    def on_container_exit(self, st: ContainerStatus) -> None:
        """Runtime callback (from its reader thread, or from a node I/O thread
        when a start fails at once): look at the pod again.  The work queue
        belongs to the event loop, so the key is added there."""
        rec = self.records.get(st.pod_uid)
        if rec is None:
            return
        if self._loop is None:
            self.queue.add(rec.key)
        else:
            self._loop.call_soon_threadsafe(self.queue.add, rec.key)

    # ------------------------------------------------------- node lifecycle

    async def start(self, sync_timeout: float | None = 30.0) -> None:
        self._loop = asyncio.get_running_loop()
        self.checkpoints.restore()  # pods whose containers outlived the previous kubelet
        if self.manifest_dir is not None:
            # Static pods first, without the API: one of them may be the API server.
            if not self._setup_done:
                self.setup()
                self._setup_done = True
            await self._scan_manifests()  # before any worker runs: restored static pods must be known as such
            self._loops.append(asyncio.create_task(self._watch_manifests(), name=f"{self.name}-manifests"))
        await self._register_until_served()
        await super().start(sync_timeout)
        self._loops.append(asyncio.create_task(self._heartbeat(), name=f"{self.name}-heartbeat"))

    async def _register_until_served(self) -> None:
        """Register the Node, waiting for an API server that is still starting (kubelets
        retry forever; on the control-plane node the API server is our own static pod)."""
        delay = 0.1
        while True:
            try:
                await self._register()
                return
            except ApiError as exc:
                if exc.code < 500:
                    raise
                err: Exception = exc
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                err = exc
            log.info('%s: "Unable to register node with API server" err="%s"', self.name, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    # ----------------------------------------------------------- static pods

    async def _watch_manifests(self) -> None:
        """Poll the manifest directory (upstream watches it and re-lists every 20 s)."""
        while True:
            await asyncio.sleep(1.0)
            await self._scan_manifests()

    async def _scan_manifests(self) -> None:
        """Read the manifest directory once; start, replace or stop what changed."""
        assert self.manifest_dir is not None
        pods, errors = await asyncio.to_thread(staticpods.read_dir, self.manifest_dir, self.node.name)
        for path, msg in errors.items():
            if self._manifest_errors.get(path) != msg:
                log.error('%s: "Could not process manifest file" err="%s"', self.name, msg)
        self._manifest_errors = errors
        changed = {k for k in set(pods) | set(self.static)
                   if (pods.get(k) or {}).get("metadata", {}).get("uid")
                   != (self.static.get(k) or {}).get("metadata", {}).get("uid")}
        for key in changed:
            if key in pods:
                self.static[key] = pods[key]
                log.info("%s: static pod %s from %s", self.name, key, self.manifest_dir)
            else:
                self.static.pop(key, None)
                log.info("%s: static pod %s removed (manifest gone)", self.name, key)
            if self._tasks:
                self.queue.add(key)
            else:  # no workers before the API answers: run it from here
                self._loops.append(asyncio.create_task(self._reconcile_static(key)))

    async def _reconcile_static(self, key: str) -> None:
        """Reconcile a static pod until the workers are there to do it."""
        while True:
            try:
                after = await self.reconcile(key)
            except Exception as exc:  # noqa: BLE001 - the API may not answer yet
                log.debug("%s: static pod %s: %s", self.name, key, exc)
                after = 1.0
            if self._tasks:
                self.queue.add(key)
                return
            await asyncio.sleep(min(after or 1.0, 1.0))

    def _desired(self, key: str) -> tuple[Obj | None, Obj | None]:
        """What to run for `key` (the static pod when there is one) and the API's pod."""
        api_pod = self.pods.get(key) if self._setup_done else None
        static = self.static.get(key)
        if static is None:
            return (None if staticpods.is_mirror(api_pod) else api_pod), api_pod
        pod = dict(static)
        pod["status"] = (api_pod or {}).get("status") or {} if staticpods.mirror_matches(api_pod, static) else {}
        return pod, api_pod

    async def _sync_mirror(self, static: Obj, api_pod: Obj | None) -> None:
        """Make the API's mirror pod match the static pod (create, or replace a stale one)."""
        if staticpods.mirror_matches(api_pod, static):
            return
        meta = static["metadata"]
        if api_pod is not None:
            try:
                await self.client.delete(("v1", "Pod"), meta["name"], meta["namespace"], grace_period_seconds=0)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        try:
            await self.client.create(staticpods.mirror_pod(static, self.node.name, self._node_uid))
        except ApiError as exc:
            if exc.code != 409:
                raise

    async def stop(self, grace: float = 5.0) -> None:
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await super().stop(grace)
        self.prober.close()

    async def _register(self) -> None:
        obj = nodeinfo.node_object(self.node.name, self.node.ip, self.control_plane, self.isolate_control_plane)
        try:
            created = await self.client.create(obj)
        except ApiError as exc:
            if exc.code != 409:
                raise
            created = await self.client.get(("v1", "Node"), self.node.name)
            created["status"] = obj["status"]
            created = await self.client.update_status(created)
        self._node_uid = created["metadata"]["uid"]

    async def _heartbeat(self) -> None:
        lease_ref = ("coordination.k8s.io/v1", "Lease")
        last_status = 0.0
        while True:
            try:
                try:
                    await self.client.patch(lease_ref, self.node.name,
                                            {"spec": {"renewTime": nodeinfo.now_micro(),
                                                      "holderIdentity": self.node.name}}, "kube-node-lease")
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                    await self.client.create(nodeinfo.lease_object(self.node.name, self._node_uid))
                if time.monotonic() - last_status > STATUS_EVERY:
                    status = nodeinfo.node_status(self.node.name, self.node.ip)
                    cur = self.nodes.get(self.node.name)
                    if cur is not None:
                        # Keep transition times of unchanged conditions.
                        old = {c["type"]: c for c in (cur.get("status") or {}).get("conditions", [])}
                        for c in status["conditions"]:
                            if c["type"] in old and old[c["type"]].get("status") == c["status"]:
                                c["lastTransitionTime"] = old[c["type"]].get("lastTransitionTime", c["lastTransitionTime"])
                    await self.client.patch(("v1", "Node"), self.node.name, {"status": status},
                                            subresource="status")
                    last_status = time.monotonic()
                await self.tokens.refresh_due(self.client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep beating
                log.warning("%s: heartbeat failed: %s", self.name, exc)
            await asyncio.sleep(LEASE_RENEW)

    def _node_changed(self, old: Obj, new: Obj) -> None:
        """Only a new pod range or address matters to routing, not heartbeats."""
        if _route_facts(old) != _route_facts(new):
            self._node_event(new)

    def _node_event(self, _node: Obj) -> None:
        """A node came, went or moved: re-sync the overlay (our podCIDR, peers' ranges)."""
        self._net_dirty = True
        if self._net_task is None or self._net_task.done():
            self._net_task = asyncio.get_running_loop().create_task(self._sync_network())

    async def _sync_network(self) -> None:
        # pyroute2's netlink calls run their own event loop: keep them in a thread.
        while self._net_dirty:
            self._net_dirty = False
            me = self.nodes.get(self.node.name)
            cidr = ((me or {}).get("spec") or {}).get("podCIDR")
            if not cidr:
                return
            if self.node.pod_cidr != cidr:
                self.node = dataclasses.replace(self.node, pod_cidr=cidr)
            peers = []
            for n in self.nodes.list():
                pc = (n.get("spec") or {}).get("podCIDR")
                ip = next((a["address"] for a in (n.get("status") or {}).get("addresses", [])
                           if a.get("type") == "InternalIP"), None)
                if pc and ip and n["metadata"]["name"] != self.node.name:
                    peers.append(dataclasses.replace(self.node, name=n["metadata"]["name"], ip=ip, pod_cidr=pc,
                                                     netns="", vtep_mac=vtep_mac(self.node.cluster,
                                                                                 n["metadata"]["name"])))
            signature = (self.node.pod_cidr, sorted((p.name, p.ip, p.pod_cidr) for p in peers))
            if signature == self._net_signature:
                continue
            try:
                await _io(overlay.sync_routes, self.node, peers, self.overlay_mode, self.cluster_cidr)
                self._net_signature = signature
            except Exception:  # noqa: BLE001 - logged; the next node event retries
                log.exception("%s: overlay sync failed", self.name)
                return
            if not self.network_ready.is_set():
                self.network_ready.set()
                for pod in self.pods.list():
                    self.enqueue_obj(pod)

    # ------------------------------------------------------------ pods

    async def reconcile(self, key: str) -> float | None:
        if key in self.static or key in self._static_locks:
            lock = self._static_locks.setdefault(key, asyncio.Lock())
            async with lock:
                return await self._reconcile(key)
        return await self._reconcile(key)

    async def _reconcile(self, key: str) -> float | None:
        pod, api_pod = self._desired(key)
        rec = self._by_key.get(key)
        if pod is None and staticpods.is_mirror(api_pod):
            assert api_pod is not None
            await self._finish_deletion(api_pod)  # its manifest is gone: so is the mirror
        if pod is None:
            if rec is not None:
                await self._kill(rec, 0)
            return None
        uid = pod["metadata"]["uid"]
        if rec is not None and rec.uid != uid:
            await self._kill(rec, 0)  # same name, new pod
            rec = None
        if pod["metadata"].get("deletionTimestamp"):
            grace = int(pod["metadata"].get("deletionGracePeriodSeconds", 30) or 0)
            if rec is not None:
                await self._kill(rec, grace)
            await self._finish_deletion(pod)
            return None
        phase = (pod.get("status") or {}).get("phase")
        if phase in TERMINAL_PHASES and (rec is None or rec.sandbox is None):
            return None   # finished, and its sandbox gone (released, or not found by a new kubelet)
        if await self.emptydir_limits.sync(pod, rec):
            return None  # evicted
        if not self.network_ready.is_set() and not (pod.get("spec") or {}).get("hostNetwork"):
            return 0.2
        if rec is None:
            rec = PodRecord(uid=uid, key=key, start_time=ts(time.time()))
            self.records[uid] = rec
            self._by_key[key] = rec
        if rec.sandbox is None:
            try:
                await self._create_sandbox(pod, rec)
            except pod_network.CniError as exc:
                # What `kubectl describe pod` shows upstream when the CNI plugin fails
                # (an exhausted pod range, most often); the pod stays Pending and is retried.
                log.warning('%s: "Failed to create pod sandbox" pod="%s" err="%s"', self.name, key, exc)
                self._event_once(pod, rec, f"sandbox-{exc}", "FailedCreatePodSandBox",
                                 f"Failed to create pod sandbox: failed to set up the pod network: {exc}", "Warning")
                return SANDBOX_RETRY_SECONDS
        if rec.volumes is None:
            assert rec.sandbox is not None
            try:
                rec.volumes = await volumes.prepare(self.client, pod, rec.sandbox.path, self.tokens,
                                                    self._allocatable(), self.mounts)
            except volumes.VolumeError as exc:
                self._event_once(pod, rec, f"mount-{exc.message}", "FailedMount",
                                 f"MountVolume.SetUp failed: {exc.message}", "Warning")
                await self._write_status(pod, rec)
                return 2.0
        next_check = await self.podsync.sync(pod, rec)
        if key in self.static:
            if not self._node_uid:
                return min(next_check or 0.5, 0.5)  # the mirror pod's owner, our Node, is not registered yet
            try:
                await self._sync_mirror(pod, api_pod)
                await self._write_status(pod, rec)
            except (ApiError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                # The API may not answer yet (it may be this very static pod, starting).
                log.debug("%s: mirror pod %s not written yet: %s", self.name, key, exc)
                return min(next_check or 1.0, 1.0)
            return next_check
        if await self._write_status(pod, rec) in TERMINAL_PHASES:
            await self._release_network(rec)
        return next_check

    async def _create_sandbox(self, pod: Obj, rec: PodRecord) -> None:
        rec.attached_ip, rec.sandbox = await _io(self._sandbox_io, self.node, pod, rec.uid)
        await self.checkpoints.save(rec)  # before any container starts: a next kubelet must find them

    def _sandbox_io(self, node: NodeNet, pod: Obj, uid: str) -> tuple[str, Sandbox]:
        """In the node I/O pool: the pod's network namespace and address, then
        its sandbox files, in one trip (each trip between the event loop and
        a pool thread costs both a wake-up and a wait for the GIL)."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            netns_path, ip = f"/run/netns/{node.netns}", node.ip
        else:
            att = pod_network.setup_pod(node, uid, state_dir=self.state_dir / "cni", mode=self.overlay_mode)
            netns_path, ip = att.path, att.ip
            portmap.add_pod(node, uid, ip, pod)     # hostPorts, as the CNI portmap plugin chained after bridge
        sandbox = create_sandbox(self.state_dir / "kubelet" / node.name, pod, netns=netns_path, pod_ip=ip,
                                 cluster_dns=[self.cluster_dns], node_name=node.name)
        return ip, sandbox

    def _allocatable(self) -> dict[str, Any]:
        """This node's allocatable resources: what an unset limit means to the downward API."""
        return dict(((self.nodes.get(self.node.name) or {}).get("status") or {}).get("allocatable") or {})

    def _env(self, pod: Obj, container: dict[str, Any], pod_ip: str) -> dict[str, str]:
        links = (pod.get("spec") or {}).get("enableServiceLinks", True)
        base = service_env(self.services.list(), pod["metadata"]["namespace"], enable_service_links=links)
        containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
        allocatable = self._allocatable()

        def resource(ref: dict[str, Any]) -> str:
            return resource_value(containers.get(ref.get("containerName") or container.get("name"), container),
                                  ref, allocatable)

        return container_env(container, base, pod_fields(pod, pod_ip, self.node.ip), resource)

    async def _start(self, pod: Obj, rec: PodRecord, c: dict[str, Any], previous: ContainerStatus | None) -> None:
        assert rec.sandbox is not None
        name = c["name"]
        count = rec.restarts.get(name, 0) + (1 if previous is not None else 0)
        try:
            # In the node I/O pool, not on the event loop: start_container
            # blocks until the zygote has forked the child and the child has
            # set up its mounts and exec'd (~10 ms), and while the loop
            # waited there, the API server, the controllers and every other
            # kubelet stood still (half the loop's time in a 300-pod rollout).
            # Off the loop, the zygote also overlaps the set-up of several
            # children.  Only this pod's worker waits (keys never run twice
            # at once), so `rec` is not touched by anyone else meanwhile.
            env = self._env(pod, c, rec.attached_ip)
            st = await _io(self.podsync.start_io, pod, rec, c, env=env, restart_count=count,
                           mounts=await volumes.mounts_of(self.mounts, pod, c, rec.volumes or {}, env, rec.sandbox.path))
        except images.ImageError as exc:
            rec.waiting[name] = (exc.reason, exc.message)
            # upstream's event for a refused container config reads "Error: <why>"
            event = f"Error: {exc.message}" if exc.reason == "CreateContainerConfigError" else exc.message
            self._event_once(pod, rec, f"img-{name}", "Failed", event, "Warning")
            return
        if previous is not None:
            rec.previous[name] = previous
        rec.restarts[name] = count
        rec.runs[name] = st
        rec.retry_at[name] = 0
        rec.waiting.pop(name, None)
        if st.state == "exited" and st.reason == "StartError":
            log.warning('%s: "Error syncing pod, skipping" err="failed to start container %s of pod %s: %s"',
                        self.name, name, rec.key, st.message)
            self._event_once(pod, rec, f"start-{name}-{count}", "Failed",
                             f"Error: failed to start container \"{name}\": {st.message}", "Warning")
        else:
            self._event_once(pod, rec, f"started-{name}-{count}", "Started", f"Started container {name}")
            if not await self.podsync.post_start(pod, rec, c, st):
                return  # the hook failed: the container was killed
        self.prober.watch(rec.uid, pod, c, st, rec.attached_ip, lambda: self.queue.add(rec.key))

    def _event_once(self, pod: Obj, rec: PodRecord, tag: str, reason: str, message: str,
                    type: str = "Normal") -> None:
        if tag in rec.events_sent:
            return
        rec.events_sent.add(tag)
        self.client.emit_event(pod, reason, message, type=type, component="kubelet", host=self.node.name)

    async def _write_status(self, pod: Obj, rec: PodRecord) -> str | None:
        """Write the pod's status if it changed; returns its phase."""
        await self.checkpoints.save(rec, pod)
        views = self.podsync.views(pod, rec)
        status = pod_status(pod, views, pod_ip=rec.attached_ip, host_ip=self.node.ip,
                            start_time=(pod.get("status") or {}).get("startTime") or rec.start_time,
                            sandbox_ready=rec.sandbox is not None and not rec.network_released)
        phase: str | None = status.get("phase")
        if status == (pod.get("status") or {}):
            return phase
        try:
            await self.client.patch(("v1", "Pod"), pod["metadata"]["name"],
                                    {"status": status}, pod["metadata"]["namespace"], subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                raise
        return phase

    async def _release_network(self, rec: PodRecord) -> None:
        """A finished pod gives its address back, as upstream's kubelet stops the
        sandbox of a Succeeded or Failed pod (CNI DEL frees the IP).  Without
        this a node that had run 254 Jobs' pods had no address left for the
        next ("no IP addresses available in range").  The pod's directory,
        logs and status (podIP included, as upstream) stay until it is deleted."""
        sb = rec.sandbox
        if sb is None or rec.network_released:
            return
        await _io(self.runtime.stop_pod, sb, 0.0)   # nothing runs; the namespaces' holder goes
        await self._free_network(rec.uid, sb.host_network)
        rec.network_released = True
        await self.checkpoints.save(rec)

    async def _free_network(self, uid: str, host_network: bool) -> None:
        """CNI DEL, idempotent: the pod's hostPort rules, its address and its namespace."""
        if host_network:
            return
        if portmap.may_have_ports(self.node, uid):
            await _io(portmap.remove_pod, self.node, uid)
        await _io(pod_network.teardown_pod, self.node, uid, state_dir=self.state_dir / "cni", mode=self.overlay_mode)

    async def _kill(self, rec: PodRecord, grace: int) -> None:
        self.prober.forget(rec.uid)
        self.tokens.forget(rec.uid)
        await self.podsync.stop_all(rec, grace)  # preStop hooks, sidecars last
        if rec.sandbox is not None:
            await _io(self.runtime.stop_pod, rec.sandbox, float(grace))
            await _io(self.mounts.unmount_under, rec.sandbox.path)
            await _io(self.runtime.remove_pod, rec.sandbox)
            if not rec.network_released:
                await self._free_network(rec.uid, rec.sandbox.host_network)
            await _io(remove_sandbox_dir, rec.sandbox)
        else:
            # No sandbox, yet maybe an address: the record of the IP a restored
            # pod had, kept for it across the reboot.
            await self._free_network(rec.uid, False)
        self.checkpoints.forget(rec.uid)
        self.records.pop(rec.uid, None)
        if self._by_key.get(rec.key) is rec:
            del self._by_key[rec.key]

    async def _finish_deletion(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(("v1", "Pod"), meta["name"], meta["namespace"], grace_period_seconds=0,
                                     preconditions={"uid": meta["uid"]})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    # ------------------------------------------------------------ streams

    def container_of(self, pod: Obj, container: str | None) -> tuple[PodRecord, str]:
        """The record and container name a log/exec request means (upstream's defaulting)."""
        rec = self.records.get(pod["metadata"]["uid"])
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers", [])]
        if not container:
            if len(names) != 1:
                default = ((pod["metadata"].get("annotations") or {})
                           .get("kubectl.kubernetes.io/default-container"))
                container = default or names[0]
            else:
                container = names[0]
        if container not in [c["name"] for _, c in all_containers(pod)]:
            raise ApiError(400, "BadRequest",
                           f"container {container} is not valid for pod {pod['metadata']['name']}")
        if rec is None:
            raise ApiError(400, "BadRequest",
                           f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                           "ContainerCreating")
        return rec, container

