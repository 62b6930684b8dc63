"""Service environment variables and `$(VAR)` expansion, as the kubelet does.

Before Kubernetes had DNS, a pod found Services through variables injected at
container start, in two styles that are still there today:

- `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT` and one
  `<NAME>_SERVICE_PORT_<PORTNAME>` per named port;
- Docker-link style: `<NAME>_PORT=tcp://IP:PORT` for the first port and,
  per port, `<NAME>_PORT_<PORT>_<PROTO>` (the URL) with `_PROTO`, `_PORT`
  and `_ADDR` siblings.

`<NAME>` is the Service name upper-cased with `-` turned into `_`.  Only
Services with a cluster IP count (headless and ExternalName ones do not).
The pod sees the Services of its own namespace when `enableServiceLinks`
is true (the default) and, always, the `kubernetes` Service of the
`default` namespace.  Variables only reflect Services that existed when the
container started, which is why the notes recommend DNS.

Pure functions: the kubelet passes the Services it knows.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

MASTER_SERVICES = frozenset({"kubernetes"})


def _var_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _has_cluster_ip(svc: dict[str, Any]) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def _host_port(ip: str, port: int | str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def vars_for_service(svc: dict[str, Any]) -> dict[str, str]:
    """All variables one Service contributes (empty when it has no cluster IP)."""
    if not _has_cluster_ip(svc):
        return {}
    spec = svc["spec"]
    ip = spec["clusterIP"]
    ports = spec.get("ports") or []
    name = _var_name(svc["metadata"]["name"])
    env: dict[str, str] = {f"{name}_SERVICE_HOST": ip}
    if ports:
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
    for p in ports:
        if p.get("name"):
            env[f"{name}_SERVICE_PORT_{_var_name(p['name'])}"] = str(p["port"])
    for i, p in enumerate(ports):
        proto = (p.get("protocol") or "TCP").upper()
        url = f"{proto.lower()}://{_host_port(ip, p['port'])}"
        if i == 0:
            env[f"{name}_PORT"] = url
        prefix = f"{name}_PORT_{p['port']}_{proto}"
        env[prefix] = url
        env[f"{prefix}_PROTO"] = proto.lower()
        env[f"{prefix}_PORT"] = str(p["port"])
        env[f"{prefix}_ADDR"] = ip
    return env


def service_env(services: Iterable[dict[str, Any]], namespace: str, *,
                enable_service_links: bool = True) -> dict[str, str]:
    """The service variables a pod in `namespace` gets at container start.

    `services` may hold Services of any namespace; the selection rules are
    applied here.  A Service named `kubernetes` in the pod's own namespace
    shadows the master one, as upstream."""
    chosen: dict[str, dict[str, Any]] = {}
    for svc in services:
        if not _has_cluster_ip(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace") or "default"
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for svc in chosen.values():
        env.update(vars_for_service(svc))
    return env


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion for env values, command and args:
    a defined `$(VAR)` is replaced, an undefined one stays as written, and
    `$$` escapes a dollar (`$$(VAR)` gives the literal `$(VAR)`)."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        var = m.group(1)
        return env[var] if var in env else m.group(0)
    return _REF.sub(sub, text)


def pod_fields(pod: dict[str, Any], pod_ip: str = "", host_ip: str = "") -> dict[str, str]:
    """The downward API's `fieldRef` paths for `pod` (what `valueFrom.fieldRef` may name)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    out = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
           "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
           "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
           "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip, "status.hostIPs": host_ip}
    for k, v in (meta.get("labels") or {}).items():
        out[f"metadata.labels['{k}']"] = v
    for k, v in (meta.get("annotations") or {}).items():
        out[f"metadata.annotations['{k}']"] = v
    return out


def container_env(container: dict[str, Any], base: Mapping[str, str],
                  fields: Mapping[str, str] | None = None,
                  resource: Callable[[dict[str, Any]], str] | None = None) -> dict[str, str]:
    """Literal `env` entries of `container` layered over `base` (service
    variables, ...), each value expanded against what came before it.
    `valueFrom.fieldRef` entries take their value from `fields` (see
    `pod_fields`), `valueFrom.resourceFieldRef` ones from `resource` (the
    kubelet passes `downward.resource_value` bound to the pod); other
    `valueFrom` sources need the API and are left to the caller."""
    env = dict(base)
    for item in container.get("env") or []:
        if "valueFrom" in item and "value" not in item:
            value_from = item.get("valueFrom") or {}
            ref = value_from.get("fieldRef") or {}
            if fields is not None and ref.get("fieldPath") in fields:
                env[item["name"]] = fields[ref["fieldPath"]]
            elif resource is not None and isinstance(value_from.get("resourceFieldRef"), dict):
                try:
                    env[item["name"]] = resource(value_from["resourceFieldRef"])
                except ValueError:
                    pass
            continue
        env[item["name"]] = expand(str(item.get("value", "")), env)
    return env
