"""The pods/ephemeralcontainers subresource's pure parts: what an update keeps
(dropNonEphemeralContainerUpdates) and upstream's validation messages."""

from __future__ import annotations

import copy
from typing import Any

from kinns.api.defaults import apply_defaults
from kinns.api.ephemeral import create_errors, prepare_update, validate_update


def stored() -> dict[str, Any]:
    p: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                     "labels": {"app": "web"}},
        "spec": {"initContainers": [{"name": "setup", "image": "busybox"}],
                 "containers": [{"name": "app", "image": "nginx"}], "nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    apply_defaults("Pod", p)
    return p


def with_debugger(p: dict[str, Any], **fields: Any) -> dict[str, Any]:
    new = copy.deepcopy(p)
    c = {"name": "debugger-abcde", "image": "busybox", "stdin": True, "tty": True, "resources": {},
         "terminationMessagePolicy": "File", **fields}
    new["spec"].setdefault("ephemeralContainers", []).append(c)
    return new


def messages(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    new = prepare_update(new, old)
    apply_defaults("Pod", new)
    return [str(e) for e in validate_update(new, old)]


def test_only_ephemeral_containers_are_taken_from_the_request() -> None:
    old = stored()
    req = with_debugger(old, targetContainerName="app")
    req["metadata"]["labels"] = {"app": "changed"}
    req["spec"]["containers"][0]["image"] = "httpd"
    req["status"] = {"phase": "Failed"}
    new = prepare_update(req, old)
    assert new["metadata"]["labels"] == {"app": "web"}
    assert new["spec"]["containers"] == old["spec"]["containers"] and new["status"] == old["status"]
    assert [c["name"] for c in new["spec"]["ephemeralContainers"]] == ["debugger-abcde"]
    assert messages(req, old) == []


def test_what_kubectl_debug_sends_is_valid() -> None:
    old = stored()
    assert messages(with_debugger(old, command=["sh"], targetContainerName="app"), old) == []


def test_fields_an_ephemeral_container_may_not_set() -> None:
    old = stored()
    bad = with_debugger(old, ports=[{"containerPort": 80}], resources={"limits": {"cpu": "1"}},
                        readinessProbe={"exec": {"command": ["true"]}}, lifecycle={"preStop": {"sleep": {"seconds": 1}}},
                        volumeMounts=[{"name": "x", "mountPath": "/x", "subPath": "a"}])
    p = "spec.ephemeralContainers[0]"
    got = messages(bad, old)
    assert f"{p}.ports: Forbidden: cannot be set for an Ephemeral Container" in got
    assert f"{p}.resources: Forbidden: cannot be set for an Ephemeral Container" in got
    assert f"{p}.readinessProbe: Forbidden: cannot be set for an Ephemeral Container" in got
    assert f"{p}.lifecycle: Forbidden: cannot be set for an Ephemeral Container" in got
    assert f"{p}.volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container" in got
    assert f'{p}.volumeMounts[0].name: Not found: "x"' in got


def test_names_are_unique_and_targets_exist() -> None:
    old = stored()
    assert messages(with_debugger(old, name="setup"), old) == [
        'spec.ephemeralContainers[0].name: Duplicate value: "setup"']
    assert messages(with_debugger(old, targetContainerName="nope"), old) == [
        'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"']
    assert messages(with_debugger(old, name="Bad_Name"), old)[0].startswith(
        'spec.ephemeralContainers[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label')


def test_existing_ephemeral_containers_may_not_change_or_go() -> None:
    old = with_debugger(stored())
    changed = copy.deepcopy(old)
    changed["spec"]["ephemeralContainers"][0]["image"] = "alpine"
    (msg,) = messages(changed, old)
    assert msg.startswith('spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger-abcde" '
                          "may not be changed\n")
    gone = copy.deepcopy(old)
    del gone["spec"]["ephemeralContainers"]
    assert messages(gone, old) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger-abcde" may not be removed\n']


def test_static_pods_and_creates_refuse_them() -> None:
    mirror = stored()
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    assert messages(with_debugger(mirror), mirror) == ["Forbidden: static pods do not support ephemeral containers"]
    assert [str(e) for e in create_errors("Pod", with_debugger(stored()))] == [
        "spec.ephemeralContainers: Forbidden: cannot be set on create"]
    assert create_errors("Pod", stored()) == []
