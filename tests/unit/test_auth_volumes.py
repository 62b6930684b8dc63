"""What a pod sees of its identity: the `kube-api-access-*` projected volume
(token, ca.crt, namespace) prepared against the real API server, token
renewal, `downwardAPI` volumes, and `resourceFieldRef` env values."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.client import Client, InProcessTransport
from kinns.node import volumes
from kinns.node.downward import DownwardError, field_value, format_map, resource_value
from kinns.node.envvars import container_env

Obj = dict[str, Any]


def test_field_values() -> None:
    pod = {"metadata": {"name": "web", "namespace": "ns", "uid": "u", "labels": {"b": "2", "a": 'q"x'},
                        "annotations": {"k": "v"}}}
    assert field_value(pod, "metadata.name") == "web"
    assert field_value(pod, "metadata.namespace") == "ns"
    assert field_value(pod, "metadata.labels") == 'a="q\\"x"\nb="2"'
    assert field_value(pod, "metadata.annotations['k']") == "v"
    assert format_map({}) == ""
    with pytest.raises(DownwardError, match="unsupported fieldPath: status.phase"):
        field_value(pod, "status.phase")


@pytest.mark.parametrize("ref, want", [
    ({"resource": "limits.cpu"}, "1"),                        # 500m rounded up to whole cores
    ({"resource": "limits.cpu", "divisor": "1m"}, "500"),
    ({"resource": "requests.cpu", "divisor": "1m"}, "250"),
    ({"resource": "limits.memory", "divisor": "1Mi"}, "128"),
    ({"resource": "limits.memory"}, str(128 * 1024 * 1024)),
    ({"resource": "requests.memory"}, "0"),
    ({"resource": "limits.ephemeral-storage", "divisor": "1Gi"}, "100"),   # unset limit: node allocatable
])
def test_resource_values(ref: Obj, want: str) -> None:
    c = {"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}}}
    assert resource_value(c, ref, {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"}) == want


def test_env_resource_field_ref() -> None:
    c = {"name": "c", "resources": {"limits": {"memory": "64Mi"}},
         "env": [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "ECHO", "value": "$(MEM)Mi"}]}
    env = container_env(c, {}, {}, lambda ref: resource_value(c, ref, {}))
    assert env == {"MEM": "64", "ECHO": "64Mi"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        import time
        return time.time() + self.now


def test_projected_service_account_volume(tmp_path: Path) -> None:
    async def go() -> None:
        api = ApiServer(SqliteStore(tmp_path / "state.db", durable=False))
        api.configure_auth()
        await api.bootstrap()
        client = Client(InProcessTransport(api.dispatch))
        await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
                             "data": {"ca.crt": "-----CA-----"}})
        pod = await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"a": "b"}},
                                   "spec": {"nodeName": "n1", "containers": [
                                       {"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}],
                                       "volumes": [
                                           {"name": "info", "downwardAPI": {"items": [
                                               {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                               {"path": "cpu", "mode": 0o600, "resourceFieldRef": {
                                                   "containerName": "c", "resource": "limits.cpu"}}]}},
                                           {"name": "short", "projected": {"sources": [
                                               {"serviceAccountToken": {"path": "vault-token", "audience": "vault",
                                                                        "expirationSeconds": 600}}]}}]}})
        clock = Clock()
        tokens = volumes.TokenManager(clock=clock)
        paths = await volumes.prepare(client, pod, tmp_path / "pod", tokens, {"cpu": "4"})
        access = next(v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
        d = Path(paths[access])
        assert sorted(p.name for p in d.iterdir()) == ["ca.crt", "namespace", "token"]
        assert (d / "ca.crt").read_text() == "-----CA-----" and (d / "namespace").read_text() == "default"
        assert stat.S_IMODE((d / "token").stat().st_mode) == 0o644
        assert api.tokens is not None
        user = api.tokens.authenticate((d / "token").read_text())
        assert user is not None and user.extra_dict()["authentication.kubernetes.io/pod-name"] == ["web"]
        info = Path(paths["info"])
        assert (info / "labels").read_text() == 'a="b"' and (info / "cpu").read_text() == "2"
        assert stat.S_IMODE((info / "cpu").stat().st_mode) == 0o600
        short = Path(paths["short"]) / "vault-token"
        payload = json.loads(base64.urlsafe_b64decode(short.read_text().split(".")[1] + "=="))
        assert payload["aud"] == ["vault"] and payload["exp"] - payload["iat"] == 600
        # Nothing is due at once; each token is renewed after 80% of its requested life (the pod's 3607 s one too).
        assert await tokens.refresh_due(client) == 0
        first = short.read_text()
        clock.now = 481
        assert await tokens.refresh_due(client) == 1
        assert short.read_text() != first           # a new token (its own jti), written over the old one
        clock.now = 2900
        assert await tokens.refresh_due(client) == 2
        tokens.forget(pod["metadata"]["uid"])
        assert await tokens.refresh_due(client) == 0
        # A projected source that is missing and not optional stops the mount with the kubelet's words.
        pod["spec"]["volumes"] = [{"name": "p", "projected": {"sources": [{"configMap": {"name": "absent"}}]}}]
        with pytest.raises(volumes.VolumeError, match='configmap "absent" not found'):
            await volumes.prepare(client, pod, tmp_path / "pod2")
        await client.close()
    asyncio.run(go())
