"""etcd for `kinns up --store etcd`: its command line, and a host launcher.

`etcd_argv(cfg, node, ip)` is the command kubeadm writes into the static
pod `/etc/kubernetes/manifests/etcd.yaml` (manifests.py runs it as the pod
`etcd-<node>`): clients on 2379 at 127.0.0.1 and the node's address, peers
on 2380, metrics on 127.0.0.1:2381, kubeadm's flags, with the data under
the cluster's state directory instead of /var/lib/etcd.  Plain HTTP for
now; `EtcdTLS` adds kubeadm's certificate flags once the cluster has an
etcd CA.  `etcd_command` is the general form both build on.

`EtcdServer` runs the same binary as a detached host process on free
loopback ports (tests, and tools that want an etcd without a node):
`start()` waits for `/health` and records the client URL in the state
directory (`client_url()` reads it back), `stop()` ends it, and
`stop_stale()` finds one left behind by its `--data-dir`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .config import ClusterConfig

CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381


class EtcdStartError(RuntimeError):
    """etcd did not come up healthy."""


@dataclass(frozen=True)
class EtcdTLS:
    """kubeadm's etcd certificates (/etc/kubernetes/pki/etcd/…)."""

    cert_file: Path
    key_file: Path
    trusted_ca_file: Path
    peer_cert_file: Path
    peer_key_file: Path


def etcd_command(name: str, data_dir: Path, *, listen_client_urls: Sequence[str],
                 advertise_client_urls: Sequence[str], peer_url: str, metrics_urls: Sequence[str] = (),
                 tls: EtcdTLS | None = None, binary: str = "etcd") -> list[str]:
    """One member of a new single-member cluster, flags as kubeadm sets them."""
    argv = [
        binary,
        f"--advertise-client-urls={','.join(advertise_client_urls)}",
        f"--data-dir={data_dir}",
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        f"--listen-client-urls={','.join(listen_client_urls)}",
    ]
    if metrics_urls:
        argv.append(f"--listen-metrics-urls={','.join(metrics_urls)}")
    argv += [f"--listen-peer-urls={peer_url}", f"--name={name}", "--snapshot-count=10000"]
    if tls is not None:
        argv += [f"--cert-file={tls.cert_file}", "--client-cert-auth=true", f"--key-file={tls.key_file}",
                 f"--peer-cert-file={tls.peer_cert_file}", "--peer-client-cert-auth=true",
                 f"--peer-key-file={tls.peer_key_file}", f"--peer-trusted-ca-file={tls.trusted_ca_file}",
                 f"--trusted-ca-file={tls.trusted_ca_file}"]
    # etcd 3.4 logs with the deprecated capnslog unless told otherwise (3.5 defaults to zap).
    argv += ["--logger=zap", "--log-outputs=stderr"]
    return argv


def etcd_argv(cfg: "ClusterConfig", node_name: str, node_ip: str, tls: EtcdTLS | None = None) -> list[str]:
    """The static pod `etcd-<node>`'s command, on the node's address with kubeadm's ports."""
    scheme = "https" if tls else "http"
    return etcd_command(
        node_name, cfg.state_dir / "etcd",
        listen_client_urls=[f"{scheme}://127.0.0.1:{CLIENT_PORT}", f"{scheme}://{node_ip}:{CLIENT_PORT}"],
        advertise_client_urls=[f"{scheme}://{node_ip}:{CLIENT_PORT}"],
        peer_url=f"{scheme}://{node_ip}:{PEER_PORT}",
        metrics_urls=[f"http://127.0.0.1:{METRICS_PORT}"], tls=tls)


def client_url(state_dir: Path) -> str:
    """Where the running etcd of a cluster answers (recorded by `EtcdServer.start`)."""
    try:
        return str(json.loads((state_dir / "etcd.json").read_text())["client_url"])
    except (OSError, ValueError, KeyError) as exc:
        raise EtcdStartError(f"no etcd recorded in {state_dir} (is the cluster's etcd running?)") from exc


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _etcd_pids(data_dir: Path) -> list[int]:
    """etcd processes serving `data_dir` (by their command line: ours only)."""
    flag = f"--data-dir={data_dir}"
    return [int(p) for p in os.listdir("/proc") if p.isdigit()
            and (cmd := _cmdline(int(p))) and os.path.basename(cmd[0]) == "etcd" and flag in cmd]


def _end(pids: list[int], timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return


def _alive(pid: int) -> bool:
    try:
        # A zombie child of ours is dead too: reap it.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_stale(state_dir: Path, timeout: float = 5.0) -> None:
    """End any etcd still serving this cluster's data (its daemon was killed)."""
    _end(_etcd_pids(state_dir / "etcd"), timeout)


class EtcdServer:
    """The cluster's etcd as a detached host process (until it is a static pod)."""

    def __init__(self, state_dir: Path, name: str, host: str = "127.0.0.1") -> None:
        self.state_dir = state_dir
        self.name = name
        self.host = host
        self.data_dir = state_dir / "etcd"
        self.url = ""
        self.pid = 0

    def start(self, timeout: float = 30.0) -> str:
        """Start etcd (or keep the one already serving this data) and return its client URL."""
        try:
            recorded = client_url(self.state_dir)
        except EtcdStartError:
            recorded = ""
        running = _etcd_pids(self.data_dir)
        if recorded and running and healthy(recorded, timeout=5.0):   # patient: a busy machine is slow, not dead
            self.url, self.pid = recorded, running[0]
            return self.url
        _end(running, 5.0)
        binary = shutil.which("etcd")
        if binary is None:
            raise EtcdStartError("etcd is not installed (Debian: apt-get install etcd-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)   # etcd insists on it
        self.url = f"http://{self.host}:{_free_port(self.host)}"
        peer = f"http://{self.host}:{_free_port(self.host)}"
        argv = etcd_command(self.name, self.data_dir, listen_client_urls=[self.url],
                         advertise_client_urls=[self.url], peer_url=peer, binary=binary)
        with open(self.state_dir / "etcd.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd=self.state_dir)
        self.pid = proc.pid
        (self.state_dir / "etcd.json").write_text(json.dumps({"client_url": self.url, "pid": proc.pid}))
        deadline = time.monotonic() + timeout
        while not healthy(self.url, timeout=0.5):
            if proc.poll() is not None:
                raise EtcdStartError(f"etcd exited ({proc.returncode}): {self._log_tail()}")
            if time.monotonic() > deadline:
                _end([proc.pid], 5.0)
                raise EtcdStartError(f"etcd was not healthy within {timeout:.0f}s: {self._log_tail()}")
            time.sleep(0.05)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        pids = [self.pid] if self.pid else []
        _end(pids + [p for p in _etcd_pids(self.data_dir) if p not in pids], timeout)
        self.pid = 0

    def _log_tail(self) -> str:
        try:
            return " | ".join((self.state_dir / "etcd.log").read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return "(no log)"
