"""The container runtime in real namespaces: sandbox files, overlay roots,
built-in images, lifecycle, logs, exec, cgroups, and no leaks.

Each test module gets a pod network namespace joined by a veth pair to a
"client" namespace (both named kinnstest-…), so requests come from another
address as they would from another pod.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from kinns.node.cgroups import Cgroups, find_parents
from kinns.node.images import ImageError
from kinns.node.logs import read_log
from kinns.node.runtime import Mount, Runtime, cleanup
from kinns.node.sandbox import Sandbox, create_sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

POD_IP = "10.123.7.2"
CLIENT_IP = "10.123.7.1"


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def netns() -> Iterator[tuple[str, str]]:
    tag = f"kinnstest-{os.getpid() % 100000}"
    pod, client = f"{tag}-pod", f"{tag}-cli"
    sh("ip", "netns", "add", pod)
    sh("ip", "netns", "add", client)
    try:
        sh("ip", "-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client)
        for ns, ip in ((pod, POD_IP), (client, CLIENT_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield pod, client
    finally:
        sh("ip", "netns", "del", pod)
        sh("ip", "netns", "del", client)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kinns-rt")


@pytest.fixture(scope="module")
def rt(state_dir: Path) -> Iterator[Runtime]:
    r = Runtime(state_dir)
    yield r
    r.close()
    assert cleanup(state_dir) == []
    assert not any(r.cgroup_parent in p for p in find_parents())
    assert not [m for m in Path("/proc/mounts").read_text().splitlines() if str(state_dir) in m]


def make_pod(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4())}, "spec": spec}


@pytest.fixture
def sandbox(rt: Runtime, state_dir: Path, netns: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    name = request.node.name.replace("_", "-")[:40].strip("-")
    sb = create_sandbox(state_dir, make_pod(name, "shop"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
    yield sb
    rt.remove_pod(sb)


def in_client(netns: tuple[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns[1], *cmd], capture_output=True, text=True, timeout=20)


def curl(netns: tuple[str, str], url: str, tries: int = 50) -> str:
    for _ in range(tries):
        r = in_client(netns, "curl", "-sS", "--max-time", "2", url)
        if r.returncode == 0:
            return r.stdout
        time.sleep(0.05)
    raise AssertionError(f"curl {url}: {r.stderr}")


def run_to_end(rt: Runtime, sb: Sandbox, script: str, **kw: Any) -> tuple[int | None, str]:
    st = rt.start_container(sb, {"name": kw.pop("name", "job"), "image": "busybox",
                                 "command": ["sh", "-c", script]}, **kw)
    code = rt.wait(st.id, 20)
    return code, "".join(read_log(Path(st.log_path)))


def test_hostname_resolv_conf_and_hosts(rt: Runtime, sandbox: Sandbox) -> None:
    code, out = run_to_end(rt, sandbox, "hostname; cat /etc/resolv.conf /etc/hosts")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == sandbox.name
    assert "search shop.svc.cluster.local svc.cluster.local cluster.local" in lines
    assert "nameserver 10.96.0.10" in lines and "options ndots:5" in lines
    assert f"{POD_IP}\t{sandbox.name}" in lines
    assert "# Kubernetes-managed hosts file." in lines


def test_containers_of_a_pod_share_localhost(rt: Runtime, sandbox: Sandbox) -> None:
    rt.start_container(sandbox, {"name": "server", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                                 "args": ["netexec", "--http-port=8080", "--udp-port=8081"]})
    code, out = run_to_end(rt, sandbox, "for i in $(seq 50); do wget -qO- http://localhost:8080/hostname && exit 0;"
                                        " sleep 0.1; done; exit 1", name="client")
    assert code == 0, out
    assert out.strip() == sandbox.name


def test_nginx_like_image_answers_with_pod_name_and_ip(rt: Runtime, sandbox: Sandbox,
                                                       netns: tuple[str, str]) -> None:
    st = rt.start_container(sandbox, {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]})
    assert curl(netns, f"http://{POD_IP}/").strip() == f"{sandbox.name} {POD_IP}"
    # the page is where nginx keeps it, and the access shows in the log
    r = rt.exec_sync(st.id, ["cat", "/usr/share/nginx/html/index.html"])
    assert r.exit_code == 0 and sandbox.name in r.stdout.decode()
    other = rt.start_container(sandbox, {"name": "alt", "image": "docker.io/bitnami/nginx:latest",
                                         "ports": [{"containerPort": 8088}]})
    assert sandbox.name in curl(netns, f"http://{POD_IP}:8088/")
    assert rt.status(other.id).state == "running"


def test_agnhost_netexec(rt: Runtime, sandbox: Sandbox, netns: tuple[str, str]) -> None:
    rt.start_container(sandbox, {"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                                 "args": ["netexec", "--http-port=8080", "--udp-port=8081"]})
    base = f"http://{POD_IP}:8080"
    assert curl(netns, base + "/hostname") == sandbox.name
    assert curl(netns, base + "/clientip").split(":")[0] == CLIENT_IP
    assert curl(netns, base + "/echo?msg=hello%20kinns") == "hello kinns"
    dial = json.loads(curl(netns, base + f"/dial?request=hostname&host={POD_IP}&port=8081&protocol=udp&tries=2"))
    assert dial["responses"] == [sandbox.name, sandbox.name]
    udp = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); "
           f"s.sendto(b'echo over-udp', ('{POD_IP}', 8081)); print(s.recv(100).decode())")
    assert in_client(netns, sys.executable, "-c", udp).stdout.strip() == "over-udp"


def test_serve_hostname_and_pause(rt: Runtime, sandbox: Sandbox, netns: tuple[str, str]) -> None:
    rt.start_container(sandbox, {"name": "sh", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                                 "args": ["serve-hostname"]})
    assert curl(netns, f"http://{POD_IP}:9376/") == sandbox.name
    p = rt.start_container(sandbox, {"name": "pause", "image": "registry.k8s.io/pause:3.9"})
    time.sleep(0.2)
    assert rt.status(p.id).state == "running"
    assert rt.stop_container(p.id, 5).exit_code == 0


def test_unknown_image_without_command_is_refused(rt: Runtime, sandbox: Sandbox) -> None:
    with pytest.raises(ImageError) as e:
        rt.start_container(sandbox, {"name": "x", "image": "example.com/team/app:1.0"})
    assert e.value.reason == "ErrImagePull"
    assert "no built-in behaviour for image 'example.com/team/app:1.0'" in e.value.message
    assert "command" in e.value.message
    # with a command the same image runs host binaries
    st = rt.start_container(sandbox, {"name": "x", "image": "example.com/team/app:1.0", "command": ["true"]})
    assert rt.wait(st.id, 10) == 0


def test_exit_codes_and_missing_binary(rt: Runtime, sandbox: Sandbox) -> None:
    assert run_to_end(rt, sandbox, "exit 0")[0] == 0
    code, _ = run_to_end(rt, sandbox, "exit 42")
    assert code == 42
    st = rt.start_container(sandbox, {"name": "bad", "image": "busybox", "command": ["no-such-binary-kinns"]})
    assert rt.wait(st.id, 5) == 128
    assert st.reason == "StartError" and "no-such-binary-kinns" in st.message
    # PID 1 of its namespace cannot be SIGKILLed from inside it; from the node it can
    st = rt.start_container(sandbox, {"name": "killed", "image": "busybox", "command": ["sh", "-c", "kill -9 $$$$"]})  # $$ escapes $
    assert rt.wait(st.id, 5) == 0
    st = rt.start_container(sandbox, {"name": "killed2", "image": "busybox", "command": ["sleep", "1000"]})
    rt.signal(st.id, signal.SIGKILL)
    assert rt.wait(st.id, 5) == 137 and st.reason == "Error" and st.signal == 9
    ok = rt.start_container(sandbox, {"name": "ok", "image": "alpine", "command": ["true"]})
    rt.wait(ok.id, 5)
    assert ok.reason == "Completed"


def test_writes_outside_volumes_vanish_on_restart(rt: Runtime, sandbox: Sandbox, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    mounts = [Mount(str(vol), "/data")]
    code, out = run_to_end(rt, sandbox, "echo kept > /data/f; echo lost > /etc/kinns-scratch; "
                                        "echo lost > /root-file; cat /etc/kinns-scratch", mounts=mounts)
    assert (code, out) == (0, "lost\n")
    assert not Path("/etc/kinns-scratch").exists() and not Path("/root-file").exists()
    code, out = run_to_end(rt, sandbox, "cat /data/f; ls /etc/kinns-scratch /root-file 2>&1 | wc -l; "
                                        "test -e /etc/kinns-scratch && echo still-there || echo gone",
                           mounts=mounts, restart_count=1)
    assert code == 0
    assert out.splitlines()[0] == "kept" and out.splitlines()[-1] == "gone"
    ro = run_to_end(rt, sandbox, "echo x > /data/g", mounts=[Mount(str(vol), "/data", read_only=True)],
                    restart_count=2)
    assert ro[0] != 0 and not (vol / "g").exists()


def test_graceful_termination(rt: Runtime, sandbox: Sandbox) -> None:
    # handles SIGTERM: exits with its own code, well before the grace period
    polite = rt.start_container(sandbox, {"name": "polite", "image": "busybox", "command": [
        "sh", "-c", "trap 'echo bye; exit 7' TERM; while true; do sleep 0.05; done"]})
    time.sleep(0.3)
    t0 = time.monotonic()
    assert rt.stop_container(polite.id, 10).exit_code == 7
    assert time.monotonic() - t0 < 3
    assert "bye" in "".join(read_log(Path(polite.log_path)))
    # ignores SIGTERM: SIGKILL after the grace period, children too
    stubborn = rt.start_container(sandbox, {"name": "stubborn", "image": "busybox", "command": [
        "sh", "-c", "trap '' TERM; sleep 1000 & while true; do sleep 0.05; done"]})
    time.sleep(0.3)
    pids = rt.cgroups.pids(stubborn.cgroup)
    assert len(pids) >= 2
    t0 = time.monotonic()
    st = rt.stop_container(stubborn.id, 1.0)
    took = time.monotonic() - t0
    assert st.exit_code == 137 and st.signal == signal.SIGKILL
    assert 0.9 < took < 5
    time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_logs_streams_timestamps_previous(rt: Runtime, sandbox: Sandbox) -> None:
    run_to_end(rt, sandbox, "echo one; echo two >&2; printf 'no-newline'", name="logger")
    run_to_end(rt, sandbox, "echo second-run", name="logger", restart_count=1)
    prev = Runtime.log_path(sandbox, "logger", 0)
    assert "".join(read_log(prev)) == "one\ntwo\nno-newline\n"
    assert "".join(read_log(prev, tail=1)) == "no-newline\n"
    stamped = list(read_log(prev, timestamps=True))
    assert stamped[0].endswith("Z one\n") and stamped[0][:4].isdigit()
    raw = prev.read_text().splitlines()
    assert raw[1].split(" ", 3)[1:3] == ["stderr", "F"]
    assert "".join(read_log(Runtime.log_path(sandbox, "logger", 1))) == "second-run\n"


def test_follow_logs(rt: Runtime, sandbox: Sandbox) -> None:
    st = rt.start_container(sandbox, {"name": "ticker", "image": "busybox", "command": [
        "sh", "-c", "for i in 1 2 3; do echo tick$i; sleep 0.2; done"]})
    got = list(read_log(Path(st.log_path), follow=True, until=lambda: rt.status(st.id).state == "exited"))
    assert got == ["tick1\n", "tick2\n", "tick3\n"]


def test_exec(rt: Runtime, sandbox: Sandbox) -> None:
    st = rt.start_container(sandbox, {"name": "main", "image": "busybox", "command": ["sleep", "1000"]},
                            env={"GREETING": "hi"})
    r = rt.exec_sync(st.id, ["sh", "-c", "echo $GREETING $(hostname); cat; echo oops >&2; exit 3"], input=b"stdin!\n")
    assert r.exit_code == 3
    assert r.stdout == f"hi {sandbox.name}\nstdin!\n".encode()
    assert r.stderr == b"oops\n"
    # exec sees the container's private root
    rt.exec_sync(st.id, ["sh", "-c", "echo mine > /etc/exec-file"])
    assert rt.exec_sync(st.id, ["cat", "/etc/exec-file"]).stdout == b"mine\n"
    assert not Path("/etc/exec-file").exists()
    # a tty
    h = rt.exec(st.id, ["sh", "-c", "tty; echo done"], tty=True)
    assert h.pty_master is not None
    out = b""
    deadline = time.time() + 5
    while b"done" not in out and time.time() < deadline:
        try:
            out += os.read(h.pty_master, 1024)
        except OSError:
            break
    assert h.wait(5) == 0 and b"/dev/pts/" in out
    os.close(h.pty_master)


def test_env_and_expansion(rt: Runtime, sandbox: Sandbox) -> None:
    st = rt.start_container(sandbox, {"name": "env", "image": "busybox",
                                      "command": ["sh", "-c", "echo $(MSG) $WEB_SERVICE_HOST"]},
                            env={"MSG": "expanded", "WEB_SERVICE_HOST": "10.96.0.20"})
    rt.wait(st.id, 5)
    assert "".join(read_log(Path(st.log_path))) == "expanded 10.96.0.20\n"


def test_memory_limit_oom_killed(rt: Runtime, sandbox: Sandbox) -> None:
    if not rt.cgroups.v1.get("memory") and "memory" not in rt.cgroups.v2_controllers:
        pytest.skip("no memory controller")
    st = rt.start_container(sandbox, {"name": "hog", "image": "busybox", "resources": {"limits": {"memory": "32Mi"}},
                                      "command": ["sh", "-c", "head -c 200000000 /dev/zero > /tmp/big; echo survived"]})
    assert rt.wait(st.id, 20) == 137
    assert st.reason == "OOMKilled"


_STARTER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from kinns.node.runtime import Runtime
    from kinns.node.sandbox import create_sandbox
    sd, netns, ip, how = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    rt = Runtime(sd)
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "away1"}, "spec": {}}
    sb = create_sandbox(sd, pod, netns=netns, pod_ip=ip)
    runs = {
        "a": rt.start_container(sb, {"name": "a", "image": "busybox", "command": ["sh", "-c", "sleep 1000 & sleep 1000"]}),
        "web": rt.start_container(sb, {"name": "web", "image": "nginx", "ports": [{"containerPort": 8099}]}),
        "short": rt.start_container(sb, {"name": "short", "image": "busybox",
                                         "command": ["sh", "-c", "sleep 1; echo bye; exit 3"]}),
        "in": rt.start_container(sb, {"name": "in", "image": "busybox", "command": ["sh"], "stdin": True}),
    }
    print(json.dumps({k: [st.id, st.pid] for k, st in runs.items()}), flush=True)
    if how == "detach":
        rt.detach()
        sys.exit(0)
    time.sleep(1000)
""")


@pytest.mark.parametrize("how", ["sigkill", "detach"])
def test_containers_outlive_their_runtime(how: str, tmp_path: Path, netns: tuple[str, str]) -> None:
    """A runtime's process that dies (a kubelet SIGKILLed) or lets go leaves
    its containers running; a new Runtime on the same directory finds them
    with the same PIDs, hears the exit that happened meanwhile, and can
    still exec, attach and stop; close() then takes everything down."""
    sd = tmp_path / "away"
    p = subprocess.Popen([sys.executable, "-c", _STARTER, str(sd), f"/run/netns/{netns[0]}", POD_IP, how],
                         stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parents[2]))
    assert p.stdout is not None
    runs = {k: (cid, pid) for k, (cid, pid) in json.loads(p.stdout.readline()).items()}
    if how == "sigkill":
        p.kill()
    p.wait()
    p.stdout.close()
    cg = Cgroups(json.loads((sd / "runtime.json").read_text())["cgroup_parent"])
    before = cg.pids()
    time.sleep(1.5)  # "short" exits while nobody is connected
    alive = {k for k, (_, pid) in runs.items() if Path(f"/proc/{pid}").exists()}
    assert {"a", "web", "in"} <= alive
    assert curl(netns, f"http://{POD_IP}:8099/").strip() == f"p {POD_IP}"
    heard: list[tuple[str, int | None]] = []
    rt = Runtime(sd, on_exit=lambda st: heard.append((st.name, st.exit_code)))
    try:
        for name in ("a", "web", "in"):
            cid, pid = runs[name]
            st = rt.status(cid)
            assert (st.state, st.pid, st.name, st.pod_uid) == ("running", pid, name, "away1")
        short = rt.status(runs["short"][0])
        assert (short.state, short.exit_code, short.reason) == ("exited", 3, "Error")
        assert heard == [("short", 3)]
        assert "".join(read_log(Path(short.log_path))) == "bye\n"
        assert rt.exec_sync(runs["a"][0], ["hostname"]).stdout == b"p\n"
        h = rt.attach(runs["in"][0])
        h.write(b"echo still-attached; exit 5\n")
        assert rt.wait(runs["in"][0], 5) == 5
        h.close()
        assert "still-attached" in "".join(read_log(Path(rt.status(runs["in"][0]).log_path)))
        assert rt.stop_container(runs["web"][0], 30).state == "exited"
        deadline = time.time() + 5
        while ("web", 137) not in heard:  # the callback comes just after the status
            assert time.time() < deadline, heard
            time.sleep(0.01)
    finally:
        rt.close()
    time.sleep(0.1)
    assert not [x for x in before if Path(f"/proc/{x}/cmdline").exists() and Path(f"/proc/{x}/cmdline").read_bytes()]
    assert cleanup(sd) == []
    assert not cg.dirs("")


def test_cleanup_kills_a_detached_zygote(tmp_path: Path, netns: tuple[str, str]) -> None:
    """`kinns down` with nobody connected: cleanup() finds the zygote daemon
    and takes it and every container down."""
    sd = tmp_path / "left"
    rt = Runtime(sd)
    zygote = rt._zygote.pid
    sb = create_sandbox(sd, make_pod("left"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
    st = rt.start_container(sb, {"name": "a", "image": "busybox", "command": ["sh", "-c", "sleep 1000 & sleep 1000"]})
    deadline = time.time() + 5
    while len(pids := rt.cgroups.pids(st.cgroup)) < 2:
        assert time.time() < deadline
        time.sleep(0.02)
    rt.detach()
    refused = rt.start_container(sb, {"name": "b", "image": "busybox", "command": ["true"]})
    assert refused.reason == "StartError" and "detached" in refused.message
    assert Path(f"/proc/{st.pid}").exists()
    removed = cleanup(sd)
    assert f"zygote {zygote}" in removed and any(r.startswith("cgroup ") for r in removed)
    time.sleep(0.1)
    assert not [x for x in pids | {zygote} if Path(f"/proc/{x}/cmdline").exists()
                and Path(f"/proc/{x}/cmdline").read_bytes()]
    assert cleanup(sd) == []


def test_one_runtime_at_a_time(tmp_path: Path, netns: tuple[str, str]) -> None:
    """A second Runtime on the same directory takes the zygote over: the
    first one stops driving it but kills nothing; a container nobody
    recorded (its runtime died between the spawn and the record) is killed."""
    sd = tmp_path / "two"
    first = Runtime(sd)
    sb = create_sandbox(sd, make_pod("two"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
    kept = first.start_container(sb, {"name": "kept", "image": "busybox", "command": ["sleep", "1000"]})
    lost = first.start_container(sb, {"name": "unrecorded", "image": "busybox", "command": ["sleep", "1000"]})
    first._journal.put("container", lost.id, None)   # as if its runtime died before writing it down
    second = Runtime(sd)
    try:
        assert second.status(kept.id).pid == kept.pid and second.status(kept.id).state == "running"
        deadline = time.time() + 5
        while Path(f"/proc/{lost.pid}/cmdline").exists() and Path(f"/proc/{lost.pid}/cmdline").read_bytes():
            assert time.time() < deadline, "the unrecorded container was not killed"
            time.sleep(0.05)
        time.sleep(0.2)
        assert first.status(kept.id).state == "running"   # the replaced runtime did not declare it dead
        st = first.start_container(sb, {"name": "late", "image": "busybox", "command": ["true"]})
        assert st.reason == "StartError" and "another runtime" in st.message
        first.close()   # not the zygote's owner any more: kills nothing
        assert Path(f"/proc/{kept.pid}/cmdline").read_bytes().startswith(b"sleep")
        assert second.stop_container(kept.id, 0).exit_code == 137
    finally:
        second.close()
    assert cleanup(sd) == []


def test_a_dropped_connection_is_made_again(rt: Runtime, sandbox: Sandbox) -> None:
    """The zygote drops a client that does not read (it must not block every
    container's logs): the runtime connects again and misses no exit, and
    declares nothing dead."""
    long = rt.start_container(sandbox, {"name": "long", "image": "busybox", "command": ["sleep", "1000"]})
    short = rt.start_container(sandbox, {"name": "short", "image": "busybox", "command": ["sh", "-c", "exit 6"]})
    old = rt._zygote
    old.sock.shutdown(socket.SHUT_RD)   # what a dropped connection looks like from here
    assert rt.wait(short.id, 5) == 6
    deadline = time.time() + 5
    while rt._zygote is old:
        assert time.time() < deadline
        time.sleep(0.02)
    assert rt.status(long.id).state == "running" and rt._zygote.pid == old.pid
    assert rt.stop_container(long.id, 0).exit_code == 137


def test_containers_lost_with_the_zygote_while_detached(tmp_path: Path, netns: tuple[str, str]) -> None:
    """A power cut while no kubelet was connected (the zygote and its
    containers gone): the next Runtime reports them ended, exit 255
    reason Unknown as containerd does after a reboot, and starts anew."""
    sd = tmp_path / "cut"
    rt = Runtime(sd)
    sb = create_sandbox(sd, make_pod("cut"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
    st = rt.start_container(sb, {"name": "a", "image": "busybox", "command": ["sleep", "1000"]})
    zygote = rt._zygote.pid
    rt.detach()
    os.kill(zygote, signal.SIGKILL)
    deadline = time.time() + 5
    while Path(f"/proc/{st.pid}/cmdline").exists() and Path(f"/proc/{st.pid}/cmdline").read_bytes():
        assert time.time() < deadline
        time.sleep(0.02)
    heard: list[str] = []
    again = Runtime(sd, on_exit=lambda s: heard.append(s.id))
    try:
        old = again.status(st.id)
        assert (old.state, old.exit_code, old.reason) == ("exited", 255, "Unknown") and heard == [st.id]
        new = again.start_container(sb, {"name": "a", "image": "busybox", "command": ["sh", "-c", "exit 4"]},
                                    restart_count=1)
        assert again.wait(new.id, 5) == 4 and again._zygote.pid != zygote
    finally:
        again.close()
    assert cleanup(sd) == []


@pytest.mark.parametrize("container,expect", [
    ({"image": "nginx"}, ("argv", "httpd", 80)),
    ({"image": "nginxinc/nginx-unprivileged:1.25"}, ("argv", "httpd", 8080)),
    ({"image": "httpd:2.4", "ports": [{"containerPort": 8081}]}, ("argv", "httpd", 8081)),
    ({"image": "nginx", "command": ["nginx", "-g", "daemon off;"]}, ("argv", "httpd", 80)),
    ({"image": "nginx", "command": ["sh", "-c", "sleep 1"]}, ("argv", "sh", None)),
    ({"image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "command": ["/agnhost", "serve-hostname"]},
     ("builtin", "serve-hostname", None)),
    ({"image": "k8s.gcr.io/pause:3.9"}, ("builtin", "pause", None)),
    ({"image": "busybox:1.36"}, ("argv", "sh", None)),
    ({"image": "curlimages/curl", "args": ["-s", "http://x"]}, ("argv", "curl", None)),
    ({"image": "gcr.io/google-samples/hello-app:2.0"}, ("builtin", "hello-app", 8080)),
])
def test_image_resolution(container: dict[str, Any], expect: tuple[str, str, int | None]) -> None:
    from kinns.node.images import resolve
    b = resolve(dict(container, name="c"), "pod", "10.0.0.1")
    kind, what, port = expect
    if kind == "argv":
        assert b.argv[0] == "busybox" and b.argv[1] == what if what == "httpd" else b.argv[0] == what
    else:
        assert b.builtin == what
    if port:
        assert b.ports == [port]


def test_agnhost_unknown_subcommand_is_a_clear_error() -> None:
    from kinns.node.images import resolve
    with pytest.raises(ImageError, match="no built-in agnhost 'porter'"):
        resolve({"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": ["porter"]})


def test_attach_stdin_and_tty(rt: Runtime, sandbox: Sandbox) -> None:
    st = rt.start_container(sandbox, {"name": "in", "image": "busybox", "command": ["sh"], "stdin": True,
                                      "stdinOnce": True})
    time.sleep(0.2)
    assert rt.status(st.id).state == "running"  # sh waits on its stdin
    h = rt.attach(st.id)
    h.write(b"echo attached-$((40+2))\n")
    h.close()  # stdinOnce: the first detach closes stdin, sh sees EOF
    assert rt.wait(st.id, 5) == 0
    assert "".join(read_log(Path(st.log_path))) == "attached-42\n"

    t = rt.start_container(sandbox, {"name": "tty", "image": "busybox", "command": ["sh"], "stdin": True, "tty": True})
    h = rt.attach(t.id)
    h.resize(33, 101)
    h.write(b"tty; stty size; exit 6\n")
    assert rt.wait(t.id, 5) == 6
    out = "".join(read_log(Path(t.log_path)))
    assert "/dev/pts/" in out and "33 101" in out
    h.close()
    with pytest.raises(RuntimeError, match="stdin: true"):
        rt.attach(rt.start_container(sandbox, {"name": "no", "image": "busybox", "command": ["sleep", "9"]}).id)


def test_zygote_crash_is_reported_and_recovered(rt: Runtime, sandbox: Sandbox) -> None:
    st = rt.start_container(sandbox, {"name": "victim", "image": "busybox", "command": ["sleep", "1000"]})
    os.kill(rt._zygote.pid, signal.SIGKILL)
    assert rt.wait(st.id, 5) == 137
    assert "zygote" in st.message
    again = rt.start_container(sandbox, {"name": "after", "image": "busybox", "command": ["sh", "-c", "exit 3"]})
    assert rt.wait(again.id, 5) == 3


# -- the sandbox: namespaces, capabilities, users, the filesystem view, pids ----------------------

def sh_in(rt: Runtime, sb: Sandbox, script: str, mounts: Sequence[Mount] = (),
          **container: Any) -> tuple[int | None, str]:
    """Run `script` as a container's main process; its exit code and output."""
    st = rt.start_container(sb, {"name": container.pop("name", "probe"), "image": container.pop("image", "busybox"),
                                 "command": ["sh", "-c", script], **container}, mounts=mounts)
    code = rt.wait(st.id, 20)
    return code, "".join(read_log(Path(st.log_path)))


def other_sandbox(rt: Runtime, state_dir: Path, netns: tuple[str, str], name: str, **spec: Any) -> Sandbox:
    return create_sandbox(state_dir, make_pod(name, "shop", **spec), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)


def caps_of(status: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in status.splitlines() if line.startswith("Cap"))}


def test_each_container_is_pid_1_of_its_own_pid_namespace(rt: Runtime, sandbox: Sandbox) -> None:
    main = rt.start_container(sandbox, {"name": "main", "image": "busybox", "command": ["sleep", "1000"]})
    r = rt.exec_sync(main.id, ["ps", "-e", "-o", "pid=,args="])
    procs = [line.split(None, 1) for line in r.stdout.decode().splitlines()]
    assert procs[0] == ["1", "sleep 1000"], procs
    assert len(procs) == 2 and procs[1][1].startswith("ps ")  # only the container's own processes
    # the runtime still knows it by its host PID, and exec/stop use that
    assert Path(f"/proc/{main.pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    code, out = sh_in(rt, sandbox, "ps -e -o args= | grep -c '^sleep'")
    assert out == "0\n"  # another container of the pod does not see it
    assert rt.stop_container(main.id, 0).exit_code == 137


def test_share_process_namespace_has_a_pause_pid_1(rt: Runtime, state_dir: Path, netns: tuple[str, str]) -> None:
    sb = other_sandbox(rt, state_dir, netns, "shared-pid", shareProcessNamespace=True)
    try:
        a = rt.start_container(sb, {"name": "a", "image": "busybox", "command": ["sleep", "1001"]})
        b = rt.start_container(sb, {"name": "b", "image": "busybox", "command": ["sleep", "1002"]})
        r = rt.exec_sync(b.id, ["ps", "-e", "-o", "pid=,user=,args="])
        rows = [line.split(None, 2) for line in r.stdout.decode().splitlines()]
        assert rows[0][0] == "1" and rows[0][2] == "/pause" and rows[0][1] in ("65535", "nobody", "nogroup")
        assert {"sleep 1001", "sleep 1002"} <= {row[2] for row in rows}
        # pause sits in an empty root, as another user: /proc/1/root shows nothing of the node
        assert rt.exec_sync(a.id, ["ls", "/proc/1/root/"]).exit_code != 0
        held = rt.cgroups.pids(f"pod{sb.uid}")
    finally:
        rt.remove_pod(sb)
    time.sleep(0.1)
    assert len(held) == 3 and not any(Path(f"/proc/{p}").exists() for p in held)


def test_ipc_namespace_is_the_pods(rt: Runtime, sandbox: Sandbox, state_dir: Path, netns: tuple[str, str]) -> None:
    code, out = sh_in(rt, sandbox, "ipcmk -M 4096 >/dev/null && ipcs -m | grep -c '^0x'", name="maker")
    assert (code, out) == (0, "1\n")
    # another container of the pod, started after the first one ended, sees the segment
    assert sh_in(rt, sandbox, "ipcs -m | grep -c '^0x'", name="reader")[1] == "1\n"
    other = other_sandbox(rt, state_dir, netns, "ipc-other")
    try:
        assert sh_in(rt, other, "ipcs -m | grep -c '^0x'")[1] == "0\n"
    finally:
        rt.remove_pod(other)
    host = other_sandbox(rt, state_dir, netns, "ipc-host", hostIPC=True, hostPID=True)
    try:
        code, out = sh_in(rt, host, "test -d /proc/$PPID && ps -e | wc -l")
        assert code == 0 and int(out) > 20  # the node's processes
    finally:
        rt.remove_pod(host)


DEV = ["core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
       "termination-log", "tty", "urandom", "zero"]


def test_dev_is_the_default_device_list(rt: Runtime, sandbox: Sandbox) -> None:
    code, out = sh_in(rt, sandbox, "ls /dev; echo --; ls /dev/pts; echo --; stat -c '%t:%T %a' /dev/null /dev/urandom;"
                                   " echo x > /dev/null && head -c 4 /dev/zero | wc -c; mount | grep -c ' /dev/pts '")
    parts = out.split("--\n")
    assert code == 0 and parts[0].split() == DEV
    assert parts[1].split() == ["ptmx"]          # a devpts instance of its own: none of the node's terminals
    assert parts[2].split() == ["1:3", "666", "1:9", "666", "4", "1"]
    code, out = sh_in(rt, sandbox, "ls /dev | wc -l", securityContext={"privileged": True})
    assert int(out) == len(os.listdir("/dev"))  # privileged: the node's /dev


def test_capabilities(rt: Runtime, sandbox: Sandbox) -> None:
    default = caps_of(sh_in(rt, sandbox, "cat /proc/self/status")[1])
    assert default["CapEff"] == default["CapPrm"] == default["CapBnd"] == "00000000a80425fb"
    assert default["CapInh"] == default["CapAmb"] == "0000000000000000"
    host = caps_of(Path("/proc/self/status").read_text())
    priv = caps_of(sh_in(rt, sandbox, "cat /proc/self/status", securityContext={"privileged": True})[1])
    assert priv["CapEff"] == host["CapEff"] and priv["CapBnd"] == host["CapBnd"]
    bind_only = {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, "allowPrivilegeEscalation": False}
    code, out = sh_in(rt, sandbox, "grep -E 'CapEff|CapBnd|NoNewPrivs' /proc/self/status; chown 1 /tmp 2>&1",
                      securityContext=bind_only)
    assert "CapEff:\t0000000000000400" in out and "CapBnd:\t0000000000000400" in out and "NoNewPrivs:\t1" in out
    assert "Operation not permitted" in out
    added = caps_of(sh_in(rt, sandbox, "cat /proc/self/status",
                          securityContext={"capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW"]}})[1])
    assert int(added["CapEff"], 16) == (0xA80425FB | 1 << 12) & ~(1 << 13)  # + NET_ADMIN - NET_RAW


def test_users_groups_and_exec_identity(rt: Runtime, sandbox: Sandbox) -> None:
    sb = create_sandbox(Path(sandbox.dir).parent.parent,
                        make_pod("ids", "shop", securityContext={"runAsUser": 4242, "runAsGroup": 3000,
                                                                 "fsGroup": 2000, "supplementalGroups": [5000]}),
                        netns=sandbox.netns, pod_ip=POD_IP)
    try:
        st = rt.start_container(sb, {"name": "c", "image": "busybox", "command": ["sleep", "1000"]})
        time.sleep(0.1)
        main = Path(f"/proc/{st.pid}/status").read_text()
        assert "Uid:\t4242\t4242\t4242\t4242" in main and "Gid:\t3000\t3000\t3000\t3000" in main
        groups = next(line for line in main.splitlines() if line.startswith("Groups:"))
        assert sorted(groups.split()[1:]) == ["2000", "3000", "5000"]
        assert caps_of(main)["CapEff"] == "0000000000000000" and caps_of(main)["CapBnd"] == "00000000a80425fb"
        r = rt.exec_sync(st.id, ["sh", "-c", "id -u; id -g; id -G; grep CapEff /proc/self/status"])
        out = r.stdout.decode().split()
        assert out[:2] == ["4242", "3000"] and sorted(out[2:5]) == ["2000", "3000", "5000"]
        assert out[5:] == ["CapEff:", "0000000000000000"]
    finally:
        rt.remove_pod(sb)
    # an image whose user is not root: pause runs as 65535
    p = rt.start_container(sandbox, {"name": "pause", "image": "registry.k8s.io/pause:3.9"})
    time.sleep(0.2)
    assert "Uid:\t65535" in Path(f"/proc/{p.pid}/status").read_text()
    assert rt.stop_container(p.id, 5).exit_code == 0


def test_run_as_non_root_is_refused_when_the_image_runs_as_root(rt: Runtime, sandbox: Sandbox) -> None:
    with pytest.raises(ImageError) as e:
        rt.start_container(sandbox, {"name": "nr", "image": "busybox", "command": ["true"],
                                     "securityContext": {"runAsNonRoot": True}})
    assert e.value.reason == "CreateContainerConfigError"
    assert e.value.message == (f'container has runAsNonRoot and image will run as root (pod: '
                               f'"{sandbox.name}_shop({sandbox.uid})", container: nr)')
    ok = rt.start_container(sandbox, {"name": "nr2", "image": "busybox", "command": ["true"],
                                      "securityContext": {"runAsNonRoot": True, "runAsUser": 1000}})
    assert rt.wait(ok.id, 5) == 0


def test_read_only_root_filesystem(rt: Runtime, sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    code, out = sh_in(rt, sandbox, "for f in /x /tmp/x /etc/resolv.conf /etc/hosts /data/x /dev/shm/x; do "
                                   "(echo >> $f) 2>/dev/null && echo rw $f || echo ro $f; done",
                      securityContext={"readOnlyRootFilesystem": True}, mounts=[Mount(str(tmp_path / "v"), "/data")])
    assert code == 0
    assert out.split("\n")[:-1] == ["ro /x", "ro /tmp/x", "ro /etc/resolv.conf", "rw /etc/hosts", "rw /data/x",
                                    "rw /dev/shm/x"]


def test_proc_and_sys_are_masked(rt: Runtime, sandbox: Sandbox) -> None:
    checks = ("wc -c < /proc/keys; wc -c < /proc/timer_list; ls /proc/acpi | wc -l; ls /sys/firmware | wc -l; "
              "(echo 1 > /proc/sys/net/ipv4/ip_forward) 2>&1; grep -c ' /proc/sys ' /proc/mounts")
    code, out = sh_in(rt, sandbox, checks)
    lines = out.splitlines()
    assert lines[:4] == ["0", "0", "0", "0"]
    assert "Read-only file system" in lines[4] and lines[5] == "1"
    code, out = sh_in(rt, sandbox, "grep -c ' /proc/sys ' /proc/mounts; ls /sys/firmware | wc -l",
                      securityContext={"privileged": True})
    assert out.split() == ["0", str(len(os.listdir("/sys/firmware")))]


def test_host_secrets_homes_and_state_are_hidden(rt: Runtime, sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "hostpath"
    secret.mkdir()
    (secret / "f").write_text("deliberate\n")
    script = ("wc -c < /etc/shadow; ls -A /home /var/lib /run | grep -v ':$' | grep -c .; ls -A /root; "
              f"test -e {rt.state_dir} && ls -A {rt.state_dir} | wc -l || echo absent; "
              f"cat {sandbox.log_path('probe', 0)} 2>&1 | head -c 0; test -r {sandbox.dir}/etc/hosts || echo no-pod-dir; "
              f"{sys.executable} -c 'import sys; print(sys.version_info[0])'; cat /mnt/f; "
              f"ls {Path(__file__).resolve().parents[2]}/kinns/node/security.py")
    code, out = sh_in(rt, sandbox, script, mounts=[Mount(str(secret), "/mnt", read_only=True)])
    lines = out.splitlines()
    assert lines[0] == "0"                                  # /etc/shadow shows empty
    assert lines[1] == "0"                                  # /home, /var/lib, /run are empty
    root_entries = set(lines[2].split()) if lines[2].strip() else set()
    assert root_entries <= {".pyenv"}                       # only what containers need of /root
    assert lines[3] in ("absent", "0") and "no-pod-dir" in lines
    assert "3" in lines and "deliberate" in lines           # Python runs; a hostPath stays the way in
    assert lines[-1].endswith("kinns/node/security.py")     # the kinns source tree is there (built-ins run it)


def test_state_outside_tmp_is_hidden(tmp_path: Path, netns: tuple[str, str]) -> None:
    """A runtime whose state is on the root file system (as /var/lib/kinns is):
    its directory, the pod's files and logs are not in the container's view."""
    sd = Path(f"/var/tmp/kinnstest-{os.getpid()}")
    r = Runtime(sd)
    try:
        sb = create_sandbox(sd, make_pod("hidden", "shop"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
        assert any(sd.as_posix() == d for d in r.view.opaque_dirs)
        code, out = sh_in(r, sb, f"ls -A {sd} | wc -l; cat {sb.dir}/etc/hosts 2>&1 | head -1; "
                                 f"ls {sb.log_path('probe', 0)} 2>&1")
        lines = out.splitlines()
        assert lines[0] == "0" and "No such file" in lines[1] and "No such file" in lines[2]
        r.remove_pod(sb)
    finally:
        r.close()
        cleanup(sd)
        subprocess.run(["rm", "-rf", str(sd)], check=True)


def test_a_fork_bomb_stays_in_its_pod(tmp_path: Path, netns: tuple[str, str]) -> None:
    sd = tmp_path / "bomb"
    r = Runtime(sd, pod_pids_limit=64)
    try:
        bomb = create_sandbox(sd, make_pod("bomb", "shop"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
        main = r.start_container(bomb, {"name": "main", "image": "busybox", "command": ["sleep", "1000"]})
        # as `kubectl exec` would run it: the bomb's processes end up children of the main process
        # (bash: dash and ash refuse ":" as a function name; quiet, so nothing holds exec's pipes)
        r.exec_sync(main.id, ["bash", "-c", "exec >/dev/null 2>&1; :(){ :|:& };:"], timeout=3)
        seen = []
        for _ in range(20):
            seen.append(r.cgroups.pids_current(f"pod{bomb.uid}"))
            time.sleep(0.05)
        assert all(n is not None and n <= 64 for n in seen) and max(n or 0 for n in seen) >= 60, seen
        # the node and another pod go on
        calm = create_sandbox(sd, make_pod("calm", "shop"), netns=f"/run/netns/{netns[0]}", pod_ip=POD_IP)
        code, out = sh_in(r, calm, "for i in 1 2 3 4 5; do echo ok$i; done | tail -1; sh -c 'echo forked'")
        assert (code, out) == (0, "ok5\nforked\n")
        assert subprocess.run(["true"]).returncode == 0
        assert r.exec_sync(main.id, ["echo", "hi"]).exit_code != 0  # no room left in the bomb's pod
        r.remove_pod(bomb)
        r.remove_pod(calm)
        assert not r.cgroups.pids(f"pod{bomb.uid}")
    finally:
        r.close()
        assert cleanup(sd) == []


def test_sigterm_to_pid_1(rt: Runtime, sandbox: Sandbox) -> None:
    # sleep has no SIGTERM handler: as PID 1 it ignores SIGTERM until the grace period ends
    sleeper = rt.start_container(sandbox, {"name": "sleeper", "image": "busybox", "command": ["sleep", "1000"]})
    time.sleep(0.2)
    t0 = time.monotonic()
    assert rt.stop_container(sleeper.id, 1.0).exit_code == 137
    assert 0.9 < time.monotonic() - t0 < 5
    # nginx exits on SIGTERM; so does its stand-in, at once
    web = rt.start_container(sandbox, {"name": "web", "image": "nginx", "ports": [{"containerPort": 8090}]})
    time.sleep(0.2)
    t0 = time.monotonic()
    rt.stop_container(web.id, 30)
    assert time.monotonic() - t0 < 2
    # agnhost (a Go program) exits on SIGTERM too
    agn = rt.start_container(sandbox, {"name": "agn", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                                       "args": ["netexec", "--http-port=8091", "--udp-port=8092"]})
    time.sleep(0.3)
    t0 = time.monotonic()
    assert rt.stop_container(agn.id, 30).exit_code == 2 and time.monotonic() - t0 < 2
