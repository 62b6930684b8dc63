"""Prometheus text exposition (format 0.0.4), written and read.

Kubelets serve their resource metrics this way (`/metrics/resource`), and
metrics-server reads them back; kinns does both halves, the kubelet in
`kinns.node.resourcemetrics` and the API server's metrics.k8s.io in
`metricsapi`, so the format lives here, between them, as pure functions.

Output follows client_golang's encoder, which is what `curl`ing a real
kubelet shows: families sorted by name, each with `# HELP` (the stability
level in brackets, as component-base prefixes it) and `# TYPE`, label pairs
sorted by name, values in Go's shortest `%g` form (`1.6089088e+07`), and
an optional timestamp in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterator, Mapping

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One line: a metric name, its labels (sorted), a value and maybe a timestamp."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None

    def label(self, key: str) -> str:
        return next((v for k, v in self.labels if k == key), "")


@dataclass
class Family:
    """A metric family: `# HELP`/`# TYPE` and its samples."""

    name: str
    help: str
    type: str                     # counter | gauge
    stability: str = "STABLE"     # component-base's [STABLE] / [ALPHA] prefix
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, timestamp_ms: int | None = None, labels: Mapping[str, str] | None = None) -> None:
        self.samples.append(Sample(self.name, tuple(sorted((labels or {}).items())), value, timestamp_ms))


def go_float(value: float) -> str:
    """`strconv.FormatFloat(v, 'g', -1, 64)`: the shortest digits that read back
    the same, in exponent form below 1e-4 and from 1e6 up (`2.5e+07`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    exp10 = len(text) + exponent - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exponent >= 0:
        return prefix + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return f"{prefix}{text[:point]}.{text[point:]}"
    return f"{prefix}0.{'0' * -point}{text}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(families: list[Family]) -> str:
    """The exposition text; families without samples are left out, as client_golang does."""
    out: list[str] = []
    for fam in sorted(families, key=lambda f: f.name):
        if not fam.samples:
            continue
        out.append(f"# HELP {fam.name} [{fam.stability}] {fam.help}")
        out.append(f"# TYPE {fam.name} {fam.type}")
        for s in fam.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels)
            line = f"{s.name}{{{labels}}}" if labels else s.name
            line += f" {go_float(s.value)}"
            if s.timestamp_ms is not None:
                line += f" {s.timestamp_ms}"
            out.append(line)
    return "\n".join(out) + "\n" if out else ""


def _labels(text: str) -> tuple[Labels, int]:
    """Parse `{k="v",...}` from the start of `text`; the labels and where they end."""
    assert text[0] == "{"
    pairs: list[tuple[str, str]] = []
    i = 1
    while True:
        while i < len(text) and text[i] in " ,":
            i += 1
        if i >= len(text):
            raise ValueError("unterminated label set")
        if text[i] == "}":
            return tuple(sorted(pairs)), i + 1
        eq = text.index("=", i)
        key = text[i:eq].strip()
        if text[eq + 1] != '"':
            raise ValueError(f"label {key}: value not quoted")
        j, value = eq + 2, []
        while text[j] != '"':
            if text[j] == "\\":
                j += 1
                value.append({"n": "\n"}.get(text[j], text[j]))
            else:
                value.append(text[j])
            j += 1
        pairs.append((key, "".join(value)))
        i = j + 1


def parse(text: str) -> Iterator[Sample]:
    """Every sample in an exposition; comments and blank lines skipped.  A
    malformed line raises ValueError (a scraper counts the scrape as failed)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            labels, end = _labels(line[brace:])
            rest = line[brace + end:].split()
        else:
            name, *rest = line.split()
            labels = ()
        if not rest or len(rest) > 2:
            raise ValueError(f"malformed sample line: {raw!r}")
        value = float(rest[0].replace("Inf", "inf"))
        yield Sample(name, labels, value, int(rest[1]) if len(rest) == 2 else None)
