"""The SQLite catalog's schema: version 1 and the migrations after it, the connections, and the
checks made before any write (a damaged catalog is refused and left exactly as it is).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..errors import StorageError
from ..model import FileKind, State
from . import sqlite_stamp

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
# A task's files packed as its `sizes` column holds them: part of migration 9, never edit.
_PACKED = (
    "SELECT CAST(group_concat(char(0) || path || char(0) || bytes || char(0), '') AS BLOB)"
    " FROM files WHERE files.task_id = {task}"
)
# MIGRATIONS[n] takes the schema from version n + 1 to n + 2. Append only; never edit one.
MIGRATIONS: tuple[str, ...] = (
    # 2: the sidecar's size, for the rerun's check that the disk still agrees; the back-off of
    # a task failing the same way run after run (how many times, in which run, when).
    """
    ALTER TABLE tasks ADD COLUMN sidecar_bytes INTEGER;
    ALTER TABLE tasks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN failed_run INTEGER;
    ALTER TABLE tasks ADD COLUMN failed_at TEXT;
    """,
    # 3: tasks found by `run --all`: their status in the listing, and when it last named them.
    """
    ALTER TABLE tasks ADD COLUMN listed_status TEXT;
    ALTER TABLE tasks ADD COLUMN listed_at TEXT;
    """,
    # 4: inputs the CDN no longer has, so no later run asks for them again
    """
    CREATE TABLE IF NOT EXISTS unavailable_inputs (
        task_id     TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
        option      TEXT NOT NULL,
        url         TEXT NOT NULL,
        reason      TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (task_id, option)
    ) WITHOUT ROWID;
    """,
    # 5: what the gallery shows of each task, made when it is archived (archiver/gallery), and
    # the count and bytes of the files it was made from, to tell when those changed since. Ids
    # are never reused, so a detail file's rows (their count and the sum of their ids) tell a
    # build whether that file must be written again. Cards and detail entries live apart: a
    # build reads 50 MB of cards at 100,000 tasks without paging through 150 MB of entries.
    """
    CREATE TABLE display (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL UNIQUE REFERENCES tasks(task_id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        created TEXT NOT NULL,
        shard   TEXT NOT NULL,
        files   TEXT NOT NULL,
        card    TEXT NOT NULL
    );
    CREATE TABLE display_entry (
        task_id TEXT PRIMARY KEY REFERENCES tasks(task_id) ON DELETE CASCADE,
        entry   TEXT NOT NULL
    );
    CREATE INDEX display_by_created ON display(created, task_id);
    CREATE INDEX display_by_shard ON display(shard, task_id);
    CREATE INDEX display_made_from ON display(task_id, version, files);
    """,
    # 6: the store's checksum of each object of a bucket archive, which `verify` compares
    # without downloading.
    "ALTER TABLE files ADD COLUMN stored TEXT;",
    # 7: the HTTP status of a retrieve that answered with an error (404/410 three runs in a row:
    # gone at source), and when `forget` dropped the task from what runs try.
    """
    ALTER TABLE tasks ADD COLUMN answered INTEGER;
    ALTER TABLE tasks ADD COLUMN forgotten_at TEXT;
    """,
    # 8: the count and bytes of all files, kept by triggers as rows come and go, so `status`
    # reads one row instead of summing every file (1.1 s at a million tasks). Files are never
    # written with INSERT OR REPLACE, whose deletes fire no trigger.
    """
    CREATE TABLE file_totals (
        one   INTEGER PRIMARY KEY CHECK (one = 1),
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );
    INSERT INTO file_totals SELECT 1, COUNT(*), COALESCE(SUM(bytes), 0) FROM files;
    CREATE TRIGGER files_added AFTER INSERT ON files BEGIN
        UPDATE file_totals SET files = files + 1, bytes = bytes + NEW.bytes;
    END;
    CREATE TRIGGER files_dropped AFTER DELETE ON files BEGIN
        UPDATE file_totals SET files = files - 1, bytes = bytes - OLD.bytes;
    END;
    CREATE TRIGGER files_resized AFTER UPDATE OF bytes ON files BEGIN
        UPDATE file_totals SET bytes = bytes - OLD.bytes + NEW.bytes;
    END;
    """,
    # 9: each task's files as a rerun checks them, packed in its row (`model.FileSizes`, each
    # triple's task id left empty), kept by triggers: a rerun reads a task's row and its
    # files' sizes in one lookup, not two (a third of a million-id rerun's CPU, measured).
    f"""
    ALTER TABLE tasks ADD COLUMN sizes BLOB;
    UPDATE tasks SET sizes = ({_PACKED.format(task="tasks.task_id")});
    CREATE TRIGGER files_sized AFTER INSERT ON files BEGIN
        UPDATE tasks SET sizes = CAST(coalesce(sizes, '') || char(0) || NEW.path || char(0)
            || NEW.bytes || char(0) AS BLOB) WHERE task_id = NEW.task_id;
    END;
    CREATE TRIGGER files_unsized AFTER DELETE ON files BEGIN
        UPDATE tasks SET sizes = ({_PACKED.format(task="OLD.task_id")})
            WHERE task_id = OLD.task_id;
    END;
    CREATE TRIGGER files_resized_packed AFTER UPDATE OF task_id, path, bytes ON files BEGIN
        UPDATE tasks SET sizes = ({_PACKED.format(task="tasks.task_id")})
            WHERE task_id IN (OLD.task_id, NEW.task_id);
    END;
    """,
    # 10: the tasks in folder order with the columns `status` lists (STATE_COLUMNS), in an
    # index that holds them all: a listing of a million reads it alone, unsorted, not the
    # table with each task's packed files (status 6.3-6.8 -> 3.7-4.1 s, measured).
    """
    CREATE INDEX IF NOT EXISTS tasks_listed
        ON tasks(dir, task_id, state, error, failures, answered, forgotten_at);
    """,
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """A connection for reading and writing to the catalog at `path`: made, or migrated."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        # Before anything could write to a damaged file; in full unless unchanged since the
        # last clean close (its record dropped now: a run killed midway leaves none).
        check_intact(conn, path, full=not sqlite_stamp.unchanged(path))
        sqlite_stamp.forget(path)
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
    return conn


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing to the catalog at `path`, nor beside it.

    With no write-ahead log beside the file (no run is writing) nothing can change under us,
    so SQLite may skip its locks and shared-memory file altogether (`immutable`).
    """
    live = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if live else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30)
        check_intact(conn, path, full=not sqlite_stamp.unchanged(path))
        conn.execute("SELECT 1 FROM tasks LIMIT 1")
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: {exc}") from exc
    return conn


def file_totals(conn: sqlite3.Connection) -> str:
    """The query for the count and bytes of all files: kept since schema 8; summed in a catalog
    read as it is, never migrated by this version."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'file_totals'").fetchone():
        return "SELECT files, bytes FROM file_totals"
    return "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files"


def packs_files(conn: sqlite3.Connection) -> bool:
    """Does the catalog keep each task's files packed in its row (schema 9)? Not in a catalog
    read as it is, never migrated by this version."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0]) >= 9


def write_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """A failed write, a full disk said in the words of every other write (SQLite says
    "database or disk is full")."""
    full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return StorageError(f"{path}: {os.strerror(errno.ENOSPC) if full else exc}")


def check_intact(conn: sqlite3.Connection, path: Path, *, full: bool = True) -> None:
    """Refuse a damaged catalog, or a database that is not ours, without writing to it; not
    `full`: the file is as a clean close left it (sqlite_stamp), so its header and schema only."""
    try:
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0] if full else "ok"
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: the catalog is damaged ({exc}); left as it is") from exc
    if verdict != "ok":
        raise StorageError(f"{path}: the catalog is damaged ({verdict}); left as it is")
    if tables and (version == 0 or "tasks" not in tables):
        raise StorageError(f"{path}: not a runway-archiver catalog; left as it is")
    if full and tables and _bad_rows(conn):
        raise StorageError(f"{path}: the catalog is damaged (a row does not parse); left as it is")


def _bad_rows(conn: sqlite3.Connection) -> int:
    """Rows no run could read, found in one scan in SQLite's C, before any write."""
    states = ", ".join(f"'{s}'" for s in State)
    kinds = ", ".join(f"'{k}'" for k in FileKind)
    try:
        return int(
            conn.execute(
                f"SELECT (SELECT COUNT(*) FROM tasks WHERE state NOT IN ({states}))"
                f" + (SELECT COUNT(*) FROM files WHERE kind NOT IN ({kinds})"
                "   OR typeof(bytes) != 'integer' OR NOT json_valid(probe)"
                "   OR NOT json_valid(unchecked))"
            ).fetchone()[0]
        )
    except sqlite3.Error:
        return 1  # a column missing or of the wrong kind is damage too


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a catalog at `version` (0: new) to SCHEMA_VERSION, one transaction per step."""
    if version == 0:
        conn.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version=1; COMMIT;")
        version = 1
    for number, script in enumerate(MIGRATIONS[version - 1 :], start=version + 1):
        conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")
