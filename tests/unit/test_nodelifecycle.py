"""Node failure handling as pure decisions: nodes, leases, pods and a clock in;
conditions, taints, evictions and pod GC verdicts out, as upstream's node
lifecycle, taint-eviction and pod GC controllers decide them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kinns.api.defaults import apply_defaults
from kinns.controllers import nodehealth as nh
from kinns.controllers.daemonset_plan import daemon_pod, daemon_tolerations, plan, should_run
from kinns.controllers.podgc import ORPHANED, TERMINATING_OUT_OF_SERVICE, UNSCHEDULED_TERMINATING, gc_reason
from kinns.controllers.taints import NOT_READY, UNREACHABLE

Obj = dict[str, Any]
T0 = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
GRACE, STARTUP = 50.0, 60.0


def ts(seconds: float = 0) -> str:
    return nh.format_time(T0 + dt.timedelta(seconds=seconds))


def cond(ctype: str, status: str, hb: str = "2025-01-01T11:59:50Z") -> Obj:
    return {"type": ctype, "status": status, "reason": "Kubelet", "message": "kubelet says so",
            "lastHeartbeatTime": hb, "lastTransitionTime": "2025-01-01T11:00:00Z"}


def node(name: str = "w1", ready: str | None = "True", hb: str = "2025-01-01T11:59:50Z",
         taints: list[Obj] | None = None, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    conds = [cond("MemoryPressure", "False", hb), cond("DiskPressure", "False", hb), cond("PIDPressure", "False", hb),
             cond("NetworkUnavailable", "False", hb)]
    if ready is not None:
        conds.append(cond("Ready", ready, hb))
    else:
        conds = []
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": "2025-01-01T11:00:00Z", "labels": labels or {}},
            "spec": {"taints": taints or [], **spec}, "status": {"conditions": conds}}


def lease(renew: str) -> Obj:
    return {"metadata": {"name": "w1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "w1", "leaseDurationSeconds": 40, "renewTime": renew}}


def pod(name: str = "p", node_name: str = "w1", tolerations: list[Obj] | None = None, ready: bool = True,
        deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = ts()
    return {"metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": "c"}], "tolerations": tolerations or []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(-600)}]}}


def tol(key: str, seconds: int | None = None, effect: str = "NoExecute") -> Obj:
    t: Obj = {"key": key, "operator": "Exists", "effect": effect}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


# ------------------------------------------------------------------ health

def test_lease_renewals_keep_a_node_alive_and_their_absence_makes_it_stale() -> None:
    n = node()
    h = nh.observe(None, n, lease("2025-01-01T11:59:55.000000Z"), 100.0, T0)
    assert h.probe == 100.0                              # first sight: a fresh grace period
    h = nh.observe(h, n, lease("2025-01-01T12:00:05.000000Z"), 110.0, T0)
    assert h.probe == 110.0                              # renewed
    h = nh.observe(h, n, lease("2025-01-01T12:00:05.000000Z"), 150.0, T0)
    assert h.probe == 110.0                              # same renewTime: no sign of life
    assert not nh.is_stale(h, 160.0, GRACE, STARTUP)
    assert nh.is_stale(h, 160.5, GRACE, STARTUP)


def test_a_new_heartbeat_in_ready_counts_as_much_as_a_lease() -> None:
    h = nh.observe(None, node(hb="2025-01-01T11:59:50Z"), None, 0.0, T0)
    h = nh.observe(h, node(hb="2025-01-01T12:00:20Z"), None, 30.0, T0)
    assert h.probe == 30.0
    # The heartbeat's value is never compared with our clock: a skewed one is just "new".
    h = nh.observe(h, node(hb="2020-01-01T00:00:00Z"), None, 45.0, T0)
    assert h.probe == 45.0


def test_a_node_that_never_posted_status_gets_the_startup_grace_from_its_creation() -> None:
    n = node(ready=None)   # created at 11:00, an hour before T0
    h = nh.observe(None, n, None, 5000.0, T0)
    assert h.probe == 5000.0 - 3600 and not h.has_ready
    assert nh.is_stale(h, 5000.0, GRACE, STARTUP)
    conds = nh.unknown_conditions(n, ts())
    assert conds is not None
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in conds] == [
        (t, "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")
        for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")]
    assert conds[0]["lastHeartbeatTime"] == "2025-01-01T11:00:00Z"
    # Our own write is no sign of life.
    after = nh.after_write(h, {**n, "status": {"conditions": conds}})
    assert nh.observe(after, {**n, "status": {"conditions": conds}}, None, 5001.0, T0).probe == h.probe


def test_stale_node_conditions_turn_unknown_but_network_is_left_alone() -> None:
    conds = nh.unknown_conditions(node(), ts())
    assert conds is not None
    by = {c["type"]: c for c in conds}
    for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        assert (by[t]["status"], by[t]["reason"], by[t]["message"]) == \
            ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert by[t]["lastTransitionTime"] == ts() and by[t]["lastHeartbeatTime"] == "2025-01-01T11:59:50Z"
    assert by["NetworkUnavailable"]["status"] == "False"
    # Already Unknown: nothing to write.
    assert nh.unknown_conditions({**node(), "status": {"conditions": conds}}, ts(5)) is None


# ------------------------------------------------------------------ taints

def test_noschedule_taints_follow_the_conditions_and_keep_the_users() -> None:
    user = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    n = node(ready="Unknown", taints=[user])
    taints = nh.reconcile_noschedule(n, ts())
    assert taints == [user, {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": ts()}]
    assert nh.reconcile_noschedule({**n, "spec": {"taints": taints}}, ts(9)) is None   # in line: no write
    # Ready again: the taint goes, the user's stays.
    assert nh.reconcile_noschedule(node(taints=taints), ts(20)) == [user]
    # Ready=False swaps unreachable for not-ready; a cordon adds its own.
    swapped = nh.reconcile_noschedule(node(ready="False", taints=taints, unschedulable=True), ts(30))
    assert [(t["key"], t["effect"]) for t in swapped or []] == [
        ("dedicated", "NoSchedule"), (NOT_READY, "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")]


def test_noexecute_taint_swap_keeps_time_and_reachable_node_loses_it() -> None:
    ne = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": ts(-100)}
    n = node(ready="Unknown", taints=[ne, {"key": UNREACHABLE, "effect": "NoSchedule"}])
    assert nh.noexecute_taint("Unknown") == UNREACHABLE and nh.noexecute_taint("False") == NOT_READY
    assert nh.noexecute_taint("True") is None
    assert nh.swap_taints(n, [{"key": UNREACHABLE, "effect": "NoExecute"}], [], ts())[0]["timeAdded"] == ts(-100)
    swapped = nh.swap_taints(n, [{"key": NOT_READY, "effect": "NoExecute"}], [{"key": UNREACHABLE, "effect": "NoExecute"}],
                             ts())
    assert swapped == [{"key": UNREACHABLE, "effect": "NoSchedule"},
                       {"key": NOT_READY, "effect": "NoExecute", "timeAdded": ts()}]
    assert nh.without_noexecute(n) == [{"key": UNREACHABLE, "effect": "NoSchedule"}]
    assert nh.without_noexecute(node()) is None


@pytest.mark.parametrize("statuses,state", [
    (["True", "True", "Unknown"], nh.NORMAL),
    (["Unknown"], nh.FULL),
    (["Unknown", None], nh.FULL),                       # never posted counts as not ready
    (["True", "Unknown", "Unknown"], nh.NORMAL),          # fewer than 3 down is never partial
    (["True", "True", "Unknown", "Unknown", "False"], nh.PARTIAL),
    (["True", "True", "True", "Unknown", "Unknown", "False"], nh.NORMAL),  # 50% < 55%
])
def test_zone_state(statuses: list[str | None], state: str) -> None:
    assert nh.zone_state(statuses) == state


def test_tainting_rate_per_zone_state() -> None:
    assert nh.zone_qps(nh.NORMAL, 3) == 0.1
    assert nh.zone_qps(nh.FULL, 3) == 0.1                 # one zone down while others answer
    assert nh.zone_qps(nh.PARTIAL, 50) == 0.0             # small cluster: stop
    assert nh.zone_qps(nh.PARTIAL, 51) == 0.01
    b = nh.TokenBucket(0.1)
    assert b.try_take(0.0) and not b.try_take(9.9) and b.try_take(10.0)
    b.set_rate(0.0)
    assert not b.try_take(100.0)
    assert nh.zone_key(node()) == ""
    assert nh.zone_key(node(labels={"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "a"})) \
        == "r:\x00:a"


# -------------------------------------------------------------------- pods

def test_mark_pods_not_ready_only_touches_ready() -> None:
    conds = nh.pod_not_ready_conditions(pod(), ts())
    assert conds == [{"type": "Initialized", "status": "True"},
                     {"type": "Ready", "status": "False", "lastTransitionTime": ts()}]
    assert nh.pod_not_ready_conditions(pod(ready=False), ts()) is None
    bare = pod()
    bare["status"]["conditions"] = []
    assert nh.pod_not_ready_conditions(bare, ts()) is None


def taint(key: str, added: float = 0) -> Obj:
    return {"key": key, "effect": "NoExecute", "timeAdded": ts(added)}


def test_eviction_deadlines() -> None:
    unreachable = [taint(UNREACHABLE)]
    assert nh.eviction_deadline(pod(), []) is None
    assert nh.eviction_deadline(pod(), unreachable) == nh.IMMEDIATELY                   # not tolerated
    assert nh.eviction_deadline(pod(tolerations=[tol(UNREACHABLE, 300)]), unreachable) == T0 + dt.timedelta(seconds=300)
    assert nh.eviction_deadline(pod(tolerations=[tol(UNREACHABLE)]), unreachable) is None   # forever
    assert nh.eviction_deadline(pod(tolerations=[tol(UNREACHABLE, 0)]), unreachable) == nh.IMMEDIATELY
    # NoSchedule tolerations do not count against NoExecute taints.
    assert nh.eviction_deadline(pod(tolerations=[tol(UNREACHABLE, effect="NoSchedule")]), unreachable) \
        == nh.IMMEDIATELY
    # The first matching toleration is the one used, as upstream.
    assert nh.eviction_deadline(pod(tolerations=[tol(UNREACHABLE, 10), {"operator": "Exists"}]), unreachable) \
        == T0 + dt.timedelta(seconds=10)
    # Several taints: the earliest deadline, each from its own timeAdded.
    two = [taint(UNREACHABLE, 0), {"key": "maint", "value": "x", "effect": "NoExecute", "timeAdded": ts(50)}]
    both = [tol(UNREACHABLE, 100), tol("maint", 20)]
    assert nh.eviction_deadline(pod(tolerations=both), two) == T0 + dt.timedelta(seconds=70)
    # A taint written without timeAdded counts from when the caller first saw it.
    bare = [{"key": UNREACHABLE, "effect": "NoExecute"}]
    assert nh.eviction_deadline(pod(tolerations=[tol(UNREACHABLE, 5)]), bare,
                                {(UNREACHABLE, "NoExecute"): T0}) == T0 + dt.timedelta(seconds=5)


def test_admitted_pods_get_five_minutes_and_daemon_pods_forever() -> None:
    plain: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    apply_defaults("Pod", plain)
    assert nh.eviction_deadline(plain, [taint(UNREACHABLE)]) == T0 + dt.timedelta(seconds=300)
    assert nh.eviction_deadline(plain, [taint(NOT_READY, 7)]) == T0 + dt.timedelta(seconds=307)
    ds = daemonset(tolerations=[tol(UNREACHABLE, 30)])
    dpod = daemon_pod(ds, "w1")
    apply_defaults("Pod", dpod)
    assert nh.eviction_deadline(dpod, [taint(UNREACHABLE), taint(NOT_READY)]) is None
    assert [t for t in dpod["spec"]["tolerations"] if t["key"] == UNREACHABLE] == [tol(UNREACHABLE)]


# -------------------------------------------------------------- DaemonSets

def daemonset(**spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}}}


def test_daemon_tolerations_as_upstream() -> None:
    keys = [(t["key"], t["effect"]) for t in daemon_tolerations({})]
    assert keys == [(NOT_READY, "NoExecute"), (UNREACHABLE, "NoExecute"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                    ("node.kubernetes.io/unschedulable", "NoSchedule")]
    assert all("tolerationSeconds" not in t for t in daemon_tolerations({}))
    host = daemon_tolerations({"hostNetwork": True})
    assert host[-1] == {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def test_daemon_pods_stay_on_an_unreachable_node_but_none_is_added() -> None:
    ds = daemonset()
    sick = node("w1", ready="Unknown", taints=[{"key": UNREACHABLE, "effect": "NoSchedule"},
                                                {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": ts()}])
    assert should_run(ds, sick) == (False, True)
    assert should_run(ds, node("w2", taints=[{"key": "evict", "effect": "NoExecute"}])) == (False, False)
    running = {**pod("agent-abc", "w1"), "metadata": {"name": "agent-abc", "namespace": "kube-system",
                                                       "labels": {"pod-template-generation": "1"}}}
    p = plan(ds, [sick, node("w2")], [running], T0)
    assert p.delete == [] and p.create_on == ["w2"]
    assert (p.status["desiredNumberScheduled"], p.status["numberMisscheduled"]) == (1, 1)


# ------------------------------------------------------------------ pod GC

def test_pod_gc_verdicts() -> None:
    oos = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}
    assert gc_reason(pod(), node()) is None
    assert gc_reason(pod(), None) == ORPHANED
    assert gc_reason(pod(deleting=True), node(ready="Unknown")) is None        # waits for its kubelet
    assert gc_reason(pod(deleting=True), node(ready="Unknown", taints=[oos])) == TERMINATING_OUT_OF_SERVICE
    assert gc_reason(pod(deleting=True), node(taints=[oos])) is None           # Ready: the kubelet finishes it
    assert gc_reason(pod(node_name="", deleting=True), None) == UNSCHEDULED_TERMINATING
    assert gc_reason(pod(node_name=""), None) is None
