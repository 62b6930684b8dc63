"""`kinns-cni`: the pod network as a CNI plugin executable.

Any CNI caller (containerd, cnitool, a test) can run it: the command and
container come from the CNI_* environment, the network configuration from
stdin, the result JSON goes to stdout, errors go to stdout as
`{cniVersion, code, msg, details}` with a non-zero exit (spec 1.1: 1
incompatible version, 2 unsupported field, 3 unknown container, 4 bad
environment, 6 undecodable config, 7 invalid config, 11 try again later;
100+ ours).  It accepts the configuration of the reference `bridge` plugin
with `host-local` IPAM (bridge, isGateway, isDefaultGateway, mtu,
hairpinMode, ipam.subnet/ranges/routes/dataDir) and keeps its IPAM files in
the same format, so it can stand in for that pair.  Like every CNI plugin it
works on the network namespace it runs in (the node's); the kubelet calls
`pod_network` directly instead of exec'ing this.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from .ipam import DEFAULT_DATA_DIR, HostLocalStore, Range
from .pod_network import CniError, PodNetConfig, PodNetwork

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
LATEST = "1.1.0"


def _bool(conf: Mapping[str, Any], key: str, default: bool = False) -> bool:
    v = conf.get(key, default)
    if not isinstance(v, bool):
        raise CniError(7, f"{key} must be a boolean")
    return v


def parse_config(conf: Mapping[str, Any]) -> PodNetConfig:
    """A reference bridge + host-local configuration as a PodNetConfig."""
    name = conf.get("name")
    if not isinstance(name, str) or not name:
        raise CniError(7, "network configuration needs a name")
    if conf.get("ipMasq"):
        raise CniError(2, "ipMasq is not supported: kinns never NATs pod traffic inside the cluster")
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or ipam.get("type") != "host-local":
        raise CniError(7, "ipam must be of type host-local")
    if "ranges" in ipam:
        ranges = ipam["ranges"]
        if not (isinstance(ranges, list) and len(ranges) == 1 and isinstance(ranges[0], list)
                and len(ranges[0]) == 1 and isinstance(ranges[0][0], dict)):
            raise CniError(2, "only one ipam range is supported")
        r0 = ranges[0][0]
    else:
        r0 = ipam
    if "subnet" not in r0:
        raise CniError(7, "ipam needs a subnet")
    try:
        rng = Range(str(r0["subnet"]), r0.get("gateway"), r0.get("rangeStart"), r0.get("rangeEnd"))
        net = rng.network
        if rng.gw not in net or net.version != 4:
            raise ValueError("gateway outside the subnet")
        rng.bounds()
    except (ValueError, TypeError) as e:
        raise CniError(7, f"invalid ipam range: {e}") from None
    routes: list[tuple[str, str | None]] = []
    for r in ipam.get("routes") or []:
        if not isinstance(r, dict) or "dst" not in r:
            raise CniError(7, "each ipam route needs a dst")
        routes.append((str(r["dst"]), r.get("gw")))
    if _bool(conf, "isDefaultGateway") and not any(d in ("0.0.0.0/0", "default") for d, _ in routes):
        routes.append(("0.0.0.0/0", None))
    is_gw = _bool(conf, "isGateway") or _bool(conf, "isDefaultGateway")
    mtu = conf.get("mtu", 1500)
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise CniError(7, "mtu must be an integer between 68 and 65535")
    bridge = conf.get("bridge", "cni0")
    if not isinstance(bridge, str) or not 0 < len(bridge) < 16:
        raise CniError(7, "bridge must be an interface name of at most 15 characters")
    return PodNetConfig(range=rng, network=name, bridge=bridge, mtu=mtu, is_gateway=is_gw,
                        hairpin=_bool(conf, "hairpinMode"), routes=tuple(routes),
                        data_dir=str(ipam.get("dataDir") or DEFAULT_DATA_DIR))


def render(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The result in the caller's cniVersion (0.3.x/0.4.0 tag ips with "version")."""
    out = dict(result)
    out["cniVersion"] = version
    if version.startswith("0."):
        out["ips"] = [{**ip, "version": "4"} for ip in result.get("ips", [])]
    return out


def _env(env: Mapping[str, str], key: str, required: bool = True) -> str:
    v = env.get(key, "")
    if required and not v:
        raise CniError(4, f"required environment variable {key} is missing")
    return v


def run(env: Mapping[str, str], stdin: str) -> dict[str, Any] | None:
    """One plugin invocation; returns the JSON to print (None: print nothing).
    Raises CniError for the spec's error replies."""
    command = _env(env, "CNI_COMMAND")
    if command == "VERSION":
        try:
            asked = json.loads(stdin).get("cniVersion", LATEST) if stdin.strip() else LATEST
        except (ValueError, AttributeError):
            asked = LATEST
        return {"cniVersion": asked if asked in SUPPORTED else LATEST, "supportedVersions": SUPPORTED}
    try:
        conf = json.loads(stdin)
        if not isinstance(conf, dict):
            raise ValueError("not an object")
    except ValueError as e:
        raise CniError(6, f"cannot decode network configuration: {e}") from None
    version = conf.get("cniVersion")
    if version not in SUPPORTED:
        raise CniError(1, f"incompatible CNI version {version!r}", f"supported: {', '.join(SUPPORTED)}")
    cfg = parse_config(conf)
    if command == "STATUS":
        return None
    if command == "GC":
        valid = {(a.get("containerID"), a.get("ifname")) for a in conf.get("cni.dev/valid-attachments", [])}
        store = HostLocalStore(cfg.data_dir, cfg.network)
        for cid, ifname in store.allocations().values():
            if (cid, ifname) not in valid:
                store.release(cid, ifname)
        return None
    if command not in ("ADD", "DEL", "CHECK"):
        raise CniError(4, f"unknown CNI_COMMAND {command!r}")
    cid = _env(env, "CNI_CONTAINERID")
    ifname = _env(env, "CNI_IFNAME")
    pn = PodNetwork(cfg, node_netns=None)
    try:
        if command == "ADD":
            return render(pn.add(_env(env, "CNI_NETNS"), cid, ifname), version)
        if command == "DEL":
            pn.delete(env.get("CNI_NETNS") or None, cid, ifname)
            return None
        if version in ("0.3.0", "0.3.1"):
            raise CniError(2, f"CHECK is not defined for cniVersion {version}")
        prev = conf.get("prevResult")
        if not isinstance(prev, dict):
            raise CniError(7, "CHECK needs prevResult")
        pn.check(_env(env, "CNI_NETNS"), cid, ifname, prev)
        return None
    finally:
        pn.close()


def main(env: Mapping[str, str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The `kinns-cni` executable: exit 0 on success, 1 with an error JSON."""
    env = os.environ if env is None else env
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    text = stdin.read() if env.get("CNI_COMMAND") != "VERSION" or not stdin.isatty() else ""
    version = LATEST
    try:
        version = str(json.loads(text).get("cniVersion") or LATEST)
    except (ValueError, AttributeError):
        pass
    try:
        out = run(env, text)
    except CniError as e:
        err = {"cniVersion": version, "code": e.code, "msg": e.msg}
        if e.details:
            err["details"] = e.details
        stdout.write(json.dumps(err) + "\n")
        return 1
    except Exception as e:  # noqa: BLE001 - the spec wants JSON for every failure
        stdout.write(json.dumps({"cniVersion": version, "code": 999, "msg": str(e),
                                 "details": type(e).__name__}) + "\n")
        return 1
    if out is not None:
        stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
