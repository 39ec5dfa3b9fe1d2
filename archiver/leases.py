"""Claims and leases: a run works only on tasks the catalog granted it, and stops a task at once
when its claim is lost, whatever the catalog's engine (SQLite grants every claim: it holds the
archive lock; PostgreSQL shares the work between runs on every host).

`work_through` claims tasks a batch at a time as slots free up and waits out other runs'
claims at the end; `Lease.hold` renews a task's claim every third of the lease while the task
works, and refuses a write once the claim is not surely this run's any more (by the local
clock, which stops for no one: a run stalled past its lease finds out before it writes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from . import files
from .bounded import Slots
from .catalog.rows import Claim, Settled, TaskRow
from .errors import LeaseLost
from .intake import Work

T = TypeVar("T")
MARGIN = 0.9  # of a lease this run counts on: the rest covers the renewal's round trip
SETTLE_POLL = 1.0  # at most this long between looks at other runs' tasks at the end
WINDOW = 4  # ids offered per claim, per slot free: room to skip what others hold


class Claims(Protocol):
    """What leases need of a catalog (part of the `Catalog` protocol)."""

    async def claim(self, task_ids: Sequence[str], *, run_id: int, limit: int) -> list[Claim]: ...

    async def renew(self, claim: Claim) -> bool: ...

    async def release(self, claim: Claim) -> None: ...

    async def settled(self, task_ids: Collection[str], *, run_id: int) -> Settled: ...


def _clock() -> float:
    """Seconds that keep counting while the process is stopped (and, on Linux, suspended)."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


class Lease:
    """One claimed task: renewed while `hold` runs the task's work; `guard` refuses writes once
    the claim may be another run's; `confirm` renews right before a final write."""

    def __init__(self, catalog: Claims, claim: Claim, seconds: float) -> None:
        self.catalog = catalog
        self.claim = claim
        self.seconds = seconds
        self._valid_until = _clock() + seconds * MARGIN
        self._temps: set[Path] = set()

    @property
    def fenced(self) -> bool:
        return self.claim.token is not None

    def guard(self) -> None:
        """Raise LeaseLost when the claim may have expired (before any write to a temp file)."""
        if self.fenced and _clock() >= self._valid_until:
            raise LeaseLost(f"{self.claim.task_id}: claim expired before it was renewed")

    def temp(self, path: Path) -> Path:
        """Note a temp file of this claim, removed if the claim is lost."""
        self._temps.add(path)
        return path

    async def confirm(self) -> None:
        """Before a final name: the claim must surely be this run's for a while yet. Within the
        first two thirds of its lease (by the local clock, which runs behind the server's
        expiry) it is, with no round trip; later, it is renewed now."""
        if not self.fenced:
            return
        if _clock() >= self._valid_until - self.seconds / 3:
            await self._renew()
        self.guard()

    async def _renew(self) -> None:
        sent = _clock()
        if not await self.catalog.renew(self.claim):
            self._valid_until = float("-inf")  # lost for good: every later guard refuses
            raise LeaseLost(f"{self.claim.task_id}: claim taken over by another run")
        self._valid_until = sent + self.seconds * MARGIN

    async def hold(self, work: Awaitable[T]) -> T:
        """Run `work` while renewing the claim every third of the lease. A lost claim cancels
        the work at once and removes this claim's temp files (LeaseLost); a run stopped
        mid-task gives its claim back, so any run may take the task over without waiting."""
        if not self.fenced:
            return await work
        task = asyncio.ensure_future(work)
        done = asyncio.Event()
        renewing = asyncio.create_task(self._renewing(task, done))
        try:
            return await task
        except asyncio.CancelledError:
            lost = renewing.exception() if renewing.done() and not renewing.cancelled() else None
            if isinstance(lost, LeaseLost):  # the renewal found the claim gone and stopped it
                raise lost from None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.catalog.release(self.claim)
            raise
        except LeaseLost:
            self._drop_temps()
            raise
        finally:
            # A renewal in flight ends by itself (a statement cut off mid-way would make the
            # driver cancel it on the server); one sleeping is woken now.
            done.set()
            with contextlib.suppress(Exception):
                await renewing
            task.cancel()

    async def _renewing(self, task: asyncio.Future[T], done: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.seconds / 3):
                    await done.wait()
            if done.is_set():
                return
            try:
                await self._renew()
            except LeaseLost:
                self._drop_temps()
                task.cancel()
                raise

    def _drop_temps(self) -> None:
        for path in self._temps:
            files.discard_part(path)


async def work_through(
    catalog: Claims,
    work: AsyncIterator[Work],
    worker: Callable[[Claim, Work], Awaitable[object]],
    *,
    run_id: int,
    limit: int,
    settled: Callable[[TaskRow], object],
) -> None:
    """Claim the tasks of `work` in order, read as slots free up, a window at a time, and run
    `worker` on each claim, at most `limit` at once. Tasks another run holds are tried again
    at the end, until it finishes them (`settled` is told their rows) or its claim expires
    and this run takes them over."""
    slots = Slots(limit)
    ahead = _Ahead(work)
    deferred: dict[str, Work] = {}
    try:
        async with asyncio.TaskGroup() as group:
            while True:
                free = await _take_free(slots, limit)
                window = await ahead.peek(WINDOW * free)
                if window:
                    ids = [w[0] for w in window]
                    granted = await catalog.claim(ids, run_id=run_id, limit=free)
                    started = ahead.advance(granted, free, deferred)
                elif deferred:
                    granted = await _settle(catalog, deferred, run_id, free, settled)
                    started = [deferred.pop(c.task_id) for c in granted]
                else:
                    granted, started = [], []
                for claim, item in zip(granted, started, strict=True):
                    slots.start_taken(group, functools.partial(worker, claim, item))
                for _ in range(free - len(granted)):
                    slots.give_back()
                if not (window or deferred):
                    break
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
    finally:
        await ahead.close()


async def _take_free(slots: Slots, limit: int) -> int:
    """Wait for a free slot, then take every other slot free now: one claim for them all."""
    await slots.take()
    free = 1
    while slots.busy < limit:
        await slots.take()
        free += 1
    return free


class _Ahead:
    """The work not claimed yet: read from its stream only as far as a window needs."""

    def __init__(self, work: AsyncIterator[Work]) -> None:
        self._work = work
        self._read: collections.deque[Work] = collections.deque()
        self._ended = False

    async def peek(self, count: int) -> list[Work]:
        while len(self._read) < count and not self._ended:
            try:
                self._read.append(await anext(self._work))
            except StopAsyncIteration:
                self._ended = True
        return list(itertools.islice(self._read, count))

    def advance(self, granted: Sequence[Claim], free: int, deferred: dict[str, Work]) -> list[Work]:
        """Take the window's claimed tasks (in claim order) off the front, and the ones before
        them that another run holds into `deferred`. A claim that ran short of claimable ids
        means the whole window is taken."""
        taken = {c.task_id for c in granted}
        window = (
            len(self._read)
            if len(granted) < free
            else 1 + max(i for i, w in enumerate(self._read) if w[0] in taken)
        )
        claimed: dict[str, Work] = {}
        for _ in range(window):
            item = self._read.popleft()
            if item[0] in taken:
                claimed[item[0]] = item
            else:
                deferred[item[0]] = item
        return [claimed[c.task_id] for c in granted]

    async def close(self) -> None:
        if isinstance(self._work, AsyncGenerator):
            await self._work.aclose()


async def _settle(
    catalog: Claims,
    deferred: dict[str, Work],
    run_id: int,
    free: int,
    settled: Callable[[TaskRow], object],
) -> list[Claim]:
    """At the end: drop what other runs finished, claim what they let go; else wait a while."""
    state = await catalog.settled(deferred.keys(), run_id=run_id)
    for task_id, row in state.finished.items():
        del deferred[task_id]
        settled(row)
    granted = await catalog.claim(list(deferred), run_id=run_id, limit=free) if deferred else []
    if deferred and not granted:
        await asyncio.sleep(min(SETTLE_POLL, state.wait + 0.05 if state.wait else SETTLE_POLL))
    return granted
