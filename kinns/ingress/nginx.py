"""The nginx master the controller owns: files in, `nginx -t`, swap, SIGHUP.

As in ingress-nginx, the controller starts nginx (`daemon off`, so the
master is the controller's child and dies with the container) and changes
its configuration only through reloads: the new text is written beside
the live file, `nginx -t` must accept it, then it is renamed over the live
file and the master gets SIGHUP.  nginx then starts workers with the new
configuration and lets the old ones finish the requests they hold, so no
connection is dropped.  A text that fails the test never replaces the live
one; the error is returned for the controller to log.

`wait_live` asks the status server for the configuration's checksum, so
the caller knows when the new workers answer (what the reload benchmark
measures).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from .nginxconf import Settings, checksum

log = logging.getLogger("ingress-nginx")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class ConfigError(Exception):
    """`nginx -t` refused a configuration (its output is the message)."""


class Nginx:
    def __init__(self, conf_dir: Path, settings: Settings, binary: str = "nginx") -> None:
        self.conf_dir = Path(conf_dir)
        self.settings = settings
        self.binary = binary
        self.conf = self.conf_dir / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.live = ""          # the text nginx runs (or will once the reload lands)
        self.reloads = 0
        self._old_workers: set[int] = set()   # workers of the configuration before the last reload

    def prepare(self, default_pem: str) -> None:
        """Directories, and the default certificate every server can fall back to."""
        for d in (self.conf_dir, Path(self.settings.ssl_dir), Path(self.settings.temp_dir)):
            d.mkdir(parents=True, exist_ok=True)
        from .routing import DEFAULT_CERT
        _write(Path(self.settings.ssl_dir) / DEFAULT_CERT, default_pem, 0o600)

    def write_certificates(self, certs: dict[str, str]) -> None:
        ssl = Path(self.settings.ssl_dir)
        for name, pem in certs.items():
            path = ssl / name
            try:
                if path.read_text() == pem:
                    continue
            except OSError:
                pass
            _write(path, pem, 0o600)

    def prune_certificates(self, keep: set[str]) -> None:
        """Remove certificate files no live configuration names (after a successful reload)."""
        from .routing import DEFAULT_CERT
        for path in Path(self.settings.ssl_dir).glob("*.pem"):
            if path.name not in keep and path.name != DEFAULT_CERT:
                path.unlink(missing_ok=True)

    def test(self, text: str) -> Path:
        """Write `text` beside the live file and have nginx check it; the candidate's path."""
        candidate = self.conf_dir / "nginx.conf.new"
        _write(candidate, text)
        r = subprocess.run([self.binary, "-t", "-q", "-c", str(candidate)], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise ConfigError((r.stderr or r.stdout).strip())
        return candidate

    def start(self, text: str) -> None:
        """Check and install the first configuration, then start the master."""
        os.replace(self.test(text), self.conf)
        self.live = text
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf), "-g", "daemon off; master_process on;"],
                                     stdin=subprocess.DEVNULL)

    def apply(self, text: str) -> bool:
        """Reload with `text` when it differs from the live text; raises ConfigError
        (and keeps the live configuration) when nginx refuses it."""
        if text == self.live:
            return False
        candidate = self.test(text)
        os.replace(candidate, self.conf)
        self.live = text
        if self.proc is not None:
            self._old_workers = set(self.workers())
            self.proc.send_signal(signal.SIGHUP)
        self.reloads += 1
        return True

    def workers(self) -> list[int]:
        """Pids of the master's workers that still accept connections.

        A worker told to finish (SIGQUIT after a reload) renames itself
        "nginx: worker process is shutting down" and closes its listeners."""
        if self.proc is None:
            return []
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return []
        accepting = []
        for kid in kids:
            try:
                title = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "worker process" in title and "shutting down" not in title:
                accepting.append(int(kid))
        return accepting

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def live_checksum(self, timeout: float = 1.0) -> str:
        """The checksum of the configuration the workers answer with ("" when none answers)."""
        url = f"http://127.0.0.1:{self.settings.status_port}/configuration/checksum"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
                return str(resp.read().decode())
        except OSError:
            return ""

    async def wait_live(self, text: str, timeout: float = 30.0) -> float:
        """Wait until the workers serve `text` and the previous generation no longer
        accepts (so no new request can reach an old worker); seconds waited
        (raises TimeoutError)."""
        want = checksum(text)
        start = time.monotonic()
        while True:
            if await asyncio.to_thread(self.live_checksum) == want and not self._old_workers & set(self.workers()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"nginx did not load configuration {want[:12]} within {timeout:g}s")
            await asyncio.sleep(0.02)

    def stop(self, graceful: float = 10.0) -> None:
        """SIGQUIT (finish requests in flight, as `nginx -s quit`), SIGTERM after `graceful` s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(graceful)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(5)
