"""Pod validation of sidecars and lifecycle hooks, in upstream's words."""

from __future__ import annotations

from typing import Any

from kinns.api.defaults import apply_defaults
from kinns.api.validation import validate


def errors(*, inits: tuple[dict[str, Any], ...] = (), apps: list[dict[str, Any]] | None = None,
           **spec: Any) -> list[str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"initContainers": list(inits), "containers": apps or [{"name": "app", "image": "busybox"}],
                    **spec}}
    apply_defaults("Pod", pod)
    return [str(e) for e in validate("Pod", pod)]


def test_restart_policy_only_on_init_containers_and_only_always() -> None:
    assert errors(inits=({"name": "s", "image": "busybox", "restartPolicy": "Always"},)) == []
    assert errors(inits=({"name": "s", "image": "busybox", "restartPolicy": "Never"},)) == [
        'spec.initContainers[0].restartPolicy: Unsupported value: "Never": supported values: "Always"']
    assert errors(apps=[{"name": "a", "image": "busybox", "restartPolicy": "Always"}]) == [
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]


def test_lifecycle_hooks() -> None:
    hook = {"preStop": {"exec": {"command": ["true"]}}}
    assert errors(apps=[{"name": "a", "image": "busybox", "lifecycle": hook}]) == []
    assert errors(inits=({"name": "i", "image": "busybox", "lifecycle": hook},)) == [
        "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always"]
    assert errors(inits=({"name": "s", "image": "busybox", "restartPolicy": "Always", "lifecycle": hook},)) == []
    assert errors(apps=[{"name": "a", "image": "busybox", "lifecycle": {"postStart": {}}}]) == [
        "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type"]
    both = {"postStart": {"exec": {"command": ["true"]}, "httpGet": {"port": 80}}}
    assert errors(apps=[{"name": "a", "image": "busybox", "lifecycle": both}]) == [
        "spec.containers[0].lifecycle.postStart.httpGet: Forbidden: may not specify more than 1 handler type"]
    sleepy = {"preStop": {"sleep": {"seconds": 45}}}
    assert errors(apps=[{"name": "a", "image": "busybox", "lifecycle": sleepy}]) == [
        "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 45: must be greater than 0 and less than "
        "terminationGracePeriodSeconds (30). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."]
    assert errors(apps=[{"name": "a", "image": "busybox", "lifecycle": sleepy}], terminationGracePeriodSeconds=60) == []
