"""Pod volumes: what each volume is on the host, and where containers see it.

The kubelet prepares every volume of a pod as a host directory before its
containers start, and the runtime bind-mounts them at each `volumeMount`'s
path (read-only when asked, a `subPath` inside when given):

- `emptyDir`: a directory in the pod's sandbox, shared by its containers,
  removed with the pod; it outlives container restarts.  `medium: Memory`
  makes it a tmpfs of `sizeLimit`, capped by the pod's memory limit and
  the node's allocatable memory (upstream's calculateEmptyDirMemorySize),
  mounted in the runtime's mount namespace (mountns.py); a `sizeLimit` on
  any emptyDir is also enforced by eviction (localstorage.py).
- `hostPath`: the node's path; `DirectoryOrCreate`/`FileOrCreate` create it,
  `Directory`/`File` require it.  (kinns nodes share the host's
  filesystem, so this is the host's path.)
- `configMap` / `secret`: the object's keys written as files (`items` pick
  and rename keys), as the kubelet projects them.
- `persistentVolumeClaim`: the bound PersistentVolume's `hostPath` or
  `local` path; an unbound claim keeps the pod from starting (the scheduler
  does not place such pods in the first place).
- `downwardAPI`: the pod's own fields (`downward.py`) as files.
- `projected`: several sources in one directory: `serviceAccountToken`
  (a TokenRequest bound to the pod, asked of the API server), `configMap`,
  `secret` and `downwardAPI`.  This is what the ServiceAccount admission
  plugin's `kube-api-access-xxxxx` volume is: `token`, `ca.crt`,
  `namespace`, mounted at /var/run/secrets/kubernetes.io/serviceaccount.

Tokens expire, so the kubelet keeps them fresh: `TokenManager` remembers
each projected token file and, when `refresh_due` is called (the kubelet
does so with its heartbeat), asks for a new token once 80% of the
requested lifetime or 24 hours have passed, as upstream's token manager,
and replaces the file atomically (a rename, so a reader never sees half a
token; the bind mount shows the new file at once).

A volume the kubelet cannot prepare raises `VolumeError` with the reason
and message the pod's Events show (FailedMount).

`container_mounts` turns a container's volumeMounts into the runtime's
bind mounts, as makeMounts does: read-only when the mount says so, when
a persistentVolumeClaim source says `readOnly`, and always for configMap,
secret, downwardAPI and projected volumes (their mounters are read-only
upstream).  A `subPath` (or `subPathExpr`, expanded against the
container's environment) is checked, created if missing and bound from a
safely opened descriptor in the runtime's namespace (subpath.py); what
fails is the container's CreateContainerConfigError, worded as upstream.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..api.errors import ApiError
from ..api.tables import format_quantity
from ..client.client import Client, Obj
from ..controllers.quantity import parse_bytes
from .downward import DownwardError, field_value, resource_value
from .images import ImageError
from .mountns import MountError, NodeMounts
from .runtime import Mount
from .subpath import SubPathError, check_subpath, expand_subpath_expr

log = logging.getLogger(__name__)


class VolumeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write `path` atomically (a temporary file renamed over it), with `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _key_files(data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int) -> dict[str, tuple[bytes, int]]:
    """The files (relative path -> (bytes, mode)) a configMap/secret source writes."""
    chosen = [(i["key"], i.get("path", i["key"]), i.get("mode")) for i in items] if items else \
        [(k, k, None) for k in data]
    out: dict[str, tuple[bytes, int]] = {}
    for key, rel, item_mode in chosen:
        if key not in data:
            raise VolumeError(f'configmap/secret key "{key}" not found')
        out[rel] = (data[key], int(item_mode) if item_mode is not None else mode)
    return out


def _write_keys(target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for rel, (content, file_mode) in _key_files(data, items, mode).items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(file_mode)


async def _object_data(client: Client, ns: str, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
    """A ConfigMap's or Secret's keys as bytes; None when it is missing and optional."""
    try:
        obj = await client.get(("v1", kind), name, ns)
    except ApiError as exc:
        if exc.code == 404 and optional:
            return None
        if exc.code == 404:
            raise VolumeError(f'{kind.lower()} "{name}" not found') from None
        raise
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def downward_files(pod: Obj, items: list[dict[str, Any]] | None, mode: int,
                   allocatable: dict[str, Any] | None = None) -> dict[str, tuple[bytes, int]]:
    """The files of a downwardAPI volume or source (relative path -> (bytes, mode))."""
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    out: dict[str, tuple[bytes, int]] = {}
    for item in items or []:
        try:
            if isinstance(item.get("fieldRef"), dict):
                value = field_value(pod, str(item["fieldRef"].get("fieldPath", "")))
            elif isinstance(item.get("resourceFieldRef"), dict):
                ref = item["resourceFieldRef"]
                value = resource_value(containers.get(ref.get("containerName"), {}), ref, allocatable)
            else:
                continue
        except DownwardError as exc:
            raise VolumeError(str(exc)) from None
        item_mode = item.get("mode")
        out[str(item.get("path", ""))] = (value.encode(), int(item_mode) if item_mode is not None else mode)
    return out


@dataclass
class ProjectedToken:
    """One projected token file and how to renew it."""

    path: Path
    mode: int
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audience: str
    expiration_seconds: int
    expires_at: float

    def refresh_at(self) -> float:
        """When to renew: 80% into the requested lifetime, or after 24 h (upstream's requiresRefresh)."""
        issued = self.expires_at - self.expiration_seconds
        return min(issued + 24 * 3600, self.expires_at - self.expiration_seconds * 0.2)


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class TokenManager:
    """The kubelet's projected ServiceAccount tokens, per pod, renewed before they expire."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.tokens: dict[str, list[ProjectedToken]] = {}    # by pod UID

    async def request(self, client: Client, t: ProjectedToken) -> bytes:
        """Ask the API server for a token bound to the pod; records its expiry in `t`."""
        spec: Obj = {"expirationSeconds": t.expiration_seconds,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": t.pod_name, "uid": t.pod_uid}}
        if t.audience:
            spec["audiences"] = [t.audience]
        try:
            tr = await client.post_subresource(("v1", "ServiceAccount"), t.service_account, t.namespace, "token",
                                               {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                                "spec": spec})
        except ApiError as exc:
            raise VolumeError(f'failed to fetch token: {exc.message}') from None
        status = tr.get("status") or {}
        t.expires_at = _epoch(status["expirationTimestamp"]) if status.get("expirationTimestamp") else \
            self.clock() + t.expiration_seconds
        return str(status.get("token", "")).encode()

    def track(self, pod_uid: str, t: ProjectedToken) -> None:
        self.tokens.setdefault(pod_uid, []).append(t)

    def forget(self, pod_uid: str) -> None:
        self.tokens.pop(pod_uid, None)

    async def refresh_due(self, client: Client) -> int:
        """Renew every token past its refresh time; returns how many were renewed."""
        now, renewed = self.clock(), 0
        for items in list(self.tokens.values()):
            for t in items:
                if now < t.refresh_at() or not t.path.parent.exists():
                    continue
                try:
                    write_file(t.path, await self.request(client, t), t.mode)
                    renewed += 1
                except (VolumeError, OSError) as exc:
                    log.warning("renewing token %s: %s", t.path, exc)
        return renewed


async def _projected(client: Client, pod: Obj, vol: Obj, target: Path, tokens: TokenManager | None,
                     allocatable: dict[str, Any] | None) -> None:
    src_all = vol["projected"]
    mode = int(src_all.get("defaultMode", 0o644))
    meta, spec = pod["metadata"], pod.get("spec") or {}
    files: dict[str, tuple[bytes, int]] = {}
    pending: list[ProjectedToken] = []
    for source in src_all.get("sources") or []:
        if isinstance(source.get("serviceAccountToken"), dict):
            sat = source["serviceAccountToken"]
            t = ProjectedToken(target / str(sat.get("path", "token")), mode, meta["namespace"],
                               spec.get("serviceAccountName") or "default", meta["name"], meta.get("uid", ""),
                               str(sat.get("audience", "")), int(sat.get("expirationSeconds", 3600)), 0.0)
            manager = tokens or TokenManager()
            files[str(sat.get("path", "token"))] = (await manager.request(client, t), mode)
            pending.append(t)
        for kind, key in (("configMap", "ConfigMap"), ("secret", "Secret")):
            if isinstance(source.get(kind), dict):
                src = source[kind]
                data = await _object_data(client, meta["namespace"], key, str(src.get("name", "")),
                                          bool(src.get("optional")))
                if data is not None:
                    files.update(_key_files(data, src.get("items"), mode))
        if isinstance(source.get("downwardAPI"), dict):
            files.update(downward_files(pod, source["downwardAPI"].get("items"), mode, allocatable))
    target.mkdir(parents=True, exist_ok=True)
    for rel, (content, file_mode) in files.items():
        write_file(target / rel, content, file_mode)
    if tokens is not None:
        for t in pending:
            tokens.track(meta.get("uid", ""), t)


async def prepare(client: Client, pod: Obj, pod_dir: Path, tokens: TokenManager | None = None,
                  allocatable: dict[str, Any] | None = None, mounts: NodeMounts | None = None) -> dict[str, str]:
    """Host paths of the pod's volumes, by volume name.  `tokens` keeps
    projected tokens renewed; `allocatable` stands in for unset limits;
    `mounts` reaches the runtime's mount namespace (memory-backed emptyDirs)."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, str] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol["name"]
        if "emptyDir" in vol:
            d = pod_dir / "volumes" / "empty-dir" / name
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o777)
            if (vol["emptyDir"] or {}).get("medium") == "Memory":
                if mounts is None:
                    raise VolumeError("a memory-backed emptyDir needs the node's runtime")
                size = memory_emptydir_size(vol["emptyDir"], pod, allocatable)
                try:
                    await asyncio.to_thread(mounts.tmpfs, d, size)
                except MountError as exc:
                    raise VolumeError(f"mount of tmpfs failed: {exc}") from None
            out[name] = str(d)
        elif "hostPath" in vol:
            hp = vol["hostPath"]
            path, kind = Path(hp["path"]), hp.get("type", "")
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif kind == "Directory" and not path.is_dir():
                raise VolumeError(f"hostPath type check failed: {path} is not a directory")
            elif kind == "File" and not path.is_file():
                raise VolumeError(f"hostPath type check failed: {path} is not a file")
            out[name] = str(path)
        elif "configMap" in vol or "secret" in vol:
            is_secret = "secret" in vol
            src = vol["secret"] if is_secret else vol["configMap"]
            obj_name = src.get("secretName") if is_secret else src.get("name")
            data = await _object_data(client, ns, "Secret" if is_secret else "ConfigMap", str(obj_name or ""),
                                      bool(src.get("optional")))
            d = pod_dir / "volumes" / ("secret" if is_secret else "configmap") / name
            if data is None:            # optional and missing: an empty volume
                d.mkdir(parents=True, exist_ok=True)
            else:
                _write_keys(d, data, src.get("items"), int(src.get("defaultMode", 0o644)))
            out[name] = str(d)
        elif "persistentVolumeClaim" in vol:
            out[name] = await _claim_path(client, ns, vol["persistentVolumeClaim"]["claimName"])
        elif "downwardAPI" in vol:
            d = pod_dir / "volumes" / "downward-api" / name
            d.mkdir(parents=True, exist_ok=True)
            src = vol["downwardAPI"]
            for rel, (content, file_mode) in downward_files(pod, src.get("items"), int(src.get("defaultMode", 0o644)),
                                                            allocatable).items():
                write_file(d / rel, content, file_mode)
            out[name] = str(d)
        elif "projected" in vol:
            d = pod_dir / "volumes" / "projected" / name
            await _projected(client, pod, vol, d, tokens, allocatable)
            out[name] = str(d)
        # Other volume types (nfs, csi, ...) are not mounted.
    return out


async def _claim_path(client: Client, ns: str, claim: str) -> str:
    try:
        pvc = await client.get(("v1", "PersistentVolumeClaim"), claim, ns)
    except ApiError as exc:
        if exc.code == 404:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found') from None
        raise
    volume = (pvc.get("spec") or {}).get("volumeName")
    if (pvc.get("status") or {}).get("phase") != "Bound" or not volume:
        raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
    pv = await client.get(("v1", "PersistentVolume"), volume)
    spec = pv.get("spec") or {}
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise VolumeError(f'persistentvolume "{volume}" has no hostPath or local path kinns can mount')
    os.makedirs(path, exist_ok=True)
    return str(path)


# Volume types whose mounter is read-only upstream (GetAttributes().ReadOnly).
_ALWAYS_READ_ONLY = ("configMap", "secret", "downwardAPI", "projected")


def memory_emptydir_size(src: dict[str, Any], pod: Obj, allocatable: dict[str, Any] | None) -> int:
    """The tmpfs size of a memory-backed emptyDir (calculateEmptyDirMemorySize, SizeMemoryBackedVolumes):
    the node's allocatable memory, else the pod's memory limit when smaller,
    else `sizeLimit` when smaller still."""
    alloc = (allocatable or {}).get("memory")
    size = parse_bytes(alloc) if alloc else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = pod_memory_limit(pod)
    if limit is not None and 0 < limit <= size:
        size = limit
    if src.get("sizeLimit"):
        want = parse_bytes(src["sizeLimit"])
        if 0 < want <= size:
            size = want
    return size


def pod_memory_limit(pod: Obj) -> int | None:
    """The pod's memory limit as its cgroup gets it (ResourceConfigForPod): only when every
    container has one; the larger of the app containers' sum and any init container's."""
    spec = pod.get("spec") or {}
    app, init = spec.get("containers") or [], spec.get("initContainers") or []
    raw = [((c.get("resources") or {}).get("limits") or {}).get("memory") for c in app + init]
    if not raw or any(not lim for lim in raw):
        return None
    limits = [parse_bytes(str(lim)) for lim in raw]
    return max([sum(limits[:len(app)])] + limits[len(app):])


def size_limits(pod: Obj) -> dict[str, str]:
    """emptyDir volumes with a positive sizeLimit: name -> the limit as upstream prints it."""
    out = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        limit = (vol.get("emptyDir") or {}).get("sizeLimit") if isinstance(vol.get("emptyDir"), dict) else None
        if limit and parse_bytes(limit) > 0:
            out[str(vol["name"])] = format_quantity(limit)
    return out


async def mounts_of(node: NodeMounts | None, pod: Obj, container: dict[str, Any], paths: dict[str, str],
                    env: dict[str, str], pod_dir: Path) -> list[Mount]:
    """`container_mounts` without blocking the event loop: in a thread only when a subPath needs binding."""
    if any(vm.get("subPath") or vm.get("subPathExpr") for vm in container.get("volumeMounts") or []):
        return await asyncio.to_thread(container_mounts, node, pod, container, paths, env, pod_dir)
    return container_mounts(node, pod, container, paths, env, pod_dir)


def container_mounts(node: NodeMounts | None, pod: Obj, container: dict[str, Any], paths: dict[str, str],
                     env: dict[str, str], pod_dir: Path) -> list[Mount]:
    """The bind mounts of one container's volumeMounts (upstream's makeMounts).  Blocking
    (a subPath is bound by a helper in the runtime's namespace): call it off the event loop.
    Raises ImageError(CreateContainerConfigError) with upstream's message when a subPath fails."""
    sources = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
    out: list[Mount] = []
    pending: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for i, vm in enumerate(container.get("volumeMounts") or []):
        host = paths.get(vm["name"])
        if host is None:
            continue
        vol = sources.get(vm["name"]) or {}
        read_only = bool(vm.get("readOnly")) or any(k in vol for k in _ALWAYS_READ_ONLY) or \
            bool((vol.get("persistentVolumeClaim") or {}).get("readOnly"))
        sub = vm.get("subPath") or ""
        try:
            if vm.get("subPathExpr"):
                sub = expand_subpath_expr(str(vm["subPathExpr"]), env)
            if sub:
                check_subpath(sub)
        except SubPathError as exc:
            raise ImageError("CreateContainerConfigError", str(exc)) from None
        if sub:
            target = pod_dir / "volume-subpaths" / vm["name"] / container["name"] / str(i)
            pending.append((len(out), vm, {"op": "subpath", "volume": host, "sub": sub, "target": str(target)}))
            host = str(target)
        out.append(Mount(host, vm["mountPath"], read_only))
    if pending:
        _bind_subpaths(node, container, pending)
    return out


def _bind_subpaths(node: NodeMounts | None, container: dict[str, Any],
                   pending: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
    try:
        if node is None:
            raise MountError("no runtime namespace to bind subPaths in")
        results = node.run([op for _, _, op in pending])
    except MountError as exc:
        log.warning("subPath mounts of container %s: %s", container.get("name"), exc)
        results = [{"error": "open", "detail": str(exc)}] * len(pending)
    for (_, vm, _), res in zip(pending, results):
        if "error" not in res:
            continue
        # Upstream keeps the details (host paths) out of the pod's status and logs them.
        log.warning("subPath %r of volumeMount %r of container %r: %s", vm.get("subPath") or vm.get("subPathExpr"),
                    vm["name"], container.get("name"), res.get("detail"))
        what = "create subPath directory" if res["error"] == "mkdir" else "prepare subPath"
        raise ImageError("CreateContainerConfigError",
                         f'failed to {what} for volumeMount "{vm["name"]}" of container "{container["name"]}"')
