"""Pod networks made again before the API answers, after `kinns start` or a reboot.

When a node comes back, its pods' network namespaces are gone but the
kubelet's checkpoints (checkpoint.py) and the address records say which
pods it ran and which IP each had.  Upstream's kubelet waits for the API
before it creates any sandbox; most of a pod's restart cost here is its
network (namespace, veth, address, routes), and the kubelet would
otherwise sit idle for the seconds the API server takes to start.  So the
kubelet starts those networks at once, with the pod range it last saw
(`pod-cidr`, written whenever the node's network is configured), and the
pod's reconcile later finds them done: `setup_pod` is idempotent and
returns the existing attachment.

Only the network is made early: the sandbox files, volumes and containers
wait for the pod object, as upstream.  A pod deleted while the node was
down, or found finished, has its early network torn down by the kubelet
like any other (`release`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from ..net import pod_network
from ..net.desired import NodeNet

log = logging.getLogger("kubelet")

IoRunner = Callable[..., Awaitable[Any]]
CONCURRENCY = 2   # of the kubelet's 8 I/O threads: its static pods (the API server) must not queue behind these


def cidr_file(state_dir: Path, node: str) -> Path:
    return state_dir / "kubelet" / node / "pod-cidr"


def save_pod_cidr(state_dir: Path, node: str, cidr: str) -> None:
    """Remember the node's pod range for the next kubelet (a tiny file, written when it changes)."""
    path = cidr_file(state_dir, node)
    try:
        if path.read_text().strip() == cidr:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cidr)
    tmp.replace(path)


def saved_pod_cidr(state_dir: Path, node: str) -> str | None:
    try:
        text = cidr_file(state_dir, node).read_text().strip()
        ipaddress.ip_network(text)
    except (OSError, ValueError):
        return None
    return text


class NetworkPrewarm:
    """The early network set-ups of one kubelet, by pod UID."""

    def __init__(self, node: NodeNet, state_dir: Path, mode: str, io: IoRunner) -> None:
        self.node = node
        self.state_dir = state_dir
        self.mode = mode
        self._io = io
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._done: set[str] = set()
        self._summary: asyncio.Task[None] | None = None

    def start(self, pods: Iterable[tuple[str, str]]) -> int:
        """Start the networks of (uid, previous IP) pods whose IP lies in the saved
        range; returns how many.  Nothing without a saved range (a first start)."""
        cidr = saved_pod_cidr(self.state_dir, self.node.name)
        if cidr is None:
            return 0
        net = ipaddress.ip_network(cidr)
        node = dataclasses.replace(self.node, pod_cidr=cidr)
        for uid, ip in pods:
            try:
                inside = ipaddress.ip_address(ip) in net
            except ValueError:
                inside = False
            if inside and uid not in self._tasks:
                self._tasks[uid] = asyncio.get_running_loop().create_task(self._one(node, uid))
        if self._tasks:
            self._summary = asyncio.get_running_loop().create_task(self._report(list(self._tasks.values())))
        return len(self._tasks)

    async def _report(self, tasks: list[asyncio.Task[None]]) -> None:
        t0 = time.monotonic()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info('%s: "Pod networks made before the API answered" pods=%d took="%.2fs"', self.node.name,
                 len(self._done), time.monotonic() - t0)

    async def _one(self, node: NodeNet, uid: str) -> None:
        async with self._slots:
            self._started.add(uid)
            try:
                await self._io(pod_network.setup_pod, node, uid, state_dir=self.state_dir / "cni", mode=self.mode)
                self._done.add(uid)
            except Exception as exc:  # noqa: BLE001 - the pod's reconcile tries again and reports it
                log.info("%s: early pod network failed; the pod's sync will retry it: %s", node.name, exc)

    async def wait(self, uid: str) -> bool:
        """Let the early set-up of `uid` finish (so two never race), or drop it if it
        has not begun (the caller does it now); True if one ran."""
        task = self._tasks.pop(uid, None)
        if task is None:
            return False
        if uid not in self._started:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if uid not in self._started:
                return False
        await asyncio.gather(asyncio.shield(task), return_exceptions=True)
        self._started.discard(uid)
        return True

    async def release(self, uid: str) -> None:
        """Undo an early network nobody will use (the pod is gone or finished)."""
        if await self.wait(uid):
            await self._io(pod_network.teardown_pod, self.node, uid, state_dir=self.state_dir / "cni",
                           mode=self.mode)

    def cancel(self) -> None:
        for t in self._tasks.values():
            t.cancel()
