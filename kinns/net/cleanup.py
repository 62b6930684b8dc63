"""Remove a cluster's network by name: no daemon, no state file needed.

Everything kinns puts on the host is named from the cluster name: the
namespaces `kinns-<cluster>-*` under /run/netns and the host link
`kinns-<6 hex>`.  Deleting a namespace's mount frees it with every link
inside (bridges, veths, VXLAN devices); deleting the host link removes its
peer in the fabric and the host route with it.  Each step tolerates what is
already gone, so `teardown` is idempotent and works after a SIGKILL.

One subtlety: cluster `a`'s prefix `kinns-a-` also matches cluster `a-b`'s
namespaces.  Names that belong to a longer cluster name whose fabric
namespace exists are left alone.
"""

from __future__ import annotations

import errno

from pyroute2.netlink.exceptions import NetlinkError

from . import desired, netns, pod_network
from .applier import Sockets, ifindex


def _owner_filter(cluster: str) -> list[str]:
    """Prefixes of clusters whose names extend `cluster` + "-" (not ours)."""
    others = [n[len("kinns-"):-len("-fabric")] for n in netns.list_names("kinns-")
              if n.endswith("-fabric") and n != desired.fabric_netns(cluster)]
    return [desired.ns_prefix(o) for o in others if o.startswith(cluster + "-")]


def _ours(cluster: str, name: str, longer: list[str]) -> bool:
    return name.startswith(desired.ns_prefix(cluster)) and not any(name.startswith(p) for p in longer)


def cluster_namespaces(cluster: str) -> list[str]:
    """Namespaces that belong to `cluster` (see the module doc)."""
    longer = _owner_filter(cluster)
    return [n for n in netns.list_names(desired.ns_prefix(cluster)) if _ours(cluster, n, longer)]


def teardown(cluster: str) -> list[str]:
    """Delete the cluster's namespaces and host link; returns what it removed."""
    removed: list[str] = []
    pod_network.forget(desired.ns_prefix(cluster))
    host = desired.host_ifname(cluster)
    with Sockets() as socks:
        ipr = socks.get(None)
        idx = ifindex(ipr, host)
        if idx is not None:
            try:
                ipr.link("del", index=idx)
                removed.append(f"link {host}")
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    raise
    for name in cluster_namespaces(cluster):
        netns.delete(name)
        removed.append(f"netns {name}")
    return removed


def leftovers(cluster: str) -> list[str]:
    """What of the cluster's network is still on the host (the leak check)."""
    found = [f"netns {n}" for n in cluster_namespaces(cluster)]
    host = desired.host_ifname(cluster)
    with Sockets() as socks:
        if ifindex(socks.get(None), host) is not None:
            found.append(f"link {host}")
    longer = _owner_filter(cluster)
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1]
            head, _, name = mnt.rpartition("/")
            if head == str(netns.NETNS_DIR) and _ours(cluster, name, longer):
                found.append(f"mount {mnt}")
    return found
