"""A volumeMount's `subPath`: what it names, and opening it without escaping the volume.

Two halves, as upstream splits them between kubelet_pods.go (makeMounts)
and pkg/volume/util/subpath:

- Pure: `subPathExpr` expanded against the container's environment
  (`$(VAR)`, `$$` an escaped dollar; a variable missing or empty is an
  error naming it, "missing value for A, B"), and the checks the kubelet
  repeats after expansion (no absolute path, no `..`), with upstream's
  messages.  The API server refuses the same shapes in the spec itself
  (kinns/api/storagechecks.py).
- Filesystem: a container owns what is inside its volumes, so a subPath
  may cross symlinks the container planted.  `resolve_within` evaluates
  them once (a link that stays inside the volume is fine; one that leads
  out is refused), `open_within` then opens the resolved path component
  by component with O_NOFOLLOW, so a link swapped in meanwhile is refused
  rather than followed, and `make_dirs_within` creates a missing subPath
  the same careful way (upstream's doSafeMakeDir).  The caller binds the
  opened descriptor (/proc/self/fd/N), never the path, so what is mounted
  is what was checked.  These run in the node runtime's mount namespace
  (mountns.py), where the volumes are what containers see.

Only the standard library here: mountns.py's helper process imports this.
"""

from __future__ import annotations

import os
import stat
from typing import Callable, Mapping


class SubPathError(Exception):
    """A subPath that cannot be used; the message is what the pod status shows."""


# ------------------------------------------------------------------ pure


def expand(expr: str, mapping: Callable[[str], str]) -> str:
    """Upstream's expansion.Expand (third_party/forked/golang/expansion): `$(NAME)`
    becomes mapping(NAME), `$$` a single `$`, anything else is kept as written."""
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = expr[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = expr.find(")", i + 2)
            if close < 0:        # an unterminated reference stays as written
                out.append("$(")
                i += 2
            else:
                out.append(mapping(expr[i + 2:close]))
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def expand_subpath_expr(expr: str, env: Mapping[str, str]) -> str:
    """`subPathExpr` with the container's environment (kubecontainer.ExpandContainerVolumeMounts)."""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        value = env.get(name, "")
        if not value:
            missing.add(name)
        return value

    out = expand(expr, lookup)
    if missing:
        raise SubPathError(f"missing value for {', '.join(sorted(missing))}")
    return out


def has_backsteps(path: str) -> bool:
    return ".." in path.replace("\\", "/").split("/")


def check_subpath(sub: str) -> None:
    """The kubelet's checks of an (expanded) subPath, with upstream's messages."""
    if os.path.isabs(sub):
        raise SubPathError(f"error SubPath `{sub}` must not be an absolute path")
    if has_backsteps(sub):
        raise SubPathError(f"unable to provision SubPath `{sub}`: must not contain '..'")


# ------------------------------------------------------------ filesystem

_OPEN = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def within(path: str, base: str) -> bool:
    """`path` is `base` or below it (both absolute and clean)."""
    return path == base or path.startswith(base.rstrip("/") + "/")


def resolve_within(base: str, sub: str) -> str:
    """base/sub with every symlink evaluated (upstream's EvalSymlinks before doSafeOpen);
    SubPathError when the result lies outside the volume."""
    real_base = os.path.realpath(base)
    real = os.path.realpath(os.path.join(real_base, sub))
    if not within(real, real_base):
        raise SubPathError(f"subpath {os.path.join(base, sub)!r} not within volume path {base!r}")
    return real


def _components(base: str, path: str) -> list[str]:
    rel = os.path.relpath(path, base)
    return [] if rel == "." else [c for c in rel.split("/") if c]


def open_within(base: str, path: str) -> int:
    """An O_PATH descriptor of `path` (already resolved, below `base`), opened
    component by component without following any symlink (doSafeOpen)."""
    real_base = os.path.realpath(base)
    if not within(path, real_base):
        raise SubPathError(f"subpath {path!r} not within volume path {base!r}")
    fd = os.open(real_base, _OPEN | os.O_DIRECTORY)
    try:
        for part in _components(real_base, path):
            child = os.open(part, _OPEN, dir_fd=fd)
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise SubPathError(f"subpath {path!r}: {part!r} is a symlink")
        return fd
    except BaseException:
        os.close(fd)
        raise


def make_dirs_within(base: str, sub: str, mode: int) -> None:
    """Create base/sub (and its missing parents) with `mode`, never through a
    symlink: the existing part is resolved and checked, the rest made with
    mkdirat under descriptors opened O_NOFOLLOW (doSafeMakeDir)."""
    real_base = os.path.realpath(base)
    parts = [p for p in sub.split("/") if p and p != "."]
    existing, rest = real_base, list(parts)
    while rest and os.path.lexists(os.path.join(existing, rest[0])):
        existing = os.path.join(existing, rest.pop(0))
    real_existing = os.path.realpath(existing)
    if not within(real_existing, real_base):
        raise SubPathError(f"{os.path.join(base, sub)!r} would escape volume {base!r}")
    fd = open_within(real_base, real_existing)
    try:
        if rest and not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise SubPathError(f"{real_existing!r} is not a directory")
        for part in rest:
            try:
                os.mkdir(part, mode, dir_fd=fd)
            except FileExistsError:
                pass
            child = os.open(part, _OPEN | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            os.chmod(f"/proc/self/fd/{fd}", mode)  # mkdir's mode passed through the umask
    finally:
        os.close(fd)
