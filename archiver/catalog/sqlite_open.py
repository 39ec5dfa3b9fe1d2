"""Opening the SQLite catalog for a command: where its file is, one run per archive (the lock),
and the copy a bucket archive keeps of it under its prefix.

SQLite allows one writer at a time, so a command that writes holds an exclusive flock on a lock
file for as long as the catalog is open; the kernel drops it when its holder dies, so a killed
run never blocks the next one. A bucket archive's catalog lives on this machine; a machine with
none fetches the copy first, and a command that wrote stores a fresh copy after it ended normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from .. import files, storage
from ..config import BucketUrl, Config
from ..errors import LockedError, NoArchive, StorageError
from .protocol import Access, Catalog
from .sqlite import SqliteCatalog

FILENAME = "catalog.sqlite3"  # in the archive folder; for a bucket, also its copy's key
LOCK = ".runway-archiver.lock"


def catalog_path(config: Config, where: storage.Place) -> Path:
    """The catalog's file: `catalog_path` from the config, or beside the archive's state."""
    return config.catalog_path or where.state_dir / FILENAME


def require(name: str, path: Path) -> None:
    """Refuse a folder (or bucket) that holds no archive, before anything is created in it."""
    if not path.is_file():
        shown = FILENAME if path == Path(name) / FILENAME else str(path)
        raise NoArchive(f"no archive at {name} (no {shown})")


@asynccontextmanager
async def open_sqlite(
    config: Config, access: Access, *, fetch_copy: bool, env: Mapping[str, str]
) -> AsyncIterator[Catalog]:
    """The catalog of `config`'s archive, opened for `access` (see `protocol.Opener`)."""
    where = storage.place(config, env)
    path = catalog_path(config, where)
    bucket = isinstance(config.output_dir, BucketUrl)
    if bucket and fetch_copy:
        await _fetch_copy(config, path, env)
    if access is not Access.CREATE:
        require(where.name, path)
    if access is Access.READ:
        # Reading only: no lock and no write, so a read-only copy or mount can be read.
        catalog = SqliteCatalog.open_readonly(path)
        try:
            yield catalog
        finally:
            catalog.close()
        return
    try:
        where.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{where.state_dir}: {exc.strerror or exc}") from exc
    with hold_lock(where.state_dir):
        catalog = SqliteCatalog.open(path)
        if bucket:
            catalog.keep_copy = lambda written: _store_copy(config, written, env)
        try:
            yield catalog
            await catalog.flush()
        finally:
            catalog.close()


@contextlib.contextmanager
def hold_lock(folder: Path) -> Iterator[Path]:
    """The archive's lock, held exclusively until the block ends; LockedError if a run has it."""
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"{path}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise LockedError(
                f"another run holds the archive lock {path} (pid {holder}); not starting"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


async def _fetch_copy(config: Config, path: Path, env: Mapping[str, str]) -> bool:
    """On a machine with no catalog at `path`, fetch the bucket's copy; whether there was one."""
    if await asyncio.to_thread(path.exists):
        return False  # the usual case asks the store nothing
    temp = path.with_name(f".{path.name}.download")
    try:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        async with storage.open_target(config, env) as target:
            if not await target.get_file(FILENAME, temp):
                return False
        await asyncio.to_thread(os.replace, temp, path)
    except OSError as exc:
        raise files.storage_error(exc, path) from exc
    finally:
        files.discard(temp)
    return True


async def _store_copy(config: Config, catalog: SqliteCatalog, env: Mapping[str, str]) -> None:
    """Store a consistent copy of the catalog under the bucket's prefix."""
    copy = catalog.path.with_name(f".{FILENAME}.copy")
    catalog.snapshot(copy)  # on this thread: the connection belongs to it
    try:
        async with storage.open_target(config, env) as target:
            await target.put_file(copy, FILENAME)
    finally:
        files.discard(copy)
