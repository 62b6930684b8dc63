"""Named network namespaces, created and entered in-process.

A kinns node or pod is a network namespace.  Users inspect them with
`ip netns exec`, so every namespace is bind-mounted at /run/netns/<name>
exactly as iproute2 does it (the directory itself is made a shared mount so
the binds propagate).  Unlike `pyroute2.netns.create` and `IPRoute(netns=)`,
which fork a helper process per call, everything here switches only the
calling *thread* with setns(2) and switches it back: a netlink socket opened
while inside a namespace stays bound to it, so one cheap `IPRoute` per
namespace serves all later requests.

Division of labour: this module knows namespaces and nothing about links;
`applier` and `pod_network` open sockets through `iproute()`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:                     # imported lazily: ~100 ms that kinns-cni ADD does not need
    from pyroute2 import IPRoute

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_BIND = 0x1000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
# Creating a namespace must be atomic per name (exists → create), but the
# names of different pods never clash: one global lock made every node's pod
# set-up queue behind every other's unshare + bind mount (a fifth of the time
# a pod spent in set-up was waiting for it).  Stripes keep one name on one
# lock and let different names go in parallel, as the kernel allows.
_create_locks = tuple(threading.Lock() for _ in range(16))


_share_lock = threading.Lock()   # two first creates must not both bind /run/netns onto itself


def _create_lock(name: str) -> threading.Lock:
    return _create_locks[hash(name) % len(_create_locks)]


def _check(rc: int, what: str, target: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {target}: {os.strerror(err)}")


def path(name: str) -> str:
    """The bind-mount path of a named namespace; absolute paths pass through.

    CNI callers hand us `CNI_NETNS` which may be `/proc/<pid>/ns/net` or a
    bind mount elsewhere, so anything with a slash is taken as a path."""
    return name if "/" in name else str(NETNS_DIR / name)


def _nsfs_dev() -> int:
    return os.stat("/proc/thread-self/ns/net").st_dev


def exists(name: str) -> bool:
    """True when `name` is a live namespace mount (not a stale empty file)."""
    try:
        return os.stat(path(name)).st_dev == _nsfs_dev()
    except OSError:
        return False


def list_names(prefix: str = "") -> list[str]:
    """Names under /run/netns starting with `prefix`, stale files included
    (teardown must be able to remove those too)."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so the
    namespace binds show up in every mount namespace that shares /run."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    d = str(NETNS_DIR).encode()
    if _libc.mount(b"none", d, None, MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, "make-shared", str(NETNS_DIR))
    _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), "bind", str(NETNS_DIR))
    _check(_libc.mount(b"none", d, None, MS_SHARED | MS_REC, None), "make-shared", str(NETNS_DIR))


def create(name: str) -> None:
    """Create the named namespace; a no-op if it already exists.

    The calling thread unshares into a fresh namespace, binds it to
    /run/netns/<name> and returns to where it was; no process is forked."""
    with _create_lock(name):
        if exists(name):
            return
        with _share_lock:
            _share_run_dir()
        target = path(name)
        fd = os.open(target, os.O_RDONLY | os.O_CREAT, 0)
        os.close(fd)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare for", name)
            try:
                _check(_libc.mount(b"/proc/thread-self/ns/net", target.encode(), b"none", MS_BIND, None),
                       "bind namespace", name)
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "return from", name)
        except BaseException:
            try:
                os.unlink(target)
            except OSError:
                pass
            raise
        finally:
            os.close(home)


def delete(name: str) -> None:
    """Unmount and remove the named namespace; a no-op if it is gone.

    The kernel frees the namespace (and with it every link inside) once no
    process and no mount holds it."""
    target = path(name)
    _libc.umount2(target.encode(), MNT_DETACH)
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the block with the calling thread inside namespace `name`
    (None: stay where we are).  Sockets opened inside stay in it."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(path(name), os.O_RDONLY)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), "enter", name)
        finally:
            os.close(fd)
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "return from", name)
    finally:
        os.close(home)


def iproute(name: str | None) -> IPRoute:
    """An rtnetlink socket bound to namespace `name` (None: the current one)."""
    from pyroute2 import IPRoute
    with entered(name):
        return IPRoute()


def open_fd(name: str) -> int:
    """An fd of the namespace, for IFLA_NET_NS_FD (move a link into it)."""
    return os.open(path(name), os.O_RDONLY)


def sysctl(name: str | None, key: str, value: str) -> None:
    """Write a per-namespace sysctl such as net/ipv4/ip_forward.

    /proc/sys/net resolves to the netns of the thread that opens the file,
    so entering first changes the namespace's value, never the host's."""
    with entered(name), open(f"/proc/sys/{key}", "w") as f:
        f.write(value)


def read_sysctl(name: str | None, key: str) -> str:
    with entered(name), open(f"/proc/sys/{key}") as f:
        return f.read().strip()
