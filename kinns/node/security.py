"""What fences a container in: capabilities, identity, and the filesystem view.

A kinns container is a host process, so everything a container runtime
puts around a container has to be put around that process.  This module
decides *what* that is, as plain data, from the pod spec and a few facts
about the host; the zygote (`zygote.py`) carries it out in the forked
child, and the runtime (`runtime.py`) passes it along and wraps `exec`
with the same identity.  Nothing here touches the system: every function
is pure and unit-tested (tests/unit/test_security.py).

The facts come from upstream:

- capabilities: containerd's default set (pkg/oci/spec.go
  `defaultUnixCaps`, the same as Docker's), then `securityContext.
  capabilities` as containerd's CRI plugin applies it: `add: [ALL]` starts
  from every capability, `drop: [ALL]` from none, then single adds, then
  single drops.  Names are upper-cased and prefixed with `CAP_` the way
  containerd does, so an unknown name (or one already spelled `CAP_X`)
  matches nothing and is ignored, as runc ignores unknown capabilities.
  `privileged: true` keeps every capability the node has.  A root process
  gets the set as bounding, permitted and effective set; a non-root
  process keeps only the bounding set, so after exec it has none (as with
  runc, which sets no ambient capabilities);
- identity: `runAsUser`/`runAsGroup` (container over pod), else the
  image's user; the primary group of a uid without `runAsGroup` comes from
  /etc/passwd (0 when unknown, as containerd does); supplementary groups are
  the primary group, the user's /etc/group memberships, `supplementalGroups`
  and `fsGroup`; `allowPrivilegeEscalation: false` (explicitly) sets
  no_new_privs;
- `runAsNonRoot`: the kubelet's check (kuberuntime `verifyRunAsNonRoot`)
  with its exact messages, raised as `ContainerConfigError` (waiting
  reason `CreateContainerConfigError`);
- /proc and /sys: the kubelet's default masked and read-only paths
  (pkg/securitycontext/util.go), dropped for privileged containers;
- /dev: containerd's default devices (`WithDefaultUnixDevices`) and runc's
  symlinks, on a fresh tmpfs; privileged containers get the node's /dev;
- the host's files a pod must not see (`filesystem_view`): kinns state
  directories, home directories, kubeconfigs, /var/lib, /run and /etc
  secrets.  They show as empty directories / empty files in the
  container's overlay root, except for paths the container needs from the
  host (the Python installation and the kinns source tree that built-in
  components run from), which are bound back read-only.

The module imports nothing heavy (no dataclasses): the zygote imports it
for the device and path tables.  Images have no metadata in kinns; `IMAGE_USERS` holds the uid of the few
emulated images whose real image does not run as root.
"""

from __future__ import annotations

import posixpath
from typing import Any, Iterable, Mapping, NamedTuple

# Linux capability numbers (include/uapi/linux/capability.h), names without CAP_.
CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)
CAP_NUMBER: dict[str, int] = {f"CAP_{name}": i for i, name in enumerate(CAPABILITIES)}

# containerd's defaultUnixCaps (= Docker's default set).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)

# kubelet pkg/securitycontext/util.go: defaultMaskedPaths / defaultReadonlyPaths.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# containerd WithDefaultUnixDevices: (name, major, minor); mode 0666.  /dev/console
# is only made for a container with a terminal (runc), /dev/ptmx is runc's
# symlink into the container's own devpts instance.
DEVICES: tuple[tuple[str, int, int], ...] = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"),
)

# Host directories no pod sees (shown empty): homes (and with them ~/.kube),
# the host's state and runtime directories.  kinns' own state directories
# are added by `hidden_paths`.
HIDDEN_DIRS: tuple[str, ...] = ("/root", "/home", "/var/lib", "/run", "/etc/kubernetes", "/etc/ssl/private")
# Host files shown empty; `*` patterns are globbed by the caller.
SECRET_FILES: tuple[str, ...] = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
                                 "/etc/ssh/ssh_host_*_key")
DEFAULT_STATE_ROOT = "/var/lib/kinns"

# Emulated images whose real image has a non-root USER (numeric, as the
# kubelet needs it to verify runAsNonRoot); every other image runs as root.
IMAGE_USERS: dict[str, int] = {"pause": 65535, "nginx-unprivileged": 101}

CONFIG_ERROR_REASON = "CreateContainerConfigError"


class ContainerConfigError(Exception):
    """The kubelet refuses to create the container (`CreateContainerConfigError`)."""

    reason = CONFIG_ERROR_REASON

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- capabilities -------------------------------------------------------------

def capability_numbers(capabilities: Mapping[str, Any] | None, last_cap: int) -> tuple[int, ...]:
    """The capability numbers a container keeps, from `securityContext.capabilities`
    applied to the default set as containerd applies it."""
    caps = capabilities or {}
    add = [str(c).upper() for c in caps.get("add") or []]
    drop = [str(c).upper() for c in caps.get("drop") or []]
    known = {f"CAP_{n}" for n in CAPABILITIES[: last_cap + 1]}
    have = {f"CAP_{n}" for n in DEFAULT_CAPABILITIES}
    if "ALL" in add:
        have = set(known)
    if "ALL" in drop:
        have = set()
    have |= {f"CAP_{c}" for c in add}
    have -= {f"CAP_{c}" for c in drop}
    return tuple(sorted(CAP_NUMBER[c] for c in have & known))


def cap_mask(numbers: Iterable[int]) -> int:
    """The bit mask `/proc/<pid>/status` shows (CapEff: %016x)."""
    mask = 0
    for n in numbers:
        mask |= 1 << n
    return mask


def cap_names(numbers: Iterable[int]) -> list[str]:
    """Lower-case names without `cap_`, as setpriv(1) spells them."""
    return [CAPABILITIES[n].lower() for n in numbers]


# -- identity -------------------------------------------------------------------

class UserDb(NamedTuple):
    """What /etc/passwd and /etc/group say (the container's files are the host's)."""

    primary_gid: Mapping[int, int] = {}             # uid -> gid
    names: Mapping[int, str] = {}                   # uid -> user name
    member_of: Mapping[str, tuple[int, ...]] = {}   # user name -> gids

    @classmethod
    def parse(cls, passwd: str, group: str) -> "UserDb":
        primary: dict[int, int] = {}
        names: dict[int, str] = {}
        for line in passwd.splitlines():
            f = line.split(":")
            if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
                primary.setdefault(int(f[2]), int(f[3]))
                names.setdefault(int(f[2]), f[0])
        member: dict[str, list[int]] = {}
        for line in group.splitlines():
            f = line.split(":")
            if len(f) >= 4 and f[2].isdigit():
                for user in filter(None, f[3].split(",")):
                    member.setdefault(user, []).append(int(f[2]))
        return cls(primary, names, {k: tuple(v) for k, v in member.items()})


def _effective(pod_sc: Mapping[str, Any], sc: Mapping[str, Any], key: str) -> Any:
    """Container securityContext over pod securityContext (DetermineEffectiveSecurityContext)."""
    value = sc.get(key)
    return pod_sc.get(key) if value is None else value


def pod_ref(name: str, namespace: str, uid: str) -> str:
    """The kubelet's `format.Pod`: `name_namespace(uid)`."""
    return f"{name}_{namespace}({uid})"


def verify_run_as_non_root(pod_sc: Mapping[str, Any], sc: Mapping[str, Any], image_uid: int | None,
                           image_user: str, pod: str, container: str) -> None:
    """The kubelet's verifyRunAsNonRoot, with its messages."""
    if not _effective(pod_sc, sc, "runAsNonRoot"):
        return
    run_as = _effective(pod_sc, sc, "runAsUser")
    if run_as is not None:
        if int(run_as) == 0:
            raise ContainerConfigError(
                f"container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})")
        return
    if image_uid == 0:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")
    if image_uid is None and image_user:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify user is "
            f"non-root (pod: \"{pod}\", container: {container})")


class ProcessSecurity(NamedTuple):
    """How one container's processes run.  `caps` None means every
    capability the node has (privileged)."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = (0,)
    caps: tuple[int, ...] | None = None
    no_new_privs: bool = False
    privileged: bool = False
    read_only_root: bool = False

    def to_spec(self) -> dict[str, Any]:
        """JSON for the zygote."""
        return {"uid": self.uid, "gid": self.gid, "groups": list(self.groups),
                "caps": None if self.caps is None else list(self.caps), "nnp": self.no_new_privs,
                "privileged": self.privileged, "ro_root": self.read_only_root}


def container_security(pod_sc: Mapping[str, Any] | None, container: Mapping[str, Any], *, image_uid: int,
                       users: UserDb, last_cap: int, pod: str = "") -> ProcessSecurity:
    """The process security of `container` in a pod with securityContext
    `pod_sc`; raises `ContainerConfigError` for a runAsNonRoot violation."""
    psc: Mapping[str, Any] = pod_sc or {}
    sc: Mapping[str, Any] = container.get("securityContext") or {}
    verify_run_as_non_root(psc, sc, image_uid, "", pod, str(container.get("name", "")))
    run_as = _effective(psc, sc, "runAsUser")
    uid = image_uid if run_as is None else int(run_as)
    run_as_group = _effective(psc, sc, "runAsGroup")
    gid = int(run_as_group) if run_as_group is not None else users.primary_gid.get(uid, 0)
    groups: list[int] = [gid]
    extra = list(users.member_of.get(users.names.get(uid, ""), ()))
    extra += [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        extra.append(int(psc["fsGroup"]))
    for g in extra:
        if g not in groups:
            groups.append(g)
    privileged = bool(sc.get("privileged"))
    caps = None if privileged else capability_numbers(sc.get("capabilities"), last_cap)
    ape = sc.get("allowPrivilegeEscalation")
    return ProcessSecurity(uid=uid, gid=gid, groups=tuple(groups), caps=caps,
                           no_new_privs=ape is not None and not ape and not privileged,
                           privileged=privileged, read_only_root=bool(sc.get("readOnlyRootFilesystem")))


def setpriv_argv(sec: ProcessSecurity, setpriv: str = "setpriv") -> list[str]:
    """setpriv(1) arguments that give a process run by `exec` the container's
    identity, and kill it when the nsenter that started it dies."""
    argv = [setpriv, "--pdeathsig", "KILL"]
    if sec.no_new_privs:
        argv.append("--no-new-privs")
    if sec.caps is not None:
        argv += ["--inh-caps", "-all", "--bounding-set", ",".join(["-all"] + [f"+{n}" for n in cap_names(sec.caps)])]
    argv += ["--reuid", str(sec.uid), "--regid", str(sec.gid), "--groups", ",".join(str(g) for g in sec.groups)]
    return argv + ["--"]


# -- the filesystem view ------------------------------------------------------------

def _norm(path: str) -> str:
    """An absolute, normalised path ("" for none); normpath keeps a leading "//"."""
    path = path.strip().lstrip("/")
    return posixpath.normpath("/" + path) if path else ""


def _under(path: str, top: str) -> bool:
    """Is `path` `top` or inside it?"""
    return path == top or top == "/" or path.startswith(top.rstrip("/") + "/")


class FilesystemView(NamedTuple):
    """What the zygote does to the host root it shows a container.

    `opaque_dirs` and `empty_files` are made in the overlay's upper layer
    (an opaque directory hides everything below it), so they cost no mount.
    `keep` are host paths under a hidden directory that containers need; they
    are bound back read-only.  `inner_dirs`/`inner_files` are hidden paths
    inside a kept path, masked after the bind (a tmpfs, /dev/null)."""

    opaque_dirs: tuple[str, ...] = ()
    empty_files: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    inner_dirs: tuple[str, ...] = ()
    inner_files: tuple[str, ...] = ()

    def to_spec(self) -> dict[str, list[str]]:
        return {"opaque": list(self.opaque_dirs), "empty": list(self.empty_files), "keep": list(self.keep),
                "inner_dirs": list(self.inner_dirs), "inner_files": list(self.inner_files)}


def hidden_paths(env: Mapping[str, str], state_dirs: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(directories, files) to hide: `HIDDEN_DIRS`, every kinns state root
    ($KINNS_STATE_DIR, /var/lib/kinns, `state_dirs`), $HOME and its
    ~/.kube, and the kubeconfigs named by $KUBECONFIG; `SECRET_FILES`
    (patterns left for the caller to glob)."""
    dirs = list(HIDDEN_DIRS) + [DEFAULT_STATE_ROOT] + list(state_dirs)
    if env.get("KINNS_STATE_DIR"):
        dirs.append(env["KINNS_STATE_DIR"])
    if env.get("HOME") and env["HOME"] != "/":
        dirs += [env["HOME"], posixpath.join(env["HOME"], ".kube")]
    files = list(SECRET_FILES) + [p for p in env.get("KUBECONFIG", "").split(":") if p]
    return dirs, files


# Directories every container gets a fresh mount on, hiding the host's anyway.
FRESH_MOUNTS: tuple[str, ...] = ("/tmp", "/dev", "/proc", "/sys")


def filesystem_view(hide_dirs: Iterable[str], hide_files: Iterable[str], keep: Iterable[str]) -> FilesystemView:
    """Reduce the paths to hide and to keep to what the zygote must do.

    All paths are host paths with symlinks already resolved.  Nested hidden
    paths collapse into their outermost hidden directory; paths under
    `FRESH_MOUNTS` need nothing; kept paths matter only when some hidden
    directory covers them; hidden paths inside a kept path stay hidden
    (masked on top of the bind)."""
    def wanted(p: str) -> bool:
        return bool(p) and p != "/" and not any(_under(p, m) for m in FRESH_MOUNTS)
    dirs = sorted({p for p in map(_norm, hide_dirs) if wanted(p)})
    files = sorted({p for p in map(_norm, hide_files) if wanted(p)})
    kept = sorted({p for p in map(_norm, keep) if p})
    outer = [d for d in dirs if not any(o != d and _under(d, o) for o in dirs)]
    # A kept path needs binding back when a hidden directory covers it, or
    # when it lies under a fresh mount such as /tmp (a checkout in /tmp).
    keep_binds = [k for k in kept if (any(_under(k, d) and k != d for d in outer)
                                      or any(_under(k, m) and k != m for m in FRESH_MOUNTS))
                  and not any(o != k and _under(k, o) for o in kept)]
    # a hidden directory that is a kept path itself, or holds one, cannot be opaque
    # as a whole: it stays opaque, and the kept path is bound back on top
    inner_dirs = [d for d in dirs if any(_under(d, k) and d != k for k in keep_binds)]
    inner_files = [f for f in files if any(_under(f, k) for k in keep_binds)]
    empty = [f for f in files if not any(_under(f, d) for d in outer)]
    return FilesystemView(tuple(outer), tuple(empty), tuple(keep_binds), tuple(inner_dirs), tuple(inner_files))
