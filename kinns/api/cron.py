"""Cron schedules as kube-controller-manager reads them (robfig/cron v3, `ParseStandard`).

A CronJob's `schedule` is parsed twice upstream: by the API server's
validation (an unparseable schedule is refused with the parser's own error
text, e.g. ``expected exactly 5 fields, found 1: [foo]``) and by the CronJob
controller, which asks the parsed schedule for the next activation after a
given instant.  Both go through this module so they agree, and so the
messages a user reads are robfig's.

What `parse` accepts, as `cron.ParseStandard`: five fields (minute, hour,
day of month, month, day of week) of `*`, `?`, numbers, names (`jan`,
`mon`), ranges `a-b`, steps `/n` and lists `a,b`; the descriptors
`@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
`@hourly` and `@every <Go duration>`; and an optional `TZ=`/`CRON_TZ=`
prefix (which the API refuses for new CronJobs; `spec.timeZone` replaces it).

`Schedule.next(t)` is robfig's `Next`: the first matching second after `t`,
computed in the schedule's zone (UTC when none is named, as the
controller-manager's container runs in UTC) and returned in `t`'s zone, with
robfig's handling of daylight-saving gaps.  Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.timezone.utc
STAR_BIT = 1 << 63


class CronError(ValueError):
    """An unparseable schedule; str() is robfig/cron's message."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_MONTH_NAMES = {n: i + 1 for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DOW_NAMES = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
SECONDS, MINUTES, HOURS = _Bounds(0, 59), _Bounds(0, 59), _Bounds(0, 23)
DOM, MONTHS, DOW = _Bounds(1, 31), _Bounds(1, 12, _MONTH_NAMES), _Bounds(0, 6, _DOW_NAMES)


class Schedule(Protocol):
    def next(self, t: dt.datetime) -> dt.datetime | None:
        """The first activation strictly after `t` (None: none within five years)."""


def _bits(low: int, high: int, step: int) -> int:
    out = 0
    for i in range(low, high + 1, step):
        out |= 1 << i
    return out


def _all(b: _Bounds) -> int:
    return _bits(b.low, b.high, 1) | STAR_BIT


def _go_atoi_error(expr: str) -> str:
    return f'strconv.Atoi: parsing "{expr}": invalid syntax'


def _must_parse_int(expr: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise CronError(f"failed to parse int from {expr}: {_go_atoi_error(expr)}")
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _must_parse_int(expr)


def _range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = b.low, b.high, STAR_BIT
    else:
        start = _int_or_name(low_high[0], b.names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_parse_int(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = b.high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.low:
        raise CronError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise CronError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(field: str, b: _Bounds) -> int:
    bits = 0
    for expr in (e for e in field.split(",") if e):
        bits |= _range(expr, b)
    return bits


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string ("1h30m", "90s", "1.5h"), as time.ParseDuration."""
    s = text
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            if re.match(r"[0-9.]+$", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


@dataclass(frozen=True)
class SpecSchedule:
    """A field schedule: one bit set per allowed value of each field."""

    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    zone: dt.tzinfo | None = None   # None: the controller's local zone (UTC)

    def _day_matches(self, t: dt.datetime) -> bool:
        dom_match = bool(1 << t.day & self.dom)
        dow_match = bool(1 << _go_weekday(t) & self.dow)
        if self.dom & STAR_BIT or self.dow & STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, t: dt.datetime) -> dt.datetime | None:
        """robfig's SpecSchedule.Next, step by step (months, days, hours, minutes, seconds)."""
        orig_zone = t.tzinfo or UTC
        zone = self.zone or UTC
        t = t.astimezone(zone)
        t = _add(t.replace(microsecond=0), 1)
        added = False
        year_limit = t.year + 5
        while True:  # WRAP
            if t.year > year_limit:
                return None
            wrapped = False
            while not (1 << t.month) & self.month:
                if not added:
                    added = True
                    t = _date(t.year, t.month, 1, 0, 0, 0, zone)
                t = _date(t.year, t.month + 1, t.day, t.hour, t.minute, t.second, zone)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = _date(t.year, t.month, t.day, 0, 0, 0, zone)
                t = _date(t.year, t.month, t.day + 1, t.hour, t.minute, t.second, zone)
                if t.hour != 0:  # midnight skipped or doubled by daylight saving
                    t = _add(t, (24 - t.hour) * 3600 if t.hour > 12 else -t.hour * 3600)
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.hour) & self.hour:
                if not added:
                    added = True
                    t = _date(t.year, t.month, t.day, t.hour, 0, 0, zone)
                t = _add(t, 3600)
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.minute) & self.minute:
                if not added:
                    added = True
                    t = t.replace(second=0)
                t = _add(t, 60)
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.second) & self.second:
                if not added:
                    added = True
                t = _add(t, 1)
                if t.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return t.astimezone(orig_zone)


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>`: a fixed period (at least a second, whole seconds)."""

    seconds: int

    def next(self, t: dt.datetime) -> dt.datetime | None:
        return t.replace(microsecond=0) + dt.timedelta(seconds=self.seconds)


def _go_weekday(t: dt.datetime) -> int:
    return (t.weekday() + 1) % 7   # Go: Sunday = 0


def _add(t: dt.datetime, seconds: int) -> dt.datetime:
    """Go's Time.Add: absolute time, whatever daylight saving does to the wall clock."""
    zone = t.tzinfo
    return (t.astimezone(UTC) + dt.timedelta(seconds=seconds)).astimezone(zone)


def _date(year: int, month: int, day: int, hour: int, minute: int, second: int, zone: dt.tzinfo) -> dt.datetime:
    """Go's time.Date: out-of-range months and days roll over; a wall time in a gap moves forward."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    naive = dt.datetime(year, month, 1) + dt.timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)
    local = naive.replace(tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone)


def load_zone(name: str) -> dt.tzinfo:
    """An IANA zone by name, as Go's time.LoadLocation ("UTC" and "" are UTC).

    Raises CronError with Go's wording for an unknown zone."""
    if name in ("", "UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None


def _descriptor(spec: str, zone: dt.tzinfo | None) -> Schedule:
    low = 1 << SECONDS.low, 1 << MINUTES.low, 1 << HOURS.low
    if spec in ("@yearly", "@annually"):
        return SpecSchedule(*low, 1 << DOM.low, 1 << MONTHS.low, _all(DOW), zone)
    if spec == "@monthly":
        return SpecSchedule(*low, 1 << DOM.low, _all(MONTHS), _all(DOW), zone)
    if spec == "@weekly":
        return SpecSchedule(*low, _all(DOM), _all(MONTHS), 1 << DOW.low, zone)
    if spec in ("@daily", "@midnight"):
        return SpecSchedule(*low, _all(DOM), _all(MONTHS), _all(DOW), zone)
    if spec == "@hourly":
        return SpecSchedule(low[0], low[1], _all(HOURS), _all(DOM), _all(MONTHS), _all(DOW), zone)
    every = "@every "
    if spec.startswith(every):
        try:
            seconds = parse_go_duration(spec[len(every):])
        except ValueError as exc:
            raise CronError(f"failed to parse duration {spec}: {exc}") from None
        return EverySchedule(max(1, int(seconds)))
    raise CronError(f"unrecognized descriptor: {spec}")


def parse(spec: str) -> Schedule:
    """`cron.ParseStandard(spec)`; raises CronError with robfig's message."""
    if not spec:
        raise CronError("empty spec string")
    zone: dt.tzinfo | None = None
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        space, eq = spec.find(" "), spec.find("=")
        name = spec[eq + 1:space] if space >= 0 else spec[eq + 1:]
        try:
            zone = load_zone(name)
        except CronError as exc:
            raise CronError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, zone)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return SpecSchedule(1 << 0, _field(fields[0], MINUTES), _field(fields[1], HOURS), _field(fields[2], DOM),
                        _field(fields[3], MONTHS), _field(fields[4], DOW), zone)


def parse_with_zone(schedule: str, time_zone: str | None) -> Schedule:
    """What the CronJob controller parses: `TZ=<timeZone> <schedule>` when a zone is set
    (upstream's formatSchedule), else the schedule as written."""
    if time_zone is not None and "TZ" not in schedule:
        load_zone(time_zone)
        return parse(f"TZ={time_zone} {schedule}")
    return parse(schedule)
