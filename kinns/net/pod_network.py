"""Attach a pod to its node's bridge: veth, address, routes, CNI result.

ADD allocates an IP from the node's range (`ipam.HostLocalStore`), creates a
veth pair in the node namespace whose peer is born directly inside the pod
namespace as `eth0`, puts the node end (`veth<hash>`) on `cni0`, then gives
`eth0` its address and a default route via the gateway (the first address of
the range, held by `cni0`).  DEL undoes it and is idempotent; CHECK compares
the kernel with a previous result.  The same code serves the kubelet
in-process (`add_pod` etc., with a cached netlink socket per node) and the
`kinns-cni` executable (`PodNetwork` in the caller's namespace).

The node-side veth name is a hash of (container ID, ifname) so DEL can find
it without state, and the result has the CNI shape (interfaces, ips, routes)
so callers can treat us like the reference bridge + host-local plugins.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import desired, netns, rtnl
from .desired import NodeNet
from .ipam import DEFAULT_DATA_DIR, HostLocalStore, IpamError, Range

if TYPE_CHECKING:                     # pyroute2 costs ~100 ms to import: only CHECK needs it
    from pyroute2 import IPRoute

    from .applier import Sockets

CNI_VERSION = "1.0.0"
BRIDGE_MODE_HAIRPIN = 1


class CniError(Exception):
    """A failure with its CNI error code (spec: 1-7, 11; 100+ our own)."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


@dataclass(frozen=True)
class PodNetConfig:
    """What a pod attachment needs; built from a NodeNet or a CNI config."""
    range: Range
    network: str = "kinns"
    bridge: str = desired.CNI_BRIDGE
    mtu: int = desired.LINK_MTU
    is_gateway: bool = True
    hairpin: bool = False
    routes: tuple[tuple[str, str | None], ...] = (("0.0.0.0/0", None),)
    data_dir: str = DEFAULT_DATA_DIR
    loopback_up: bool = False       # the kubelet has no separate loopback plugin

    @property
    def gateway(self) -> str:
        return str(self.range.gw)


def node_config(node: NodeNet, state_dir: str | Path, mode: str = "vxlan") -> PodNetConfig:
    """The config the kubelet uses for pods of `node`: its podCIDR, gateway
    .1, MTU of the overlay, hairpin on (a pod reaching itself via a Service),
    IPAM files under `<state_dir>/cni/<node>/networks/kinns/`."""
    return PodNetConfig(range=Range(node.pod_cidr, node.pod_gateway), mtu=desired.pod_mtu(mode),
                        hairpin=True, loopback_up=True,
                        data_dir=str(Path(state_dir) / "cni" / node.name / "networks"))


class PodNetwork:
    """Pod attachments on one node (namespace `node_netns`, None = ours)."""

    def __init__(self, cfg: PodNetConfig, node_netns: str | None = None) -> None:
        self.cfg = cfg
        self.node_netns = node_netns
        self._socks: Sockets | None = None
        self.store = HostLocalStore(cfg.data_dir, cfg.network)
        self._lock = threading.Lock()
        self._fast: tuple[int, rtnl.Rtnl] | None = None
        self._bridge_info: tuple[int, str] | None = None

    # -- helpers ------------------------------------------------------------
    def _node(self) -> IPRoute:
        """A pyroute2 socket in the node, for the rare paths (CHECK)."""
        if self._socks is None:
            from .applier import Sockets
            self._socks = Sockets()
        return self._socks.get(self.node_netns)

    def close(self) -> None:
        """Close cached sockets: they would keep a deleted node namespace alive."""
        if self._socks is not None:
            self._socks.close()
            self._socks = None
        if self._fast is not None:
            self._fast[1].close()
            self._fast = None

    def ensure_bridge(self) -> tuple[int, str]:
        """The bridge's (index, MAC), creating it with the gateway address
        when missing, as the bridge plugin does on first use."""
        node = self._rtnl()
        (err, msgs), = node.batch(rtnl.get_link(self.cfg.bridge), check=False)
        if err == errno.ENODEV:
            node.batch(rtnl.bridge_create(self.cfg.bridge, self.cfg.mtu), check=False)
            (err, msgs), = node.batch(rtnl.get_link(self.cfg.bridge), check=False)
        if err:
            raise rtnl.NetlinkError(err, f"bridge {self.cfg.bridge}: {os.strerror(err)}")
        br = rtnl.parse_link(msgs[0])
        if not br.flags & rtnl.IFF_UP:
            node.batch(rtnl.link_up(br.index))
        if self.cfg.is_gateway:
            plen = self.cfg.range.network.prefixlen
            gw = f"{self.cfg.gateway}/{plen}"
            have = set(node.addresses(br.index))
            if have - {gw}:
                # two networks on one bridge would route each other's pods
                # wrongly; refuse as the reference bridge plugin does
                raise CniError(100, f"{self.cfg.bridge} already has an IP address different from {gw}")
            if gw not in have:
                node.batch(rtnl.add_addr(br.index, self.cfg.gateway, plen))
        return br.index, br.mac

    def _result(self, ip: str, bridge_mac: str, veth: str, veth_mac: str, ifname: str, pod_mac: str,
                sandbox: str) -> dict[str, Any]:
        # routes echo the configuration, as host-local does: a gw only if one was given
        routes = [{"dst": dst, **({"gw": gw} if gw else {})} for dst, gw in self.cfg.routes]
        return {
            "cniVersion": CNI_VERSION,
            "interfaces": [
                {"name": self.cfg.bridge, "mac": bridge_mac},
                {"name": veth, "mac": veth_mac},
                {"name": ifname, "mac": pod_mac, "sandbox": sandbox},
            ],
            "ips": [{"address": ip, "gateway": self.cfg.gateway, "interface": 2}],
            "routes": routes,
            "dns": {},
        }

    # -- ADD / DEL / CHECK --------------------------------------------------
    def _rtnl(self) -> rtnl.Rtnl:
        """The node's batched-netlink socket, renewed if its namespace was re-created."""
        ino = os.stat(netns.path(self.node_netns)).st_ino if self.node_netns else 0
        if self._fast is None or self._fast[0] != ino:
            if self._fast is not None:
                self._fast[1].close()
            self._fast = (ino, rtnl.Rtnl(self.node_netns))
        return self._fast[1]

    def _bridge(self, refresh: bool = False) -> tuple[int, str]:
        if refresh or self._bridge_info is None:
            self._bridge_info = self.ensure_bridge()
        return self._bridge_info

    def add(self, pod_netns: str, container_id: str, ifname: str = "eth0", prefer: str | None = None) -> dict[str, Any]:
        """Attach the pod; fails (code 100) if `ifname` exists in the pod.

        Only the node side (the cached bridge and node socket) is done under
        `_lock`: the pod's own socket is private to this call and the IPAM
        store has its flock, so pods of one node are set up in parallel up to
        the veth batch.  (Under one lock for everything, a kubelet's workers
        queued for it a quarter of the time they spent attaching pods.)"""
        sandbox = netns.path(pod_netns)
        if not os.path.exists(sandbox):
            raise CniError(3, f"pod network namespace {sandbox} does not exist")
        try:
            pod = rtnl.Rtnl(pod_netns)
        except OSError as e:
            raise CniError(3, f"cannot enter pod network namespace {sandbox}: {e}") from None
        try:
            if pod.batch(rtnl.get_link(ifname), check=False)[0][0] == 0:
                raise CniError(100, f"interface {ifname} already exists in {sandbox}")
            try:
                alloc = self.store.allocate(container_id, ifname, self.cfg.range, prefer=prefer)
            except IpamError as e:
                raise CniError(e.code, str(e)) from None
            veth = desired.veth_name(container_id, ifname)
            try:
                return self._plumb(pod, sandbox, veth, ifname, alloc.ip)
            except BaseException:
                with self._lock:
                    self._unplumb(pod, veth, ifname)
                self.store.release(container_id, ifname)
                raise
        finally:
            pod.close()

    def _plumb(self, pod: rtnl.Rtnl, sandbox: str, veth: str, ifname: str,
               ip: ipaddress.IPv4Interface) -> dict[str, Any]:
        """Two batches: node side (bridge check, veth, hairpin, read back),
        under `_lock`, and pod side (read eth0, address, routes, lo)."""
        with self._lock:
            res = self._plumb_node(sandbox, self._bridge()[0], veth, ifname)
            bridge_mac = self._bridge()[1]      # as re-read if the bridge was re-created
        vlink = rtnl.parse_link(res[-1][1][0])
        plink = rtnl.parse_link(pod.batch(rtnl.get_link(ifname))[0][1][0])
        msgs = [rtnl.link_up(plink.index), rtnl.add_addr(plink.index, str(ip.ip), ip.network.prefixlen)]
        msgs += [rtnl.replace_route(dst, gw or self.cfg.gateway, plink.index) for dst, gw in self.cfg.routes]
        if self.cfg.loopback_up:
            msgs.append(rtnl.link_up(1))          # lo is index 1 in every namespace
        pod.batch(*msgs)
        return self._result(str(ip), bridge_mac, veth, vlink.mac, ifname, plink.mac, sandbox)

    def _plumb_node(self, sandbox: str, bridge_idx: int, veth: str, ifname: str) -> list[tuple[int, list[bytes]]]:
        """The node-side batch (caller holds `_lock`): the veth pair with its
        peer born in the pod as `ifname`, on the bridge; retried when the
        bridge was re-created or a leftover veth is in the way."""
        node = self._rtnl()
        fd = os.open(sandbox, os.O_RDONLY)
        try:
            for attempt in range(3):
                msgs = [rtnl.get_link(self.cfg.bridge),
                        rtnl.veth_create(veth, ifname, self.cfg.mtu, bridge_idx, fd)]
                if self.cfg.hairpin:
                    msgs.append(rtnl.hairpin(veth))
                msgs.append(rtnl.get_link(veth))
                res = node.batch(*msgs, check=False)
                br_err, br_msgs = res[0]
                if br_err or rtnl.parse_link(br_msgs[0]).index != bridge_idx:
                    # cni0 vanished or was re-created since we cached it
                    node.batch(rtnl.del_link(veth), check=False)
                    bridge_idx = self._bridge(refresh=True)[0]
                    continue
                if res[1][0] == errno.EEXIST and attempt == 0:
                    # a leftover of a pod whose namespace vanished without DEL
                    node.batch(rtnl.del_link(veth), check=False)
                    continue
                for (kind, _, _), (err, _) in zip(msgs, res):
                    if err:
                        raise rtnl.NetlinkError(err, f"{veth}: request {kind}: {os.strerror(err)}")
                break
            else:
                raise CniError(11, f"{self.cfg.bridge} keeps changing; try again")
        finally:
            os.close(fd)
        return res

    def _unplumb(self, pod: rtnl.Rtnl | None, veth: str, ifname: str) -> None:
        """Delete the pair from whichever end is still there; absent is fine."""
        if pod is not None:
            pod.batch(rtnl.del_link(ifname), check=False)
        err = self._rtnl().batch(rtnl.del_link(veth), check=False)[0][0]
        if err not in (0, errno.ENODEV):
            raise rtnl.NetlinkError(err, f"delete {veth}: {os.strerror(err)}")

    def delete(self, pod_netns: str | None, container_id: str, ifname: str = "eth0") -> None:
        """Detach the pod and free its IP; missing pieces are not an error."""
        with self._lock:
            pod = None
            if pod_netns and netns.exists(pod_netns):
                pod = rtnl.Rtnl(pod_netns)
            try:
                self._unplumb(pod, desired.veth_name(container_id, ifname), ifname)
            finally:
                if pod is not None:
                    pod.close()
            self.store.release(container_id, ifname)

    def check(self, pod_netns: str, container_id: str, ifname: str, prev: dict[str, Any]) -> None:
        """Raise CniError unless the pod still looks like `prev` says."""
        from .applier import ifindex
        if not netns.exists(pod_netns):
            raise CniError(3, f"pod network namespace {netns.path(pod_netns)} does not exist")
        owned = set(self.store.find(container_id, ifname))
        ips = [ipaddress.IPv4Interface(i["address"]) for i in prev.get("ips", [])]
        for ip in ips:
            if str(ip.ip) not in owned:
                raise CniError(100, f"{ip.ip} is not allocated to {container_id}/{ifname}")
        veth = desired.veth_name(container_id, ifname)
        ipr = self._node()
        vidx = ifindex(ipr, veth)
        br = ifindex(ipr, self.cfg.bridge)
        if vidx is None or br is None or ipr.link("get", index=vidx)[0].get("IFLA_MASTER") != br:
            raise CniError(100, f"{veth} is missing or not on {self.cfg.bridge}")
        pod = netns.iproute(pod_netns)
        try:
            pidx = ifindex(pod, ifname)
            if pidx is None:
                raise CniError(100, f"interface {ifname} missing in {netns.path(pod_netns)}")
            have = {f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in pod.get_addr(index=pidx, family=2)}
            for ip in ips:
                if str(ip) not in have:
                    raise CniError(100, f"{ifname} lacks address {ip}")
            for r in prev.get("routes", []):
                net = ipaddress.ip_network(r["dst"])
                found = [rt for rt in pod.get_routes(family=2, table=254)
                         if rt["dst_len"] == net.prefixlen
                         and (rt.get("RTA_DST") or "0.0.0.0") == str(net.network_address)
                         and (not r.get("gw") or rt.get("RTA_GATEWAY") == r["gw"])]
                if not found:
                    raise CniError(100, f"route to {r['dst']} missing in {netns.path(pod_netns)}")
        finally:
            pod.close()


# ---- the kubelet's in-process entry points ---------------------------------

@dataclass
class _Registry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    nets: dict[tuple[str, str, str], PodNetwork] = field(default_factory=dict)


_registry = _Registry()


def network_for(node: NodeNet, state_dir: str | Path, mode: str = "vxlan") -> PodNetwork:
    """The (cached) PodNetwork of a node: one netlink socket per node for the
    life of the daemon, which is where the speed over exec'd plugins comes from."""
    key = (node.netns, str(state_dir), mode)
    with _registry.lock:
        pn = _registry.nets.get(key)
        if pn is None:
            pn = PodNetwork(node_config(node, state_dir, mode), node.netns)
            _registry.nets[key] = pn
        return pn


def add_pod(node: NodeNet, pod_netns: str, container_id: str, ifname: str = "eth0", *,
            state_dir: str | Path, mode: str = "vxlan") -> dict[str, Any]:
    """Attach a pod's namespace (name under /run/netns, or a path) to `node`;
    returns the CNI result (pod IP in result["ips"][0]["address"])."""
    return network_for(node, state_dir, mode).add(pod_netns, container_id, ifname)


def del_pod(node: NodeNet, pod_netns: str | None, container_id: str, ifname: str = "eth0", *,
            state_dir: str | Path, mode: str = "vxlan") -> None:
    """Detach a pod and release its IP; idempotent, works if the pod's
    namespace is already gone (pass None)."""
    network_for(node, state_dir, mode).delete(pod_netns, container_id, ifname)


def check_pod(node: NodeNet, pod_netns: str, container_id: str, prev_result: dict[str, Any],
              ifname: str = "eth0", *, state_dir: str | Path, mode: str = "vxlan") -> None:
    network_for(node, state_dir, mode).check(pod_netns, container_id, ifname, prev_result)


def forget(prefix: str = "") -> None:
    """Close cached sockets of namespaces starting with `prefix`, so a torn
    down cluster's node namespaces are not kept alive by this process."""
    with _registry.lock:
        for key in [k for k in _registry.nets if k[0].startswith(prefix)]:
            _registry.nets.pop(key).close()


# ---- whole pod sandboxes (the kubelet's view) ---------------------------------

@dataclass(frozen=True)
class PodAttachment:
    """A pod's network namespace and address, as the kubelet needs them."""
    netns: str                  # name under /run/netns
    path: str                   # what to hand to setns / sandbox code
    ip: str                     # the pod IP, without prefix length
    result: dict[str, Any]      # the CNI result of the ADD (empty when re-attached)


def setup_pod(node: NodeNet, pod_uid: str, *, state_dir: str | Path, mode: str = "vxlan") -> PodAttachment:
    """Create the pod's namespace `kinns-<cluster>-pod-<uid>` and attach it
    (container ID = pod UID, interface eth0).  Idempotent: a pod that is
    already attached (a restarted kubelet) gets its existing address back."""
    name = desired.pod_netns(node.cluster, pod_uid)
    pn = network_for(node, state_dir, mode)
    if netns.exists(name):
        have = pn.store.find(pod_uid, "eth0")
        with rtnl.Rtnl(name) as pod:
            attached = pod.batch(rtnl.get_link("eth0"), check=False)[0][0] == 0
        if have and attached:
            return PodAttachment(name, netns.path(name), have[0], {})
        if attached or have:
            pn.delete(name, pod_uid, "eth0")       # half-done earlier: start over
    # After a reboot (or `kinns stop`) the namespace is gone but the address
    # record on disk says which IP the pod had: it gets that one back.
    prefer = None
    if not netns.exists(name):
        prefer = next(iter(pn.store.find(pod_uid, "eth0")), None)
        if prefer is not None:
            with pn._lock:
                pn.store.release(pod_uid, "eth0")
    netns.create(name)
    try:
        res = pn.add(name, pod_uid, "eth0", prefer=prefer)
    except BaseException:
        netns.delete(name)
        raise
    return PodAttachment(name, netns.path(name), res["ips"][0]["address"].split("/")[0], res)


def teardown_pod(node: NodeNet, pod_uid: str, *, state_dir: str | Path, mode: str = "vxlan") -> None:
    """Release the pod's IP and drop its namespace; idempotent.

    The veth pair is not deleted link by link (each deletion waits for an
    RCU grace period, ~20 ms): unmounting the namespace lets the kernel free
    it, with both ends of the pair, in its batched cleanup once the pod's
    last process is gone.  Kill the pod's processes first."""
    name = desired.pod_netns(node.cluster, pod_uid)
    pn = network_for(node, state_dir, mode)
    with pn._lock:
        pn.store.release(pod_uid, "eth0")
    netns.delete(name)
