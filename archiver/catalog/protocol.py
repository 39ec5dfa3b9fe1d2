"""The `Catalog` interface: the few operations the rest of the program asks of the archive's
memory, whatever engine keeps it (SQLite in catalog/sqlite.py; a network database next).

Every method is async, so an engine may wait on a network without blocking the event loop, and
an open catalog belongs to the event loop it was opened in (`open_catalog` inside it). Lookups
take a batch of task ids, and scans of the whole catalog are async iterators, so a run over a
million ids can go through it in bounded memory. Rows are the frozen dataclasses of `rows.py`
and `model.py`. Writes are each one short transaction: whole or not at all.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..config import Config
from ..model import ArchivedFile, FileSizes, MissingInput, State, TaskOutcome
from .rows import (
    Claim,
    DisplayRow,
    HostRecord,
    RunRecord,
    Settled,
    StaleDisplay,
    TaskRow,
    TaskState,
    Totals,
)


class Access(enum.Enum):
    """What a command does with the catalog; `open_catalog` opens it accordingly."""

    CREATE = "create"  # `run`: made if there is none yet, and written
    WRITE = "write"  # `verify --repair`, `gallery`: an existing catalog, written
    READ = "read"  # `verify`, `status`, `list`: an existing catalog, never written


class Catalog(Protocol):
    """The archive's memory: each task's state, each verified file, each run, the gallery's
    rows. Engines: catalog/sqlite.py; the conformance suite (tests/test_catalog.py) holds
    every engine to the same behaviour."""

    # How messages name this catalog (a path, or a URL without its password).
    name: str
    # Several runs (on several hosts) share it: the ids given to any run are every run's work,
    # and claims keep two runs off one task. False: one run at a time (the archive lock).
    shared: bool

    async def flush(self) -> None:
        """Make what was written so far last beyond this machine where the engine keeps the
        catalog on it (SQLite beside a bucket archive: its copy stored under the prefix); an
        engine whose every write already does (a database server) has nothing to do. A writing
        command's catalog is flushed when it ends normally, if anything was written since."""

    # -- runs ------------------------------------------------------------------------------

    async def begin_run(self, *, now: str) -> int:
        """Record a run starting now; its id (ids only grow)."""

    async def end_run(
        self, run_id: int, *, now: str, exit_code: int, summary: Mapping[str, int]
    ) -> None:
        """Record how run `run_id` ended, with its tasks per state."""

    async def next_run_id(self) -> int:
        """The id the next run would get (`list` plans as that run would)."""

    async def last_run(self) -> RunRecord | None:
        """The latest run's record; None before the first run."""

    # -- tasks -----------------------------------------------------------------------------

    async def rows(self, task_ids: Collection[str]) -> dict[str, TaskRow]:
        """The rows of those of `task_ids` the catalog knows (a batched lookup: callers pass
        thousands at a time, never one query per task)."""

    async def rows_with_files(
        self, task_ids: Collection[str]
    ) -> tuple[dict[str, TaskRow], FileSizes]:
        """`rows(task_ids)`, and (task id, path, bytes) of every file of theirs, packed (one
        object for a batch, not three per file): all a rerun needs to check the archive
        against the catalog, in one lookup where the engine can."""

    def tasks(self, *, states: Collection[State] | None = None) -> AsyncIterator[TaskRow]:
        """Every task (in `states`, when given), streamed, ordered by folder (tasks without
        one first), then task id."""

    def listing(self) -> AsyncIterator[TaskState]:
        """What `status` lists of every task, streamed in the order of `tasks()`."""

    async def totals(self) -> Totals:
        """Tasks per state, and the count and bytes of the files."""

    async def record(
        self,
        outcome: TaskOutcome,
        *,
        now: str,
        run_id: int | None = None,
        display: DisplayRow | None = None,
        claim: Claim | None = None,
    ) -> None:
        """Store a task's outcome, exactly the files it holds now, its inputs found gone for
        good (kept even when a later outcome no longer names them) and, when given, its display
        row; one transaction. Text is scrubbed of secrets before it is stored. With a `claim`,
        only while it is still this run's (else `LeaseLost`, nothing written); it ends there.

        A lasting error (`outcome.backoff`) that repeats the stored one counts one more
        failure in a row (`failed_run` = `run_id`, `failed_at` = `now`); anything else starts
        the count again at 0. `outcome.answered` is stored as the row's `answered`, and a
        forgotten task is forgotten no more (`forgotten_at` cleared): only a task asked for by
        name is fetched once forgotten, and that asks for it back.
        """

    async def record_many(
        self, outcomes: Iterable[tuple[TaskOutcome, DisplayRow | None]], *, now: str
    ) -> None:
        """`record` for many tasks at once, in as few transactions as the engine likes (fills
        of test and benchmark archives: 100,000 tasks in seconds)."""

    async def remember_listed(self, listed: Sequence[tuple[str, str | None]], *, now: str) -> None:
        """Note (task id, listed status) pairs; a task new to the catalog becomes `pending`
        (error `rows.NOT_FETCHED`, status the listed one) until it is fetched; a known one
        keeps its row."""

    async def forget(self, task_ids: Sequence[str], *, now: str) -> None:
        """Drop tasks from what runs try (`forgotten_at` = `now`, kept if already set); an id
        the catalog does not know gets a row (`pending`, error `rows.NEVER_FETCHED`). Nothing
        else of a row, its files or its display row changes."""

    async def mark_damaged(
        self, task_id: str, paths: Sequence[str], *, reason: str, now: str
    ) -> None:
        """Forget the files at `paths` (found missing or altered) and put the task in `error`
        with `reason`, so the next run fetches it again."""

    async def unavailable(self, task_ids: Collection[str]) -> dict[str, tuple[MissingInput, ...]]:
        """Inputs found gone for good (`Missing.UNAVAILABLE`), by task id, for those of
        `task_ids` that have any; each task's in the order they were recorded."""

    async def remember_given(self, task_ids: Sequence[str], *, now: str) -> None:
        """A shared catalog adds ids given to a run to everyone's work (new ones `pending`);
        one run's catalog remembers nothing before a task is fetched."""

    # -- claims (archiver/leases.py) --------------------------------------------------------

    async def claim(self, task_ids: Sequence[str], *, run_id: int, limit: int) -> list[Claim]:
        """Claim up to `limit` of `task_ids`, in their order, for run `run_id`: those no other
        run holds a live claim on, and that no other run recorded since `run_id` began."""

    async def renew(self, claim: Claim) -> bool:
        """Extend the claim by a lease from now; False if another run has taken it over."""

    async def release(self, claim: Claim) -> None:
        """Give a claim back without an outcome (the run was stopped): free for any run now."""

    async def settled(self, task_ids: Collection[str], *, run_id: int) -> Settled:
        """Of `task_ids` this run could not claim: the rows of those other runs recorded since
        `run_id` began, and the seconds until the soonest claim held elsewhere ends."""

    async def hosts(self) -> list[HostRecord]:
        """Per host that ran: its last run and the claims it holds now (`status`)."""

    def gallery_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while the gallery is written: two runs never write it at once."""

    # -- files -----------------------------------------------------------------------------

    async def files(self, task_id: str) -> list[ArchivedFile]:
        """The files of one task, ordered by artifact, kind, path (`verified`, `options`: empty)."""

    def all_files(self) -> AsyncIterator[tuple[str, ArchivedFile]]:
        """Every file with its task id, streamed, ordered by task id, artifact, kind, path."""

    # -- the gallery's rows (archiver/gallery) ------------------------------------------------

    async def record_display(self, task_id: str, row: DisplayRow) -> None:
        """Store (replace) the display row of a task the catalog knows."""

    async def stale_display(self, states: Collection[State], version: int) -> list[StaleDisplay]:
        """Tasks in `states` with a folder whose display row is missing, of another `version`,
        or made from other files than the catalog holds now (count and bytes)."""

    async def display_cards(self, states: Collection[State]) -> list[str]:
        """The cards of the tasks in `states` with a folder, newest (created, task id) first."""

    async def display_stamps(self, states: Collection[State]) -> dict[str, str]:
        """Per shard with such tasks: a stamp that changes whenever its set of rows changes."""

    async def display_entries(self, states: Collection[State], shard: str) -> list[str]:
        """The detail entries of the tasks in `states` (with a folder) in `shard`, by task id."""


class Opener(Protocol):
    """How `open_catalog` opens one engine (its registry maps a name to one of these).

    It yields the catalog open for the running event loop and closes it after. An engine
    that allows one writer at a time (SQLite) holds the archive lock (`LockedError`, exit 75)
    while a CREATE or WRITE catalog is open. With `fetch_copy`, an engine that keeps a copy of
    itself beside a bucket archive (SQLite) may fetch that copy to a machine that has none.
    READ and WRITE of an archive with no catalog raise `NoArchive`.
    """

    def __call__(
        self, config: Config, access: Access, *, fetch_copy: bool, env: Mapping[str, str]
    ) -> AbstractAsyncContextManager[Catalog]: ...
