"""Connections to a PostgreSQL catalog: the check at start (one line naming host, port and
database, never the password), the pool, and the retries when the server goes away mid-run.

Every psycopg error is translated here or in the engine, once: a connection that cannot be made
or is lost past the retries is a `CatalogUnreachable` (exit 74).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .. import scrub
from ..config import CatalogUrl
from ..errors import CatalogUnreachable, StorageError

T = TypeVar("T")
# psycopg and its pool log warnings of their own (a query cancelled as a run stops, a failed
# reconnection): unformatted and unscrubbed, they must not reach stderr. What matters is
# raised and translated here, once.
logging.getLogger("psycopg").addHandler(logging.NullHandler())
Conn = AsyncConnection[tuple[Any, ...]]
CONNECT_TIMEOUT = 10  # seconds for one connection attempt
POOL_SIZE = 4  # every statement is short: a few connections serve a run's tasks
# A server restarting (`pg_ctl restart`, a failover) comes back within seconds: retry a lost
# connection for up to this long, with backoff, before the run ends (exit 74).
RETRY_SECONDS = 60.0
FIRST_DELAY, MAX_DELAY = 0.2, 5.0
# Errors of the connection, not of the statement: worth another try on a fresh connection.
RETRIED = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def reason(exc: BaseException) -> str:
    """What libpq said, without its "connection to server at ... failed:" preamble."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.rpartition(" failed: ")[2] or text
    return scrub.text(text.removeprefix("FATAL:").strip())


async def connect(url: CatalogUrl) -> Conn:
    """One connection, made now: the check at start that the database is there and ours."""
    try:
        return await AsyncConnection.connect(
            url.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
    except psycopg.Error as exc:
        raise CatalogUnreachable(f"catalog {url.where}: cannot connect ({reason(exc)})") from exc


class Pool:
    """A small pool, and `run(op)`: op on a pooled connection, again on another after a
    connection error (the server restarted), with backoff, for up to RETRY_SECONDS."""

    def __init__(self, url: CatalogUrl, *, size: int = POOL_SIZE) -> None:
        self.url = url
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url.url,
            min_size=1,
            max_size=size,
            open=False,
            timeout=CONNECT_TIMEOUT,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            name="catalog",
        )
        self.statements = 0  # for the bench: the catalog's own cost per task

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[Pool]:
        await self._pool.open(wait=False)
        try:
            yield self
        finally:
            await self._pool.close(timeout=5)

    async def run(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        deadline = time.monotonic() + RETRY_SECONDS
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._pool.connection() as conn:
                    self.statements += 1
                    return await op(conn)
            except RETRIED as exc:
                delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)) * random.uniform(0.5, 1)
                if time.monotonic() + delay > deadline:
                    raise CatalogUnreachable(
                        f"catalog {self.url.where}: connection lost ({reason(exc)})"
                    ) from exc
                # Connections the restart cut are found now, not one failed attempt each.
                await self._pool.check()
                await asyncio.sleep(delay)
            except psycopg.Error as exc:
                raise StorageError(f"catalog {self.url.where}: {reason(exc)}") from exc

    @asynccontextmanager
    async def held(self) -> AsyncIterator[Conn]:
        """A pooled connection for as long as the block lasts (a session lock), not retried."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except RETRIED as exc:
            raise CatalogUnreachable(f"catalog {self.url.where}: {reason(exc)}") from exc
