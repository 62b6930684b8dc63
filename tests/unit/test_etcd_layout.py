"""kube-apiserver's etcd key layout both ways, and kubeadm's etcd command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinns.api.store.etcd_gateway import prefix_end
from kinns.api.store.etcd_keys import KeyLayout
from kinns.cluster.config import ClusterConfig
from kinns.cluster.etcd import EtcdTLS, etcd_argv

CASES = [
    # (store key, apiVersion, etcd key) as `etcdctl get /registry --prefix --keys-only` shows them
    (("pods", "default", "web-1"), "v1", "/registry/pods/default/web-1"),
    (("namespaces", "", "kube-system"), "v1", "/registry/namespaces/kube-system"),
    (("services", "default", "kubernetes"), "v1", "/registry/services/specs/default/kubernetes"),
    (("endpoints", "default", "kubernetes"), "v1", "/registry/services/endpoints/default/kubernetes"),
    (("nodes", "", "kinns-control-plane"), "v1", "/registry/minions/kinns-control-plane"),
    (("replicationcontrollers", "ns", "rc"), "v1", "/registry/controllers/ns/rc"),
    (("deployments.apps", "default", "web"), "apps/v1", "/registry/deployments/default/web"),
    (("ingresses.networking.k8s.io", "default", "in"), "networking.k8s.io/v1", "/registry/ingress/default/in"),
    (("clusterroles.rbac.authorization.k8s.io", "", "admin"), "rbac.authorization.k8s.io/v1",
     "/registry/clusterroles/admin"),
    (("storageclasses.storage.k8s.io", "", "standard.v2"), "storage.k8s.io/v1", "/registry/storageclasses/standard.v2"),
    (("customresourcedefinitions.apiextensions.k8s.io", "", "widgets.example.com"), "apiextensions.k8s.io/v1",
     "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"),
    (("widgets.example.com", "team", "w"), "example.com/v1", "/registry/example.com/widgets/team/w"),
]


@pytest.mark.parametrize(("key", "api_version", "etcd_key"), CASES)
def test_keys_both_ways(key: tuple[str, str, str], api_version: str, etcd_key: str) -> None:
    layout = KeyLayout()
    assert layout.key(key) == etcd_key.encode()
    assert layout.parse(etcd_key.encode(), {"apiVersion": api_version}) == key


def test_ranges_and_keys_that_hold_no_object() -> None:
    layout = KeyLayout("/custom/")
    assert layout.range_prefix() == b"/custom/"
    assert layout.range_prefix("services", "default") == b"/custom/services/specs/default/"
    assert layout.range_prefix("deployments.apps") == b"/custom/deployments/"
    assert layout.parse(b"/custom/ranges/serviceips", {}) is None       # upstream's allocator bitmap
    assert layout.parse(b"/registry/pods/default/x", {}) is None        # another prefix
    assert layout.parse(b"/custom/pods/a/b/c", {"apiVersion": "v1"}) is None
    # Cohabiting resources: the stored apiVersion names the group.
    assert layout.parse(b"/custom/events/default/e", {"apiVersion": "events.k8s.io/v1"}) == \
        ("events.events.k8s.io", "default", "e")
    assert prefix_end(b"/registry/") == b"/registry0" and prefix_end(b"a\xff") == b"b"


def test_kubeadm_etcd_command_line() -> None:
    cfg = ClusterConfig(name="c", state_dir_override="/state")
    argv = etcd_argv(cfg, "kinns-control-plane", "172.18.0.2")
    assert argv[0] == "etcd"
    flags = dict(a.removeprefix("--").split("=", 1) for a in argv[1:])
    assert flags["name"] == "kinns-control-plane" and flags["data-dir"] == "/state/etcd"
    assert flags["listen-client-urls"] == "http://127.0.0.1:2379,http://172.18.0.2:2379"
    assert flags["advertise-client-urls"] == "http://172.18.0.2:2379"
    assert flags["listen-peer-urls"] == flags["initial-advertise-peer-urls"] == "http://172.18.0.2:2380"
    assert flags["initial-cluster"] == "kinns-control-plane=http://172.18.0.2:2380"
    assert flags["listen-metrics-urls"] == "http://127.0.0.1:2381"
    assert flags["snapshot-count"] == "10000" and "cert-file" not in flags
    pki = Path("/etc/kubernetes/pki/etcd")
    tls = etcd_argv(cfg, "cp", "172.18.0.2", EtcdTLS(pki / "server.crt", pki / "server.key",
                                                                   pki / "ca.crt", pki / "peer.crt", pki / "peer.key"))
    tflags = dict(a.removeprefix("--").split("=", 1) for a in tls[1:])
    assert tflags["listen-client-urls"].startswith("https://127.0.0.1:2379")
    assert tflags["client-cert-auth"] == tflags["peer-client-cert-auth"] == "true"
    assert tflags["trusted-ca-file"] == tflags["peer-trusted-ca-file"] == str(pki / "ca.crt")
