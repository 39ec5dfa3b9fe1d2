"""The PostgreSQL catalog's schema: version 1 and the migrations after it, applied under an
advisory lock so that hosts starting at once do not both migrate.

The tables mirror the SQLite engine's (catalog copy moves rows between them as they are), plus
what several hosts need: a claim on each task (owner, fencing token, expiry by the server's
clock), the host of each run, and the server time each run started.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ..errors import StorageError

# Taken for the migration's transaction only; any fixed number private to this program.
MIGRATION_LOCK = 0x52554E57_41590001
SCHEMA = """
CREATE TABLE archiver_schema (version integer NOT NULL);
CREATE TABLE tasks (
    task_id       text PRIMARY KEY,
    state         text NOT NULL,
    status        text,
    dir           text,
    error         text,
    updated_at    text NOT NULL,
    sidecar_bytes bigint,
    failures      integer NOT NULL DEFAULT 0,
    failed_run    bigint,
    failed_at     text,
    listed_status text,
    listed_at     text,
    answered      integer,
    forgotten_at  text,
    -- the claim: who holds the task, the token that fences its writes, until when (server
    -- clock); released (token and expiry NULL) when an outcome is recorded, by the transaction
    -- done_xid at done_at; a run leaves a task another run recorded after its start
    claim_host    text,
    claim_run     bigint,
    claim_token   bigint,
    claim_expires timestamptz,
    done_at       timestamptz,
    done_xid      xid8
);
CREATE INDEX tasks_by_state ON tasks (state);
CREATE INDEX tasks_claimed ON tasks (claim_expires) WHERE claim_token IS NOT NULL;
CREATE SEQUENCE claim_tokens;
CREATE TABLE files (
    task_id   text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    path      text NOT NULL,
    kind      text NOT NULL,
    artifact  integer NOT NULL,
    bytes     bigint NOT NULL,
    sha256    text NOT NULL,
    probe     text NOT NULL,
    unchecked text NOT NULL,
    stored    text,
    PRIMARY KEY (task_id, path)
);
CREATE TABLE runs (
    id          bigserial PRIMARY KEY,
    host        text NOT NULL DEFAULT '',
    started     timestamptz NOT NULL DEFAULT now(),
    -- what had committed when the run began: a task recorded by a transaction not in it was
    -- finished by another run meanwhile (commit order, not clocks, decides)
    snapshot    pg_snapshot NOT NULL DEFAULT pg_current_snapshot(),
    started_at  text NOT NULL,
    finished_at text,
    exit_code   integer,
    summary     text
);
CREATE INDEX runs_by_host ON runs (host, id);
CREATE TABLE unavailable_inputs (
    task_id     text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    option      text NOT NULL,
    url         text NOT NULL,
    reason      text NOT NULL,
    recorded_at text NOT NULL,
    PRIMARY KEY (task_id, option)
);
CREATE TABLE display (
    id      bigserial PRIMARY KEY,
    task_id text NOT NULL UNIQUE REFERENCES tasks (task_id) ON DELETE CASCADE,
    version integer NOT NULL,
    created text NOT NULL,
    shard   text NOT NULL,
    files   text NOT NULL,
    card    text NOT NULL
);
CREATE TABLE display_entry (
    task_id text PRIMARY KEY REFERENCES tasks (task_id) ON DELETE CASCADE,
    entry   text NOT NULL
);
CREATE INDEX display_by_created ON display (created, task_id);
CREATE INDEX display_by_shard ON display (shard, task_id);
INSERT INTO archiver_schema VALUES (1);
"""
# MIGRATIONS[n] takes the schema from version n + 1 to n + 2. Append only; never edit one.
MIGRATIONS: tuple[str, ...] = ()
SCHEMA_VERSION = 1 + len(MIGRATIONS)


async def migrate(conn: AsyncConnection[tuple[Any, ...]], where: str) -> None:
    """Create the schema in an empty database, or bring an older one up to date: one
    transaction under an advisory lock, so a second host waits and then finds nothing to do."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        tables = {
            r[0]
            for r in await (
                await conn.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            ).fetchall()
        }
        if "archiver_schema" not in tables:
            if tables:
                raise StorageError(
                    f"catalog {where}: the database holds other tables, not a runway-archiver "
                    "catalog; left as it is"
                )
            await conn.execute(SCHEMA.encode())
            version = 1
        else:
            row = await (await conn.execute("SELECT max(version) FROM archiver_schema")).fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"catalog {where}: made by a newer runway-archiver (schema {version})"
            )
        for number, script in enumerate(MIGRATIONS[version - 1 :], start=version + 1):
            await conn.execute(script.encode())
            await conn.execute("UPDATE archiver_schema SET version = %s", (number,))
