"""Bounded concurrency that waits for a free slot before it starts the next piece of work.

A list of 100,000 items never becomes 100,000 tasks waiting on one semaphore: `Slots.spawn`
waits first, then starts. `for_each`, the waiter's polls and a bucket's part uploads all go
through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class Slots:
    """At most `limit` pieces of work running at once, a slot taken before each one starts."""

    def __init__(self, limit: int) -> None:
        self._free = asyncio.Semaphore(limit)
        self.busy = 0  # slots taken now

    async def take(self) -> None:
        """Wait for a free slot and hold it (for work that must start before its task does)."""
        await self._free.acquire()
        self.busy += 1

    def give_back(self) -> None:
        self.busy -= 1
        self._free.release()

    async def spawn(self, group: asyncio.TaskGroup, work: Callable[[], Awaitable[object]]) -> None:
        """Wait for a free slot, then run `work()` in `group`; the slot is free when it ends."""
        await self.take()
        self.start_taken(group, work)

    def start_taken(self, group: asyncio.TaskGroup, work: Callable[[], Awaitable[object]]) -> None:
        """Run `work()` in `group` on the slot the caller took; given back when it ends."""
        group.create_task(self._holding(work))

    async def _holding(self, work: Callable[[], Awaitable[object]]) -> None:
        try:
            await work()
        finally:
            self.give_back()


async def for_each(
    items: Iterable[T] | AsyncGenerator[T, None],
    worker: Callable[[T], Awaitable[None]],
    *,
    limit: int,
) -> None:
    """Run `worker` on every item, at most `limit` at once, waiting for a slot before starting one.

    An async generator is read only as slots free up (a run's task list, read as it goes), and
    closed however the work ends.
    The first exception that escapes a worker cancels the rest and is raised as itself.
    """
    slots = Slots(limit)
    try:
        async with asyncio.TaskGroup() as group:
            if isinstance(items, AsyncGenerator):
                async with contextlib.aclosing(items) as taken:
                    async for item in taken:
                        await slots.spawn(group, functools.partial(worker, item))
            else:
                for item in items:
                    await slots.spawn(group, functools.partial(worker, item))
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
