"""Container lifecycle hooks: `lifecycle.postStart` and `lifecycle.preStop`.

A hook is one handler, run by the kubelet as upstream's handlerRunner runs
it:
- `exec`: the command inside the container (its namespaces, root, cgroup
  and identity, as `kubectl exec`); a non-zero exit fails the hook;
- `httpGet`: a GET from the node to `host` (default: the pod IP), port and
  path, from inside the node's network namespace as the kubelet's own
  request would come; only a failed connection fails it: any HTTP answer,
  even a 500, counts as delivered (the kubelet discards the body);
- `sleep`: wait that many seconds.

The caller bounds a preStop hook by the grace period (`deadline`); what
happens on failure (the FailedPostStartHook / FailedPreStopHook events,
killing the container) is `podsync`'s business.  Failure messages are
upstream's words, e.g.
`Exec lifecycle hook ([sh -c exit 3]) for Container "c" in Pod "p_ns(uid)"
failed - error: command 'sh -c exit 3' exited with 3: , message: ""`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from ..net import netns
from .runtime import ContainerStatus, Runtime

Obj = dict[str, Any]


def pod_ref(pod: Obj) -> str:
    """`name_namespace(uid)`, as the kubelet's format.Pod writes a pod."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def go_quote(text: str) -> str:
    """A string as Go's %q prints it (close enough for command output)."""
    return json.dumps(text, ensure_ascii=False)


def resolve_port(value: Any, container: Obj) -> int:
    """An IntOrString port: a number, a numeric string, or a named container port."""
    if isinstance(value, int):
        return value
    text = str(value or "")
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port: {text} in {container.get('name')}")


def http_get(ns: str | None, host: str, port: int, path: str, headers: list[Obj] | None,
             timeout: float) -> None:
    """One GET as the kubelet's hook client sends it; raises OSError (with
    Go's wording) when nothing answers."""
    url = f"http://{host}:{port}{path if path.startswith('/') else '/' + path}"
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect((host, port))
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            raise OSError(f'Get "{url}": dial tcp {host}:{port}: connect: {why}') from None
        extra = "".join(f"{h.get('name')}: {h.get('value')}\r\n" for h in headers or [])
        target = url.split(f":{port}", 1)[1]
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-lifecycle/1.32\r\n"
                  f"{extra}Connection: close\r\n\r\n".encode())
        try:
            if not s.recv(1):
                raise OSError(f'Get "{url}": EOF')
        except socket.timeout:
            raise OSError(f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
                          f'awaiting headers)') from None
    finally:
        s.close()


class HookRunner:
    """Runs the handlers of one node's containers.  `node_netns` is where
    httpGet requests start (the node's network namespace)."""

    def __init__(self, runtime: Runtime, node_netns: str | None) -> None:
        self.runtime = runtime
        self.node_netns = node_netns

    async def run(self, handler: Obj, pod: Obj, container: Obj, run: ContainerStatus, pod_ip: str,
                  deadline: float | None = None) -> str | None:
        """Run one handler; None when it succeeded, else upstream's failure
        message.  `deadline` (time.monotonic()) ends a hook that takes too long."""
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        name, ref = container.get("name", ""), pod_ref(pod)
        if isinstance(handler.get("exec"), dict):
            cmd = [str(x) for x in handler["exec"].get("command") or []]
            error, output = await self._exec(run, cmd, left)
            if error is None:
                return None
            return (f"Exec lifecycle hook ([{' '.join(cmd)}]) for Container {go_quote(name)} in Pod "
                    f"{go_quote(ref)} failed - error: {error}, message: {go_quote(output)}")
        if isinstance(handler.get("httpGet"), dict):
            h = handler["httpGet"]
            path = str(h.get("path") or "")
            try:
                port = 80 if h.get("port") in (None, "") else resolve_port(h.get("port"), container)
                await asyncio.to_thread(http_get, self.node_netns, str(h.get("host") or pod_ip), port, path,
                                        h.get("httpHeaders"), min(left, 30.0) if left is not None else 30.0)
            except (OSError, ValueError) as exc:
                return (f"HTTP lifecycle hook ({path}) for Container {go_quote(name)} in Pod "
                        f"{go_quote(ref)} failed - error: {exc}")
            return None
        if isinstance(handler.get("sleep"), dict):
            seconds = int(handler["sleep"].get("seconds") or 0)
            if left is not None and left < seconds:
                await asyncio.sleep(left)
                return (f"Sleep lifecycle hook ({seconds}) for Container {go_quote(name)} in Pod "
                        f"{go_quote(ref)} failed - error: container terminated before sleep hook finished")
            await asyncio.sleep(seconds)
            return None
        return f"Cannot run handler: invalid handler: {json.dumps(handler, sort_keys=True)}"

    async def _exec(self, run: ContainerStatus, cmd: list[str], timeout: float | None) -> tuple[str | None, str]:
        """(error text or None, combined output) of a command run in the container."""
        try:
            res = await asyncio.to_thread(self.runtime.exec_sync, run.id, cmd, timeout=timeout)
        except (RuntimeError, OSError, KeyError) as exc:
            return str(exc), ""
        output = (res.stdout + res.stderr).decode(errors="replace")
        if res.exit_code == 0:
            return None, output
        return (f"command '{' '.join(cmd)}' exited with {res.exit_code}: "
                f"{res.stderr.decode(errors='replace')}"), output
