"""The layering DESIGN.md sets, enforced: lower layers never import higher ones.

`api` and `client` import nothing of `node`, `net`, `proxy`, `dns`; the pure
renderers (`net/desired.py`, `controllers/scheduling.py`, `rollout.py`,
`daemonset_plan.py`, `node/podstatus.py`) do no I/O imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "kinns"


def imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative ones resolved)."""
    pkg = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("layer", ["api", "client"])
def test_api_and_client_do_not_import_the_node_side(layer: str) -> None:
    for path in (ROOT / layer).rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[:2] in (["kinns", "node"], ["kinns", "net"],
                                                               ["kinns", "proxy"], ["kinns", "dns"])}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


PURE = ["net/desired.py", "controllers/scheduling.py", "controllers/rollout.py",
        "controllers/daemonset_plan.py", "controllers/nodehealth.py", "controllers/taints.py", "node/dnsconfig.py", "node/envvars.py",
        "proxy/model.py", "proxy/tracker.py", "proxy/roundrobin.py", "node/security.py", "api/podsecurity.py",
        "api/cron.py", "controllers/job_plan.py", "controllers/job_intervals.py",
        "ingress/routing.py", "ingress/nginxconf.py", "ingress/certs.py",
        "netpol/model.py", "netpol/rules.py", "netpol/boxes.py", "node/staticpods.py", "node/containers.py",
        "trace/nftrace.py", "trace/hops.py", "ui/model.py", "ui/rules.py"]
IO_MODULES = {"subprocess", "socket", "pyroute2", "aiohttp", "sqlite3", "kinns.client", "kinns.net.netns",
              "kinns.net.applier", "kinns.node.runtime"}


@pytest.mark.parametrize("rel", PURE)
def test_renderers_do_no_io(rel: str) -> None:
    mods = imports(ROOT / rel)
    bad = {m for m in mods if any(m == io or m.startswith(io + ".") for io in IO_MODULES)}
    assert not bad, f"{rel} imports {bad}"
