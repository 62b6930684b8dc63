"""PV ↔ claim matching as upstream's FindMatchingVolume, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from kinns.controllers import pvbinder
from kinns.controllers.provisioner import build_volume, standard_class, volume_dir

Obj = dict[str, Any]


def pv(name: str, size: str = "1Gi", *, modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str | None = "",
       mode: str = "Filesystem", labels: dict[str, str] | None = None, claim: Obj | None = None,
       phase: str = "Available", hosts: list[str] | None = None, deleting: bool = False) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "volumeMode": mode,
                 "hostPath": {"path": f"/data/{name}"}}
    if cls is not None:
        spec["storageClassName"] = cls
    if claim is not None:
        spec["claimRef"] = claim
    if hosts is not None:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": hosts}]}]}}
    meta: Obj = {"name": name, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": spec,
            "status": {"phase": phase}}


def pvc(name: str = "data", size: str = "1Gi", *, modes: tuple[str, ...] = ("ReadWriteOnce",),
        cls: str | None = "", mode: str = "Filesystem", selector: Obj | None = None, volume: str = "",
        uid: str = "u-1") -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, "volumeMode": mode}
    if cls is not None:
        spec["storageClassName"] = cls
    if selector is not None:
        spec["selector"] = selector
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": spec}


def node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


REF = {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data", "uid": "u-1"}
OTHER = {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "other", "uid": "u-2"}

CASES = [
    # (id, claim, volumes, kwargs, expected volume name or None)
    ("exact fit", pvc(), [pv("a")], {}, "a"),
    ("smallest fit wins", pvc(size="1Gi"), [pv("big", "10Gi"), pv("small", "2Gi"), pv("tiny", "500Mi")], {}, "small"),
    ("too small", pvc(size="5Gi"), [pv("a", "1Gi")], {}, None),
    ("access modes must cover", pvc(modes=("ReadWriteMany",)), [pv("a"), pv("b", modes=("ReadWriteMany",))], {}, "b"),
    ("superset of modes ok", pvc(modes=("ReadWriteOnce",)),
     [pv("a", modes=("ReadWriteOnce", "ReadOnlyMany"))], {}, "a"),
    ("volume mode must match", pvc(mode="Block"), [pv("a"), pv("b", mode="Block")], {}, "b"),
    ("class must match", pvc(cls="fast"), [pv("a", cls=""), pv("b", cls="fast")], {}, "b"),
    ("empty class matches only empty", pvc(cls=""), [pv("a", cls="fast"), pv("b", cls=None)], {}, "b"),
    ("empty class no match", pvc(cls=""), [pv("a", cls="fast")], {}, None),
    ("effective class from default", pvc(cls=None), [pv("a", cls=""), pv("b", cls="standard")],
     {"claim_class_name": "standard"}, "b"),
    ("selector", pvc(selector={"matchLabels": {"tier": "gold"}}),
     [pv("a", labels={"tier": "silver"}), pv("b", "5Gi", labels={"tier": "gold"})], {}, "b"),
    ("selector no match", pvc(selector={"matchLabels": {"tier": "gold"}}), [pv("a")], {}, None),
    ("claimed by another skipped", pvc(), [pv("a", claim=OTHER, phase="Bound"), pv("b", "2Gi")], {}, "b"),
    ("released skipped", pvc(), [pv("a", phase="Released"), pv("b", "3Gi")], {}, "b"),
    ("deleting skipped", pvc(), [pv("a", deleting=True)], {}, None),
    ("pre-bound by claimRef wins over better fit", pvc(), [pv("a"), pv("z", "100Gi", cls="other", claim=REF)], {}, "z"),
    ("pre-bound claimRef without uid", pvc(), [pv("z", "100Gi", claim={**REF, "uid": ""})], {}, "z"),
    ("claimRef of an older claim incarnation", pvc(), [pv("z", claim={**REF, "uid": "old"})], {}, None),
    ("pre-bound by volumeName", pvc(volume="v"), [pv("a"), pv("v", "100Gi")], {}, "v"),
    ("volumeName of another class", pvc(volume="v"), [pv("a"), pv("v", cls="x")], {}, None),
    ("volumeName too small", pvc(volume="v", size="2Gi"), [pv("v", "1Gi")], {}, None),
    ("volumeName wrong modes", pvc(volume="v", modes=("ReadWriteMany",)), [pv("v")], {}, None),
    ("volumeName of a taken volume", pvc(volume="v"), [pv("a"), pv("v", claim=OTHER)], {}, None),
    ("delay binding without node binds nothing", pvc(cls="standard"), [pv("a", cls="standard")],
     {"delay_binding": True}, None),
    ("delay binding still takes pre-bound", pvc(cls="standard"), [pv("a", cls="standard", claim=REF)],
     {"delay_binding": True}, "a"),
    ("node affinity filters", pvc(), [pv("a", hosts=["n1"]), pv("b", "2Gi", hosts=["n2"])],
     {"node": node("n2"), "delay_binding": True}, "b"),
    ("pre-bound with wrong node", pvc(), [pv("a", claim=REF, hosts=["n1"])], {"node": node("n2")}, None),
    ("pending phase counts as available", pvc(), [pv("a", phase="Pending")], {}, "a"),
]


@pytest.mark.parametrize("claim,volumes,kwargs,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_find_matching_volume(claim: Obj, volumes: list[Obj], kwargs: dict[str, Any], want: str | None) -> None:
    got = pvbinder.find_matching_volume(claim, volumes, **kwargs)
    assert (got["metadata"]["name"] if got else None) == want


@pytest.mark.parametrize("claim,default,want", [
    (pvc(cls="fast"), "standard", "fast"),
    (pvc(cls=""), "standard", ""),
    (pvc(cls=None), "standard", "standard"),
    (pvc(cls=None), None, ""),
    ({**pvc(cls="x"), "metadata": {"name": "d", "namespace": "default",
                                   "annotations": {pvbinder.ANN_BETA_CLASS: "beta"}}}, None, "beta"),
])
def test_claim_class(claim: Obj, default: str | None, want: str) -> None:
    assert pvbinder.claim_class(claim, default) == want


@pytest.mark.parametrize("volume,claim,want", [
    (pv("a", "1Gi"), pvc(size="1Gi"), None),
    (pv("a", "1Gi"), pvc(size="2Gi"), "requested PV is too small"),
    (pv("a", cls="x"), pvc(cls="y"), "storageClassName does not match"),
    (pv("a", mode="Block"), pvc(), "incompatible volumeMode"),
    (pv("a"), pvc(modes=("ReadOnlyMany",)), "incompatible accessMode"),
])
def test_volume_satisfies(volume: Obj, claim: Obj, want: str | None) -> None:
    assert pvbinder.volume_satisfies(volume, claim) == want


@pytest.mark.parametrize("p,claims,uses", [
    ({"metadata": {"namespace": "ns"}, "spec": {"nodeName": "n", "volumes": [
        {"name": "a", "persistentVolumeClaim": {"claimName": "c"}}, {"name": "b", "emptyDir": {}}]},
      "status": {"phase": "Running"}}, ["ns/c"], True),
    ({"metadata": {"namespace": "ns"}, "spec": {"volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "c"}}]},
      "status": {"phase": "Pending"}}, ["ns/c"], False),
    ({"metadata": {"namespace": "ns"}, "spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}}, [], False),
])
def test_pod_claims(p: Obj, claims: list[str], uses: bool) -> None:
    assert pvbinder.pod_claims(p) == claims
    assert pvbinder.pod_uses_claims(p) is uses


def _sc(name: str, default: bool, created: str) -> Obj:
    ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": ann, "creationTimestamp": created}}


@pytest.mark.parametrize("classes,want", [
    ([], None),
    ([_sc("a", False, "2026-01-01T00:00:00Z")], None),
    ([_sc("a", True, "2026-01-01T00:00:00Z"), _sc("b", False, "2026-02-01T00:00:00Z")], "a"),
    ([_sc("a", True, "2026-01-01T00:00:00Z"), _sc("b", True, "2026-02-01T00:00:00Z")], "b"),
])
def test_default_class(classes: list[Obj], want: str | None) -> None:
    assert pvbinder.default_class(classes) == want


@pytest.mark.parametrize("volume,n,want", [
    (pv("a"), "n1", True),
    (pv("a", hosts=["n1"]), "n1", True),
    (pv("a", hosts=["n1"]), "n2", False),
    (pv("a", hosts=["n1", "n2"]), "n2", True),
])
def test_node_affinity(volume: Obj, n: str, want: bool) -> None:
    assert pvbinder.node_affinity_matches(volume, node(n)) is want


def test_provisioned_volume_shape(tmp_path: Any) -> None:
    claim = pvc(cls="standard", size="2Gi", uid="abc")
    claim["metadata"]["resourceVersion"] = "7"
    sc = {**standard_class(), "metadata": {"name": "standard"}}
    path = volume_dir(tmp_path, claim)
    assert path.name == "pvc-abc_default_data"
    vol = build_volume(claim, sc, "kinns-worker", path)
    assert vol["metadata"]["name"] == "pvc-abc"
    assert vol["metadata"]["annotations"][pvbinder.ANN_PROVISIONED_BY] == "rancher.io/local-path"
    assert vol["spec"]["hostPath"] == {"path": str(path), "type": "DirectoryOrCreate"}
    assert vol["spec"]["capacity"] == {"storage": "2Gi"}
    assert vol["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert vol["spec"]["storageClassName"] == "standard"
    assert pvbinder.is_bound_to(vol, claim)
    assert pvbinder.node_affinity_matches(vol, node("kinns-worker"))
    assert not pvbinder.node_affinity_matches(vol, node("other"))
    # The binder takes it for the claim it was made for, whatever the class says.
    assert pvbinder.find_matching_volume(claim, [vol], delay_binding=True, node=node("kinns-worker")) is vol
