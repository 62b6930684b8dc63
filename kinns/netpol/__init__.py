"""NetworkPolicy enforcement: the `kube-network-policies` agent on every node.

`model` (API objects → values, the spec as an oracle), `rules` (one node's
nftables ruleset, pure), `agent` (informers → sync → `nft -f` and
conntrack clean-up), `__main__` (`python -m kinns.netpol`, what the
`registry.k8s.io/networking/kube-network-policies` image runs).
"""
