"""Mounts a pod's volumes need, made where the pod's containers see them.

Most kinns volumes are plain host directories that the runtime binds into
each container.  Two kinds need a mount of their own first, as on any
kubelet: a memory-backed emptyDir (a tmpfs) and a subPath (bound from a
descriptor, so that a symlink planted by a container cannot redirect it,
see subpath.py).  Upstream's kubelet makes them in the host's mount
namespace and the runtime sees them through /var/lib/kubelet's shared
propagation.  kinns's runtime daemon (the zygote) lives in a mount
namespace of its own, copied from the host's when it started and not
receiving later mounts, so these mounts are made *in the zygote's
namespace*: every container starts from a copy of it, and the host's
mount table never holds them (nothing to leak there; they go with the
zygote at `kinns down`).

`NodeMounts` is the kubelet's side: it runs this module as a short helper
process (`python -S -m kinns.node.mountns`) that enters the zygote's
mount namespace (setns needs a single-threaded process, which the kubelet
is not) and performs a batch of operations read as JSON from stdin:

- `{"op": "tmpfs", "path", "size"}`: a tmpfs (mode 0777) unless one is there;
- `{"op": "subpath", "volume", "sub", "target"}`: create the subPath
  if missing, open it safely, bind it onto `target` (a file or directory
  made to match) unless already bound; answers `{"error": "mkdir"|"open", ...}`
  so the kubelet can word its message as upstream does;
- `{"op": "umount", "prefix"}`: detach every mount at or below `prefix`.

Reading what containers see of a volume (its usage, say) goes through
/proc/<zygote>/root, which resolves paths in that namespace.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import subpath

CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2
HELPER_TIMEOUT = 30.0


class MountError(Exception):
    """The runtime's mount namespace could not be reached or changed."""


# ------------------------------------------------------------------ helper side (in the namespace)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_points() -> list[str]:
    """Mount points of the current namespace, unescaped (mountinfo's field 5)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            out.append(_unescape(line.split()[4]))
    return out


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _tmpfs(libc: ctypes.CDLL, op: dict[str, Any]) -> dict[str, Any]:
    path = str(op["path"])
    if path in _mount_points():
        return {"ok": True, "already": True}
    os.makedirs(path, exist_ok=True)
    data = f"size={int(op['size'])},mode=0777"
    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, data.encode()), f"mount tmpfs {path}")
    return {"ok": True}


def _subpath(libc: ctypes.CDLL, op: dict[str, Any]) -> dict[str, Any]:
    volume, sub, target = str(op["volume"]), str(op["sub"]), str(op["target"])
    if target in _mount_points():
        return {"ok": True, "already": True}   # a container restart: upstream reuses the bind too
    joined = os.path.join(volume, sub)
    if not os.path.exists(joined):
        try:
            # the volume's own mode, as upstream's SafeMakeDir(subPath, volumePath, GetMode(volumePath))
            subpath.make_dirs_within(volume, sub, os.stat(volume).st_mode & 0o7777)
        except (OSError, subpath.SubPathError) as exc:
            return {"error": "mkdir", "detail": str(exc)}
    try:
        fd = subpath.open_within(volume, subpath.resolve_within(volume, sub))
    except (OSError, subpath.SubPathError) as exc:
        return {"error": "open", "detail": str(exc)}
    try:
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if is_dir:
            os.makedirs(target, exist_ok=True)
        elif not os.path.exists(target):
            open(target, "a").close()
        _check(libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, MS_BIND, None), f"bind {target}")
    except OSError as exc:
        return {"error": "open", "detail": str(exc)}
    finally:
        os.close(fd)
    return {"ok": True}


def _umount(libc: ctypes.CDLL, op: dict[str, Any]) -> dict[str, Any]:
    prefix = str(op["prefix"]).rstrip("/")
    done = []
    for m in sorted((m for m in _mount_points() if subpath.within(m, prefix)), key=len, reverse=True):
        if libc.umount2(m.encode(), MNT_DETACH) == 0:
            done.append(m)
    return {"ok": True, "unmounted": done}


_OPS = {"tmpfs": _tmpfs, "subpath": _subpath, "umount": _umount}


def main(argv: list[str]) -> int:
    """`mountns PID`: enter PID's mount namespace, run the JSON ops from stdin, answer JSON."""
    libc = _libc()
    fd = os.open(f"/proc/{int(argv[0])}/ns/mnt", os.O_RDONLY)
    _check(libc.setns(fd, CLONE_NEWNS), "setns")
    os.close(fd)
    ops = json.load(sys.stdin)
    results = []
    for op in ops:
        try:
            results.append(_OPS[op["op"]](libc, op))
        except (OSError, KeyError, ValueError) as exc:
            results.append({"error": "failed", "detail": str(exc)})
    json.dump(results, sys.stdout)
    return 0


# ------------------------------------------------------------------ kubelet side


class NodeMounts:
    """The kubelet's handle on its runtime's mount namespace (the zygote's)."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = Path(runtime_dir)

    def pid(self) -> int:
        try:
            pid = int((self.runtime_dir / "zygote.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            raise MountError("the node's container runtime is not running") from None
        return pid

    def view(self, path: Path | str) -> str:
        """`path` as the containers' mount namespace resolves it."""
        return f"/proc/{self.pid()}/root{os.path.abspath(path)}"

    def mounts_under(self, prefix: Path | str) -> list[str]:
        """Mount points at or below `prefix` in the runtime's namespace (no helper needed)."""
        try:
            lines = Path(f"/proc/{self.pid()}/mountinfo").read_text().splitlines()
        except (OSError, MountError):
            return []
        base = os.path.abspath(prefix)
        return [m for m in (_unescape(line.split()[4]) for line in lines if line) if subpath.within(m, base)]

    def run(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run `ops` in the namespace (blocking: call it off the event loop)."""
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        try:
            r = subprocess.run([sys.executable, "-S", "-m", "kinns.node.mountns", str(self.pid())],
                               input=json.dumps(ops), capture_output=True, text=True, env=env,
                               timeout=HELPER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise MountError("the mount helper did not answer") from None
        if r.returncode != 0:
            raise MountError(f"mount helper failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}")
        results: list[dict[str, Any]] = json.loads(r.stdout)
        return results

    def tmpfs(self, path: Path, size: int) -> None:
        (res,) = self.run([{"op": "tmpfs", "path": str(path), "size": size}])
        if "error" in res:
            raise MountError(str(res.get("detail")))

    def unmount_under(self, prefix: Path) -> list[str]:
        """Detach what was mounted for a pod (its directory is the prefix); a no-op,
        without a helper, when nothing is mounted there."""
        if not self.mounts_under(prefix):
            return []
        (res,) = self.run([{"op": "umount", "prefix": str(prefix)}])
        return list(res.get("unmounted") or [])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
