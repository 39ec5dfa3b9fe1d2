"""`runway-archiver catalog copy`: an archive's SQLite catalog into an empty PostgreSQL database,
so an archive goes multi-host without downloading anything again.

Every row of every table is copied as it is (tasks, files, runs, listings, back-off counts,
unavailable inputs, the gallery's rows) in one transaction, the counts are compared before it
commits, and the SQLite file is only read (never locked for writing, never migrated).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CatalogUrl
from ..errors import StorageError, UsageError
from . import postgres_write
from .postgres_pool import connect
from .postgres_schema import migrate
from .sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION

# Table -> the columns both engines have, in the order the rows are read and written.
TABLES: Mapping[str, tuple[str, ...]] = {
    "tasks": (
        "task_id", "state", "status", "dir", "error", "updated_at", "sidecar_bytes", "failures",
        "failed_run", "failed_at", "listed_status", "listed_at", "answered", "forgotten_at",
    ),
    "files": (
        "task_id", "path", "kind", "artifact", "bytes", "sha256", "probe", "unchecked", "stored",
    ),
    "runs": ("id", "started_at", "finished_at", "exit_code", "summary"),
    "unavailable_inputs": ("task_id", "option", "url", "reason", "recorded_at"),
    "display": ("id", "task_id", "version", "created", "shard", "files", "card"),
    "display_entry": ("task_id", "entry"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Copied:
    counts: Mapping[str, int]  # rows per table, the same on both sides


def read_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read in one snapshot, without writing anything beside the file."""
    if not path.is_file():
        raise UsageError(f"no archive at {path.parent} (no {path.name})")
    live = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if live else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SQLITE_VERSION:
                raise UsageError(
                    f"{path}: catalog schema {version}, not {SQLITE_VERSION}: run the archiver "
                    "on it once (it brings the catalog up to date), then copy"
                )
            db.execute("BEGIN")  # one snapshot: a run writing meanwhile is not half copied
            return {
                table: db.execute(
                    f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}"
                ).fetchall()
                for table, columns in TABLES.items()
            }
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: {exc}") from exc


async def copy_catalog(source: Path, url: CatalogUrl, *, host: str) -> Copied:
    """Copy the SQLite catalog at `source` into the (empty) database `url` names."""
    rows = read_sqlite(source)
    conn = await connect(url)
    try:
        await migrate(conn, url.where)
        counts = await postgres_write.load(conn, TABLES, rows, host=host, where=url.where)
    finally:
        await conn.close()
    return Copied(counts)
