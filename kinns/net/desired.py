"""The desired network of a cluster, as plain data (no I/O).

Everything kinns puts into the kernel for the node network is computed here
from a few inputs (cluster name, fabric subnet, node names, pod ranges,
overlay mode) and applied by `applier`.  Keeping it pure means the address
plan, the naming rules and the flannel-style overlay entries are unit-tested
without root, and running the applier twice changes nothing.

Names follow the Safety rules of DESIGN.md: on the host only namespaces
`kinns-<cluster>-...` and one link `kinns-<6 hex>`; inside namespaces the
upstream names (`eth0`, `cni0`, `flannel.1`, `veth<hash>`).

Facts used (REFERENCE.md, flannel): VXLAN VNI 1, device `flannel.1`, UDP
8472, no learning, MTU = link MTU - 50; per remote node a route
`<podCIDR> via <podCIDR .0> dev flannel.1 onlink`, a permanent neighbour
`<podCIDR .0>` -> remote VTEP MAC, and an FDB entry `<VTEP MAC> dst <node
IP>`; the local flannel.1 carries `<own podCIDR .0>/32`.  host-gw: a route
`<podCIDR> via <node IP>`.  ipip (Calico's layout): `tunl0` with MTU link - 20
and `<own podCIDR .0>/32`, per remote node `<podCIDR> via <node IP> dev
tunl0 onlink`; tunl0 is the kernel's IP-in-IP device or, where the kernel has
no ipip, a TUN device of that name served by `ipip_encap` (same routes).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FABRIC_BRIDGE = "fabric0"      # bridge inside the fabric namespace
HOST_PEER = "host0"            # fabric end of the host-access veth
NODE_IF = "eth0"               # a node's link to the fabric
CNI_BRIDGE = "cni0"
VXLAN_IF = "flannel.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50
IPIP_IF = "tunl0"
IPIP_OVERHEAD = 20              # one outer IPv4 header (RFC 2003)
LINK_MTU = 1500
MODES = ("vxlan", "host-gw", "ipip")
OVERHEAD = {"vxlan": VXLAN_OVERHEAD, "host-gw": 0, "ipip": IPIP_OVERHEAD}


# ---- names ---------------------------------------------------------------

def cluster_hash(cluster: str, n: int = 6) -> str:
    return hashlib.sha256(cluster.encode()).hexdigest()[:n]


def host_ifname(cluster: str) -> str:
    """The one host link of a cluster: `kinns-<6 hex>` (12 chars < IFNAMSIZ)."""
    return f"kinns-{cluster_hash(cluster)}"


def ns_prefix(cluster: str) -> str:
    return f"kinns-{cluster}-"


def fabric_netns(cluster: str) -> str:
    return f"{ns_prefix(cluster)}fabric"


def node_suffix(cluster: str, node: str) -> str:
    """`kinns-control-plane` in cluster `kinns` -> `control-plane`: the node
    name without the cluster prefix kind puts in front of it."""
    return node[len(cluster) + 1:] if node.startswith(cluster + "-") else node


def node_netns(cluster: str, node: str) -> str:
    return f"{ns_prefix(cluster)}{node_suffix(cluster, node)}"


def pod_netns(cluster: str, pod_key: str) -> str:
    """A suggested name for a pod's namespace (the kubelet may choose)."""
    return f"{ns_prefix(cluster)}pod-{pod_key}"


def node_names(cluster: str, n: int) -> list[str]:
    """kind's naming: `<c>-control-plane`, `<c>-worker`, `<c>-worker2`, ..."""
    if n < 1:
        raise ValueError("a cluster needs at least one node")
    names = [f"{cluster}-control-plane"]
    names += [f"{cluster}-worker" + ("" if i == 1 else str(i)) for i in range(1, n)]
    return names


def veth_name(container_id: str, ifname: str) -> str:
    """Node-side name of a pod's veth, derived so DEL finds it without state."""
    return "veth" + hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:8]


def vtep_mac(cluster: str, node: str) -> str:
    """A stable, locally administered unicast MAC for a node's flannel.1, so
    every peer can compute the FDB/neighbour entries without asking."""
    h = hashlib.sha256(f"{cluster}/{node}/vtep".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0E, *h[:5]))


# ---- the address plan ------------------------------------------------------

@dataclass(frozen=True)
class NodeNet:
    """One node's place in the network: everything peers need to route to it."""
    cluster: str
    name: str
    index: int
    netns: str
    ip: str                 # address on the fabric, e.g. 172.18.5.2
    prefixlen: int          # of the fabric subnet
    gateway: str            # host end of the fabric (.1)
    pod_cidr: str           # e.g. 10.244.1.0/24
    vtep_mac: str

    @property
    def pod_gateway(self) -> str:
        """First address of the node's range: the pods' gateway on cni0."""
        return str(ipaddress.ip_network(self.pod_cidr)[1])

    @property
    def vtep_ip(self) -> str:
        """flannel's VTEP address: the `.0` of the node's range."""
        return str(ipaddress.ip_network(self.pod_cidr).network_address)


def pod_cidrs(cluster_cidr: str, n: int, prefixlen: int = 24) -> list[str]:
    """Node i gets the i-th /24 of the cluster CIDR (10.244.i.0/24)."""
    net = ipaddress.ip_network(cluster_cidr)
    subs = net.subnets(new_prefix=prefixlen)
    out = []
    for _ in range(n):
        try:
            out.append(str(next(subs)))
        except StopIteration:
            raise ValueError(f"cluster CIDR {cluster_cidr} has room for fewer than {n} /{prefixlen} ranges")
    return out


def plan_nodes(cluster: str, subnet: str, names: Sequence[str], cluster_cidr: str = "10.244.0.0/16",
               node_pod_cidrs: Sequence[str] | None = None) -> list[NodeNet]:
    """The nodes' addresses: host side .1, nodes from .2 in order."""
    net = ipaddress.ip_network(subnet)
    if net.num_addresses - 3 < len(names):
        raise ValueError(f"fabric subnet {subnet} is too small for {len(names)} nodes")
    cidrs = list(node_pod_cidrs) if node_pod_cidrs is not None else pod_cidrs(cluster_cidr, len(names))
    return [NodeNet(cluster=cluster, name=name, index=i, netns=node_netns(cluster, name),
                    ip=str(net[2 + i]), prefixlen=net.prefixlen, gateway=str(net[1]),
                    pod_cidr=cidrs[i], vtep_mac=vtep_mac(cluster, name))
            for i, name in enumerate(names)]


def overlaps(subnet: str, routes: Iterable[str]) -> list[str]:
    """Host route destinations that overlap `subnet` (the default route is
    not an overlap: it is where everything unknown goes)."""
    net = ipaddress.ip_network(subnet)
    hits = []
    for dst in routes:
        r = ipaddress.ip_network(dst, strict=False)
        if r.prefixlen == 0 or r.version != net.version:
            continue
        if r.overlaps(net):
            hits.append(dst)
    return hits


def pick_fabric_subnet(cluster: str, host_routes: Iterable[str]) -> str:
    """A free 172.18.<n>.0/24, starting at a hash of the cluster name so two
    clusters rarely try the same one; refuses when all 256 collide."""
    routes = list(host_routes)
    start = int(cluster_hash(cluster, 4), 16) % 256
    for k in range(256):
        cand = f"172.18.{(start + k) % 256}.0/24"
        if not overlaps(cand, routes):
            return cand
    raise ValueError("no free /24 in 172.18.0.0/16 for the fabric; pass a subnet explicitly")


# ---- kernel objects as data -----------------------------------------------

@dataclass(frozen=True)
class Vxlan:
    vni: int
    port: int
    local: str
    dev: str                # underlay link (eth0)


@dataclass(frozen=True)
class Link:
    name: str
    kind: str                         # bridge | veth | vxlan | ipip | tun
    mtu: int | None = None
    mac: str | None = None
    master: str | None = None         # bridge in the same namespace
    peer: str | None = None           # veth: the other end's name ...
    peer_netns: str | None = None     # ... its namespace (None: same)
    peer_master: str | None = None    # ... and its bridge there
    peer_mtu: int | None = None
    vxlan: Vxlan | None = None


@dataclass(frozen=True)
class Addr:
    ifname: str
    cidr: str                         # "10.244.0.1/24"


@dataclass(frozen=True)
class Route:
    dst: str                          # "default" or a CIDR
    gw: str | None = None
    dev: str | None = None
    onlink: bool = False


@dataclass(frozen=True)
class Neigh:
    ifname: str
    ip: str
    mac: str


@dataclass(frozen=True)
class Fdb:
    ifname: str
    mac: str
    dst: str


@dataclass
class NsState:
    """What one namespace should contain (None = the caller's namespace).

    `owned_routes` names the destinations this state is responsible for: the
    applier deletes other routes inside them (stale peers), and nothing else."""
    netns: str | None
    links: list[Link] = field(default_factory=list)
    addrs: list[Addr] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    neighs: list[Neigh] = field(default_factory=list)
    fdbs: list[Fdb] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    owned_routes: list[str] = field(default_factory=list)
    prune_neigh_on: list[str] = field(default_factory=list)
    absent_links: list[str] = field(default_factory=list)


def fabric_state(cluster: str, subnet: str, nodes: Sequence[NodeNet]) -> list[NsState]:
    """Fabric namespace with its bridge, a veth per node (`eth0` inside the
    node), and the host-access veth with `.1` on the host side."""
    net = ipaddress.ip_network(subnet)
    fab = fabric_netns(cluster)
    states = [NsState(fab, links=[Link(FABRIC_BRIDGE, "bridge", mtu=LINK_MTU)])]
    host = NsState(None, links=[Link(host_ifname(cluster), "veth", mtu=LINK_MTU, peer=HOST_PEER,
                                     peer_netns=fab, peer_master=FABRIC_BRIDGE, peer_mtu=LINK_MTU)],
                   addrs=[Addr(host_ifname(cluster), f"{net[1]}/{net.prefixlen}")])
    states.append(host)
    for n in nodes:
        states.append(NsState(
            n.netns,
            links=[Link(NODE_IF, "veth", mtu=LINK_MTU, peer=node_suffix(cluster, n.name)[:15],
                        peer_netns=fab, peer_master=FABRIC_BRIDGE, peer_mtu=LINK_MTU)],
            addrs=[Addr(NODE_IF, f"{n.ip}/{n.prefixlen}")],
            routes=[Route("default", gw=n.gateway, dev=NODE_IF)],
            sysctls={"net/ipv4/ip_forward": "1"},
        ))
    return states


def pod_mtu(mode: str, link_mtu: int = LINK_MTU) -> int:
    if mode not in MODES:
        raise ValueError(f"unknown overlay {mode!r}; use one of {', '.join(MODES)}")
    return link_mtu - OVERHEAD[mode]


def node_state(node: NodeNet, peers: Sequence[NodeNet], mode: str, cluster_cidr: str = "10.244.0.0/16",
               link_mtu: int = LINK_MTU, tunnel_kind: str = "ipip") -> NsState:
    """A node's pod side: `cni0` with the pods' gateway, and the routes to
    every other node's pod range for the chosen overlay.  `tunnel_kind` is
    what tunl0 is for ipip: the kernel's "ipip" device or a user-space "tun"."""
    mtu = pod_mtu(mode, link_mtu)
    gw_len = ipaddress.ip_network(node.pod_cidr).prefixlen
    st = NsState(node.netns,
                 links=[Link(CNI_BRIDGE, "bridge", mtu=mtu)],
                 addrs=[Addr(CNI_BRIDGE, f"{node.pod_gateway}/{gw_len}")],
                 # bridged pod-to-pod replies must pass iptables/nftables so
                 # kube-proxy's DNAT of a same-node Service call is undone
                 sysctls={"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"},
                 owned_routes=[cluster_cidr])
    others = [p for p in peers if p.name != node.name]
    if mode == "vxlan":
        st.links.append(Link(VXLAN_IF, "vxlan", mtu=mtu, mac=node.vtep_mac,
                             vxlan=Vxlan(VXLAN_VNI, VXLAN_PORT, node.ip, NODE_IF)))
        st.addrs.append(Addr(VXLAN_IF, f"{node.vtep_ip}/32"))
        st.prune_neigh_on.append(VXLAN_IF)
        for p in others:
            st.routes.append(Route(p.pod_cidr, gw=p.vtep_ip, dev=VXLAN_IF, onlink=True))
            st.neighs.append(Neigh(VXLAN_IF, p.vtep_ip, p.vtep_mac))
            st.fdbs.append(Fdb(VXLAN_IF, p.vtep_mac, p.ip))
    elif mode == "ipip":
        st.absent_links.append(VXLAN_IF)
        st.links.append(Link(IPIP_IF, tunnel_kind, mtu=mtu))
        st.addrs.append(Addr(IPIP_IF, f"{node.vtep_ip}/32"))
        for p in others:
            st.routes.append(Route(p.pod_cidr, gw=p.ip, dev=IPIP_IF, onlink=True))
    else:
        st.absent_links.append(VXLAN_IF)
        for p in others:
            st.routes.append(Route(p.pod_cidr, gw=p.ip, dev=NODE_IF))
    return st
