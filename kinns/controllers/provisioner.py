"""A local-path provisioner, as kind ships (rancher/local-path-provisioner).

On start it makes sure the default StorageClass `standard` exists (default
annotation, provisioner `rancher.io/local-path`, reclaim Delete,
WaitForFirstConsumer), as kind's node image installs it, plus
`allowVolumeExpansion: true`, which kind's lacks; a class a user deleted
later is not brought back.

For a pending claim of a class whose provisioner is ours, once the
scheduler has picked a node for it (`volume.kubernetes.io/selected-node`),
it creates the directory `<state dir>/local-path-provisioner/
pvc-<uid>_<namespace>_<name>` and the PersistentVolume `pvc-<claim uid>`:
a hostPath (DirectoryOrCreate) of the requested size and the claim's
access modes, node affinity `kubernetes.io/hostname In [node]`, the
class's reclaim policy, annotation `pv.kubernetes.io/provisioned-by`, and
a claimRef pre-binding it to the claim, so the binder binds the two.
(kind's base directory is /var/local-path-provisioner on the node; kinns
keeps everything inside its state directory.)

A class of ours with `volumeBindingMode: Immediate` is provisioned at once,
with no node chosen: every kinns node sees the same file system, which is
local-path's `sharedFileSystemPath` mode (volumes without node affinity,
usable from any node).  With kind's node-local configuration the same class
would fail with "configuration error, no node was specified".

Expansion: as the CSI external-resizer sidecar next to a driver would, a
bound claim of ours whose request grew past its capacity is resized
(events `Resizing` and `VolumeResizeSuccessful` from
"external-resizer rancher.io/local-path", condition `Resizing` and
`allocatedResourceStatuses: ControllerResizeInProgress` meanwhile, then the
volume's and the claim's capacity set to the new size).  A local-path
volume is a directory: its size was never a limit, so nothing on disk
changes and no file system resize on the node is needed.

When one of our volumes is Released with policy Delete, the directory is
removed and the volume deleted; a volume of ours deleted by hand loses its
directory too, and directories left without a volume (say, the daemon was
down when the volume went) are swept on start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

from ..api.errors import ApiError
from ..client.client import Client, Obj
from ..client.informer import InformerFactory
from .base import Controller
from .pvbinder import (ANN_PROVISIONED_BY, ANN_SELECTED_NODE, claim_class, default_class, is_wait_for_first_consumer)
from .quantity import parse_bytes

log = logging.getLogger(__name__)

PROVISIONER = "rancher.io/local-path"
DEFAULT_CLASS = "standard"
BASE_DIR = "local-path-provisioner"
ANN_LOCAL_SELECTED_NODE = "local.path.provisioner/selected-node"
COMPONENT = f"{PROVISIONER}_local-path-provisioner"
RESIZER = f"external-resizer {PROVISIONER}"
SWEEP_MIN_AGE = 60.0  # seconds: a fresh directory may belong to a volume being created


def standard_class() -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


def volume_name(pvc: Obj) -> str:
    return f"pvc-{pvc['metadata']['uid']}"


def volume_dir(base: Path, pvc: Obj) -> Path:
    meta = pvc["metadata"]
    return base / f"{volume_name(pvc)}_{meta['namespace']}_{meta['name']}"


def build_volume(pvc: Obj, sc: Obj, node: str | None, path: Path) -> Obj:
    """The PersistentVolume the provisioner creates for `pvc` on `node` (None: on the shared
    file system, no node affinity)."""
    spec = pvc.get("spec") or {}
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    meta = pvc["metadata"]
    pv_spec: Obj = {
        "capacity": {"storage": request},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
        "storageClassName": sc["metadata"]["name"],
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"],
                     "uid": meta["uid"], "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion", "")},
    }
    annotations = {ANN_PROVISIONED_BY: PROVISIONER}
    if node is not None:
        pv_spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        annotations[ANN_LOCAL_SELECTED_NODE] = node
    if sc.get("mountOptions"):
        pv_spec["mountOptions"] = list(sc["mountOptions"])
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc), "annotations": annotations},
        "spec": pv_spec,
    }


class LocalPathProvisioner(Controller):
    name = "local-path-provisioner"
    workers = 2

    def __init__(self, client: Client, factory: InformerFactory | None = None, *, state_dir: Path | str,
                 workers: int | None = None) -> None:
        super().__init__(client, factory, workers=workers)
        self.base = Path(state_dir) / BASE_DIR
        self._created: set[str] = set()
        self._resized: dict[str, str] = {}   # claim UID -> size done, until the cache shows it

    def setup(self) -> None:
        self.claims = self.factory.informer("v1", "PersistentVolumeClaim")
        self.volumes = self.factory.informer("v1", "PersistentVolume")
        self.classes = self.factory.informer("storage.k8s.io/v1", "StorageClass")
        self.claims.add_handlers(on_add=self._claim_event, on_update=lambda o, n: self._claim_event(n))
        self.volumes.add_handlers(on_add=self._volume_event, on_update=lambda o, n: self._volume_event(n),
                                  on_delete=self._volume_event)
        self.classes.add_handlers(on_add=lambda c: self._all_claims(), on_update=lambda o, n: self._all_claims())
        self.enqueue("init")

    def _claim_event(self, pvc: Obj) -> None:
        key = f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}"
        if not (pvc.get("spec") or {}).get("volumeName"):
            self.enqueue(f"claim:{key}")
        elif resize_wanted(pvc):
            self.enqueue(f"resize:{key}")

    def _volume_event(self, pv: Obj) -> None:
        self._created.discard(pv["metadata"]["name"])
        if (pv["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY) == PROVISIONER:
            self.enqueue(f"volume:{pv['metadata']['name']}")

    def _all_claims(self) -> None:
        for pvc in self.claims.list():
            self._claim_event(pvc)

    async def reconcile(self, key: str) -> float | None:
        kind, _, rest = key.partition(":")
        if kind == "init":
            await self._ensure_default_class()
            await asyncio.get_running_loop().run_in_executor(None, self._sweep)
            return None
        if kind == "claim":
            return await self._provision(rest)
        if kind == "volume":
            return await self._sync_volume(rest)
        if kind == "resize":
            return await self._resize(rest)
        return None

    # the default class

    async def _ensure_default_class(self) -> None:
        if self.classes.get(DEFAULT_CLASS) is not None:
            return
        try:
            await self.client.create(standard_class())
            log.info("%s: created the default StorageClass %r", self.name, DEFAULT_CLASS)
        except ApiError as exc:
            if exc.code != 409:
                raise

    # provisioning

    async def _provision(self, key: str) -> float | None:
        pvc = self.claims.get(key)
        if pvc is None or pvc["metadata"].get("deletionTimestamp") or (pvc.get("spec") or {}).get("volumeName") \
                or (pvc.get("status") or {}).get("phase") == "Bound":
            return None
        cls = claim_class(pvc, default_class(self.classes.list()))
        sc = self.classes.get(cls) if cls else None
        if sc is None or sc.get("provisioner") != PROVISIONER:
            return None
        name = volume_name(pvc)
        if self.volumes.get(name) is not None or name in self._created:
            return None
        node = (pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
        if not node and is_wait_for_first_consumer(sc):
            return None  # the scheduler names the node
        # (Immediate: no node; the volume goes on the file system all nodes share.)
        if (pvc.get("spec") or {}).get("selector") is not None:
            self._fail(pvc, "claim Selector is not supported")
            return None
        path = volume_dir(self.base, pvc)
        self.client.emit_event(pvc, "Provisioning", f'External provisioner is provisioning volume for claim '
                                                    f'"{pvc["metadata"]["namespace"]}/{pvc["metadata"]["name"]}"',
                               component=COMPONENT)
        await asyncio.get_running_loop().run_in_executor(None, _make_dir, path)
        try:
            await self.client.create(build_volume(pvc, sc, node or None, path))
        except ApiError as exc:
            if exc.code != 409:
                raise
            return None
        self._created.add(name)  # until our cache shows it
        log.info("%s: provisioned %s for %s at %s", self.name, name, key, path)
        self.client.emit_event(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {name}",
                               component=COMPONENT)
        return None

    async def _resize(self, key: str) -> float | None:
        """Grow one of our volumes to its claim's new request (a directory: only the numbers change)."""
        pvc = self.claims.get(key)
        if pvc is None or not resize_wanted(pvc):
            if pvc is not None:
                self._resized.pop(pvc["metadata"].get("uid", ""), None)
            return None
        size = str(pvc["spec"]["resources"]["requests"]["storage"])
        if self._resized.get(pvc["metadata"].get("uid", "")) == size:
            return None  # done; our cache has not seen the new capacity yet
        pv = self.volumes.get((pvc.get("spec") or {}).get("volumeName") or "")
        if pv is None or (pv["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY) != PROVISIONER:
            return None
        name = pv["metadata"]["name"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.client.emit_event(pvc, "Resizing", f"External resizer is resizing volume {name}", component=RESIZER)
        pvc = await self.client.update_status({**pvc, "status": resize_status(pvc.get("status") or {}, size, now, False)})
        spec = pv.get("spec") or {}
        if (spec.get("capacity") or {}).get("storage") != size:
            await self.client.update({**pv, "spec": {**spec, "capacity": {**(spec.get("capacity") or {}), "storage": size}}})
        await self.client.update_status({**pvc, "status": resize_status(pvc.get("status") or {}, size, now, True)})
        self._resized[pvc["metadata"].get("uid", "")] = size
        self.client.emit_event(pvc, "VolumeResizeSuccessful", "Resize volume succeeded", component=RESIZER)
        log.info("%s: resized %s of %s to %s", self.name, name, key, size)
        return None

    def _fail(self, pvc: Obj, message: str) -> None:
        self.client.emit_event(pvc, "ProvisioningFailed", f"failed to provision volume with StorageClass "
                                                          f'"{claim_class(pvc, DEFAULT_CLASS)}": {message}',
                               type="Warning", component=COMPONENT)

    # deleting

    async def _sync_volume(self, name: str) -> float | None:
        pv = self.volumes.get(name)
        loop = asyncio.get_running_loop()
        if pv is None:
            await loop.run_in_executor(None, self._remove_dirs_of, name)
            return None
        spec = pv.get("spec") or {}
        if (pv.get("status") or {}).get("phase") != "Released" or spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return None
        path = (spec.get("hostPath") or {}).get("path")
        if path and self._ours(Path(path)):
            await loop.run_in_executor(None, shutil.rmtree, path, True)
        try:
            await self.client.delete(("v1", "PersistentVolume"), name, preconditions={"uid": pv["metadata"]["uid"]})
            log.info("%s: deleted %s and its data", self.name, name)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        return None

    def _ours(self, path: Path) -> bool:
        """Only directories directly under our base, never anything else."""
        try:
            return path.resolve().parent == self.base.resolve() and path.name.startswith("pvc-")
        except OSError:
            return False

    def _remove_dirs_of(self, volume: str) -> None:
        if not self.base.is_dir():
            return
        for d in self.base.iterdir():
            if d.name.startswith(volume + "_") and self._ours(d):
                shutil.rmtree(d, ignore_errors=True)

    def _sweep(self) -> None:
        """Directories whose volume is gone (removed while we were not running)."""
        if not self.base.is_dir():
            return
        have = {pv["metadata"]["name"] for pv in self.volumes.list()}
        now = time.time()
        for d in self.base.iterdir():
            vol = d.name.split("_", 1)[0]
            if vol in have or not self._ours(d):
                continue
            try:
                if now - d.stat().st_mtime < SWEEP_MIN_AGE:
                    continue
            except OSError:
                continue
            shutil.rmtree(d, ignore_errors=True)


def resize_wanted(pvc: Obj) -> bool:
    """A bound claim asking for more than it has (what starts a resize)."""
    status = pvc.get("status") or {}
    want = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    have = (status.get("capacity") or {}).get("storage")
    return status.get("phase") == "Bound" and bool(want) and bool(have) and parse_bytes(str(want)) > parse_bytes(str(have))


def resize_status(status: Obj, size: str, now: str, done: bool) -> Obj:
    """The claim's status while (done=False) and after a controller-only resize to `size`
    (external-resizer's markPVCResizeInProgress / markPVCResizeFinished)."""
    out = {**status, "allocatedResources": {**(status.get("allocatedResources") or {}), "storage": size}}
    conds = [c for c in status.get("conditions") or [] if c.get("type") not in ("Resizing", "FileSystemResizePending")]
    statuses = {k: v for k, v in (status.get("allocatedResourceStatuses") or {}).items() if k != "storage"}
    if done:
        out["capacity"] = {**(status.get("capacity") or {}), "storage": size}
    else:
        conds.append({"type": "Resizing", "status": "True", "lastProbeTime": None, "lastTransitionTime": now})
        statuses["storage"] = "ControllerResizeInProgress"
    for key, value in (("conditions", conds), ("allocatedResourceStatuses", statuses)):
        if value:
            out[key] = value
        else:
            out.pop(key, None)
    return out


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)  # as local-path's `mkdir -m 0777 -p`
