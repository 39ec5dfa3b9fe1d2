"""The archive as a folder on disk: a file in flight is the `.part` beside its final name.

A verified part is renamed into place and its folder fsynced once per task; nothing is written
outside the archive folder and no symlink in it is followed (see files.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path

from .. import files
from ..errors import UnsafePath
from ..model import FileSizes
from . import Stored
from .checker import DiskChecker


class FolderTarget:
    """Today's archive folder behind the Target interface."""

    reads_are_local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)
        self.checker = DiskChecker(root)

    async def close(self) -> None:
        """Stop the rerun check's worker process, if one was started."""
        await self.checker.close()

    async def cleanup(self) -> int:
        # A .part left by an interrupted run is where the next download resumes: it stays.
        return 0

    async def prepare(self, folder: str) -> None:
        self._folder(folder.split("/"))

    def _folder(self, names: list[str]) -> Path:
        """Each level made and judged as a task folder is: no symlink or file followed."""
        parent = self.root
        for name in names:
            parent = files.ensure_dir(parent, name)
        return parent

    def staged(self, folder: str, name: str) -> Path:
        return self.root / folder / name

    async def commit(self, staged: Path, key: str, *, sha256: str) -> str | None:
        await asyncio.to_thread(files.finalize, staged, self._path(key))
        return None

    async def keep_rejected(self, staged: Path, key: str) -> str:
        kept = await asyncio.to_thread(files.reject, staged, self._path(key))
        return kept.name

    async def write(self, key: str, data: bytes) -> None:
        await files.syncing(self._write, key, data)

    def _write(self, key: str, data: bytes) -> None:
        self._folder(key.split("/")[:-1])
        files.atomic_write(self._path(key), data)

    async def sizes(self, folders: Collection[str]) -> dict[str, dict[str, int]]:
        # On this thread: a rerun lists thousands of small folders, each far cheaper than a hop
        # to a worker thread.
        return {folder: self._sizes(folder) for folder in folders}

    async def changed(self, expected: FileSizes) -> set[str]:
        # A big batch in a worker process: the rerun's lstats (5 per task) take the second core
        # while this one looks up the next batch in the catalog.
        return await self.checker.changed(expected)

    def _sizes(self, folder: str) -> dict[str, int]:
        found: dict[str, int] = {}
        try:
            entries = list(os.scandir(self._path(folder)))
        except (FileNotFoundError, NotADirectoryError):
            return found
        except OSError as exc:
            raise files.storage_error(exc, self._path(folder)) from exc
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                found[entry.name] = st.st_size
        return found

    async def stat(self, key: str) -> Stored | None:
        size = files.file_size(self._path(key))
        return None if size is None else Stored(size, None)

    @asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path | None]:
        path = self._path(key)
        yield path if files.file_size(path) is not None else None

    async def durable(self, folder: str) -> None:
        await files.syncing(files.fsync_dir, self._path(folder))

    def gallery_root(self) -> Path:
        return self.root

    async def publish_gallery(self) -> None:
        return None  # written in place

    def link(self, key: str) -> str:
        return self._path(key).resolve().as_uri()

    async def put_file(self, source: Path, key: str) -> None:
        data = await asyncio.to_thread(source.read_bytes)
        await self.write(key, data)

    async def get_file(self, key: str, dest: Path) -> bool:
        path = self._path(key)
        if files.file_size(path) is None:
            return False
        await asyncio.to_thread(shutil.copyfile, path, dest)
        return True

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise UnsafePath(f"{self.root / key}: refused path")
        return self.root.joinpath(*parts)
