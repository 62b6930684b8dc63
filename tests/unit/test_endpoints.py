"""Which pods stand behind a Service, as Endpoints and EndpointSlices show it."""

from __future__ import annotations

from typing import Any

from kinns.controllers.endpoints import desired_endpoints, desired_slices, resolve_ports


def svc(**spec: Any) -> dict[str, Any]:
    base = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                                   "protocol": "TCP"}]}
    base.update(spec)
    return {"metadata": {"name": "web", "namespace": "default", "uid": "s1"}, "spec": base}


def pod(name: str, ip: str, ready: bool = True, labels: dict[str, str] | None = None,
        deleting: bool = False, ports: list[dict[str, Any]] | None = None, phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"u-{name}",
                            "labels": labels if labels is not None else {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-23T10:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports or []}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_ready_not_ready_and_unmatched() -> None:
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", ready=False), pod("c", "10.244.1.4", labels={}),
            pod("d", "", ready=True), pod("e", "10.244.1.5", phase="Succeeded")]
    ep = desired_endpoints(svc(), pods)
    (subset,) = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.244.1.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.1.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    (sl,) = desired_slices(svc(), pods)
    assert [(e["addresses"], e["conditions"]["ready"]) for e in sl["endpoints"]] == [
        (["10.244.1.2"], True), (["10.244.1.3"], False)]
    assert sl["endpoints"][0]["targetRef"]["name"] == "a" and sl["endpoints"][0]["nodeName"] == "n1"


def test_terminating_pod_is_serving_but_not_ready_and_leaves_endpoints() -> None:
    pods = [pod("a", "10.244.1.2", deleting=True)]
    assert "subsets" not in desired_endpoints(svc(), pods)
    (sl,) = desired_slices(svc(), pods)
    assert sl["endpoints"][0]["conditions"] == {"ready": False, "serving": True, "terminating": True}


def test_named_target_port_resolves_per_pod() -> None:
    s = svc(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    a = pod("a", "10.244.1.2", ports=[{"name": "web", "containerPort": 8080}])
    b = pod("b", "10.244.1.3", ports=[{"name": "web", "containerPort": 9090}])
    c = pod("c", "10.244.1.4", ports=[{"name": "other", "containerPort": 1}])
    assert resolve_ports(s, c) is None
    slices = desired_slices(s, [a, b, c])
    assert sorted((sl["ports"][0]["port"], [e["addresses"][0] for e in sl["endpoints"]]) for sl in slices) == [
        (8080, ["10.244.1.2"]), (9090, ["10.244.1.3"])]


def test_no_selector_means_no_managed_endpoints_and_large_services_split() -> None:
    assert desired_slices(svc(selector=None), [pod("a", "10.244.1.2")])[0]["endpoints"] == []
    many = [pod(f"p{i:03}", f"10.244.{i // 200}.{i % 200 + 2}") for i in range(250)]
    assert [len(s["endpoints"]) for s in desired_slices(svc(), many)] == [100, 100, 50]


def test_hostname_only_for_the_subdomain_service_and_publish_not_ready() -> None:
    from kinns.controllers.endpoints import desired_slices
    pod = {"metadata": {"name": "web-0", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
           "spec": {"hostname": "web-0", "subdomain": "nginx", "nodeName": "n1",
                    "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
           "status": {"podIP": "10.244.1.5", "phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}

    def svc(name: str, **spec: object) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}

    (mine,) = desired_slices(svc("nginx"), [pod])
    (other,) = desired_slices(svc("web", publishNotReadyAddresses=True), [pod])
    assert mine["endpoints"][0]["hostname"] == "web-0"
    assert mine["endpoints"][0]["conditions"]["ready"] is False
    assert "hostname" not in other["endpoints"][0]
    assert other["endpoints"][0]["conditions"]["ready"] is True
