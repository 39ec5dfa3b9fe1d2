"""The PostgreSQL engine of the catalog: one database shared by every run on every host.

Each task is claimed before it is retrieved: a lease (owner, fencing token, expiry by the
server's clock) granted by one statement that skips rows another run is claiming. Renewals and
the final row are conditional on the token, so a run whose claim was taken over writes nothing.
Every statement is one short transaction on a pooled connection; none stays open while a file
streams. psycopg is imported only when a `--catalog postgresql://...` asks for this engine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ..config import CatalogUrl, Config
from ..errors import LeaseLost, NoArchive, StorageError
from ..model import Missing, MissingInput, State, TaskOutcome
from . import postgres_write as write
from .postgres_pool import Conn, Pool, connect
from .postgres_read import ReadMixin
from .postgres_schema import migrate
from .protocol import Access
from .rows import Claim, DisplayRow, HostRecord, RunRecord, Settled, TaskRow
from .sqlite_rows import run_record, task_row

GALLERY_LOCK = 0x52554E57_41590002  # one gallery build at a time, whichever host finishes


class PostgresCatalog(ReadMixin):
    """The Catalog protocol on PostgreSQL, with claims for several runs at once."""

    shared = True  # every run's ids are everyone's work; claims keep two runs off one task

    def __init__(self, pool: Pool, *, host: str, lease: float) -> None:
        self._pool = pool
        self.name = str(pool.url)
        self.host = host
        self.lease = lease

    async def flush(self) -> None:
        return None  # every write is committed on the server already

    @property
    def statements(self) -> int:
        """Statements sent so far (the bench's measure of the catalog's own cost)."""
        return self._pool.statements

    # -- runs ----------------------------------------------------------------------------------

    async def begin_run(self, *, now: str) -> int:
        async def op(db: Conn) -> int:
            cur = await db.execute(
                "INSERT INTO runs (host, started_at) VALUES (%s, %s) RETURNING id",
                (self.host, now),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(str(row[0]))

        return await self._pool.run(op)

    async def end_run(
        self, run_id: int, *, now: str, exit_code: int, summary: Mapping[str, int]
    ) -> None:
        await self._execute(
            "UPDATE runs SET finished_at = %s, exit_code = %s, summary = %s WHERE id = %s",
            (now, exit_code, json.dumps(dict(summary)), run_id),
        )

    async def hosts(self) -> list[HostRecord]:
        """Per host: its last run, and the claims it holds now (by the server's clock)."""
        rows = await self._rows(
            "SELECT h.host, r.started_at, r.finished_at, r.exit_code, r.summary,"
            " (SELECT count(*) FROM tasks t WHERE t.claim_host = h.host"
            "  AND t.claim_token IS NOT NULL AND t.claim_expires > now())"
            " FROM (SELECT host, max(id) AS id FROM runs GROUP BY host) h"
            ' JOIN runs r ON r.id = h.id ORDER BY h.host COLLATE "C"'
        )
        return self._parse(lambda r: HostRecord(str(r[0]), run_record(r[1:5]), int(r[5])), rows)

    # -- tasks ---------------------------------------------------------------------------------

    async def record(
        self,
        outcome: TaskOutcome,
        *,
        now: str,
        run_id: int | None = None,
        display: DisplayRow | None = None,
        claim: Claim | None = None,
    ) -> None:
        """As the protocol says; with a `claim`, only while it is this run's (else LeaseLost),
        and the claim ends with it."""

        async def op(db: Conn) -> None:
            async with db.transaction():
                cur = await db.execute(
                    "SELECT error, failures, claim_token FROM tasks WHERE task_id = %s FOR UPDATE",
                    (outcome.task_id,),
                )
                found = await cur.fetchone()
                token = claim.token if claim is not None else None
                if token is not None and (found is None or found[2] != token):
                    raise LeaseLost(f"{outcome.task_id}: claim taken over by another run")
                before = (found[0], int(found[1])) if found is not None else None
                await write.store(
                    db, outcome, now=now, run_id=run_id, display=display, before=before
                )
                if token is not None:
                    await db.execute(
                        "UPDATE tasks SET claim_token = NULL, claim_expires = NULL,"
                        " done_at = now(), done_xid = pg_current_xact_id() WHERE task_id = %s",
                        (outcome.task_id,),
                    )

        await self._pool.run(op)

    async def record_many(
        self, outcomes: Iterable[tuple[TaskOutcome, DisplayRow | None]], *, now: str
    ) -> None:
        async def op(db: Conn) -> None:
            async with db.transaction():
                for outcome, display in outcomes:
                    await write.store(
                        db, outcome, now=now, run_id=None, display=display, before=None
                    )

        await self._pool.run(op)

    async def remember_listed(self, listed: Sequence[tuple[str, str | None]], *, now: str) -> None:
        async def op(db: Conn) -> None:
            async with db.transaction():
                await write.remember(db, listed, now=now, note_listing=True)

        await self._pool.run(op)

    async def forget(self, task_ids: Sequence[str], *, now: str) -> None:
        async def op(db: Conn) -> None:
            async with db.transaction():
                await write.forget(db, task_ids, now=now)

        await self._pool.run(op)

    async def remember_given(self, task_ids: Sequence[str], *, now: str) -> None:
        """Add ids given to a run (`-i`, arguments) to the shared list: every run works on them."""

        async def op(db: Conn) -> None:
            async with db.transaction():
                await write.remember(db, [(t, None) for t in task_ids], now=now, note_listing=False)

        await self._pool.run(op)

    async def mark_damaged(
        self, task_id: str, paths: Sequence[str], *, reason: str, now: str
    ) -> None:
        async def op(db: Conn) -> None:
            async with db.transaction():
                await db.execute(
                    "DELETE FROM files WHERE task_id = %s AND path = ANY(%s)",
                    (task_id, list(paths)),
                )
                await db.execute(
                    "UPDATE tasks SET state = %s, error = %s, updated_at = %s WHERE task_id = %s",
                    (str(State.ERROR), reason, now, task_id),
                )

        await self._pool.run(op)

    async def unavailable(self, task_ids: Collection[str]) -> dict[str, tuple[MissingInput, ...]]:
        rows = await self._rows(
            "SELECT task_id, option, url, reason FROM unavailable_inputs WHERE task_id = ANY(%s)"
            ' ORDER BY task_id, recorded_at, option COLLATE "C"',
            (list(task_ids),),
        )
        found: dict[str, list[MissingInput]] = {}
        for task_id, option, url, why in rows:
            found.setdefault(str(task_id), []).append(
                MissingInput(str(option), str(url), Missing.UNAVAILABLE, str(why))
            )
        return {task_id: tuple(entries) for task_id, entries in found.items()}

    async def record_display(self, task_id: str, row: DisplayRow) -> None:
        async def op(db: Conn) -> None:
            async with db.transaction():
                await write.store_display(db, task_id, row)

        await self._pool.run(op)

    # -- claims --------------------------------------------------------------------------------

    async def claim(self, task_ids: Sequence[str], *, run_id: int, limit: int) -> list[Claim]:
        """Claim up to `limit` of `task_ids` (in their order) that no live claim holds and that
        no other run finished since run `run_id` began; one statement."""
        rows = await self._rows(
            "WITH c AS MATERIALIZED ("
            "  SELECT t.task_id FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS w(task_id, n)"
            "  JOIN tasks t ON t.task_id = w.task_id"
            "  CROSS JOIN (SELECT snapshot FROM runs WHERE id = %(run)s) r"
            "  WHERE (t.claim_token IS NULL OR t.claim_expires < now())"
            "    AND (t.done_xid IS NULL OR pg_visible_in_snapshot(t.done_xid, r.snapshot)"
            "         OR t.claim_run = %(run)s)"
            "  ORDER BY w.n LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)"
            " UPDATE tasks t SET claim_host = %(host)s, claim_run = %(run)s,"
            "  claim_token = nextval('claim_tokens'),"
            "  claim_expires = now() + %(lease)s * interval '1 second'"
            " FROM c WHERE t.task_id = c.task_id RETURNING t.task_id, t.claim_token",
            {"ids": list(task_ids), "run": run_id, "limit": limit, "host": self.host,
             "lease": self.lease},
        )  # fmt: skip
        granted = {str(r[0]): int(str(r[1])) for r in rows}
        return [Claim(t, granted[t]) for t in task_ids if t in granted]

    async def renew(self, claim: Claim) -> bool:
        """Extend the claim by a lease from now (server clock); False if another run took it."""
        rows = await self._rows(
            "UPDATE tasks SET claim_expires = now() + %s * interval '1 second'"
            " WHERE task_id = %s AND claim_token = %s RETURNING 1",
            (self.lease, claim.task_id, claim.token),
        )
        return bool(rows)

    async def release(self, claim: Claim) -> None:
        """Give up a claim without an outcome (the run was stopped): any run may take it now."""
        await self._execute(
            "UPDATE tasks SET claim_token = NULL, claim_expires = NULL"
            " WHERE task_id = %s AND claim_token = %s",
            (claim.task_id, claim.token),
        )

    async def settled(self, task_ids: Collection[str], *, run_id: int) -> Settled:
        """Of `task_ids` (ones this run could not claim): the rows of those another run
        finished since run `run_id` began, and the seconds until the soonest other claim ends."""
        rows = await self._rows(
            "SELECT t.done_xid IS NOT NULL AND NOT pg_visible_in_snapshot(t.done_xid, r.snapshot)"
            "   AND t.claim_run IS DISTINCT FROM %(run)s AND t.claim_token IS NULL,"
            " extract(epoch FROM t.claim_expires - now())"
            "   * (t.claim_token IS NOT NULL AND t.claim_expires >= now())::int, "
            + self.TASK_COLUMNS_T
            + " FROM tasks t CROSS JOIN (SELECT snapshot FROM runs WHERE id = %(run)s) r"
            " WHERE t.task_id = ANY(%(ids)s)",
            {"ids": list(task_ids), "run": run_id},
        )
        finished = {r.task_id: r for r in self._parse(lambda r: task_row(r[2:]), [
            r for r in rows if r[0]])}  # fmt: skip
        waits = [float(str(r[1])) for r in rows if not r[0] and r[1] is not None and r[1]]
        return Settled(finished, min(waits) if waits else None)

    @asynccontextmanager
    async def gallery_lock(self) -> AsyncIterator[None]:
        """A session advisory lock on a connection of its own, held while the gallery is
        written: whichever run finishes builds it, one at a time."""
        async with self._pool.held() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (GALLERY_LOCK,))
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (GALLERY_LOCK,))

    # -- helpers -------------------------------------------------------------------------------

    async def _execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        async def op(db: Conn) -> None:
            await db.execute(sql.encode(), params)

        await self._pool.run(op)


@asynccontextmanager
async def open_postgres(
    config: Config, access: Access, *, fetch_copy: bool, env: Mapping[str, str]
) -> AsyncIterator[PostgresCatalog]:
    """The catalog in the database `config.catalog` names: checked (reachable, ours) and, for
    a run, created or migrated, before the run makes any request."""
    url = config.catalog
    assert isinstance(url, CatalogUrl)
    conn = await connect(url)
    try:
        if access is Access.CREATE:
            await migrate(conn, url.where)
        elif not await _has_archive(conn):
            raise NoArchive(f"no archive in catalog {url.where} (no runway-archiver tables)")
    finally:
        await conn.close()
    async with Pool(url).opened() as pool:
        yield PostgresCatalog(pool, host=config.host, lease=config.lease_seconds)


async def _has_archive(conn: Conn) -> bool:
    try:
        cur = await conn.execute("SELECT to_regclass('archiver_schema') IS NOT NULL")
        row = await cur.fetchone()
    except Exception as exc:  # translated once, here: any psycopg error reading the catalog
        raise StorageError(f"catalog: {exc}") from exc
    return bool(row and row[0])


__all__ = ["PostgresCatalog", "RunRecord", "TaskRow", "open_postgres"]
