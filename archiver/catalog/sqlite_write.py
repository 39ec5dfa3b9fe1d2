"""The SQLite engine's writes, each a few statements inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .. import scrub
from ..model import Missing, State, TaskOutcome
from .rows import NEVER_FETCHED, NOT_FETCHED, DisplayRow
from .sqlite_rows import FILE_COLUMNS, file_rows

_RECORDED = (  # the columns an outcome sets; `forgotten_at` it clears
    "task_id, state, status, dir, error, updated_at, sidecar_bytes, failures, failed_run,"
    " failed_at, answered"
)
# An outcome recorded clears `forgotten_at`: only a task asked for by name is fetched once
# forgotten (with --refresh), and that asks for it back.
_UPSERT_TASK = (
    f"INSERT INTO tasks ({_RECORDED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(task_id) DO UPDATE SET"
    " state=excluded.state, status=excluded.status, dir=excluded.dir,"
    " error=excluded.error, updated_at=excluded.updated_at,"
    " sidecar_bytes=excluded.sidecar_bytes, failures=excluded.failures,"
    " failed_run=excluded.failed_run, failed_at=excluded.failed_at,"
    " answered=excluded.answered, forgotten_at=NULL"
)
_INSERT_FILE = f"INSERT INTO files (task_id, {FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def store(
    db: sqlite3.Connection,
    outcome: TaskOutcome,
    *,
    now: str,
    run_id: int | None,
    display: DisplayRow | None,
) -> None:
    """A task's outcome, exactly the files it holds now, its inputs found gone, its display row."""
    error = scrub.text(outcome.error) if outcome.error is not None else None
    status = scrub.text(outcome.status) if outcome.status is not None else None
    failures = _failures(db, outcome, error)
    failed = (run_id, now) if failures else (None, None)
    row = (outcome.task_id, str(outcome.state), status, outcome.dir, error, now)
    db.execute(_UPSERT_TASK, (*row, outcome.sidecar_bytes, failures, *failed, outcome.answered))
    db.execute("DELETE FROM files WHERE task_id = ?", (outcome.task_id,))
    db.executemany(_INSERT_FILE, file_rows(outcome))
    _keep_unavailable(db, outcome, now)
    if display is not None:
        store_display(db, outcome.task_id, display)


def _failures(db: sqlite3.Connection, outcome: TaskOutcome, error: str | None) -> int:
    """A lasting error that repeats the stored one counts one more failure in a row; anything
    else starts the count again."""
    if outcome.state is not State.ERROR or not outcome.backoff:
        return 0
    before = db.execute(
        "SELECT error, failures FROM tasks WHERE task_id = ?", (outcome.task_id,)
    ).fetchone()
    return int(before[1]) + 1 if before is not None and before[0] == error else 1


def _keep_unavailable(db: sqlite3.Connection, outcome: TaskOutcome, now: str) -> None:
    """Inputs found gone for good are kept: a later outcome without them (an error, a run with
    --no-inputs) does not make them fetchable again."""
    db.executemany(
        "INSERT OR IGNORE INTO unavailable_inputs VALUES (?, ?, ?, ?, ?)",
        [
            (outcome.task_id, m.option, m.url, m.reason, now)
            for m in outcome.missing
            if m.why is Missing.UNAVAILABLE
        ],
    )


def store_display(db: sqlite3.Connection, task_id: str, row: DisplayRow) -> None:
    db.execute(
        "INSERT OR REPLACE INTO display (task_id, version, created, shard, files, card)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (task_id, row.version, row.created, row.shard, row.files, row.card),
    )
    db.execute("INSERT OR REPLACE INTO display_entry VALUES (?, ?)", (task_id, row.entry))


def forget(db: sqlite3.Connection, task_ids: Sequence[str], *, now: str) -> None:
    """Mark tasks forgotten (a task the catalog has never seen gets a row to say so)."""
    db.executemany(
        "INSERT INTO tasks (task_id, state, error, updated_at, forgotten_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET"
        " forgotten_at=COALESCE(tasks.forgotten_at, excluded.forgotten_at)",
        [(task_id, str(State.PENDING), NEVER_FETCHED, now, now) for task_id in task_ids],
    )


def remember_listed(
    db: sqlite3.Connection, listed: Sequence[tuple[str, str | None]], *, now: str
) -> None:
    """Listed tasks new to the catalog become pending; known ones only note the listing.

    Written before any is fetched, so one not finished is fetched again by later runs even
    after it has dropped out of the listing's reach.
    """
    db.executemany(
        "INSERT INTO tasks (task_id, state, status, error, updated_at, listed_status,"
        " listed_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET"
        " listed_status=excluded.listed_status, listed_at=excluded.listed_at",
        [
            (task_id, str(State.PENDING), shown, NOT_FETCHED, now, shown, now)
            for task_id, status in listed
            for shown in [scrub.text(status) if status is not None else None]
        ],
    )
