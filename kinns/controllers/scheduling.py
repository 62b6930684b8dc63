"""Where a pod may run and where it should: the scheduler's decision, as data.

Filters as upstream's default plugins, in the order a user reads them in
the FailedScheduling message: NodeUnschedulable, NodeName, TaintToleration
(a node that is not Ready is refused through its not-ready or unreachable
taint, as upstream, not by a readiness check of its own),
NodeAffinity (nodeSelector and required node affinity), NodeResourcesFit
(cpu, memory, pods), NodePorts (hostPort clashes).  Scoring prefers the
node with the fewest pods of the same owner, then the fewest pods overall,
which spreads replicas across nodes as users expect.  No I/O here: the
scheduler controller feeds nodes and pods in and binds the answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .quantity import parse_cpu_millis, parse_bytes
from .taints import NOT_READY, condition_taints, tolerates


@dataclass
class Decision:
    node: str | None
    message: str = ""   # why not, in upstream's words, when node is None


def node_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node's taints, plus the NoSchedule ones its conditions call for that the
    node lifecycle controller has not written yet, so a pod is judged alike just
    before and just after the controller catches up.  A node that never posted a
    Ready condition counts as not ready."""
    taints = list(node.get("spec", {}).get("taints") or [])
    implied = condition_taints(node)
    if not any(c.get("type") == "Ready" for c in node.get("status", {}).get("conditions") or []):
        implied.append({"key": NOT_READY, "effect": "NoSchedule"})
    for t in implied:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in taints):
            taints.append(t)
    return taints


def _untolerated(pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    tolerations = pod.get("spec", {}).get("tolerations") or []
    for taint in node_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


def expression_matches(expr: dict[str, Any], value: str | None) -> bool:
    """One node selector requirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) against a value."""
    op, vals = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in vals
    if op == "NotIn":
        return value is None or value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and vals:
        try:
            return int(value) > int(vals[0]) if op == "Gt" else int(value) < int(vals[0])
        except ValueError:
            return False
    return False


def matches_affinity(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    spec = pod.get("spec", {})
    labels = node.get("metadata", {}).get("labels", {})
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:  # terms are ORed, expressions inside a term ANDed
        ok = all(expression_matches(e, labels.get(e["key"])) for e in term.get("matchExpressions", []))
        ok = ok and all(expression_matches(e, fields.get(e["key"])) for e in term.get("matchFields", []))
        if ok and (term.get("matchExpressions") or term.get("matchFields")):
            return True
    return False


def pod_requests(pod: dict[str, Any]) -> tuple[int, int]:
    """(cpu millicores, memory bytes) requested by the pod's containers."""
    cpu = mem = 0
    for c in pod.get("spec", {}).get("containers", []):
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += parse_cpu_millis(req.get("cpu", "0"))
        mem += parse_bytes(req.get("memory", "0"))
    return cpu, mem


def _host_ports(pod: dict[str, Any]) -> set[tuple[str, int]]:
    out = set()
    for c in pod.get("spec", {}).get("containers", []):
        for p in c.get("ports", []) or []:
            if p.get("hostPort"):
                out.add((p.get("protocol", "TCP"), int(p["hostPort"])))
    return out


def _owner_uid(pod: dict[str, Any]) -> str | None:
    for ref in pod.get("metadata", {}).get("ownerReferences", []):
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _active(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def group_by_node(pods: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Active bound pods per node name."""
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        n = p.get("spec", {}).get("nodeName")
        if n and _active(p):
            by_node.setdefault(n, []).append(p)
    return by_node


def schedule(pod: dict[str, Any], nodes: list[dict[str, Any]], pods: Iterable[dict[str, Any]] = (),
             by_node: Mapping[str, list[dict[str, Any]]] | None = None) -> Decision:
    """Pick a node for `pod` given all nodes and the pods already bound
    (as a list, or already grouped by node, which a busy scheduler keeps)."""
    if not nodes:
        return Decision(None, "no nodes available to schedule pods")
    if by_node is None:
        by_node = group_by_node(pods)
    reasons: Counter[str] = Counter()
    feasible: list[dict[str, Any]] = []
    want_cpu, want_mem = pod_requests(pod)
    want_ports = _host_ports(pod)
    for node in nodes:
        name = node["metadata"]["name"]
        spec = node.get("spec", {})
        if spec.get("unschedulable") and not tolerates(pod.get("spec", {}).get("tolerations", []),
                                                        {"key": "node.kubernetes.io/unschedulable",
                                                         "effect": "NoSchedule"}):
            reasons["node(s) were unschedulable"] += 1
            continue
        taint = _untolerated(pod, node)
        if taint is not None:
            shown = f"{taint.get('key')}: {taint.get('value', '')}"
            reasons[f"node(s) had untolerated taint {{{shown}}}"] += 1
            continue
        if not matches_affinity(pod, node):
            reasons["node(s) didn't match Pod's node affinity/selector"] += 1
            continue
        alloc = node.get("status", {}).get("allocatable", {})
        here = by_node.get(name, [])
        if len(here) + 1 > int(alloc.get("pods", "110")):
            reasons["Too many pods"] += 1
            continue
        # Sums only when the pod asks for resources: most pods ask for none.
        if want_cpu and sum(pod_requests(p)[0] for p in here) + want_cpu > parse_cpu_millis(alloc.get("cpu", "0")):
            reasons["Insufficient cpu"] += 1
            continue
        if want_mem and sum(pod_requests(p)[1] for p in here) + want_mem > parse_bytes(alloc.get("memory", "0")):
            reasons["Insufficient memory"] += 1
            continue
        if want_ports and any(want_ports & _host_ports(p) for p in here):
            reasons["node(s) didn't have free ports for the requested pod ports"] += 1
            continue
        feasible.append(node)
    if not feasible:
        # Upstream sorts the "<count> <reason>" strings themselves.
        parts = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
        total = len(nodes)
        return Decision(None, f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are "
                              f"available: {total} Preemption is not helpful for scheduling.")
    owner = _owner_uid(pod)

    def score(node: dict[str, Any]) -> tuple[int, int, str]:
        here = by_node.get(node["metadata"]["name"], [])
        same = sum(1 for p in here if owner and _owner_uid(p) == owner)
        return (same, len(here), node["metadata"]["name"])

    return Decision(min(feasible, key=score)["metadata"]["name"])
