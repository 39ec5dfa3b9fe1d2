"""One URL to one part file, hashed while it streams, resumed with Range when the server allows.

A resume is trusted only when the 206 answer carries the same validators (strong ETag, else
Last-Modified) as the bytes already on disk: otherwise it starts from zero, so no file is ever
two bodies joined. The caller makes the part file durable (partfile.synced_while, during the probe),
verifies it and gives it its final name (files.finalize).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import http
from .errors import (
    AssetGone,
    StorageError,
    TaskError,
    TooLarge,
    TransferError,
    TransientError,
    UrlExpired,
)
from .files import (
    HEAD_BYTES,
    TAIL_BYTES,
    discard,
    discard_part,
    etag_path,
    file_size,
    hash_file,
    nofollow_opener,
    read_head_tail,
    storage_error,
)
from .partfile import PartWriter, Validators
from .retry import RetryPolicy, retrying
from .scrub import redact

OVERRUN_MARGIN = 1024 * 1024  # a body this far past fileSize is cut off at once
MIN_RATE = 64 * 1024  # bytes/s a download must keep up on average before we give up
EXPIRED_STATUSES = frozenset({403, 404, 410})
GONE_STATUSES = frozenset({404, 410})  # expired, or no longer there: a fresh URL tells


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete body written under its part name (not yet fsynced: its caller syncs it while
    the probe reads it, and names it only once both are done), with what streaming learned."""

    part: Path
    size: int
    sha256: str
    content_type: str | None
    head: bytes
    tail: bytes


@dataclass(frozen=True, kw_only=True)
class Downloader:
    session: http.Session
    limits: http.Limits
    policy: RetryPolicy
    max_bytes: int
    read_timeout: float
    on_bytes: Callable[[int], None] = lambda count: None

    async def fetch(
        self,
        url: str,
        part: Path,
        *,
        expected_size: int | None,
        max_bytes: int | None = None,
        guard: Callable[[], None] = lambda: None,
    ) -> Fetched:
        """Download `url` into `part` (resuming what is there), retrying transient failures.

        `max_bytes` lowers the downloader's own size cap for this file (inputs have their own);
        `guard` is called before every write to `part` and may refuse it by raising (a claim on
        the task that may have been lost: leases.Lease.guard).
        """
        http.parse_url(url)  # refuse file:, data:, ftp: before anything is written
        limit = self.max_bytes if max_bytes is None else min(self.max_bytes, max_bytes)
        if expected_size is not None:
            limit = min(limit, expected_size + OVERRUN_MARGIN)
        deadline = self.read_timeout + (expected_size or 0) / MIN_RATE
        try:
            fetched = await retrying(
                lambda: self._attempt(url, part, expected_size, limit, deadline, guard),
                self.policy,
            )
        except BaseException as exc:
            # Only bytes a later resume can prove stay; `_resumable` drops the rest.
            if not _resumes_later(exc) or _resumable(part)[0] == 0:
                _start_over(part)
            raise
        discard(etag_path(part))
        return fetched

    async def _attempt(
        self,
        url: str,
        part: Path,
        expected: int | None,
        limit: int,
        deadline: float,
        guard: Callable[[], None],
    ) -> Fetched:
        have, saved = _resumable(part)
        headers: dict[str, str] = {}
        if have and saved is not None and saved.if_range:
            headers |= {"Range": f"bytes={have}-", "If-Range": saved.if_range}
        try:
            # The deadline starts once a slot is ours: queueing is not slowness.
            async with (
                self.limits.slot(self.limits.download),
                asyncio.timeout(deadline) as clock,
                http.get(self.session, url, headers=headers) as response,
            ):
                offset = _start_offset(response, part, have, saved, expected)
                if expected is None and response.content_length:
                    # Unknown beforehand (previews, inputs): the announced length sets the pace.
                    extra = response.content_length / MIN_RATE
                    clock.reschedule(asyncio.get_running_loop().time() + deadline + extra)
                return await _stream(response, part, offset, limit, self.on_bytes, guard)
        except TimeoutError as exc:
            raise TransientError(f"{redact(url)}: timed out") from exc


def _start_offset(
    response: http.Response,
    part: Path,
    have: int,
    saved: Validators | None,
    expected: int | None,
) -> int:
    """Where the body starts in the file: 0 for a whole body, `have` for a valid resume."""
    where = redact(response.url)
    status = response.status
    if status in GONE_STATUSES:
        raise AssetGone(f"{where}: HTTP {status} (signed URL refused)", status=status)
    if status in EXPIRED_STATUSES:
        raise UrlExpired(f"{where}: HTTP {status} (signed URL refused)")
    if status == 416:
        # A 416 does not prove the part is complete: drop it and start over.
        discard(part)
        raise TransientError(f"{where}: HTTP 416 to a resume, starting over")
    response.raise_for_transient()
    if status == 200:
        return 0
    if status != 206:
        raise TransferError(f"{where}: HTTP {status}")
    start, total = _content_range(response.headers.get("Content-Range"))
    if start != have or (expected is not None and total != expected):
        _start_over(part)
        raise TransientError(f"{where}: resume answered the wrong range, starting over")
    if saved is None or not saved.same_body(Validators.of(response.headers)):
        # A server that ignored If-Range: these bytes belong to another version of the file.
        _start_over(part)
        raise TransientError(f"{where}: resume answered another version of the file, starting over")
    return have


def _resumes_later(exc: BaseException) -> bool:
    """Keep the part file unless the body itself was refused or the disk failed.

    A transient failure, a refused URL, a signal or a run-ending error (401, unreachable API)
    says nothing against the bytes on disk: a later attempt or run resumes after them.
    """
    refused = isinstance(exc, TaskError | StorageError)
    return not refused or isinstance(exc, TransientError | UrlExpired)


def _start_over(part: Path) -> None:
    discard_part(part)


async def _stream(
    response: http.Response,
    part: Path,
    offset: int,
    limit: int,
    on_bytes: Callable[[int], None],
    guard: Callable[[], None],
) -> Fetched:
    where = redact(response.url)
    announced = response.content_length
    if announced is not None and offset + announced > limit:
        raise TooLarge(f"{where}: {offset + announced} bytes announced, more than allowed")
    hasher = await _hash_prefix(part, offset) if offset else hashlib.sha256()
    # A fresh body gets fresh validators on disk (none at all when it completes in one go, and
    # none that cannot prove a resume: then a stale file is removed). A resume keeps its own.
    validators = None if offset else Validators.of(response.headers)
    head, tail, received = b"", b"", offset
    try:
        mode = "ab" if offset else "wb"
        fh = await asyncio.to_thread(open, part, mode, buffering=0, opener=nofollow_opener)
        with fh:
            writer = PartWriter(fh, part, hasher, validators, guard)
            try:
                async for chunk in response.pieces():
                    received += len(chunk)
                    if received > limit:
                        raise TooLarge(f"{where}: body exceeds {limit} bytes, cut off")
                    on_bytes(len(chunk))
                    tail = (tail + chunk[-TAIL_BYTES:])[-TAIL_BYTES:]
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                    await writer.add(chunk)
            except BaseException:
                # Whatever arrived is kept, in order and durable, for a later attempt to resume.
                await writer.flush(resumable=True)
                await writer.sync()
                raise
            await writer.flush(resumable=False)
            # A whole body is synced by the caller, while it is probed (partfile.synced_while).
            if short := announced is not None and received != offset + announced:
                await writer.sync()  # kept for a resume: durable
    except OSError as exc:
        # Named by its folder: the part file itself is removed when the disk fails.
        raise StorageError(f"{part.parent}: {exc.strerror or exc} (writing {part.name})") from exc
    if short:
        expected = offset + (announced or 0)
        raise TransientError(f"{where}: body cut short at {received} of {expected} bytes")
    if offset or received < TAIL_BYTES:
        head, tail = await asyncio.to_thread(read_head_tail, part)
    return Fetched(part, received, hasher.hexdigest(), response.content_type, head, tail)


def _resumable(part: Path) -> tuple[int, Validators | None]:
    """Bytes already on disk and the validators they came with; without usable ones, zero."""
    have = file_size(part)
    if have is None:
        discard(part)  # a symlink planted at our temp name is removed, never written through
        return 0, None
    saved = None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        saved = Validators.load(etag_path(part).read_text("utf-8"))
    if have and saved is None:
        _start_over(part)
        return 0, None
    return have, saved


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
        raise TransientError(f"{part.name} shrank while resuming; starting over")
    return hasher
