"""A new kubelet keeps no back-off: containers it finds exited restart at once.

Upstream's kubelet holds restart back-off in memory only, so after a kubelet
restart or a node reboot a container whose restartCount is already above 0
starts again without waiting 10 s.  Before this, `kinns start` of a cluster
that had been stopped twice waited 10 s for its own API server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kinns.node.checkpoint import PodCheckpoints
from kinns.node.kubelet import PodRecord
from kinns.node.podsync import PodSync
from kinns.node.runtime import ContainerStatus

POD: dict[str, Any] = {"metadata": {"name": "kube-apiserver-cp", "namespace": "kube-system", "uid": "u1"},
                       "spec": {"restartPolicy": "Always", "containers": [{"name": "kube-apiserver"}]}}


class _Kubelet:
    """Just what PodSync._ensure reaches: records the starts it is asked for."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def _start(self, pod: Any, rec: PodRecord, c: dict[str, Any], previous: Any) -> None:
        self.started.append(c["name"])


def _ensure(rec: PodRecord) -> tuple[list[str], list[float]]:
    k = _Kubelet()
    sync = PodSync.__new__(PodSync)     # only _ensure is exercised: no runtime, no hooks
    sync.k = k  # type: ignore[assignment]
    sync._killing = {}
    wake: list[float] = []
    asyncio.run(sync._ensure(POD, rec, "regular", POD["spec"]["containers"][0], wake))  # type: ignore[arg-type]
    return k.started, wake


def _exited(restarts: int) -> ContainerStatus:
    return ContainerStatus(id="r1", name="kube-apiserver", pod_uid="u1", restart_count=restarts, image="x",
                           state="exited", exit_code=137, started_at=time.time() - 1,
                           finished_at=time.time())


def test_a_restored_exited_container_restarts_at_once_whatever_its_count() -> None:
    rec = PodRecord(uid="u1", key="kube-system/kube-apiserver-cp")
    PodCheckpoints._restore_runs(rec, {"restarts": {"kube-apiserver": 3}}, {"kube-apiserver": [_exited(3)]})
    started, wake = _ensure(rec)
    assert started == ["kube-apiserver"] and wake == []


def test_within_one_kubelet_a_second_crash_still_backs_off() -> None:
    rec = PodRecord(uid="u1", key="kube-system/kube-apiserver-cp")
    rec.runs["kube-apiserver"] = _exited(1)
    rec.restarts["kube-apiserver"] = 1
    started, wake = _ensure(rec)
    assert started == []
    assert rec.waiting["kube-apiserver"][0] == "CrashLoopBackOff" and wake, "10 s back-off, as upstream"
