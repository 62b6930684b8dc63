"""The zygote: one small pre-imported process that forks every container.

Why: starting a Python interpreter per container costs ~10 MB and ~30 ms;
forking a process that already imported everything costs a few hundred kB
of dirtied pages and well under a millisecond.  The zygote is started by
`Runtime` (`python -m kinns.node.zygote`), imports only what containers
need, calls `gc.freeze()` so forked children do not dirty the shared heap,
and then serves JSON lines on stdin/stdout:

  → {"op": "spawn", "id": 1, "spec": {...}}     ← {"id": 1, "pid": 1234} | {"id": 1, "error": "..."}
  ← {"ev": "exit", "pid": 1234, "code": 0, "signal": 0, "time": 1.7e9}

A spawned child joins its cgroups, enters the pod's network namespace,
unshares a mount and UTS namespace, sets the hostname, mounts a private
tmpfs holding an overlay of the host root (so writes vanish with the
container), binds /dev, mounts proc, sysfs and an empty /tmp, binds the pod's hosts/resolv.conf/hostname
files and volumes, chroots, and then execs the command or runs a built-in
server.  Setup errors come back on a close-on-exec pipe, as subprocess does.

The zygote also reaps children (it is a child subreaper, so orphans of a
container come back to it), pumps each container's stdout/stderr into a
log file in the CRI format (`<RFC3339Nano> stdout F <line>`), and, when its
stdin closes because the daemon died, kills every container's cgroup and
exits.  Nothing host-visible is mounted: every mount lives in the
container's own mount namespace and disappears with its last process.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import fcntl
import resource
import selectors
import signal
import socket
import struct
import termios
import sys
import time
import traceback
from typing import Any

from kinns.node import builtin_servers

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
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
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

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


def _setup_child(spec: dict[str, Any]) -> None:
    """Runs in the forked child: become the container.  Raises on failure."""
    for procs in spec.get("cgroups", []):
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if spec.get("netns"):
        fd = os.open(HOST_ROOT + spec["netns"], os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {spec['netns']}")
        os.close(fd)
    flags = CLONE_NEWNS | (CLONE_NEWUTS if spec.get("hostname") else 0)
    _check(_libc.unshare(flags), "unshare")
    if spec.get("hostname"):
        name = spec["hostname"].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    scratch = spec["scratch"]
    _mount("kinns", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,size={spec.get('scratch_size', '1g')}")
    for d in ("upper", "work", "root"):
        os.mkdir(f"{scratch}/{d}")
    root = f"{scratch}/root"
    _mount("kinns", root, "overlay", 0, f"lowerdir=/,upperdir={scratch}/upper,workdir={scratch}/work")
    _mount("/dev", f"{root}/dev", None, MS_BIND | MS_REC)
    _mount("shm", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("sysfs", f"{root}/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    # an image starts with an empty /tmp, not the host's
    _mount("tmp", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    # The host's named network namespaces mean nothing inside a pod; left
    # visible (as dead mount points) they make `ip` complain about peers.
    if os.path.isdir(f"{root}/run/netns"):
        _mount("netns", f"{root}/run/netns", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=4k")
    for path, text in spec.get("files", {}).items():
        dst = _in_root(root, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
    for src, dst, ro in spec.get("binds", []):
        target = _in_root(root, dst)
        _mkdirs(target, is_file=not os.path.isdir(src))
        _mount(src, target, None, MS_BIND | MS_REC)
        if ro:
            _mount(src, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chroot(root)
    os.chdir(spec.get("cwd") or "/")


def _child(spec: dict[str, Any], errw: int, out_w: int, err_w: int, in_r: int | None) -> None:
    """The forked child; never returns.  With a tty, `out_w` is the pty
    slave and becomes stdin, stdout, stderr and the controlling terminal."""
    # Everything inherited is the zygote's and shared: keep the collector
    # from walking (and so writing to) it.
    gc.freeze()
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        if spec.get("tty"):
            for fd in (0, 1, 2):
                os.dup2(out_w, fd)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        else:
            os.dup2(in_r if in_r is not None else os.open("/dev/null", os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
        _setup_child(spec)
        env = spec.get("env") or {}
        if spec.get("builtin"):
            os.closerange(3, errw)
            os.closerange(errw + 1, 65536)
            os.close(errw)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.environ.clear()
            os.environ.update(env)
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


class Zygote:
    """The event loop: requests on stdin, SIGCHLD, log pipes, error pipes."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.out = os.dup(1)
        os.dup2(2, 1)  # stray prints must not corrupt the protocol
        self.inbuf = b""
        self.pending: dict[int, tuple[int, int, bytes]] = {}  # errpipe fd -> (req id, pid, data)
        self.logs: dict[int, tuple[str, str, bytearray]] = {}  # pipe fd -> (log path, stream, partial)
        self.pipes_of: dict[int, list[int]] = {}  # pid -> its log pipe fds
        self.started: set[int] = set()  # pids we spawned (the rest are orphans)
        self.cgroups: dict[int, list[str]] = {}
        self.attach: dict[int, dict[str, Any]] = {}
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        self.sel.register(rfd, selectors.EVENT_READ, "sigchld")
        self.sel.register(0, selectors.EVENT_READ, "stdin")

    def send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            n = os.write(self.out, data)
            data = data[n:]

    # -- spawning -----------------------------------------------------------
    def spawn(self, rid: int, spec: dict[str, Any]) -> None:
        tty = bool(spec.get("tty"))
        in_r = in_w = None
        if tty:
            out_r, out_w = os.openpty()  # master, slave
            os.set_inheritable(out_w, False)
            err_r, err_w = os.pipe()  # unused: a terminal merges the streams
            in_w = out_r
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if spec.get("stdin"):
                in_r, in_w = os.pipe()
        errr, errw = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            for fd in (out_r, out_w, err_r, err_w, errr, errw, in_r, in_w):
                if fd is not None and fd != out_r:
                    os.close(fd)
            os.close(out_r)
            self.send({"id": rid, "error": f"fork: {e}"})
            return
        if pid == 0:
            _child(spec, errw, out_w, err_w, in_r)
        for fd in (out_w, err_w, errw) + ((in_r,) if in_r is not None else ()):
            os.close(fd)
        if in_w is not None and spec.get("attach"):
            self.open_attach(pid, spec["attach"], in_w, tty, bool(spec.get("stdin_once")))
        elif in_w is not None and not tty:
            os.close(in_w)
        self.started.add(pid)
        self.cgroups[pid] = spec.get("cgroups", [])
        log = spec.get("log") or "/dev/null"
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            self.logs[fd] = (log, stream, bytearray())
            self.sel.register(fd, selectors.EVENT_READ, "log")
        self.pipes_of[pid] = [out_r, err_r]
        self.pending[errr] = (rid, pid, b"")
        self.sel.register(errr, selectors.EVENT_READ, "errpipe")

    def on_errpipe(self, fd: int) -> None:
        rid, pid, data = self.pending[fd]
        chunk = os.read(fd, 4096)
        if chunk:
            self.pending[fd] = (rid, pid, data + chunk)
            return
        self.sel.unregister(fd)
        os.close(fd)
        del self.pending[fd]
        if data:
            self.send({"id": rid, "pid": pid, "error": data.decode(errors="replace")})
        else:
            self.send({"id": rid, "pid": pid})

    # -- attach ---------------------------------------------------------------
    # A container with `stdin: true` gets an abstract unix socket; the daemon
    # connects to it and sends frames: 1 byte type (0 data, 1 resize
    # "rows cols", 2 close stdin) + 4 bytes big-endian length + payload.
    # Output is not sent back: it goes to the log, which attach follows.
    def open_attach(self, pid: int, name: str, in_fd: int, tty: bool, once: bool) -> None:
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
            self.send({"ev": "exit", "pid": pid, "code": code, "signal": sig, "time": time.time()})

    # -- main loop ----------------------------------------------------------
    def on_stdin(self) -> bool:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return False
        self.inbuf += chunk
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            req = json.loads(line)
            if req.get("op") == "spawn":
                self.spawn(req["id"], req["spec"])
            elif req.get("op") == "ping":
                self.send({"id": req["id"], "pid": os.getpid()})
            elif req.get("op") == "exit":
                return False
        return True

    def shutdown(self) -> None:
        """The daemon is gone: take every container with us."""
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
                    if kind == "stdin":
                        if not self.on_stdin():
                            return
                    elif kind == "sigchld":
                        try:
                            while os.read(key.fd, 512):
                                pass
                        except BlockingIOError:
                            pass
                        self.reap()
                    elif kind == "log":
                        if key.fd in self.logs:
                            self.pump(key.fd)
                    elif kind == "errpipe":
                        if key.fd in self.pending:
                            self.on_errpipe(key.fd)
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
    network namespaces are then opened through the daemon's root
    (/proc/<daemon pid>/root/run/netns/...), which resolves in the host's
    mount namespace."""
    global HOST_ROOT
    try:
        _check(_libc.unshare(CLONE_NEWNS), "unshare")
        _mount("none", "/", None, MS_REC | MS_SLAVE)
    except OSError as e:
        sys.stderr.write(f"zygote: keeping the host mount table: {e}\n")
        return
    HOST_ROOT = f"/proc/{os.getppid()}/root"
    # (a bind mount of the same file system, so os.path.ismount cannot tell)
    for _ in range(16):
        if _libc.umount2(b"/run/netns", MNT_DETACH) != 0:
            break


def main() -> None:
    _private_mount_table()
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    z = Zygote()
    gc.collect()
    gc.freeze()
    z.run()


if __name__ == "__main__":
    main()
