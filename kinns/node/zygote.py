"""The zygote: one small pre-imported process that forks every container.

Why: starting a Python interpreter per container costs ~10 MB and ~30 ms;
forking a process that already imported everything costs a few hundred kB
of dirtied pages and well under a millisecond.  The zygote imports only
what containers need, calls `gc.freeze()` so forked children do not dirty
the shared heap, and serves JSON lines on a Unix socket.

It is the node's runtime daemon (what containerd is on a kind node), not a
child of the kubelet: `Runtime` starts it detached (`python -m
kinns.node.zygote --listen <state>/zygote.sock --pid-file ...`; it forks
into a session of its own once the socket listens) and connects to it, and
a kubelet that dies or restarts leaves it, and so every container, running.
One client at a time: a new connection replaces the old one (told so with
`{"ev": "replaced"}`).  A client that goes away kills nothing.

  → {"op": "spawn", "id": 1, "spec": {...}}     ← {"id": 1, "pid": 1234} | {"id": 1, "error": "..."}
  ← {"ev": "exit", "pid": 1234, "tag": "<container id>", "code": 0, "signal": 0, "time": 1.7e9}
  → {"op": "list", "id": 2}      ← {"id": 2, "children": [{"pid", "tag", "cgroups"}], "ipc": [pod uid]}
  → {"op": "ping" | "forget" | "shutdown", "id": 3, ...}

`tag` is what the client named the child in its spec (a container ID, or
`holder/<pod uid>` for a pod's PID-namespace holder), so a client that
reconnects can tell which exit is whose even when PIDs were reused.  Exit
events that happen while no client is connected are kept and delivered on
the next connect, after the last few that were sent to the previous client
(which may have died before reading them); the client ignores the ones it
already knew.  `list` says which children are alive, `shutdown` kills every
container (their cgroups) and exits, as SIGTERM does.

A spawned child is a fenced-in container, as runc would make it (what to
fence with is decided by `security.py`; the child only carries it out):

- namespaces: the zygote forks it into a new PID namespace (it is PID 1
  there) or into the pod's shared one (`shareProcessNamespace`, whose
  PID 1 is a pause-like holder the zygote also forks), or the node's
  (`hostPID`); it joins the pod's IPC namespace (one per pod, held open by
  the zygote as a file descriptor, so it outlives container restarts as
  the pause container's does) unless `hostIPC`, the pod's network
  namespace, and unshares a mount and UTS namespace;
- its root: a private tmpfs holding an overlay of the host root (writes
  vanish with the container) in which the host's secrets are hidden
  (opaque directories and empty files made in the upper layer) and the
  paths containers need from the host are bound back read-only; a fresh
  /dev tmpfs with the default devices, a devpts instance of its own, shm
  and mqueue (privileged: the node's /dev); /proc with runc's masked and
  read-only paths; /sys read-only; an empty /tmp; the pod's
  hosts/resolv.conf/hostname files and volumes; optionally all of it
  read-only (`readOnlyRootFilesystem`);
- then it chroots, drops capabilities (bounding set, then setgroups,
  setgid, setuid, capset), sets no_new_privs when asked, and execs the
  command or runs a built-in server.  Setup errors come back on a
  close-on-exec pipe, as subprocess does.

A container with a terminal gets it from its own devpts instance (as runc's
console socket does): the child opens the pty and sends the master back to
the zygote over a socketpair.

The zygote also reaps children (it is a child subreaper, so orphans of a
container come back to it) and pumps each container's stdout/stderr into a
log file in the CRI format (`<RFC3339Nano> stdout F <line>`).  Children
carry PDEATHSIG towards the zygote, so a zygote that dies takes its
containers with it, as containers die with their shim.  Nothing
host-visible is mounted: every mount lives in the container's own mount
namespace and disappears with its last process.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import fcntl
import resource
import stat
import selectors
import signal
import socket
import struct
import termios
import sys
import time
import traceback
from collections import deque
from typing import Any

from kinns.node import builtin_servers, security

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
LINUX_CAPABILITY_VERSION_3 = 0x20080522
PAUSE_UID = 65535  # the pause image's user; the sandbox holder runs as it

_libc = ctypes.CDLL(None, use_errno=True)

# Where the daemon's file system view starts; see _private_mount_table().
HOST_ROOT = ""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(src: str, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(src.encode(), dst.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {fstype or 'bind'} {src} on {dst}")


def _in_root(root: str, path: str) -> str:
    """`path` as seen from inside `root`, resolved without leaving it.

    Like runc's securejoin: each symlink met on the way is followed
    relative to `root` (an absolute link such as Debian's `/var/run ->
    /run` means `<root>/run`, never the host's /run), and `..` stops at
    `root`.  Without this, a volume mounted at /var/run/... would be
    created and bound on the host's own /run."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        cur = os.path.join(root, *done, part)
        if os.path.islink(cur):
            hops += 1
            if hops > 40:
                raise OSError(f"too many levels of symbolic links in {path}")
            target = os.readlink(cur)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return os.path.join(root, *done)


def _mkdirs(path: str, is_file: bool = False) -> None:
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            open(path, "a").close()
    else:
        os.makedirs(path, exist_ok=True)


# -- the container's root ---------------------------------------------------------

def _hide(upper: str, plan: list[list[Any]]) -> None:
    """Hidden host paths, made in the upper layer before the overlay is
    mounted (see `runtime.upper_plan`): `o` an opaque directory (shows
    empty), `f` an empty file shadowing the host's, `d` a directory on the
    way, with the host's mode and owner (what the merged view shows)."""
    old = os.umask(0)
    try:
        for path, kind, mode, uid, gid in plan:
            if kind == "f":
                os.close(os.open(upper + path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            else:
                os.mkdir(upper + path, mode)
                if kind == "o":
                    os.setxattr(upper + path, "trusted.overlay.opaque", b"y")
            if uid or gid:
                os.chown(upper + path, uid, gid)
    finally:
        os.umask(old)


def _bind_ro(src: str, dst: str) -> None:
    _mount(src, dst, None, MS_BIND | MS_REC)
    _mount(src, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _make_root(spec: dict[str, Any]) -> str:
    """The container's root: an overlay of the host root on a private tmpfs,
    hidden paths hidden, kept paths bound back read-only."""
    scratch = spec["scratch"]
    _mount("kinns", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,size={spec.get('scratch_size', '1g')}")
    for d in ("upper", "work", "root"):
        os.mkdir(f"{scratch}/{d}")
    view = spec.get("view") or {}
    _hide(f"{scratch}/upper", view.get("upper", []))
    root = f"{scratch}/root"
    _mount("kinns", root, "overlay", 0, f"lowerdir=/,upperdir={scratch}/upper,workdir={scratch}/work")
    for k in view.get("keep", []):
        if os.path.exists(k):
            if not os.path.exists(root + k):
                _mkdirs(root + k, is_file=not os.path.isdir(k))
            _bind_ro(k, root + k)
    for d in view.get("inner_dirs", []):
        if os.path.isdir(root + d):
            _mount("tmpfs", root + d, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k")
    for f in view.get("inner_files", []):
        if os.path.isfile(root + f):
            _mount("/dev/null", root + f, None, MS_BIND)
    return root


def _make_dev(root: str, privileged: bool) -> None:
    """/dev as containerd and runc make it: a tmpfs with the default devices
    and runc's symlinks (privileged: the node's /dev), plus a devpts
    instance of the container's own, /dev/shm and /dev/mqueue."""
    dev = f"{root}/dev"
    if privileged:
        _mount("/dev", dev, None, MS_BIND | MS_REC)
    else:
        _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
        old = os.umask(0)
        try:
            for name, major, minor in security.DEVICES:
                os.mknod(f"{dev}/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            for d in ("pts", "shm", "mqueue"):
                os.mkdir(f"{dev}/{d}", 0o755)
            os.close(os.open(f"{dev}/termination-log", os.O_WRONLY | os.O_CREAT, 0o666))
        finally:
            os.umask(old)
        for name, target in security.DEV_SYMLINKS:
            os.symlink(target, f"{dev}/{name}")
    if os.path.isdir(f"{dev}/pts"):
        _mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    if os.path.isdir(f"{dev}/shm"):
        _mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    if os.path.isdir(f"{dev}/mqueue"):
        _mount("mqueue", f"{dev}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _mask_proc_and_sys(root: str) -> None:
    """runc's maskedPaths (a read-only empty tmpfs, or /dev/null over a file)
    and readonlyPaths (bound read-only onto themselves)."""
    for p in security.MASKED_PATHS:
        target = root + p
        if os.path.isdir(target):
            _mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
        elif os.path.exists(target):
            _mount(f"{root}/dev/null", target, None, MS_BIND)
    for p in security.READONLY_PATHS:
        target = root + p
        if os.path.exists(target):
            _mount(target, target, None, MS_BIND | MS_REC)
            _mount(target, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _setup_child(spec: dict[str, Any], ipc_fd: int | None) -> None:
    """Runs in the forked child: become the container (still root, with all
    capabilities, outside the new root).  Raises on failure."""
    for procs in spec.get("cgroups", []):
        try:
            with open(procs, "w") as f:
                f.write("0")  # this process: its pid may be 1 in its own namespace
        except OSError:
            pass
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if spec.get("netns"):
        fd = os.open(HOST_ROOT + spec["netns"], os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {spec['netns']}")
        os.close(fd)
    if ipc_fd is not None:
        _check(_libc.setns(ipc_fd, CLONE_NEWIPC), "setns ipc")
    flags = CLONE_NEWNS | (CLONE_NEWUTS if spec.get("hostname") else 0)
    _check(_libc.unshare(flags), "unshare")
    if spec.get("hostname"):
        name = spec["hostname"].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    sec = spec.get("security") or {}
    privileged = bool(sec.get("privileged"))
    root = _make_root(spec)
    _make_dev(root, privileged)
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("sysfs", f"{root}/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if privileged else MS_RDONLY))
    if not privileged:
        _mask_proc_and_sys(root)
    # an image starts with an empty /tmp, not the host's
    _mount("tmp", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for k in (spec.get("view") or {}).get("keep", []):
        if k.startswith("/tmp/") and os.path.exists(k):   # kinns itself checked out under /tmp
            _mkdirs(root + k, is_file=not os.path.isdir(k))
            _bind_ro(k, root + k)
    for path, text in spec.get("files", {}).items():
        dst = _in_root(root, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        if text.startswith("#!"):
            os.chmod(dst, 0o755)   # a script the image provides as a command
    for src, dst, ro in spec.get("binds", []):
        target = _in_root(root, dst)
        _mkdirs(target, is_file=not os.path.isdir(src))
        _mount(src, target, None, MS_BIND | MS_REC)
        if ro:
            _mount(src, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    if sec.get("ro_root"):
        for top in (root, f"{root}/tmp"):
            _mount("none", top, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(root)
    os.chdir(spec.get("cwd") or "/")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_privileges(sec: dict[str, Any]) -> None:
    """no_new_privs, the bounding set, groups, gid, uid, then the root
    process's own capability sets (a non-root uid loses them all at setuid)."""
    if not sec:
        return
    if sec.get("nnp"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl no_new_privs")
    caps = sec.get("caps")
    if caps is not None:
        keep = set(caps)
        for cap in range(64):
            if cap not in keep and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                if ctypes.get_errno() == errno.EINVAL:
                    break  # past the kernel's last capability
                _check(-1, f"drop capability {cap}")
    uid, gid = int(sec.get("uid", 0)), int(sec.get("gid", 0))
    os.setgroups([int(g) for g in sec.get("groups") or [gid]])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if uid == 0 and caps is not None:
        mask = 0
        for cap in caps:
            if _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:  # what the node can give
                mask |= 1 << cap
        data = (_CapData * 2)()
        for i in (0, 1):
            part = (mask >> (32 * i)) & 0xFFFFFFFF
            data[i].effective = data[i].permitted = part
        _check(_libc.capset(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")


def _take_terminal(sock_fd: int) -> None:
    """Open a pty in the container's own devpts, send the master to the
    zygote, and make the slave this process's stdio and controlling tty."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    sock = socket.socket(fileno=sock_fd)
    socket.send_fds(sock, [b"m"], [master])
    sock.close()
    os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_cmdline(text: bytes) -> None:
    """What `ps` shows for this process: overwrite the argument area in place
    (setproctitle's way; PR_SET_MM needs CAP_SYS_RESOURCE)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (stat fields 48, 49)
        text = text[:end - start - 1]
        ctypes.memset(start, 0, end - start)
        ctypes.memmove(start, text, len(text))
    except (OSError, ValueError, IndexError):
        pass
    _libc.prctl(PR_SET_NAME, os.path.basename(text.split(b"\0")[0])[:15], 0, 0, 0)


def _sandbox_holder(spec: dict[str, Any], ipc_fd: int | None) -> None:
    """PID 1 of a pod's shared PID namespace (`shareProcessNamespace`), as
    the pause container is: it holds the namespace, reaps orphans, and
    exits on SIGTERM.  It sits in an empty root as the pause image's user
    with no capabilities, so other containers learn nothing through
    /proc/1/root."""
    for procs in spec.get("cgroups", []):
        try:
            with open(procs, "w") as f:
                f.write("0")
        except OSError:
            pass
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _set_cmdline(b"/pause")
    if ipc_fd is not None:
        _check(_libc.setns(ipc_fd, CLONE_NEWIPC), "setns ipc")
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("pause", spec["scratch"], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
    os.chroot(spec["scratch"])
    os.chdir("/")
    _drop_privileges({"uid": PAUSE_UID, "gid": PAUSE_UID, "groups": [PAUSE_UID], "caps": [], "nnp": True})


def _run_holder() -> None:
    def reap(signum: int, frame: object) -> None:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda s, f: os._exit(0))
    signal.signal(signal.SIGINT, lambda s, f: os._exit(0))
    while True:
        signal.pause()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """A built-in server ends on SIGTERM as agnhost (a Go program) does: the
    signal's default action, and where that is ignored (PID 1 of its
    namespace) exit status 2, as the Go runtime's fallback."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(2)


def _child(spec: dict[str, Any], errw: int, out_w: int | None, err_w: int | None, in_r: int | None,
           tty_sock: int | None, ipc_fd: int | None) -> None:
    """The forked child; never returns.  With a tty (`tty_sock`), the pty is
    made inside the container and becomes stdin, stdout, stderr and the
    controlling terminal."""
    # Everything inherited is the zygote's and shared: keep the collector
    # from walking (and so writing to) it.
    gc.freeze()
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(in_r if in_r is not None else null, 0)
        os.dup2(out_w if out_w is not None else null, 1)
        os.dup2(err_w if err_w is not None else null, 2)
        os.close(null)
        if spec.get("init"):
            _sandbox_holder(spec, ipc_fd)
            os.closerange(3, errw)
            os.closerange(errw + 1, 65536)
            os.close(errw)
            _run_holder()
        _setup_child(spec, ipc_fd)
        if tty_sock is not None:
            _take_terminal(tty_sock)
        _drop_privileges(spec.get("security") or {})
        env = spec.get("env") or {}
        if spec.get("builtin"):
            os.closerange(3, errw)
            os.closerange(errw + 1, 65536)
            os.close(errw)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.environ.clear()
            os.environ.update(env)
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            if spec.get("title"):
                _set_cmdline("\0".join(spec["title"]).encode())
            builtin_servers.run(spec["builtin"], spec.get("args", []))
            os._exit(0)
        argv = spec["argv"]
        os.execvpe(argv[0], argv, env)
    except BaseException as e:  # report and die: this is the forked child
        msg = f"{e}" if isinstance(e, OSError) else "".join(traceback.format_exception_only(type(e), e)).strip()
        if isinstance(e, FileNotFoundError) and spec.get("argv") and spec["argv"][0] in str(e):
            msg = f'exec: "{spec["argv"][0]}": executable file not found in $PATH'
        try:
            os.write(errw, msg.encode()[:4000] or b"error")
        finally:
            os._exit(127)


def _cri_time(ns: int) -> str:
    sec, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{rest:09d}Z"


# Exit events sent to a client are kept this long, to replay to the next
# one: the previous client may have died before reading them.
RECENT_EXITS = 512
# A client that does not read for this long is dropped (its events are kept).
SEND_TIMEOUT = 10.0


class Zygote:
    """The event loop: the client's requests, SIGCHLD, log pipes, error pipes."""

    def __init__(self, listener: socket.socket) -> None:
        self.sel = selectors.DefaultSelector()
        self.listener = listener
        self.client: socket.socket | None = None
        self.inbuf = b""
        self.held: list[dict[str, Any]] = []     # exit events that found no client
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EXITS)  # exit events sent
        self.tags: dict[int, str] = {}           # pid -> what the client called it
        self.pending: dict[int, tuple[int, int, bytes]] = {}  # errpipe fd -> (req id, pid, data)
        self.logs: dict[int, tuple[str, str, bytearray]] = {}  # pipe fd -> (log path, stream, partial)
        self.pipes_of: dict[int, list[int]] = {}  # pid -> its log pipe fds
        self.started: set[int] = set()  # pids we spawned (the rest are orphans)
        self.cgroups: dict[int, list[str]] = {}
        self.attach: dict[int, dict[str, Any]] = {}
        self.terminals: dict[int, tuple[socket.socket, str]] = {}  # pid -> (socket the pty master comes on, log)
        # The zygote's own namespaces, to come back to after making a pod's.
        self.home_pid = os.open("/proc/self/ns/pid", os.O_RDONLY)
        self.home_ipc = os.open("/proc/self/ns/ipc", os.O_RDONLY)
        self.ipc: dict[str, int] = {}  # pod key -> its IPC namespace, held open
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, lambda s, f: None)   # the wake-up pipe says which
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(rfd, selectors.EVENT_READ, "signal")
        self.sel.register(listener, selectors.EVENT_READ, "listen")

    def send(self, msg: dict[str, Any]) -> None:
        """To the client; an exit event with no client to take it is kept
        for the next one, a reply is dropped (its asker is gone)."""
        is_event = "ev" in msg
        if self.client is None:
            if is_event:
                self.held.append(msg)
            return
        try:
            self.client.sendall((json.dumps(msg) + "\n").encode())
        except OSError:  # gone, or not reading: drop it, keep the event
            self.drop_client()
            if is_event:
                self.held.append(msg)
            return
        if is_event:
            self.recent.append(msg)

    # -- the client -------------------------------------------------------------
    def on_listen(self) -> None:
        """A new client replaces the old one, then hears the exits it may
        have missed."""
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        if self.client is not None:
            try:
                self.client.sendall(b'{"ev": "replaced"}\n')
            except OSError:
                pass
            self.drop_client()
        conn.settimeout(SEND_TIMEOUT)
        self.client = conn
        self.inbuf = b""
        self.sel.register(conn, selectors.EVENT_READ, "client")
        missed = list(self.recent) + self.held
        self.held = []
        self.recent.clear()
        for msg in missed:
            self.send(msg)

    def drop_client(self) -> None:
        if self.client is None:
            return
        self.sel.unregister(self.client)
        self.client.close()
        self.client = None
        self.inbuf = b""

    # -- namespaces -----------------------------------------------------------
    def pod_ipc(self, key: str) -> int:
        """The pod's IPC namespace: made here at its first container and held
        by an open descriptor until the runtime says `forget`, so it lives
        as long as the pod, as the pause container keeps it upstream."""
        fd = self.ipc.get(key)
        if fd is None:
            _check(_libc.unshare(CLONE_NEWIPC), "unshare ipc")
            try:
                fd = os.open("/proc/self/ns/ipc", os.O_RDONLY)
            finally:
                _check(_libc.setns(self.home_ipc, CLONE_NEWIPC), "setns ipc")
            self.ipc[key] = fd
        return fd

    def forget(self, key: str) -> None:
        fd = self.ipc.pop(key, None)
        if fd is not None:
            os.close(fd)

    def fork_into(self, pidns: str) -> int:
        """fork(), the child in a new PID namespace ("new", where it is PID 1),
        an existing one (a /proc/<pid>/ns/pid path) or the zygote's ("").
        The zygote stays the child's parent, so it learns the host PID and
        reaps it; it returns to its own namespace for later forks."""
        if pidns == "new":
            _check(_libc.unshare(CLONE_NEWPID), "unshare pid")
        elif pidns:
            fd = os.open(pidns, os.O_RDONLY)
            try:
                _check(_libc.setns(fd, CLONE_NEWPID), f"setns {pidns}")
            finally:
                os.close(fd)
        try:
            pid = os.fork()
        except OSError:
            if pidns:
                _check(_libc.setns(self.home_pid, CLONE_NEWPID), "setns pid")
            raise
        if pid and pidns:
            _check(_libc.setns(self.home_pid, CLONE_NEWPID), "setns pid")
        return pid

    # -- spawning -----------------------------------------------------------
    def spawn(self, rid: int, spec: dict[str, Any]) -> None:
        tty = bool(spec.get("tty")) and not spec.get("init")
        out_r = out_w = err_r = err_w = in_r = in_w = None
        msock = csock = None
        if tty:
            msock, csock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if spec.get("stdin"):
                in_r, in_w = os.pipe()
        errr, errw = os.pipe()
        mine = [fd for fd in (out_w, err_w, errw, in_r) if fd is not None]
        theirs = [fd for fd in (out_r, err_r, errr, in_w) if fd is not None]
        try:
            ipc_fd = self.pod_ipc(spec["ipc"]) if spec.get("ipc") else None
            pid = self.fork_into(spec.get("pidns") or "")
        except OSError as e:
            for fd in mine + theirs:
                os.close(fd)
            for sk in (msock, csock):
                if sk is not None:
                    sk.close()
            self.send({"id": rid, "error": f"fork: {e}"})
            return
        if pid == 0:
            _child(spec, errw, out_w, err_w, in_r, csock.fileno() if csock is not None else None, ipc_fd)
        for fd in mine:
            os.close(fd)
        if csock is not None:
            csock.close()
        log = spec.get("log") or "/dev/null"
        if spec.get("attach") and (in_w is not None or tty):
            self.open_attach(pid, spec["attach"], in_w, tty, bool(spec.get("stdin_once")))
        elif in_w is not None:
            os.close(in_w)
        self.started.add(pid)
        self.tags[pid] = str(spec.get("tag") or "")
        self.cgroups[pid] = spec.get("cgroups", [])
        self.pipes_of[pid] = []
        for pipe, stream in ((out_r, "stdout"), (err_r, "stderr")):
            if pipe is not None:
                self.follow_log(pid, pipe, log, stream)
        if msock is not None:
            self.terminals[pid] = (msock, log)
            self.sel.register(msock, selectors.EVENT_READ, ("terminal", pid))
        self.pending[errr] = (rid, pid, b"")
        self.sel.register(errr, selectors.EVENT_READ, "errpipe")

    def follow_log(self, pid: int, fd: int, log: str, stream: str) -> None:
        os.set_blocking(fd, False)
        self.logs[fd] = (log, stream, bytearray())
        self.sel.register(fd, selectors.EVENT_READ, "log")
        self.pipes_of.setdefault(pid, []).append(fd)

    def on_terminal(self, pid: int) -> None:
        """The child sent its pty master (or died first): log what the
        terminal shows, and let attach write to it."""
        entry = self.terminals.pop(pid, None)
        if entry is None:
            return
        sock, log = entry
        self.sel.unregister(sock)
        try:
            _, fds, _, _ = socket.recv_fds(sock, 16, 1)
        except OSError:
            fds = []
        sock.close()
        if not fds:
            return
        master = fds[0]
        self.follow_log(pid, master, log, "stdout")
        a = self.attach.get(pid)
        if a is not None:
            a["in"] = master

    def on_errpipe(self, fd: int) -> None:
        rid, pid, data = self.pending[fd]
        chunk = os.read(fd, 4096)
        if chunk:
            self.pending[fd] = (rid, pid, data + chunk)
            return
        self.sel.unregister(fd)
        os.close(fd)
        del self.pending[fd]
        if pid in self.terminals:  # sent before exec: take it before answering
            self.on_terminal(pid)
        if data:
            self.send({"id": rid, "pid": pid, "error": data.decode(errors="replace")})
        else:
            self.send({"id": rid, "pid": pid})

    # -- attach ---------------------------------------------------------------
    # A container with `stdin: true` gets an abstract unix socket; the daemon
    # connects to it and sends frames: 1 byte type (0 data, 1 resize
    # "rows cols", 2 close stdin) + 4 bytes big-endian length + payload.
    # Output is not sent back: it goes to the log, which attach follows.
    def open_attach(self, pid: int, name: str, in_fd: int | None, tty: bool, once: bool) -> None:
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind("\0" + name)
        lst.listen(8)
        lst.setblocking(False)
        self.attach[pid] = {"listener": lst, "in": in_fd, "tty": tty, "once": once, "clients": {}}
        self.sel.register(lst, selectors.EVENT_READ, ("attach-listen", pid))

    def on_attach_listen(self, pid: int) -> None:
        a = self.attach[pid]
        try:
            conn, _ = a["listener"].accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        a["clients"][conn.fileno()] = (conn, bytearray())
        self.sel.register(conn, selectors.EVENT_READ, ("attach-client", pid))

    def _close_stdin(self, a: dict[str, Any]) -> None:
        if a["in"] is None:
            return
        if a["tty"]:
            self._feed(a, b"\x04")
        else:
            os.close(a["in"])
            a["in"] = None

    def _feed(self, a: dict[str, Any], data: bytes) -> None:
        if a["in"] is None:
            return
        try:
            os.write(a["in"], data)  # best effort: a full pipe drops input
        except OSError:
            pass

    def on_attach_client(self, pid: int, fd: int) -> None:
        a = self.attach.get(pid)
        if a is None or fd not in a["clients"]:
            return
        conn, buf = a["clients"][fd]
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.sel.unregister(conn)
            conn.close()
            del a["clients"][fd]
            if a["once"]:
                self._close_stdin(a)
            return
        buf += chunk
        while len(buf) >= 5:
            kind, n = buf[0], struct.unpack(">I", bytes(buf[1:5]))[0]
            if len(buf) < 5 + n:
                break
            payload = bytes(buf[5:5 + n])
            del buf[:5 + n]
            if kind == 0:
                self._feed(a, payload)
            elif kind == 1 and a["tty"] and a["in"] is not None:
                rows, cols = (int(x) for x in payload.split())
                fcntl.ioctl(a["in"], termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            elif kind == 2:
                self._close_stdin(a)

    def close_attach(self, pid: int) -> None:
        a = self.attach.pop(pid, None)
        if a is None:
            return
        for conn, _ in a["clients"].values():
            self.sel.unregister(conn)
            conn.close()
        self.sel.unregister(a["listener"])
        a["listener"].close()
        if a["in"] is not None and not a["tty"]:
            os.close(a["in"])

    # -- logs ---------------------------------------------------------------
    def pump(self, fd: int, final: bool = False) -> None:
        path, stream, partial = self.logs[fd]
        lines: list[bytes] = []
        eof = False
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError:  # EIO: the pty slave is closed
                chunk = b""
            if not chunk:
                eof = True
                break
            partial += chunk
            *done, rest = bytes(partial).split(b"\n")
            lines += done
            partial[:] = rest
            if not final:
                break
        if (eof or final) and partial:
            lines.append(bytes(partial))
            partial.clear()
        if lines:
            ts = _cri_time(time.time_ns())
            prefix = f"{ts} {stream} F ".encode()
            try:
                with open(path, "ab") as f:
                    f.write(b"".join(prefix + line + b"\n" for line in lines))
            except OSError:
                pass
        if eof:
            for att in self.attach.values():
                if att["tty"] and att["in"] == fd:  # the pty master is gone
                    att["in"] = None
            self.sel.unregister(fd)
            os.close(fd)
            del self.logs[fd]

    # -- reaping ------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.started:
                continue
            self.started.discard(pid)
            self.cgroups.pop(pid, None)
            tag = self.tags.pop(pid, "")
            if pid in self.terminals:
                self.on_terminal(pid)
            self.close_attach(pid)
            for fd in self.pipes_of.pop(pid, []):
                if fd in self.logs:
                    self.pump(fd, final=True)
            for efd, (rid, epid, data) in list(self.pending.items()):
                while epid == pid and efd in self.pending:
                    self.on_errpipe(efd)
            code, sig = 0, 0
            if os.WIFEXITED(status):
                code = os.WEXITSTATUS(status)
            elif os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                code = 128 + sig
            self.send({"ev": "exit", "pid": pid, "tag": tag, "code": code, "signal": sig, "time": time.time()})

    # -- main loop ----------------------------------------------------------
    def on_client(self) -> bool:
        """Requests from the client; False once it asked to shut down."""
        assert self.client is not None
        try:
            chunk = self.client.recv(1 << 20)
        except (BlockingIOError, socket.timeout):
            return True
        except OSError:
            chunk = b""
        if not chunk:  # the kubelet went away: its containers stay
            self.drop_client()
            return True
        self.inbuf += chunk
        while b"\n" in self.inbuf and self.client is not None:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            req = json.loads(line)
            op = req.get("op")
            if op == "spawn":
                self.spawn(req["id"], req["spec"])
            elif op == "ping":
                self.send({"id": req["id"], "pid": os.getpid()})
            elif op == "forget":
                self.forget(req["pod"])
                self.send({"id": req["id"]})
            elif op == "list":
                self.send({"id": req["id"], "ipc": sorted(self.ipc),
                           "children": [{"pid": pid, "tag": self.tags.get(pid, ""), "cgroups": self.cgroups.get(pid, [])}
                                        for pid in sorted(self.started)]})
            elif op == "shutdown":
                self.shutdown()
                self.send({"id": req["id"]})
                return False
        return True

    def shutdown(self) -> None:
        """Take every container with us (`shutdown`, SIGTERM)."""
        for pid, procs in list(self.cgroups.items()):
            for p in procs:
                kill = os.path.join(os.path.dirname(p), "cgroup.kill")
                if os.path.exists(kill):
                    try:
                        with open(kill, "w") as f:
                            f.write("1")
                    except OSError:
                        pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def run(self) -> None:
        try:
            while True:
                for key, _ in self.sel.select():
                    kind = key.data
                    if kind == "client":
                        if self.client is not None and not self.on_client():
                            return
                    elif kind == "signal":
                        got = b""
                        try:
                            while chunk := os.read(key.fd, 512):
                                got += chunk
                        except BlockingIOError:
                            pass
                        self.reap()
                        if signal.SIGTERM in got:
                            return
                    elif kind == "listen":
                        self.on_listen()
                    elif kind == "log":
                        if key.fd in self.logs:
                            self.pump(key.fd)
                    elif kind == "errpipe":
                        if key.fd in self.pending:
                            self.on_errpipe(key.fd)
                    elif kind[0] == "terminal":
                        self.on_terminal(kind[1])
                    elif kind[0] == "attach-listen":
                        if kind[1] in self.attach:
                            self.on_attach_listen(kind[1])
                    elif kind[0] == "attach-client":
                        self.on_attach_client(kind[1], key.fd)
        finally:
            self.shutdown()


def _private_mount_table() -> None:
    """Give the zygote a small mount table of its own.

    Every container unshares a mount namespace, which copies the mount
    table of its parent: with thousands of pods the host has thousands of
    /run/netns mounts, and copying them made each start cost ~6 ms.  So the
    zygote moves to its own mount namespace (a slave of the host's, so
    volumes mounted later still show up) and detaches /run/netns there;
    network namespaces are then opened through a descriptor of the host
    mount namespace's root, kept open from before the move
    (/proc/self/fd/<n>/run/netns/..., which resolves in the host's mount
    table; a forked child inherits the descriptor)."""
    global HOST_ROOT
    host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        _check(_libc.unshare(CLONE_NEWNS), "unshare")
        _mount("none", "/", None, MS_REC | MS_SLAVE)
    except OSError as e:
        os.close(host_root)
        sys.stderr.write(f"zygote: keeping the host mount table: {e}\n")
        return
    HOST_ROOT = f"/proc/self/fd/{host_root}"
    # (a bind mount of the same file system, so os.path.ismount cannot tell)
    for _ in range(16):
        if _libc.umount2(b"/run/netns", MNT_DETACH) != 0:
            break


def _listen(path: str) -> socket.socket:
    """The runtime socket, bound by its name in its directory (a state
    directory may be deeper than a socket address allows)."""
    directory, name = os.path.split(os.path.abspath(path))
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(directory)
        try:
            os.unlink(name)   # left by a zygote that was SIGKILLed (the runtime holds a lock while it starts us)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(name)
        os.chmod(name, 0o600)
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    sock.listen(8)
    return sock


def _write_pid_file(path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, path)


def _remove_own_files(sock_path: str, pid_file: str) -> None:
    """On a clean exit: the socket and pid file, unless a newer zygote owns them."""
    try:
        with open(pid_file) as f:
            mine = f.read().strip() == str(os.getpid())
        if mine:
            os.unlink(sock_path)
            os.unlink(pid_file)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    """`--listen SOCK --pid-file FILE`: bind, then fork into the daemon and
    let the starter go (it waits for our exit, then connects)."""
    args = list(sys.argv[1:] if argv is None else argv)
    sock_path = args[args.index("--listen") + 1]
    pid_file = args[args.index("--pid-file") + 1]
    listener = _listen(sock_path)
    if os.fork():
        os._exit(0)
    os.setsid()
    os.chdir("/")
    _private_mount_table()
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    z = Zygote(listener)
    _write_pid_file(pid_file)
    gc.collect()
    gc.freeze()
    try:
        z.run()
    finally:
        _remove_own_files(sock_path, pid_file)


if __name__ == "__main__":
    main()
