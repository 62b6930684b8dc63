"""`kinns-cni` as a CNI caller sees it, and side by side with the reference
bridge + host-local plugins (Debian's containernetworking-plugins) given the
same configuration.  Plugins run inside node namespaces, never on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kinns.net import cleanup, desired, fabric, netns
from kinns.net.desired import NodeNet

from .test_net_fabric import free_subnet, sh

CLUSTER = f"cn{os.getpid() % 10000}"
REF_BRIDGE = "/usr/lib/cni/bridge"
OURS = shutil.which("kinns-cni", path=str(Path(sys.executable).parent)) or ""


def ours_cmd() -> list[str]:
    return [OURS] if OURS else [sys.executable, "-m", "kinns.net.cni_plugin"]


def conf(data_dir: Path, subnet: str = "10.244.9.0/24", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "cniVersion": version, "name": "kinns", "type": "bridge", "bridge": "cni0",
        "isGateway": True, "hairpinMode": True, "mtu": 1450,
        "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                 "dataDir": str(data_dir)},
    }
    c.update(extra)
    return c


def invoke(node: NodeNet | None, command: str, config: dict[str, Any] | str, cid: str = "c1",
           pod: str | None = None, ifname: str = "eth0", plugin: list[str] | None = None,
           env_extra: dict[str, str] | None = None) -> tuple[int, Any]:
    """Run a plugin the way a CNI runtime does, inside the node namespace."""
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni"}
    if pod:
        env["CNI_NETNS"] = netns.path(pod)
    env.update(env_extra or {})
    cmd = (["ip", "netns", "exec", node.netns] if node else []) + (plugin or ours_cmd())
    stdin = config if isinstance(config, str) else json.dumps(config)
    r = subprocess.run(cmd, input=stdin, check=False, capture_output=True, text=True, env=env, timeout=60)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[NodeNet]]:
    try:
        yield fabric.Fabric.create(CLUSTER, free_subnet(210), 3)
    finally:
        cleanup.teardown(CLUSTER)
        assert cleanup.leftovers(CLUSTER) == []


@pytest.fixture
def pods() -> Iterator[Any]:
    made: list[str] = []

    def make(key: str) -> str:
        name = desired.pod_netns(CLUSTER, key)
        netns.create(name)
        made.append(name)
        return name
    yield make
    for m in made:
        netns.delete(m)


def test_version(nodes: list[NodeNet]) -> None:
    rc, out = invoke(None, "VERSION", "")
    assert rc == 0
    assert {"0.3.1", "0.4.0", "1.0.0", "1.1.0"} <= set(out["supportedVersions"])
    rc, out = invoke(None, "VERSION", json.dumps({"cniVersion": "0.4.0"}))
    assert rc == 0 and out["cniVersion"] == "0.4.0"


def test_add_result_del_idempotent(nodes: list[NodeNet], pods: Any, tmp_path: Path) -> None:
    node, pod = nodes[1], pods("add")
    c = conf(tmp_path)
    rc, res = invoke(node, "ADD", c, "cid-add", pod)
    assert rc == 0, res
    assert res["cniVersion"] == "1.0.0"
    names = [i["name"] for i in res["interfaces"]]
    assert names[0] == "cni0" and names[1].startswith("veth") and names[2] == "eth0"
    assert res["interfaces"][2]["sandbox"] == netns.path(pod)
    assert all(len(i["mac"]) == 17 for i in res["interfaces"])
    assert res["ips"] == [{"address": "10.244.9.2/24", "gateway": "10.244.9.1", "interface": 2}]
    assert res["routes"] == [{"dst": "0.0.0.0/0"}]
    assert "10.244.9.2/24" in sh(f"ip netns exec {pod} ip -o addr show eth0").stdout
    # ADD again: the interface exists -> error JSON, exit 1
    rc, err = invoke(node, "ADD", c, "cid-add", pod)
    assert rc == 1 and err["code"] >= 100 and "exists" in err["msg"] and err["cniVersion"] == "1.0.0"
    # CHECK with prevResult
    rc, out = invoke(node, "CHECK", dict(c, prevResult=res), "cid-add", pod)
    assert rc == 0 and out is None
    sh(f"ip netns exec {pod} ip addr flush dev eth0")
    rc, err = invoke(node, "CHECK", dict(c, prevResult=res), "cid-add", pod)
    assert rc == 1 and "10.244.9.2" in err["msg"]
    rc, err = invoke(node, "CHECK", c, "cid-add", pod)
    assert rc == 1 and err["code"] == 7
    # DEL, twice, and once more with no namespace at all
    for netns_arg in (pod, pod, None):
        rc, out = invoke(node, "DEL", c, "cid-add", netns_arg)
        assert rc == 0 and out is None
    assert not (tmp_path / "kinns" / "10.244.9.2").exists()
    assert "eth0" not in sh(f"ip netns exec {pod} ip -br link").stdout


def test_old_versions_get_versioned_ips(nodes: list[NodeNet], pods: Any, tmp_path: Path) -> None:
    node, pod = nodes[1], pods("old")
    rc, res = invoke(node, "ADD", conf(tmp_path, version="0.4.0"), "cid-old", pod)
    assert rc == 0, res
    assert res["cniVersion"] == "0.4.0" and res["ips"][0]["version"] == "4"
    assert invoke(node, "DEL", conf(tmp_path, version="0.4.0"), "cid-old", pod)[0] == 0


@pytest.mark.parametrize("stdin, env, code", [
    ("not json", {}, 6),
    (json.dumps({"cniVersion": "9.9.9", "name": "x"}), {}, 1),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge"}), {}, 7),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge", "ipMasq": True,
                 "ipam": {"type": "host-local", "subnet": "10.244.9.0/24"}}), {}, 2),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge",
                 "ipam": {"type": "host-local", "subnet": "10.244.9.0/33"}}), {}, 7),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge",
                 "ipam": {"type": "host-local", "subnet": "10.244.9.0/24"}}), {"CNI_IFNAME": ""}, 4),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge",
                 "ipam": {"type": "host-local", "subnet": "10.244.9.0/24"}}), {"CNI_COMMAND": "FROB"}, 4),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge",
                 "ipam": {"type": "host-local", "subnet": "10.244.9.0/24"}}),
     {"CNI_NETNS": "/run/netns/kinns-does-not-exist"}, 3),
])
def test_errors_have_spec_codes(nodes: list[NodeNet], stdin: str, env: dict[str, str], code: int) -> None:
    rc, err = invoke(nodes[1], "ADD", stdin, "cid-bad", None, env_extra=env)
    assert rc == 1
    assert err["code"] == code, err
    assert err["msg"] and "cniVersion" in err


def _pod_view(pod: str) -> dict[str, Any]:
    links = json.loads(sh(f"ip netns exec {pod} ip -j -d addr show").stdout)
    eth0 = next(link for link in links if link["ifname"] == "eth0")
    routes = json.loads(sh(f"ip netns exec {pod} ip -j route show").stdout)
    return {
        "eth0": {k: eth0.get(k) for k in ("mtu", "operstate", "link_type")},
        "kind": eth0["linkinfo"]["info_kind"],
        "addrs": sorted((a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"),
        "routes": sorted((r["dst"], r.get("gateway"), r["dev"], r.get("protocol"), r.get("scope")) for r in routes),
    }


def _node_view(node: NodeNet, veth: str) -> dict[str, Any]:
    br = json.loads(sh(f"ip netns exec {node.netns} ip -j -d addr show dev cni0").stdout)[0]
    port = json.loads(sh(f"ip netns exec {node.netns} ip -j -d link show dev {veth}").stdout)[0]
    routes = json.loads(sh(f"ip netns exec {node.netns} ip -j route show dev cni0").stdout)
    return {
        "bridge_addrs": sorted((a["local"], a["prefixlen"]) for a in br["addr_info"] if a["family"] == "inet"),
        "bridge_mtu": br["mtu"],
        "port_master": port.get("master"), "port_mtu": port["mtu"], "port_kind": port["linkinfo"]["info_kind"],
        "hairpin": port["linkinfo"]["info_slave_data"]["hairpin"],
        "bridge_routes": sorted(r["dst"] for r in routes),
    }


def _shape(res: dict[str, Any]) -> dict[str, Any]:
    """A result with the random parts (MACs, veth names) masked."""
    r = json.loads(json.dumps(res))
    for i in r["interfaces"]:
        i["mac"] = "MAC"
        if i["name"].startswith("veth"):
            i["name"] = "veth*"
        if "sandbox" in i:
            i["sandbox"] = "SANDBOX"
    return r


def test_same_as_reference_bridge_and_host_local(nodes: list[NodeNet], pods: Any, tmp_path: Path) -> None:
    ref_node, our_node = nodes[0], nodes[2]
    ref_pod, our_pod = pods("ref"), pods("ours")
    ref_dir, our_dir = tmp_path / "ref", tmp_path / "ours"
    rc, ref = invoke(ref_node, "ADD", conf(ref_dir), "cid-same", ref_pod, plugin=[REF_BRIDGE])
    assert rc == 0, ref
    rc, ours = invoke(our_node, "ADD", conf(our_dir), "cid-same", our_pod)
    assert rc == 0, ours
    assert _shape(ours) == _shape(ref)
    assert _pod_view(our_pod) == _pod_view(ref_pod)
    assert _node_view(our_node, ours["interfaces"][1]["name"]) == _node_view(ref_node, ref["interfaces"][1]["name"])
    # IPAM files: same names, same contents
    ref_files = {p.name: p.read_bytes() for p in (ref_dir / "kinns").iterdir() if p.name != "lock"}
    our_files = {p.name: p.read_bytes() for p in (our_dir / "kinns").iterdir() if p.name != "lock"}
    assert our_files == ref_files
    # and both DEL cleanly
    assert invoke(ref_node, "DEL", conf(ref_dir), "cid-same", ref_pod, plugin=[REF_BRIDGE])[0] == 0
    assert invoke(our_node, "DEL", conf(our_dir), "cid-same", our_pod)[0] == 0
    assert sorted(p.name for p in (our_dir / "kinns").iterdir()) == sorted(
        p.name for p in (ref_dir / "kinns").iterdir())


def test_shares_a_store_with_reference_host_local(nodes: list[NodeNet], pods: Any, tmp_path: Path) -> None:
    """Reference and ours on one node and one IPAM directory: no duplicates,
    and each can release what the other allocated."""
    node = nodes[1]
    p1, p2, p3 = pods("s1"), pods("s2"), pods("s3")
    c = conf(tmp_path, subnet="10.244.8.0/24", bridge="cni8")
    rc, r1 = invoke(node, "ADD", c, "cid-s1", p1, plugin=[REF_BRIDGE])
    assert rc == 0, r1
    rc, r2 = invoke(node, "ADD", c, "cid-s2", p2)
    assert rc == 0, r2
    rc, r3 = invoke(node, "ADD", c, "cid-s3", p3, plugin=[REF_BRIDGE])
    assert rc == 0, r3
    ips = [r["ips"][0]["address"] for r in (r1, r2, r3)]
    assert ips == ["10.244.8.2/24", "10.244.8.3/24", "10.244.8.4/24"]
    # pods on the shared bridge reach each other
    assert sh(f"ip netns exec {p2} busybox ping -c1 -W2 10.244.8.2").returncode == 0
    assert invoke(node, "DEL", c, "cid-s1", p1)[0] == 0                     # ours frees ref's
    assert invoke(node, "DEL", c, "cid-s2", p2, plugin=[REF_BRIDGE])[0] == 0  # ref frees ours
    assert invoke(node, "DEL", c, "cid-s3", p3)[0] == 0
    assert sorted(p.name for p in (tmp_path / "kinns").iterdir()) == ["last_reserved_ip.0", "lock"]


def test_bridge_with_another_network_refused(nodes: list[NodeNet], pods: Any, tmp_path: Path) -> None:
    node = nodes[1]
    assert invoke(node, "ADD", conf(tmp_path, subnet="10.244.6.0/24", bridge="cni6"), "cid-x1", pods("x1"))[0] == 0
    rc, err = invoke(node, "ADD", conf(tmp_path, subnet="10.244.5.0/24", bridge="cni6"), "cid-x2", pods("x2"))
    assert rc == 1 and "already has an IP address different" in err["msg"]
    assert not list((tmp_path / "kinns").glob("10.244.5.*"))


def test_gc_releases_stale_attachments(nodes: list[NodeNet], pods: Any, tmp_path: Path) -> None:
    node = nodes[1]
    c = conf(tmp_path, subnet="10.244.7.0/24", version="1.1.0", bridge="cni7")
    assert invoke(node, "ADD", c, "keep", pods("g1"))[0] == 0
    assert invoke(node, "ADD", c, "stale", pods("g2"))[0] == 0
    rc, _ = invoke(node, "GC", dict(c, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}))
    assert rc == 0
    held = {p.read_bytes().split(b"\r\n")[0].decode()
            for p in (tmp_path / "kinns").iterdir() if p.name.startswith("10.")}
    assert held == {"keep"}
    rc, out = invoke(node, "STATUS", c)
    assert rc == 0 and out is None
