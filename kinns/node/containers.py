"""The containers of a pod and the order they run in (pure).

A pod has three lists of containers, and each kind follows its own rules
(kubelet's computePodActions and computeInitContainerActions):

- init containers run one at a time, in order, each to success, before any
  app container starts.  A failed one is run again (with the restart
  back-off) unless the pod's restartPolicy is Never, which fails the pod;
- sidecars are init containers with `restartPolicy: Always`: the next init
  container starts once the sidecar has *started* (running, its startup
  probe passed, its postStart hook done), and it is kept running for the
  pod's life, restarted whatever the pod's restartPolicy says, until every
  app container has finished for good;
- app containers start together once initialization is done, and restart
  as the pod's restartPolicy says;
- ephemeral containers (`kubectl debug`) start as soon as they appear,
  also while the pod initializes, and never restart.

This module decides, from what the kubelet knows of each container
(`Run`), what to start next and whether the pod is initialized or has
failed; `podsync` carries it out and `podstatus` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

Kind = Literal["init", "sidecar", "app", "ephemeral"]
Obj = dict[str, Any]

INIT_LIST = "initContainers"
APP_LIST = "containers"
EPHEMERAL_LIST = "ephemeralContainers"
# Where each kind lives in the pod spec, as events and errors name it.
SPEC_LIST: dict[Kind, str] = {"init": INIT_LIST, "sidecar": INIT_LIST, "app": APP_LIST, "ephemeral": EPHEMERAL_LIST}


def is_sidecar(container: Obj) -> bool:
    """An init container with `restartPolicy: Always` (a restartable init container)."""
    return container.get("restartPolicy") == "Always"


def kind_of(list_name: str, container: Obj) -> Kind:
    if list_name == INIT_LIST:
        return "sidecar" if is_sidecar(container) else "init"
    return "ephemeral" if list_name == EPHEMERAL_LIST else "app"


def all_containers(pod: Obj) -> Iterator[tuple[Kind, Obj]]:
    """Every container of the pod with its kind: init (and sidecars), app, ephemeral."""
    spec = pod.get("spec") or {}
    for list_name in (INIT_LIST, APP_LIST, EPHEMERAL_LIST):
        for c in spec.get(list_name) or []:
            if isinstance(c, dict) and c.get("name"):
                yield kind_of(list_name, c), c


def find(pod: Obj, name: str) -> tuple[Kind, Obj] | None:
    """The container called `name`, in any of the pod's three lists."""
    return next(((k, c) for k, c in all_containers(pod) if c["name"] == name), None)


@dataclass(frozen=True)
class Run:
    """What the kubelet knows of a container's latest run, for decisions."""

    state: Literal["none", "running", "exited"] = "none"
    exit_code: int | None = None
    started: bool = False           # running, startup probe passed, postStart done


NONE = Run()


def restarts_after(kind: Kind, restart_policy: str, exit_code: int | None) -> bool:
    """Whether an exited run of a container of `kind` is run again."""
    if kind == "ephemeral":
        return False
    if kind == "sidecar":
        return True
    if kind == "init":
        return exit_code != 0 and restart_policy != "Never"
    return restart_policy == "Always" or (restart_policy == "OnFailure" and exit_code != 0)


@dataclass
class Plan:
    """What to do next for a pod's containers."""

    start: list[str] = field(default_factory=list)    # init containers and sidecars to (re)start, in order
    initialized: bool = False                          # app containers may run
    init_failed: bool = False                          # a failed init container with restartPolicy Never
    apps_done: bool = False                            # every app container finished for good
    stop_sidecars: bool = False                        # ... so the sidecars go too


def plan(pod: Obj, runs: dict[str, Run]) -> Plan:
    """The next step of initialization, and whether the pod's work is done.

    Once any app container has run the pod counts as initialized for good
    (a later restart of a sidecar does not hold the app containers back);
    until then only the last init container that has run matters: if it
    is done (exited 0, or a started sidecar) the next one starts, else the
    pod waits or runs it again.  Sidecars that died are brought back at
    every step."""
    spec = pod.get("spec") or {}
    policy = str(spec.get("restartPolicy") or "Always")
    inits = [c for c in spec.get(INIT_LIST) or [] if isinstance(c, dict) and c.get("name")]
    apps = [c for c in spec.get(APP_LIST) or [] if isinstance(c, dict) and c.get("name")]
    out = Plan()
    app_runs = [runs.get(c["name"], NONE) for c in apps]
    out.apps_done = bool(apps) and all(
        r.state == "exited" and not restarts_after("app", policy, r.exit_code) for r in app_runs)
    dead_sidecars = [c["name"] for c in inits
                     if is_sidecar(c) and runs.get(c["name"], NONE).state == "exited"]
    if any(r.state != "none" for r in app_runs) or not inits:
        out.initialized = True
        out.stop_sidecars = out.apps_done
        if not out.apps_done:
            out.start = dead_sidecars
        return out
    last = max((i for i, c in enumerate(inits) if runs.get(c["name"], NONE).state != "none"), default=-1)
    if last < 0:
        out.start = [inits[0]["name"]]
        return out
    c, run = inits[last], runs[inits[last]["name"]]
    done = (run.state == "running" and run.started) if is_sidecar(c) else (run.state == "exited"
                                                                              and run.exit_code == 0)
    out.start = [n for n in dead_sidecars if n != c["name"]]
    if done:
        if last == len(inits) - 1:
            out.initialized = True
        else:
            out.start.append(inits[last + 1]["name"])
    elif run.state == "exited":
        if restarts_after(kind_of(INIT_LIST, c), policy, run.exit_code):
            out.start.append(c["name"])
        else:
            out.init_failed = True
            out.start = []
    return out


def stop_order(pod: Obj, running: set[str]) -> list[list[str]]:
    """The waves in which a pod's running containers stop: app and ephemeral
    containers together, then each sidecar alone, the last one first
    (a sidecar serves the containers started after it)."""
    spec = pod.get("spec") or {}
    sidecars = [c["name"] for c in spec.get(INIT_LIST) or [] if isinstance(c, dict) and is_sidecar(c)]
    first = sorted(n for n in running if n not in sidecars)
    waves = [first] if first else []
    waves += [[n] for n in reversed(sidecars) if n in running]
    return waves
