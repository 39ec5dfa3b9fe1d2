"""A part file as it is written: the body's pieces hashed and appended off the event loop, the
validators a resume needs kept beside it, and its fsync overlapped with the probe that reads it.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from .files import (
    discard,
    etag_path,
    finishing,
    nofollow_opener,
    storage_error,
    sync_file,
    syncing,
)

WRITE_CHUNK = 512 * 1024  # a thread hop per write: the pieces of half a MiB at once
MAX_PIECES = 256  # and never more pieces than that in one write (one writev each)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Validators:
    """What identifies one version of a body: its ETag, else its Last-Modified date."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Validators:
        return cls(headers.get("ETag") or None, headers.get("Last-Modified") or None)

    @property
    def if_range(self) -> str | None:
        """The If-Range value, or None when a resume cannot be proven (RFC 9110 13.1.5)."""
        if self.etag is not None:
            return None if self.etag.startswith("W/") else self.etag  # weak: not for ranges
        return self.last_modified

    def same_body(self, answer: Validators) -> bool:
        """Does a 206 answer continue the body these validators came with?"""
        if self.etag is not None:
            return answer.etag == self.etag and not self.etag.startswith("W/")
        return answer.etag is None and answer.last_modified == self.last_modified

    def dump(self) -> str:
        return json.dumps({"etag": self.etag, "last_modified": self.last_modified})

    @classmethod
    def load(cls, text: str) -> Validators | None:
        try:
            data = json.loads(text)
            found = cls(data.get("etag"), data.get("last_modified"))
        except (ValueError, AttributeError):
            return None
        ok = all(v is None or isinstance(v, str) for v in (found.etag, found.last_modified))
        return found if ok and found.if_range else None


class PartWriter:
    """Gathers the pieces of the body as they arrive and appends them to the part file about
    half a MiB at a time, hashed and written (one writev, never joined) in a worker thread:
    one hop a write; both release the GIL, so the event loop keeps receiving meanwhile.

    The validators go to disk just before the first bytes that a later resume could start from.
    """

    def __init__(
        self,
        fh: IO[bytes],
        part: Path,
        hasher: hashlib._Hash,
        validators: Validators | None,
        guard: Callable[[], None],
    ) -> None:
        self._fh, self._part, self.hasher = fh, part, hasher
        self._guard = guard
        self._validators = validators  # None once on disk (or there already, for a resume)
        self._pending: list[bytes] = []
        self._size = 0

    async def add(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._size += len(chunk)
        if self._size >= WRITE_CHUNK or len(self._pending) >= MAX_PIECES:
            await self.flush(resumable=True)

    async def flush(self, *, resumable: bool) -> None:
        if not self._pending:
            return
        self._guard()
        first = None
        if resumable and self._validators is not None:
            first, self._validators = self._validators, None
        pieces, self._pending, self._size = self._pending, [], 0
        # A signal does not stop the thread: its bytes land before the file is closed and
        # judged, or a part whose validators are on disk is found empty and dropped (and the
        # write goes on into a closed or removed file).
        await finishing(asyncio.ensure_future(asyncio.to_thread(self._put, pieces, first)))

    async def sync(self) -> None:
        """What was written so far made durable (a part kept for a resume)."""
        await syncing(os.fsync, self._fh.fileno())

    def _put(self, pieces: list[bytes], validators: Validators | None) -> None:
        if validators is not None:  # in this hop too: a file made and written is no cheap call
            remember(self._part, validators)
        for piece in pieces:
            self.hasher.update(piece)
        write_all(self._fh.fileno(), pieces)


def write_all(fd: int, pieces: list[bytes]) -> None:
    """All of `pieces`, in order, with as few system calls as the kernel allows (no copy)."""
    views = [memoryview(piece) for piece in pieces]
    while views:
        written = os.writev(fd, views)
        if not written:
            raise OSError(errno.EIO, "the disk took none of the bytes written")
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]


async def synced_while(part: Path, check: Awaitable[T]) -> T:
    """`check` (the probe, reading the page cache) while `part` is fsynced in a worker thread;
    returns (or raises) once both are done, so nothing is named before it is durable.

    The fsync waits on the disk, not the CPU: overlapped, it costs no wall time of its own.
    """
    synced = asyncio.ensure_future(syncing(sync_file, part))
    try:
        return await check
    finally:
        await synced  # a failed disk (StorageError) ends the run, whatever the check said


def remember(part: Path, validators: Validators) -> None:
    """Kept beside the part file so a resume after a crash can send If-Range and check the 206."""
    path = etag_path(part)
    discard(path)  # also whatever was planted there: never written through
    if not validators.if_range:
        return
    try:
        with open(path, "w", encoding="utf-8", opener=nofollow_opener) as fh:
            fh.write(validators.dump())
    except OSError as exc:
        raise storage_error(exc, path) from exc
