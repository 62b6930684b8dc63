"""Container rules of pod validation that belong to how containers run:
`restartPolicy` (sidecars) and `lifecycle` hooks, as upstream's
validateInitContainers / validateContainers / validateLifecycle say.

- an init container's `restartPolicy` may only be `Always` (a sidecar); an
  app container may not have one ("may not be set for non-init containers");
- `lifecycle` is refused on init containers that are not sidecars;
- each hook has exactly one handler (exec with a command, httpGet with a
  port, sleep of 1 .. terminationGracePeriodSeconds seconds; tcpSocket is
  accepted and does nothing, as upstream).

Ephemeral containers refuse `lifecycle` and `restartPolicy` outright (see
`ephemeral.py`).
"""

from __future__ import annotations

from typing import Any

from .errors import FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, FieldError

_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")


def handler_errors(handler: Any, path: str, grace: Any) -> list[FieldError]:
    """validateHandler for one lifecycle hook."""
    if not isinstance(handler, dict):
        return []
    errs: list[FieldError] = []
    present = [h for h in _HANDLERS if handler.get(h) is not None]
    if not present:
        return [FieldError(REQUIRED, path, detail="must specify a handler type")]
    errs += [FieldError(FORBIDDEN, f"{path}.{h}", detail="may not specify more than 1 handler type")
             for h in present[1:]]
    first = present[0]
    body = handler[first] if isinstance(handler[first], dict) else {}
    if first == "exec" and not body.get("command"):
        errs.append(FieldError(REQUIRED, f"{path}.exec.command"))
    elif first == "httpGet" and body.get("port") in (None, "", 0):
        errs.append(FieldError(REQUIRED, f"{path}.httpGet.port"))
    elif first == "sleep" and isinstance(grace, int):
        seconds = body.get("seconds", 0)
        if not isinstance(seconds, int) or seconds <= 0 or seconds > grace:
            errs.append(FieldError(INVALID, f"{path}.sleep", seconds,
                                   f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). "
                                   "Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."))
    return errs


def container_errors(c: dict[str, Any], path: str, init: bool, grace: Any) -> list[FieldError]:
    """The restartPolicy and lifecycle rules of one init or app container."""
    errs: list[FieldError] = []
    policy = c.get("restartPolicy")
    sidecar = init and policy == "Always"
    if policy is not None:
        if not init:
            errs.append(FieldError(FORBIDDEN, f"{path}.restartPolicy", detail="may not be set for non-init containers"))
        elif policy != "Always":
            errs.append(FieldError(NOT_SUPPORTED, f"{path}.restartPolicy", policy, 'supported values: "Always"'))
    lifecycle = c.get("lifecycle")
    if lifecycle is None:
        return errs
    if init and not sidecar:
        errs.append(FieldError(FORBIDDEN, f"{path}.lifecycle",
                               detail="may not be set for init containers without restartPolicy=Always"))
    elif isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            errs += handler_errors(lifecycle.get(hook), f"{path}.lifecycle.{hook}", grace)
    return errs
