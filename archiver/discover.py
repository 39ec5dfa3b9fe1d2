"""Discovery: page through each account's task listing and turn it into task ids to archive.

The listing answers at most `limit` 1000 from `offset` 0..1000: a window of the newest 2000
tasks, one per account and per `statuses` filter. An account whose window is full is listed
again per status, so the newest 2000 of each status are reached (CANCELLED, which the filter
refuses, only through the first window). Its order is not documented: paging stops early for
`--since` only while every entry of a window so far was newest first; otherwise the entries
are filtered by date instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .errors import InvalidTaskData, TaskError
from .model import json_kind
from .tasklist import TASK_ID, BadLine
from .timespec import parse_timestamp

PAGE_LIMIT = 1000  # the largest `limit` the API accepts
MAX_OFFSET = 1000  # the largest `offset` it accepts
# Every value the `statuses` filter accepts; CANCELLED is refused (400).
STATUS_FILTERS = ("PENDING", "RUNNING", "THROTTLED", "SUCCEEDED", "FAILED")
WINDOW_FULL = "the window is full: older tasks of this account can only be archived by id"


class Lister(Protocol):
    async def accounts(self) -> list[str]: ...

    async def list_tasks(
        self, *, offset: int, limit: int, email: str | None = None, status: str | None = None
    ) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Query:
    """What `--all` asks for: the listings of these RunwayML accounts (none named: every
    account configured at useapi), optionally only recent tasks."""

    emails: tuple[str, ...] = ()
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListedTask:
    """One entry of the listing: what `list` shows and `--since` filters by. Only taskId is
    required; the rest is informative (the task itself is retrieved before it is archived)."""

    task_id: str
    status: str | None
    created_at: datetime | None
    name: str | None

    @classmethod
    def from_json(cls, data: Any) -> ListedTask:
        """Parse one summary; raise InvalidTaskData naming the field if it names no task id."""
        if not isinstance(data, Mapping):
            raise InvalidTaskData(f"expected an object, got {json_kind(data)}")
        task_id = data.get("taskId")
        if task_id is None:
            raise InvalidTaskData("taskId: missing")
        if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
            raise InvalidTaskData("taskId: not a task id")
        return cls(
            task_id=task_id,
            status=_text(data.get("status")),
            created_at=parse_timestamp(data.get("createdAt")),
            name=_text(data.get("name")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class Window:
    """One account's listing, of one status or of all: how its paging went."""

    email: str | None
    status: str | None  # None: unfiltered
    requests: int = 0
    entries: int = 0  # entries it named, repeats and tasks of other windows included
    full: bool = False  # the offset limit ended paging while pages were still full
    stopped_by_since: bool = False
    newest_first: bool = True  # no entry of it was newer than the one before
    oldest: datetime | None = None  # the oldest createdAt it showed
    error: str | None = None  # the page that failed after its retries, and why

    @property
    def name(self) -> str:
        return f"{self.email or 'the account'}" + (f" ({self.status})" if self.status else "")


@dataclass
class Reach:
    """What one account's full windows could not reach: older tasks of these statuses."""

    email: str | None
    reached: int  # distinct tasks of this account found
    beyond: list[tuple[str, datetime | None]]  # (status, the oldest createdAt reached)

    def describe(self) -> str:
        """One line: the account, the window's limit, and which statuses it stops short of."""
        parts = [
            f"{status} created before {_day(oldest)}" if oldest else status
            for status, oldest in self.beyond
        ]
        return (
            f"{self.email or 'the account'}: {WINDOW_FULL} ({self.reached} reached; not"
            f" reached: {', '.join(parts)}; how many, the listing does not say)"
        )


def _day(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Discovery:
    """What the listings gave: tasks in listing order (once each), bad entries, each window."""

    tasks: list[ListedTask] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    accounts: list[str] | None = None  # the accounts at useapi, if asked (no --email)
    windows: list[Window] = field(default_factory=list)
    reach: list[Reach] = field(default_factory=list)  # accounts whose first window was full
    errors: list[str] = field(default_factory=list)  # the accounts request or a failed page

    def by_id(self) -> dict[str, ListedTask]:
        return {t.task_id: t for t in self.tasks}

    @property
    def requests(self) -> int:
        return sum(w.requests for w in self.windows) + (self.accounts is not None)

    @property
    def newest_first(self) -> bool:
        return all(w.newest_first for w in self.windows)

    @property
    def stopped_by_since(self) -> bool:
        return any(w.stopped_by_since for w in self.windows)

    @property
    def truncated(self) -> bool:
        """Some window was full: older tasks are out of the listing's reach."""
        return bool(self.reach)


async def discover(api: Lister, query: Query) -> Discovery:
    """Each account's listing (every account at useapi unless the query names some); an
    account whose window is full is listed again per status. A failed page ends its window."""
    found = Discovery()
    emails: list[str | None] = list(query.emails)
    if not emails:
        try:
            found.accounts = await api.accounts()
        except TaskError as exc:
            found.errors.append(f"accounts at useapi: {exc}")
            return found
        emails = list(found.accounts)
    pages = _Pages(query.since, found)
    for email in emails:
        first = len(found.tasks)
        whole = await _window(api, pages, Window(email, None))
        if not whole.full:
            continue
        for status in STATUS_FILTERS:
            await _window(api, pages, Window(email, status))
        windows = [w for w in found.windows if w.email == email]
        beyond = [(w.status or "", w.oldest) for w in windows if w.status and w.full]
        beyond.append(("CANCELLED", whole.oldest))
        found.reach.append(Reach(email, len(found.tasks) - first, beyond))
    return found


async def _window(api: Lister, pages: _Pages, window: Window) -> Window:
    """Page through one window with the largest pages allowed, until a short page, --since,
    the offset limit, or a page that fails."""
    pages.found.windows.append(window)
    offset = 0
    while True:
        try:
            page = await api.list_tasks(
                offset=offset, limit=PAGE_LIMIT, email=window.email, status=window.status
            )
        except TaskError as exc:
            window.error = f"listing of {window.name} at offset {offset}: {exc}"
            break
        window.requests += 1
        if not isinstance(page, list):
            window.error = (
                f"listing of {window.name} at offset {offset}: expected a list, "
                f"got {json_kind(page)}"
            )
            break
        pages.add(page, offset, window)
        if len(page) < PAGE_LIMIT:
            break  # the end of this window's tasks
        if pages.older_than_since(window):
            window.stopped_by_since = True
            break
        if offset + PAGE_LIMIT > MAX_OFFSET:
            window.full = True
            break
        offset += PAGE_LIMIT
    if window.error is not None:
        pages.found.errors.append(window.error)
    return window


class _Pages:
    """Accumulates pages: drops repeats (tasks shift down while new ones are created, and one
    task shows in two windows), and notes each window's dates."""

    def __init__(self, since: datetime | None, found: Discovery) -> None:
        self.since = since
        self.found = found
        self._seen: set[str] = set()
        self._previous: datetime | None = None

    def add(self, page: Sequence[Any], offset: int, window: Window) -> None:
        if offset == 0:
            self._previous = None  # a new window starts again from its newest
        for index, raw in enumerate(page):
            window.entries += 1
            try:
                task = ListedTask.from_json(raw)
            except InvalidTaskData as exc:
                shown = json.dumps(raw, ensure_ascii=False, default=str)
                where = f"listing of {window.name}, entry {offset + index}"
                self.found.bad.append(BadLine(where, shown, str(exc)))
                continue
            self._note_date(task.created_at, window)
            if task.task_id in self._seen:
                continue
            self._seen.add(task.task_id)
            if self.since is None or task.created_at is None or task.created_at >= self.since:
                self.found.tasks.append(task)

    def _note_date(self, when: datetime | None, window: Window) -> None:
        if when is None:
            return
        if self._previous is not None and when > self._previous:
            window.newest_first = False
        self._previous = when
        window.oldest = when if window.oldest is None else min(window.oldest, when)

    def older_than_since(self, window: Window) -> bool:
        """True when the window is newest first and has gone past --since: the rest is older."""
        if self.since is None or not window.newest_first or window.oldest is None:
            return False
        return window.oldest < self.since
