"""Upstream OpenAPI definitions of the Kubernetes types, loaded once.

The schemas come from the `kubernetes-validate` package, which ships the
upstream definitions (descriptions, `x-kubernetes-group-version-kind`, patch
merge keys) as JSON Schema.  We read them rather than copy upstream files:
OpenAPI documents, strict field validation and strategic merge patch all use
this one table.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

# The Kubernetes version whose schemas we serve; /version reports the same minor.
SCHEMA_VERSION = "v1.32.0"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions keyed by their upstream name (io.k8s.api.core.v1.Pod, ...).

    References inside them are JSON-Schema style: ``{"$ref": "#/$defs/<name>"}``.
    """
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"{SCHEMA_VERSION}-local"
    with (base / "_definitions.json").open("rb") as fh:
        data = json.load(fh)
    defs: dict[str, dict[str, Any]] = data["$defs"]
    return defs


def ref_name(ref: str) -> str:
    """`#/$defs/io.k8s.api.core.v1.Pod` -> `io.k8s.api.core.v1.Pod`."""
    return ref.rsplit("/", 1)[-1]


def definition(name: str) -> dict[str, Any] | None:
    return definitions().get(name)
