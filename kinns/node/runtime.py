"""The container runtime the kubelet drives: start, stop, wait, logs, exec.

Division of labour: `sandbox` writes what a pod's containers share,
`images` decides what a container runs, `security` decides how it is
fenced in (capabilities, user, the host paths it must not see), the zygote
(`zygote.py`, the node's runtime daemon) forks, fences in and reaps
containers and pumps their output into log files, `cgroups` tracks and
limits their processes.  `Runtime` ties them together behind a small
synchronous, thread-safe API.

Containers outlive the process that holds a `Runtime`, as they outlive a
kubelet: the zygote is a daemon of its own listening on
`<state_dir>/zygote.sock`, and `Runtime(state_dir)` connects to the one
that answers there (or starts one).  The container table (ids, pods, PIDs,
states, exit codes, logs, cgroups) and the pods' PID-namespace holders are
kept in `<state_dir>/containers.jsonl` (see `journal.py`) whenever they
change, so a new `Runtime` on the same directory, in a new process, finds
every container again with the same PIDs, and hears the exits that
happened while nobody was connected.  `detach()` lets go and leaves the
containers running; `close()` shuts the zygote down and they die.

Lifecycle of one container run:
  start_container() → running (pid) → exited (exit code, signal, reason)
A restart is a new run with `restart_count + 1`: a fresh private root (so
what the previous run wrote outside volumes is gone) and a new log file; the
previous log stays for `kubectl logs --previous`.  Deciding when to
restart (restartPolicy, back-off) is the kubelet's job.

Graceful stop follows the kubelet: SIGTERM to the main process, up to the
grace period, then SIGKILL to everything in the container's cgroup.  The
main process is PID 1 of its PID namespace, so, as in any container, a
SIGTERM it has no handler for is ignored (a `sleep` waits out the grace
period); the stand-in for a web server image (busybox httpd for nginx),
whose real process would exit at once, is killed at once instead.  Exit
codes follow containerd: a signal N gives 128+N; a command that cannot be
executed gives 128 with reason StartError.

Every pod's cgroup has a pids limit (`pod_pids_limit`, default
`DEFAULT_POD_PIDS_LIMIT` = 1024): upstream's kubelet leaves `podPidsLimit`
unlimited (-1) by default, but all kinns nodes share one host's PID table,
so kinns sets what CRI-O long used as its default `pids_limit`.  A fork
bomb then fails to fork inside its pod while the node and other pods go on.

`exec` runs the command the way `kubectl exec` does upstream: in the
container's cgroups and namespaces (nsenter) with its user, groups,
capabilities and no_new_privs (setpriv), and a terminal from the
container's own devpts.  The runtime knows every container by its host PID.

`cleanup(state_dir)` removes everything a runtime created (the zygote,
processes, cgroups, stray mounts) whether or not anything is connected.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from kinns.node import images, security
from kinns.node.cgroups import Cgroups, Limits
from kinns.node.envvars import expand
from kinns.node.journal import Journal, Table, write_atomic
from kinns.node.sandbox import Sandbox

DEFAULT_POD_PIDS_LIMIT = 1024
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
SETSID = shutil.which("setsid") or "/usr/bin/setsid"
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
_TITLE_ROOM = 160
# `sh -c` run by exec: join the container's cgroups (the paths before `--`)
# before anything forks, then become the rest of the arguments.
_JOIN_CGROUPS = 'while [ "$1" != -- ]; do { echo $$ > "$1"; } 2>/dev/null; shift; done; shift; exec "$@"'

ExitCallback = Callable[["ContainerStatus"], None]


@dataclass
class Mount:
    """A volume mount: host path bound at container path."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass
class ContainerStatus:
    """One run of one container, as the kubelet needs it for pod status."""

    id: str
    name: str
    pod_uid: str
    restart_count: int
    image: str
    state: str = "running"          # running | exited
    pid: int = 0
    exit_code: int | None = None
    signal: int = 0
    reason: str = ""                # Completed | Error | OOMKilled | StartError
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    log_path: str = ""
    cgroup: str = ""
    env: dict[str, str] = field(default_factory=dict)
    attachable: bool = False
    proc_security: security.ProcessSecurity = field(default_factory=security.ProcessSecurity)
    sigterm_ends: bool = False      # a stand-in whose real image exits on SIGTERM (see stop_container)

    def to_json(self) -> dict[str, Any]:
        """Everything a runtime in another process needs to drive this run."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["proc_security"] = self.proc_security._asdict()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ContainerStatus":
        d = dict(d)
        sec = dict(d.pop("proc_security", None) or {})
        sec["groups"] = tuple(sec.get("groups") or (0,))
        if sec.get("caps") is not None:
            sec["caps"] = tuple(sec["caps"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known}, proc_security=security.ProcessSecurity(**sec))


class AttachHandle:
    """A connection to a container's stdin/terminal (see `Runtime.attach`).
    With `stdinOnce`, closing the first attachment closes the container's
    stdin, as upstream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _frame(self, kind: int, payload: bytes) -> None:
        self.sock.sendall(bytes([kind]) + struct.pack(">I", len(payload)) + payload)

    def write(self, data: bytes) -> None:
        self._frame(0, data)

    def resize(self, rows: int, cols: int) -> None:
        self._frame(1, f"{rows} {cols}".encode())

    def close_stdin(self) -> None:
        self._frame(2, b"")

    def close(self) -> None:
        self.sock.close()


@dataclass
class ExecHandle:
    """A running exec: `proc` has stdin/stdout/stderr pipes, or with a tty
    all three are `pty_master` (read output, write input; resize with
    `resize`)."""

    proc: subprocess.Popen[bytes]
    pty_master: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        if self.pty_master is not None:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(self.pty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ZygoteError(RuntimeError):
    pass


class _ZygoteClient:
    """One connection to the node's zygote, speaking its JSON-lines protocol;
    a reader thread dispatches replies to waiting callers and exit events to
    the runtime.  `lost` is called when the zygote itself went away (not
    when we let go, nor when another runtime took our place)."""

    def __init__(self, sock: socket.socket, on_exit: Callable[[int, str, int, int, float], None],
                 on_lost: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self._rfile = sock.makefile("rb")
        self._on_exit = on_exit
        self._on_lost = on_lost
        self.closing = False
        self.replaced = False
        self.eof = False
        self._lock = threading.Lock()
        self._next = 0
        self._waiters: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._reader = threading.Thread(target=self._read, name="kinns-zygote-reader", daemon=True)
        self._reader.start()
        try:
            self.pid = int(self.request("ping", timeout=10).get("pid") or 0)
        except ZygoteError:
            self.detach()
            raise

    def _read(self) -> None:
        try:
            for line in self._rfile:
                msg = json.loads(line)
                ev = msg.get("ev")
                if ev == "exit":
                    self._on_exit(msg["pid"], str(msg.get("tag") or ""), msg["code"], msg["signal"], msg["time"])
                    continue
                if ev == "replaced":
                    self.replaced = True
                    continue
                with self._lock:
                    w = self._waiters.pop(msg.get("id"), None)
                if w:
                    w[1].append(msg)
                    w[0].set()
        except (OSError, ValueError):
            pass
        with self._lock:
            self.eof = True
            for ev, box in self._waiters.values():
                box.append({"error": "zygote exited"})
                ev.set()
            self._waiters.clear()
        if self._on_lost and not self.closing and not self.replaced:
            self._on_lost()

    def request(self, op: str, timeout: float = 30, **kw: Any) -> dict[str, Any]:
        ev: threading.Event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            if self.eof:
                raise ZygoteError("zygote is gone")
            self._next += 1
            rid = self._next
            self._waiters[rid] = (ev, box)
            try:
                self.sock.sendall((json.dumps({"op": op, "id": rid, **kw}) + "\n").encode())
            except OSError as e:
                self._waiters.pop(rid, None)
                raise ZygoteError(f"zygote is gone: {e}") from e
        if not ev.wait(timeout):
            raise ZygoteError(f"zygote did not answer {op} in {timeout}s")
        return box[0]

    def alive(self) -> bool:
        return not self.eof and self._reader.is_alive()

    def detach(self) -> None:
        """Let go of the zygote; it and its containers go on."""
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if threading.current_thread() is not self._reader:
            self._reader.join(10)
        self._rfile.close()
        self.sock.close()

    def shutdown(self) -> None:
        """Have the zygote kill every container and exit, and wait for it."""
        self.closing = True
        if not self.replaced:
            try:
                self.request("shutdown", timeout=10)
            except ZygoteError:
                pass
            if self.pid and not _gone(self.pid, 10):
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                _gone(self.pid, 5)
        self.detach()


def _gone(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to end (or turn zombie)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in (b"Z", b"X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _connect_unix(path: Path) -> socket.socket:
    """Connect to a Unix socket, also when its path is longer than a socket
    address allows (through an O_PATH descriptor of the socket file)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(str(path))) < 100:
            s.connect(str(path))
        else:
            fd = os.open(path, os.O_PATH)
            try:
                s.connect(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
    except OSError:
        s.close()
        raise
    return s


def _start_zygote(state_dir: Path) -> None:
    """Start the node's zygote daemon; returns once its socket listens."""
    log_path = state_dir / "zygote.log"
    env = dict(os.environ)
    env["MALLOC_ARENA_MAX"] = "1"  # threads of built-in servers share one malloc arena
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2])] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    with open(log_path, "ab") as errlog:
        # The last argument only reserves room: a built-in server shows its
        # image's command line there (see zygote._set_cmdline).
        starter = subprocess.Popen(
            [sys.executable, "-S", "-m", "kinns.node.zygote", "--listen", str(state_dir / "zygote.sock"),
             "--pid-file", str(state_dir / "zygote.pid"), " " * _TITLE_ROOM],
            stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog, env=env, close_fds=True,
            start_new_session=True)
    try:
        code = starter.wait(60)
    except subprocess.TimeoutExpired:
        starter.kill()
        starter.wait()
        code = -9
    if code != 0:
        raise ZygoteError(f"the zygote did not start (exit status {code}); see {log_path}")


def default_cgroup_parent(state_dir: Path) -> str:
    """A cgroup parent unique to a state directory, so two runtimes (or two
    test runs) never touch each other's cgroups."""
    return "kinns/rt-" + hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:12]


class Runtime:
    """Containers of all pods on one node."""

    def __init__(self, state_dir: Path, *, cgroup_parent: str | None = None,
                 on_exit: ExitCallback | None = None, pod_pids_limit: int = DEFAULT_POD_PIDS_LIMIT) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.scratch = self.state_dir / "scratch"   # where each container's private tmpfs is mounted
        self.cgroup_parent = cgroup_parent or default_cgroup_parent(self.state_dir)
        self.cgroups = Cgroups(self.cgroup_parent)
        self.on_exit = on_exit
        self.pod_pids_limit = pod_pids_limit
        self.view = host_view(self.state_dir)
        self._view_spec: dict[str, Any] = dict(self.view.to_spec(), upper=upper_plan(self.view))
        self.users = _user_db()
        self.last_cap = _last_cap()
        self._lock = threading.Condition()
        self._containers: dict[str, ContainerStatus] = {}
        self._by_pid: dict[int, str] = {}
        self._early_exits: dict[int, tuple[int, int, float]] = {}
        self._pods: set[str] = set()                 # pod UIDs with a cgroup (and IPC namespace) made
        self._holders: dict[str, int] = {}           # pod UID -> PID 1 of its shared PID namespace
        self._holder_pids: set[int] = set()          # read by the zygote reader thread without a lock
        self._pod_lock = threading.Lock()            # pod cgroups
        self._holder_lock = threading.Lock()         # makes holders one at a time (held across a zygote request)
        # Atomic: `kinns exec pod/`, cleanup and tests read it while a restarted kubelet rewrites it.
        write_atomic(self.state_dir / "runtime.json", json.dumps({"cgroup_parent": self.cgroup_parent}))
        self._journal = Journal(self.state_dir / "containers.jsonl", self._table)
        self._restore(self._journal.load())
        self._zygote_lock = threading.Lock()
        self._detached = False
        self._zygote, fresh = self._connect()
        self._adopt(fresh)

    # -- the zygote and the table on disk ------------------------------------------
    def _connect(self) -> tuple[_ZygoteClient, bool]:
        """Connect to the node's zygote, starting it when none answers (one
        runtime at a time decides, under a lock file); True if started."""
        home = self.state_dir.absolute()
        with open(home / "zygote.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fresh = False
            try:
                sock = _connect_unix(home / "zygote.sock")
            except OSError:
                _start_zygote(home)
                fresh = True
                sock = _connect_unix(home / "zygote.sock")
            return _ZygoteClient(sock, self._exited, self._zygote_lost), fresh

    def _table(self) -> Table:
        """What the journal keeps: every container run, the pods with a
        cgroup, the pods' PID-namespace holders."""
        return {"container": {cid: st.to_json() for cid, st in list(self._containers.items())},
                "pod": {uid: True for uid in list(self._pods)},
                "holder": {uid: pid for uid, pid in list(self._holders.items())}}

    def _save(self, st: ContainerStatus) -> None:
        self._journal.put("container", st.id, st.to_json())

    def _restore(self, table: Table) -> None:
        for cid, d in table.get("container", {}).items():
            st = ContainerStatus.from_json(d)
            self._containers[cid] = st
            if st.state == "running" and st.pid:
                self._by_pid[st.pid] = cid
        self._pods.update(table.get("pod", {}))
        self._holders.update({uid: int(pid) for uid, pid in table.get("holder", {}).items()})
        self._holder_pids.update(self._holders.values())

    def _adopt(self, fresh: bool) -> None:
        """Square the table from disk with the zygote's live children.

        Exits the zygote kept for us have been delivered by now (they come
        before the `list` reply).  A container still marked running that is
        not among the children ended unseen: with a fresh zygote, because
        the old one died (taking it along); else its exit was lost.  A child
        the table does not know was started by a runtime that died before
        recording it: nobody will ever drive it, so it is killed, as the
        kubelet's garbage collector removes unknown containers."""
        try:
            reply = self._zygote.request("list")
        except ZygoteError:
            return
        live = {int(c["pid"]): c for c in reply.get("children", [])}
        now = time.time()
        lost: list[ContainerStatus] = []
        with self._lock:
            for st in self._containers.values():
                child = live.get(st.pid)
                if st.state != "running" or (child is not None and child.get("tag") == st.id):
                    continue
                self._by_pid.pop(st.pid, None)
                st.state, st.signal, st.finished_at = "exited", 0, now
                if fresh:  # as containerd reports containers after a reboot
                    st.exit_code, st.reason, st.message = 255, "Unknown", ""
                else:
                    st.exit_code, st.reason = 137, "ContainerStatusUnknown"
                    st.message = "The container could not be located when the pod was terminated"
                lost.append(st)
                self._save(st)
            self._lock.notify_all()
            known = {st.id: st.pid for st in self._containers.values() if st.state == "running"}
        with self._holder_lock:
            for uid, pid in list(self._holders.items()):
                if live.get(pid, {}).get("tag") != f"holder/{uid}":
                    self._drop_holder(uid)
            known.update({f"holder/{uid}": pid for uid, pid in self._holders.items()})
        for pid, child in live.items():
            if known.get(str(child.get("tag") or "")) != pid:
                self._kill_orphan(pid, child.get("cgroups") or [])
        for st in lost:
            self._after_exit(st)

    def _kill_orphan(self, pid: int, procs: list[str]) -> None:
        marker = f"/{self.cgroup_parent}/"
        for p in procs[:1]:
            if marker in p:
                self.cgroups.remove(os.path.dirname(p.split(marker, 1)[1]), timeout=1.0)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    def _drop_holder(self, uid: str) -> None:
        pid = self._holders.pop(uid, None)
        if pid is not None:
            self._holder_pids.discard(pid)
            self._journal.put("holder", uid, None)

    def _zygote_lost(self) -> None:
        """The connection ended without our asking.  If the zygote lives, it
        dropped us (we left its messages unread too long): connect again,
        and it replays what we missed.  Else it died under us (it never
        should): its containers died with it (they carry PDEATHSIG), so
        record them as killed; the next start brings up a new zygote."""
        gone = self._zygote
        if gone.pid and not _gone(gone.pid, 2.0):
            with self._zygote_lock:
                if self._zygote is gone and not self._detached:
                    try:
                        self._zygote, _ = self._connect()
                    except (OSError, ZygoteError):
                        pass
            return
        now = time.time()
        with self._pod_lock:
            for uid in self._pods:  # the pods' IPC namespaces went with it
                self._journal.put("pod", uid, None)
            self._pods.clear()
        with self._holder_lock:
            for uid in list(self._holders):
                self._drop_holder(uid)
        with self._lock:
            lost = [c for c in self._containers.values() if c.state == "running"]
            for st in lost:
                self._by_pid.pop(st.pid, None)
                st.state, st.exit_code, st.signal, st.finished_at = "exited", 137, signal.SIGKILL, now
                st.reason, st.message = "Error", "the kinns runtime's zygote process died"
                self._save(st)
            self._lock.notify_all()
        for st in lost:
            self._after_exit(st)

    def _zygote_client(self) -> _ZygoteClient:
        with self._zygote_lock:
            if self._detached:
                raise ZygoteError("this runtime was detached from its zygote")
            if not self._zygote.alive():
                if self._zygote.replaced:
                    raise ZygoteError("another runtime took over this node's zygote")
                self._zygote.closing = True
                self._zygote, _ = self._connect()
            return self._zygote

    # -- containers -----------------------------------------------------------
    def start_container(self, sandbox: Sandbox, container: dict[str, Any], *, env: dict[str, str] | None = None,
                        mounts: Sequence[Mount] = (), restart_count: int = 0,
                        pid_namespace: str | None = None) -> ContainerStatus:
        """Start one run of `container` (a pod spec container dict) in `sandbox`.

        `pid_namespace` (a /proc/<pid>/ns/pid path) puts it in another
        container's PID namespace, as an ephemeral container with a
        targetContainerName; by default it gets the pod's (see
        `_pid_namespace`).

        `env` is the container's final environment (service variables and
        `env` entries already merged, see `envvars`); `$(VAR)` references in
        command/args are expanded against it here.  Raises
        `images.ImageError` when the container cannot run at all (a waiting
        reason for the pod status); a command that fails to execute gives an
        exited status with exit code 128 and reason StartError."""
        env = dict(env or {})
        env.setdefault("PATH", images.DEFAULT_PATH)
        env.setdefault("HOSTNAME", sandbox.hostname or sandbox.name)
        c = dict(container)
        for key in ("command", "args"):
            if c.get(key):
                c[key] = [expand(str(x), env) for x in c[key]]
        beh = images.resolve(c, sandbox.name, sandbox.ip)
        name = container["name"]
        try:
            sec = security.container_security(
                sandbox.security_context, container, image_uid=security.IMAGE_USERS.get(images.repository(beh.image), 0),
                users=self.users, last_cap=self.last_cap,
                pod=security.pod_ref(sandbox.name, sandbox.namespace, sandbox.uid))
        except security.ContainerConfigError as e:
            raise images.ImageError(e.reason, e.message) from None
        cid = secrets.token_hex(32)
        log = sandbox.log_path(name, restart_count)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        # Keep this run and the previous one (before a second restart there
        # is nothing older, so no directory scan on a pod's first start).
        for old in (log.parent.glob("*.log") if restart_count >= 2 else ()):
            try:
                if int(old.stem) < restart_count - 1:
                    old.unlink()
            except ValueError:
                pass
        # One mount point serves every container: each child mounts its
        # tmpfs there inside its own mount namespace, so none sees another's,
        # and no directory is made per run (on the nojournal ext4 this runs
        # on, a new inode costs ~0.4 ms of kernel time after many deletions).
        scratch = self.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self._ensure_pod(sandbox)
        cg_rel = f"pod{sandbox.uid}/{name}-{restart_count}"
        procs = self.cgroups.create(cg_rel, Limits.from_container(container))
        # containerd mounts hostname and resolv.conf read-only with a read-only root
        binds = [(src, dst, sec.read_only_root and dst != "/etc/hosts") for src, dst, _ in sandbox.etc_binds()]
        binds += [(m.host_path, m.container_path, m.read_only) for m in mounts]
        spec: dict[str, Any] = {
            "netns": sandbox.netns, "hostname": sandbox.hostname, "scratch": str(scratch),
            "binds": binds, "files": beh.files, "cgroups": procs, "log": str(log), "env": env,
            "cwd": container.get("workingDir") or "/",
            "tty": bool(container.get("tty")) and bool(container.get("stdin")),
            "stdin": bool(container.get("stdin")), "stdin_once": bool(container.get("stdinOnce")),
            "attach": f"kinns-attach/{cid}" if container.get("stdin") else "",
            "security": sec.to_spec(), "view": self._view_spec,
            "ipc": "" if sandbox.host_ipc else sandbox.uid, "tag": cid,
        }
        if beh.builtin:
            spec["builtin"], spec["args"] = beh.builtin, beh.args
            spec["title"] = _builtin_title(beh)
        else:
            spec["argv"] = beh.argv
        st = ContainerStatus(id=cid, name=name, pod_uid=sandbox.uid, restart_count=restart_count, image=beh.image,
                             started_at=time.time(), log_path=str(log), cgroup=cg_rel, env=env,
                             attachable=bool(container.get("stdin")), proc_security=sec,
                             sigterm_ends=_web_stand_in(beh))
        with self._lock:
            self._containers[cid] = st
        try:
            spec["pidns"] = pid_namespace if pid_namespace is not None else self._pid_namespace(sandbox)
            reply = self._zygote_client().request("spawn", spec=spec)
        except ZygoteError as e:
            reply = {"error": str(e)}
        pid = reply.get("pid", 0)
        with self._lock:
            st.pid = pid
            if pid:
                self._by_pid[pid] = cid
            if "error" in reply:
                st.state, st.exit_code, st.reason, st.message = "exited", 128, "StartError", reply["error"]
                st.finished_at = time.time()
                self._by_pid.pop(pid, None)
                self._early_exits.pop(pid, None)
                self._lock.notify_all()
            elif pid in self._early_exits:
                self._finish(st, *self._early_exits.pop(pid))
            self._save(st)
        if st.state == "exited":
            self._after_exit(st)
        return st

    def _ensure_pod(self, sandbox: Sandbox) -> None:
        """The pod cgroup with its pids limit, once per pod."""
        if sandbox.uid in self._pods:
            return
        with self._pod_lock:
            if sandbox.uid not in self._pods:
                self.cgroups.create(f"pod{sandbox.uid}", Limits(pids=self.pod_pids_limit or None))
                self._pods.add(sandbox.uid)
                self._journal.put("pod", sandbox.uid, True)

    def _pid_namespace(self, sandbox: Sandbox) -> str:
        """Where a container's processes live: the node's PID namespace
        (hostPID), the pod's shared one (shareProcessNamespace, held by a
        pause-like PID 1 the zygote forks), or a new one per container."""
        if sandbox.host_pid:
            return ""
        if not sandbox.share_pid:
            return "new"
        with self._holder_lock:
            pid = self._holders.get(sandbox.uid)
            if pid and Path(f"/proc/{pid}").exists():
                return f"/proc/{pid}/ns/pid"
            spec = {"init": True, "pidns": "new", "ipc": "" if sandbox.host_ipc else sandbox.uid,
                    "cgroups": self.cgroups.create(f"pod{sandbox.uid}/sandbox"), "scratch": str(self.scratch),
                    "log": "", "tag": f"holder/{sandbox.uid}"}
            reply = self._zygote_client().request("spawn", spec=spec)
            if "error" in reply or not reply.get("pid"):
                raise ZygoteError(f"cannot start the pod's sandbox process: {reply.get('error')}")
            self._holders[sandbox.uid] = reply["pid"]
            self._holder_pids.add(reply["pid"])
            self._journal.put("holder", sandbox.uid, reply["pid"])
            return f"/proc/{reply['pid']}/ns/pid"

    def _exited(self, pid: int, tag: str, code: int, sig: int, when: float) -> None:
        """Called by the zygote reader thread for each container exit, also
        for exits replayed on connect that this runtime may know already:
        `tag` (the container ID) says whose exit it is."""
        # (no lock: _pid_namespace waits for a reply this thread delivers)
        if tag.startswith("holder/") or (not tag and pid in self._holder_pids):
            self._holder_pids.discard(pid)
            return
        with self._lock:
            st = self._containers.get(tag) if tag else self._containers.get(self._by_pid.get(pid, ""))
            if st is None or st.state == "exited":  # forgotten, or a StartError already recorded
                return
            if st.pid != pid:  # the spawn reply is not taken yet: start_container finishes it
                self._early_exits[pid] = (code, sig, when)
                return
            self._by_pid.pop(pid, None)
            self._finish(st, code, sig, when)
            self._save(st)
        self._after_exit(st)

    def _finish(self, st: ContainerStatus, code: int, sig: int, when: float) -> None:
        st.state, st.exit_code, st.signal, st.finished_at = "exited", code, sig, when
        if self.cgroups.oom_killed(st.cgroup):
            st.reason = "OOMKilled"
        else:
            st.reason = "Completed" if code == 0 else "Error"
        self._lock.notify_all()

    def _after_exit(self, st: ContainerStatus) -> None:
        """The main process is gone: so is everything it left behind."""
        self.cgroups.remove(st.cgroup, timeout=1.0)
        if self.on_exit:
            try:
                self.on_exit(st)
            except Exception:  # a kubelet callback must not kill the reader thread
                pass

    def status(self, container_id: str) -> ContainerStatus:
        with self._lock:
            return self._containers[container_id]

    def containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        with self._lock:
            return [c for c in self._containers.values() if pod_uid is None or c.pod_uid == pod_uid]

    def wait(self, container_id: str, timeout: float | None = None) -> int | None:
        """Block until the run exits; its exit code, or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            st = self._containers[container_id]
            while st.state != "exited":
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._lock.wait(left)
            return st.exit_code

    def signal(self, container_id: str, sig: int) -> None:
        st = self.status(container_id)
        if st.state == "running" and st.pid:
            try:
                os.kill(st.pid, sig)
            except ProcessLookupError:
                pass

    def stop_container(self, container_id: str, grace_period: float = 30.0) -> ContainerStatus:
        """SIGTERM, wait up to `grace_period` seconds, then SIGKILL the
        container's whole cgroup.  Returns the final status."""
        st = self.status(container_id)
        if st.state == "running":
            if grace_period > 0:
                self.signal(container_id, signal.SIGTERM)
                if not st.sigterm_ends:
                    self.wait(container_id, grace_period)
            if st.state == "running":
                self.cgroups.kill(st.cgroup)
                self.signal(container_id, signal.SIGKILL)
                self.wait(container_id, 10)
        return st

    def remove_container(self, container_id: str) -> None:
        """Forget an exited run (its log file stays until the pod goes)."""
        with self._lock:
            st = self._containers.get(container_id)
            if st is None or st.state != "exited":
                return
            del self._containers[container_id]
            self._journal.put("container", container_id, None)

    # -- pods -------------------------------------------------------------------
    def stop_pod(self, sandbox: Sandbox, grace_period: float = 30.0) -> None:
        """Stop every container of the pod in parallel, as the kubelet does."""
        running = [c for c in self.containers(sandbox.uid) if c.state == "running"]
        threads = [threading.Thread(target=self.stop_container, args=(c.id, grace_period)) for c in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.cgroups.remove(f"pod{sandbox.uid}")  # the sandbox holder too
        with self._holder_lock:
            self._drop_holder(sandbox.uid)
        with self._pod_lock:
            if sandbox.uid in self._pods:
                self._pods.discard(sandbox.uid)
                self._journal.put("pod", sandbox.uid, None)

    def remove_pod(self, sandbox: Sandbox) -> None:
        """Stop (no grace) and forget the pod, and delete its directory."""
        self.stop_pod(sandbox, 0)
        with self._lock:
            for cid in [c.id for c in self._containers.values() if c.pod_uid == sandbox.uid]:
                del self._containers[cid]
                self._journal.put("container", cid, None)
        try:
            self._zygote_client().request("forget", pod=sandbox.uid)  # its IPC namespace
        except ZygoteError:
            pass
        from kinns.node.sandbox import remove_sandbox_dir
        remove_sandbox_dir(sandbox)

    def attach(self, container_id: str) -> "AttachHandle":
        """Connect to the stdin (or terminal) of a container started with
        `stdin: true` (`kubectl attach`, `kubectl run -it`).  Its output is
        in the log: follow it with `logs.read_log(..., follow=True)`."""
        st = self.status(container_id)
        if st.state != "running":
            raise RuntimeError(f"container {st.name} is not running")
        if not st.attachable:
            raise RuntimeError(f"container {st.name} was not started with stdin: true")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0kinns-attach/" + container_id)
        return AttachHandle(s)

    # -- logs and exec -----------------------------------------------------------
    @staticmethod
    def log_path(sandbox: Sandbox, container: str, restart_count: int) -> Path:
        """The CRI-format log of a run (`restart_count - 1` is `--previous`)."""
        return sandbox.log_path(container, restart_count)

    def _exec_argv(self, st: ContainerStatus, argv: Sequence[str], tty: bool = False) -> list[str]:
        """sh (joins the container's cgroups) → nsenter (its namespaces and
        root) → setpriv (its identity; dies with nsenter) → with a terminal,
        setsid -c (a session inside the container's PID namespace, so a
        shell can make its process group the terminal's) → `argv`."""
        if st.state != "running" or not st.pid:
            raise RuntimeError(f"container {st.name} is not running")
        procs = [str(d / "cgroup.procs") for d in self.cgroups.dirs(st.cgroup)]
        inner = [NSENTER, "-t", str(st.pid), "-n", "-u", "-i", "-p", "-m", "-r", "-w", "--",
                 *security.setpriv_argv(st.proc_security, SETPRIV), *([SETSID, "-c"] if tty else []), *argv]
        return ["/bin/sh", "-c", _JOIN_CGROUPS, "kinns-exec", *procs, "--", *inner]

    def exec(self, container_id: str, argv: Sequence[str], *, tty: bool = False,
             env: dict[str, str] | None = None) -> ExecHandle:
        """Run `argv` in the container's namespaces, root and cgroup, with its
        environment and identity.  Without `tty` the handle's proc has
        stdin/stdout/stderr pipes; with `tty` they are one pseudo-terminal
        (`pty_master`) of the container's devpts."""
        st = self.status(container_id)
        cmd = self._exec_argv(st, argv, tty)
        full_env = dict(st.env)
        full_env.update(env or {})
        if tty:
            master, slave = _container_pty(st.pid)
            full_env.setdefault("TERM", "xterm")
            proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=full_env, close_fds=True,
                                    start_new_session=True)
            os.close(slave)
            return ExecHandle(proc, master)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=full_env, close_fds=True)
        return ExecHandle(proc)

    def exec_sync(self, container_id: str, argv: Sequence[str], *, input: bytes | None = None,
                  timeout: float | None = None) -> ExecResult:
        """Run `argv` in the container and collect its output and exit code
        (probes, `kubectl exec` without -i)."""
        h = self.exec(container_id, argv)
        try:
            out, err = h.proc.communicate(input, timeout)
        except subprocess.TimeoutExpired:
            h.proc.kill()
            out, err = h.proc.communicate()
        code = h.proc.returncode
        return ExecResult(code if code >= 0 else 128 - code, out, err)

    # -- shutdown -------------------------------------------------------------------
    def detach(self) -> None:
        """Let go of the zygote and leave every container running (a kubelet
        that stops): a new `Runtime` on this state directory takes over."""
        with self._zygote_lock:
            self._detached = True
            self._zygote.detach()
        self._journal.close()

    def close(self) -> None:
        """Kill every container and the zygote, remove cgroups."""
        with self._zygote_lock:
            self._detached = True
            if self._zygote.replaced:  # they are another runtime's now
                self._zygote.detach()
                self._journal.close()
                return
            self._zygote.shutdown()
        self.cgroups.remove("")
        self._journal.remove()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# what the real images run, as `ps` in the container shows it
_ENTRYPOINTS = {"netexec": ["/agnhost", "netexec"], "serve-hostname": ["/agnhost", "serve-hostname"],
                "pause": ["/pause"], "hello-app": ["./hello-app"]}


def _builtin_title(beh: images.Behaviour) -> list[str]:
    entry = _ENTRYPOINTS.get(beh.builtin)
    return [*entry, *beh.args] if entry else []


def _web_stand_in(beh: images.Behaviour) -> bool:
    """busybox httpd standing in for nginx/httpd: the real server exits on
    SIGTERM, busybox httpd as PID 1 would ignore it."""
    return beh.argv[:2] == ["busybox", "httpd"] and bool(beh.files)


def _container_pty(pid: int) -> tuple[int, int]:
    """A pty of the container's own devpts (master, slave), as runc makes
    one for `exec -t`; the host's when the container has none."""
    try:
        master = os.open(f"/proc/{pid}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        import pty
        return pty.openpty()
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        os.close(master)
        raise
    return master, slave


def host_view(state_dir: Path) -> security.FilesystemView:
    """What containers of a runtime under `state_dir` must not see of this
    host, and what they need from it: the Python installation and the kinns
    source tree that built-in components (kube-proxy, DNS) run from."""
    dirs, patterns = security.hidden_paths(os.environ, [str(state_dir)])
    files = [f for p in patterns for f in (glob.glob(p) if "*" in p else [p])]
    keep = [str(Path(__file__).resolve().parents[2]), sys.prefix, sys.exec_prefix, sys.base_prefix,
            sys.base_exec_prefix]
    real = [os.path.realpath(p) for p in dirs if os.path.isdir(p)]
    return security.filesystem_view(real, [os.path.realpath(f) for f in files if os.path.isfile(f)],
                                     [os.path.realpath(k) for k in keep])


def upper_plan(view: security.FilesystemView) -> list[list[Any]]:
    """What the zygote makes in each container's upper layer to hide host
    paths, worked out once: `[path, kind, mode, uid, gid]`, parents first;
    kind `d` a directory on the way (the host's attributes, which the merged
    directory shows), `o` an opaque directory, `f` an empty file.  A hidden
    directory holding a kept path is made traversable (0755)."""
    plan: list[list[Any]] = []
    made: set[str] = set()

    def add(path: str, kind: str, st: os.stat_result, mode: int | None = None) -> None:
        cur = ""
        for part in path.strip("/").split("/")[:-1]:
            cur += "/" + part
            if cur not in made:
                pst = os.stat(cur)
                plan.append([cur, "d", pst.st_mode & 0o7777, pst.st_uid, pst.st_gid])
                made.add(cur)
        plan.append([path, kind, (st.st_mode & 0o7777) if mode is None else mode, st.st_uid, st.st_gid])
        made.add(path)

    for d in view.opaque_dirs:
        try:
            st = os.stat(d)
        except OSError:
            continue
        holds_kept = any(k.startswith(d.rstrip("/") + "/") for k in view.keep)
        add(d, "o", st, 0o755 if holds_kept else None)
    for f in view.empty_files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        add(f, "f", st)
    for k in view.keep:  # mount points for the kept paths, made in the upper layer (an overlay mkdir costs more)
        if not os.path.isdir(k):
            continue
        cur = ""
        for part in k.strip("/").split("/"):
            cur += "/" + part
            if cur not in made and any(_inside(cur, d) for d in view.opaque_dirs):
                plan.append([cur, "d", 0o755, 0, 0])
                made.add(cur)
    return plan


def _inside(path: str, top: str) -> bool:
    return path.startswith(top.rstrip("/") + "/")


def _user_db() -> security.UserDb:
    try:
        return security.UserDb.parse(Path("/etc/passwd").read_text(), Path("/etc/group").read_text())
    except OSError:
        return security.UserDb()


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return len(security.CAPABILITIES) - 1


def cleanup(state_dir: Path) -> list[str]:
    """Remove what runtimes under `state_dir` left on the host, whether or
    not anything is connected to them: their zygote daemons, container
    processes, kinns cgroups and any mount below the state directory.  A
    runtime directory per node below `state_dir` (`<state_dir>/<node>/`) is
    cleaned up too.  Returns what it removed."""
    state_dir = Path(state_dir)
    done: list[str] = []
    for zpid in sorted(_zygotes_under(state_dir)):
        try:
            os.kill(zpid, signal.SIGKILL)
            done.append(f"zygote {zpid}")
        except OSError:
            pass
    for home in [state_dir, *sorted(p.parent for p in state_dir.glob("*/runtime.json"))]:
        try:
            parent = json.loads((home / "runtime.json").read_text())["cgroup_parent"]
        except (OSError, ValueError, KeyError):
            parent = default_cgroup_parent(home)
        cg = Cgroups(parent)
        if cg.pids():
            done.append(f"processes {sorted(cg.pids())}")
        if cg.dirs(""):
            cg.remove("")
            done.append(f"cgroup {parent}")
    prefix = str(state_dir.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        if subprocess.run(["umount", "-l", m], capture_output=True).returncode == 0:
            done.append(f"mount {m}")
    return done


def _zygotes_under(state_dir: Path) -> set[int]:
    """Zygote daemons serving a socket below `state_dir`: named by their
    pid files, and found by their command line (a pid file may be missing
    if the daemon died young, or stale)."""
    prefixes = {os.fsencode(str(d).rstrip("/") + "/") for d in (state_dir.absolute(), state_dir.resolve())}
    found: set[int] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kinns.node.zygote" in argv and "--listen".encode() in argv:
            sock = argv[argv.index(b"--listen") + 1] if argv.index(b"--listen") + 1 < len(argv) else b""
            if any(sock.startswith(p) for p in prefixes):
                found.add(int(pid))
    for pid_file in [state_dir / "zygote.pid", *state_dir.glob("*/zygote.pid")]:
        try:
            zpid = int(pid_file.read_text())
            if b"kinns.node.zygote" in Path(f"/proc/{zpid}/cmdline").read_bytes():
                found.add(zpid)
        except (OSError, ValueError):
            pass
    return found
