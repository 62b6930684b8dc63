"""Disruption budgets: the arithmetic of the disruption controller, and the
eviction subresource against the real API server in-process."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from kinns.api import eviction, pdb
from kinns.api.errors import ApiError
from kinns.api.request import Request, Response
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.client import Client, InProcessTransport
from kinns.controllers import disruption
from kinns.controllers.disruption import Expected, Scale

Obj = dict[str, Any]
NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def budget(**spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "b", "namespace": "default", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "w"}}, **spec}}


def pod(name: str, ready: bool = True, owner: str | None = "rs1", **meta: Any) -> Obj:
    refs = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": "w"},
                         "ownerReferences": refs if owner else [], **meta},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


# ------------------------------------------------------------------ pdb.py


def test_scaled_values_round_as_upstream() -> None:
    assert pdb.scaled_value(3, 10, True) == 3
    assert (pdb.scaled_value("50%", 5, True), pdb.scaled_value("50%", 5, False)) == (3, 2)
    assert pdb.scaled_value("0%", 7, True) == 0
    with pytest.raises(ValueError, match="string is not a percentage"):
        pdb.scaled_value("5", 10, True)


def test_selection_nil_matches_nothing_empty_matches_all() -> None:
    assert pdb.selects(budget(), pod("p"))
    assert not pdb.selects({**budget(), "spec": {}}, pod("p"))
    assert pdb.selects({**budget(), "spec": {"selector": {}}}, pod("p"))
    other_ns = pod("p")
    other_ns["metadata"]["namespace"] = "other"
    assert not pdb.selects(budget(), other_ns)


def test_condition_keeps_transition_time_until_status_changes() -> None:
    conds: list[Obj] = []
    pdb.set_condition(conds, {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}, NOW)
    later = NOW + dt.timedelta(minutes=5)
    pdb.set_condition(conds, {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}, later)
    assert conds == [{"type": "DisruptionAllowed", "status": "True", "lastTransitionTime": "2026-12-01T12:00:00Z",
                      "reason": "SufficientPods", "message": ""}]
    pdb.set_condition(conds, {"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                              "observedGeneration": 2}, later)
    assert (conds[0]["lastTransitionTime"], conds[0]["observedGeneration"]) == ("2026-12-01T12:05:00Z", 2)


# ------------------------------------------------------- the controller's math


def finders(scales: dict[str, int]) -> list[disruption.Finder]:
    async def find(ref: Obj, ns: str) -> Scale | None:
        return Scale(ref["uid"], scales[ref["uid"]]) if ref["uid"] in scales else None
    return [find]


def expected(b: Obj, pods: list[Obj], scales: dict[str, int]) -> Expected:
    return asyncio.run(disruption.expected_pods(b, pods, finders(scales)))


def test_min_available_int_counts_existing_pods() -> None:
    got = expected(budget(minAvailable=2), [pod("a"), pod("b"), pod("c", owner=None)], {})
    assert (got.expected, got.desired_healthy, got.unmanaged) == (3, 2, [])


def test_percentages_scale_against_the_controllers() -> None:
    pods = [pod("a"), pod("b"), pod("c", owner="rs2")]
    got = expected(budget(maxUnavailable="30%"), pods, {"rs1": 4, "rs2": 3})
    assert (got.expected, got.desired_healthy) == (7, 4)      # 30% of 7 rounded up is 3
    got = expected(budget(minAvailable="50%"), pods, {"rs1": 4, "rs2": 3})
    assert (got.expected, got.desired_healthy) == (7, 4)
    got = expected(budget(maxUnavailable=1), pods + [pod("x", owner=None)], {"rs1": 4, "rs2": 3})
    assert got.unmanaged == ["x"]


def test_a_pod_whose_controller_has_no_scale_fails_the_sync() -> None:
    with pytest.raises(ValueError, match='found no controllers for pod "a"'):
        expected(budget(maxUnavailable=1), [pod("a")], {})


def test_disrupted_pods_expire_and_set_the_recheck() -> None:
    recent, old = "2026-12-01T11:59:30Z", "2026-12-01T11:57:00Z"
    b = budget(minAvailable=1)
    b["status"] = {"disruptedPods": {"a": recent, "b": old, "gone": recent}}
    pods = [pod("a"), pod("b"), pod("c", deletionTimestamp="2026-12-01T12:00:00Z")]
    kept, recheck, overdue = disruption.disrupted_pods(b, pods, NOW)
    assert kept == {"a": recent}
    assert recheck == dt.datetime(2026, 12, 1, 12, 1, 30, tzinfo=dt.timezone.utc)
    assert [p["metadata"]["name"] for p in overdue] == ["b"]
    # a: about to go; c: terminating; d: not ready.  Only b counts.
    assert disruption.count_healthy(pods + [pod("d", ready=False)], kept, NOW) == 1


def test_status_allows_disruptions_only_when_pods_are_expected() -> None:
    b = budget(minAvailable=1)
    status = disruption.new_status(b, 3, Expected(3, 1), {}, NOW)
    assert status is not None
    assert {k: status[k] for k in ("currentHealthy", "desiredHealthy", "disruptionsAllowed", "expectedPods",
                                   "observedGeneration")} == {"currentHealthy": 3, "desiredHealthy": 1,
                                                              "disruptionsAllowed": 2, "expectedPods": 3,
                                                              "observedGeneration": 1}
    assert status["conditions"][0]["reason"] == "SufficientPods"
    # Written once, the same facts need no second write.
    assert disruption.new_status({**b, "status": status}, 3, Expected(3, 1), {}, NOW) is None
    none_expected = disruption.new_status(b, 2, Expected(0, 0), {}, NOW)
    assert none_expected is not None and none_expected["disruptionsAllowed"] == 0
    assert none_expected["conditions"][0]["reason"] == "InsufficientPods"
    failed = disruption.fail_safe_status({**b, "status": status}, "boom", NOW)
    assert failed["disruptionsAllowed"] == 0
    assert [(c["status"], c["reason"], c["message"]) for c in failed["conditions"]] == [("False", "SyncFailed", "boom")]


def test_stale_disruption_target_is_cleared_after_two_minutes() -> None:
    p = pod("a")
    assert disruption.stale_disruption_wait(p, NOW) is None
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                                      "lastTransitionTime": "2026-12-01T11:59:00Z"})
    assert disruption.stale_disruption_wait(p, NOW) == 60.0
    assert disruption.stale_disruption_wait(p, NOW + dt.timedelta(minutes=5)) == 0.0
    p["status"]["phase"] = "Failed"
    assert disruption.stale_disruption_wait(p, NOW) is None


# ------------------------------------------------------------- eviction.py


def test_spending_a_disruption() -> None:
    b = budget(minAvailable=1)
    b["status"] = {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1}
    spent = eviction.spend_disruption(b, "a", NOW)
    assert spent["status"]["disruptionsAllowed"] == 0
    assert spent["status"]["disruptedPods"] == {"a": "2026-12-01T12:00:00Z"}
    assert spent["status"]["conditions"][0]["reason"] == "InsufficientPods"
    with pytest.raises(ApiError) as refused:
        eviction.spend_disruption(spent, "b", NOW)
    assert (refused.value.code, refused.value.message) == (429, eviction.VIOLATION)
    assert refused.value.details == {"causes": [{"reason": "DisruptionBudget",
                                                 "message": "The disruption budget b needs 1 healthy pods and has 2 currently"}]}
    b["metadata"]["generation"] = 2
    with pytest.raises(ApiError) as stale:
        eviction.spend_disruption(b, "a", NOW)
    assert stale.value.details == {"causes": [{"reason": "DisruptionBudget",
                                               "message": "The disruption budget b is still being processed by the server."}],
                                   "retryAfterSeconds": 10}
    b["metadata"]["generation"], b["status"]["disruptionsAllowed"] = 1, -1
    with pytest.raises(ApiError) as negative:
        eviction.spend_disruption(b, "a", NOW)
    assert negative.value.code == 403
    assert negative.value.message == 'poddisruptionbudget.policy "b" is forbidden: pdb disruptions allowed is negative'


class Api:
    """The real API server in-process, with pods we mark running and ready ourselves."""

    def __init__(self, tmp: Path) -> None:
        self.api = ApiServer(SqliteStore(tmp / "state.db", durable=False))
        self.client = Client(InProcessTransport(self.api.dispatch))

    async def pod(self, name: str, *, ready: bool = True, phase: str = "Running") -> None:
        p = await self.client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": "default", "labels": {"app": "w"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}})
        p["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
        await self.client.update_status(p)

    async def budget(self, name: str = "b", status: Obj | None = None, **spec: Any) -> None:
        b = await self.client.create({**budget(**spec), "metadata": {"name": name, "namespace": "default"}})
        b["status"] = {"observedGeneration": 1, **(status or {})}
        await self.client.update_status(b)

    async def evict(self, name: str, **body: Any) -> Response:
        return await self.api.dispatch(Request("POST", f"/api/v1/namespaces/default/pods/{name}/eviction", obj={
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}, **body}))

    async def deleting(self, name: str) -> bool:
        p = await self.client.get(("v1", "Pod"), name, "default")
        return bool(p["metadata"].get("deletionTimestamp"))

    async def allowed(self, name: str = "b") -> int:
        b = await self.client.get(("policy/v1", "PodDisruptionBudget"), name, "default")
        return int(b["status"].get("disruptionsAllowed") or 0)


def in_api(tmp_path: Path, body: Any) -> None:
    async def go() -> None:
        api = Api(tmp_path)
        await api.api.bootstrap()
        await body(api)
    asyncio.run(go())


def test_unready_pods_go_without_spending_while_the_budget_holds(tmp_path: Path) -> None:
    async def body(api: Api) -> None:
        await api.pod("sick", ready=False)
        await api.budget(minAvailable=1, status={"currentHealthy": 1, "desiredHealthy": 1, "disruptionsAllowed": 0})
        resp = await api.evict("sick")
        assert resp.status == 201 and await api.deleting("sick")
        assert await api.allowed() == 0
    in_api(tmp_path, body)


def test_unready_pod_of_a_broken_budget_needs_always_allow(tmp_path: Path) -> None:
    async def body(api: Api) -> None:
        await api.pod("sick", ready=False)
        await api.budget(minAvailable=2, status={"currentHealthy": 1, "desiredHealthy": 2, "disruptionsAllowed": 0})
        assert (await api.evict("sick")).status == 429
        assert not await api.deleting("sick")
        b = await api.client.get(("policy/v1", "PodDisruptionBudget"), "b", "default")
        b["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
        b = await api.client.update(b)
        b["status"]["observedGeneration"] = b["metadata"]["generation"]
        await api.client.update_status(b)
        assert (await api.evict("sick")).status == 201
    in_api(tmp_path, body)


def test_pending_pods_ignore_budgets_and_dry_run_changes_nothing(tmp_path: Path) -> None:
    async def body(api: Api) -> None:
        await api.pod("new", phase="Pending")
        await api.pod("up")
        await api.budget(minAvailable=0, status={"currentHealthy": 1, "desiredHealthy": 0, "disruptionsAllowed": 1})
        assert (await api.evict("new")).status == 201
        dry = await api.evict("up", deleteOptions={"dryRun": ["All"]})
        assert dry.status == 201
        assert not await api.deleting("up") and await api.allowed() == 1
        mismatch = await api.api.dispatch(Request("POST", "/api/v1/namespaces/default/pods/up/eviction", obj={
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}))
        assert (mismatch.status, mismatch.obj["message"]) == (400, "name in URL does not match name in Eviction object")
    in_api(tmp_path, body)


def test_two_budgets_for_one_pod_is_an_error(tmp_path: Path) -> None:
    async def body(api: Api) -> None:
        await api.pod("a")
        await api.budget("one", minAvailable=0, status={"disruptionsAllowed": 1})
        await api.budget("two", minAvailable=0, status={"disruptionsAllowed": 1})
        resp = await api.evict("a")
        assert resp.status == 500
        assert resp.obj["message"] == ("This pod has more than one PodDisruptionBudget, which the eviction "
                                       "subresource does not support.")
    in_api(tmp_path, body)
