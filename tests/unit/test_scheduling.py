"""The scheduler's filter and score as a user sees them in Pending pods' reasons."""

from __future__ import annotations

from typing import Any

from kinns.controllers.scheduling import schedule

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
         ready: bool = True, cpu: str = "2", pods: str = "110") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, node_name: str = "", owner: str = "", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node_name, "containers": [{"name": "c"}], **spec},
            "status": {"phase": "Running" if node_name else "Pending"}}


NODES = [node("kinns-control-plane", taints=[CP_TAINT]), node("kinns-worker"), node("kinns-worker2")]


def test_control_plane_taint_keeps_pods_off_unless_tolerated() -> None:
    assert schedule(pod("p"), NODES, []).node in ("kinns-worker", "kinns-worker2")
    tol = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
    d = schedule(pod("p", nodeSelector={"kubernetes.io/hostname": "kinns-control-plane"}, tolerations=tol), NODES, [])
    assert d.node == "kinns-control-plane"


def test_replicas_spread_across_workers() -> None:
    bound: list[dict[str, Any]] = []
    for i in range(4):
        d = schedule(pod(f"r{i}", owner="rs1"), NODES, bound)
        bound.append(pod(f"r{i}", d.node or "", owner="rs1"))
    assert sorted(p["spec"]["nodeName"] for p in bound) == ["kinns-worker", "kinns-worker", "kinns-worker2", "kinns-worker2"]


def test_unmatched_node_selector_gives_upstream_reason() -> None:
    d = schedule(pod("p", nodeSelector={"disk": "ssd"}), NODES, [])
    assert d.node is None
    assert d.message == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                         "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. "
                         "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_insufficient_cpu_and_not_ready() -> None:
    nodes = [node("a", cpu="1"), node("b", ready=False)]
    big = pod("p", containers=[{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}])
    d = schedule(big, nodes, [])
    assert d.message == ("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
                         "{node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are available: "
                         "2 Preemption is not helpful for scheduling.")


def test_unreachable_node_is_refused_by_its_taint_written_or_not() -> None:
    """Upstream's scheduler has no readiness check: the lifecycle controller's taint refuses the node."""
    gone = node("kinns-worker", ready=False)
    gone["status"]["conditions"][0]["status"] = "Unknown"
    want = ("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had "
            "untolerated taint {node-role.kubernetes.io/control-plane: }, 1 node(s) had untolerated taint "
            "{node.kubernetes.io/unreachable: }. preemption: 0/3 nodes are available: 3 Preemption is not "
            "helpful for scheduling.")
    p = pod("p", nodeSelector={"kubernetes.io/hostname": "kinns-worker"})
    assert schedule(p, [NODES[0], gone, NODES[2]], []).message == want
    tainted = {**gone, "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]}}
    assert schedule(p, [NODES[0], tainted, NODES[2]], []).message == want
    tol = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}]
    assert schedule(pod("p", nodeSelector={"kubernetes.io/hostname": "kinns-worker"}, tolerations=tol),
                    [NODES[0], tainted, NODES[2]], []).node == "kinns-worker"


def test_node_affinity_match_fields() -> None:
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["kinns-worker2"]}]}]}}}
    assert schedule(pod("p", affinity=aff), NODES, []).node == "kinns-worker2"


def test_host_port_conflict() -> None:
    c = [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]
    bound = [pod("x", "kinns-worker", containers=c)]
    assert schedule(pod("y", containers=c), NODES, bound).node == "kinns-worker2"
