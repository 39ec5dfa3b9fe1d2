"""The worker process of a local archive's rerun check (diskcheck.py), as the run drives it:
started at the first big batch, fed one batch at a time, killed with the target.

A batch too small to be worth a hop, or any batch once the worker cannot start or has died, is
checked in this process instead: a damaged task is never called intact for want of a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

from ..model import FileSizes
from . import diskcheck

# Packed bytes from which a batch goes to the worker (some 100 files): below, the round trip
# costs more than the stats.
OFFLOAD_FROM = 20_000


class DiskChecker:
    """Checks batches of expected files against the folder `root`, in a worker process where
    it pays."""

    def __init__(self, root: Path, *, offload_from: int | None = None) -> None:
        self.root = root
        self.offload_from = OFFLOAD_FROM if offload_from is None else offload_from
        self._folder = os.fsencode(root)
        self._lock = asyncio.Lock()  # one request at a time: the shared file holds one batch
        self._proc: asyncio.subprocess.Process | None = None
        self._shared = -1
        self._failed = False  # could not start, or died: every batch is checked here

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs (tests stop it to see the run carry on)."""
        return self._proc.pid if self._proc is not None else None

    async def changed(self, sizes: FileSizes) -> set[str]:
        """The task ids of `sizes` whose files the folder no longer holds as recorded."""
        found = None
        if len(sizes.packed) >= self.offload_from and not self._failed:
            found = await self._ask(sizes.packed)
        if found is None:
            found = diskcheck.changed(self._folder, sizes.packed)
        return {task_id.decode("utf-8", "surrogateescape") for task_id in found}

    async def _ask(self, packed: bytes) -> set[bytes] | None:
        """The worker's answer for `packed`; None when there is no worker to give one."""
        async with self._lock:
            proc = self._proc or await self._start()
            if proc is None or proc.stdin is None or proc.stdout is None:
                return None
            try:
                os.pwrite(self._shared, packed, 0)
                proc.stdin.write(len(packed).to_bytes(diskcheck.HEAD, "little"))
                await proc.stdin.drain()
                head = await proc.stdout.readexactly(diskcheck.HEAD)
                answer = await proc.stdout.readexactly(int.from_bytes(head, "little"))
            except (OSError, asyncio.IncompleteReadError):
                await self._give_up()
                return None
            except BaseException:  # stopped mid-request: its answer would answer the next one
                await self._give_up()
                raise
        return set(answer.split(b"\0")[:-1])

    async def _start(self) -> asyncio.subprocess.Process | None:
        if not hasattr(os, "memfd_create"):  # Linux only: elsewhere the check stays here
            self._failed = True
            return None
        self._shared = os.memfd_create("runway-archiver-diskcheck")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", diskcheck.__file__, str(self.root),
                str(self._shared), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, pass_fds=(self._shared,),
            )  # fmt: skip
        except OSError:
            await self._give_up()
        return self._proc

    async def _give_up(self) -> None:
        self._failed = True
        await self.close()

    async def close(self) -> None:
        """Stop the worker (it only reads: nothing of it needs finishing) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._shared >= 0:
            os.close(self._shared)
            self._shared = -1
