"""The kubelet's pod checkpoints: what it holds for each pod, kept on disk so
that a kubelet that was killed or restarted finds its pods again.

Containers outlive the kubelet (the runtime's zygote is a daemon of its
own, see `runtime.py`), so a new kubelet must take over what the old one
ran instead of starting it again: same PIDs, same pod IP, restartCount
unchanged.  Upstream's kubelet rebuilds that from the container runtime
(CRI labels) and its own checkpoint files; this one keeps one JSON file per
pod, `<state>/kubelet/<node>/checkpoints/<uid>.json`, written atomically
(`journal.write_atomic`) when the record changed: once the pod's sandbox
exists (before any of its containers starts) and after a reconcile that
changed it; deleted when the pod is gone.  Writing is skipped when nothing
changed, so a steady pod costs one JSON encoding per status update.

What a restore brings back, and from where:
- the sandbox (network namespace, IP, hostname, pod directory, ...) from
  the file, so the pod network is not set up again: its namespace and veth
  are still there.  A sandbox whose namespace is gone (the machine
  rebooted) is dropped, and the next reconcile makes it anew, unless the
  pod had finished and its network was released on purpose;
- runs, previous runs and restart counts from the restored `Runtime`: the
  file's container IDs, or a newer run of the same container that the
  runtime has (started after the file was written);
- the events already sent, the prepared volumes and the projected
  ServiceAccount tokens to keep renewing, from the file;
- probes are re-armed at the pod's first status write after the restore,
  each container's Started and Ready carried over from the pod's status
  when it names the same container, as upstream's kubelet does since
  KEP-4781, so a kubelet restart does not take endpoints away.
Back-off timers are not kept (upstream's kubelet keeps them in memory and
forgets them too): a container found exited is due for restart at once, so
after `kinns start` (or a reboot) the API server's static pod, whose
restartCount is already above 0, does not wait out a 10 s back-off first.

Each restored pod is queued once, so a pod deleted while no kubelet ran is
torn down as soon as the workers start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .containers import all_containers
from .journal import write_atomic
from .runtime import ContainerStatus
from .sandbox import Sandbox
from .volumes import ProjectedToken

if TYPE_CHECKING:
    from .kubelet import Kubelet, PodRecord

log = logging.getLogger(__name__)

VERSION = 1
IoRunner = Callable[..., Awaitable[Any]]


class PodCheckpoints:
    """The checkpoint files of one kubelet.  `io` runs blocking work off the
    event loop (the kubelet's node I/O pool)."""

    def __init__(self, kubelet: Kubelet, directory: Path, io: IoRunner) -> None:
        self.kubelet = kubelet
        self.dir = Path(directory)
        self._io = io
        self._written: dict[str, str] = {}               # uid -> the text on disk
        self._rearm: dict[str, dict[str, str]] = {}      # uid -> {container name: restored run id}

    # -- writing ------------------------------------------------------------------
    def encode(self, rec: PodRecord) -> str:
        tokens = [dict(dataclasses.asdict(t), path=str(t.path)) for t in self.kubelet.tokens.tokens.get(rec.uid, [])]
        return json.dumps({
            "version": VERSION, "uid": rec.uid, "key": rec.key,
            "sandbox": dataclasses.asdict(rec.sandbox) if rec.sandbox is not None else None,
            "attached_ip": rec.attached_ip, "start_time": rec.start_time,
            "runs": {name: st.id for name, st in rec.runs.items()},
            "previous": {name: st.id for name, st in rec.previous.items()},
            "restarts": rec.restarts, "events_sent": sorted(rec.events_sent), "volumes": rec.volumes,
            "tokens": tokens, "network_released": rec.network_released,
        }, sort_keys=True)

    async def save(self, rec: PodRecord, pod: dict[str, Any] | None = None) -> None:
        """Write the record if it changed.  With `pod` (at a status write),
        first re-arm the probes of runs restored from disk."""
        if pod is not None and rec.uid in self._rearm:
            self._rearm_probes(pod, rec)
        text = self.encode(rec)
        if self._written.get(rec.uid) == text:
            return
        self._written[rec.uid] = text
        try:
            await self._io(self._write, rec.uid, text)
        except OSError as exc:  # a full disk must not stop the pod; the next change tries again
            self._written.pop(rec.uid, None)
            log.warning("%s: cannot write the checkpoint of pod %s: %s", self.kubelet.name, rec.key, exc)

    def _write(self, uid: str, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / f"{uid}.json", text)

    def forget(self, uid: str) -> None:
        """The pod is gone from this node."""
        self._written.pop(uid, None)
        self._rearm.pop(uid, None)
        try:
            (self.dir / f"{uid}.json").unlink()
        except FileNotFoundError:
            pass

    # -- restoring ----------------------------------------------------------------
    def load(self) -> list[dict[str, Any]]:
        """Every readable checkpoint; a damaged one is reported and skipped."""
        out: list[dict[str, Any]] = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return out
        for name in names:
            path = self.dir / name
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                data = json.loads(path.read_text())
                if data.get("version") != VERSION or f"{data['uid']}.json" != name:
                    raise ValueError(f"unknown format (version {data.get('version')!r})")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error('%s: "Failed to read pod checkpoint, ignoring it" path="%s" err="%s"',
                          self.kubelet.name, path, exc)
                continue
            out.append(data)
        return out

    def restore(self) -> int:
        """Rebuild the kubelet's records from disk and the runtime; returns how many."""
        from .kubelet import PodRecord  # (kubelet imports this module)

        k = self.kubelet
        by_pod: dict[str, dict[str, list[ContainerStatus]]] = {}
        for st in k.runtime.containers():
            by_pod.setdefault(st.pod_uid, {}).setdefault(st.name, []).append(st)
        for data in self.load():
            uid = str(data["uid"])
            rec = PodRecord(uid=uid, key=str(data["key"]), attached_ip=str(data.get("attached_ip") or ""),
                            start_time=str(data.get("start_time") or ""),
                            events_sent=set(data.get("events_sent") or []), volumes=data.get("volumes"))
            sandbox = Sandbox(**data["sandbox"]) if data.get("sandbox") else None
            rec.network_released = bool(data.get("network_released"))
            if sandbox is not None and (_sandbox_is_there(sandbox)
                                        or (rec.network_released and sandbox.path.is_dir())):
                rec.sandbox = sandbox   # a finished pod's, its namespace released on purpose
            else:
                rec.volumes = None  # made again with the sandbox
            self._restore_runs(rec, data, by_pod.get(uid, {}))
            for t in data.get("tokens") or []:
                k.tokens.track(uid, ProjectedToken(**dict(t, path=Path(t["path"]))))
            k.records[uid] = rec
            k._by_key[rec.key] = rec
            self._written[uid] = self.encode(rec)
            self._rearm[uid] = {name: st.id for name, st in rec.runs.items() if st.state == "running"}
            k.queue.add(rec.key)
        if k.records:
            log.info("%s: restored %d pods from %s", k.name, len(k.records), self.dir)
        return len(k.records)

    @staticmethod
    def _restore_runs(rec: PodRecord, data: dict[str, Any], runs: dict[str, list[ContainerStatus]]) -> None:
        """The latest run of each container the runtime knows is the current
        one (the file may predate it), the one before it the previous."""
        by_id = {st.id: st for sts in runs.values() for st in sts}
        for name, sts in runs.items():
            sts.sort(key=lambda st: st.restart_count)
            current = sts[-1]
            rec.runs[name] = current
            rec.restarts[name] = current.restart_count
            prev = by_id.get(str((data.get("previous") or {}).get(name)))
            if prev is None or prev is current:
                prev = sts[-2] if len(sts) > 1 else None
            if prev is not None:
                rec.previous[name] = prev
        for name, count in (data.get("restarts") or {}).items():
            rec.restarts.setdefault(str(name), int(count))
        now = time.time()
        for name, run in rec.runs.items():
            if run.state != "running":
                rec.retry_at[name] = now   # no back-off carried over: due at once

    def _rearm_probes(self, pod: dict[str, Any], rec: PodRecord) -> None:
        """Probes of restored running containers, with the results the pod's
        status shows for the same container ID."""
        restored = self._rearm.pop(rec.uid)
        k = self.kubelet
        status = pod.get("status") or {}
        shown = {cs.get("name"): cs for key in ("initContainerStatuses", "containerStatuses")
                 for cs in status.get(key) or []}
        for _, c in all_containers(pod):  # sidecars have probes too
            run = rec.runs.get(c["name"])
            if run is None or run.id != restored.get(c["name"]) or run.state != "running":
                continue
            cs = shown.get(c["name"]) or {}
            same = cs.get("containerID") == f"kinns://{run.id}"
            k.prober.watch(rec.uid, pod, c, run, rec.attached_ip, lambda: k.queue.add(rec.key),
                           ready=same and bool(cs.get("ready")), started=same and bool(cs.get("started")))


def _sandbox_is_there(sandbox: Sandbox) -> bool:
    """The pod's directory and network namespace survived (not after a reboot)."""
    return sandbox.path.is_dir() and (sandbox.netns is None or os.path.exists(sandbox.netns))
