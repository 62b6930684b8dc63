"""networking.k8s.io/v1 NetworkPolicy: defaulting and validation, in upstream's words.

The API server's half of NetworkPolicy (the enforcing half is the
`kube-network-policies` agent on every node, kinns/netpol).  A policy that
the server accepts is one the agents can always render, so the checks that
matter for enforcement live here, with the messages of upstream's
pkg/apis/networking/validation (v1.32):

* `ipBlock.cidr` / `ipBlock.except[i]`: `must be a valid CIDR value, (e.g.
  10.9.8.0/24 or 2001:db8::/64)`; an except that is not inside its block
  (or not narrower): ``must be a strict subset of `cidr` ``;
* ports: protocol `TCP`/`UDP`/`SCTP`, numbers 1-65535, IANA port names,
  ``endPort`` only with a numeric `port` and not below it (upstream reports
  the *port* as the bad value there, and so do we);
* peers: at least one of podSelector/namespaceSelector/ipBlock, and ipBlock
  alone; label selectors as everywhere else;
* policyTypes: `Ingress`/`Egress`, at most two.

Defaulting (pkg/apis/networking/v1/defaults.go): a port without a protocol
is TCP; a policy without `policyTypes` gets `[Ingress]`, plus `Egress` when
it has egress rules, so `kubectl get netpol -o yaml` shows what is enforced.

Shared checks (label selectors, port names, Go-style rendering) come from
validation.py, imported inside the checks: defaults.py imports this module
and validation.py imports defaults.py, so a module-level import would be a
cycle whichever of the two is loaded first.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .errors import FORBIDDEN, INVALID, REQUIRED, FieldError

Obj = dict[str, Any]
Errs = list[FieldError]

PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
CIDR_ERROR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
EXCEPT_ERROR = "must be a strict subset of `cidr`"


# ================================================================ defaulting

def _dicts(value: Any) -> list[Obj]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def default(obj: Obj) -> None:
    """SetDefaults_NetworkPolicy and SetDefaults_NetworkPolicyPort, in place (idempotent)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                if not port.get("protocol"):
                    port["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


# ================================================================ validation

def parse_cidr(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """netutils.ParseCIDRSloppy: `a.b.c.d/n` with host bits allowed; None when it is not a CIDR."""
    if not isinstance(text, str) or "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _ip_block(block: Obj, path: str) -> Errs:
    """ValidateIPBlock."""
    cidr_text = block.get("cidr") or ""
    if not cidr_text:
        return [FieldError(REQUIRED, f"{path}.cidr")]
    cidr = parse_cidr(cidr_text)
    if cidr is None:
        return [FieldError(INVALID, f"{path}.cidr", cidr_text, CIDR_ERROR)]
    errs: Errs = []
    for i, text in enumerate(block.get("except") or []):
        p = f"{path}.except[{i}]"
        exc = parse_cidr(text)
        if exc is None:
            errs.append(FieldError(INVALID, p, text, CIDR_ERROR))
            continue
        if (exc.version != cidr.version or exc.network_address not in cidr
                or cidr.prefixlen >= exc.prefixlen):
            errs.append(FieldError(INVALID, p, text, EXCEPT_ERROR))
    return errs


def _peer(peer: Obj, path: str) -> Errs:
    """ValidateNetworkPolicyPeer."""
    from . import validation as v
    errs: Errs = []
    n = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            n += 1
            errs += v.validate_label_selector(peer[key], f"{path}.{key}")
    if peer.get("ipBlock") is not None:
        n += 1
        errs += _ip_block(v._as_dict(peer["ipBlock"]), f"{path}.ipBlock")
    if n == 0:
        errs.append(FieldError(REQUIRED, path, detail="must specify a peer"))
    elif n > 1 and peer.get("ipBlock") is not None:
        errs.append(FieldError(FORBIDDEN, path, detail="may not specify both ipBlock and another peer"))
    return errs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _port(port: Obj, path: str) -> Errs:
    """ValidateNetworkPolicyPort."""
    from . import validation as v
    errs: Errs = []
    proto = port.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        errs.append(v._not_supported(f"{path}.protocol", proto, PROTOCOLS))
    value, end = port.get("port"), port.get("endPort")
    if value is None:
        if end is not None:
            errs.append(FieldError(INVALID, f"{path}.endPort", end, "may not be specified when `port` is not specified"))
    elif _is_int(value):
        errs += v._each(f"{path}.port", value, [] if 1 <= value <= 65535 else [v.PORT_RANGE_ERROR])
        if end is not None:
            if _is_int(end) and end < value:
                errs.append(FieldError(INVALID, f"{path}.endPort", value, "must be greater than or equal to `port`"))
            if not _is_int(end) or not 1 <= end <= 65535:
                errs.append(FieldError(INVALID, f"{path}.endPort", end, v.PORT_RANGE_ERROR))
    else:
        if end is not None:
            errs.append(FieldError(INVALID, f"{path}.endPort", end, "may not be specified when `port` is non-numeric"))
        errs += v._each(f"{path}.port", value, v.is_port_name(str(value)))
    return errs


def validate_spec(spec: Obj, path: str = "spec") -> Errs:
    """ValidateNetworkPolicySpec."""
    from . import validation as v
    errs = v.validate_label_selector(spec.get("podSelector"), f"{path}.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(_dicts(spec.get(direction))):
            rpath = f"{path}.{direction}[{i}]"
            for j, port in enumerate(_dicts(rule.get("ports"))):
                errs += _port(port, f"{rpath}.ports[{j}]")
            for j, peer in enumerate(_dicts(rule.get(peers_key))):
                errs += _peer(peer, f"{rpath}.{peers_key}[{j}]")
    types = spec.get("policyTypes") or []
    if len(types) > len(POLICY_TYPES):
        rendered = "&[]networking.PolicyType{" + ", ".join(json.dumps(str(t)) for t in types) + "}"
        return errs + [v._raw(INVALID, f"{path}.policyTypes", rendered, "may not specify more than two policyTypes")]
    for i, t in enumerate(types):
        if t not in POLICY_TYPES:
            errs.append(v._not_supported(f"{path}.policyTypes[{i}]", t, POLICY_TYPES))
    return errs


def validate(obj: Obj) -> Errs:
    """ValidateNetworkPolicy's spec part (metadata is checked for every kind by validation.py)."""
    from . import validation as v
    return validate_spec(v._as_dict(obj.get("spec")))
