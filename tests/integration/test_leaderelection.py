"""Leader election against the real API server (in-process transport, real Lease storage).

Candidates are `LeaderElector`s on one Lease, with upstream's algorithm but
short timings (2 s lease, 1.5 s renew deadline, 0.25 s retry) so the
hand-overs happen within a test's patience.  What is checked is what a
user sees with `kubectl get lease -n kube-system -o yaml`: one holder,
renewTime moving, leaseTransitions counting take-overs, and an emptied
holderIdentity after a clean shutdown.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.client import Client, InProcessTransport
from kinns.client.leaderelection import LEASE, LeaderElectionConfig, LeaderElector, LeaseLock

FAST = LeaderElectionConfig(lease_duration=2, renew_deadline=1.5, retry_period=0.25)
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NS, NAME = "kube-system", "kube-controller-manager"


class Candidate:
    """One contender: its elector, its run task, and when it led."""

    def __init__(self, client: Client, identity: str, config: LeaderElectionConfig = FAST) -> None:
        self.identity = identity
        self.leading = asyncio.Event()
        self.stopped = asyncio.Event()
        self.elector = LeaderElector(LeaseLock(client, NS, NAME, identity, event_component="kube-controller-manager"),
                                     config, on_started_leading=self._lead, on_stopped_leading=self.stopped.set)
        self.task: asyncio.Task[None] = asyncio.create_task(self.elector.run())

    async def _lead(self) -> None:
        self.leading.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.leading.clear()

    async def cancel(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _within(cond: Callable[[], bool], timeout: float) -> float:
    """Seconds until `cond()` held; fails after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def run_with_api(tmp_path: Path, body: Callable[[Client], Awaitable[None]]) -> None:
    async def go() -> None:
        store = SqliteStore(tmp_path / "state.db", durable=False)
        api = ApiServer(store)
        await api.bootstrap()
        client = Client(InProcessTransport(api.dispatch))
        try:
            await body(client)
        finally:
            await store.close()
    asyncio.run(go())


async def _lease(client: Client) -> dict[str, Any]:
    spec: dict[str, Any] = (await client.get(LEASE, NAME, NS))["spec"]
    return spec


def test_exactly_one_of_two_candidates_leads_and_renews(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        a, b = Candidate(client, "cp-a_1"), Candidate(client, "cp-b_2")
        try:
            await _within(lambda: a.leading.is_set() or b.leading.is_set(), 5)
            first = await _lease(client)
            await asyncio.sleep(1.0)   # several retry periods: the follower must stay out
            assert [c.leading.is_set() for c in (a, b)].count(True) == 1
            leader = a if a.leading.is_set() else b
            spec = await _lease(client)
            assert spec["holderIdentity"] == leader.identity
            assert spec["leaseDurationSeconds"] == 2 and spec["leaseTransitions"] == 0
            assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])
            assert spec["renewTime"] > first["renewTime"], "the leader renews"
            assert spec["acquireTime"] == first["acquireTime"], "renewals keep acquireTime"
            follower = b if leader is a else a
            assert follower.elector.get_leader() == leader.identity and not follower.elector.is_leader()
            events, _ = await client.list(("v1", "Event"), NS)
            assert any(e["reason"] == "LeaderElection" and e["message"] == f"{leader.identity} became leader"
                       and e["involvedObject"]["kind"] == "Lease" for e in events)
        finally:
            await a.cancel()
            await b.cancel()
    run_with_api(tmp_path, body)


def test_release_on_shutdown_hands_over_at_once(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        a = Candidate(client, "cp-a_1")
        await _within(a.leading.is_set, 5)
        b = Candidate(client, "cp-b_2")
        try:
            await asyncio.sleep(0.6)
            assert not b.leading.is_set()
            await a.cancel()
            assert a.stopped.is_set() and not a.leading.is_set()
            released = await _lease(client)
            assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
            waited = await _within(b.leading.is_set, 5)
            # The successor does not wait out the 2 s lease: it sees the release at its next retry.
            assert waited < 1.5, waited
            spec = await _lease(client)
            assert spec["holderIdentity"] == "cp-b_2" and spec["leaseTransitions"] == 1
        finally:
            await a.cancel()
            await b.cancel()
    run_with_api(tmp_path, body)


def test_expired_lease_is_taken_over_after_its_duration(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        crashing = LeaderElectionConfig(lease_duration=2, renew_deadline=1.5, retry_period=0.25,
                                        release_on_cancel=False)
        a = Candidate(client, "cp-a_1", crashing)
        await _within(a.leading.is_set, 5)
        b = Candidate(client, "cp-b_2")
        try:
            await asyncio.sleep(0.5)   # b has observed a's record
            await a.cancel()           # a dies without releasing: its lease runs out
            assert (await _lease(client))["holderIdentity"] == "cp-a_1"
            waited = await _within(b.leading.is_set, 6)
            assert waited >= 1.0, f"took over after {waited:.2f}s, before the lease could expire"
            spec = await _lease(client)
            assert spec["holderIdentity"] == "cp-b_2" and spec["leaseTransitions"] == 1
            # and again: b crashes too (no release), a third candidate takes over
            b.elector.config = crashing
            await b.cancel()
            c = Candidate(client, "cp-c_3")
            try:
                await _within(c.leading.is_set, 6)
                assert (await _lease(client))["leaseTransitions"] == 2
            finally:
                await c.cancel()
        finally:
            await a.cancel()
            await b.cancel()
    run_with_api(tmp_path, body)


def test_leader_that_loses_its_lease_stops_leading(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        a = Candidate(client, "cp-a_1")
        await _within(a.leading.is_set, 5)
        # Another writer (a partitioned peer's late write, an admin) takes the lease.
        lease = await client.get(LEASE, NAME, NS)
        lease["spec"]["holderIdentity"] = "intruder_9"
        await client.update(lease)
        # run() returns on its own (the components then exit), the leading work is stopped.
        await asyncio.wait_for(asyncio.shield(a.task), 5)
        assert not a.task.cancelled() and a.stopped.is_set() and not a.leading.is_set()
        assert (await _lease(client))["holderIdentity"] == "intruder_9"
    run_with_api(tmp_path, body)


def test_config_checks_match_upstream() -> None:
    with pytest.raises(ValueError, match="leaseDuration must be greater than renewDeadline"):
        LeaderElectionConfig(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="renewDeadline must be greater than retryPeriod"):
        LeaderElectionConfig(renew_deadline=2, retry_period=2)


def test_failing_work_releases_the_lease_and_raises(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        async def broken() -> None:
            raise RuntimeError("error starting controllers: boom")
        elector = LeaderElector(LeaseLock(client, NS, NAME, "cp-a_1"), FAST, on_started_leading=broken)
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(elector.run(), 5)
        spec = await _lease(client)
        assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    run_with_api(tmp_path, body)
