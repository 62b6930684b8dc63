"""Running a pod's containers in the right order, and stopping them in it.

The kubelet's reconcile hands each pod here once its sandbox and volumes
are ready.  `containers.plan` says what initialization needs next; this
module carries it out against the runtime:

- `sync` starts (or, after the restart back-off, restarts) ephemeral
  containers, then the init containers and sidecars the plan names, then
  the app containers once the pod is initialized; when every app container
  has finished for good (or an init container failed with restartPolicy
  Never) the sidecars are stopped in the background, last one first;
- `start_io` (in a node I/O thread) gives each run its termination-message
  file and, for an ephemeral container with a targetContainerName, the
  target's PID namespace, then starts it;
- `post_start` runs `lifecycle.postStart` before the kubelet moves on, as
  upstream's startContainer does; a failed hook kills the container
  (event FailedPostStartHook, waiting reason PostStartHookError);
- `stop` ends running containers as killContainer does: the preStop hook
  first, within the grace period (event FailedPreStopHook when it fails),
  then, in `containers.stop_order` waves, SIGTERM with what is left of the
  grace period (never under 2 s) and SIGKILL after it;
- `views` is what `podstatus` needs of each container, termination
  messages included (read once per exited run, see `termination`).

The back-off and the restart counts live in the kubelet's `PodRecord`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from . import containers, images, termination
from .containers import Kind
from .hooks import HookRunner
from .podstatus import ContainerView
from .runtime import ContainerStatus, Mount

if TYPE_CHECKING:
    from .kubelet import Kubelet, PodRecord

log = logging.getLogger(__name__)
T = TypeVar("T")
Obj = dict[str, Any]

BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
MIN_GRACE = 2.0          # minimumGracePeriodInSeconds: every container gets a moment after SIGTERM


async def in_own_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a call that may block for a whole grace period in a thread of its
    own, so stopping many containers never starves a shared pool."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def target() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=target, name="kinns-stop", daemon=True).start()
    return await fut


class PodSync:
    """The container side of one kubelet's pods (see the module docstring)."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.k = kubelet
        self.hooks = HookRunner(kubelet.runtime, kubelet.node.netns)
        self._pods: dict[str, Obj] = {}                 # uid -> the pod as last synced (for stopping)
        self._messages: dict[str, str] = {}             # run id -> termination message
        self._stopping: dict[str, asyncio.Task[None]] = {}   # uid -> sidecars being stopped
        self._killing: dict[str, asyncio.Task[None]] = {}    # run id -> a kill after a failed postStart

    # -- starting ---------------------------------------------------------------
    def _runs(self, rec: PodRecord) -> dict[str, containers.Run]:
        out = {}
        for name, run in rec.runs.items():
            run = self.k.runtime.status(run.id)
            rec.runs[name] = run
            started = run.state == "running" and self.k.prober.started(rec.uid, name)
            out[name] = containers.Run(state="running" if run.state == "running" else "exited",
                                       exit_code=run.exit_code, started=started)
        return out

    async def sync(self, pod: Obj, rec: PodRecord) -> float | None:
        """Start or restart what the pod needs now; returns when to look again."""
        self._pods[rec.uid] = pod
        runs = self._runs(rec)
        plan = containers.plan(pod, runs)
        wake: list[float] = []
        by_name = {c["name"]: (kind, c) for kind, c in containers.all_containers(pod)}
        wanted: list[tuple[Kind, Obj]] = [(k, c) for k, c in by_name.values() if k == "ephemeral"]
        wanted += [by_name[n] for n in plan.start if n in by_name]
        if plan.initialized:
            wanted += [(k, c) for k, c in by_name.values() if k == "app"]
        for kind, c in wanted:
            await self._ensure(pod, rec, kind, c, wake)
        if plan.stop_sidecars or plan.init_failed:
            self._stop_sidecars(pod, rec)
        if wake:
            return max(0.05, min(wake) - time.time())
        return None

    async def _ensure(self, pod: Obj, rec: PodRecord, kind: Kind, c: Obj, wake: list[float]) -> None:
        """Start `c` if it has not run, or again after the back-off when its kind
        and the pod's restartPolicy say so (CrashLoopBackOff meanwhile)."""
        name = c["name"]
        now = time.time()
        run = rec.runs.get(name)
        if run is not None and run.state == "running":
            if run.id in self._killing:
                return  # its postStart failed: it waits as PostStartHookError while it dies
            rec.waiting.pop(name, None)
            if now - run.started_at > 600:
                rec.backoff.pop(name, None)  # ran long enough: forget the back-off
            return
        if run is not None:  # exited
            policy = str((pod.get("spec") or {}).get("restartPolicy", "Always"))
            if not containers.restarts_after(kind, policy, run.exit_code):
                rec.waiting.pop(name, None)
                return
            if not rec.retry_at.get(name):
                # As upstream: the first restart is at once, later ones back off 10s, 20s, ... 5m.
                if rec.restarts.get(name, 0) == 0:
                    rec.retry_at[name] = now
                else:
                    delay = min(rec.backoff.get(name, 0) * 2 or BACKOFF_START, BACKOFF_MAX)
                    rec.backoff[name] = delay
                    rec.retry_at[name] = (run.finished_at or now) + delay
            if now < rec.retry_at[name]:
                meta = pod["metadata"]
                pod_id = f"{meta['name']}_{meta['namespace']}({rec.uid})"
                rec.waiting[name] = ("CrashLoopBackOff",
                                     f"back-off {int(rec.backoff.get(name, BACKOFF_START))}s restarting "
                                     f"failed container={name} pod={pod_id}")
                wake.append(rec.retry_at[name])
                return
        elif name in rec.waiting and rec.retry_at.get(name, 0) > now:
            wake.append(rec.retry_at[name])  # an image or config error: try again later
            return
        await self.k._start(pod, rec, c, run)
        if rec.runs.get(name) is None:
            rec.retry_at[name] = now + BACKOFF_START
            wake.append(rec.retry_at[name])

    def start_io(self, pod: Obj, rec: PodRecord, c: Obj, *, env: dict[str, str], restart_count: int,
                 mounts: Sequence[Mount]) -> ContainerStatus:
        """In a node I/O thread: the run's termination-message file and PID
        namespace, then the runtime's start.  Raises `images.ImageError`
        (CreateContainerConfigError) when an ephemeral container's target is
        not running, as upstream's getTargetID."""
        sandbox = rec.sandbox
        assert sandbox is not None
        found = containers.find(pod, c["name"])
        pid_namespace = None
        target = c.get("targetContainerName") if found and found[0] == "ephemeral" else None
        if target and not (sandbox.share_pid or sandbox.host_pid):
            trun = rec.runs.get(str(target))
            st = self.k.runtime.status(trun.id) if trun is not None else None
            if st is None or st.state != "running" or not st.pid:
                raise images.ImageError("CreateContainerConfigError", f"unable to find target container {target}")
            pid_namespace = f"/proc/{st.pid}/ns/pid"
        privileged = bool((c.get("securityContext") or {}).get("privileged"))
        extra = termination.prepare(sandbox, c, restart_count, privileged)
        return self.k.runtime.start_container(sandbox, c, env=env, restart_count=restart_count,
                                              mounts=[*mounts, *extra], pid_namespace=pid_namespace)

    async def post_start(self, pod: Obj, rec: PodRecord, c: Obj, run: ContainerStatus) -> bool:
        """Run the container's postStart hook; False when it failed: the
        container then waits as PostStartHookError while it is killed with
        the pod's grace period (in the background: a container that ignores
        SIGTERM would hold this kubelet's worker for that long)."""
        handler = (c.get("lifecycle") or {}).get("postStart")
        if not isinstance(handler, dict) or run.state != "running":
            return True
        msg = await self.hooks.run(handler, pod, c, run, rec.attached_ip)
        if msg is None:
            return True
        log.error('%s: "Failed to execute PostStartHook" err="%s" pod="%s" containerName="%s"',
                  self.k.name, msg, rec.key, c["name"])
        # upstream keeps the message out of the event, so that secrets do not leak from the server
        self._event(pod, "FailedPostStartHook", "PostStartHook failed", "Warning")
        rec.waiting[c["name"]] = ("PostStartHookError", msg)

        async def kill() -> None:
            try:
                await self.stop(pod, rec, [c["name"]], self._grace(pod), "FailedPostStartHook")
            finally:
                self._killing.pop(run.id, None)
                self.k.queue.add(rec.key)

        self._killing[run.id] = asyncio.get_running_loop().create_task(kill())
        return False

    # -- stopping -----------------------------------------------------------------
    @staticmethod
    def _grace(pod: Obj) -> float:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        value = meta.get("deletionGracePeriodSeconds")
        if value is None:
            value = spec.get("terminationGracePeriodSeconds", 30)
        return float(value or 0)

    def _event(self, pod: Obj, reason: str, message: str, type: str = "Normal") -> None:
        self.k.client.emit_event(pod, reason, message, type=type, component="kubelet", host=self.k.node.name)

    async def stop(self, pod: Obj, rec: PodRecord, names: Sequence[str], grace: float,
                   message: str = "") -> None:
        """Stop the named running containers as upstream's killContainer: the
        preStop hooks (together, within `grace`), then SIGTERM in stop-order
        waves, each with what is left of `grace` (at least 2 s), SIGKILL after."""
        runtime = self.k.runtime
        running = {n: rec.runs[n] for n in names
                   if n in rec.runs and runtime.status(rec.runs[n].id).state == "running"}
        if not running:
            return
        deadline = time.monotonic() + grace
        waves = containers.stop_order(pod, set(running))
        finished: list[asyncio.Event] = [asyncio.Event() for _ in waves]
        left_in_wave = [len(w) for w in waves]

        async def one(name: str, wave: int) -> None:
            run = running[name]
            found = containers.find(pod, name)
            spec: Obj = found[1] if found else {"name": name}
            try:
                self._event(pod, "Killing", message or f"Stopping container {name}")
                handler = (spec.get("lifecycle") or {}).get("preStop")
                if isinstance(handler, dict) and grace > 0:
                    msg = await self.hooks.run(handler, pod, spec, run, rec.attached_ip, deadline)
                    if msg is not None:
                        log.error('%s: "PreStop hook failed" err="%s" pod="%s" containerName="%s"',
                                  self.k.name, msg, rec.key, name)
                        self._event(pod, "FailedPreStopHook", "PreStopHook failed", "Warning")
                for earlier in finished[:wave]:
                    try:
                        await asyncio.wait_for(earlier.wait(), max(deadline - time.monotonic(), 0.0))
                    except asyncio.TimeoutError:
                        break
                left = max(deadline - time.monotonic(), MIN_GRACE) if grace > 0 else 0.0
                await in_own_thread(runtime.stop_container, run.id, left)
            finally:
                left_in_wave[wave] -= 1
                if left_in_wave[wave] == 0:
                    finished[wave].set()

        await asyncio.gather(*(one(n, i) for i, wave in enumerate(waves) for n in wave))

    async def stop_all(self, rec: PodRecord, grace: int) -> None:
        """The pod is going: stop everything still running (with hooks and
        ordering when there is a grace period), and forget the pod."""
        task = self._stopping.pop(rec.uid, None)
        if task is not None:
            task.cancel()
        pod = self._pods.pop(rec.uid, None)
        if pod is not None and grace > 0:
            await self.stop(pod, rec, list(rec.runs), float(grace))
        for run in rec.runs.values():
            self._messages.pop(run.id, None)
        for run in rec.previous.values():
            self._messages.pop(run.id, None)

    def _stop_sidecars(self, pod: Obj, rec: PodRecord) -> None:
        """The app containers are done (or initialization failed): stop the
        sidecars, last first, in the background, then look at the pod again."""
        task = self._stopping.get(rec.uid)
        if task is not None and not task.done():
            return
        names = [c["name"] for k, c in containers.all_containers(pod) if k == "sidecar"
                 and c["name"] in rec.runs and rec.runs[c["name"]].state == "running"]
        if not names:
            return

        async def run() -> None:
            try:
                await self.stop(pod, rec, names, self._grace(pod))
            finally:
                self.k.queue.add(rec.key)

        self._stopping[rec.uid] = asyncio.get_running_loop().create_task(run())

    # -- status ---------------------------------------------------------------------
    def _message(self, rec: PodRecord, c: Obj, run: ContainerStatus | None) -> str:
        if run is None or run.state != "exited":
            return ""
        if run.id not in self._messages:
            self._messages[run.id] = termination.message(rec.sandbox, c, run)
        return self._messages[run.id]

    def views(self, pod: Obj, rec: PodRecord) -> list[ContainerView]:
        """What `podstatus` needs of every container of the pod."""
        prober = self.k.prober
        out = []
        for kind, c in containers.all_containers(pod):
            name = c["name"]
            run = rec.runs.get(name)
            previous = rec.previous.get(name)
            running = run is not None and run.state == "running"
            out.append(ContainerView(
                name=name, image=c.get("image", ""), current=run, previous=previous,
                restart_count=rec.restarts.get(name, 0), waiting=rec.waiting.get(name),
                ready=running and prober.ready(rec.uid, name), started=running and prober.started(rec.uid, name),
                kind=kind, message=self._message(rec, c, run), last_message=self._message(rec, c, previous)))
        return out
