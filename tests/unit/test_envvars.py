"""Service environment variables and $(VAR) expansion as upstream."""

from __future__ import annotations

from typing import Any

from kinns.node.envvars import container_env, expand, pod_fields, service_env, vars_for_service


def svc(name: str, ns: str, ip: str | None, ports: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])
WEB = svc("my-web", "shop", "10.96.12.34", [{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}])


def test_one_service_all_variables() -> None:
    assert vars_for_service(WEB) == {
        "MY_WEB_SERVICE_HOST": "10.96.12.34",
        "MY_WEB_SERVICE_PORT": "80",
        "MY_WEB_SERVICE_PORT_HTTP": "80",
        "MY_WEB_SERVICE_PORT_DNS_UDP": "53",
        "MY_WEB_PORT": "tcp://10.96.12.34:80",
        "MY_WEB_PORT_80_TCP": "tcp://10.96.12.34:80",
        "MY_WEB_PORT_80_TCP_PROTO": "tcp",
        "MY_WEB_PORT_80_TCP_PORT": "80",
        "MY_WEB_PORT_80_TCP_ADDR": "10.96.12.34",
        "MY_WEB_PORT_53_UDP": "udp://10.96.12.34:53",
        "MY_WEB_PORT_53_UDP_PROTO": "udp",
        "MY_WEB_PORT_53_UDP_PORT": "53",
        "MY_WEB_PORT_53_UDP_ADDR": "10.96.12.34",
    }


def test_unnamed_port_and_ipv6() -> None:
    env = vars_for_service(svc("v6", "a", "fd00::10", [{"port": 8080}]))
    assert env["V6_PORT"] == "tcp://[fd00::10]:8080"
    assert not any(k.startswith("V6_SERVICE_PORT_") for k in env)


def test_headless_and_external_name_are_skipped() -> None:
    services = [svc("headless", "a", "None", [{"port": 80}]), svc("ext", "a", None, [])]
    assert service_env(services, "a") == {}


def test_namespace_selection_and_master_service() -> None:
    other = svc("other", "elsewhere", "10.96.0.50", [{"port": 1}])
    env = service_env([KUBERNETES, WEB, other], "shop")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert "MY_WEB_SERVICE_HOST" in env
    assert "OTHER_SERVICE_HOST" not in env


def test_enable_service_links_false_keeps_master_only() -> None:
    env = service_env([KUBERNETES, WEB], "shop", enable_service_links=False)
    assert "KUBERNETES_SERVICE_HOST" in env and "MY_WEB_SERVICE_HOST" not in env


def test_local_kubernetes_service_shadows_master() -> None:
    local = svc("kubernetes", "shop", "10.96.9.9", [{"port": 443}])
    assert service_env([KUBERNETES, local], "shop")["KUBERNETES_SERVICE_HOST"] == "10.96.9.9"
    assert service_env([local, KUBERNETES], "shop")["KUBERNETES_SERVICE_HOST"] == "10.96.9.9"


def test_expand() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("cost $$5 $A", env) == "cost $5 $A"


def test_container_env_layers_and_expands() -> None:
    c = {"env": [{"name": "URL", "value": "http://$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)/"},
                 {"name": "MY_WEB_SERVICE_PORT", "value": "8080"},
                 {"name": "FROM_API", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    env = container_env(c, vars_for_service(WEB))
    assert env["URL"] == "http://10.96.12.34:80/"
    assert env["MY_WEB_SERVICE_PORT"] == "8080"
    assert "FROM_API" not in env


def test_field_refs_from_the_downward_api() -> None:
    c = {"env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}}
    env = container_env(c, {}, pod_fields(pod, pod_ip="10.244.1.5", host_ip="172.18.0.3"))
    assert env["NODE_NAME"] == "n1"
    assert env["POD_IP"] == "10.244.1.5"
    assert env["APP"] == "web"
    assert "SECRET" not in env
