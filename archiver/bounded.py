"""Bounded concurrency that waits for a free slot before it starts the next piece of work.

A list of 100,000 items never becomes 100,000 tasks waiting on one semaphore.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def for_each(
    items: Iterable[T], worker: Callable[[T], Awaitable[None]], *, limit: int
) -> None:
    """Run `worker` on every item, at most `limit` at once, waiting for a slot before starting one.

    The first exception that escapes a worker cancels the rest and is raised as itself.
    """
    slots = asyncio.Semaphore(limit)

    async def guarded(item: T) -> None:
        try:
            await worker(item)
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                await slots.acquire()
                group.create_task(guarded(item))
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
