"""The emulator's "List tasks": `GET /runwayml/tasks/?offset=&limit=&statuses=&email=`.

As the reference describes it: offset 0..1000 and limit 1..1000 are required, `statuses` is a
comma-separated filter, `email` picks the account; entries are summaries (no `options`), with
the name cut to 200 characters. The order is undocumented; the emulator serves newest first
unless told `oldest` or `shuffled`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_OFFSET = 1000
MAX_LIMIT = 1000
NAME_LIMIT = 200
STATUSES = ("PENDING", "RUNNING", "THROTTLED", "SUCCEEDED", "FAILED")
ORDERS = ("newest", "oldest", "shuffled")
NO_CONFIG = "Configuration not found. To create configuration use POST /accounts/email"
_INTEGER = re.compile(r"\d{1,9}")
_EMAIL = re.compile(r"-runwayml:(\S+@\S+?)-task:")


@dataclass(frozen=True)
class Query:
    offset: int
    limit: int
    statuses: frozenset[str] | None
    email: str | None


class Refused(Exception):
    """A query the API answers with an error: `status` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_query(params: Mapping[str, str]) -> Query:
    """The documented parameters, checked as documented; Refused(400) names the one at fault."""
    offset = _bounded(params, "offset", 0, MAX_OFFSET)
    limit = _bounded(params, "limit", 1, MAX_LIMIT)
    statuses = None
    if params.get("statuses"):
        statuses = frozenset(s.strip() for s in params["statuses"].split(","))
        unknown = sorted(statuses - set(STATUSES))
        if unknown:
            raise Refused(400, f"statuses: unknown {', '.join(unknown)}; use {','.join(STATUSES)}")
    return Query(offset, limit, statuses, params.get("email") or None)


def _bounded(params: Mapping[str, str], key: str, low: int, high: int) -> int:
    text = params.get(key)
    if text is None:
        raise Refused(400, f"{key} is required")
    if not _INTEGER.fullmatch(text) or not low <= int(text) <= high:
        raise Refused(400, f"{key} must be an integer from {low} to {high}, got {text!r}")
    return int(text)


def email_of(task_id: str) -> str | None:
    match = _EMAIL.search(task_id)
    return match.group(1) if match else None


def select(
    tasks: Sequence[dict[str, Any]], query: Query, *, order: str, accounts: Sequence[str]
) -> list[dict[str, Any]]:
    """The page of `tasks` (given oldest first) that `query` asks for, in `order`.

    Each account, and each `statuses` filter of it, has its own window: the offset counts
    within the tasks the query selects.
    """
    if not accounts:
        raise Refused(404, NO_CONFIG)
    if query.email is not None and query.email not in accounts:
        raise Refused(404, f"RunwayML account {query.email} not found")
    if query.email is None and len(accounts) > 1:
        raise Refused(400, f"email is required: {len(accounts)} accounts are configured")
    chosen = [
        t
        for t in tasks
        if (query.statuses is None or t.get("status") in query.statuses)
        and (query.email is None or email_of(str(t.get("taskId"))) == query.email)
    ]
    if order == "newest":
        chosen.reverse()
    elif order == "shuffled":
        # The same permutation on every request, so pages do not overlap.
        random.Random(9).shuffle(chosen)
    elif order != "oldest":
        raise ValueError(f"listing order {order!r}: expected one of {ORDERS}")
    return chosen[query.offset : query.offset + query.limit]


def summary(task: Mapping[str, Any], sign: Callable[[Any], Any]) -> dict[str, Any]:
    """A task as the listing shows it; `sign` gives each artifact URL a fresh signature."""
    name = task.get("name")
    return {
        "taskId": task.get("taskId"),
        "taskType": task.get("taskType"),
        "name": name[:NAME_LIMIT] if isinstance(name, str) else name,
        "status": task.get("status"),
        "createdAt": task.get("createdAt"),
        "progressRatio": task.get("progressRatio"),
        "error": task.get("error"),
        "artifacts": [
            {"assetId": a.get("assetId"), "url": sign(a.get("url")), "filename": a.get("filename")}
            for a in task.get("artifacts") or []
            if isinstance(a, dict)
        ],
    }
