"""Pod Security Admission: the Pod Security Standards checked on admission.

Upstream's PodSecurity admission plugin (k8s.io/pod-security-admission)
reads three labels on a namespace, `pod-security.kubernetes.io/enforce`,
`audit` and `warn` (each with a `-version`: `latest` or `v1.N`), with the
levels `privileged` (no checks; an unlabelled namespace), `baseline` and
`restricted`.  A Pod that violates the enforce level is refused with 403
`pods "<name>" is forbidden: violates PodSecurity "restricted:latest": <reason> (<detail>), ...`;
a Pod or a workload template (Deployment, ReplicaSet, StatefulSet,
DaemonSet, Job, CronJob, ReplicationController, PodTemplate) that violates
the warn level gets a `Warning: would violate PodSecurity "<level>:<version>": ...`
header, and audit violations an audit annotation (`audit_annotations`).
Labelling a namespace with a stricter enforce level warns about the pods
already there.

This module is pure: `policy_from_labels` parses labels as upstream does
(an unparseable enforce level fails closed as `restricted`, audit/warn
open as `privileged`), `evaluate` runs upstream's checks for a level and
version, each with its upstream ID, minimum versions and message text, in
upstream's order (baseline checks sorted by ID, then restricted ones; a
restricted check replaces the baseline check it overrides), and
`admit_pod`, `admit_template` and `namespace_warnings` put results into the
answers the API server gives.  The versions a check has follow upstream's
policy package; a version newer than the server's (`latest_minor`, kinns'
reported minor version) means the newest the server knows.  The API server
(`admission.pod_security`) feeds it objects from the store.
Exemptions (usernames, runtime classes, namespaces) are upstream's
configuration file, which kinns has none of: nothing is exempt.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Mapping, NamedTuple

Obj = Mapping[str, Any]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = "latest"
LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LABEL, AUDIT_LABEL, WARN_LABEL = (LABEL_PREFIX + m for m in ("enforce", "audit", "warn"))
AUDIT_VIOLATIONS = LABEL_PREFIX + "audit-violations"
ENFORCE_POLICY = LABEL_PREFIX + "enforce-policy"
MAX_PODS_TO_CHECK = 3000

# Kinds whose pod template is checked for warn/audit (never enforced), and where the template is.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "PodTemplate": ("template",), "ReplicationController": ("spec", "template"),
    "ReplicaSet": ("spec", "template"), "Deployment": ("spec", "template"), "DaemonSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"), "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")


# -- levels, versions, policies -------------------------------------------------

class LevelVersion(NamedTuple):
    """A level at a policy version; `minor` None is `latest`."""

    level: str
    minor: int | None = None

    def __str__(self) -> str:
        return f"{self.level}:{LATEST if self.minor is None else f'v1.{self.minor}'}"


class Policy(NamedTuple):
    enforce: LevelVersion = LevelVersion(PRIVILEGED)
    audit: LevelVersion = LevelVersion(PRIVILEGED)
    warn: LevelVersion = LevelVersion(PRIVILEGED)

    def fully_privileged(self) -> bool:
        return all(lv.level == PRIVILEGED for lv in self)


class LabelError(NamedTuple):
    """An invalid label: `metadata.labels[<label>]: Invalid value: "<value>": <detail>`."""

    label: str
    value: str
    detail: str

    @property
    def field(self) -> str:
        return f"metadata.labels[{self.label}]"


def _compare(a: str, b: str) -> int:
    return LEVELS.index(a) - LEVELS.index(b)


def policy_from_labels(labels: Mapping[str, str] | None,
                       default: Policy = Policy()) -> tuple[Policy, list[LabelError]]:
    """The namespace's policy, and what is wrong with its labels (as
    upstream's PolicyToEvaluate): without a `warn` label, warn is raised to
    the enforce level (and version)."""
    labels = labels or {}
    errs: list[LabelError] = []
    level = {"enforce": default.enforce.level, "audit": default.audit.level, "warn": default.warn.level}
    minor = {"enforce": default.enforce.minor, "audit": default.audit.minor, "warn": default.warn.minor}
    for mode in level:
        key = LABEL_PREFIX + mode
        if key in labels:
            value = labels[key]
            if value in LEVELS:
                level[mode] = value
            else:
                errs.append(LabelError(key, value, "must be one of " + ", ".join(LEVELS)))
                level[mode] = RESTRICTED if mode == "enforce" else PRIVILEGED  # fail closed / open
        if key + "-version" in labels:
            value = labels[key + "-version"]
            m = _VERSION.match(value)
            if value != LATEST and not m:
                errs.append(LabelError(key + "-version", value, 'must be "latest" or "v1.x"'))
            minor[mode] = int(m.group(1)) if m else None
    enforce_set = labels.get(ENFORCE_LABEL) in LEVELS
    if WARN_LABEL not in labels and enforce_set and _compare(level["enforce"], level["warn"]) > 0:
        level["warn"] = level["enforce"]
        if WARN_LABEL + "-version" not in labels:
            minor["warn"] = minor["enforce"]
    return Policy(*(LevelVersion(level[m], minor[m]) for m in ("enforce", "audit", "warn"))), errs


# -- message helpers ---------------------------------------------------------------

def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _goq(s: str) -> str:
    """Go's %q for a plain string."""
    return json.dumps(s, ensure_ascii=False)


def _containers(spec: Obj) -> list[Obj]:
    """Init, regular and ephemeral containers, in upstream's visiting order."""
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def _sc(c: Obj) -> Obj:
    return c.get("securityContext") or {}


def _psc(spec: Obj) -> Obj:
    return spec.get("securityContext") or {}


def _names(cs: Iterable[Obj]) -> list[str]:
    return [str(c.get("name", "")) for c in cs]


def _setters(pod: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod else []
    if containers:
        out.append(f"{_plural('container', 'containers', len(containers))} {_quote(containers)}")
    return out


def _windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def _user_namespace(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


Result = tuple[str, str] | None   # (forbidden reason, detail) or None when allowed
CheckFn = Callable[[Obj, Obj], Result]


# -- baseline checks ------------------------------------------------------------------

_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _app_armor(meta: Obj, spec: Obj) -> Result:
    def bad(sc: Obj) -> str | None:
        """The profile type set, when it is not an allowed one."""
        profile = sc.get("appArmorProfile")
        if profile is None:
            return None
        kind = str(profile.get("type") or "")
        return None if kind in ("RuntimeDefault", "Localhost") else kind
    values: set[str] = set()
    pod_bad = bad(_psc(spec))
    if pod_bad is not None:
        values.add(pod_bad)
    containers = []
    for c in _containers(spec):
        v = bad(_sc(c))
        if v is not None:
            containers.append(str(c.get("name", "")))
            values.add(v)
    setters = _setters(pod_bad is not None, containers)
    annotations = sorted(f"{k}={_goq(v)}" for k, v in (meta.get("annotations") or {}).items()
                         if k.startswith(_APPARMOR_ANNOTATION)
                         and not (v == "" or v == "runtime/default" or v.startswith("localhost/")))
    bad_values = sorted(values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {_quote(bad_values)}")


BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _capabilities_baseline(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        added = [str(x) for x in (_sc(c).get("capabilities") or {}).get("add") or []]
        extra = [x for x in added if x not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(str(c.get("name", "")))
            caps.update(extra)
    if not bad:
        return None
    return ("non-default capabilities", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} must not "
            f"include {_quote(sorted(caps))} in securityContext.capabilities.add")


def _host_namespaces(meta: Obj, spec: Obj) -> Result:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return ("host namespaces", ", ".join(used)) if used else None


def _host_path_volumes(meta: Obj, spec: Obj) -> Result:
    vols = [str(v.get("name", "")) for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    return ("hostPath volumes", f"{_plural('volume', 'volumes', len(vols))} {_quote(vols)}") if vols else None


def _host_ports(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = [str(p.get("hostPort")) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(str(c.get("name", "")))
            ports.update(used)
    if not bad:
        return None
    return ("hostPort", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} "
            f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
            f"{', '.join(sorted(ports))}")


def _host_probes(meta: Obj, spec: Obj) -> Result:
    bad: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(c.get("lifecycle") or {}).get(h) for h in ("postStart", "preStop")]
        for h in handlers:
            for kind in ("httpGet", "tcpSocket"):
                host = ((h or {}).get(kind) or {}).get("host")
                if host:
                    bad.add(str(c.get("name", "")))
                    hosts.add(str(host))
    if not bad:
        return None
    return ("probe or lifecycle host", f"{_plural('container', 'containers', len(bad))} {_quote(sorted(bad))} "
            f"{_plural('uses', 'use', len(bad))} "
            f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_quote(sorted(hosts))}")


def _privileged(meta: Obj, spec: Obj) -> Result:
    bad = _names(c for c in _containers(spec) if _sc(c).get("privileged") is True)
    if not bad:
        return None
    return ("privileged", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} "
            "must not set securityContext.privileged=true")


def _proc_mount(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in _containers(spec):
        pm = _sc(c).get("procMount")
        if pm is not None and pm != "Default":
            bad.append(str(c.get("name", "")))
            kinds.add(str(pm))
    if not bad:
        return None
    return ("procMount", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} must not set "
            f"securityContext.procMount to {_quote(sorted(kinds))}")


def _proc_mount_1_35(meta: Obj, spec: Obj) -> Result:
    return None if _user_namespace(spec) else _proc_mount(meta, spec)


def _selinux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Obj) -> bool:
            ok = True
            if str(opts.get("type") or "") not in allowed:
                types.add(str(opts.get("type") or ""))
                ok = False
            for k in ("user", "role"):
                if opts.get(k):
                    flags[k], ok = True, False
            return ok
        pod_bad = _psc(spec).get("seLinuxOptions") is not None and not valid(_psc(spec)["seLinuxOptions"])
        bad = [str(c.get("name", "")) for c in _containers(spec)
               if _sc(c).get("seLinuxOptions") is not None and not valid(_sc(c)["seLinuxOptions"])]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = [f"{_plural('type', 'types', len(types))} {_quote(sorted(types))}"] if types else []
        data += [f"{k} may not be set" for k in ("user", "role") if flags[k]]
        return ("seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                f"{'; '.join(data)}")
    return check


_SELINUX_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_1_31 = _SELINUX_1_0 | {"container_engine_t"}
_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotations(meta: Obj, spec: Obj) -> Result:
    annotations = meta.get("annotations") or {}

    def ok(v: str) -> bool:
        return v in ("runtime/default", "docker/default") or v.startswith("localhost/")
    bad = set()
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION + n for n in _names(_containers(spec))]
    for k in keys:
        if k in annotations and not ok(str(annotations[k])):
            bad.add(f"{k}={_goq(str(annotations[k]))}")
    if not bad:
        return None
    return ("seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(bad))} {', '.join(sorted(bad))}")


def _seccomp_type(sc: Obj) -> str | None:
    prof = sc.get("seccompProfile")
    return None if prof is None else str(prof.get("type") or "")


def _seccomp_fields(restricted: bool) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        values: set[str] = set()
        pod_type = _seccomp_type(_psc(spec))
        pod_bad = pod_type is not None and pod_type not in ("RuntimeDefault", "Localhost")
        if pod_bad:
            values.add(str(pod_type))
        bad: list[str] = []
        implicit: list[str] = []
        for c in _containers(spec):
            t = _seccomp_type(_sc(c))
            if t is not None:
                if t not in ("RuntimeDefault", "Localhost"):
                    bad.append(str(c.get("name", "")))
                    values.add(t)
            elif restricted and (pod_type is None or pod_bad):
                implicit.append(str(c.get("name", "")))
        setters = _setters(pod_bad, bad)
        if setters:
            return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                    f"{_quote(sorted(values))}")
        if implicit:
            return ("seccompProfile", f"pod or {_plural('container', 'containers', len(implicit))} "
                    f"{_quote(implicit)} must set securityContext.seccompProfile.type to "
                    '"RuntimeDefault" or "Localhost"')
        return None
    return check


_SECCOMP_RESTRICTED = _seccomp_fields(True)

_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad = [str(s.get("name", "")) for s in _psc(spec).get("sysctls") or [] if s.get("name") not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None
    return check


def _host_process(meta: Obj, spec: Obj) -> Result:
    def on(sc: Obj) -> bool:
        return (sc.get("windowsOptions") or {}).get("hostProcess") is True
    setters = _setters(on(_psc(spec)), _names(c for c in _containers(spec) if on(_sc(c))))
    if not setters:
        return None
    return ("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# -- restricted checks --------------------------------------------------------------------

def _allow_privilege_escalation(meta: Obj, spec: Obj) -> Result:
    bad = _names(c for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False)
    if not bad:
        return None
    return ("allowPrivilegeEscalation != false", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} "
            "must set securityContext.allowPrivilegeEscalation=false")


def _capabilities_restricted(meta: Obj, spec: Obj) -> Result:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if capabilities is None:
            missing_drop.append(str(c.get("name", "")))
            continue
        if "ALL" not in [str(x) for x in capabilities.get("drop") or []]:
            missing_drop.append(str(c.get("name", "")))
        extra = [str(x) for x in capabilities.get("add") or [] if x != "NET_BIND_SERVICE"]
        if extra:
            adding.append(str(c.get("name", "")))
            caps.update(extra)
    details = []
    if missing_drop:
        details.append(f"{_plural('container', 'containers', len(missing_drop))} {_quote(missing_drop)} must set "
                       'securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_quote(adding)} must not include "
                       f"{_quote(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _unless_windows(fn: CheckFn) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        return None if _windows(spec) else fn(meta, spec)
    return check


def _unless_user_namespace(fn: CheckFn) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        return None if _user_namespace(spec) else fn(meta, spec)
    return check


_ALLOWED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                    "projected", "secret")
_RESTRICTED_VOLUMES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                       "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                       "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO",
                       "storageos")


def _restricted_volumes(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    kinds: set[str] = set()
    for v in spec.get("volumes") or []:
        if any(v.get(k) is not None for k in _ALLOWED_VOLUMES):
            continue
        bad.append(str(v.get("name", "")))
        kinds.add(next((k for k in _RESTRICTED_VOLUMES if v.get(k) is not None), "unknown"))
    if not bad:
        return None
    return ("restricted volume types", f"{_plural('volume', 'volumes', len(bad))} {_quote(bad)} "
            f"{_plural('uses', 'use', len(bad))} "
            f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_quote(sorted(kinds))}")


def _run_as_non_root(meta: Obj, spec: Obj) -> Result:
    pod_value = _psc(spec).get("runAsNonRoot")
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is not None:
            if not value:
                explicit.append(str(c.get("name", "")))
        elif pod_value is not True:
            implicit.append(str(c.get("name", "")))
    setters = _setters(pod_value is False, explicit)
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true", f"pod or {_plural('container', 'containers', len(implicit))} "
                f"{_quote(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def _run_as_user(meta: Obj, spec: Obj) -> Result:
    setters = _setters(_psc(spec).get("runAsUser") == 0,
                       _names(c for c in _containers(spec) if _sc(c).get("runAsUser") == 0))
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


# -- the registry ------------------------------------------------------------------------------

class Check(NamedTuple):
    """One upstream check: its versions are (minimum minor, function,
    IDs of baseline checks it replaces at the restricted level)."""

    id: str
    level: str
    versions: tuple[tuple[int, CheckFn, tuple[str, ...]], ...]


CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, ((0, _app_armor, ()),)),
    Check("capabilities_baseline", BASELINE, ((0, _capabilities_baseline, ()),)),
    Check("hostNamespaces", BASELINE, ((0, _host_namespaces, ()),)),
    Check("hostPathVolumes", BASELINE, ((0, _host_path_volumes, ()),)),
    Check("hostPorts", BASELINE, ((0, _host_ports, ()),)),
    Check("hostProbesAndHostLifecycle", BASELINE, ((34, _host_probes, ()),)),
    Check("privileged", BASELINE, ((0, _privileged, ()),)),
    Check("procMount", BASELINE, ((0, _proc_mount, ()), (35, _proc_mount_1_35, ()))),
    Check("seLinuxOptions", BASELINE, ((0, _selinux(_SELINUX_1_0), ()), (31, _selinux(_SELINUX_1_31), ()))),
    Check("seccompProfile_baseline", BASELINE, ((0, _seccomp_annotations, ()), (19, _seccomp_fields(False), ()))),
    Check("sysctls", BASELINE, ((0, _sysctls(_SYSCTLS_1_0), ()), (27, _sysctls(_SYSCTLS_1_27), ()),
                                (29, _sysctls(_SYSCTLS_1_29), ()), (32, _sysctls(_SYSCTLS_1_32), ()),
                                (37, _sysctls(_SYSCTLS_1_37), ()))),
    Check("windowsHostProcess", BASELINE, ((0, _host_process, ()),)),
    Check("allowPrivilegeEscalation", RESTRICTED, ((8, _allow_privilege_escalation, ()),
                                                   (25, _unless_windows(_allow_privilege_escalation), ()))),
    Check("capabilities_restricted", RESTRICTED, ((22, _capabilities_restricted, ("capabilities_baseline",)),
                                                  (25, _unless_windows(_capabilities_restricted),
                                                   ("capabilities_baseline",)))),
    Check("procMount_restricted", RESTRICTED, ((35, _proc_mount, ("procMount",)),)),
    Check("restrictedVolumes", RESTRICTED, ((0, _restricted_volumes, ("hostPathVolumes",)),)),
    Check("runAsNonRoot", RESTRICTED, ((0, _run_as_non_root, ()), (35, _unless_user_namespace(_run_as_non_root), ()))),
    Check("runAsUser", RESTRICTED, ((23, _run_as_user, ()), (35, _unless_user_namespace(_run_as_user), ()))),
    Check("seccompProfile_restricted", RESTRICTED, ((19, _SECCOMP_RESTRICTED, ("seccompProfile_baseline",)),
                                                    (25, _unless_windows(_SECCOMP_RESTRICTED),
                                                     ("seccompProfile_baseline",)))),
)
# upstream orders baseline checks by ID, then restricted ones by ID
_ORDER = sorted((c for c in CHECKS if c.level == BASELINE), key=lambda c: c.id) + \
    sorted((c for c in CHECKS if c.level == RESTRICTED), key=lambda c: c.id)
LATEST_MINOR = 32   # kinns reports v1.32; the API server passes its own


def _version_of(check: Check, minor: int) -> tuple[CheckFn, tuple[str, ...]] | None:
    found = None
    for since, fn, overrides in check.versions:
        if since <= minor:
            found = (fn, overrides)
    return found


def evaluate(lv: LevelVersion, meta: Obj, spec: Obj, latest_minor: int = LATEST_MINOR) -> list[tuple[str, str]]:
    """The (reason, detail) of every check `lv` fails, in upstream's order."""
    if lv.level == PRIVILEGED:
        return []
    minor = latest_minor if lv.minor is None else min(lv.minor, latest_minor)
    active: dict[str, CheckFn] = {}
    overridden: set[str] = set()
    for check in _ORDER:
        if check.level == RESTRICTED and lv.level != RESTRICTED:
            continue
        v = _version_of(check, minor)
        if v is not None:
            active[check.id] = v[0]
            overridden.update(v[1])
    out = []
    for check in _ORDER:
        fn = active.get(check.id)
        if fn is None or check.id in overridden:
            continue
        r = fn(meta, spec)
        if r is not None:
            out.append(r)
    return out


def forbidden_detail(results: list[tuple[str, str]]) -> str:
    """`reason (detail), reason (detail)` as upstream's AggregateCheckResult."""
    return ", ".join(f"{r} ({d})" if d else r for r, d in results)


# -- admission answers ---------------------------------------------------------------------

class Decision(NamedTuple):
    """What the admission step answers: a forbidden message (None: allowed),
    Warning headers, and audit annotations."""

    forbidden: str | None = None
    warnings: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] = {}


def _decide(policy: Policy, errs: list[LabelError], meta: Obj, spec: Obj, enforce: bool,
            latest_minor: int) -> Decision:
    cache: dict[LevelVersion, list[tuple[str, str]]] = {}

    def results(lv: LevelVersion) -> list[tuple[str, str]]:
        if lv not in cache:
            cache[lv] = evaluate(lv, meta, spec, latest_minor)
        return cache[lv]
    audit: dict[str, str] = {}
    if errs:
        audit["error"] = "Failed to parse policy: " + ", ".join(
            f"{e.field}: Invalid value: {_goq(e.value)}: {e.detail}" for e in errs)
    forbidden = None
    if enforce:
        audit[ENFORCE_POLICY] = str(policy.enforce)
        failed = results(policy.enforce)
        if failed:
            forbidden = f"violates PodSecurity {_goq(str(policy.enforce))}: {forbidden_detail(failed)}"
    if results(policy.audit):
        audit[AUDIT_VIOLATIONS] = (f"would violate PodSecurity {_goq(str(policy.audit))}: "
                                   f"{forbidden_detail(results(policy.audit))}")
    warnings: tuple[str, ...] = ()
    if forbidden is None and results(policy.warn):
        warnings = (f"would violate PodSecurity {_goq(str(policy.warn))}: {forbidden_detail(results(policy.warn))}",)
    return Decision(forbidden, warnings, audit)


def admit_pod(ns_labels: Mapping[str, str] | None, pod: Obj, latest_minor: int = LATEST_MINOR) -> Decision:
    """A Pod being created: enforce, audit and warn."""
    policy, errs = policy_from_labels(ns_labels)
    if not errs and policy.fully_privileged():
        return Decision()
    return _decide(policy, errs, pod.get("metadata") or {}, pod.get("spec") or {}, True, latest_minor)


def pod_template(obj: Obj, kind: str | None = None) -> Obj | None:
    """The pod template of a workload object (None: not a workload, or none)."""
    path = TEMPLATE_PATHS.get(kind or str(obj.get("kind", "")))
    if path is None:
        return None
    cur: Any = obj
    for key in path:
        cur = (cur or {}).get(key)
    return cur if isinstance(cur, Mapping) else None


def admit_template(ns_labels: Mapping[str, str] | None, obj: Obj, latest_minor: int = LATEST_MINOR,
                   kind: str | None = None) -> Decision:
    """A workload's pod template: audit and warn only, as upstream (the
    pods it makes are what enforce sees)."""
    policy, errs = policy_from_labels(ns_labels)
    template = pod_template(obj, kind)
    if template is None or (not errs and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED):
        return Decision()
    return _decide(policy, errs, template.get("metadata") or {}, template.get("spec") or {}, False, latest_minor)


def namespace_label_errors(new_labels: Mapping[str, str] | None,
                           old_labels: Mapping[str, str] | None = None) -> list[LabelError]:
    """Invalid policy labels to refuse a Namespace create (or an update
    that changed them) with."""
    errs = policy_from_labels(new_labels)[1]
    if old_labels is not None and errs and errs == policy_from_labels(old_labels)[1]:
        return []
    return errs


def namespace_warnings(name: str, new_labels: Mapping[str, str] | None, old_labels: Mapping[str, str] | None,
                       pods: Iterable[Obj], latest_minor: int = LATEST_MINOR) -> list[str]:
    """Warnings for a namespace update that tightens its enforce level: the
    existing pods that would now be refused, grouped by reasons, as upstream
    (`<pod> (and N other pods): <reasons>`)."""
    new, _ = policy_from_labels(new_labels)
    old, _ = policy_from_labels(old_labels)
    if new.enforce == old.enforce or new.enforce.level == PRIVILEGED:
        return []
    if new.enforce.minor == old.enforce.minor and _compare(new.enforce.level, old.enforce.level) < 1:
        return []
    ordered = _prioritized(list(pods))
    total = len(ordered)
    ordered = ordered[:MAX_PODS_TO_CHECK]
    firsts: dict[str, tuple[str, int]] = {}
    seen_order: list[str] = []
    for pod in ordered:
        failed = evaluate(new.enforce, pod.get("metadata") or {}, pod.get("spec") or {}, latest_minor)
        if not failed:
            continue
        reasons = ", ".join(r for r, _ in failed)
        pod_name = str((pod.get("metadata") or {}).get("name", ""))
        if reasons not in firsts:
            firsts[reasons] = (pod_name, 1)
            seen_order.append(reasons)
        else:
            first, count = firsts[reasons]
            firsts[reasons] = (min(first, pod_name), count + 1)
    out: list[str] = []
    if len(ordered) < total:
        out.append(f"new PodSecurity enforce level only checked against the first {len(ordered)} of {total} "
                   "existing pods")
    if seen_order:
        out.append(f"existing pods in namespace {_goq(name)} violate the new PodSecurity enforce level "
                   f"{_goq(str(new.enforce))}")
    decorated = []
    for reasons in seen_order:
        first, count = firsts[reasons]
        if count == 1:
            decorated.append(f"{first}: {reasons}")
        elif count == 2:
            decorated.append(f"{first} (and 1 other pod): {reasons}")
        else:
            decorated.append(f"{first} (and {count - 1} other pods): {reasons}")
    return out + sorted(decorated)


def _prioritized(pods: list[Obj]) -> list[Obj]:
    """One pod per controller first, then the other replicas (upstream's prioritizePods)."""
    first: list[Obj] = []
    rest: list[Obj] = []
    seen: set[str] = set()
    for pod in pods:
        ref = next((r for r in (pod.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")),
                   None)
        if ref is None:
            first.append(pod)
        elif ref.get("uid") in seen:
            rest.append(pod)
        else:
            seen.add(str(ref.get("uid")))
            first.append(pod)
    return first + rest
