"""The SQLite engine of the catalog: one file (WAL) beside the archive, one writer at a time.

A file row is written only after the file has its final name and was fsynced; every write is one
short BEGIN IMMEDIATE transaction. Calls run on the event loop's thread: each is a few indexed
statements on a local file, far cheaper than a hop to a worker thread (measured on the rerun);
but a rerun's batch of rows with their files, which SQLite looks up without the GIL on a thread
of their own (sqlite_side.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StorageError
from ..model import ArchivedFile, FileSizes, Missing, MissingInput, State, TaskOutcome
from . import sqlite_stamp, sqlite_write
from .rows import Claim, DisplayRow, RunRecord, StaleDisplay, TaskRow, TaskState, Totals
from .sole import SoleRun
from .sqlite_rows import (
    FILE_COLUMNS,
    PACKED_FILES,
    STATE_COLUMNS,
    STATES,
    TASK_COLUMNS,
    archived_file,
    run_record,
    task_row,
    task_state,
)
from .sqlite_rows import batches as _batches
from .sqlite_rows import marks as _marks
from .sqlite_schema import connect, connect_readonly, file_totals, packs_files, write_error
from .sqlite_side import SideReader, packed_sizes, scan, select

T = TypeVar("T")
DENSE = 20_000  # ids (and >= 1/3 of the tasks) from which a lookup reads the whole table once


class SqliteCatalog(SoleRun):
    """The `Catalog` protocol over one SQLite connection, owned by the event loop's thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.name = str(path)
        # Set by the opener for a bucket archive: stores the catalog's copy under its prefix.
        self.keep_copy: Callable[[SqliteCatalog], Awaitable[None]] | None = None
        self.written = False  # since the last flush
        self._tasks: int | None = None  # how many tasks, when counted since the last write
        self._any_unavailable: bool | None = None  # likewise: any input recorded gone?
        # Opened for writing and found whole so far: its close records a clean check.
        self._stamps = False
        # A read-only connection for `rows_with_files` on a worker thread (opened for writing
        # only: a read-only catalog may sit where no shared-memory file can be made).
        self._side: SideReader | None = None
        self._packs = packs_files(conn)  # keeps each task's files packed in its row (schema 9)

    @classmethod
    def open(cls, path: Path) -> SqliteCatalog:
        """The catalog at `path` for reading and writing: made, or migrated, as needed."""
        catalog = cls(connect(path), path)
        catalog._stamps = True
        catalog._side = SideReader(path)
        return catalog

    @classmethod
    def open_readonly(cls, path: Path) -> SqliteCatalog:
        """Read without writing anything beside it: a backup, a copy or a read-only mount works."""
        return cls(connect_readonly(path), path)

    def close(self) -> None:
        # The side connection first: the last one to close checkpoints and removes the WAL,
        # which a read-only one cannot (a WAL left beside the file forfeits the clean record).
        if self._side is not None:
            self._side.close()
        self._conn.close()
        if self._stamps:
            sqlite_stamp.record(self.path)

    def snapshot(self, dest: Path) -> None:
        """A consistent copy of the whole catalog at `dest` (replaced), taken between writes."""
        dest.unlink(missing_ok=True)
        try:
            copy = sqlite3.connect(dest)
            try:
                self._conn.backup(copy)
            finally:
                copy.close()
        except sqlite3.Error as exc:
            raise StorageError(f"{dest}: {exc}") from exc

    # -- reading and writing ------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A query's rows; a damaged page found only now is still a one-line storage error."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, exc: sqlite3.Error) -> StorageError:
        self._stamps = False
        return StorageError(f"{self.path}: the catalog is damaged ({exc})")

    def _parse(self, parse: Callable[[Sequence[Any]], T], rows: Iterable[Any]) -> list[T]:
        try:
            return [parse(r) for r in rows]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            self._stamps = False
            damaged = f"{self.path}: the catalog is damaged (a row does not parse)"
            raise StorageError(damaged) from exc

    async def _stream(
        self, sql: str, params: Sequence[Any], parse: Callable[[Sequence[Any]], T]
    ) -> AsyncIterator[T]:
        """A query's rows, parsed, a page at a time: a scan of the whole catalog in flat memory."""
        try:
            cursor = self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from exc
        try:
            while True:
                try:
                    page = cursor.fetchmany(2000)
                except sqlite3.Error as exc:
                    raise self._damaged(exc) from exc
                if not page:
                    return
                for item in self._parse(parse, page):
                    yield item
        finally:
            with suppress(sqlite3.ProgrammingError):  # an abandoned scan, finalised after close
                cursor.close()

    async def flush(self) -> None:
        if self.keep_copy is not None and self.written:
            await self.keep_copy(self)
        self.written = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.written = True
        self._tasks = self._any_unavailable = None
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._stamps = False  # perhaps a damaged page met by the write
            raise write_error(self.path, exc) from exc

    # -- runs ----------------------------------------------------------------------------------

    async def begin_run(self, *, now: str) -> int:
        with self._write() as db:
            cursor = db.execute("INSERT INTO runs (started_at) VALUES (?)", (now,))
            return int(cursor.lastrowid or 0)

    async def end_run(
        self, run_id: int, *, now: str, exit_code: int, summary: Mapping[str, int]
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE id = ?",
                (now, exit_code, json.dumps(dict(summary)), run_id),
            )

    async def next_run_id(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(id), 0) + 1 FROM runs")[0][0])

    async def last_run(self) -> RunRecord | None:
        rows = self._rows(
            "SELECT started_at, finished_at, exit_code, summary FROM runs ORDER BY id DESC LIMIT 1"
        )
        return self._parse(run_record, rows)[0] if rows else None

    # -- tasks ---------------------------------------------------------------------------------

    def _dense(self, task_ids: Collection[str]) -> set[str] | None:
        """The ids as a set when reading every row beats looking each up, else None."""
        if len(task_ids) < DENSE:
            return None
        if self._tasks is None:  # counted once between writes: a rerun asks for every batch
            self._tasks = int(self._rows("SELECT COUNT(*) FROM tasks")[0][0])
        return set(task_ids) if 3 * len(task_ids) >= self._tasks else None

    def _scan(self, sql: str, wanted: set[str]) -> list[Any]:
        try:
            return scan(self._conn, sql, wanted)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from exc

    async def rows(self, task_ids: Collection[str]) -> dict[str, TaskRow]:
        try:
            found = select(self._conn, TASK_COLUMNS, task_ids, self._dense(task_ids))
        except sqlite3.Error as exc:
            raise self._damaged(exc) from exc
        return {r.task_id: r for r in self._parse(task_row, found)}

    async def rows_with_files(
        self, task_ids: Collection[str]
    ) -> tuple[dict[str, TaskRow], FileSizes]:
        if not self._packs:  # a catalog from before schema 9, read as it is
            rows = await self.rows(task_ids)
            try:
                return rows, FileSizes(packed_sizes(self._conn, task_ids))
            except sqlite3.Error as exc:
                raise self._damaged(exc) from exc
        columns, wanted = f"{TASK_COLUMNS}, {PACKED_FILES}", self._dense(task_ids)
        try:
            if self._side is None:
                found = select(self._conn, columns, task_ids, wanted)
            else:
                found = await self._side.read(lambda db: select(db, columns, task_ids, wanted))
        except sqlite3.Error as exc:
            raise self._damaged(exc) from exc
        rows = {r.task_id: r for r in self._parse(task_row, found)}
        return rows, FileSizes(b"".join([r[-1] for r in found if r[-1] is not None]))

    def tasks(self, *, states: Collection[State] | None = None) -> AsyncIterator[TaskRow]:
        if states is None:
            where, params = "", []
        else:
            where, params = (
                f" WHERE state IN ({_marks(states)})",
                [str(s) for s in states],
            )
        sql = f"SELECT {TASK_COLUMNS} FROM tasks{where} ORDER BY dir, task_id"
        return self._stream(sql, params, task_row)

    def listing(self) -> AsyncIterator[TaskState]:
        sql = f"SELECT {STATE_COLUMNS} FROM tasks ORDER BY dir, task_id"
        return self._stream(sql, (), task_state)

    async def totals(self) -> Totals:
        rows = self._rows("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        per_state = dict(self._parse(lambda r: (STATES[r[0]], int(r[1])), rows))
        count, size = self._rows(file_totals(self._conn))[0]
        return Totals(per_state, int(count), int(size))

    async def record(
        self,
        outcome: TaskOutcome,
        *,
        now: str,
        run_id: int | None = None,
        display: DisplayRow | None = None,
        claim: Claim | None = None,
    ) -> None:
        with self._write() as db:
            sqlite_write.store(db, outcome, now=now, run_id=run_id, display=display)

    async def record_many(
        self, outcomes: Iterable[tuple[TaskOutcome, DisplayRow | None]], *, now: str
    ) -> None:
        # A big page cache for the while: inserting 100 MB of B-tree through SQLite's default
        # 2 MB cache takes ten times as long.
        self._conn.execute("PRAGMA cache_size=-500000")
        try:
            with self._write() as db:
                for outcome, display in outcomes:
                    sqlite_write.store(db, outcome, now=now, run_id=None, display=display)
        finally:
            self._conn.execute("PRAGMA cache_size=-2000")

    async def remember_listed(self, listed: Sequence[tuple[str, str | None]], *, now: str) -> None:
        with self._write() as db:
            sqlite_write.remember_listed(db, listed, now=now)

    async def forget(self, task_ids: Sequence[str], *, now: str) -> None:
        with self._write() as db:
            sqlite_write.forget(db, task_ids, now=now)

    async def mark_damaged(
        self, task_id: str, paths: Sequence[str], *, reason: str, now: str
    ) -> None:
        with self._write() as db:
            db.executemany(
                "DELETE FROM files WHERE task_id = ? AND path = ?", [(task_id, p) for p in paths]
            )
            db.execute(
                "UPDATE tasks SET state = ?, error = ?, updated_at = ? WHERE task_id = ?",
                (str(State.ERROR), reason, now, task_id),
            )

    async def unavailable(self, task_ids: Collection[str]) -> dict[str, tuple[MissingInput, ...]]:
        # Looked for once between writes: most catalogs have none, and a lookup of 5,000 ids
        # costs some milliseconds even in an empty table (1.5 s of a million-id rerun).
        if self._any_unavailable is None:
            self._any_unavailable = bool(self._rows("SELECT 1 FROM unavailable_inputs LIMIT 1"))
        if not self._any_unavailable:
            return {}
        columns = "task_id, option, url, reason FROM unavailable_inputs"
        order = "ORDER BY task_id, recorded_at, option"
        if (wanted := self._dense(task_ids)) is not None:
            rows = self._scan(f"SELECT {columns} {order}", wanted)
        else:
            rows = []
            for batch in _batches(task_ids):
                where = f"WHERE task_id IN ({_marks(batch)})"
                rows += self._rows(f"SELECT {columns} {where} {order}", batch)
        found: dict[str, list[MissingInput]] = {}
        for task_id, option, url, reason in rows:
            found.setdefault(task_id, []).append(
                MissingInput(option, url, Missing.UNAVAILABLE, reason)
            )
        return {task_id: tuple(entries) for task_id, entries in found.items()}

    # -- files ---------------------------------------------------------------------------------

    async def files(self, task_id: str) -> list[ArchivedFile]:
        rows = self._rows(
            f"SELECT {FILE_COLUMNS} FROM files WHERE task_id = ? ORDER BY artifact, kind, path",
            (task_id,),
        )
        return self._parse(archived_file, rows)

    def all_files(self) -> AsyncIterator[tuple[str, ArchivedFile]]:
        sql = f"SELECT task_id, {FILE_COLUMNS} FROM files ORDER BY task_id, artifact, kind, path"
        return self._stream(sql, (), lambda r: (r[0], archived_file(r[1:])))

    # -- the gallery's rows --------------------------------------------------------------------

    async def record_display(self, task_id: str, row: DisplayRow) -> None:
        with self._write() as db:
            sqlite_write.store_display(db, task_id, row)

    async def stale_display(self, states: Collection[State], version: int) -> list[StaleDisplay]:
        rows = self._rows(
            "SELECT t.task_id, t.dir, t.status FROM tasks t"
            " LEFT JOIN display d INDEXED BY display_made_from USING (task_id)"
            f" WHERE t.state IN ({_marks(states)}) AND t.dir IS NOT NULL AND (d.version IS NOT ?"
            " OR d.files != COALESCE((SELECT COUNT(*) || ':' || SUM(bytes) FROM files f"
            "                         WHERE f.task_id = t.task_id), '0:0'))",
            (*map(str, states), version),
        )
        return [StaleDisplay(*r) for r in rows]

    async def display_cards(self, states: Collection[State]) -> list[str]:
        rows = self._rows(
            "SELECT d.card FROM display d INDEXED BY display_by_created JOIN tasks t"
            f" USING (task_id) WHERE t.state IN ({_marks(states)}) AND t.dir IS NOT NULL"
            " ORDER BY d.created DESC, d.task_id DESC",
            [str(s) for s in states],
        )
        return [r[0] for r in rows]

    async def display_stamps(self, states: Collection[State]) -> dict[str, str]:
        # The count and the sum of the rows' ids: ids are never reused, so any change to a
        # shard's set of rows changes its stamp.
        rows = self._rows(
            "SELECT d.shard, COUNT(*) || ':' || SUM(d.id) FROM display d"
            " INDEXED BY display_by_shard JOIN tasks t USING (task_id)"
            f" WHERE t.state IN ({_marks(states)}) AND t.dir IS NOT NULL GROUP BY d.shard",
            [str(s) for s in states],
        )
        return dict(rows)

    async def display_entries(self, states: Collection[State], shard: str) -> list[str]:
        rows = self._rows(
            "SELECT e.entry FROM display d INDEXED BY display_by_shard"
            " JOIN tasks t USING (task_id) JOIN display_entry e USING (task_id)"
            f" WHERE d.shard = ? AND t.state IN ({_marks(states)}) AND t.dir IS NOT NULL"
            " ORDER BY d.task_id",
            (shard, *map(str, states)),
        )
        return [r[0] for r in rows]
