"""Names and writes inside the archive: sanitised names, no symlinks followed, files appear whole.

Every OSError met here becomes a StorageError naming the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from .errors import StorageError, UnsafePath
from .model import Task
from .tasklist import UUID

ALLOWED_EXTENSIONS = frozenset(
    {"mp4", "m4v", "mov", "webm", "mkv", "jpg", "jpeg", "png", "webp", "gif"}
    | {"mp3", "m4a", "aac", "wav", "ogg", "flac"}  # audio inputs
)
CONTENT_TYPES = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}
HASH_BLOCK = 1024 * 1024
# An fsync waits on the disk for as long as it takes (seconds, once gigabytes are queued): those
# calls get their own few threads, never the loop's shared pool, where they would hold up every
# download's writes behind them.
_SYNCS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fsync")
P = ParamSpec("P")
T = TypeVar("T")
HEAD_BYTES = 256 * 1024  # enough for magic bytes and image headers
TAIL_BYTES = 64  # enough for any image's end marker
PART_SUFFIX = ".part"
REJECTED_SUFFIX = ".rejected"
_UNSAFE = re.compile(r"[^\w.+-]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def slug(text: str | None, *, limit: int = 80, fallback: str = "untitled") -> str:
    """One safe path component: no separators, controls or leading dots; at most `limit` bytes."""
    text = unicodedata.normalize("NFC", text or "")
    text = _UNSAFE.sub("-", text).strip("-._")
    encoded = text.encode("utf-8")[:limit]
    text = encoded.decode("utf-8", errors="ignore").strip("-._")
    return text or fallback


def task_dir_name(task: Task) -> str:
    """Readable and unique: creation date, a slug of the name, and the task's uuid."""
    date = (task.created_at or "")[:10]
    if not _DATE.fullmatch(date):
        date = "undated"
    # The uuid is trusted only if it is the one in the task id we asked for.
    if task.id and UUID.fullmatch(task.id) and task.task_id.endswith(task.id):
        unique = task.id.lower()
    else:
        unique = hashlib.sha256(task.task_id.encode()).hexdigest()[:16]
    title = slug(task.name, limit=60, fallback="")
    return "_".join(part for part in (date, title, unique) if part)


def unique_stem(wanted: str, used: set[str]) -> str:
    stem, n = wanted, 1
    while stem.casefold() in used:
        n += 1
        stem = f"{wanted}-{n}"
    used.add(stem.casefold())
    return stem


def choose_extension(sniffed: str | None, url_path: str, content_type: str | None) -> str:
    """Our choice from an allow-list: the bytes first, then the URL, then the server's label."""
    if sniffed:
        return sniffed
    _, dot, suffix = url_path.rsplit("/", 1)[-1].rpartition(".")
    suffix = suffix.lower() if dot else ""
    if suffix in ALLOWED_EXTENSIONS:
        return "jpg" if suffix == "jpeg" else suffix
    mime = (content_type or "").split(";")[0].strip().lower()
    return CONTENT_TYPES.get(mime, "bin")


def ensure_dir(root: Path, name: str) -> Path:
    """The folder `root/name`, made if missing; a symlink or file planted there is refused."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UnsafePath(f"{root / name}: refused folder name")
    path = root / name
    try:
        st = path.lstat()
    except FileNotFoundError:
        try:
            path.mkdir()
        except FileExistsError:
            pass  # raced with something; judged below like any existing entry
        except OSError as exc:
            raise storage_error(exc, path) from exc
        st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):  # lstat: a symlink is never a folder here
        raise UnsafePath(f"{path}: exists and is not a plain folder; not touching it")
    return path


def nofollow_opener(path: str, flags: int) -> int:
    """For open(): never write through a symlink planted at the target."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


def atomic_write(path: Path, data: bytes | Iterable[bytes], *, sync_folder: bool = True) -> None:
    """Temp name, fsync, rename, fsync the folder: readers see the old file or the new one.

    `data`: the bytes, or pieces of them written in turn (a large file never held whole);
    sync_folder=False leaves the folder's fsync to the caller, once for many files.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    discard(tmp)  # the temp name is ours: whatever sits there (a planted link) goes
    try:
        with open(tmp, "wb", opener=nofollow_opener) as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                fh.writelines(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if sync_folder:
            fsync_dir(path.parent)
    except OSError as exc:
        discard(tmp)
        raise storage_error(exc, path) from exc


def finalize(part: Path, final: Path) -> None:
    """Give a verified (and fsynced) file its final name.

    The rename is durable once its folder is fsynced: done once per task, by the sidecar's
    atomic_write, before any catalog row names the file.
    """
    try:
        os.replace(part, final)
    except OSError as exc:
        raise storage_error(exc, final) from exc


def reject(part: Path, final: Path) -> Path:
    """Keep a file that failed verification for inspection, under a name no one takes as final."""
    kept = final.with_name(final.name + REJECTED_SUFFIX)
    try:
        os.replace(part, kept)
    except OSError as exc:
        raise storage_error(exc, kept) from exc
    return kept


def hash_file(path: Path, length: int | None = None) -> tuple[hashlib._Hash, int]:
    """sha256 over a file's first `length` bytes (all by default) and the count read; blocking."""
    hasher = hashlib.sha256()
    count = 0
    with open(path, "rb", opener=_read_nofollow) as fh:
        while length is None or count < length:
            want = HASH_BLOCK if length is None else min(HASH_BLOCK, length - count)
            block = fh.read(want)
            if not block:
                break
            hasher.update(block)
            count += len(block)
    return hasher, count


def read_head_tail(
    path: Path, head: int = HEAD_BYTES, tail: int = TAIL_BYTES
) -> tuple[bytes, bytes]:
    with open(path, "rb", opener=_read_nofollow) as fh:
        first = fh.read(head)
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - tail))
        return first, fh.read()


def _read_nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


async def syncing(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call` (blocking, and waiting on fsync) off the event loop, in the threads kept for it;
    cancelled, only once it has ended (`finishing`)."""
    loop = asyncio.get_running_loop()
    return await finishing(loop.run_in_executor(_SYNCS, functools.partial(call, *args, **kwargs)))


async def finishing(future: asyncio.Future[T]) -> T:
    """The result of `future`, a call running on a thread. Cancelled, it still waits for the
    call to end before the cancellation goes on: a thread cannot be stopped, and a file it is
    writing must not outlive the caller that judges or cleans up after it (a signal mid-write;
    a failed gallery shard cancelling the others in flight)."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # a failure under a cancellation: the cancellation ends it
        raise


def sync_file(path: Path) -> None:
    """fsync a written file by its name (a fresh descriptor flushes the same inode); blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def etag_path(part: Path) -> Path:
    """Where a part file's validators are kept (what a resume must prove)."""
    return part.with_name(part.name + ".etag")


def discard_part(part: Path) -> None:
    """A part file and its validators, gone."""
    discard(part)
    discard(etag_path(part))


def adopt(part: Path, stem: str) -> None:
    """Before a download to `part` (`STEM.~TOKEN.part`, this claim's temp name): take over the
    largest temp file an earlier claim of the same task left for `stem`, with its validators,
    so the download resumes after its bytes; the rest are removed.

    An earlier claim's run writes nothing once its lease may have expired (leases.Lease.guard),
    so whatever it left is still; renaming is atomic, and its bytes are proven by the resume
    rules as any others.
    """
    if file_size(part) is not None:
        return  # this claim's own file: resumed as it is
    folder = part.parent
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return
    left = [
        folder / n
        for n in names
        if n != part.name
        and n.endswith(PART_SUFFIX)
        and (n == f"{stem}{PART_SUFFIX}" or (n.startswith(f"{stem}.~") and n.count(".~") == 1))
    ]
    left.sort(key=lambda p: file_size(p) or 0)
    for older in left[:-1]:
        discard_part(older)
    if left:
        with contextlib.suppress(OSError):
            os.replace(etag_path(left[-1]), etag_path(part))
        with contextlib.suppress(OSError):
            os.replace(left[-1], part)


def file_size(path: Path) -> int | None:
    """Size of a plain file (not through a symlink), None when absent."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, path) from exc
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def storage_error(exc: OSError, path: Path) -> StorageError:
    return StorageError(f"{path}: {exc.strerror or exc}")
