"""The PostgreSQL engine's writes, each a few statements inside the caller's transaction.

The same rows as the SQLite engine's (sqlite_write.py), plus the claim a task's outcome ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection

from .. import scrub
from ..errors import StorageError, UsageError
from ..model import Missing, State, TaskOutcome
from .rows import NEVER_FETCHED, NOT_FETCHED, DisplayRow
from .sqlite_rows import file_rows

Conn = AsyncConnection[tuple[Any, ...]]
GIVEN = "given to a run, not retrieved yet"  # the error of a task only named by `-i` so far
_UPSERT_TASK = (
    "INSERT INTO tasks (task_id, state, status, dir, error, updated_at, sidecar_bytes, failures,"
    " failed_run, failed_at, answered) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (task_id) DO UPDATE SET"
    " state = excluded.state, status = excluded.status, dir = excluded.dir,"
    " error = excluded.error, updated_at = excluded.updated_at,"
    " sidecar_bytes = excluded.sidecar_bytes, failures = excluded.failures,"
    " failed_run = excluded.failed_run, failed_at = excluded.failed_at,"
    # An outcome recorded clears `forgotten_at`, as SQLite's does (catalog/protocol.py).
    " answered = excluded.answered, forgotten_at = NULL"
)
_INSERT_FILE = (
    "INSERT INTO files (task_id, kind, artifact, path, bytes, sha256, probe, unchecked, stored)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


async def store(
    db: Conn,
    outcome: TaskOutcome,
    *,
    now: str,
    run_id: int | None,
    display: DisplayRow | None,
    before: tuple[str | None, int] | None,
) -> None:
    """A task's outcome, exactly the files it holds now, its inputs found gone, its display row.

    `before` is the stored (error, failures), read under the row's lock by the caller.
    """
    error = scrub.text(outcome.error) if outcome.error is not None else None
    status = scrub.text(outcome.status) if outcome.status is not None else None
    failures = 0
    if outcome.state is State.ERROR and outcome.backoff:
        failures = before[1] + 1 if before is not None and before[0] == error else 1
    failed = (run_id, now) if failures else (None, None)
    row = (outcome.task_id, str(outcome.state), status, outcome.dir, error, now)
    await db.execute(
        _UPSERT_TASK, (*row, outcome.sidecar_bytes, failures, *failed, outcome.answered)
    )
    await db.execute("DELETE FROM files WHERE task_id = %s", (outcome.task_id,))
    async with db.cursor() as cur:
        await cur.executemany(_INSERT_FILE, file_rows(outcome))
        # Inputs found gone for good are kept: a later outcome without them does not make
        # them fetchable again.
        await cur.executemany(
            "INSERT INTO unavailable_inputs VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (outcome.task_id, m.option, m.url, m.reason, now)
                for m in outcome.missing
                if m.why is Missing.UNAVAILABLE
            ],
        )
    if display is not None:
        await store_display(db, outcome.task_id, display)


async def store_display(db: Conn, task_id: str, row: DisplayRow) -> None:
    # A fresh id on every change, as SQLite's INSERT OR REPLACE gives: a shard's stamp (the
    # count and sum of its ids) then changes whenever one of its rows does.
    await db.execute(
        "INSERT INTO display (task_id, version, created, shard, files, card)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE SET"
        " id = nextval(pg_get_serial_sequence('display', 'id')), version = excluded.version,"
        " created = excluded.created, shard = excluded.shard, files = excluded.files,"
        " card = excluded.card",
        (task_id, row.version, row.created, row.shard, row.files, row.card),
    )
    await db.execute(
        "INSERT INTO display_entry VALUES (%s, %s)"
        " ON CONFLICT (task_id) DO UPDATE SET entry = excluded.entry",
        (task_id, row.entry),
    )


async def forget(db: Conn, task_ids: Sequence[str], *, now: str) -> None:
    """Mark tasks forgotten (a task the catalog has never seen gets a row to say so)."""
    async with db.cursor() as cur:
        await cur.executemany(
            "INSERT INTO tasks (task_id, state, error, updated_at, forgotten_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE SET"
            " forgotten_at = coalesce(tasks.forgotten_at, excluded.forgotten_at)",
            [(task_id, str(State.PENDING), NEVER_FETCHED, now, now) for task_id in task_ids],
        )


async def remember(
    db: Conn, listed: Sequence[tuple[str, str | None]], *, now: str, note_listing: bool
) -> None:
    """Tasks new to the catalog become pending; with `note_listing`, known ones note their
    status in the listing (`run --all`), else they are left as they are (`-i`)."""
    why = NOT_FETCHED if note_listing else GIVEN
    on_conflict = (
        "DO UPDATE SET listed_status = excluded.listed_status, listed_at = excluded.listed_at"
        if note_listing
        else "DO NOTHING"
    )
    async with db.cursor() as cur:
        await cur.executemany(
            "INSERT INTO tasks (task_id, state, status, error, updated_at, listed_status,"
            f" listed_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (task_id) {on_conflict}",
            [
                (task_id, str(State.PENDING), shown, why, now, *listing)
                for task_id, status in listed
                for shown in [scrub.text(status) if status is not None else None]
                for listing in [(shown, now) if note_listing else (None, None)]
            ],
        )


async def load(
    db: Conn,
    tables: Mapping[str, tuple[str, ...]],
    rows: Mapping[str, Sequence[tuple[Any, ...]]],
    *,
    host: str,
    where: str,
) -> dict[str, int]:
    """`catalog copy`'s writing half: every row into an empty catalog with COPY, one
    transaction, the counts compared before it commits; the rows per table."""
    async with db.transaction():
        held = await (
            await db.execute("SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM runs)")
        ).fetchone()
        if held and held[0]:
            raise UsageError(
                f"catalog {where} already holds an archive ({held[0]} rows); "
                "copying is only into an empty database"
            )
        counts: dict[str, int] = {}
        for table, columns in tables.items():
            async with db.cursor() as cur:
                statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                async with cur.copy(statement.encode()) as copy:
                    for row in rows[table]:
                        await copy.write_row(row)
            found = await (await db.execute(f"SELECT count(*) FROM {table}".encode())).fetchone()
            counts[table] = int(found[0]) if found else -1
            if counts[table] != len(rows[table]):
                raise StorageError(
                    f"catalog {where}: {table}: {counts[table]} rows copied of "
                    f"{len(rows[table])}; nothing kept"
                )
        # The copied runs were this archive's one host's; ids go on from the largest copied.
        await db.execute("UPDATE runs SET host = %s", (host,))
        for table in ("runs", "display"):
            await db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)".encode()
            )
    return counts
