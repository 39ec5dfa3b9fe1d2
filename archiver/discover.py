"""Discovery: page through the account's task listing and turn it into task ids to archive.

The listing answers at most `limit` 1000 from `offset` 0..1000, so only the newest ~2000 tasks
are reachable. Its order is not documented: paging stops early for `--since` only while every
entry seen so far was newest first; otherwise the entries are filtered by date instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .errors import InvalidTaskData, TaskError
from .tasklist import TASK_ID, BadLine
from .timespec import parse_timestamp

PAGE_LIMIT = 1000  # the largest `limit` the API accepts
MAX_OFFSET = 1000  # the largest `offset` it accepts


class Lister(Protocol):
    async def list_tasks(self, *, offset: int, limit: int, email: str | None = None) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Query:
    """What `--all` asks for: the listing of one RunwayML account, optionally only recent tasks."""

    email: str | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListedTask:
    """One entry of the listing. Only taskId is required; the rest is informative."""

    task_id: str
    status: str | None
    created_at: datetime | None
    name: str | None
    task_type: str | None
    progress_ratio: str | None

    @classmethod
    def from_json(cls, data: Any) -> ListedTask:
        """Parse one summary; raise InvalidTaskData naming the field if it names no task id."""
        if not isinstance(data, Mapping):
            kind = "null" if data is None else type(data).__name__
            raise InvalidTaskData(f"expected an object, got {kind}")
        task_id = data.get("taskId")
        if task_id is None:
            raise InvalidTaskData("taskId: missing")
        if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
            raise InvalidTaskData("taskId: not a task id")
        ratio = data.get("progressRatio")
        return cls(
            task_id=task_id,
            status=_text(data.get("status")),
            created_at=parse_timestamp(data.get("createdAt")),
            name=_text(data.get("name")),
            task_type=_text(data.get("taskType")),
            progress_ratio=None if isinstance(ratio, (dict, list)) or ratio is None else str(ratio),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class Discovery:
    """What the listing gave: tasks in listing order (once each), bad entries, how paging ended."""

    tasks: list[ListedTask] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    requests: int = 0
    newest_first: bool = True  # no entry so far was newer than the one before it
    stopped_by_since: bool = False
    truncated: bool = False  # the offset limit ended paging while pages were still full
    error: str | None = None  # the page that failed after its retries, and why

    def by_id(self) -> dict[str, ListedTask]:
        return {t.task_id: t for t in self.tasks}


async def discover(api: Lister, query: Query) -> Discovery:
    """Page through the listing with the largest pages allowed; a failed page ends paging."""
    found = _Pages(query)
    offset = 0
    while True:
        try:
            page = await api.list_tasks(offset=offset, limit=PAGE_LIMIT, email=query.email)
        except TaskError as exc:
            found.result.error = f"listing at offset {offset}: {exc}"
            break
        found.result.requests += 1
        if not isinstance(page, list):
            kind = "null" if page is None else type(page).__name__
            found.result.error = f"listing at offset {offset}: expected a list, got {kind}"
            break
        found.add(page, offset)
        if len(page) < PAGE_LIMIT:
            break  # the end of the account's tasks
        if found.older_than_since_from_here():
            found.result.stopped_by_since = True
            break
        if offset + PAGE_LIMIT > MAX_OFFSET:
            found.result.truncated = True
            break
        offset += PAGE_LIMIT
    return found.result


class _Pages:
    """Accumulates pages: drops repeats (tasks shift down while new ones are created), and dates."""

    def __init__(self, query: Query) -> None:
        self.since = query.since
        self.result = Discovery()
        self._seen: set[str] = set()
        self._previous: datetime | None = None
        self._oldest: datetime | None = None

    def add(self, page: Sequence[Any], offset: int) -> None:
        for index, raw in enumerate(page):
            try:
                task = ListedTask.from_json(raw)
            except InvalidTaskData as exc:
                shown = json.dumps(raw, ensure_ascii=False, default=str)
                self.result.bad.append(BadLine(f"listing entry {offset + index}", shown, str(exc)))
                continue
            self._note_date(task.created_at)
            if task.task_id in self._seen:
                continue
            self._seen.add(task.task_id)
            if self.since is None or task.created_at is None or task.created_at >= self.since:
                self.result.tasks.append(task)

    def _note_date(self, when: datetime | None) -> None:
        if when is None:
            return
        if self._previous is not None and when > self._previous:
            self.result.newest_first = False
        self._previous = when
        self._oldest = when if self._oldest is None else min(self._oldest, when)

    def older_than_since_from_here(self) -> bool:
        """True when the listing is newest first and has gone past --since: the rest is older."""
        if self.since is None or not self.result.newest_first or self._oldest is None:
            return False
        return self._oldest < self.since
