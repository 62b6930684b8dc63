"""The pure part of the pod sandbox: capabilities, identity, runAsNonRoot,
exec's setpriv arguments and the host paths a container must not see."""

from __future__ import annotations

from typing import Any

import pytest

from kinns.node import security as sec
from kinns.node.security import ContainerConfigError, UserDb

LAST_CAP = 40
USERS = UserDb.parse("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n"
                     "app:x:1000:1001::/home/app:/bin/sh\n",
                     "root:x:0:\nwheel:x:10:app,root\napp:x:1001:\naudio:x:29:app\n")
DEFAULT_MASK = 0x00000000A80425FB


def names(numbers: tuple[int, ...] | None) -> set[str]:
    assert numbers is not None
    return {sec.CAPABILITIES[n] for n in numbers}


def test_default_set_is_containerds_and_shows_as_upstreams_mask() -> None:
    caps = sec.capability_numbers(None, LAST_CAP)
    assert names(caps) == set(sec.DEFAULT_CAPABILITIES)
    assert sec.cap_mask(caps) == DEFAULT_MASK
    assert f"{sec.cap_mask(caps):016x}" == "00000000a80425fb"


@pytest.mark.parametrize("capabilities,expect", [
    ({"add": ["NET_ADMIN"]}, set(sec.DEFAULT_CAPABILITIES) | {"NET_ADMIN"}),
    ({"drop": ["NET_RAW", "MKNOD"]}, set(sec.DEFAULT_CAPABILITIES) - {"NET_RAW", "MKNOD"}),
    ({"drop": ["ALL"]}, set()),
    ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, {"NET_BIND_SERVICE"}),
    ({"add": ["ALL"]}, set(sec.CAPABILITIES)),
    ({"add": ["ALL"], "drop": ["SYS_ADMIN"]}, set(sec.CAPABILITIES) - {"SYS_ADMIN"}),
    ({"add": ["ALL"], "drop": ["ALL"]}, set()),              # drop ALL is applied after add ALL
    ({"add": ["CHOWN"], "drop": ["CHOWN"]}, set(sec.DEFAULT_CAPABILITIES) - {"CHOWN"}),  # drops after adds
    ({"add": ["net_admin", "all"]}, set(sec.CAPABILITIES)),  # upper-cased, as containerd does
    ({"add": ["CAP_NET_ADMIN", "NO_SUCH_CAP"]}, set(sec.DEFAULT_CAPABILITIES)),  # CAP_CAP_… / unknown: ignored
])
def test_capabilities_add_and_drop_as_containerd_applies_them(capabilities: dict[str, Any], expect: set[str]) -> None:
    assert names(sec.capability_numbers(capabilities, LAST_CAP)) == expect


def test_capabilities_the_kernel_does_not_know_are_left_out() -> None:
    assert names(sec.capability_numbers({"add": ["ALL"]}, 37)) == set(sec.CAPABILITIES[:38])
    assert "BPF" not in names(sec.capability_numbers({"add": ["BPF"]}, 37))


def cs(pod_sc: dict[str, Any] | None = None, image_uid: int = 0, **sc: Any) -> sec.ProcessSecurity:
    return sec.container_security(pod_sc, {"name": "c", "securityContext": sc}, image_uid=image_uid, users=USERS,
                                  last_cap=LAST_CAP, pod="web_default(u1)")


def test_default_container_is_root_with_the_default_set() -> None:
    p = cs()
    assert (p.uid, p.gid, p.groups, p.no_new_privs, p.privileged, p.read_only_root) == (0, 0, (0, 10), False,
                                                                                        False, False)
    assert sec.cap_mask(p.caps or ()) == DEFAULT_MASK


def test_privileged_keeps_every_capability_and_ignores_no_new_privs() -> None:
    p = cs(privileged=True, allowPrivilegeEscalation=False)
    assert p.caps is None and p.privileged and not p.no_new_privs


def test_allow_privilege_escalation_false_means_no_new_privs_only_when_explicit() -> None:
    assert cs(allowPrivilegeEscalation=False).no_new_privs
    assert not cs(allowPrivilegeEscalation=True).no_new_privs
    assert not cs().no_new_privs


def test_users_and_groups() -> None:
    # container over pod; gid from /etc/passwd when runAsGroup is not set
    p = cs({"runAsUser": 5, "supplementalGroups": [7, 8], "fsGroup": 2000}, runAsUser=1000)
    assert (p.uid, p.gid) == (1000, 1001)
    assert p.groups == (1001, 10, 29, 7, 8, 2000)   # primary, /etc/group memberships, supplemental, fsGroup
    p = cs({"runAsUser": 4242, "runAsGroup": 3000, "fsGroup": 3000})
    assert (p.uid, p.gid, p.groups) == (4242, 3000, (3000,))
    assert cs({"runAsUser": 4242}).gid == 0            # unknown uid: gid 0, as containerd
    assert (cs(image_uid=65535).uid, cs(image_uid=65535).gid) == (65535, 0)
    assert cs(readOnlyRootFilesystem=True).read_only_root


@pytest.mark.parametrize("pod_sc,sc,image_uid,message", [
    ({"runAsNonRoot": True}, {}, 0,
     'container has runAsNonRoot and image will run as root (pod: "web_default(u1)", container: c)'),
    ({}, {"runAsNonRoot": True, "runAsUser": 0}, 0,
     'container\'s runAsUser breaks non-root policy (pod: "web_default(u1)", container: c)'),
    ({"runAsNonRoot": True, "runAsUser": 0}, {"runAsUser": 1000}, 0, None),   # container's user wins
    ({"runAsNonRoot": True}, {}, 65535, None),                                # the image's user is not root
    ({"runAsNonRoot": True}, {"runAsNonRoot": False}, 0, None),               # container over pod
    ({}, {}, 0, None),
])
def test_run_as_non_root(pod_sc: dict[str, Any], sc: dict[str, Any], image_uid: int, message: str | None) -> None:
    if message is None:
        cs(pod_sc, image_uid, **sc)
        return
    with pytest.raises(ContainerConfigError) as e:
        cs(pod_sc, image_uid, **sc)
    assert e.value.message == message and e.value.reason == "CreateContainerConfigError"


def test_non_numeric_image_user_message() -> None:
    with pytest.raises(ContainerConfigError, match=r"^container has runAsNonRoot and image has non-numeric user "
                       r"\(nonroot\), cannot verify user is non-root \(pod: \"p_ns\(u\)\", container: c\)$"):
        sec.verify_run_as_non_root({"runAsNonRoot": True}, {}, None, "nonroot", "p_ns(u)", "c")


def test_pod_ref_is_the_kubelets_format() -> None:
    assert sec.pod_ref("web", "shop", "1234") == "web_shop(1234)"


def test_setpriv_arguments() -> None:
    assert sec.setpriv_argv(cs(privileged=True), "/usr/bin/setpriv") == [
        "/usr/bin/setpriv", "--pdeathsig", "KILL", "--reuid", "0", "--regid", "0", "--groups", "0,10", "--"]
    argv = sec.setpriv_argv(cs({"runAsUser": 1000, "runAsGroup": 3000}, allowPrivilegeEscalation=False,
                               capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}))
    assert argv == ["setpriv", "--pdeathsig", "KILL", "--no-new-privs", "--inh-caps", "-all", "--bounding-set",
                    "-all,+net_bind_service", "--reuid", "1000", "--regid", "3000", "--groups", "3000,10,29", "--"]
    root = sec.setpriv_argv(cs())
    assert root[root.index("--bounding-set") + 1].startswith("-all,+chown,+dac_override,")


def test_user_db_parse_skips_junk() -> None:
    db = UserDb.parse("bad line\nx:x:notanumber:1::/:\nu:x:7:8::/:\n", "g:x:9:u,,v\nbroken\n")
    assert db.primary_gid == {7: 8} and db.names == {7: "u"} and db.member_of == {"u": (9,), "v": (9,)}


# -- the filesystem view ---------------------------------------------------------------

def test_hidden_paths_cover_state_homes_kubeconfigs_and_secrets() -> None:
    dirs, files = sec.hidden_paths({"KINNS_STATE_DIR": "/srv/kinns", "HOME": "/home/me",
                                    "KUBECONFIG": "/etc/k/a.conf:/opt/b.conf"}, ["/srv/rt"])
    for d in ("/root", "/home", "/var/lib", "/run", "/var/lib/kinns", "/srv/kinns", "/srv/rt", "/home/me",
              "/home/me/.kube", "/etc/kubernetes"):
        assert d in dirs
    for f in ("/etc/shadow", "/etc/gshadow", "/etc/ssh/ssh_host_*_key", "/etc/k/a.conf", "/opt/b.conf"):
        assert f in files


def test_view_collapses_nesting_and_keeps_what_containers_need() -> None:
    view = sec.filesystem_view(
        hide_dirs=["/root", "/root/.kube", "/var/lib", "/var/lib/kinns", "/srv/kinns/", "/tmp/kinns-state", "/"],
        hide_files=["/etc/shadow", "/root/.kube/config", "/srv/kinns/x", "/tmp/kubeconfig"],
        keep=["/root/.pyenv/versions/3.11.7", "/root/.pyenv/versions/3.11.7/lib", "/work/main", "/var/lib"])
    assert view.opaque_dirs == ("/root", "/srv/kinns", "/var/lib")     # /tmp gets a fresh tmpfs anyway
    assert view.empty_files == ("/etc/shadow",)
    assert view.keep == ("/root/.pyenv/versions/3.11.7",)              # only what a hidden dir covers
    assert view.inner_dirs == () and view.inner_files == ()


def test_hidden_paths_inside_a_kept_path_stay_hidden() -> None:
    # the kinns source tree under /root, with a state directory and a kubeconfig inside it
    view = sec.filesystem_view(["/root", "/root/kinns/state"], ["/root/kinns/kubeconfig"], ["/root/kinns"])
    assert view.opaque_dirs == ("/root",) and view.keep == ("/root/kinns",)
    assert view.inner_dirs == ("/root/kinns/state",) and view.inner_files == ("/root/kinns/kubeconfig",)
    assert view.to_spec()["inner_dirs"] == ["/root/kinns/state"]


def test_proc_sys_and_dev_tables_are_upstreams() -> None:
    assert "/proc/kcore" in sec.MASKED_PATHS and "/sys/firmware" in sec.MASKED_PATHS
    assert set(sec.READONLY_PATHS) == {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
    assert [d[0] for d in sec.DEVICES] == ["null", "zero", "full", "random", "urandom", "tty"]
    assert ("ptmx", "pts/ptmx") in sec.DEV_SYMLINKS and ("fd", "/proc/self/fd") in sec.DEV_SYMLINKS


@pytest.mark.parametrize("rel,allowed", [
    ("node/security.py", {"__future__", "posixpath", "typing"}),
    ("api/podsecurity.py", {"__future__", "json", "re", "typing"}),
])
def test_the_deciding_modules_are_pure(rel: str, allowed: set[str]) -> None:
    """No I/O, and (security.py, imported by the zygote) nothing heavy such as dataclasses."""
    import ast
    from pathlib import Path
    tree = ast.parse((Path(sec.__file__).resolve().parents[1] / rel).read_text())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods <= allowed, mods - allowed
