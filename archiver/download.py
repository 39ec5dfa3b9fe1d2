"""One URL to one part file, hashed while it streams, resumed with Range when the server allows.

The caller verifies the part file and gives it its final name (files.finalize).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from . import http
from .errors import TransferError, TransientError, UrlExpired
from .files import (
    HEAD_BYTES,
    TAIL_BYTES,
    discard,
    file_size,
    hash_file,
    nofollow_opener,
    read_head_tail,
    storage_error,
)
from .retry import RetryPolicy, retrying

READ_CHUNK = 256 * 1024
WRITE_CHUNK = 512 * 1024  # aiofiles costs a thread hop per write: write in large pieces
OVERRUN_MARGIN = 1024 * 1024  # a body this far past fileSize is cut off at once
MIN_RATE = 64 * 1024  # bytes/s a download must keep up on average before we give up
EXPIRED_STATUSES = frozenset({403, 404, 410})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete body on disk under its part name, with what streaming learned about it."""

    part: Path
    size: int
    sha256: str
    content_type: str | None
    head: bytes
    tail: bytes


@dataclass(frozen=True, kw_only=True)
class Downloader:
    session: aiohttp.ClientSession
    limits: http.Limits
    policy: RetryPolicy
    max_bytes: int
    read_timeout: float
    on_bytes: Callable[[int], None] = lambda count: None

    async def fetch(self, url: str, part: Path, *, expected_size: int | None) -> Fetched:
        """Download `url` into `part` (resuming what is there), retrying transient failures."""
        http.parse_url(url)  # refuse file:, data:, ftp: before anything is written
        limit = self.max_bytes
        if expected_size is not None:
            limit = min(limit, expected_size + OVERRUN_MARGIN)
        deadline = self.read_timeout + (expected_size or 0) / MIN_RATE
        try:
            fetched = await retrying(
                lambda: self._attempt(url, part, expected_size, limit, deadline), self.policy
            )
        except (TransientError, UrlExpired):
            raise  # the part file stays: a later attempt or run resumes it
        except BaseException:
            discard(part)
            discard(_etag_path(part))
            raise
        discard(_etag_path(part))
        return fetched

    async def _attempt(
        self, url: str, part: Path, expected: int | None, limit: int, deadline: float
    ) -> Fetched:
        have, etag = _resumable(part)
        headers: dict[str, str] = {}
        if have and etag:
            headers |= {"Range": f"bytes={have}-", "If-Range": etag}
        try:
            # The deadline starts once a slot is ours: queueing is not slowness.
            async with (
                self.limits.slot(self.limits.download),
                asyncio.timeout(deadline),
                http.get(self.session, url, headers=headers) as response,
            ):
                offset = _start_offset(response, part, have, expected)
                return await _stream(response, part, offset, limit, self.on_bytes)
        except TimeoutError as exc:
            raise TransientError(f"{http.redact(url)}: timed out") from exc


def _start_offset(
    response: aiohttp.ClientResponse, part: Path, have: int, expected: int | None
) -> int:
    """Where the body starts in the file: 0 for a whole body, `have` for a valid resume."""
    where = http.redact(response.url)
    status = response.status
    if status in EXPIRED_STATUSES:
        raise UrlExpired(f"{where}: HTTP {status} (signed URL refused)")
    if status == 416:
        # A 416 does not prove the part is complete: drop it and start over.
        discard(part)
        raise TransientError(f"{where}: HTTP 416 to a resume, starting over")
    http.raise_for_transient(response)
    if status == 200:
        return 0
    if status != 206:
        raise TransferError(f"{where}: HTTP {status}")
    start, total = _content_range(response.headers.get("Content-Range"))
    if start != have or (expected is not None and total != expected):
        discard(part)
        raise TransientError(f"{where}: resume answered the wrong range, starting over")
    return have


class _PartWriter:
    """Gathers chunks and appends them to the part file in large pieces, hashing as they come.

    The ETag goes to disk just before the first bytes that a later resume could start from.
    """

    def __init__(
        self, fh: AsyncBufferedIOBase, part: Path, hasher: hashlib._Hash, etag: str | None
    ) -> None:
        self._fh, self._part, self.hasher = fh, part, hasher
        self._etag = etag  # None once it is on disk (or was there already)
        self._pending: list[bytes] = []
        self._size = 0

    async def add(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self._pending.append(chunk)
        self._size += len(chunk)
        if self._size >= WRITE_CHUNK:
            await self.flush(resumable=True)

    async def flush(self, *, resumable: bool) -> None:
        if not self._pending:
            return
        if resumable and self._etag is not None:
            _remember_etag(self._part, self._etag)
            self._etag = None
        data = b"".join(self._pending)  # one copy per piece: growing a bytearray copies per chunk
        self._pending.clear()
        self._size = 0
        await self._fh.write(data)


async def _stream(
    response: aiohttp.ClientResponse,
    part: Path,
    offset: int,
    limit: int,
    on_bytes: Callable[[int], None],
) -> Fetched:
    where = http.redact(response.url)
    announced = response.content_length
    if announced is not None and offset + announced > limit:
        raise TransferError(f"{where}: {offset + announced} bytes announced, more than allowed")
    hasher = await _hash_prefix(part, offset) if offset else hashlib.sha256()
    # A fresh body gets a fresh ETag file, and none at all when it completes in one go;
    # "" (no ETag sent) still removes a stale one. A resumed body keeps the file it has.
    etag = None if offset else (response.headers.get("ETag") or "")
    head = tail = b""
    received = offset
    try:
        async with aiofiles.open(part, "ab" if offset else "wb", opener=nofollow_opener) as fh:
            writer = _PartWriter(fh, part, hasher, etag)
            try:
                async for chunk in http.chunks(response, READ_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise TransferError(f"{where}: body exceeds {limit} bytes, cut off")
                    on_bytes(len(chunk))
                    tail = (tail + chunk[-TAIL_BYTES:])[-TAIL_BYTES:]
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                    await writer.add(chunk)
            except BaseException:
                # Whatever arrived is kept in order, so a later attempt can resume after it.
                await writer.flush(resumable=True)
                raise
            finally:
                await writer.flush(resumable=False)
                await fh.flush()
                await asyncio.to_thread(os.fsync, fh.fileno())
    except OSError as exc:
        raise storage_error(exc, part) from exc
    if announced is not None and received != offset + announced:
        raise TransientError(f"{where}: body cut short at {received} of {offset + announced} bytes")
    if offset or received < TAIL_BYTES:
        head, tail = await asyncio.to_thread(read_head_tail, part)
    return Fetched(part, received, hasher.hexdigest(), response.content_type, head, tail)


def _resumable(part: Path) -> tuple[int, str | None]:
    """Bytes already on disk and the ETag they came with; a part without an ETag starts over."""
    have = file_size(part)
    if have is None:
        discard(part)  # a symlink planted at our temp name is removed, never written through
        return 0, None
    etag = None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        etag = _etag_path(part).read_text("utf-8").strip() or None
    if have and not etag:
        discard(part)
        return 0, None
    return have, etag


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """`bytes START-END/TOTAL` -> (START, TOTAL); None where it does not parse."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    start = span.partition("-")[0]
    return (
        int(start) if start.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


async def _hash_prefix(part: Path, length: int) -> hashlib._Hash:
    """The hash of what an earlier attempt left, so the digest covers the whole file."""
    try:
        hasher, count = await asyncio.to_thread(hash_file, part, length)
    except OSError as exc:
        raise storage_error(exc, part) from exc
    if count != length:
        discard(part)
        raise TransientError(f"{part}: shrank while resuming, starting over")
    return hasher


def _etag_path(part: Path) -> Path:
    return part.with_name(part.name + ".etag")


def _remember_etag(part: Path, etag: str | None) -> None:
    """Kept beside the part file so a resume after a crash can send If-Range."""
    path = _etag_path(part)
    discard(path)  # also whatever was planted there: never written through
    if not etag:
        return
    try:
        with open(path, "w", encoding="utf-8", opener=nofollow_opener) as fh:
            fh.write(etag)
    except OSError as exc:
        raise storage_error(exc, path) from exc
