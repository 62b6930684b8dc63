"""Pod volumes: what each volume is on the host, and where containers see it.

The kubelet prepares every volume of a pod as a host directory before its
containers start, and the runtime bind-mounts them at each `volumeMount`'s
path (read-only when asked, a `subPath` inside when given):

- `emptyDir`: a directory in the pod's sandbox, shared by its containers,
  removed with the pod; it outlives container restarts.
- `hostPath`: the node's path; `DirectoryOrCreate`/`FileOrCreate` create it,
  `Directory`/`File` require it.  (kinns nodes share the host's
  filesystem, so this is the host's path.)
- `configMap` / `secret`: the object's keys written as files (`items` pick
  and rename keys), as the kubelet projects them.
- `persistentVolumeClaim`: the bound PersistentVolume's `hostPath` or
  `local` path; an unbound claim keeps the pod from starting (the scheduler
  does not place such pods in the first place).

A volume the kubelet cannot prepare raises `VolumeError` with the reason
and message the pod's Events show (FailedMount).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from ..api.errors import ApiError
from ..client.client import Client, Obj
from .runtime import Mount


class VolumeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _write_keys(target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = [(i["key"], i.get("path", i["key"])) for i in items] if items else [(k, k) for k in data]
    for key, rel in chosen:
        if key not in data:
            raise VolumeError(f'configmap/secret key "{key}" not found')
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])
        path.chmod(mode)


async def prepare(client: Client, pod: Obj, pod_dir: Path) -> dict[str, str]:
    """Host paths of the pod's volumes, by volume name."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, str] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol["name"]
        if "emptyDir" in vol:
            d = pod_dir / "volumes" / "empty-dir" / name
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o777)
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
            try:
                obj = await client.get(("v1", "Secret" if is_secret else "ConfigMap"), obj_name, ns)
            except ApiError as exc:
                if exc.code == 404 and src.get("optional"):
                    obj = {}
                elif exc.code == 404:
                    kind = "secret" if is_secret else "configmap"
                    raise VolumeError(f'{kind} "{obj_name}" not found') from None
                else:
                    raise
            if is_secret:
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            else:
                data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
            d = pod_dir / "volumes" / ("secret" if is_secret else "configmap") / name
            _write_keys(d, data, src.get("items"), int(src.get("defaultMode", 0o644)))
            out[name] = str(d)
        elif "persistentVolumeClaim" in vol:
            out[name] = await _claim_path(client, ns, vol["persistentVolumeClaim"]["claimName"])
        # Other volume types (projected, downwardAPI, ...) are not mounted yet.
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


def mounts_for(container: dict[str, Any], paths: dict[str, str]) -> list[Mount]:
    """The bind mounts of one container's volumeMounts."""
    out = []
    for vm in container.get("volumeMounts") or []:
        host = paths.get(vm["name"])
        if host is None:
            continue
        if vm.get("subPath"):
            host = os.path.join(host, vm["subPath"])
            os.makedirs(host, exist_ok=True)
        out.append(Mount(host, vm["mountPath"], bool(vm.get("readOnly"))))
    return out
