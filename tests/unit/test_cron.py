"""Cron schedules as robfig/cron v3 reads them, and the CronJob controller's schedule arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from kinns.api import cron
from kinns.controllers import cronjob

UTC = dt.timezone.utc


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("spec, after, want", [
    ("*/5 * * * *", at(2024, 1, 31, 12, 0, 30), at(2024, 1, 31, 12, 5)),
    ("0 9 * * mon-fri", at(2024, 2, 2, 12, 0), at(2024, 2, 5, 9, 0)),      # Friday noon -> Monday
    ("30 2 1 * *", at(2024, 1, 31, 0, 0), at(2024, 2, 1, 2, 30)),
    ("0 0 29 2 *", at(2023, 3, 1), at(2024, 2, 29)),                       # next leap day
    ("15,45 */6 * * *", at(2024, 1, 1, 6, 20), at(2024, 1, 1, 6, 45)),
    ("0 0 1 jan,jul *", at(2024, 2, 1), at(2024, 7, 1)),
    ("0 0 13 * 5", at(2024, 1, 1), at(2024, 1, 5)),   # dom OR dow when neither is *
    ("0 0 13 * *", at(2024, 1, 1), at(2024, 1, 13)),
    ("@hourly", at(2024, 1, 31, 12, 0, 0), at(2024, 1, 31, 13)),
    ("@daily", at(2024, 1, 31, 12), at(2024, 2, 1)),
    ("@midnight", at(2024, 1, 31, 12), at(2024, 2, 1)),
    ("@weekly", at(2024, 1, 31, 12), at(2024, 2, 4)),                     # Sunday
    ("@monthly", at(2024, 1, 31, 12), at(2024, 2, 1)),
    ("@yearly", at(2024, 1, 31, 12), at(2025, 1, 1)),
    ("@annually", at(2024, 1, 31, 12), at(2025, 1, 1)),
    ("@every 90s", at(2024, 1, 31, 12, 0, 30), at(2024, 1, 31, 12, 2)),
    ("@every 1h30m", at(2024, 1, 31, 12), at(2024, 1, 31, 13, 30)),
])
def test_next_activation(spec: str, after: dt.datetime, want: dt.datetime) -> None:
    assert cron.parse(spec).next(after) == want


@pytest.mark.parametrize("spec, message", [
    ("foo", "expected exactly 5 fields, found 1: [foo]"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("1/2/3 * * * *", "too many slashes: 1/2/3"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("-1 * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every 5", 'failed to parse duration @every 5: time: missing unit in duration "5"'),
    ("", "empty spec string"),
    ("TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
])
def test_parse_errors_read_as_robfig_cron(spec: str, message: str) -> None:
    with pytest.raises(cron.CronError) as err:
        cron.parse(spec)
    assert str(err.value) == message


def test_a_time_zone_moves_the_activation_and_skips_a_missing_wall_time() -> None:
    paris = cron.parse_with_zone("30 2 * * *", "Europe/Paris")
    # 02:30 in Paris is 01:30 UTC in winter.
    assert paris.next(at(2024, 1, 10)) == at(2024, 1, 10, 1, 30)
    # 2024-03-31 02:30 does not exist in Paris (clocks jump 02:00 -> 03:00): robfig skips the day.
    assert paris.next(at(2024, 3, 30, 3)) == at(2024, 4, 1, 0, 30)
    assert cron.parse("TZ=Asia/Tokyo 0 9 * * *").next(at(2023, 12, 31, 12)) == at(2024, 1, 1, 0, 0)


def test_next_keeps_the_callers_zone() -> None:
    tokyo = cron.load_zone("Asia/Tokyo")
    t = dt.datetime(2024, 1, 1, 12, tzinfo=tokyo)
    nxt = cron.parse("@hourly").next(t)
    assert nxt is not None and nxt.tzinfo is tokyo and nxt == dt.datetime(2024, 1, 1, 13, tzinfo=tokyo)


def test_go_durations() -> None:
    assert cron.parse_go_duration("1h30m") == 5400
    assert cron.parse_go_duration("1.5h") == 5400
    assert cron.parse_go_duration("250ms") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        cron.parse_go_duration("5x")


# ------------------------------------------------------------------ CronJob arithmetic


def cronjob_obj(schedule: str = "*/1 * * * *", created: str = "2024-01-01T00:00:30Z", **spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid", "creationTimestamp": created},
            "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                                                           "spec": {"template": {"spec": {"containers": []}}}},
                     **spec},
            "status": {}}


def test_most_recent_schedule_time_since_creation() -> None:
    cj = cronjob_obj()
    sched = cron.parse("*/1 * * * *")
    early = cronjob.most_recent_schedule_time(cj, at(2024, 1, 1, 0, 0, 50), sched, True)
    assert early.most_recent is None and early.missed == "none"
    due = cronjob.most_recent_schedule_time(cj, at(2024, 1, 1, 0, 1, 5), sched, True)
    assert due.most_recent == at(2024, 1, 1, 0, 1) and due.missed == "none"
    late = cronjob.most_recent_schedule_time(cj, at(2024, 1, 1, 0, 10, 5), sched, True)
    assert late.most_recent == at(2024, 1, 1, 0, 10) and late.missed == "few"
    very_late = cronjob.most_recent_schedule_time(cj, at(2024, 1, 2), sched, True)
    assert very_late.missed == "many" and very_late.most_recent == at(2024, 1, 2)


def test_last_schedule_time_and_starting_deadline_move_the_window() -> None:
    sched = cron.parse("*/1 * * * *")
    cj = cronjob_obj()
    cj["status"]["lastScheduleTime"] = "2024-01-01T00:05:00Z"
    r = cronjob.most_recent_schedule_time(cj, at(2024, 1, 1, 0, 5, 30), sched, True)
    assert r.most_recent is None
    cj = cronjob_obj(startingDeadlineSeconds=200)
    r = cronjob.most_recent_schedule_time(cj, at(2024, 1, 2), sched, True)
    assert r.earliest == at(2024, 1, 1, 23, 56, 40) and r.missed == "few"


def test_next_schedule_delay_adds_the_padding() -> None:
    cj = cronjob_obj("@hourly", created="2024-01-01T00:00:00Z")
    delay = cronjob.next_schedule_delay(cj, at(2024, 1, 1, 0, 59, 0), cron.parse("@hourly"))
    assert delay == pytest.approx(60.1)


def test_job_from_template_names_the_minute_and_annotates_the_zone() -> None:
    cj = cronjob_obj(timeZone="Europe/Paris")
    job = cronjob.job_from_template(cj, at(2024, 1, 1, 8, 0), cron.load_zone("Europe/Paris"))
    assert job["metadata"]["name"] == f"tick-{int(at(2024, 1, 1, 8).timestamp()) // 60}"
    assert job["metadata"]["annotations"][cronjob.SCHEDULED_TIMESTAMP] == "2024-01-01T09:00:00+01:00"
    assert job["metadata"]["labels"] == {"team": "a"}
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("CronJob", "tick", "cj-uid", True)
    utc = cronjob.job_from_template(cronjob_obj(), at(2024, 1, 1, 8), UTC)
    assert utc["metadata"]["annotations"][cronjob.SCHEDULED_TIMESTAMP] == "2024-01-01T08:00:00Z"


def test_history_is_ordered_by_start_time_unstarted_last() -> None:
    def job(name: str, start: str | None) -> dict:
        return {"metadata": {"name": name}, "status": {"startTime": start} if start else {}}
    order = cronjob.by_start_time([job("c", None), job("b", "2024-01-01T00:02:00Z"), job("a", "2024-01-01T00:01:00Z")])
    assert [j["metadata"]["name"] for j in order] == ["a", "b", "c"]
