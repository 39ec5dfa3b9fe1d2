"""Bounded concurrency: a slot is taken before work starts; an async list is read as slots free."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from archiver.bounded import for_each


def test_an_async_list_is_read_only_as_slots_free_up() -> None:
    """for_each over an async generator: at most `limit` at once, the generator read no further
    ahead than one item past the running ones, and closed when the work ends."""
    read: list[int] = []
    running: list[int] = []
    most = 0
    closed: list[bool] = []

    async def items() -> AsyncGenerator[int, None]:
        try:
            for n in range(20):
                read.append(n)
                yield n
        finally:
            closed.append(True)

    async def work(n: int) -> None:
        nonlocal most
        running.append(n)
        most = max(most, len(running))
        assert len(read) <= n + 4  # the running ones and one waiting for a slot, no more
        await asyncio.sleep(0)
        running.remove(n)

    async def main() -> None:
        await for_each(items(), work, limit=3)

    asyncio.run(main())
    assert most == 3 and read == list(range(20)) and closed == [True]


def test_a_failing_worker_closes_the_async_list() -> None:
    """The first error ends the work as itself, and the generator is closed, not left open."""
    closed: list[bool] = []

    async def items() -> AsyncGenerator[int, None]:
        try:
            for n in range(1000):
                yield n
        finally:
            closed.append(True)

    async def work(n: int) -> None:
        await asyncio.sleep(0)
        if n == 5:
            raise ValueError("five")

    with pytest.raises(ValueError, match="five"):
        asyncio.run(for_each(items(), work, limit=2))
    assert closed == [True]
