"""Resource quantities ("100m", "1.5", "128Mi", "1G") as numbers.

Just enough of upstream's resource.Quantity for scheduling and cgroup
limits: CPU in millicores, memory in bytes.
"""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_RE = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def _split(q: str | int | float) -> tuple[float, str]:
    m = _RE.match(str(q).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {q!r}")
    return float(m.group(1)), m.group(2)


def parse_cpu_millis(q: str | int | float) -> int:
    num, suffix = _split(q)
    if suffix == "m":
        return int(num)
    if suffix == "n":
        return int(num / 1_000_000)
    if suffix == "u":
        return int(num / 1_000)
    return int(num * _SUFFIX.get(suffix, 1) * 1000)


def parse_bytes(q: str | int | float) -> int:
    num, suffix = _split(q)
    if suffix == "m":
        return int(num / 1000)
    if suffix not in _SUFFIX:
        raise ValueError(f"unknown quantity suffix in {q!r}")
    return int(num * _SUFFIX[suffix])
