"""The downward API: a pod's own facts as files and environment values.

A container learns about itself without asking the API server: the
`downwardAPI` volume (and the `downwardAPI` source of a `projected`
volume) writes chosen fields as files, and env `valueFrom.fieldRef` /
`valueFrom.resourceFieldRef` sets variables.  This module computes the
values, as the kubelet's fieldpath and resource helpers do:

- `field_value(pod, path)`: `metadata.name|namespace|uid`, one label or
  annotation (`metadata.labels['app']`), or all of them as sorted
  `key="value"` lines (`metadata.labels`);
- `resource_value(container, ref, allocatable)`: `limits.cpu`,
  `requests.memory`, ... in units of `divisor` rounded up; a limit the
  container does not set is the node's allocatable amount.

Pure: the kubelet passes the pod, the container and the node's allocatable.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from ..api.defaults import parse_quantity

Obj = dict[str, Any]

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")
RESOURCES = ("limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory",
             "requests.ephemeral-storage")


class DownwardError(ValueError):
    """A field or resource the downward API cannot give (the kubelet's error text)."""


def format_map(values: dict[str, str]) -> str:
    """fieldpath.FormatMap: `k="v"` lines in key order (Go %q quoting)."""
    return "\n".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(values.items()))


def field_value(pod: Obj, path: str) -> str:
    """The value of a `fieldRef.fieldPath` for a downward API volume file."""
    meta = pod.get("metadata") or {}
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".", 1)[1], ""))
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".", 1)[1]) or {})
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path == "spec.nodeName":
        return str((pod.get("spec") or {}).get("nodeName", ""))
    if path == "spec.serviceAccountName":
        return str((pod.get("spec") or {}).get("serviceAccountName", ""))
    raise DownwardError(f"unsupported fieldPath: {path}")


def _quantity(value: Any) -> Decimal | None:
    return parse_quantity(value) if value is not None else None


def resource_value(container: Obj, ref: Obj, allocatable: dict[str, Any] | None = None) -> str:
    """The value of a `resourceFieldRef` for `container` (ExtractContainerResourceValue)."""
    resource = str(ref.get("resource", ""))
    if resource not in RESOURCES and not resource.startswith(("limits.hugepages-", "requests.hugepages-")):
        raise DownwardError(f"unsupported container resource : {resource}")
    section, name = resource.split(".", 1)
    res = container.get("resources") or {}
    amount = _quantity((res.get(section) or {}).get(name))
    if amount is None and section == "limits":
        amount = _quantity((allocatable or {}).get(name))
    amount = amount or Decimal(0)
    divisor = _quantity(ref.get("divisor") or "1") or Decimal(1)
    if divisor <= 0:
        raise DownwardError(f"invalid divisor for {resource}")
    if name == "cpu":
        # In millicores, as convertResourceCPUToString: ceil(MilliValue / divisor's MilliValue).
        return str(math.ceil(Decimal(math.ceil(amount * 1000)) / Decimal(math.ceil(divisor * 1000))))
    return str(math.ceil(Decimal(math.ceil(amount)) / Decimal(math.ceil(divisor))))
