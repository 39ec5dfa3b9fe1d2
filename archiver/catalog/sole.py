"""What an engine that lets one run at a time write (SQLite: it holds the archive lock) answers
to the shared-catalog part of the protocol: no shared list, every claim granted, nothing to wait
for, nothing to fence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager

from .rows import Claim, HostRecord, RunRecord, Settled


class SoleRun:
    shared = False

    async def last_run(self) -> RunRecord | None:
        raise NotImplementedError  # the engine's own

    async def remember_given(self, task_ids: Sequence[str], *, now: str) -> None:
        return None  # one run at a time: its own list is all the work there is

    async def claim(self, task_ids: Sequence[str], *, run_id: int, limit: int) -> list[Claim]:
        return [Claim(t) for t in task_ids[:limit]]

    async def renew(self, claim: Claim) -> bool:
        return True

    async def release(self, claim: Claim) -> None:
        return None

    async def settled(self, task_ids: Collection[str], *, run_id: int) -> Settled:
        return Settled({}, None)

    async def hosts(self) -> list[HostRecord]:
        last = await self.last_run()
        return [HostRecord("", last, 0)] if last is not None else []

    @asynccontextmanager
    async def gallery_lock(self) -> AsyncIterator[None]:
        yield  # the archive lock is held already
