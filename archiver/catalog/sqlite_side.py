"""The SQLite catalog's second connection, read-only, for a rerun's biggest lookup: the files
of a batch (5,000,000 for a million ids), packed by SQLite itself into one blob per statement
on a worker thread, in C with the GIL released, while the event loop's thread looks up the same
batch's tasks. Opened only beside a writing connection: its WAL and shared memory are there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path

from ..errors import StorageError
from .sqlite_rows import batches, marks


def packed_sizes(conn: sqlite3.Connection, task_ids: Collection[str]) -> bytes:
    """(task id, path, bytes) of every file of `task_ids`, each field followed by a NUL (the
    packing of `model.FileSizes`); sqlite3.Error as it comes."""
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

    async def packed_sizes(self, task_ids: Collection[str]) -> bytes:
        return await asyncio.to_thread(self._packed, task_ids)

    def _packed(self, task_ids: Collection[str]) -> bytes:
        with self._lock:
            return packed_sizes(self._conn, task_ids)

    def close(self) -> None:
        self._conn.close()
