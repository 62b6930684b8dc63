"""Where the API server sends a pod subresource, and how a kubelet's answer comes back.

Pure logic of `kinns.api.nodeproxy` (the kubelet URL for log/exec/attach/
portforward, as kube-apiserver's LogLocation/ExecLocation build it) and of
the kubelet's side (`kinns.node.server`: its 403 text, the log options).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import parse_qsl

import pytest

from kinns.api.errors import ApiError
from kinns.api.nodeproxy import NodeProxy, _go_dial_error, kubelet_error
from kinns.api.request import Request
from kinns.api.user import UserInfo
from kinns.node.server import LogOptions, forbidden_message

NODE = {"metadata": {"name": "w1"},
        "status": {"addresses": [{"type": "Hostname", "address": "w1"},
                                 {"type": "InternalIP", "address": "172.18.0.3"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}


def pod(node: str = "w1", containers: tuple[str, ...] = ("app",), init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [{"name": c} for c in containers],
                     "initContainers": [{"name": c} for c in init]}}


def proxy(p: dict[str, Any], nodes: dict[str, dict[str, Any]] | None = None) -> NodeProxy:
    def get_pod(ns: str, name: str) -> dict[str, Any]:
        if (ns, name) != ("ns", "web"):
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        return p
    known = {"w1": NODE} if nodes is None else nodes
    return NodeProxy(get_pod, known.get)


def req(**query: str | list[str]) -> Request:
    return Request("GET", "/", {k: v if isinstance(v, list) else [v] for k, v in query.items()})


def test_log_goes_to_container_logs_with_the_log_options() -> None:
    loc = proxy(pod()).location("log", "ns", "web", req(follow="true", tailLines="5", pretty="true"))
    assert loc is not None
    assert (loc.host, loc.port, loc.path) == ("172.18.0.3", 10250, "/containerLogs/ns/web/app")
    assert dict(parse_qsl(loc.query)) == {"follow": "true", "tailLines": "5"}
    assert loc.url == "https://172.18.0.3:10250/containerLogs/ns/web/app?follow=true&tailLines=5"


def test_exec_uses_the_kubelets_query_names() -> None:
    loc = proxy(pod()).location("exec", "ns", "web", req(command=["sh", "-c", "echo hi"], stdin="true",
                                                         stdout="true", stderr="false", tty="1"))
    assert loc is not None and loc.path == "/exec/ns/web/app"
    assert parse_qsl(loc.query) == [("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                                    ("input", "1"), ("output", "1"), ("tty", "1")]


def test_portforward_ports_become_port() -> None:
    loc = proxy(pod()).location("portforward", "ns", "web", req(ports="80,8080"))
    assert loc is not None and loc.path == "/portForward/ns/web"
    assert parse_qsl(loc.query) == [("port", "80"), ("port", "8080")]


@pytest.mark.parametrize("containers,init,asked,error", [
    (("a", "b"), (), "", "a container name must be specified for pod web, choose one of: [a b]"),
    (("a",), (), "zz", "container zz is not valid for pod web"),
    ((), (), "", "a container name must be specified for pod web"),
])
def test_container_validation(containers: tuple[str, ...], init: tuple[str, ...], asked: str, error: str) -> None:
    with pytest.raises(ApiError) as e:
        proxy(pod(containers=containers, init=init)).location("exec", "ns", "web", req(container=asked))
    assert (e.value.code, e.value.message) == (400, error)


def test_init_containers_are_valid_targets() -> None:
    loc = proxy(pod(init=("setup",))).location("log", "ns", "web", req(container="setup"))
    assert loc is not None and loc.path.endswith("/setup")


def test_no_node_assigned() -> None:
    p = proxy(pod(node=""))
    with pytest.raises(ApiError) as e:
        p.location("attach", "ns", "web", req())
    assert (e.value.code, e.value.message) == (400, "pod web does not have a host assigned")
    assert p.location("log", "ns", "web", req()) is None       # upstream: an empty log


def test_node_address_and_port_defaults() -> None:
    node = {"status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}}
    loc = proxy(pod(), {"w1": node}).location("log", "ns", "web", req())
    assert loc is not None and (loc.host, loc.port) == ("1.2.3.4", 10250)
    with pytest.raises(ApiError) as e:
        proxy(pod(), {}).location("log", "ns", "web", req())
    assert (e.value.code, e.value.message) == (404, 'nodes "w1" not found')


def test_missing_pod_is_the_apis_404() -> None:
    with pytest.raises(ApiError) as e:
        proxy(pod()).location("log", "ns", "ghost", req())
    assert e.value.code == 404


def test_plain_exec_needs_an_upgrade() -> None:
    with pytest.raises(ApiError) as e:
        asyncio.run(proxy(pod()).plain("exec", "ns", "web", req(command="true", stdout="true")))
    assert (e.value.code, e.value.message) == (400, "Upgrade request required")


def test_kubelet_errors_become_statuses() -> None:
    e = kubelet_error(400, 'container "app" in pod "web" is waiting to start: ContainerCreating\n')
    assert e.status()["reason"] == "BadRequest"
    assert e.status()["message"] == 'container "app" in pod "web" is waiting to start: ContainerCreating'
    e = kubelet_error(500, "boom")
    assert (e.code, e.message) == (500, "Internal error occurred: boom")
    assert kubelet_error(403, "Forbidden (user=x, verb=get, resource=nodes, subresource=proxy)").reason == \
        "Forbidden"


def test_dial_errors_in_gos_words() -> None:
    assert _go_dial_error("10.0.0.1", 10250, ConnectionRefusedError(111, "refused")) == \
        "dial tcp 10.0.0.1:10250: connect: connection refused"
    assert _go_dial_error("10.0.0.1", 10250, asyncio.TimeoutError()) == "dial tcp 10.0.0.1:10250: i/o timeout"
    assert _go_dial_error("10.0.0.1", 10250, OSError(113, "x")) == "dial tcp 10.0.0.1:10250: connect: no route to host"
    err = ssl.SSLCertVerificationError()
    err.verify_message = "IP address mismatch"
    assert _go_dial_error("10.0.0.1", 10250, err) == "tls: failed to verify certificate: IP address mismatch"


@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/pods", "verb=get, resource=nodes, subresource=proxy"),
    ("POST", "/exec/ns/web/app", "verb=create, resource=nodes, subresource=proxy"),
    ("GET", "/stats/summary", "verb=get, resource=nodes, subresource=stats"),
    ("GET", "/logs/", "verb=get, resource=nodes, subresource=log"),
])
def test_kubelet_forbidden_text(method: str, path: str, expected: str) -> None:
    user = UserInfo("system:kube-proxy", groups=("system:authenticated",))
    assert forbidden_message(user, method, path) == f"Forbidden (user=system:kube-proxy, {expected})"


def test_log_options() -> None:
    o = LogOptions.parse(req(follow="true", previous="true", tailLines="0", limitBytes="10", timestamps="1"))
    assert (o.follow, o.previous, o.tail, o.limit_bytes, o.timestamps) == (False, True, 0, 10, True)
    o = LogOptions.parse(req(sinceTime="2024-01-02T03:04:05Z"))
    assert o.since == 1704164645.0
    with pytest.raises(ApiError) as e:
        LogOptions.parse(req(tailLines="-1"))
    assert e.value.message == "tailLines: Invalid value: -1: must be greater than or equal to 0"
    with pytest.raises(ApiError) as e:
        LogOptions.parse(req(limitBytes="0"))
    assert e.value.message == "limitBytes: Invalid value: 0: must be greater than 0"
    with pytest.raises(ApiError):
        LogOptions.parse(req(sinceSeconds="soon"))
