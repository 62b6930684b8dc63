"""Pod resolv.conf per dnsPolicy and dnsConfig, as the kubelet writes it."""

from __future__ import annotations

from typing import Any

import pytest

from kinns.node.dnsconfig import parse_resolv_conf, pod_dns_config, resolv_conf

HOST = "# host file\nnameserver 10.255.255.53\nnameserver 1.1.1.1\nsearch corp.example lab.example\noptions edns0 timeout:2\n"
DNS = ["10.96.0.10"]


def pod(ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


def test_cluster_first_is_the_default() -> None:
    text = resolv_conf(pod("web"), cluster_dns=DNS, host_resolv=HOST)
    assert text == ("search web.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
                    "nameserver 10.96.0.10\n"
                    "options ndots:5\n")


def test_cluster_first_without_host_searches() -> None:
    text = resolv_conf(pod(), cluster_dns=DNS, host_resolv="nameserver 8.8.8.8\n")
    assert text == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")


def test_custom_cluster_domain() -> None:
    cfg = pod_dns_config(pod("a"), cluster_dns=DNS, cluster_domain="kinns.test.")
    assert cfg.searches == ["a.svc.kinns.test", "svc.kinns.test", "kinns.test"]


def test_default_copies_node() -> None:
    cfg = pod_dns_config(pod(dnsPolicy="Default"), cluster_dns=DNS, host_resolv=HOST)
    assert cfg.servers == ["10.255.255.53", "1.1.1.1"]
    assert cfg.searches == ["corp.example", "lab.example"]
    assert cfg.options == ["edns0", "timeout:2"]


@pytest.mark.parametrize("policy,expect_cluster", [
    ("ClusterFirst", False), ("ClusterFirstWithHostNet", True), ("Default", False)])
def test_host_network(policy: str, expect_cluster: bool) -> None:
    cfg = pod_dns_config(pod(dnsPolicy=policy, hostNetwork=True), cluster_dns=DNS, host_resolv=HOST)
    assert (cfg.servers == DNS) is expect_cluster


def test_cluster_first_without_cluster_dns_falls_back() -> None:
    cfg = pod_dns_config(pod(), cluster_dns=[], host_resolv=HOST)
    assert cfg.servers[0] == "10.255.255.53"


def test_none_uses_only_dns_config() -> None:
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["x.example"],
                                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert resolv_conf(p, cluster_dns=DNS, host_resolv=HOST) == (
        "search x.example\nnameserver 192.0.2.1\noptions ndots:2 edns0\n")


def test_none_without_config_is_empty() -> None:
    assert resolv_conf(pod(dnsPolicy="None"), cluster_dns=DNS) == ""


def test_dns_config_merges_into_cluster_first() -> None:
    p = pod("ns1", dnsConfig={"nameservers": ["10.96.0.10", "192.0.2.2"], "searches": ["svc.cluster.local", "extra"],
                               "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]})
    cfg = pod_dns_config(p, cluster_dns=DNS)
    assert cfg.servers == ["10.96.0.10", "192.0.2.2"]
    assert cfg.searches == ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local", "extra"]
    assert cfg.options == ["ndots:1", "single-request"]


def test_limits() -> None:
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": [f"192.0.2.{i}" for i in range(5)],
                                         "searches": [f"d{i}.example" for i in range(40)]})
    cfg = pod_dns_config(p, cluster_dns=DNS)
    assert len(cfg.servers) == 3
    assert len(cfg.searches) == 32
    long = pod(dnsPolicy="None", dnsConfig={"searches": ["a" * 250 + str(i) for i in range(20)]})
    assert len(" ".join(pod_dns_config(long, cluster_dns=DNS).searches)) <= 2048


def test_parse_domain_and_comments() -> None:
    cfg = parse_resolv_conf("domain a.example\n; comment\nsearch b.example c.example # tail\nnameserver 9.9.9.9\n")
    assert cfg.searches == ["b.example", "c.example"]
    assert cfg.servers == ["9.9.9.9"]
