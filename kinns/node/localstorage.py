"""emptyDir `sizeLimit`, enforced as upstream's eviction manager does.

Upstream's kubelet measures each pod's volumes (du for a directory,
statfs for a tmpfs) and, in its housekeeping pass, evicts a pod one of
whose emptyDir volumes uses more than its `sizeLimit`
(localStorageEviction/emptyDirLimitEviction): a Warning event `Evicted`,
the containers killed with a 1 s grace period, and the pod left with
`status.phase: Failed`, `reason: Evicted` and the message
`Usage of EmptyDir volume "<name>" exceeds the limit "<limit>". `.  Static
and system-critical pods are never evicted.  The pod object stays (its
controller, if any, makes a replacement).

A tmpfs (`medium: Memory`) is sized to its limit, so a write beyond it
fails with ENOSPC before it could ever exceed it; directories on disk are
where the measuring matters.  kinns measures every `PERIOD` seconds (upstream
every 10 s from volume stats cached for a minute): only pods that have a
limited emptyDir, and only their limited volumes.

`EmptyDirLimits.sync` is the kubelet's hook in its pod reconcile: it says
whether the pod is (now) evicted, in which case the kubelet has nothing
more to run for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..client.client import Obj
from ..controllers.quantity import parse_bytes
from .mountns import MountError, NodeMounts
from .podstatus import ContainerView, pod_status
from .volumes import size_limits

if TYPE_CHECKING:
    from .kubelet import Kubelet, PodRecord

log = logging.getLogger(__name__)

PERIOD = 2.0
GRACE_SECONDS = 1.0        # immediateEvictionGracePeriodSeconds
REASON = "Evicted"
MESSAGE = 'Usage of EmptyDir volume "{volume}" exceeds the limit "{limit}". '
CRITICAL_PRIORITY = 2_000_000_000


def disk_usage(path: str) -> int:
    """What `du -s -x -B1` counts: allocated blocks of everything below `path`, on its file system."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total, seen = top.st_blocks * 512, set()
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != top.st_dev:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
    return total


def fs_usage(path: str) -> int:
    """Used bytes of the file system at `path` (a tmpfs volume is a file system of its own)."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def volume_usage(mounts: NodeMounts, pod: Obj, name: str, host_path: str) -> int:
    """A volume's usage as its containers see it."""
    vol: dict[str, Any] = next((v for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("name") == name), {})
    if ((vol.get("emptyDir") or {}).get("medium")) == "Memory":
        try:
            return fs_usage(mounts.view(host_path))
        except (OSError, MountError):
            return 0
    return disk_usage(host_path)


def over_limit(pod: Obj, paths: dict[str, str], usage: Any) -> tuple[str, str] | None:
    """The first limited emptyDir using more than its limit: (volume, limit as printed)."""
    for name, limit in size_limits(pod).items():
        if name in paths and usage(name, paths[name]) > parse_bytes(limit):
            return name, limit
    return None


def is_critical(pod: Obj, static: bool) -> bool:
    """Pods the eviction manager leaves alone (kubelettypes.IsCriticalPod)."""
    spec = pod.get("spec") or {}
    return static or int(spec.get("priority") or 0) >= CRITICAL_PRIORITY or \
        spec.get("priorityClassName") in ("system-node-critical", "system-cluster-critical")


def evicted_status(status: dict[str, Any], message: str) -> dict[str, Any]:
    """The status the eviction leaves: Failed/Evicted with the message, nothing ready,
    the sandbox gone (what killPodFunc's status function and the kubelet write)."""
    out = dict(status, phase="Failed", reason=REASON, message=message)
    conds = []
    for c in status.get("conditions") or []:
        c = dict(c)
        if c.get("type") in ("Ready", "ContainersReady"):
            c.update(status="False", reason="PodCompleted")
            c.pop("message", None)
        elif c.get("type") == "PodReadyToStartContainers":
            c["status"] = "False"
        conds.append(c)
    out["conditions"] = conds
    return out


class EmptyDirLimits:
    """The kubelet's emptyDir sizeLimit eviction (one per kubelet)."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.over: dict[str, tuple[str, str]] = {}   # pod UID -> (volume, limit) found over its limit
        self.evicted: set[str] = set()               # pod UIDs evicted by this kubelet
        self._task: asyncio.Task[None] | None = None

    async def sync(self, pod: Obj, rec: PodRecord | None) -> bool:
        """True when the pod is evicted and must not run (again)."""
        uid = pod["metadata"].get("uid", "")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name=f"{self.kubelet.name}-emptydir")
            self.kubelet._loops.append(self._task)
        if uid in self.evicted:
            if rec is not None:
                await self.kubelet._kill(rec, 0)
            return True
        found = self.over.pop(uid, None)
        if rec is None or found is None or rec.sandbox is None:
            return False
        await self._evict(pod, rec, MESSAGE.format(volume=found[0], limit=found[1]))
        return True

    async def _evict(self, pod: Obj, rec: PodRecord, message: str) -> None:
        k = self.kubelet
        meta = pod["metadata"]
        log.info('%s: "Eviction manager: evicting pod" pod="%s/%s" message="%s"', k.name, meta.get("namespace"),
                 meta.get("name"), message)
        k.client.emit_event(pod, REASON, message, type="Warning", component="kubelet", host=k.node.name)
        self.evicted.add(meta.get("uid", ""))
        assert rec.sandbox is not None
        await asyncio.to_thread(k.runtime.stop_pod, rec.sandbox, GRACE_SECONDS)
        views = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            run = rec.runs.get(c["name"])
            views.append(ContainerView(name=c["name"], image=c.get("image", ""),
                                       current=k.runtime.status(run.id) if run is not None else None,
                                       previous=rec.previous.get(c["name"]),
                                       restart_count=rec.restarts.get(c["name"], 0)))
        status = pod_status(pod, views, pod_ip=rec.attached_ip, host_ip=k.node.ip,
                            start_time=(pod.get("status") or {}).get("startTime") or rec.start_time,
                            sandbox_ready=False)
        try:
            await k.client.patch(("v1", "Pod"), meta["name"], {"status": evicted_status(status, message)},
                                 meta["namespace"], subresource="status")
        finally:
            await k._kill(rec, 0)

    async def _watch(self) -> None:
        """Measure the limited emptyDirs of this node's pods; queue the pods found over."""
        k = self.kubelet
        while True:
            await asyncio.sleep(PERIOD)
            try:
                await self._measure_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - measuring must go on
                log.exception("%s: measuring emptyDir usage failed", k.name)

    async def _measure_once(self) -> None:
        k = self.kubelet
        live = set()
        for rec in list(k.records.values()):
            live.add(rec.uid)
            pod = k.pods.get(rec.key)
            if pod is None or rec.volumes is None or rec.uid in self.over or rec.uid in self.evicted:
                continue
            if not size_limits(pod) or is_critical(pod, rec.key in k.static):
                continue
            paths = dict(rec.volumes)
            started = time.monotonic()
            found = await asyncio.to_thread(over_limit, pod, paths,
                                            lambda name, path: volume_usage(k.mounts, pod, name, path))
            log.debug("%s: measured %s in %.3fs", k.name, rec.key, time.monotonic() - started)
            if found is not None:
                self.over[rec.uid] = found
                k.queue.add(rec.key)
        self.evicted &= live | {p["metadata"].get("uid", "") for p in k.pods.list()}
