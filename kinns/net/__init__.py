"""kinns.net: the node and pod network, built from real kernel objects.

Nodes and pods are network namespaces.  `fabric` joins the node namespaces
on a bridge in a fabric namespace and gives the host one veth into it;
`overlay` gives each node its `cni0` and routes to the other nodes' pod
ranges (flannel-style VXLAN or host-gw); `pod_network` attaches a pod
(veth, IP from `ipam`, routes) and is also served as the `kinns-cni`
executable by `cni_plugin`; `cleanup` removes a cluster's network by name.
`desired` computes all of it as data (pure), `applier` makes the kernel
match over pyroute2, and `rtnl` batches the pod hot path.

The daemon's entry points:
    fabric.Fabric.create(cluster, subnet=None, n_nodes=3, ...) -> list[NodeNet]
    overlay.setup_node(node, peers, mode) / overlay.sync_routes(node, peers, mode)
    pod_network.add_pod(node, pod_netns, container_id, ifname="eth0", *, state_dir, mode) -> CNI result
    pod_network.del_pod(node, pod_netns | None, container_id, ifname="eth0", *, state_dir, mode)
    cleanup.teardown(cluster) -> list[str]

This package imports nothing of its own here, so `kinns.net.desired` stays
importable without netlink.
"""
