"""The archive's memory behind one interface: each task's state, each verified file, each run.

    protocol.py       the `Catalog` interface (async), `Access`, and an engine's `Opener`
    rows.py           the typed rows it hands out
    sqlite.py         the SQLite engine (a file beside the archive); its schema, rows and writes
      in sqlite_schema.py, sqlite_rows.py, sqlite_write.py; sqlite_stamp.py records a clean
      check; sqlite_open.py opens it for a command (the lock, a bucket's copy);
      sqlite_testing.py is for tests only; sole.py its answers to claims (one run at a time:
      every claim granted)
    postgres.py       the PostgreSQL engine (one database for several hosts, claims as leases):
      postgres_schema.py, postgres_read.py, postgres_write.py, postgres_pool.py (connections)
    copy.py           `catalog copy`: an archive's SQLite catalog into an empty PostgreSQL one

`open_catalog` chooses the engine once, from the config, inside the command's event loop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from ..config import Config
from .protocol import Access, Catalog, Opener
from .rows import (
    GONE_AFTER,
    GONE_STATUSES,
    NEVER_FETCHED,
    NOT_FETCHED,
    DisplayRow,
    RunRecord,
    StaleDisplay,
    TaskRow,
    TaskState,
    Totals,
)

__all__ = [
    "GONE_AFTER",
    "GONE_STATUSES",
    "NEVER_FETCHED",
    "NOT_FETCHED",
    "Access",
    "Catalog",
    "DisplayRow",
    "RunRecord",
    "StaleDisplay",
    "TaskRow",
    "TaskState",
    "Totals",
    "open_catalog",
]


def _sqlite() -> Opener:
    from .sqlite_open import open_sqlite

    return open_sqlite


def _postgres() -> Opener:
    from .postgres import open_postgres  # psycopg loads only for a PostgreSQL catalog

    return open_postgres


# Engine name -> its opener, loaded on first use (so an engine's driver loads only when used).
ENGINES: dict[str, Callable[[], Opener]] = {"sqlite": _sqlite, "postgresql": _postgres}


def engine_of(config: Config) -> str:
    """The engine that keeps `config`'s catalog: PostgreSQL for `--catalog postgresql://...`,
    else SQLite, beside the archive."""
    return "sqlite" if config.catalog is None else "postgresql"


@asynccontextmanager
async def open_catalog(
    config: Config,
    access: Access,
    *,
    fetch_copy: bool = True,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Catalog]:
    """The catalog of `config`'s archive, open for `access` in this event loop; closed after.

    `fetch_copy`: a machine without the catalog of a bucket archive may fetch its copy (SQLite;
    `status` and `list` say no). READ and WRITE of an archive without one raise `NoArchive`.
    """
    opener = ENGINES[engine_of(config)]()
    environ = os.environ if env is None else env
    async with opener(config, access, fetch_copy=fetch_copy, env=environ) as catalog:
        yield catalog
