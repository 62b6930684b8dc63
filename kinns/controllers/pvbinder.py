"""The PersistentVolume binder: claims meet volumes, as upstream's PV controller.

Matching is upstream's FindMatchingVolume (component-helpers
storage/volume): a volume pre-bound to the claim (its `claimRef`, or the
claim's `volumeName`) wins outright; otherwise an Available volume with no
claimRef whose access modes cover the claim's, whose capacity is at least
the request, with the same volumeMode and the same class ("" matches only
""), and whose labels satisfy the claim's selector; the smallest such
volume wins.  For a class with `volumeBindingMode: WaitForFirstConsumer`
nothing is bound until the scheduler has chosen a node for the claim's
first pod (annotation `volume.kubernetes.io/selected-node`), and then only
volumes whose node affinity admits that node.

Binding writes, in upstream's order: the volume's `claimRef` (annotated
`pv.kubernetes.io/bound-by-controller` when we chose it), its phase Bound,
the claim's `volumeName` with `pv.kubernetes.io/bind-completed` (and
bound-by-controller), then the claim's status: Bound, capacity and access
modes of the volume.  Each write is skipped when already done, so the
steps resume after a crash or a conflict.

A volume whose claim has gone is Released; with reclaim policy Retain it
stays so, with Delete it is deleted — a dynamically provisioned volume by
its provisioner (which also removes the data), any other by us.

No claim is ever left without a class when a default exists: a claim
created without `storageClassName` is given the default class, as the
DefaultStorageClass admission plugin (and upstream's retroactive default)
would; should the API server refuse that update, the claim is still
treated as being of the default class.

The matching itself is pure functions (tested table-driven); the
controller only reads caches and writes.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from ..api.errors import ApiError
from ..api.selectors import LabelSelector
from ..client.client import Obj
from .base import Controller
from .quantity import parse_bytes
from .scheduling import expression_matches

log = logging.getLogger(__name__)

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
COMPONENT = "persistentvolume-controller"
PVC_PROTECTION = "kubernetes.io/pvc-protection"


# ------------------------------------------------------------------ pure helpers


def _spec(obj: Obj | None) -> dict[str, Any]:
    return (obj or {}).get("spec") or {}


def _annotations(obj: Obj | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def default_class(classes: Iterable[Obj]) -> str | None:
    """The default StorageClass's name: the newest one annotated default, as upstream (1.26+)."""
    defaults = [c for c in classes if any(_annotations(c).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)]
    if not defaults:
        return None
    best = max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]))
    return str(best["metadata"]["name"])


def claim_class(pvc: Obj, default: str | None = None) -> str:
    """The class a claim asks for: the beta annotation, else spec.storageClassName;
    a claim that names none (nil, not "") gets the default class, if there is one."""
    beta = _annotations(pvc).get(ANN_BETA_CLASS)
    if beta is not None:
        return beta
    sc = _spec(pvc).get("storageClassName")
    if sc is not None:
        return str(sc)
    return default or ""


def volume_class(pv: Obj) -> str:
    beta = _annotations(pv).get(ANN_BETA_CLASS)
    if beta is not None:
        return beta
    return str(_spec(pv).get("storageClassName") or "")


def is_wait_for_first_consumer(sc: Obj | None) -> bool:
    return bool(sc) and (sc or {}).get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def claim_request(pvc: Obj) -> int:
    return parse_bytes(str(((_spec(pvc).get("resources") or {}).get("requests") or {}).get("storage", "0")))


def volume_capacity(pv: Obj) -> int:
    return parse_bytes(str((_spec(pv).get("capacity") or {}).get("storage", "0")))


def access_modes_cover(volume_modes: Iterable[str] | None, claim_modes: Iterable[str] | None) -> bool:
    have = set(volume_modes or [])
    return all(m in have for m in claim_modes or [])


def is_bound_to(pv: Obj, pvc: Obj) -> bool:
    """The volume's claimRef names this claim (and this incarnation, when it has a uid)."""
    ref = _spec(pv).get("claimRef")
    if not ref:
        return False
    meta = pvc["metadata"]
    if ref.get("name") != meta["name"] or (ref.get("namespace") or "") != meta.get("namespace", ""):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def node_affinity_matches(pv: Obj, node: Obj) -> bool:
    """The volume's required node affinity admits `node` (no affinity admits every node)."""
    required = (_spec(pv).get("nodeAffinity") or {}).get("required") or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:  # ORed terms, ANDed expressions
        exprs, fexprs = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not fexprs:
            continue
        if all(expression_matches(e, labels.get(e.get("key", ""))) for e in exprs) and \
                all(expression_matches(e, fields.get(e.get("key", ""))) for e in fexprs):
            return True
    return False


def volume_satisfies(pv: Obj, pvc: Obj, cls: str | None = None) -> str | None:
    """Upstream's checkVolumeSatisfyClaim (for a claim naming a free volume): why not, or None."""
    if volume_capacity(pv) < claim_request(pvc):
        return "requested PV is too small"
    if volume_class(pv) != (claim_class(pvc) if cls is None else cls):
        return "storageClassName does not match"
    if (_spec(pv).get("volumeMode") or "Filesystem") != (_spec(pvc).get("volumeMode") or "Filesystem"):
        return "incompatible volumeMode"
    if not access_modes_cover(_spec(pv).get("accessModes"), _spec(pvc).get("accessModes")):
        return "incompatible accessMode"
    return None


def find_matching_volume(pvc: Obj, volumes: Iterable[Obj], *, claim_class_name: str | None = None,
                         node: Obj | None = None, delay_binding: bool = False) -> Obj | None:
    """Upstream's FindMatchingVolume: the volume `pvc` should bind to, or None.

    `claim_class_name` is the claim's effective class (default: from the claim
    alone); `node`, when known, must be admitted by the volume's node affinity;
    with `delay_binding` (WaitForFirstConsumer) and no node only a volume
    pre-bound to the claim can match.
    """
    cls = claim_class(pvc) if claim_class_name is None else claim_class_name
    spec = _spec(pvc)
    want_mode = spec.get("volumeMode") or "Filesystem"
    want_bytes = claim_request(pvc)
    want_modes = spec.get("accessModes") or []
    sel_spec = spec.get("selector")
    selector = LabelSelector.from_spec(sel_spec) if sel_spec is not None else None
    pre_bound_name = spec.get("volumeName") or ""
    smallest: Obj | None = None
    smallest_bytes = 0
    for pv in sorted(volumes, key=lambda v: v["metadata"]["name"]):
        pspec = _spec(pv)
        if (pspec.get("volumeMode") or "Filesystem") != want_mode:
            continue
        if (pv.get("metadata") or {}).get("deletionTimestamp"):
            continue
        affinity_ok = node is None or node_affinity_matches(pv, node)
        if is_bound_to(pv, pvc):
            return pv if affinity_ok else None
        if pre_bound_name and pv["metadata"]["name"] == pre_bound_name and not pspec.get("claimRef"):
            return pv if affinity_ok and volume_satisfies(pv, pvc, cls) is None else None
        if pre_bound_name:
            continue  # a claim naming its volume takes that one or none
        if node is None and delay_binding:
            continue
        if pspec.get("claimRef"):
            continue
        phase = (pv.get("status") or {}).get("phase") or "Pending"
        if phase not in ("Available", "Pending"):
            continue
        if selector is not None and not selector.matches((pv.get("metadata") or {}).get("labels") or {}):
            continue
        if volume_class(pv) != cls:
            continue
        if not affinity_ok:
            continue
        if not access_modes_cover(pspec.get("accessModes"), want_modes):
            continue
        size = volume_capacity(pv)
        if size >= want_bytes and (smallest is None or size < smallest_bytes):
            smallest, smallest_bytes = pv, size
    return smallest


def claim_ref(pvc: Obj) -> dict[str, Any]:
    meta = pvc["metadata"]
    ref = {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace", ""), "name": meta["name"],
           "uid": meta.get("uid", ""), "apiVersion": "v1"}
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    return ref


def pod_claims(pod: Obj) -> list[str]:
    """`namespace/claim` for each persistentVolumeClaim volume of the pod."""
    ns = (pod.get("metadata") or {}).get("namespace", "")
    return [f"{ns}/{v['persistentVolumeClaim']['claimName']}" for v in _spec(pod).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


def pod_uses_claims(pod: Obj) -> bool:
    """As upstream's pvc-protection: a scheduled pod that has not finished holds its claims."""
    return bool(_spec(pod).get("nodeName")) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _index_by_claim(pv: Obj) -> list[str]:
    ref = _spec(pv).get("claimRef")
    return [f"{ref.get('namespace', '')}/{ref.get('name', '')}"] if ref else []


# ------------------------------------------------------------------ controller


class PersistentVolumeBinder(Controller):
    name = "persistentvolume-binder-controller"
    workers = 1  # one binder at a time: two claims never race for one volume in our own cache

    def setup(self) -> None:
        self.volumes = self.factory.informer("v1", "PersistentVolume")
        self.claims = self.factory.informer("v1", "PersistentVolumeClaim")
        self.classes = self.factory.informer("storage.k8s.io/v1", "StorageClass")
        self.nodes = self.factory.informer("v1", "Node")
        self.pods = self.factory.informer("v1", "Pod")
        self.volumes.add_indexer("claim", _index_by_claim)
        self.pods.add_indexer("pvc-protection-claims", pod_claims)
        self.pods.add_handlers(on_update=lambda o, n: self._pod_event(n), on_delete=self._pod_event)
        self.claims.add_handlers(on_add=self._claim_event, on_update=lambda o, n: self._claim_event(n),
                                 on_delete=self._claim_deleted)
        self.volumes.add_handlers(on_add=self._volume_event, on_update=lambda o, n: self._volume_event(n),
                                  on_delete=self._volume_event)
        self.classes.add_handlers(on_add=lambda c: self._all_pending(), on_update=lambda o, n: self._all_pending())
        self._told: set[tuple[str, str]] = set()  # (claim uid, event reason) already reported
        self._retro_default = True  # the API server lets us set a nil storageClassName

    # handlers

    def _claim_event(self, pvc: Obj) -> None:
        meta = pvc["metadata"]
        self.enqueue(f"claim:{meta['namespace']}/{meta['name']}")

    def _pod_event(self, pod: Obj) -> None:
        """A pod finished or went: a claim it held may now be deleted."""
        for key in pod_claims(pod):
            if (self.claims.get(key) or {}).get("metadata", {}).get("deletionTimestamp"):
                self.enqueue(f"claim:{key}")

    def _claim_deleted(self, pvc: Obj) -> None:
        meta = pvc["metadata"]
        self._told = {t for t in self._told if t[0] != meta.get("uid")}
        for pv in self.volumes.by_index("claim", f"{meta['namespace']}/{meta['name']}"):
            self.enqueue(f"volume:{pv['metadata']['name']}")
        name = _spec(pvc).get("volumeName")
        if name:
            self.enqueue(f"volume:{name}")

    def _volume_event(self, pv: Obj) -> None:
        self.enqueue(f"volume:{pv['metadata']['name']}")
        ref = _spec(pv).get("claimRef")
        if ref:
            self.enqueue(f"claim:{ref.get('namespace', '')}/{ref.get('name', '')}")
        else:
            self._all_pending()  # a free volume may suit a waiting claim

    def _all_pending(self) -> None:
        for pvc in self.claims.list():
            if (pvc.get("status") or {}).get("phase") != "Bound":
                self._claim_event(pvc)

    async def reconcile(self, key: str) -> float | None:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            return await self._sync_claim(rest)
        if kind == "volume":
            return await self._sync_volume(rest)
        return None

    def _tell(self, obj: Obj, reason: str, message: str, type: str = "Normal") -> None:
        marker = (obj["metadata"].get("uid", ""), reason)
        if marker in self._told:
            return
        self._told.add(marker)
        self.client.emit_event(obj, reason, message, type=type, component=COMPONENT)

    # claims

    async def _sync_claim(self, key: str) -> float | None:
        pvc = self.claims.get(key)
        if pvc is None:
            return None
        if pvc["metadata"].get("deletionTimestamp"):
            return await self._release_protection(pvc)
        if PVC_PROTECTION not in (pvc["metadata"].get("finalizers") or []):
            # What the StorageObjectInUseProtection admission plugin adds on creation.
            meta = {**pvc["metadata"], "finalizers": [*(pvc["metadata"].get("finalizers") or []), PVC_PROTECTION]}
            pvc = await self.client.update({**pvc, "metadata": meta})
        default = default_class(self.classes.list())
        if _spec(pvc).get("storageClassName") is None and ANN_BETA_CLASS not in _annotations(pvc) \
                and default and self._retro_default:
            pvc = await self._set_default_class(pvc, default)
        cls = claim_class(pvc, default)
        spec, status = _spec(pvc), pvc.get("status") or {}
        if not status.get("phase"):
            pvc = await self.client.update_status({**pvc, "status": {**status, "phase": "Pending"}})
            spec, status = _spec(pvc), pvc.get("status") or {}
        name = spec.get("volumeName")
        if name:
            pv = self.volumes.get(name)
            if pv is None:
                if status.get("phase") == "Bound":
                    await self._claim_phase(pvc, "Lost")
                    self._tell(pvc, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the "
                                                 "volume is lost!", "Warning")
                return None  # a claim naming a volume not (yet) there waits for it
            if not _spec(pv).get("claimRef") and (why := volume_satisfies(pv, pvc, cls)) is not None:
                self._tell(pvc, "VolumeMismatch", f"Cannot bind to requested volume \"{name}\": {why}", "Warning")
            elif is_bound_to(pv, pvc) or not _spec(pv).get("claimRef"):
                await self._bind(pv, pvc)
            elif status.get("phase") == "Bound":
                await self._claim_phase(pvc, "Lost")
                self._tell(pvc, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound "
                                                 "incorrectly", "Warning")
            return None
        sc = self.classes.get(cls) if cls else None
        delay = is_wait_for_first_consumer(sc)
        node_name = _annotations(pvc).get(ANN_SELECTED_NODE)
        node = self.nodes.get(node_name) if node_name else None
        pv = find_matching_volume(pvc, self.volumes.list(), claim_class_name=cls, node=node,
                                  delay_binding=delay)
        if pv is not None:
            await self._bind(pv, pvc)
            return None
        if delay and not node_name:
            self._tell(pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
            return None
        if sc is not None and sc.get("provisioner"):
            prov = str(sc["provisioner"])
            ann = _annotations(pvc)
            if ann.get(ANN_STORAGE_PROVISIONER) != prov or ann.get(ANN_BETA_STORAGE_PROVISIONER) != prov:
                # Updates, as upstream's binder (its role may update claims, not patch them).
                await self.client.update({**pvc, "metadata": {**pvc["metadata"], "annotations": {
                    **ann, ANN_STORAGE_PROVISIONER: prov, ANN_BETA_STORAGE_PROVISIONER: prov}}})
            self._tell(pvc, "ExternalProvisioning",
                       f"Waiting for a volume to be created either by the external provisioner '{prov}' or "
                       "manually by the system administrator. If volume creation is delayed, please verify that "
                       "the provisioner is running and correctly registered.")
            return None
        if cls and sc is None:
            self._tell(pvc, "ProvisioningFailed", f'storageclass.storage.k8s.io "{cls}" not found', "Warning")
        else:
            self._tell(pvc, "FailedBinding", "no persistent volumes available for this claim and no storage "
                                             "class is set", "Warning")
        return None

    async def _release_protection(self, pvc: Obj) -> float | None:
        """A claim being deleted goes once no pod uses it (upstream's pvc-protection controller)."""
        meta = pvc["metadata"]
        finalizers = meta.get("finalizers") or []
        if PVC_PROTECTION not in finalizers:
            return None
        key = f"{meta['namespace']}/{meta['name']}"
        users = [p for p in self.pods.by_index("pvc-protection-claims", key) if pod_uses_claims(p)]
        if not users:  # the cache may lag behind a new pod: ask the API server too
            pods, _ = await self.client.list(("v1", "Pod"), meta["namespace"])
            users = [p for p in pods if key in pod_claims(p) and pod_uses_claims(p)]
        if users:
            return 5.0  # pod events bring us back sooner
        await self.client.update({**pvc, "metadata": {**meta, "finalizers": [f for f in finalizers
                                                                             if f != PVC_PROTECTION]}})
        return None

    async def _set_default_class(self, pvc: Obj, default: str) -> Obj:
        try:
            return await self.client.update({**pvc, "spec": {**_spec(pvc), "storageClassName": default}})
        except ApiError as exc:
            if exc.code in (403, 422):
                log.info("%s: the API server does not let claims take the default class later (%s); "
                         "treating class-less claims as %r", self.name, exc, default)
                self._retro_default = False
                return pvc
            raise

    async def _claim_phase(self, pvc: Obj, phase: str) -> None:
        if (pvc.get("status") or {}).get("phase") != phase:
            await self.client.update_status({**pvc, "status": {**(pvc.get("status") or {}), "phase": phase}})

    async def _bind(self, pv: Obj, pvc: Obj) -> None:
        """Bind both ways, each step only if not done yet (upstream's bind())."""
        name = pv["metadata"]["name"]
        # 1. The volume points at the claim.
        ref = _spec(pv).get("claimRef")
        if not ref or ref.get("uid") != pvc["metadata"].get("uid"):
            meta = {**pv["metadata"]}
            if not ref:
                meta["annotations"] = {**_annotations(pv), ANN_BOUND_BY_CONTROLLER: "yes"}
            pv = await self.client.update({**pv, "metadata": meta, "spec": {**_spec(pv), "claimRef": claim_ref(pvc)}})
        # 2. The volume is Bound.
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv = await self.client.update_status({**pv, "status": {**(pv.get("status") or {}), "phase": "Bound"}})
        # 3. The claim points at the volume.
        ann = _annotations(pvc)
        if _spec(pvc).get("volumeName") != name or ann.get(ANN_BIND_COMPLETED) != "yes":
            new_ann = {**ann, ANN_BIND_COMPLETED: "yes"}
            if _spec(pvc).get("volumeName") != name:
                new_ann[ANN_BOUND_BY_CONTROLLER] = "yes"
            pvc = await self.client.update({**pvc, "metadata": {**pvc["metadata"], "annotations": new_ann},
                                            "spec": {**_spec(pvc), "volumeName": name}})
        # 4. The claim is Bound, with the volume's size and modes.
        status = pvc.get("status") or {}
        want = {**status, "phase": "Bound", "capacity": dict(_spec(pv).get("capacity") or {}),
                "accessModes": list(_spec(pv).get("accessModes") or [])}
        if status != want:
            await self.client.update_status({**pvc, "status": want})
            meta = pvc["metadata"]
            log.info("%s: bound claim %s/%s to volume %s", self.name, meta["namespace"], meta["name"], name)

    # volumes

    async def _sync_volume(self, name: str) -> float | None:
        pv = self.volumes.get(name)
        if pv is None:
            return None  # (a volume being deleted is still followed: pv-protection waits for it to leave Bound)
        ref = _spec(pv).get("claimRef")
        phase = (pv.get("status") or {}).get("phase") or ""
        if not ref:
            if phase != "Available":
                await self._volume_phase(pv, "Available")
            return None
        ns, claim_name = ref.get("namespace", ""), ref.get("name", "")
        pvc = self.claims.get(f"{ns}/{claim_name}")
        if pvc is not None and ref.get("uid") and pvc["metadata"].get("uid") != ref.get("uid"):
            pvc = None
        if pvc is None and ref.get("uid"):
            # The cache may lag: ask the API server before releasing anything.
            try:
                live = await self.client.get(("v1", "PersistentVolumeClaim"), claim_name, ns)
                if live["metadata"].get("uid") == ref.get("uid"):
                    pvc = live
            except ApiError as exc:
                if exc.code != 404:
                    raise
        if pvc is None:
            if not ref.get("uid"):
                if phase not in ("Available",):  # pre-bound by a user to a claim yet to come
                    await self._volume_phase(pv, "Available")
                return None
            if phase != "Released":
                pv = await self._volume_phase(pv, "Released")
            await self._reclaim(pv)
            return None
        bound_name = _spec(pvc).get("volumeName")
        if bound_name == name:
            if phase != "Bound" and (pvc.get("status") or {}).get("phase") == "Bound":
                await self._volume_phase(pv, "Bound")
            self._claim_event(pvc)
            return None
        if not bound_name:
            if phase not in ("Available", "Bound"):
                await self._volume_phase(pv, "Available")
            self._claim_event(pvc)  # pre-bound to a claim still pending: the claim side binds
            return None
        # The claim went to another volume: free ours if we had chosen it.
        if _annotations(pv).get(ANN_BOUND_BY_CONTROLLER) == "yes":
            meta = {**pv["metadata"], "annotations": {k: v for k, v in _annotations(pv).items()
                                                      if k != ANN_BOUND_BY_CONTROLLER}}
            spec = {k: v for k, v in _spec(pv).items() if k != "claimRef"}
            pv = await self.client.update({**pv, "metadata": meta, "spec": spec})
            await self._volume_phase(pv, "Available")
        return None

    async def _volume_phase(self, pv: Obj, phase: str) -> Obj:
        if (pv.get("status") or {}).get("phase") == phase:
            return pv
        return await self.client.update_status({**pv, "status": {**(pv.get("status") or {}), "phase": phase}})

    async def _reclaim(self, pv: Obj) -> None:
        policy = _spec(pv).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            self._tell(pv, "VolumeReleased", "Volume released; reclaim policy Retain keeps it and its data")
            return
        if policy == "Delete":
            if _annotations(pv).get(ANN_PROVISIONED_BY):
                return  # its provisioner deletes the volume (and the data) itself
            try:
                await self.client.delete(("v1", "PersistentVolume"), pv["metadata"]["name"],
                                         preconditions={"uid": pv["metadata"]["uid"]})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
            return
        self._tell(pv, "VolumeFailedRecycle", f"reclaim policy {policy} is not supported", "Warning")
