"""PostgreSQL fixtures (one throwaway cluster per test session, an empty database per test)
and the helpers of the tests that use them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import psycopg
import pytest

from archiver import config
from archiver.catalog.postgres import PostgresCatalog, open_postgres
from archiver.catalog.protocol import Access
from archiver.testing.postgres import Cluster, find_bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A cluster of Debian's postgresql in a temp folder on a free loopback port; always stopped."""
    if find_bindir() is None:
        pytest.fail("no PostgreSQL server binaries: scripts/test installs Debian's postgresql")
    with Cluster.running() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of an empty database of its own (dropped after the test)."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url.rsplit("/", 1)[1])


NOW = "2026-01-01T00:00:00+00:00"


@asynccontextmanager
async def opened(
    url: str, access: Access = Access.CREATE, *, lease: float = 60, host: str = "h1"
) -> AsyncIterator[PostgresCatalog]:
    cfg, _ = config.load(
        path=None, env={}, overrides={"catalog": url, "lease_seconds": lease, "host_name": host}
    )
    async with open_postgres(cfg, access, fetch_copy=False, env={}) as catalog:
        yield catalog


def sql_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql.encode()).fetchall()]


def sortable(row: tuple[object, ...]) -> tuple[tuple[bool, str], ...]:
    """Rows in the order PostgreSQL's ORDER BY over every column gives (NULLs last)."""
    return tuple((v is None, "" if v is None else f"{v:020d}" if isinstance(v, int) else str(v))
                 for v in row)  # fmt: skip


def scalar(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.encode()).fetchone()
        return row[0] if row else None


async def open_and_close(url: str) -> None:
    async with opened(url):
        return None
