"""For tests of the SQLite engine: a catalog file read whole through the `Catalog` protocol, and
the few things only SQL can do to it (catalogs of an older schema, damage, rows changed behind a
run's back). Nothing in the archiver itself imports this module.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model import ArchivedFile, MissingInput
from .rows import RunRecord, TaskRow
from .sqlite import SqliteCatalog
from .sqlite_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Contents", "read"]


@dataclass(frozen=True, slots=True)
class Contents:
    """All a catalog holds, as the protocol hands it out."""

    tasks: dict[str, TaskRow]
    files: list[tuple[str, ArchivedFile]]  # ordered by task id, artifact, kind, path
    unavailable: dict[str, tuple[MissingInput, ...]]
    last_run: RunRecord | None
    runs: int  # how many runs were recorded

    def files_of(self, task_id: str) -> list[ArchivedFile]:
        return [f for t, f in self.files if t == task_id]


def read(path: Path) -> Contents:
    """The catalog at `path`, read only (a run may be writing it meanwhile)."""
    return asyncio.run(_read(path))


async def _read(path: Path) -> Contents:
    catalog = SqliteCatalog.open_readonly(path)
    try:
        tasks = {row.task_id: row async for row in catalog.tasks()}
        return Contents(
            tasks=tasks,
            files=[entry async for entry in catalog.all_files()],
            unavailable=await catalog.unavailable(tasks),
            last_run=await catalog.last_run(),
            runs=await catalog.next_run_id() - 1,
        )
    finally:
        catalog.close()


def _execute(path: Path, script: str, rows: Iterable[tuple[str, Iterable[Any]]] = ()) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executescript(script)
            for sql, params in rows:
                conn.execute(sql, tuple(params))
    finally:
        conn.close()


def _query(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- catalogs of an older schema -------------------------------------------------------------


def write_version_1(
    path: Path,
    tasks: Iterable[tuple[str, str, str | None, str | None, str | None, str]],
    files: Iterable[tuple[str, str, str, int, int, str, str, str]] = (),
) -> None:
    """A catalog as the first release made it: (task_id, state, status, dir, error, updated_at)
    and (task_id, path, kind, artifact, bytes, sha256, probe JSON, unchecked JSON) rows."""
    _execute(
        path,
        SCHEMA + "PRAGMA user_version=1;",
        [("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?)", t) for t in tasks]
        + [("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", f) for f in files],
    )


def undo_display_step(path: Path) -> None:
    """Take a catalog back to the schema before the gallery's display rows (and what came after)."""
    step = next(n for n, script in enumerate(MIGRATIONS, 1) if "CREATE TABLE display " in script)
    undo_packed_step(path)
    _execute(
        path,
        "DROP TABLE display; DROP TABLE display_entry; ALTER TABLE files DROP COLUMN stored;"
        " ALTER TABLE tasks DROP COLUMN answered; ALTER TABLE tasks DROP COLUMN forgotten_at;"
        " DROP TRIGGER files_added; DROP TRIGGER files_dropped; DROP TRIGGER files_resized;"
        " DROP TABLE file_totals;"
        f" PRAGMA user_version={step};",
    )


def undo_packed_step(path: Path) -> None:
    """Take a catalog back to schema 8, before each task's files were packed in its row (and
    the listing's index after it)."""
    _execute(
        path,
        "DROP INDEX tasks_listed; DROP TRIGGER files_sized; DROP TRIGGER files_unsized;"
        " DROP TRIGGER files_resized_packed; ALTER TABLE tasks DROP COLUMN sizes;"
        " PRAGMA user_version=8;",
    )


def schema_version(path: Path) -> int:
    return int(_query(path, "PRAGMA user_version")[0][0])


def display_rows(path: Path) -> int:
    """How many tasks have a display row (made when archived, or by a gallery build)."""
    return int(_query(path, "SELECT COUNT(*) FROM display")[0][0])


def listed_statuses(path: Path) -> dict[str, str | None]:
    """Each task's status in the listing when `run --all` last saw it (None: never listed)."""
    return dict(_query(path, "SELECT task_id, listed_status FROM tasks"))


# -- changes behind a run's back --------------------------------------------------------------


def forget_display_rows(path: Path) -> None:
    """As if every task had been archived before the gallery existed."""
    _execute(path, "DELETE FROM display; DELETE FROM display_entry;")


def forget_file_row(path: Path, file_path: str) -> None:
    """Drop one file's row, as nothing but a run would (the task keeps its state)."""
    _execute(path, "", [("DELETE FROM files WHERE path = ?", [file_path])])


def forget_tasks(path: Path) -> None:
    """Forget every task (and so its files): the next run archives them anew."""
    _execute(path, "PRAGMA foreign_keys=ON; DELETE FROM tasks;")


def damage(path: Path, kind: str) -> None:
    """`foreign-db`: a database that is not a catalog; `bad-row`: a task in no known state."""
    script = {
        "foreign-db": "DROP TABLE files; DROP TABLE tasks; DROP TABLE runs; CREATE TABLE x (y);",
        "bad-row": "UPDATE tasks SET state = 'bogus';",
    }[kind]
    _execute(path, script)


def pages(path: Path) -> tuple[int, int]:
    """The page size and page count of the file (to overwrite one page of it)."""
    return (
        int(_query(path, "PRAGMA page_size")[0][0]),
        int(_query(path, "PRAGMA page_count")[0][0]),
    )


def dump(path: Path) -> str:
    """Every table and row of the file as SQL text (to look for what must never be stored, or
    to tell that nothing changed)."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
