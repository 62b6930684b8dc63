"""Pod Security Admission, table-driven: each case is a pod (spec and
annotations), a level[:version], and the exact text upstream's
pod-security-admission gives (`violates PodSecurity "<lv>": <text>`)."""

from __future__ import annotations

from typing import Any

import pytest

from kinns.api import podsecurity as ps
from kinns.api.podsecurity import LevelVersion, Policy

GOOD_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
           "seccompProfile": {"type": "RuntimeDefault"}}


def c(name: str = "c", **sc: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "securityContext": sc} if sc else {"name": name, "image": "busybox"}


def good(name: str = "c", **extra: Any) -> dict[str, Any]:
    return c(name, **{**GOOD_SC, **extra})


def spec(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"containers": list(containers), **fields}


def lv(text: str) -> LevelVersion:
    level, _, version = text.partition(":")
    return LevelVersion(level, None if version in ("", "latest") else int(version.split(".")[1]))


CASES: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
    # (id, level, pod spec, annotations, expected forbidden detail; "" = allowed)
    ("privileged-level-allows-anything", "privileged",
     spec(c(privileged=True), hostNetwork=True), {}, ""),
    ("baseline-default-pod", "baseline", spec(c()), {}, ""),
    ("host-namespaces", "baseline", spec(c(), hostNetwork=True, hostPID=True, hostIPC=True), {},
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"),
    ("privileged", "baseline", spec(c("a", privileged=True), c("b", privileged=True)), {},
     'privileged (containers "a", "b" must not set securityContext.privileged=true)'),
    ("baseline-caps", "baseline",
     spec(c("a", capabilities={"add": ["NET_ADMIN", "CHOWN"]}), c("b", capabilities={"add": ["SYS_TIME"]})), {},
     'non-default capabilities (containers "a", "b" must not include "NET_ADMIN", "SYS_TIME" in '
     'securityContext.capabilities.add)'),
    ("baseline-allows-default-caps", "baseline", spec(c(capabilities={"add": ["NET_BIND_SERVICE", "KILL"]})), {}, ""),
    ("net-raw-is-not-baseline", "baseline", spec(c(capabilities={"add": ["NET_RAW"]})), {},
     'non-default capabilities (container "c" must not include "NET_RAW" in securityContext.capabilities.add)'),
    ("host-path", "baseline",
     spec(c(), volumes=[{"name": "data", "hostPath": {"path": "/d"}}, {"name": "tmp", "emptyDir": {}},
                        {"name": "logs", "hostPath": {"path": "/l"}}]), {},
     'hostPath volumes (volumes "data", "logs")'),
    ("host-ports", "baseline",
     spec({"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080},
                                                      {"containerPort": 81, "hostPort": 80}]}), {},
     'hostPort (container "web" uses hostPorts 80, 8080)'),
    ("proc-mount", "baseline", spec(c(procMount="Unmasked")), {},
     'procMount (container "c" must not set securityContext.procMount to "Unmasked")'),
    ("selinux", "baseline",
     spec(c(seLinuxOptions={"role": "r"}), securityContext={"seLinuxOptions": {"type": "foo_t", "user": "u"}}), {},
     'seLinuxOptions (pod and container "c" set forbidden securityContext.seLinuxOptions: type "foo_t"; '
     'user may not be set; role may not be set)'),
    ("seccomp-unconfined", "baseline",
     spec(c(seccompProfile={"type": "Unconfined"}), securityContext={"seccompProfile": {"type": "Unconfined"}}), {},
     'seccompProfile (pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ("sysctls", "baseline",
     spec(c(), securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1"},
                                            {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                            {"name": "kernel.msgmax", "value": "1"}]}), {},
     "forbidden sysctls (net.core.somaxconn, kernel.msgmax)"),
    ("apparmor-annotation", "baseline", spec(c()),
     {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"},
     'forbidden AppArmor profile (annotation must not set AppArmor profile type to '
     '"container.apparmor.security.beta.kubernetes.io/c="unconfined"")'),  # joinQuote does not escape
    ("apparmor-field", "baseline", spec(c(appArmorProfile={"type": "Unconfined"})), {},
     'forbidden AppArmor profile (container "c" must not set AppArmor profile type to "Unconfined")'),
    ("host-process", "baseline", spec(c(windowsOptions={"hostProcess": True})), {},
     'hostProcess (container "c" must not set securityContext.windowsOptions.hostProcess=true)'),
    ("several-baseline-in-upstream-order", "baseline",
     spec(c(privileged=True), hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}]), {},
     'host namespaces (hostPID=true), hostPath volumes (volume "h"), '
     'privileged (container "c" must not set securityContext.privileged=true)'),
    # -- restricted
    ("restricted-good", "restricted", spec(good(), initContainers=[good("init")]), {}, ""),
    ("restricted-good-pod-level", "restricted",
     spec(c(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
          securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Localhost"}, "runAsUser": 1000}), {}, ""),
    ("restricted-default-pod", "restricted", spec(c()), {},
     'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
     'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
     '"RuntimeDefault" or "Localhost")'),
    ("restricted-privileged", "restricted", spec(c(privileged=True)), {},
     'privileged (container "c" must not set securityContext.privileged=true), '
     'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
     'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
     '"RuntimeDefault" or "Localhost")'),
    ("restricted-caps-replace-baseline-caps", "restricted",
     spec(good(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}),
          good("d", capabilities={"add": ["CHOWN"]})), {},
     'unrestricted capabilities (container "d" must set securityContext.capabilities.drop=["ALL"]; '
     'containers "c", "d" must not include "CHOWN", "NET_ADMIN" in securityContext.capabilities.add)'),
    ("restricted-explicit-bad-run-as", "restricted",
     spec(good(runAsNonRoot=False, runAsUser=0), securityContext={"runAsNonRoot": False, "runAsUser": 0}), {},
     'runAsNonRoot != true (pod and container "c" must not set securityContext.runAsNonRoot=false), '
     'runAsUser=0 (pod and container "c" must not set runAsUser=0)'),
    ("restricted-volumes", "restricted",
     spec(good(), volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}, {"name": "h", "hostPath": {}},
                           {"name": "cm", "configMap": {"name": "x"}}, {"name": "p", "projected": {}},
                           {"name": "odd", "somethingNew": {}}]), {},
     'restricted volume types (volumes "n", "h", "odd" use restricted volume types "hostPath", "nfs", "unknown")'),
    ("restricted-seccomp-explicit", "restricted",
     spec(good(seccompProfile={"type": "Unconfined"}), securityContext={"seccompProfile": {"type": "Unconfined"}}), {},
     'seccompProfile (pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ("restricted-windows-pod", "restricted",
     spec(c(runAsNonRoot=True), os={"name": "windows"}), {}, ""),
    ("restricted-ephemeral-containers-count", "restricted",
     spec(good(), ephemeralContainers=[{"name": "debug", "image": "busybox"}]), {},
     'allowPrivilegeEscalation != false (container "debug" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "debug" must set securityContext.capabilities.drop=["ALL"]), '
     'runAsNonRoot != true (pod or container "debug" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "debug" must set securityContext.seccompProfile.type to '
     '"RuntimeDefault" or "Localhost")'),
    # -- versions
    ("restricted-v1.21-has-baseline-caps-and-no-run-as-user", "restricted:v1.21",
     spec(good(capabilities={"add": ["NET_ADMIN"]}, runAsUser=0)), {},
     'non-default capabilities (container "c" must not include "NET_ADMIN" in securityContext.capabilities.add)'),
    ("restricted-v1.24-windows-not-exempt-yet", "restricted:v1.24",
     spec(c(runAsNonRoot=True, seccompProfile={"type": "RuntimeDefault"}), os={"name": "windows"}), {},
     'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"])'),
    ("baseline-v1.18-seccomp-by-annotation", "baseline:v1.18",
     spec(c(seccompProfile={"type": "Unconfined"})), {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"},
     'seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")'),
    ("sysctls-v1.26-lacks-reserved-ports", "baseline:v1.26",
     spec(c(), securityContext={"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "1"}]}), {},
     "forbidden sysctls (net.ipv4.ip_local_reserved_ports)"),
    ("sysctls-latest-allows-tcp-rmem", "baseline",
     spec(c(), securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]}), {}, ""),
    ("future-version-means-latest", "baseline:v1.99",
     spec(c(livenessProbe={"httpGet": {"host": "1.2.3.4", "port": 80}})), {}, ""),
]


@pytest.mark.parametrize("level,pod_spec,annotations,expected", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_checks(level: str, pod_spec: dict[str, Any], annotations: dict[str, str], expected: str) -> None:
    got = ps.forbidden_detail(ps.evaluate(lv(level), {"name": "p", "annotations": annotations}, pod_spec))
    assert got == expected


def test_host_probes_check_arrives_with_1_34() -> None:
    probe = {"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
             "lifecycle": {"preStop": {"tcpSocket": {"host": "example.com", "port": 1}}}}
    pod = spec({"name": "c", "image": "x", **probe})
    assert ps.evaluate(lv("baseline"), {}, pod, latest_minor=32) == []
    assert ps.forbidden_detail(ps.evaluate(lv("baseline"), {}, pod, latest_minor=34)) == (
        'probe or lifecycle host (container "c" uses probe or lifecycle hosts "10.0.0.1", "example.com")')


# -- labels to policy -----------------------------------------------------------------------

L = ps.LABEL_PREFIX


@pytest.mark.parametrize("labels,policy,errors", [
    ({}, Policy(), []),
    ({L + "enforce": "baseline"},
     Policy(LevelVersion("baseline"), LevelVersion("privileged"), LevelVersion("baseline")), []),
    ({L + "enforce": "restricted", L + "enforce-version": "v1.25"},
     Policy(LevelVersion("restricted", 25), LevelVersion("privileged"), LevelVersion("restricted", 25)), []),
    ({L + "enforce": "restricted", L + "warn": "baseline"},
     Policy(LevelVersion("restricted"), LevelVersion("privileged"), LevelVersion("baseline")), []),
    ({L + "warn": "restricted", L + "audit": "baseline", L + "audit-version": "latest"},
     Policy(LevelVersion("privileged"), LevelVersion("baseline"), LevelVersion("restricted")), []),
    ({L + "enforce": "strict"},  # fails closed
     Policy(LevelVersion("restricted"), LevelVersion("privileged"), LevelVersion("privileged")),
     [(L + "enforce", "strict", "must be one of privileged, baseline, restricted")]),
    ({L + "warn": "nope", L + "enforce-version": "1.25"},  # warn fails open; a bad version is latest
     Policy(), [(L + "enforce-version", "1.25", 'must be "latest" or "v1.x"'),
                (L + "warn", "nope", "must be one of privileged, baseline, restricted")]),
])
def test_policy_from_labels(labels: dict[str, str], policy: Policy, errors: list[tuple[str, str, str]]) -> None:
    got, errs = ps.policy_from_labels(labels)
    assert got == policy
    assert sorted((e.label, e.value, e.detail) for e in errs) == sorted(errors)


def test_level_version_strings() -> None:
    assert str(LevelVersion("restricted")) == "restricted:latest"
    assert str(LevelVersion("baseline", 27)) == "baseline:v1.27"


# -- admission answers ----------------------------------------------------------------------

PRIV_POD = {"metadata": {"name": "x"}, "spec": spec(c(privileged=True))}


def test_enforce_refuses_with_upstreams_text_and_skips_warnings() -> None:
    d = ps.admit_pod({L + "enforce": "baseline", L + "warn": "restricted"}, PRIV_POD)
    assert d.forbidden == ('violates PodSecurity "baseline:latest": privileged (container "c" must not set '
                           'securityContext.privileged=true)')
    assert d.warnings == ()
    assert d.audit_annotations == {ps.ENFORCE_POLICY: "baseline:latest"}


def test_warn_and_audit_without_enforce() -> None:
    d = ps.admit_pod({L + "warn": "baseline", L + "audit": "baseline", L + "audit-version": "v1.30"}, PRIV_POD)
    assert d.forbidden is None
    assert d.warnings == ('would violate PodSecurity "baseline:latest": privileged (container "c" must not set '
                          'securityContext.privileged=true)',)
    assert d.audit_annotations[ps.AUDIT_VIOLATIONS].startswith('would violate PodSecurity "baseline:v1.30": privileged')


def test_unlabelled_namespace_is_privileged() -> None:
    assert ps.admit_pod(None, PRIV_POD) == ps.Decision()
    assert ps.admit_pod({"team": "a"}, PRIV_POD) == ps.Decision()


def test_bad_labels_fail_closed_and_say_so() -> None:
    d = ps.admit_pod({L + "enforce": "strict"}, {"metadata": {"name": "x"}, "spec": spec(c())})
    assert d.forbidden is not None and d.forbidden.startswith('violates PodSecurity "restricted:latest": ')
    assert d.audit_annotations["error"] == ('Failed to parse policy: metadata.labels[pod-security.kubernetes.io/'
                                            'enforce]: Invalid value: "strict": must be one of privileged, '
                                            'baseline, restricted')


@pytest.mark.parametrize("kind,obj", [
    ("Deployment", {"spec": {"template": {"spec": spec(c(privileged=True))}}}),
    ("CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec(c(privileged=True))}}}}}),
    ("PodTemplate", {"template": {"spec": spec(c(privileged=True))}}),
])
def test_workload_templates_warn_but_are_never_refused(kind: str, obj: dict[str, Any]) -> None:
    d = ps.admit_template({L + "enforce": "restricted", L + "warn": "baseline"}, obj, kind=kind)
    assert d.forbidden is None
    assert d.warnings == ('would violate PodSecurity "baseline:latest": privileged (container "c" must not set '
                          'securityContext.privileged=true)',)
    assert ps.admit_template({L + "enforce": "restricted"}, {"spec": {}}, kind="Service") == ps.Decision()


def pod(name: str, *containers: dict[str, Any], owner: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True}]
    return {"metadata": meta, "spec": spec(*containers)}


def test_tightening_a_namespace_warns_about_existing_pods() -> None:
    pods = [pod("web-2", c(), owner="rs1"), pod("web-1", c(), owner="rs1"), pod("web-3", c(), owner="rs1"),
            pod("priv", c(privileged=True)), pod("ok", good())]
    warnings = ps.namespace_warnings("shop", {L + "enforce": "restricted"}, {}, pods)
    assert warnings == [
        'existing pods in namespace "shop" violate the new PodSecurity enforce level "restricted:latest"',
        "priv: privileged, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile",
        "web-1 (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile",
    ]
    # relaxing, or an unchanged enforce level, checks nothing
    assert ps.namespace_warnings("shop", {L + "enforce": "baseline"}, {L + "enforce": "restricted"}, pods) == []
    assert ps.namespace_warnings("shop", {L + "enforce": "restricted", "x": "y"}, {L + "enforce": "restricted"},
                                 pods) == []


def test_namespace_label_errors_only_when_new_or_changed() -> None:
    errs = ps.namespace_label_errors({L + "enforce": "bogus"})
    assert [(e.field, e.value) for e in errs] == [("metadata.labels[pod-security.kubernetes.io/enforce]", "bogus")]
    assert ps.namespace_label_errors({L + "enforce": "bogus", "a": "b"}, {L + "enforce": "bogus"}) == []
