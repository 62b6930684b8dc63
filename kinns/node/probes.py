"""Readiness, liveness and startup probes, run from the node as upstream does.

httpGet and tcpSocket probes connect to the pod IP from inside the node's
network namespace (a socket created there stays there), exactly the path a
real kubelet's probe takes across cni0; exec probes run in the container.
Each probe of each container run is one asyncio task that keeps the
success/failure counters and thresholds; readiness flips the container's
ready flag, liveness failure stops the container so the restart policy
brings it back, and the startup probe holds the other two back until it
succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from ..net import netns
from .runtime import ContainerStatus, Runtime

log = logging.getLogger(__name__)


def _port(value: Any, container: dict[str, Any]) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(value, int):
        return value
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    return int(value)


def _tcp(ns: str | None, ip: str, port: int, timeout: float) -> socket.socket:
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
    except OSError:
        s.close()
        raise
    return s


def tcp_probe(ns: str | None, ip: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _tcp(ns, ip, port, timeout).close()
        return True, ""
    except OSError as exc:
        return False, f"dial tcp {ip}:{port}: {exc.strerror or exc}"


def http_probe(ns: str | None, ip: str, port: int, path: str, timeout: float,
               headers: list[dict[str, str]] | None = None) -> tuple[bool, str]:
    try:
        s = _tcp(ns, ip, port, timeout)
    except OSError as exc:
        return False, f'Get "http://{ip}:{port}{path}": dial tcp {ip}:{port}: {exc.strerror or exc}'
    try:
        extra = "".join(f"{h['name']}: {h['value']}\r\n" for h in headers or [])
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.32\r\n"
                  f"Accept: */*\r\n{extra}Connection: close\r\n\r\n".encode())
        first = s.recv(256).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as exc:
        return False, f'Get "http://{ip}:{port}{path}": {exc}'
    finally:
        s.close()
    parts = first.split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


@dataclass
class _State:
    ready: bool = False
    started: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Prober:
    def __init__(self, node_netns: str | None, runtime: Runtime) -> None:
        self.node_netns = node_netns
        self.runtime = runtime
        self._states: dict[tuple[str, str], _State] = {}

    def ready(self, uid: str, name: str) -> bool:
        st = self._states.get((uid, name))
        return st is not None and st.ready and st.started

    def started(self, uid: str, name: str) -> bool:
        st = self._states.get((uid, name))
        return st is not None and st.started

    def watch(self, uid: str, pod: dict[str, Any], container: dict[str, Any], run: ContainerStatus,
              pod_ip: str, changed: Callable[[], None], *, ready: bool = False, started: bool = False) -> None:
        """Start the probes of a new container run (replacing the previous run's).
        `ready`/`started` carry a run's results over a kubelet restart."""
        key = (uid, container["name"])
        self._cancel(key)
        st = _State(ready=ready or "readinessProbe" not in container,
                    started=started or "startupProbe" not in container)
        self._states[key] = st
        if run.state != "running":
            return
        loop = asyncio.get_running_loop()
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container and not (kind == "startupProbe" and started):  # a started run stays started
                st.tasks.append(loop.create_task(self._loop(kind, st, pod, container, run, pod_ip, changed)))

    async def _run_once(self, probe: dict[str, Any], container: dict[str, Any], run: ContainerStatus,
                        pod_ip: str) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "httpGet" in probe:
            h = probe["httpGet"]
            return await asyncio.to_thread(http_probe, self.node_netns, h.get("host") or pod_ip,
                                           _port(h.get("port", 80), container), h.get("path", "/"), timeout,
                                           h.get("httpHeaders"))
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            return await asyncio.to_thread(tcp_probe, self.node_netns, t.get("host") or pod_ip,
                                           _port(t.get("port"), container), timeout)
        if "exec" in probe:
            cmd = probe["exec"].get("command") or []
            try:
                res = await asyncio.to_thread(self.runtime.exec_sync, run.id, cmd, timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - a probe that cannot run failed
                return False, str(exc)
            return res.exit_code == 0, (res.stdout + res.stderr).decode(errors="replace").strip()
        return True, ""

    async def _loop(self, kind: str, st: _State, pod: dict[str, Any], container: dict[str, Any],
                    run: ContainerStatus, pod_ip: str, changed: Callable[[], None]) -> None:
        probe = container[kind]
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        period = float(probe.get("periodSeconds", 10))
        need_ok = int(probe.get("successThreshold", 1))
        need_fail = int(probe.get("failureThreshold", 3))
        oks = fails = 0
        while self.runtime.status(run.id).state == "running":
            if kind != "startupProbe" and not st.started:
                await asyncio.sleep(0.2)
                continue
            ok, why = await self._run_once(probe, container, run, pod_ip)
            oks, fails = (oks + 1, 0) if ok else (0, fails + 1)
            if kind == "startupProbe":
                if oks >= 1:
                    st.started = True
                    changed()
                    return
                if fails >= need_fail:
                    await asyncio.to_thread(self.runtime.stop_container, run.id,
                                            float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
                    changed()
                    return
            elif kind == "readinessProbe":
                if ok and oks >= need_ok and not st.ready:
                    st.ready = True
                    changed()
                elif not ok and fails >= need_fail and st.ready:
                    st.ready = False
                    changed()
            elif kind == "livenessProbe" and fails >= need_fail:
                log.info("liveness probe failed for %s/%s: %s", pod["metadata"]["name"], container["name"], why)
                await asyncio.to_thread(self.runtime.stop_container, run.id,
                                        float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
                changed()
                return
            await asyncio.sleep(period)

    def _cancel(self, key: tuple[str, str]) -> None:
        st = self._states.pop(key, None)
        if st is not None:
            for t in st.tasks:
                t.cancel()

    def forget(self, uid: str) -> None:
        for key in [k for k in self._states if k[0] == uid]:
            self._cancel(key)

    def close(self) -> None:
        for key in list(self._states):
            self._cancel(key)
