"""The pure parts of discovery and waiting: durations, dates, listing entries, the poll schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.discover import ListedTask
from archiver.errors import InvalidTaskData, UsageError
from archiver.model import Task
from archiver.timespec import parse_duration, parse_since, parse_timestamp
from archiver.waiting import Schedule, describe

TASK = "user:1234-runwayml:someone@example.com-task:3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400),
     ("45", 45), ("2.5m", 150), (" 20M ", 1200), ("0", 0)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    """Durations in s/m/h/d, combined or as a plain number of seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "soon", "-5m", "5 m", "1w", "1h-30m", "nan"])
def test_bad_durations_name_the_flag(text: str) -> None:
    """Anything else is a usage error (exit 2) naming the flag and the text."""
    with pytest.raises(UsageError, match=r"^--wait: expected a duration") as info:
        parse_duration(text)
    assert info.value.exit_code == 2 and repr(text) in str(info.value)


@given(st.integers(0, 10**6), st.integers(0, 59), st.integers(0, 59))
def test_duration_parts_add_up(hours: int, minutes: int, seconds: int) -> None:
    """`XhYmZs` is the sum of its parts."""
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == hours * 3600 + minutes * 60 + seconds


def test_since_forms() -> None:
    """--since takes a date (UTC midnight), a date-time with or without a zone, or an age."""
    now = datetime(2024, 8, 10, 12, tzinfo=UTC)
    assert parse_since("2024-08-01") == datetime(2024, 8, 1, tzinfo=UTC)
    assert parse_since("2024-08-01T12:30:00Z") == datetime(2024, 8, 1, 12, 30, tzinfo=UTC)
    assert parse_since("2024-08-01T14:30:00+02:00") == datetime(2024, 8, 1, 12, 30, tzinfo=UTC)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    with pytest.raises(UsageError, match=r"^--since: expected a date"):
        parse_since("last tuesday")


@given(st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)))
def test_api_timestamps_round_trip(when: datetime) -> None:
    """The API's createdAt (ms and a Z) reads back as the same aware instant."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    assert parse_timestamp(text) == when.replace(microsecond=when.microsecond // 1000 * 1000)


@given(json_values)
def test_listing_entries_parse_or_name_the_fault(data: Any) -> None:
    """Any JSON is a ListedTask or an InvalidTaskData; only taskId can make an entry unusable."""
    try:
        task = ListedTask.from_json(data)
    except InvalidTaskData as exc:
        assert str(exc).startswith(("expected an object", "taskId: "))
        return
    assert task.task_id == data["taskId"]


@given(json_values, json_values, json_values, json_values)
def test_informative_fields_never_refuse_an_entry(
    status: Any, created: Any, name: Any, ratio: Any
) -> None:
    """A task id is kept whatever its status, createdAt, name or progressRatio look like."""
    entry = {"taskId": TASK, "status": status, "createdAt": created, "name": name,
             "progressRatio": ratio}  # fmt: skip
    task = ListedTask.from_json(json.loads(json.dumps(entry)))
    assert task.task_id == TASK
    assert task.status is None or isinstance(task.status, str)
    assert task.created_at is None or task.created_at.tzinfo is not None


@given(st.integers(1, 200), st.none() | st.floats(0, 10**6))
def test_poll_delays_keep_to_the_stated_schedule(poll: int, eta: float | None) -> None:
    """Each wait is the grown interval +-10%, never past the cap; an ETA only pushes it out."""
    schedule = Schedule(initial=10, maximum=60, scale=0.5)
    nominal = min(60, 10 * 1.5 ** (poll - 1))
    delay = schedule.delay(poll, eta) / 0.5
    assert 0.9 * nominal <= delay <= 60
    assert delay <= max(1.1 * nominal, min(60, eta or 0)) + 1e-9
    if eta:
        assert delay >= min(60, eta)


def test_the_schedule_starts_at_10_and_reaches_60() -> None:
    """Nominal waits: 10, 15, 22.5, 33.75, 50.6, then 60 s for good."""
    schedule = Schedule()
    assert [round(schedule.nominal(n), 2) for n in range(1, 8)] == [
        10, 15, 22.5, 33.75, 50.62, 60, 60
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(42, 42.0), ("42.5", 42.5), (0, 0.0), (None, None), (-1, None), ("soon", None),
     (True, None), (10**400, None), ("1e999", None), ([1], None)],
)  # fmt: skip
def test_estimated_start_is_read_leniently(value: Any, seconds: float | None) -> None:
    """estimatedTimeToStartSeconds is informative: a number >= 0 is kept, anything else unknown."""
    task = Task.from_json({"estimatedTimeToStartSeconds": value}, task_id=TASK)
    assert task.estimated_start == seconds


def test_status_line_shows_each_waiting_task() -> None:
    """The terminal line: the count, time left, and each task's status, progress and ETA."""
    running = Task.from_json({"status": "RUNNING", "progressRatio": "0.42"}, task_id=TASK)
    other = TASK.replace("3f2a9c1e", "9d8e7f6a")
    queued = Task.from_json(
        {"status": "THROTTLED", "progressRatio": "0", "estimatedTimeToStartSeconds": 300},
        task_id=other,
    )
    line = describe({running.task_id: running, queued.task_id: queued}, 125)
    assert line == (
        "waiting for 2 (up to 2m05s more):"
        " 3f2a9c1e RUNNING 42% · 9d8e7f6a THROTTLED starts in ~5m00s"
    )
    assert describe({}, 10) == ""
    many = {f"{TASK[:-12]}{n:012d}": running for n in range(20)}
    assert (
        describe(many, 10).endswith("RUNNING 42% · +12 more") and describe(many, 10).count("·") == 8
    )
