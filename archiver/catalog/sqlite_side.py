"""The SQLite catalog's second connection, read-only, for a rerun's lookups: a batch's task rows
with their files' sizes (10,000 tasks, 40,000 files), read on a worker thread, where SQLite
walks its B-trees without the GIL, while the event loop goes on with the batch before. Opened
only beside a writing connection: its WAL and shared memory are there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StorageError
from .sqlite_rows import batches, marks

T = TypeVar("T")
SCAN_PAGE = 2000  # rows fetched at once by a scan of a whole table (20,000: +19 MB at peak)


def scan(conn: sqlite3.Connection, sql: str, wanted: set[str]) -> list[Any]:
    """The rows of a whole-table query whose first column is in `wanted`, in its order;
    sqlite3.Error as it comes."""
    # fetchmany steps the cursor in C (faster than a Python loop over it, measured), a page at
    # a time: a batch of a run's ids never holds the whole table (it grows as they end).
    cursor = conn.execute(sql)
    found = []
    while page := cursor.fetchmany(SCAN_PAGE):
        found += [r for r in page if r[0] in wanted]
    return found


def select(
    conn: sqlite3.Connection, columns: str, task_ids: Collection[str], wanted: set[str] | None
) -> list[Any]:
    """`columns` of the tasks of `task_ids` the catalog knows: the whole table read once when
    `wanted` (the ids as a set) is given, else each id looked up; sqlite3.Error as it comes."""
    if wanted is not None:
        return scan(conn, f"SELECT {columns} FROM tasks", wanted)
    found = []
    for batch in batches(task_ids):
        sql = f"SELECT {columns} FROM tasks WHERE task_id IN ({marks(batch)})"
        found += conn.execute(sql, batch).fetchall()
    return found


def packed_sizes(conn: sqlite3.Connection, task_ids: Collection[str]) -> bytes:
    """(task id, path, bytes) of every file of `task_ids`, packed as `model.FileSizes`, from
    the files themselves (a catalog from before schema 9, read as it is); sqlite3.Error as it
    comes."""
    blobs = []
    for batch in batches(task_ids):
        (blob,) = conn.execute(
            "SELECT CAST(group_concat(task_id || char(0) || path || char(0) || bytes || char(0),"
            f" '') AS BLOB) FROM files WHERE task_id IN ({marks(batch)})",
            batch,
        ).fetchone()
        blobs.append(blob or b"")
    return b"".join(blobs)


class SideReader:
    """The second connection, used by one worker thread at a time."""

    def __init__(self, path: Path) -> None:
        try:
            self._conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                check_same_thread=False,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
        self._lock = threading.Lock()

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """`query` run on the connection, on a worker thread; sqlite3.Error as it comes."""
        return await asyncio.to_thread(self._locked, query)

    def _locked(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return query(self._conn)

    def close(self) -> None:
        with self._lock:  # after a query still running for a caller that was cancelled
            self._conn.close()
