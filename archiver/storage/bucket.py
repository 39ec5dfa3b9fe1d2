"""The archive as a bucket and prefix: files in flight in a local staging folder, then stored.

A verified staged file goes up as a multipart upload whose parts carry a SHA-256 the store
checks; completing it is atomic, and a HEAD then confirms size and the store's checksum
before the catalog names the object. The calls themselves, and their errors, are s3.py's.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path

from .. import files
from ..bounded import Slots, for_each
from ..config import BucketUrl
from ..errors import TransferError
from ..model import FileSizes
from . import BucketSettings, Stored, size_in
from .parts import Part, Piece, composite_sha256, multipart_etag, part_size, read_part
from .s3 import Bucket

# A rerun over more task folders than this lists the whole prefix once (1,000 keys a page)
# rather than one listing per folder.
WHOLE_LISTING = 200
LISTINGS_AT_ONCE = 8


RUN_FOLDER = "run-"


def _drop_dead_runs(staging: Path) -> None:
    """The staging folders of this machine's runs that are gone (killed): stale."""
    for folder in staging.glob(f"{RUN_FOLDER}*"):
        pid = folder.name.removeprefix(RUN_FOLDER)
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _empty_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def _digests(root: Path) -> dict[str, str]:
    """Key -> sha256 of every file under `root`; dot files (a write's temp names) aside."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
            hasher, _ = files.hash_file(path)
            found[path.relative_to(root).as_posix()] = hasher.hexdigest()
    return found


def _read_digests(path: Path) -> dict[str, str]:
    """What the last publish stored; empty when there is no readable record (send it all)."""
    try:
        found = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


class BucketTarget:
    """Objects under `prefix/` in one bucket, with a local staging folder for files in flight."""

    reads_are_local = False

    def __init__(self, bucket: Bucket, settings: BucketSettings, staging: Path) -> None:
        self._bucket = bucket
        self._settings = settings
        self._staging = staging
        # The gallery is built here, and what was stored of it recorded beside, so a build
        # that changed three files sends three.
        self._mirror = staging.parent / "gallery-mirror"
        self._mirrored = staging.parent / "gallery-mirror.json"
        if not settings.exclusive:  # runs of one machine share the bucket: a folder each
            self._staging = staging / f"{RUN_FOLDER}{os.getpid()}"
        # A part is read into memory only with a slot, into a buffer kept for the next part:
        # uploads hold part_size x parts_in_flight, and fresh 8 MiB blocks do not pile up in
        # the allocator's arenas.
        self._slots = Slots(settings.parts_in_flight)
        self._buffers: list[bytearray] = []
        self.name = bucket.name

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: BucketUrl, settings: BucketSettings, staging: Path
    ) -> AsyncIterator[BucketTarget]:
        async with Bucket.connect(url, settings) as bucket:
            yield cls(bucket, settings, staging)

    # -- the files of a task ---------------------------------------------------------------

    async def cleanup(self) -> int:
        """Under the archive lock nothing is in flight: every staged file and upload is stale.

        Shared by several runs (a PostgreSQL catalog), only this run's staging folder and those
        of runs no longer alive on this machine are emptied, and no upload is aborted: another
        host's may be in flight (a lifecycle rule on the bucket aborts the stale ones).
        """
        if not self._settings.exclusive:
            await asyncio.to_thread(_empty_folder, self._staging)
            await asyncio.to_thread(_drop_dead_runs, self._staging.parent)
            return 0
        await asyncio.to_thread(_empty_folder, self._staging)
        uploads = await self._bucket.uploads()
        for full, upload_id in uploads:
            await self._bucket.abort(full, upload_id)
        return len(uploads)

    async def prepare(self, folder: str) -> None:
        self._bucket.key(folder)  # refuses what is not a folder of ours
        try:
            (self._staging / folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise files.storage_error(exc, self._staging / folder) from exc

    def staged(self, folder: str, name: str) -> Path:
        return self._staging / folder / name

    async def commit(self, staged: Path, key: str, *, sha256: str) -> str:
        checksum = await self._upload(staged, key, sha256)
        files.discard(staged)
        return checksum

    async def keep_rejected(self, staged: Path, key: str) -> str:
        hasher, _ = await asyncio.to_thread(files.hash_file, staged)
        kept = f"{key}{files.REJECTED_SUFFIX}"
        await self.commit(staged, kept, sha256=hasher.hexdigest())
        return kept.rsplit("/", 1)[-1]

    async def write(self, key: str, data: bytes) -> None:
        await self._bucket.put(key, data)

    async def sizes(self, folders: Collection[str]) -> dict[str, dict[str, int]]:
        """One listing per folder, a few at once; past WHOLE_LISTING folders, one of the prefix."""
        wanted = set(folders)
        if len(wanted) > WHOLE_LISTING:
            everything = await self._bucket.listing("")
            return {f: everything.get(f, {}) for f in wanted}
        found: dict[str, dict[str, int]] = {}

        async def one(folder: str) -> None:
            self._bucket.key(folder)  # refuses what is not a folder of ours
            found[folder] = (await self._bucket.listing(folder + "/")).get(folder, {})

        await for_each(sorted(wanted), one, limit=LISTINGS_AT_ONCE)
        return found

    async def changed(self, expected: FileSizes) -> set[str]:
        """One listing per task folder (or of the whole prefix), compared with the catalog."""
        entries = list(expected)
        listed = await self.sizes({key.rpartition("/")[0] for _, key, _ in entries})
        return {
            task_id
            for task_id, key, size in entries
            if (found := size_in(listed, key)) is None or size not in (None, found)
        }

    async def stat(self, key: str) -> Stored | None:
        return await self._bucket.head(key)

    @asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path | None]:
        # In the temp folder, not staging: `verify` takes no lock, and a run empties staging.
        fd, name = tempfile.mkstemp(prefix="runway-archiver-verify-")
        os.close(fd)
        path = Path(name)
        try:
            found = await self._bucket.download(key, path)
            yield path if found else None
        finally:
            files.discard(path)

    async def durable(self, folder: str) -> None:
        return None  # a completed upload is durable when the store answers

    # -- the gallery and whole files ----------------------------------------------------------

    def gallery_root(self) -> Path:
        try:
            self._mirror.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise files.storage_error(exc, self._mirror) from exc
        return self._mirror

    async def publish_gallery(self) -> None:
        """PUT each mirror file whose bytes are not what was stored last; delete what is gone."""
        try:
            now = await asyncio.to_thread(_digests, self._mirror)
        except OSError as exc:
            raise files.storage_error(exc, self._mirror) from exc
        stored = await asyncio.to_thread(_read_digests, self._mirrored)
        changed = sorted(key for key, digest in now.items() if stored.get(key) != digest)

        async def put(key: str) -> None:
            try:
                data = await asyncio.to_thread((self._mirror / key).read_bytes)
            except OSError as exc:
                raise files.storage_error(exc, self._mirror / key) from exc
            await self.write(key, data)

        await for_each(changed, put, limit=LISTINGS_AT_ONCE)
        for key in sorted(stored.keys() - now.keys()):
            await self._bucket.delete(key)
        data = json.dumps(now, sort_keys=True).encode()
        await asyncio.to_thread(files.atomic_write, self._mirrored, data)

    def link(self, key: str) -> str:
        return self._bucket.where(key)

    async def put_file(self, source: Path, key: str) -> None:
        hasher, _ = await asyncio.to_thread(files.hash_file, source)
        await self._upload(source, key, hasher.hexdigest())

    async def get_file(self, key: str, dest: Path) -> bool:
        return await self._bucket.download(key, dest)

    # -- uploads -----------------------------------------------------------------------------

    async def _upload(self, source: Path, key: str, sha256: str) -> str:
        """A multipart upload of `source` to `key`, completed and confirmed, or aborted."""
        try:
            size = (await asyncio.to_thread(source.stat)).st_size
        except OSError as exc:
            raise files.storage_error(exc, source) from exc
        upload_id = await self._bucket.start_upload(key, sha256=sha256)
        try:
            parts, whole = await self._send_parts(source, key, upload_id, size)
            if whole != sha256:
                raise TransferError(f"{self._bucket.where(key)}: staged file changed before upload")
            await self._bucket.complete(key, upload_id, parts)
        except BaseException:
            await self._bucket.abort(self._bucket.key(key), upload_id)
            raise
        return await self._confirm(key, source, size, parts)

    async def _send_parts(
        self, source: Path, key: str, upload_id: str, size: int
    ) -> tuple[list[Part], str]:
        """Read in order (hashing the whole file once), upload at most parts_in_flight at once."""
        each = part_size(size, self._settings.part_size)
        count = max(1, -(-size // each))
        parts: dict[int, Part] = {}
        whole = hashlib.sha256()
        try:
            fh = await asyncio.to_thread(open, source, "rb", opener=files.nofollow_opener)
            with fh:
                async with asyncio.TaskGroup() as group:
                    for number in range(1, count + 1):
                        buffer = await self._buffer(each)
                        try:
                            piece = await asyncio.to_thread(read_part, fh, buffer, each, whole)
                        except BaseException:
                            self._give_back(buffer)
                            raise
                        send = functools.partial(
                            self._send_part, key, upload_id, number, piece, parts
                        )
                        self._slots.start_taken(group, send)
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        except OSError as exc:
            raise files.storage_error(exc, source) from exc
        return [parts[n] for n in sorted(parts)], whole.hexdigest()

    async def _send_part(
        self, key: str, upload_id: str, number: int, piece: Piece, parts: dict[int, Part]
    ) -> None:
        try:
            parts[number] = await self._bucket.send_part(key, upload_id, number, piece)
        finally:
            self._buffers.append(piece.buffer)  # for the next part; its slot is given back next

    async def _buffer(self, size: int) -> bytearray:
        """A free part buffer of at least `size` bytes, waiting for one of the slots."""
        await self._slots.take()
        while self._buffers:
            buffer = self._buffers.pop()
            if len(buffer) >= size:
                return buffer
        return bytearray(size)

    def _give_back(self, buffer: bytearray) -> None:
        """A buffer read into for no upload (the read failed), and its slot."""
        self._buffers.append(buffer)
        self._slots.give_back()

    async def _confirm(self, key: str, source: Path, size: int, sent: list[Part]) -> str:
        """HEAD: the completed object has our size and the checksum our parts imply."""
        where = self._bucket.where(key)
        stored = await self._bucket.head(key)
        if stored is None:
            raise TransferError(f"{where}: not there after its upload completed")
        expected = composite_sha256(sent)
        if stored.checksum is not None and stored.checksum.startswith("etag:"):
            each = part_size(size, self._settings.part_size)
            expected = await asyncio.to_thread(multipart_etag, source, each)
        if stored.size != size or stored.checksum != expected:
            await self._bucket.delete(key)
            found = f"{stored.size} bytes, {stored.checksum}"
            raise TransferError(f"{where}: stored object differs from the upload ({found})")
        return stored.checksum
