"""The archive as an S3 bucket and prefix (AWS, or any S3-compatible store), via aiobotocore.

The only module that imports the S3 client; its errors become the archiver's here, once.
A file is staged in a local folder that holds only files in flight, uploaded as a multipart
upload whose parts carry a SHA-256 the store checks, then confirmed with HEAD (size and the
store's checksum) before anything names it. Retries and 503 SlowDown backoff are botocore's own
("standard" retry mode), not a loop of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiobotocore.session
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from .. import __version__, files
from ..bounded import for_each
from ..config import BucketUrl
from ..errors import ArchiverError, StorageError, StoreAccessError, TransferError, UnsafePath
from . import CATALOG_KEY, BucketSettings, Expected, Stored, size_in
from .parts import (
    Part,
    Piece,
    b64,
    composite_sha256,
    content_type,
    multipart_etag,
    part_size,
    read_part,
    stored_checksum,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from ..catalog import Catalog

# A rerun over more task folders than this lists the whole prefix once (1,000 keys a page)
# rather than one listing per folder.
WHOLE_LISTING = 200
LISTINGS_AT_ONCE = 8
READ_CHUNK = 1024 * 1024
_REFUSED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_CREDENTIALS_HINT = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"


def _error(exc: Exception, where: str) -> ArchiverError:
    """One S3 client error as the archiver's: refused access is a usage error (exit 2)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _REFUSED or status == 403:
            reason = f"the store refused access ({code or status})"
            return StoreAccessError(f"{where}: {reason}; {_CREDENTIALS_HINT}")
        if code == "NoSuchBucket":
            return StoreAccessError(f"{where}: no such bucket")
        message = str(error.get("Message") or "").strip().splitlines()
        detail = f": {message[0]}" if message else ""
        return StorageError(f"{where}: {code or 'error'} (HTTP {status}){detail}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StoreAccessError(f"{where}: no usable AWS credentials; {_CREDENTIALS_HINT}")
    if isinstance(exc, ProfileNotFound):
        return StoreAccessError(f"{where}: AWS_PROFILE names a profile that does not exist")
    if isinstance(exc, ConnectionError):
        return StorageError(f"{where}: cannot reach the store ({type(exc).__name__})")
    return StorageError(f"{where}: {type(exc).__name__}")


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _error(exc, where) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _empty_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


class BucketTarget:
    """Objects under `prefix/` in one bucket, with a local staging folder for files in flight."""

    reads_are_local = False

    def __init__(
        self, client: S3Client, url: BucketUrl, settings: BucketSettings, staging: Path
    ) -> None:
        self._client = client
        self._bucket = url.bucket
        self._prefix = f"{url.prefix}/" if url.prefix else ""
        self._settings = settings
        self._staging = staging
        # A part is read into memory only with a slot, into a buffer kept for the next part:
        # uploads hold part_size x parts_in_flight, and fresh 8 MiB blocks do not pile up in
        # the allocator's arenas.
        self._slots = asyncio.Semaphore(settings.parts_in_flight)
        self._buffers: list[bytearray] = []
        self.name = str(url)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: BucketUrl, settings: BucketSettings, staging: Path
    ) -> AsyncIterator[BucketTarget]:
        """A client for this event loop, its access checked with one listing before it is used."""
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": settings.attempts},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_pool_connections=settings.parts_in_flight + 8,
            # Our own SHA-256 goes with every part; no second checksum computed by the client.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra=f"runway-archiver/{__version__}",
        )
        session = _session()
        async with AsyncExitStack() as stack:
            with _translated(str(url)):
                client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=settings.endpoint_url,
                        region_name=settings.region,
                        config=config,
                    )
                )
            target = cls(client, url, settings, staging)
            await target._check_access()
            yield target

    async def _check_access(self) -> None:
        """Cheap and early: wrong credentials or a missing bucket stop the run before a download."""
        with _translated(self.name):
            await self._client.list_objects_v2(Bucket=self._bucket, Prefix=self._prefix, MaxKeys=1)

    def _key(self, key: str) -> str:
        parts = key.split("/")
        if any(p in ("", ".", "..") or not p.isprintable() for p in parts):
            raise UnsafePath(f"{self._where(key)}: refused key")
        return self._prefix + key

    def _where(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._prefix}{key}"

    # -- the files of a task ---------------------------------------------------------------

    async def cleanup(self) -> int:
        """Under the archive lock nothing is in flight: every staged file and upload is stale."""
        await asyncio.to_thread(_empty_folder, self._staging)
        aborted = 0
        with _translated(self.name):
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            )
            async for page in pages:
                for upload in page.get("Uploads", []):
                    await self._abort(upload["Key"], upload["UploadId"])
                    aborted += 1
        return aborted

    async def prepare(self, folder: str) -> None:
        self._key(folder)
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
        """One PUT: atomic in S3, its SHA-256 checked by the store."""
        with _translated(self._where(key)):
            await self._client.put_object(
                Bucket=self._bucket,
                Key=self._key(key),
                Body=data,
                ChecksumSHA256=b64(hashlib.sha256(data).digest()),
                ContentType=content_type(key),
            )

    async def sizes(self, folders: Collection[str]) -> dict[str, dict[str, int]]:
        """One listing per folder, a few at once; past WHOLE_LISTING folders, one of the prefix."""
        wanted = set(folders)
        if len(wanted) > WHOLE_LISTING:
            everything = await self._list("")
            return {f: everything.get(f, {}) for f in wanted}
        found: dict[str, dict[str, int]] = {}

        async def one(folder: str) -> None:
            self._key(folder)  # refuses what is not a folder of ours
            found[folder] = (await self._list(folder + "/")).get(folder, {})

        await for_each(sorted(wanted), one, limit=LISTINGS_AT_ONCE)
        return found

    async def changed(self, expected: Expected) -> set[str]:
        """One listing per task folder (or of the whole prefix), compared with the catalog."""
        tasks = list(expected)
        listed = await self.sizes({key.rpartition("/")[0] for _, keys in tasks for key, _ in keys})
        return {
            task_id
            for task_id, keys in tasks
            if any(
                (found := size_in(listed, key)) is None or size not in (None, found)
                for key, size in keys
            )
        }

    async def _list(self, below: str) -> dict[str, dict[str, int]]:
        """Folder -> name -> size of the objects under `below` (relative to the prefix)."""
        found: dict[str, dict[str, int]] = {}
        with _translated(self._where(below)):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix + below
            )
            async for page in pages:
                for obj in page.get("Contents", []):
                    folder, _, name = obj["Key"][len(self._prefix) :].rpartition("/")
                    found.setdefault(folder, {})[name] = obj["Size"]
        return found

    async def stat(self, key: str) -> Stored | None:
        try:
            head = await self._client.head_object(
                Bucket=self._bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise _error(exc, self._where(key)) from exc
        except BotoCoreError as exc:
            raise _error(exc, self._where(key)) from exc
        return Stored(head["ContentLength"], stored_checksum(head))

    @asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path | None]:
        # In the temp folder, not staging: `verify` takes no lock, and a run empties staging.
        fd, name = tempfile.mkstemp(prefix="runway-archiver-verify-")
        os.close(fd)
        path = Path(name)
        try:
            found = await self._download(key, path)
            yield path if found else None
        finally:
            files.discard(path)

    async def durable(self, folder: str) -> None:
        return None  # a completed upload is durable when the store answers

    # -- the catalog copy --------------------------------------------------------------------

    async def restore_catalog(self, path: Path) -> bool:
        temp = path.with_name(f".{path.name}.download")
        try:
            if await asyncio.to_thread(path.exists):
                return False
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            if not await self._download(CATALOG_KEY, temp):
                return False
            await asyncio.to_thread(os.replace, temp, path)
        except OSError as exc:
            raise files.storage_error(exc, path) from exc
        finally:
            files.discard(temp)
        return True

    async def publish_catalog(self, catalog: Catalog) -> None:
        copy = self._staging / f".{CATALOG_KEY}.copy"
        catalog.snapshot(copy)  # on this thread: the connection belongs to it
        hasher, _ = await asyncio.to_thread(files.hash_file, copy)
        await self.commit(copy, CATALOG_KEY, sha256=hasher.hexdigest())

    # -- transfers ---------------------------------------------------------------------------

    async def _download(self, key: str, path: Path) -> bool:
        """`key`'s bytes into `path`; False when there is no such object."""
        where = self._where(key)
        try:
            answer = await self._client.get_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise _error(exc, where) from exc
        except BotoCoreError as exc:
            raise _error(exc, where) from exc
        with _translated(where):
            async with answer["Body"] as body:
                fh = await asyncio.to_thread(open, path, "wb", opener=files.nofollow_opener)
                with fh:
                    while chunk := await body.read(READ_CHUNK):
                        await asyncio.to_thread(fh.write, chunk)
                    await asyncio.to_thread(os.fsync, fh.fileno())
        return True

    async def _upload(self, source: Path, key: str, sha256: str) -> str:
        """A multipart upload of `source` to `key`, completed and confirmed, or aborted."""
        where, full = self._where(key), self._key(key)
        try:
            size = (await asyncio.to_thread(source.stat)).st_size
        except OSError as exc:
            raise files.storage_error(exc, source) from exc
        with _translated(where):
            upload = await self._client.create_multipart_upload(
                Bucket=self._bucket,
                Key=full,
                ChecksumAlgorithm="SHA256",
                ContentType=content_type(key),
                Metadata={"sha256": sha256},
            )
        upload_id = upload["UploadId"]
        try:
            parts, whole = await self._send_parts(source, full, upload_id, size, where)
            if whole != sha256:
                raise TransferError(f"{where}: staged file changed before its upload")
            with _translated(where):
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [p.completed() for p in parts]},
                )
        except BaseException:
            await self._abort(full, upload_id)
            raise
        return await self._confirm(key, source, size, parts)

    async def _send_parts(
        self, source: Path, full: str, upload_id: str, size: int, where: str
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
                        group.create_task(self._send_part(full, upload_id, number, piece, parts))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        except OSError as exc:
            raise files.storage_error(exc, source) from exc
        return [parts[n] for n in sorted(parts)], whole.hexdigest()

    async def _send_part(
        self, full: str, upload_id: str, number: int, piece: Piece, parts: dict[int, Part]
    ) -> None:
        try:
            with _translated(f"s3://{self._bucket}/{full} part {number}"):
                answer = await self._client.upload_part(
                    Bucket=self._bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=piece.body(),
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=b64(piece.sha256),
                )
            parts[number] = Part(number, answer["ETag"], piece.sha256)
        finally:
            self._give_back(piece.buffer)

    async def _buffer(self, size: int) -> bytearray:
        """A free part buffer of at least `size` bytes, waiting for one of the slots."""
        await self._slots.acquire()
        while self._buffers:
            buffer = self._buffers.pop()
            if len(buffer) >= size:
                return buffer
        return bytearray(size)

    def _give_back(self, buffer: bytearray) -> None:
        self._buffers.append(buffer)
        self._slots.release()

    async def _confirm(self, key: str, source: Path, size: int, sent: list[Part]) -> str:
        """HEAD: the completed object has our size and the checksum our parts imply."""
        where = self._where(key)
        stored = await self.stat(key)
        if stored is None:
            raise TransferError(f"{where}: not there after its upload completed")
        expected = composite_sha256(sent)
        if stored.checksum is not None and stored.checksum.startswith("etag:"):
            each = part_size(size, self._settings.part_size)
            expected = await asyncio.to_thread(multipart_etag, source, each)
        if stored.size != size or stored.checksum != expected:
            with contextlib.suppress(ClientError, BotoCoreError):
                await self._client.delete_object(Bucket=self._bucket, Key=self._key(key))
            found = f"{stored.size} bytes, {stored.checksum}"
            raise TransferError(f"{where}: stored object differs from the upload ({found})")
        return stored.checksum

    async def _abort(self, full: str, upload_id: str) -> None:
        """Best effort: an upload left open costs money; the next run's cleanup tries again."""
        with contextlib.suppress(ClientError, BotoCoreError, OSError, TimeoutError):
            async with asyncio.timeout(self._settings.connect_timeout + 5):
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=full, UploadId=upload_id
                )


_LOADER: list[Any] = []  # botocore's parsed service models, shared by this process's sessions


def _session() -> aiobotocore.session.AioSession:
    """A fresh session (credentials are read anew, as the environment says now) that reuses the
    service models parsed once: 10 ms for a client instead of 100."""
    session = aiobotocore.session.get_session()
    if _LOADER:
        session.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(session.get_component("data_loader"))
    return session
