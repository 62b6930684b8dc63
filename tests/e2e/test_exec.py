"""`kubectl exec` against a real cluster, over both wire protocols.

kubectl 1.30+ speaks WebSocket (v5.channel.k8s.io) and 1.27–1.29 SPDY/3.1;
1.32 with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` is SPDY again.  Each
case runs the same commands through each: output, stdin, exit codes,
`-c`, errors, and a terminal (kubectl run under a pseudo-terminal, so it
really puts it in raw mode and sends its size).  A hand-written WebSocket
client checks what kubectl cannot reach: the v4 protocol and the errors
answered before upgrading.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import select
import signal
import socket
import ssl
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest

from kinns.testing import ClusterHandle, kubectl_binary

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  containers:
  - {name: first, image: busybox, command: ["sleep", "3600"]}
  - {name: second, image: busybox, command: ["sh", "-c", "echo second > /tmp/who; sleep 3600"]}
"""

# (kubectl version, extra environment): WebSocket, WebSocket, SPDY, SPDY.
CLIENTS = [
    pytest.param("1.30", {}, id="1.30-ws"),
    pytest.param("1.32", {}, id="1.32-ws"),
    pytest.param("1.32", {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}, id="1.32-spdy"),
    pytest.param("1.27", {}, id="1.27-spdy"),
]


@pytest.fixture(scope="module")
def pods(cluster: ClusterHandle) -> ClusterHandle:
    cluster.kubectl("apply", "-f", "-", stdin=PODS)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/solo", "pod/duo", "--timeout=90s", timeout=120)
    return cluster


def kubectl(c: ClusterHandle, version: str, env: dict[str, str], *args: str,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl_binary(version), "--kubeconfig", str(c.kubeconfig), *args],
                          text=True, capture_output=True, input=stdin, timeout=60,
                          env={**os.environ, **env})


@pytest.mark.parametrize("version,env", CLIENTS)
def test_output(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    r = kubectl(pods, version, env, "exec", "solo", "--", "hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "solo\n"


@pytest.mark.parametrize("version,env", CLIENTS)
def test_stdout_and_stderr_apart(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    r = kubectl(pods, version, env, "exec", "solo", "--", "sh", "-c", "echo out; echo err >&2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


@pytest.mark.parametrize("version,env", CLIENTS)
def test_stdin(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    r = kubectl(pods, version, env, "exec", "-i", "solo", "--", "cat", stdin=text)
    assert r.returncode == 0, r.stderr
    assert r.stdout == text
    # stdin's end reaches the command: `wc` only answers after EOF.
    r = kubectl(pods, version, env, "exec", "-i", "solo", "--", "wc", "-l", stdin=text)
    assert r.stdout.strip() == "2000"


@pytest.mark.parametrize("version,env", CLIENTS)
def test_exit_code(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    r = kubectl(pods, version, env, "exec", "solo", "--", "sh", "-c", "echo partial; exit 3")
    assert r.returncode == 3
    assert r.stdout == "partial\n"
    assert "command terminated with exit code 3" in r.stderr


@pytest.mark.parametrize("version,env", CLIENTS)
def test_container_flag(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    r = kubectl(pods, version, env, "exec", "duo", "-c", "second", "--", "cat", "/tmp/who")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "second\n"
    r = kubectl(pods, version, env, "exec", "duo", "-c", "first", "--", "cat", "/tmp/who")
    assert r.returncode == 1
    assert "command terminated with exit code 1" in r.stderr


@pytest.mark.parametrize("version,env", CLIENTS)
def test_errors(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    r = kubectl(pods, version, env, "exec", "duo", "-c", "nope", "--", "true")
    assert r.returncode == 1
    assert "container nope is not valid for pod duo" in r.stderr
    r = kubectl(pods, version, env, "exec", "ghost", "--", "true")
    assert r.returncode == 1
    assert 'pods "ghost" not found' in r.stderr
    r = kubectl(pods, version, env, "exec", "solo", "--", "/no/such/binary")
    assert r.returncode != 0


@pytest.mark.parametrize("version,env", CLIENTS)
def test_cp(pods: ClusterHandle, version: str, env: dict[str, str], tmp_path: Path) -> None:
    """`kubectl cp` is tar over exec, both ways."""
    data = os.urandom(3_000_000)
    (tmp_path / "f").write_bytes(data)
    r = kubectl(pods, version, env, "cp", str(tmp_path / "f"), "solo:/tmp/copied")
    assert r.returncode == 0, r.stderr
    r = kubectl(pods, version, env, "cp", "solo:/tmp/copied", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == data


@pytest.mark.parametrize("version,env", CLIENTS)
def test_tty(pods: ClusterHandle, version: str, env: dict[str, str]) -> None:
    """`exec -it` from a real terminal: raw mode, the terminal's size and
    its changes, exit code."""
    out, code = run_in_terminal(
        [kubectl_binary(version), "--kubeconfig", str(pods.kubeconfig), "exec", "-it", "solo", "--", "sh"],
        b"stty size; tty; exit 7\r", rows=33, cols=111, env={**os.environ, **env}, resize=(40, 132))
    text = out.decode(errors="replace")
    assert "33 111" in text
    assert "40 132" in text
    assert "/dev/pts/" in text
    assert "command terminated with exit code 7" in text
    assert code == 7


def run_in_terminal(argv: list[str], keys: bytes, rows: int, cols: int, env: dict[str, str],
                    resize: tuple[int, int] | None = None) -> tuple[bytes, int]:
    """Run kubectl on a pseudo-terminal of `rows`x`cols`: wait for the
    shell's prompt, ask for the size, resize if asked (kubectl hears
    SIGWINCH), then type `keys`."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env)
    out = b""

    def pump(seconds: float, until: bytes = b"") -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until in out):
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    return

    try:
        pump(10, b"# ")              # the shell's prompt
        if resize is not None:
            os.write(master, b"stty size\r")
            pump(10, f"{rows} {cols}".encode())
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *resize, 0, 0))
            proc.send_signal(signal.SIGWINCH)
            time.sleep(0.5)
        os.write(master, keys)
        pump(10, b"exit code")
        code = proc.wait(10)
        pump(0.2)
        return out, code
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)


# --------------------------------------------------------------------------- raw WebSocket


class RawWebSocket:
    """Just enough of a WebSocket client to speak the channel protocol."""

    def __init__(self, c: ClusterHandle, path: str, protocols: str) -> None:
        url = urlparse(c.server)
        ctx = c._ssl()
        self.sock = ctx.wrap_socket(socket.create_connection((url.hostname, url.port), timeout=10),
                                    server_hostname=url.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if self.status != 101:
            length = int(self.headers.get("content-length", "0"))
            while len(self.buf) < length:
                self.buf += self.sock.recv(65536)

    def send(self, channel: int, data: bytes) -> None:
        payload = bytes([channel]) + data
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(channel, data) until the server closes."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", self._read(8))
            data = self._read(n)
            if b0 & 0x0F == 8:
                return
            if b0 & 0x0F == 2 and data:
                yield data[0], data[1:]

    def close(self) -> None:
        self.sock.close()


def test_v4_protocol_and_status(pods: ClusterHandle) -> None:
    ws = RawWebSocket(pods, "/api/v1/namespaces/default/pods/solo/exec?command=sh&command=-c"
                            "&command=echo+hi%3B+exit+4&stdout=true&stderr=true", "v4.channel.k8s.io")
    try:
        assert ws.status == 101
        assert ws.headers["sec-websocket-protocol"] == "v4.channel.k8s.io"
        got: dict[int, bytes] = {}
        for ch, data in ws.frames():
            got[ch] = got.get(ch, b"") + data
    finally:
        ws.close()
    assert got[1] == b"hi\n"
    status = json.loads(got[3])
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]


def test_v5_stdin_close(pods: ClusterHandle) -> None:
    ws = RawWebSocket(pods, "/api/v1/namespaces/default/pods/solo/exec?command=cat&stdin=true&stdout=true",
                      "v5.channel.k8s.io, v4.channel.k8s.io")
    try:
        assert ws.status == 101
        assert ws.headers["sec-websocket-protocol"] == "v5.channel.k8s.io"
        ws.send(0, b"abc\n")
        ws.send(255, b"\x00")       # close stdin
        got: dict[int, bytes] = {}
        for ch, data in ws.frames():
            got[ch] = got.get(ch, b"") + data
    finally:
        ws.close()
    assert got[1] == b"abc\n"
    assert json.loads(got[3])["status"] == "Success"


@pytest.mark.parametrize("query,code,message", [
    ("stdout=true", 400, "you must specify at least 1 command"),
    ("command=true", 400, "you must specify at least 1 of stdin, stdout, stderr"),
    ("command=true&stdout=true&container=zz", 400, "container zz is not valid for pod solo"),
])
def test_errors_before_upgrade(pods: ClusterHandle, query: str, code: int, message: str) -> None:
    ws = RawWebSocket(pods, f"/api/v1/namespaces/default/pods/solo/exec?{query}", "v5.channel.k8s.io")
    ws.close()
    assert ws.status == code
    status = json.loads(ws.buf)
    assert status["kind"] == "Status"
    assert status["message"] == message


def test_missing_pod_before_upgrade(pods: ClusterHandle) -> None:
    ws = RawWebSocket(pods, "/api/v1/namespaces/default/pods/ghost/exec?command=true&stdout=true",
                      "v5.channel.k8s.io")
    ws.close()
    assert ws.status == 404
    assert json.loads(ws.buf)["reason"] == "NotFound"


def test_plain_request_needs_upgrade(pods: ClusterHandle) -> None:
    r = pods.http("POST", "/api/v1/namespaces/default/pods/solo/exec?command=true&stdout=true")
    assert r.status == 400
    assert r.json()["message"] == "Upgrade request required"


# --------------------------------------------------------------------------- attach

ATTACH_CLIENTS = [pytest.param("1.32", id="1.32-ws"), pytest.param("1.27", id="1.27-spdy")]


@pytest.mark.parametrize("version", ATTACH_CLIENTS)
def test_attach_stdin(pods: ClusterHandle, version: str) -> None:
    """`kubectl attach -i`: our input reaches the container's stdin, its
    output (from the log) comes back, stderr apart; stdinOnce ends it."""
    name = f"att{version.replace('.', '')}"
    pods.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "read x; echo got $x; echo bye >&2; sleep 1"]
""")
    pods.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    r = pods.kubectl("attach", "-i", name, version=version, stdin="hello\n", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "got hello\n"
    assert "bye" in r.stderr


@pytest.mark.parametrize("version", ATTACH_CLIENTS)
def test_run_interactive(pods: ClusterHandle, version: str) -> None:
    """`kubectl run -i --rm` attaches to the new pod, as people use it."""
    name = f"run{version.replace('.', '')}"
    r = pods.kubectl("run", name, "-i", "--rm", "--restart=Never", "--image=busybox", "--",
                     "sh", "-c", "read x; echo got $x", version=version, stdin="hi there\n", check=False)
    assert r.returncode == 0, r.stderr
    assert "got hi there" in r.stdout
