"""The store is durable: objects survive a cluster restart, old watches get 410."""

from __future__ import annotations

import json
from pathlib import Path

from kinns.testing import ClusterHandle, new_cluster_name


def test_restart_keeps_objects_and_expires_old_watch(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("r"), state_root)
    c.up()
    try:
        c.kubectl("create", "configmap", "kept", "--from-literal=k=v")
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kept"},
               "spec": {"ports": [{"port": 80}], "type": "NodePort"}}
        c.kubectl("apply", "-f", "-", stdin=json.dumps(svc))
        before = json.loads(c.kubectl("get", "svc", "kept", "-o", "json").stdout)["spec"]
        # `kinns stop` ends every process (the API server too); `up` on the stopped cluster starts it again.
        c.cli("stop", "--name", c.name)
        r = c.cli("up", "--name", c.name, check=False)
        assert r.returncode == 0, r.stderr
        assert c.kubectl("get", "cm", "kept", "-o", "jsonpath={.data.k}").stdout == "v"
        after = json.loads(c.kubectl("get", "svc", "kept", "-o", "json").stdout)["spec"]
        assert after["clusterIP"] == before["clusterIP"]
        assert after["ports"][0]["nodePort"] == before["ports"][0]["nodePort"]
        # The allocator remembers what is taken across the restart.
        taken = dict(svc, metadata={"name": "again"},
                     spec={"ports": [{"port": 80, "nodePort": before["ports"][0]["nodePort"]}], "type": "NodePort"})
        r2 = c.kubectl("apply", "-f", "-", stdin=json.dumps(taken), check=False)
        assert "provided port is already allocated" in r2.stderr
        # A watch from before the restart is too old: an ERROR event with a 410 Status.
        w = c.http("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=2")
        first = json.loads(w.body.splitlines()[0])
        assert first["type"] == "ERROR"
        assert first["object"]["code"] == 410 and first["object"]["reason"] == "Expired"
    finally:
        c.down()


def test_up_twice_says_running(state_root: Path) -> None:
    c = ClusterHandle(new_cluster_name("d"), state_root)
    c.up()
    try:
        r = c.cli("up", "--name", c.name, check=False)
        assert r.returncode == 1 and f'cluster "{c.name}" is already running' in r.stderr
    finally:
        c.down()
    r = c.cli("down", "--name", c.name, check=False)
    assert r.returncode == 1 and f'no cluster named "{c.name}"' in r.stderr
