"""The PostgreSQL engine's reads: lookups in batches, scans a page at a time (keyset paging,
so no transaction stays open while a caller works through a scan), the gallery's joins.

Text is ordered bytewise (COLLATE "C"), as SQLite orders it, whatever the database's locale.
The columns are SQLite's (`catalog copy` moves rows as they are): so are their parsers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any, Protocol, TypeVar

from ..errors import StorageError
from ..model import ArchivedFile, FileSizes, State
from .postgres_pool import Conn, Pool
from .rows import RunRecord, StaleDisplay, TaskRow, TaskState, Totals
from .sqlite_rows import (
    FILE_COLUMNS,
    STATE_COLUMNS,
    STATES,
    TASK_COLUMNS,
    archived_file,
    run_record,
    task_row,
    task_state,
)

T = TypeVar("T")
PAGE = 2000


class _Keyed(Protocol):
    """A row that a scan by folder can start after."""

    @property
    def task_id(self) -> str: ...
    @property
    def dir(self) -> str | None: ...


K = TypeVar("K", bound=_Keyed)


def _states(states: Collection[State]) -> list[str]:
    return [str(s) for s in states]


class ReadMixin:
    _pool: Pool
    name: str
    TASK_COLUMNS_T = ", ".join(f"t.{c}" for c in TASK_COLUMNS.split(", "))

    async def _rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        async def op(db: Conn) -> list[tuple[Any, ...]]:
            cur = await db.execute(sql.encode(), params)
            return await cur.fetchall() if cur.description is not None else []

        return await self._pool.run(op)

    def _parse(self, parse: Callable[[Sequence[Any]], T], rows: Sequence[Any]) -> list[T]:
        try:
            return [parse(r) for r in rows]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise StorageError(
                f"{self.name}: the catalog is damaged (a row does not parse)"
            ) from exc

    # -- runs ----------------------------------------------------------------------------------

    async def next_run_id(self) -> int:
        rows = await self._rows("SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END"
                                " FROM runs_id_seq")  # fmt: skip
        return int(rows[0][0])

    async def last_run(self) -> RunRecord | None:
        rows = await self._rows(
            "SELECT started_at, finished_at, exit_code, summary FROM runs ORDER BY id DESC LIMIT 1"
        )
        return self._parse(run_record, rows)[0] if rows else None

    # -- tasks ---------------------------------------------------------------------------------

    async def rows(self, task_ids: Collection[str]) -> dict[str, TaskRow]:
        rows = await self._rows(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ANY(%s)", (list(task_ids),)
        )
        return {r.task_id: r for r in self._parse(task_row, rows)}

    async def rows_with_files(
        self, task_ids: Collection[str]
    ) -> tuple[dict[str, TaskRow], FileSizes]:
        ids = sorted(task_ids)
        packed = []
        for start in range(0, len(ids), PAGE):
            rows = await self._rows(
                "SELECT task_id, path, bytes FROM files WHERE task_id = ANY(%s)",
                (ids[start : start + PAGE],),
            )
            packed.append(FileSizes.pack((str(t), str(p), int(b)) for t, p, b in rows))
        return await self.rows(ids), FileSizes(b"".join(f.packed for f in packed))

    def tasks(self, *, states: Collection[State] | None = None) -> AsyncIterator[TaskRow]:
        return self._by_folder(TASK_COLUMNS, task_row, states)

    def listing(self) -> AsyncIterator[TaskState]:
        return self._by_folder(STATE_COLUMNS, task_state, None)

    async def _by_folder(
        self, columns: str, parse: Callable[[Sequence[Any]], K], states: Collection[State] | None
    ) -> AsyncIterator[K]:
        """Rows of tasks (in `states`, when given): those without a folder first (as SQLite
        sorts NULL), then by folder and id; a page at a time, each starting after the last row
        of the one before."""
        where = "" if states is None else " AND state = ANY(%(states)s)"
        key = '(dir IS NOT NULL, coalesce(dir, \'\') COLLATE "C", task_id COLLATE "C")'
        after: tuple[bool, str, str] = (False, "", "")
        while True:
            rows = await self._rows(
                f"SELECT {columns} FROM tasks WHERE {key} > (%(d)s, %(dir)s, %(id)s)"
                f"{where} ORDER BY {key} LIMIT %(page)s",
                {"d": after[0], "dir": after[1], "id": after[2], "states": _states(states or ()),
                 "page": PAGE},
            )  # fmt: skip
            parsed = self._parse(parse, rows)
            for row in parsed:
                yield row
            if len(rows) < PAGE:
                return
            last = parsed[-1]
            after = (last.dir is not None, last.dir or "", last.task_id)

    async def totals(self) -> Totals:
        rows = await self._rows("SELECT state, count(*) FROM tasks GROUP BY state")
        per_state = dict(self._parse(lambda r: (STATES[r[0]], int(r[1])), rows))
        count, size = (await self._rows("SELECT count(*), coalesce(sum(bytes), 0) FROM files"))[0]
        return Totals(per_state, int(count), int(size))

    # -- files ---------------------------------------------------------------------------------

    async def files(self, task_id: str) -> list[ArchivedFile]:
        rows = await self._rows(
            f"SELECT {FILE_COLUMNS} FROM files WHERE task_id = %s"
            ' ORDER BY artifact, kind COLLATE "C", path COLLATE "C"',
            (task_id,),
        )
        return self._parse(archived_file, rows)

    async def all_files(self) -> AsyncIterator[tuple[str, ArchivedFile]]:
        # Paged by task: every file of the tasks of one page of task ids, in order.
        after = ""
        while True:
            ids = [
                str(r[0])
                for r in await self._rows(
                    'SELECT DISTINCT task_id COLLATE "C" FROM files WHERE task_id COLLATE "C" > %s'
                    ' ORDER BY 1 LIMIT %s',
                    (after, PAGE),
                )
            ]  # fmt: skip
            if not ids:
                return
            rows = await self._rows(
                f"SELECT task_id, {FILE_COLUMNS} FROM files WHERE task_id = ANY(%s)"
                ' ORDER BY task_id COLLATE "C", artifact, kind COLLATE "C", path COLLATE "C"',
                (ids,),
            )
            for item in self._parse(lambda r: (r[0], archived_file(r[1:])), rows):
                yield item
            after = ids[-1]

    # -- the gallery's rows --------------------------------------------------------------------

    async def stale_display(self, states: Collection[State], version: int) -> list[StaleDisplay]:
        rows = await self._rows(
            "SELECT t.task_id, t.dir, t.status FROM tasks t LEFT JOIN display d USING (task_id)"
            " WHERE t.state = ANY(%s) AND t.dir IS NOT NULL AND (d.version IS DISTINCT FROM %s"
            " OR d.files != coalesce((SELECT count(*)::text || ':' || sum(bytes)::text"
            "                         FROM files f WHERE f.task_id = t.task_id), '0:0'))",
            (_states(states), version),
        )
        return [StaleDisplay(*r) for r in rows]

    async def display_cards(self, states: Collection[State]) -> list[str]:
        rows = await self._rows(
            "SELECT d.card FROM display d JOIN tasks t USING (task_id)"
            " WHERE t.state = ANY(%s) AND t.dir IS NOT NULL"
            ' ORDER BY d.created COLLATE "C" DESC, d.task_id COLLATE "C" DESC',
            (_states(states),),
        )
        return [str(r[0]) for r in rows]

    async def display_stamps(self, states: Collection[State]) -> dict[str, str]:
        rows = await self._rows(
            "SELECT d.shard, count(*)::text || ':' || sum(d.id)::text FROM display d"
            " JOIN tasks t USING (task_id) WHERE t.state = ANY(%s) AND t.dir IS NOT NULL"
            " GROUP BY d.shard",
            (_states(states),),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def display_entries(self, states: Collection[State], shard: str) -> list[str]:
        rows = await self._rows(
            "SELECT e.entry FROM display d JOIN tasks t USING (task_id)"
            " JOIN display_entry e USING (task_id)"
            " WHERE d.shard = %s AND t.state = ANY(%s) AND t.dir IS NOT NULL"
            ' ORDER BY d.task_id COLLATE "C"',
            (shard, _states(states)),
        )
        return [str(r[0]) for r in rows]
