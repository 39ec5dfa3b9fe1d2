"""Durations (`--wait 30m`) and points in time (`--since 2024-08-01`, `--since 7d`) from the CLI,
and `now()` as the archive writes it.

Each parser raises a UsageError naming the flag and the text it could not read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str, *, flag: str = "--wait") -> float:
    """Seconds in `90s`, `30m`, `2h`, `1d`, `1h30m`, or a plain number of seconds."""
    value = text.strip().lower()
    if _NUMBER.fullmatch(value):
        return float(value)
    if not _DURATION.fullmatch(value):
        raise UsageError(f"{flag}: expected a duration such as 90s, 30m, 2h or 1h30m, got {text!r}")
    return float(sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value)))


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from a date, an ISO date-time, or a duration meaning "that long ago".

    A date or date-time without a zone is read as UTC: the API's `createdAt` is UTC.
    """
    value = text.strip()
    if value and _DURATION.fullmatch(value.lower()):
        return (now or datetime.now(UTC)) - timedelta(seconds=parse_duration(value))
    when = parse_timestamp(value)
    if when is None:
        raise UsageError(
            f"--since: expected a date (2024-08-01), a date-time (2024-08-01T12:00:00Z) "
            f"or an age (7d, 12h), got {text!r}"
        )
    return when


def parse_timestamp(value: object) -> datetime | None:
    """The API's `createdAt` as an aware datetime; None when absent or not a date."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def now() -> str:
    """This moment, as the catalog, the sidecars and the reports write it (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
