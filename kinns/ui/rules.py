"""Cut the rules one Service owns out of a node's whole kube-proxy ruleset.

Clicking a Service shows what kube-proxy wrote for it on each node, as the
kernel lists it (`nft list table ip kube-proxy` or `iptables-save -t nat`),
but only the part about that Service: a node's table holds every Service.

* nftables: the per-ServicePort chains are named `service-<H>-ns/svc/proto/port`
  (and `external-`, `local-`, `firewall-`, `endpoint-`, `affinity-`), so a chain
  is the Service's when its name holds `-ns/svc/`; from the sets and maps
  (`service-ips`, `service-nodeports`, `no-endpoint-services`, ...) only the
  elements naming those chains or the Service's addresses are kept.
* iptables: rules whose comment names `ns/svc[:port]`, then, transitively,
  every rule of the KUBE-SVC/SEP/EXT/FW/SVL chains they jump to (per-endpoint
  comments are dropped in large clusters, the jumps are not).

Pure text functions: unit tests feed them listings.
"""

from __future__ import annotations

import re
import textwrap

_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SVL-")


def _names_service(text: str, ns: str, name: str) -> bool:
    """Whether an iptables comment names the Service (`ns/svc`, `ns/svc:port`), not `ns/svc2`."""
    return re.search(rf'(?<![\w./-]){re.escape(ns)}/{re.escape(name)}(?=[:\s"]|$)', text) is not None


def iptables_rules(save: str, ns: str, name: str) -> str:
    """The Service's lines of `iptables-save` output, in their order, with table headers."""
    lines = save.splitlines()
    owned: set[str] = set()
    for line in lines:
        if line.startswith("-A ") and _names_service(line, ns, name):
            chain = line.split()[1]
            if chain.startswith(_CHAIN_PREFIXES):
                owned.add(chain)
            owned.update(_jump_targets(line))
    grown = True
    while grown:  # SVC -> SEP, EXT -> SVC, FW -> EXT: follow jumps until nothing new
        grown = False
        for line in lines:
            if line.startswith("-A ") and line.split()[1] in owned:
                new = _jump_targets(line) - owned
                if new:
                    owned |= new
                    grown = True
    out: list[str] = []
    for line in lines:
        if line.startswith("*"):
            out.append(line)
        elif line.startswith(":") and line[1:].split(" ", 1)[0] in owned:
            out.append(line)
        elif line.startswith("-A ") and (line.split()[1] in owned or _names_service(line, ns, name)):
            out.append(line)
    return "\n".join(line for i, line in enumerate(out)
                     if not (line.startswith("*") and (i + 1 == len(out) or out[i + 1].startswith("*"))))


def _jump_targets(line: str) -> set[str]:
    words = line.split()
    return {words[i + 1] for i, w in enumerate(words[:-1])
            if w in ("-j", "-g") and words[i + 1].startswith(_CHAIN_PREFIXES)}


def nft_rules(listing: str, ns: str, name: str, addresses: list[str]) -> str:
    """The Service's chains and set/map elements from `nft list table ip kube-proxy`."""
    tag = f"-{ns}/{name}/"
    addr_re = re.compile(r"(?<![\d.])(?:" + "|".join(re.escape(a) for a in addresses) + r")(?![\d/])") \
        if addresses else None
    out: list[str] = []
    for header, body in _blocks(listing):
        kind, _, block_name = header.strip().rstrip("{").strip().partition(" ")
        if kind == "chain":
            if tag in block_name:
                out += [header, *body, "\t}"]
            continue
        if kind not in ("set", "map"):
            continue
        elements = _elements(body)
        keep = [e for e in elements if tag in e or (addr_re is not None and addr_re.search(e))]
        if keep:
            out += [header, "\t\telements = { " + ",\n\t\t\t     ".join(keep) + " }", "\t}"]
    return textwrap.dedent("\n".join(out))


def _blocks(listing: str) -> list[tuple[str, list[str]]]:
    """(header line, body lines) of each set, map and chain of a table listing."""
    blocks: list[tuple[str, list[str]]] = []
    depth = 0
    header = ""
    body: list[str] = []
    for line in listing.splitlines():
        before = depth
        depth += line.count("{") - line.count("}")
        if before == 1 and depth >= 2:
            header, body = line, []
        elif before >= 2 and depth == 1:
            blocks.append((header, body))
        elif before >= 2:
            body.append(line)
    return blocks


def _elements(body: list[str]) -> list[str]:
    """The elements of a set or map body, one string each."""
    text = " ".join(line.strip() for line in body)
    m = re.search(r"elements = \{(.*)\}", text)
    if not m:
        return []
    return [e.strip() for e in m.group(1).split(",") if e.strip()]
