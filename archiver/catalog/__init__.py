"""The archive's memory: SQLite (WAL) rows for each task's state and each verified file.

A file row is written only after the file has its final name and was fsynced; every write is one
short BEGIN IMMEDIATE transaction, never held across an await.
"""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import scrub
from ..errors import StorageError, UsageError
from ..model import ArchivedFile, FileKind, Missing, MissingInput, ProbeResult, State, TaskOutcome
from .schema import MIGRATIONS as MIGRATIONS
from .schema import SCHEMA as SCHEMA
from .schema import SCHEMA_VERSION, check_intact, migrate

T = TypeVar("T")
FILENAME = "catalog.sqlite3"


_FILE_COLUMNS = "kind, artifact, path, bytes, sha256, probe, unchecked, stored"
NOT_FETCHED = "found in the listing, not retrieved yet"
_TASK_COLUMNS = (
    "task_id, state, status, dir, error, updated_at, sidecar_bytes, failures, failed_run, failed_at"
)


def require(root: Path | str, path: Path | None = None) -> None:
    """Refuse a folder (or bucket) that holds no archive, before anything is created in it."""
    path = path or Path(root) / FILENAME
    if not path.is_file():
        shown = FILENAME if path == Path(root) / FILENAME else str(path)
        raise UsageError(f"no archive at {root} (no {shown})")


def _archived_file(r: Sequence[Any]) -> ArchivedFile:
    return ArchivedFile(
        kind=FileKind(r[0]),
        artifact_index=r[1],
        path=r[2],
        size=r[3],
        sha256=r[4],
        probe=ProbeResult(**json.loads(r[5])),
        unchecked=tuple(json.loads(r[6])),
        stored=r[7],
    )


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    state: State
    status: str | None
    dir: str | None
    error: str | None
    updated_at: str
    sidecar_bytes: int | None = None
    failures: int = 0  # runs in a row that ended in the same lasting error
    failed_run: int | None = None
    failed_at: str | None = None

    def is_done(self, *, refresh: bool) -> bool:
        """Nothing left to fetch: archived, or FAILED/CANCELLED unless a refresh is asked for."""
        return self.state is State.ARCHIVED or (self.state is State.FAILED and not refresh)


_STATES = {str(s): s for s in State}  # a dict lookup: State(...) is slow for 100,000 rows


def _task_row(r: Sequence[Any]) -> TaskRow:
    return TaskRow(r[0], _STATES[r[1]], *r[2:])


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


class Catalog:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, root: Path, *, readonly: bool = False, path: Path | None = None) -> Catalog:
        """The catalog at `path`, by default `root/catalog.sqlite3`."""
        path = path or root / FILENAME
        if readonly:
            return cls._open_readonly(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            check_intact(conn, path)  # before anything could write to a damaged file
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL may lose the last commit on power loss, never claim a file that is not there:
            # files are fsynced before their rows are written.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(f"{path}: made by a newer runway-archiver (schema {version})")
            migrate(conn, version)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
        return cls(conn, path)

    @classmethod
    def _open_readonly(cls, path: Path) -> Catalog:
        """Read without writing anything beside it: a backup, a copy or a read-only mount works.

        With no write-ahead log beside the file (no run is writing) nothing can change under us,
        so SQLite may skip its locks and shared-memory file altogether (`immutable`).
        """
        require(path.parent, path)
        live = path.with_name(path.name + "-wal").exists()
        mode = "mode=ro" if live else "mode=ro&immutable=1"
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30)
            check_intact(conn, path)
            conn.execute("SELECT 1 FROM tasks LIMIT 1")
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
        return cls(conn, path)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A query's rows; a damaged page found only now is still a one-line storage error."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: the catalog is damaged ({exc})") from exc

    def close(self) -> None:
        self._conn.close()

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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def _parse(self, parse: Callable[[Sequence[Any]], T], rows: list[Any]) -> list[T]:
        try:
            return [parse(r) for r in rows]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            damaged = f"{self.path}: the catalog is damaged (a row does not parse)"
            raise StorageError(damaged) from exc

    def states(self) -> dict[str, TaskRow]:
        """Every task the archive knows, in one indexed scan."""
        rows = self._parse(_task_row, self._rows(f"SELECT {_TASK_COLUMNS} FROM tasks"))
        return {r.task_id: r for r in rows}

    def files(self, task_id: str) -> list[ArchivedFile]:
        rows = self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE task_id = ? ORDER BY artifact, kind, path",
            (task_id,),
        )
        return self._parse(_archived_file, rows)

    def file_sizes(self) -> Iterator[tuple[str, list[tuple[str, int]]]]:
        """(path, bytes) of every file, a task at a time, streamed in key order: all a rerun
        needs to stat the archive, without holding 400,000 rows at once."""
        try:
            rows = self._conn.execute("SELECT task_id, path, bytes FROM files ORDER BY task_id")
            for task_id, group in itertools.groupby(rows, key=operator.itemgetter(0)):
                yield task_id, [(r[1], r[2]) for r in group]
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: the catalog is damaged ({exc})") from exc

    def all_files(self) -> list[tuple[str, ArchivedFile]]:
        """Every file the catalog vouches for, with its task id."""
        rows = self._rows(
            f"SELECT task_id, {_FILE_COLUMNS} FROM files ORDER BY task_id, artifact, kind, path"
        )
        return self._parse(lambda r: (r[0], _archived_file(r[1:])), rows)

    def all_tasks(self) -> list[TaskRow]:
        rows = self._rows(f"SELECT {_TASK_COLUMNS} FROM tasks ORDER BY dir, task_id")
        return self._parse(_task_row, rows)

    def mark_damaged(self, task_id: str, paths: list[str], *, reason: str, now: str) -> None:
        """Forget files found missing or altered, so the task is fetched again by the next run."""
        with self._write() as db:
            db.executemany(
                "DELETE FROM files WHERE task_id = ? AND path = ?", [(task_id, p) for p in paths]
            )
            db.execute(
                "UPDATE tasks SET state = ?, error = ?, updated_at = ? WHERE task_id = ?",
                (str(State.ERROR), reason, now, task_id),
            )

    def record(self, outcome: TaskOutcome, *, now: str, run_id: int | None = None) -> None:
        """Store a task's outcome and exactly the files it holds now.

        A lasting error (`outcome.backoff`) that repeats the last one counts one more failure
        in a row; anything else starts the count again.
        """
        error = scrub.text(outcome.error) if outcome.error is not None else None
        status = scrub.text(outcome.status) if outcome.status is not None else None
        with self._write() as db:
            before = db.execute(
                "SELECT error, failures FROM tasks WHERE task_id = ?", (outcome.task_id,)
            ).fetchone()
            failures = 0
            if outcome.state is State.ERROR and outcome.backoff:
                failures = before[1] + 1 if before is not None and before[0] == error else 1
            failed = (run_id, now) if failures else (None, None)
            db.execute(
                f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(task_id) DO UPDATE SET"
                " state=excluded.state, status=excluded.status, dir=excluded.dir,"
                " error=excluded.error, updated_at=excluded.updated_at,"
                " sidecar_bytes=excluded.sidecar_bytes, failures=excluded.failures,"
                " failed_run=excluded.failed_run, failed_at=excluded.failed_at",
                (
                    outcome.task_id,
                    str(outcome.state),
                    status,
                    outcome.dir,
                    error,
                    now,
                    outcome.sidecar_bytes,
                    failures,
                    *failed,
                ),
            )
            db.execute("DELETE FROM files WHERE task_id = ?", (outcome.task_id,))
            db.executemany(
                f"INSERT INTO files (task_id, {_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        outcome.task_id,
                        str(f.kind),
                        f.artifact_index,
                        f.path,
                        f.size,
                        f.sha256,
                        json.dumps(asdict(f.probe)),
                        json.dumps(list(f.unchecked)),
                        f.stored,
                    )
                    for f in outcome.files
                ],
            )
            _keep_unavailable(db, outcome, now)

    def unavailable(self) -> dict[str, tuple[MissingInput, ...]]:
        """Inputs found gone for good, by task id (a small table: read whole)."""
        found: dict[str, list[MissingInput]] = {}
        rows = self._rows(
            "SELECT task_id, option, url, reason FROM unavailable_inputs"
            " ORDER BY task_id, recorded_at, option"
        )
        for task_id, option, url, reason in rows:
            found.setdefault(task_id, []).append(
                MissingInput(option, url, Missing.UNAVAILABLE, reason)
            )
        return {task_id: tuple(entries) for task_id, entries in found.items()}

    def remember_listed(self, listed: Sequence[tuple[str, str | None]], *, now: str) -> None:
        """Note (task id, listed status) pairs; a task new to the archive is pending until fetched.

        Written before any is fetched, so one not finished is fetched again by later runs even
        after it has dropped out of the listing's reach.
        """
        with self._write() as db:
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

    def begin_run(self, *, now: str) -> int:
        with self._write() as db:
            cursor = db.execute("INSERT INTO runs (started_at) VALUES (?)", (now,))
            return int(cursor.lastrowid or 0)

    def end_run(self, run_id: int, *, now: str, exit_code: int, summary: dict[str, int]) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE id = ?",
                (now, exit_code, json.dumps(summary), run_id),
            )

    def next_run_id(self) -> int:
        """The id the next run will get (`list` plans as that run would)."""
        return int(self._rows("SELECT COALESCE(MAX(id), 0) + 1 FROM runs")[0][0])

    def last_run(self) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT started_at, finished_at, exit_code, summary FROM runs ORDER BY id DESC LIMIT 1"
        )

        def parse(r: Sequence[Any]) -> dict[str, Any]:
            summary = json.loads(r[3]) if r[3] else None
            if summary is not None and not isinstance(summary, dict):
                raise ValueError("summary")
            return {"started_at": r[0], "finished_at": r[1], "exit_code": r[2], "summary": summary}

        return self._parse(parse, rows)[0] if rows else None

    def totals(self) -> tuple[dict[str, int], int, int]:
        """Tasks per state, and the count and bytes of archived files."""
        per_state = dict(self._rows("SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        count, size = self._rows("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files")[0]
        return per_state, int(count), int(size)

    # -- the gallery's rows (archiver/gallery): one table read, not a sidecar per task -------

    def record_display(
        self, task_id: str, *, version: int, created: str, shard: str, files: str, card: str,
        entry: str,
    ) -> None:  # fmt: skip
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO display (task_id, version, created, shard, files, card)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (task_id, version, created, shard, files, card),
            )
            db.execute("INSERT OR REPLACE INTO display_entry VALUES (?, ?)", (task_id, entry))

    def stale_display(self, states: Sequence[str], version: int) -> list[tuple[str, str, str]]:
        """(task_id, dir, status) of tasks in `states` whose display row is missing, of another
        version, or made from other files than the catalog holds now (count and bytes)."""
        marks = ", ".join("?" * len(states))
        return self._rows(
            "SELECT t.task_id, t.dir, t.status FROM tasks t"
            " LEFT JOIN display d INDEXED BY display_made_from USING (task_id)"
            f" WHERE t.state IN ({marks}) AND t.dir IS NOT NULL AND (d.version IS NOT ? OR"
            " d.files != COALESCE((SELECT COUNT(*) || ':' || SUM(bytes) FROM files f"
            "                      WHERE f.task_id = t.task_id), '0:0'))",
            (*states, version),
        )

    def display_cards(self, states: Sequence[str]) -> list[str]:
        """The cards of tasks in `states`, newest first."""
        marks = ", ".join("?" * len(states))
        rows = self._rows(
            "SELECT d.card FROM display d INDEXED BY display_by_created JOIN tasks t"
            f" USING (task_id) WHERE t.state IN ({marks}) AND t.dir IS NOT NULL"
            " ORDER BY d.created DESC, d.task_id DESC",
            states,
        )
        return [r[0] for r in rows]

    def display_stamps(self, states: Sequence[str]) -> dict[str, str]:
        """Per detail file (shard) of tasks in `states`: the count and sum of its rows' ids."""
        marks = ", ".join("?" * len(states))
        rows = self._rows(
            "SELECT d.shard, COUNT(*) || ':' || SUM(d.id) FROM display d"
            " INDEXED BY display_by_shard JOIN tasks t USING (task_id)"
            f" WHERE t.state IN ({marks}) AND t.dir IS NOT NULL GROUP BY d.shard",
            states,
        )
        return dict(rows)

    def display_entries(self, states: Sequence[str], shard: str) -> list[str]:
        """The detail entries of the tasks in `states` that one detail file holds."""
        marks = ", ".join("?" * len(states))
        rows = self._rows(
            "SELECT e.entry FROM display d INDEXED BY display_by_shard"
            " JOIN tasks t USING (task_id) JOIN display_entry e USING (task_id)"
            f" WHERE d.shard = ? AND t.state IN ({marks}) AND t.dir IS NOT NULL"
            " ORDER BY d.task_id",
            (shard, *states),
        )
        return [r[0] for r in rows]
