"""A run's task list taken in, a batch at a time: each batch's catalog rows, the archive checked
against them, and what needs no request (done and whole, backing off, a bad line) accounted for
at once; the rest goes on to the pipeline. Memory holds two batches, never the list.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import NamedTuple, Protocol, TypeVar

from .catalog import Catalog, TaskRow
from .config import Config
from .holds import FORGOTTEN, Holds, sidecars
from .model import ArchivedFile, MissingInput, State, TaskOutcome
from .progress import Reporter
from .storage import Target
from .tasklist import BadLine

T = TypeVar("T")
BATCH = 5_000  # ids read, looked up and checked at once (10,000: +30 MB at a million, no faster)
SIZE_CHECKED = ("size",)  # a stat against the catalog, no hashing, no request
# A task that needs work: its id, its catalog row (None: new) and its inputs known gone.
Work = tuple[str, TaskRow | None, tuple[MissingInput, ...]]


class Tally(Protocol):
    """Where the run's tasks end up (the run's ledger): each task begins when read from the
    list and ends with its outcome, or waits while the waiter polls it."""

    @property
    def lists_files(self) -> bool:
        """Must a skipped task's outcome name its files (for a report)?"""

    def begin(self, task_id: str) -> None: ...
    def end(self, outcome: TaskOutcome) -> None: ...
    def end_skipped(self, task_ids: list[str]) -> None:
        """End tasks skipped as done and whole, where no report names them (`lists_files`
        False): counted, without an outcome each (a rerun of a million ids skips them all)."""

    def wait(self, outcome: TaskOutcome) -> None: ...


class _Found(NamedTuple):
    """What the catalog and the archive say of a batch of ids."""

    known: dict[str, TaskRow]
    gone: dict[str, tuple[MissingInput, ...]]  # inputs known gone, by task
    changed: set[str]  # tasks whose files or sidecar the archive no longer holds as recorded


@dataclasses.dataclass(frozen=True, slots=True)
class _Looked:
    """A batch of ids, begun in the tally, and its lookup and disk check under way."""

    ids: list[str]
    found: asyncio.Task[_Found]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Intake:
    """What a run asks of the archive before any request, for each batch of its list."""

    config: Config
    run_id: int
    catalog: Catalog
    target: Target
    reporter: Reporter
    tally: Tally

    async def work(self, source: Iterable[str | BadLine]) -> AsyncGenerator[Work, None]:
        """The tasks of `source` that need work; the others end in the tally on the way. A
        batch's ids all begin in the tally as it is read (a run stopped mid-batch names them
        unfinished), its bad lines end there at once. Each batch is looked up in the catalog
        (on a thread, where the engine can) and checked on disk while the one before goes
        through here."""
        ahead: _Looked | None = None
        looked: _Looked | None = None
        try:
            for batch in _batches(source, BATCH):
                looked = self._look_up(batch)
                if ahead is not None:
                    async for work in self._through(ahead):
                        yield work
                ahead, looked = looked, None
            if ahead is not None:
                async for work in self._through(ahead):
                    yield work
        finally:  # a run stopped mid-way leaves no lookup running, no failure unread
            for left in (ahead, looked):
                if left is not None and not left.found.cancel() and not left.found.cancelled():
                    left.found.exception()

    def _look_up(self, batch: list[str | BadLine]) -> _Looked:
        """A batch read: its ids begun, its bad lines ended, its lookup and check started."""
        self.reporter.more(len(batch))
        ids = []
        for item in batch:
            if isinstance(item, BadLine):
                self.reporter.warn(f"error: {item}")
                self.tally.end(bad_line(item))
            else:
                self.tally.begin(item)
                ids.append(item)
        return _Looked(ids, asyncio.create_task(self._find(ids)))

    async def _find(self, ids: list[str]) -> _Found:
        known, files = await self.catalog.rows_with_files(ids)
        gone = await self.catalog.unavailable(ids)
        return _Found(known, gone, await self.target.changed(files + sidecars(known)))

    async def _through(self, looked: _Looked) -> AsyncGenerator[Work, None]:
        """A looked-up batch, its check awaited: what needs no request ends in the tally, the
        rest is yielded in the list's order."""
        known, gone, changed = await looked.found
        holds = Holds(self.config, self.run_id, changed)
        # Skipped as done and whole, counted together where no report names them: the
        # rerun's common case, without an outcome made for each.
        whole: list[str] | None = None if self.tally.lists_files else []
        for task_id in looked.ids:
            row = known.get(task_id)
            if row is not None and whole is not None and task_id not in gone and holds.whole(row):
                whole.append(task_id)
                continue
            held = holds.held(row) if row is not None else None
            if held is None:
                self._end_skipped(whole)  # before the wait for a free slot
                yield task_id, row, gone.get(task_id, ())
                continue
            if held.state is State.SKIPPED:
                held = await self._skipped(held, gone.get(task_id, ()))
            if held.error == FORGOTTEN:
                self.reporter.note(f"note: {task_id}: {FORGOTTEN}")
            self.tally.end(held)
            self.reporter.task_done(held)
        self._end_skipped(whole)

    def _end_skipped(self, whole: list[str] | None) -> None:
        if whole:
            self.tally.end_skipped(whole)
            self.reporter.skipped(len(whole))
            whole.clear()

    async def _skipped(self, held: TaskOutcome, gone: tuple[MissingInput, ...]) -> TaskOutcome:
        """A skipped task as the report shows it: its inputs known gone and, when the report
        lists files, the catalog's, checked by size."""
        files: tuple[ArchivedFile, ...] = ()
        if self.tally.lists_files:
            found = await self.catalog.files(held.task_id)
            files = tuple(dataclasses.replace(f, verified=SIZE_CHECKED) for f in found)
        return dataclasses.replace(held, missing=gone, files=files) if gone or files else held


def bad_line(line: BadLine) -> TaskOutcome:
    """A line of the list that is no task id, as the run accounts for it: an error."""
    return TaskOutcome(line.text, State.ERROR, error=str(line))


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    taken = iter(items)
    while batch := list(itertools.islice(taken, size)):
        yield batch
