"""The archive's memory: SQLite (WAL) rows for each task's state and each verified file.

A file row is written only after the file has its final name and was fsynced; every write is one
short BEGIN IMMEDIATE transaction, never held across an await.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import StorageError, UsageError
from .model import ArchivedFile, FileKind, ProbeResult, State, TaskOutcome

FILENAME = "catalog.sqlite3"
# Version 1; later changes are MIGRATIONS, so an older archive is brought up to date in place.
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id    TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    status     TEXT,
    dir        TEXT,
    error      TEXT,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    task_id   TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    artifact  INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    probe     TEXT NOT NULL,
    unchecked TEXT NOT NULL,
    PRIMARY KEY (task_id, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    exit_code   INTEGER,
    summary     TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks(state);
"""
# MIGRATIONS[n] takes the schema from version n + 1 to n + 2. Append only; never edit one.
MIGRATIONS: tuple[str, ...] = ()
SCHEMA_VERSION = 1 + len(MIGRATIONS)


_FILE_COLUMNS = "kind, artifact, path, bytes, sha256, probe, unchecked"


def require(root: Path) -> None:
    """Refuse a folder that holds no archive, before anything is created in it."""
    if not (root / FILENAME).is_file():
        raise UsageError(f"no archive at {root} (no {FILENAME})")


def _archived_file(r: Sequence[Any]) -> ArchivedFile:
    return ArchivedFile(
        kind=FileKind(r[0]),
        artifact_index=r[1],
        path=r[2],
        size=r[3],
        sha256=r[4],
        probe=ProbeResult(**json.loads(r[5])),
        unchecked=tuple(json.loads(r[6])),
    )


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a catalog at `version` (0: new) to SCHEMA_VERSION, one transaction per step."""
    if version == 0:
        conn.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version=1; COMMIT;")
        version = 1
    for number, script in enumerate(MIGRATIONS[version - 1 :], start=version + 1):
        conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    state: State
    status: str | None
    dir: str | None
    error: str | None
    updated_at: str


class Catalog:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, root: Path, *, readonly: bool = False) -> Catalog:
        path = root / FILENAME
        if readonly:
            return cls._open_readonly(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL may lose the last commit on power loss, never claim a file that is not there:
            # files are fsynced before their rows are written.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(f"{path}: made by a newer runway-archiver (schema {version})")
            _migrate(conn, version)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
        return cls(conn, path)

    @classmethod
    def _open_readonly(cls, path: Path) -> Catalog:
        require(path.parent)
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            conn.execute("SELECT 1 FROM tasks LIMIT 1")
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

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

    def states(self) -> dict[str, TaskRow]:
        """Every task the archive knows, in one indexed scan."""
        rows = self._conn.execute(
            "SELECT task_id, state, status, dir, error, updated_at FROM tasks"
        )
        return {r[0]: TaskRow(r[0], State(r[1]), r[2], r[3], r[4], r[5]) for r in rows}

    def files(self, task_id: str) -> list[ArchivedFile]:
        rows = self._conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE task_id = ? ORDER BY artifact, kind, path",
            (task_id,),
        )
        return [_archived_file(r) for r in rows]

    def all_files(self) -> list[tuple[str, ArchivedFile]]:
        """Every file the catalog vouches for, with its task id."""
        rows = self._conn.execute(
            f"SELECT task_id, {_FILE_COLUMNS} FROM files ORDER BY task_id, artifact, kind, path"
        )
        return [(r[0], _archived_file(r[1:])) for r in rows]

    def all_tasks(self) -> list[TaskRow]:
        rows = self._conn.execute(
            "SELECT task_id, state, status, dir, error, updated_at FROM tasks ORDER BY dir, task_id"
        )
        return [TaskRow(r[0], State(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

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

    def record(self, outcome: TaskOutcome, *, now: str) -> None:
        """Store a task's outcome and exactly the files it holds now."""
        with self._write() as db:
            db.execute(
                "INSERT INTO tasks (task_id, state, status, dir, error, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET"
                " state=excluded.state, status=excluded.status, dir=excluded.dir,"
                " error=excluded.error, updated_at=excluded.updated_at",
                (
                    outcome.task_id,
                    str(outcome.state),
                    outcome.status,
                    outcome.dir,
                    outcome.error,
                    now,
                ),
            )
            db.execute("DELETE FROM files WHERE task_id = ?", (outcome.task_id,))
            db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        outcome.task_id,
                        f.path,
                        str(f.kind),
                        f.artifact_index,
                        f.size,
                        f.sha256,
                        json.dumps(asdict(f.probe)),
                        json.dumps(list(f.unchecked)),
                    )
                    for f in outcome.files
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

    def last_run(self) -> dict[str, Any] | None:
        r = self._conn.execute(
            "SELECT started_at, finished_at, exit_code, summary FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if r is None:
            return None
        return {
            "started_at": r[0],
            "finished_at": r[1],
            "exit_code": r[2],
            "summary": json.loads(r[3]) if r[3] else None,
        }

    def totals(self) -> tuple[dict[str, int], int, int]:
        """Tasks per state, and the count and bytes of archived files."""
        per_state = dict(self._conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        count, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files"
        ).fetchone()
        return per_state, int(count), int(size)
