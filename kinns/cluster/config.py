"""A cluster's settings and where its state lives.

Each cluster has a state directory (`/var/lib/kinns/<name>` by default, or
under $KINNS_STATE_DIR) holding its SQLite store, certificates, kubeconfig,
daemon pid and log, and `cluster.json` with the settings below.  Everything
`kinns down` must find again is derivable from the name and this file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


def state_root() -> Path:
    return Path(os.environ.get("KINNS_STATE_DIR", "/var/lib/kinns"))


class ConfigError(ValueError):
    """A cluster's saved settings cannot be read."""


@dataclass
class ClusterConfig:
    name: str = "kinns"
    api_host: str = "127.0.0.1"
    api_port: int = 0
    service_cidr: str = "10.96.0.0/12"
    cluster_cidr: str = "10.244.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    nodes: int = 3
    overlay: str = "vxlan"
    ipip_path: str = ""          # with overlay ipip: "kernel" or "userspace" (ipip.probe at `kinns up`)
    proxy_mode: str = "nftables"
    lb_pool: str = ""            # "first-last" addresses for LoadBalancers; default: top of the fabric /24
    fabric_subnet: str = ""
    store: str = "sqlite"        # where the API server keeps objects: "sqlite" (embedded) or "etcd"
    extra: dict[str, str] = field(default_factory=dict)
    state_dir_override: str = field(default="", repr=False)

    @property
    def state_dir(self) -> Path:
        return Path(self.state_dir_override) if self.state_dir_override else state_root() / self.name

    @property
    def server_url(self) -> str:
        return f"https://{self.api_host}:{self.api_port}"

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("state_dir_override")
        (self.state_dir / "cluster.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, name: str) -> "ClusterConfig | None":
        path = state_root() / name / "cluster.json"
        if not path.exists():
            return None
        return cls._from_file(path)

    @classmethod
    def load_from(cls, state_dir: Path) -> "ClusterConfig":
        """The settings of the cluster whose state directory is `state_dir`, as a
        component started with `--kinns-state-dir` finds them (the directory may
        live outside $KINNS_STATE_DIR's view inside a container)."""
        cfg = cls._from_file(state_dir / "cluster.json")
        cfg.state_dir_override = str(state_dir)
        return cfg

    @classmethod
    def _from_file(cls, path: Path) -> "ClusterConfig":
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise ConfigError(f"{path} is damaged ({exc}); restore it, or remove the cluster with "
                              f"`kinns down --name {path.parent.name}`") from None
        data["node_port_range"] = tuple(data.get("node_port_range", (30000, 32767)))
        data.pop("state_dir_override", None)
        return cls(**data)


def validate_name(name: str) -> str | None:
    """An error message for a bad cluster name, or None."""
    if not NAME_RE.match(name):
        return (f'invalid cluster name "{name}": use 1-32 lower-case letters, digits or "-", '
                "starting and ending with a letter or digit")
    return None
