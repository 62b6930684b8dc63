"""A rolling update, step by step, as the deployment controller drives it."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from kinns.controllers import rollout

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


def deployment(replicas: int = 4, image: str = "nginx:1", strategy: str = "RollingUpdate") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": strategy, "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
                     if strategy == "RollingUpdate" else {"type": strategy},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def settle(rss: list[dict[str, Any]]) -> None:
    """Pretend every ReplicaSet's pods came up and became available."""
    for rs in rss:
        n = rs["spec"]["replicas"]
        rs["status"] = {"replicas": n, "readyReplicas": n, "availableReplicas": n}


def run_to_completion(d: dict[str, Any], rss: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Apply plans until nothing changes; check the availability floor at every step."""
    steps = 0
    while True:
        p = rollout.plan(d, rss, NOW)
        if p.create is None and not p.scale and not p.delete:
            return rss, steps
        if p.create is not None:
            p.create["metadata"]["uid"] = f"rs{len(rss)}"
            rss.append(p.create)
        for name, n in p.scale.items():
            next(rs for rs in rss if rs["metadata"]["name"] == name)["spec"]["replicas"] = n
        rss = [rs for rs in rss if rs["metadata"]["name"] not in p.delete]
        total = sum(rs["spec"]["replicas"] for rs in rss)
        assert total <= d["spec"]["replicas"] + 1  # maxSurge 25% of 4
        settle(rss)
        assert sum(rs["status"]["availableReplicas"] for rs in rss) >= d["spec"]["replicas"] - 1
        steps += 1
        assert steps < 50


def test_first_rollout_creates_one_replicaset_at_full_size() -> None:
    rss, _ = run_to_completion(deployment(), [])
    assert len(rss) == 1 and rss[0]["spec"]["replicas"] == 4
    assert rss[0]["metadata"]["name"].startswith("web-")
    assert rss[0]["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] in rss[0]["metadata"]["name"]
    status = rollout.plan(deployment(), rss, NOW).status
    assert status["updatedReplicas"] == 4 and status["availableReplicas"] == 4
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Progressing"] == "NewReplicaSetAvailable"


def test_image_change_rolls_within_surge_and_unavailability() -> None:
    d = deployment()
    rss, _ = run_to_completion(d, [])
    d2 = deployment(image="nginx:2")
    rss, steps = run_to_completion(d2, rss)
    assert steps > 1
    by_rev = {rs["metadata"]["annotations"][rollout.REVISION]: rs["spec"]["replicas"] for rs in rss}
    assert by_rev == {"1": 0, "2": 4}


def test_recreate_scales_old_to_zero_first() -> None:
    d = deployment(strategy="Recreate")
    rss, _ = run_to_completion(d, [])
    p = rollout.plan(deployment(image="nginx:2", strategy="Recreate"), copy.deepcopy(rss), NOW)
    assert p.create is not None and p.create["spec"]["replicas"] == 0


def test_template_hash_is_stable_and_template_sensitive() -> None:
    t = deployment()["spec"]["template"]
    assert rollout.template_hash(t) == rollout.template_hash(copy.deepcopy(t))
    assert rollout.template_hash(t) != rollout.template_hash(deployment(image="x")["spec"]["template"])
