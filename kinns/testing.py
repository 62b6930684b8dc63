"""Test helpers shipped with kinns: a named cluster per test, and a leak check.

`ClusterHandle.up()` runs the real `kinns up` CLI, `kubectl()` runs a real
versioned kubectl against it, `http()` sends raw HTTPS requests with the
admin certificate, and `down()` runs `kinns down` and then asserts that
nothing of the cluster is left on the host: no namespace, link, mount or
process carrying its name.  Projects building on kinns can use the same
fixture (see tests/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
_counter = itertools.count()


def new_cluster_name(prefix: str = "t") -> str:
    """A name unique to this test process (and short: it goes into link names)."""
    return f"{prefix}{os.getpid() % 10000}x{next(_counter)}"


def wait_for(pred: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll `pred` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {pred}")
        time.sleep(interval)


def kubectl_binary(version: str) -> str:
    """A versioned kubectl (`1.27` … `1.33`), else the dispatcher on PATH."""
    p = KUBECTL_DIR / f"kubectl.{version}"
    return str(p) if p.exists() else "kubectl"


@dataclass
class HttpResult:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ClusterHandle:
    name: str
    state_root: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KINNS_STATE_DIR"] = str(self.state_root)
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kinns.cli", *args], env=self.env(), text=True,
                              capture_output=True, check=check, timeout=timeout)

    def up(self) -> subprocess.CompletedProcess[str]:
        """`kinns up` with the handle's flags; what it printed (raises when it failed)."""
        args = list(self.extra_args)
        # KINNS_TEST_STORE=etcd: the run's clusters keep their objects in etcd (tests/conftest.py).
        if os.environ.get("KINNS_TEST_STORE") and "--store" not in args:
            args += ["--store", os.environ["KINNS_TEST_STORE"]]
        r = self.cli("up", "--name", self.name, *args, check=False)
        if r.returncode != 0:
            log = self.daemon_log()
            # The fixture never reaches its teardown when up fails: remove what was made.
            self.cli("down", "--name", self.name, check=False)
            raise RuntimeError(f"kinns up failed ({r.returncode}): {r.stderr}\n{log}")
        return r

    def daemon_log(self) -> str:
        try:
            return (self.state_dir / "daemon.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def down(self) -> None:
        self.cli("down", "--name", self.name, check=False)
        leaks = find_leaks(self.name, self.state_root)
        assert not leaks, f"cluster {self.name} left things behind: {leaks}"

    def kubectl(self, *args: str, version: str = "1.32", check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [kubectl_binary(version), "--kubeconfig", str(self.kubeconfig), *args]
        r = subprocess.run(cmd, text=True, capture_output=True, input=stdin, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def _ssl(self) -> ssl.SSLContext:
        pki = self.state_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    @property
    def server(self) -> str:
        cfg = json.loads((self.state_dir / "cluster.json").read_text())
        return f"https://{cfg['api_host']}:{cfg['api_port']}"

    def http(self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None,
             content_type: str = "application/json", accept: str = "application/json") -> HttpResult:
        data: bytes | None
        if isinstance(body, dict):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=30) as r:
                return HttpResult(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            return HttpResult(e.code, e.read(), dict(e.headers))


def find_leaks(name: str, state_root: Path) -> list[str]:
    """Anything on the host that still carries the cluster's name."""
    leaks: list[str] = []
    tag = f"kinns-{name}"
    state = str(state_root / name) + "/"
    netns_dir = Path("/run/netns")
    if netns_dir.exists():
        leaks += [f"netns {n.name}" for n in netns_dir.iterdir() if n.name.startswith(tag + "-") or n.name == tag]
    for line in Path("/proc/mounts").read_text().splitlines():
        mnt = line.split()[1]
        if str(state_root / name) in mnt or f"/{tag}-" in mnt:
            leaks.append(f"mount {mnt}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kinns.cluster.daemon" in cmd and name.encode() in cmd:
            leaks.append(f"process {pid}")
        elif any(state.encode() in a for a in cmd):   # kubelets, zygotes, control-plane pods
            leaks.append(f"process {pid} ({cmd[2].decode(errors='replace') if len(cmd) > 2 else cmd[0]!r})")
        elif b"kinns.proxy" in cmd:
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(e.startswith(f"NODE_NAME={name}-".encode()) for e in environ):
                leaks.append(f"kube-proxy process {pid}")
    from .node.cgroups import find_parents
    leaks += [f"cgroup {p}" for p in find_parents() if p == f"kinns/{name}" or p.startswith(f"kinns/{name}/")]
    if (state_root / name).exists():
        leaks.append(f"state dir {state_root / name}")
    return leaks
