"""Sets of completion indexes in upstream's compressed form ("1,3-5,7").

An Indexed Job reports which indexes succeeded (`status.completedIndexes`)
and, with a per-index back-off limit, which failed (`status.failedIndexes`)
as sorted, merged intervals; a success policy names indexes the same way.
These are upstream's `orderedIntervals` (pkg/controller/job/indexed_job_utils.go):
parsing tolerates junk as upstream does (a corrupted interval is skipped,
indexes beyond `completions` are cut off), and `str()` writes two adjacent
indexes as "3,4", three or more as "3-5".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator


def _atoi(text: str) -> int:
    """Go's strconv.Atoi: an optional sign and decimal digits, nothing else."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    return int(text)


@dataclass(frozen=True)
class Intervals:
    """Sorted, non-overlapping, non-adjacent [first, last] pairs."""

    spans: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, text: str | None, completions: int) -> "Intervals":
        """upstream parseIndexesFromString: skip what does not parse, stop at `completions`."""
        if not text:
            return cls()
        out: list[list[int]] = []
        for part in text.split(","):
            limits = part.split("-")
            try:
                first = _atoi(limits[0])
            except ValueError:
                continue
            if first >= completions:
                break
            last = first
            if len(limits) > 1:
                try:
                    last = min(_atoi(limits[1]), completions - 1)
                except ValueError:
                    continue
            if out and out[-1][1] == first - 1:
                out[-1][1] = last
            else:
                out.append([first, last])
        return cls(tuple((a, b) for a, b in out))

    @classmethod
    def of(cls, indexes: Iterable[int]) -> "Intervals":
        return cls().with_indexes(indexes)

    def merge(self, other: "Intervals") -> "Intervals":
        out: list[list[int]] = []
        for first, last in sorted(self.spans + other.spans):
            if not out or first > out[-1][1] + 1:
                out.append([first, last])
            elif out[-1][1] < last:
                out[-1][1] = last
        return Intervals(tuple((a, b) for a, b in out))

    def with_indexes(self, indexes: Iterable[int]) -> "Intervals":
        return self.merge(Intervals(tuple((i, i) for i in sorted(set(indexes)))))

    def total(self) -> int:
        return sum(last - first + 1 for first, last in self.spans)

    def has(self, index: int) -> bool:
        return any(first <= index <= last for first, last in self.spans)

    def __iter__(self) -> Iterator[int]:
        for first, last in self.spans:
            yield from range(first, last + 1)

    def __len__(self) -> int:
        return self.total()

    def __str__(self) -> str:
        parts = []
        for first, last in self.spans:
            if last == first:
                parts.append(str(first))
            elif last == first + 1:
                parts.append(f"{first},{last}")
            else:
                parts.append(f"{first}-{last}")
        return ",".join(parts)


def covered(rule: Intervals, succeeded: Intervals) -> int:
    """How many of `rule`'s indexes are in `succeeded` (upstream matchSucceededIndexesRule's count)."""
    return sum(1 for i in rule if succeeded.has(i))
