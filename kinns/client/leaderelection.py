"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it.

kube-controller-manager and kube-scheduler may run as several replicas (one
per control-plane node); exactly one of each may act at a time.  Each
candidate tries to write its identity (`<hostname>_<uuid>`) into one Lease
in kube-system (`kube-controller-manager`, `kube-scheduler`).  The API
server's optimistic concurrency (a PUT carries the resourceVersion last
read; a stale one is answered 409 Conflict) decides races, so no two
candidates can both believe they won the same round.

The algorithm is upstream's `tryAcquireOrRenew`, step for step, because
mixed fleets (a kinns component and a real one) must agree on it:

- the leader renews by writing `renewTime` every retry period (2 s); if it
  cannot for a whole renew deadline (10 s) it stops leading;
- a follower counts the lease as held while the record it last *observed
  changing* is younger than `leaseDurationSeconds` (15 s) on its own
  monotonic clock, never comparing its clock with the holder's timestamps;
- taking over an expired or released lease bumps `leaseTransitions`;
  `acquireTime` is kept across renewals;
- releasing (ReleaseOnCancel) writes an empty `holderIdentity` with a
  1-second duration, so a successor takes over at its next retry instead
  of waiting out the lease.

`LeaderElector.run()` returns when leadership was lost (the components then
exit, as upstream's do, and their supervisor restarts them); cancelling it
is a clean shutdown (the leading work is stopped, then the lease released).
Timestamps are MicroTime (RFC 3339 with microseconds), as the API stores them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from ..api.errors import ApiError
from .client import Client, Obj

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE = ("coordination.k8s.io/v1", "Lease")
JITTER_FACTOR = 1.2   # upstream's JitterFactor for the acquire loop


def micro_time(t: float | None = None) -> str:
    """A metav1.MicroTime: RFC 3339 in UTC with microseconds."""
    when = dt.datetime.fromtimestamp(time.time() if t is None else t, dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_identity() -> str:
    """`<hostname>_<uuid>`, the identity kube-controller-manager and kube-scheduler use."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionRecord:
    """What a lock stores (client-go's resourcelock.LeaderElectionRecord)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    leader_transitions: int = 0

    def to_spec(self) -> Obj:
        """LeaderElectionRecordToLeaseSpec."""
        spec: Obj = {"holderIdentity": self.holder_identity, "leaseDurationSeconds": self.lease_duration_seconds,
                     "leaseTransitions": self.leader_transitions}
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec

    @classmethod
    def from_spec(cls, spec: Obj) -> "LeaderElectionRecord":
        """LeaseSpecToLeaderElectionRecord (absent fields read as zero values)."""
        return cls(holder_identity=str(spec.get("holderIdentity") or ""),
                   lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   leader_transitions=int(spec.get("leaseTransitions") or 0))


class LeaseLock:
    """A Lease used as a lock: get, create and update it with optimistic concurrency.

    The object last read or written is kept so that `update` PUTs exactly
    the resourceVersion this candidate saw; a concurrent writer makes that
    PUT fail with 409 instead of being overwritten.
    """

    def __init__(self, client: Client, namespace: str, name: str, identity: str, *,
                 event_component: str = "") -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.event_component = event_component
        self.lease: Obj | None = None

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def get(self) -> LeaderElectionRecord:
        """The current record; raises ApiError 404 when the Lease does not exist."""
        self.lease = await self.client.get(LEASE, self.name, self.namespace)
        return LeaderElectionRecord.from_spec(self.lease.get("spec") or {})

    async def create(self, record: LeaderElectionRecord) -> None:
        self.lease = await self.client.create({
            "apiVersion": LEASE[0], "kind": LEASE[1],
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec()})

    async def update(self, record: LeaderElectionRecord) -> None:
        if self.lease is None:
            raise RuntimeError("lease not initialized, call get or create first")
        self.lease = await self.client.update({**self.lease, "spec": record.to_spec()})

    def record_event(self, what: str) -> None:
        """An Event on the Lease, `<identity> became leader` / `stopped leading`, as upstream records."""
        if self.lease is None or not self.event_component:
            return
        meta = self.lease.get("metadata") or {}
        involved = {"apiVersion": LEASE[0], "kind": LEASE[1], "metadata": meta}
        message = f"{self.identity} {what}"
        self.client.emit_event(involved, "LeaderElection", message, component=self.event_component)
        # What upstream's event broadcaster logs for every Event it records.
        log.info("Event occurred", extra={"source": "event.go:389", "kv": {
            "object": self.describe(), "fieldPath": "", "kind": LEASE[1], "apiVersion": LEASE[0], "type": "Normal",
            "reason": "LeaderElection", "message": message}})


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Upstream's defaults for kube-controller-manager and kube-scheduler."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True
    # How long a lost leader waits for its leading work to stop before reporting the loss.
    stop_grace: float = 1.0

    def __post_init__(self) -> None:
        # The same checks as leaderelection.NewLeaderElector.
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
        if self.lease_duration < 1 or self.retry_period <= 0:
            raise ValueError("leaseDuration must be at least 1s and retryPeriod greater than zero")


Leading = Callable[[], Coroutine[Any, Any, None]]


class LeaderElector:
    """Acquire a lease, run `on_started_leading` while holding it, stop when it is lost.

    `on_started_leading` runs as its own task and is cancelled when
    leadership ends; `on_stopped_leading` and `on_new_leader(identity)` are
    plain callbacks, as upstream's.
    """

    def __init__(self, lock: LeaseLock, config: LeaderElectionConfig | None = None, *,
                 on_started_leading: Leading,
                 on_stopped_leading: Callable[[], None] | None = None,
                 on_new_leader: Callable[[str], None] | None = None) -> None:
        self.lock = lock
        self.config = config or LeaderElectionConfig()
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.observed = LeaderElectionRecord()
        self._observed_spec: Obj | None = None
        self._observed_at = 0.0          # monotonic time the observed record last changed
        self._reported_leader = ""

    # ------------------------------------------------------------ queries

    def is_leader(self) -> bool:
        return bool(self.observed.holder_identity) and self.observed.holder_identity == self.lock.identity

    def get_leader(self) -> str:
        return self.observed.holder_identity

    def _lease_valid(self, now: float) -> bool:
        return self._observed_at + self.observed.lease_duration_seconds > now

    def _observe(self, record: LeaderElectionRecord) -> None:
        self.observed = record
        self._observed_spec = record.to_spec()
        self._observed_at = time.monotonic()

    # ---------------------------------------------------------- the round

    async def try_acquire_or_renew(self) -> bool:
        """One round of upstream's tryAcquireOrRenew; True when we hold the lease afterwards."""
        now = time.monotonic()
        stamp = micro_time()
        record = LeaderElectionRecord(holder_identity=self.lock.identity,
                                      lease_duration_seconds=int(self.config.lease_duration),
                                      acquire_time=stamp, renew_time=stamp)
        desc = self.lock.describe()
        # 1. Fast path: the leader renews against the object it wrote last.
        if self.is_leader() and self._lease_valid(now):
            renewed = replace(record, acquire_time=self.observed.acquire_time,
                              leader_transitions=self.observed.leader_transitions)
            try:
                await self.lock.update(renewed)
                self._observe(renewed)
                return True
            except Exception as exc:  # noqa: BLE001 - any failure only means: not renewed this time
                log.error("Failed to update lock optimistically: %s, falling back to slow path", _text(exc),
                          extra={"source": "leaderelection.go:429"})
        # 2. Read the record, or create it.
        try:
            old = await self.lock.get()
        except ApiError as exc:
            if exc.code != 404:
                log.error("error retrieving resource lock %s: %s", desc, _text(exc),
                          extra={"source": "leaderelection.go:436"})
                return False
            try:
                await self.lock.create(record)
            except Exception as cexc:  # noqa: BLE001 - retried next round
                log.error("error initially creating leader election record: %s", _text(cexc),
                          extra={"source": "leaderelection.go:443"})
                return False
            self._observe(record)
            return True
        except Exception as exc:  # noqa: BLE001 - transport failures: retried next round
            log.error("error retrieving resource lock %s: %s", desc, _text(exc),
                      extra={"source": "leaderelection.go:436"})
            return False
        # 3. Someone else's record: is it still valid?
        if old.to_spec() != self._observed_spec:
            self._observe(old)
        if old.holder_identity and self._lease_valid(now) and not self.is_leader():
            log.debug("lock is held by %s and has not yet expired", old.holder_identity,
                      extra={"source": "leaderelection.go:458"})
            return False
        # 4. Take it over (or renew on the slow path).
        if self.is_leader():
            record = replace(record, acquire_time=old.acquire_time, leader_transitions=old.leader_transitions)
        else:
            record = replace(record, leader_transitions=old.leader_transitions + 1)
        try:
            await self.lock.update(record)
        except Exception as exc:  # noqa: BLE001 - a 409 means someone else won this round
            log.error("Failed to update lock: %s", _text(exc), extra={"source": "leaderelection.go:474"})
            return False
        self._observe(record)
        return True

    async def _attempt(self, deadline: float | None = None) -> bool:
        """One round, bounded so a hung API call cannot outlive the renew deadline."""
        timeout = self.config.renew_deadline if deadline is None else max(0.01, deadline - time.monotonic())
        try:
            return await _wait_for(self.try_acquire_or_renew(), timeout)
        except asyncio.TimeoutError:
            log.error("Failed to update lock: request timed out", extra={"source": "leaderelection.go:474"})
            return False

    def _maybe_report_transition(self) -> None:
        holder = self.observed.holder_identity
        if holder == self._reported_leader:
            return
        self._reported_leader = holder
        if self.on_new_leader is not None and holder:
            self.on_new_leader(holder)

    # ------------------------------------------------------------- phases

    async def acquire(self) -> None:
        """Retry (jittered, every retry period) until we hold the lease."""
        desc = self.lock.describe()
        log.info("attempting to acquire leader lease %s...", desc, extra={"source": "leaderelection.go:257"})
        while True:
            ok = await self._attempt()
            self._maybe_report_transition()
            if ok:
                self.lock.record_event("became leader")
                log.info("successfully acquired lease %s", desc, extra={"source": "leaderelection.go:271"})
                return
            log.debug("failed to acquire lease %s", desc, extra={"source": "leaderelection.go:268"})
            period = self.config.retry_period
            await asyncio.sleep(period + random.random() * JITTER_FACTOR * period)

    async def renew(self) -> None:
        """Renew every retry period; return once a renew deadline passed without success."""
        desc = self.lock.describe()
        while True:
            deadline = time.monotonic() + self.config.renew_deadline
            ok = False
            while not ok and time.monotonic() < deadline:
                ok = await self._attempt(deadline)
                if not ok:
                    await asyncio.sleep(min(self.config.retry_period, max(0.0, deadline - time.monotonic())))
            self._maybe_report_transition()
            if not ok or not self.is_leader():
                log.info("failed to renew lease %s: timed out waiting for the condition", desc,
                         extra={"source": "leaderelection.go:297"})
                return
            await asyncio.sleep(self.config.retry_period)

    async def release(self) -> bool:
        """Give the lease up: empty holder, 1-second duration (upstream's release)."""
        if not self.is_leader():
            return True
        stamp = micro_time()
        record = LeaderElectionRecord(lease_duration_seconds=1, acquire_time=stamp, renew_time=stamp,
                                      leader_transitions=self.observed.leader_transitions)
        try:
            await _wait_for(self._release(record), self.config.renew_deadline)
        except Exception as exc:  # noqa: BLE001 - the lease then simply runs out
            log.error("Failed to release lock: %s", _text(exc), extra={"source": "leaderelection.go:319"})
            return False
        self._observe(record)
        return True

    async def _release(self, record: LeaderElectionRecord) -> None:
        try:
            await self.lock.update(record)
        except ApiError as exc:
            # A renewal cancelled in flight may have been written without our
            # copy hearing of it: re-read, and release if the lease is still ours.
            if exc.code != 409 or (await self.lock.get()).holder_identity != self.lock.identity:
                raise
            await self.lock.update(record)

    async def run(self) -> None:
        """Acquire, lead until the lease is lost, then stop leading and return.

        Cancellation (a clean shutdown) stops the leading work, releases the
        lease if so configured, and propagates.  If the leading work fails,
        the lease is released and its exception raised here.
        """
        leading: asyncio.Task[None] | None = None
        try:
            await self.acquire()
            leading = asyncio.create_task(self.on_started_leading(), name=f"leading-{self.lock.name}")
            renewing = asyncio.create_task(self.renew(), name=f"renew-{self.lock.name}")
            try:
                await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                renewing.cancel()
                await asyncio.gather(renewing, return_exceptions=True)
            failure: BaseException | None = None
            if leading.done():
                # The work ended on its own (it failed): hand the lease on at once.
                failure = None if leading.cancelled() else leading.exception()
                if self.config.release_on_cancel:
                    await self.release()
            else:
                # Lost the lease: stop leading fast (another leader may already act).
                await _stop(leading, self.config.stop_grace)
            self.lock.record_event("stopped leading")
            if failure is not None:
                raise failure
        except asyncio.CancelledError:
            if leading is not None:
                await _stop(leading, None)
            if self.config.release_on_cancel and self.is_leader():
                await self.release()
            raise
        finally:
            if self.on_stopped_leading is not None:
                self.on_stopped_leading()


async def _wait_for(aw: Awaitable[T], timeout: float) -> T:
    """asyncio.wait_for that never swallows a cancellation: Python 3.11's returns the inner
    result when the cancel lands as the inner call completes (fixed in 3.12), and a cancelled
    elector would then go on campaigning forever."""
    result = await asyncio.wait_for(aw, timeout)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result


async def _stop(task: asyncio.Task[Any], timeout: float | None) -> None:
    """Cancel `task` and wait for it (at most `timeout` seconds)."""
    if not task.done():
        task.cancel()
    await asyncio.wait({task}, timeout=timeout)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
