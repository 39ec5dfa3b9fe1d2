"""The S3 client (aiobotocore): one bucket and prefix, each call the bucket target makes.

The only module that imports the client; its errors become the archiver's here, once: refused
credentials or a missing bucket a usage error (exit 2), the rest a storage error (exit 74).
Retries and 503 SlowDown backoff are botocore's own ("standard" retry mode), not a loop of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiobotocore.session
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from .. import __version__, files
from ..config import BucketUrl
from ..errors import ArchiverError, StorageError, StoreAccessError, UnsafePath
from . import BucketSettings, Stored
from .parts import Part, Piece, b64, content_type, stored_checksum

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

T = TypeVar("T")
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
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return StorageError(f"{where}: no answer within the timeout ({type(exc).__name__})")
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


class Bucket:
    """One bucket and key prefix through one client: each call the target makes, its errors
    translated. Keys given to it are relative to the prefix and checked; `full` keys are not."""

    def __init__(self, client: S3Client, url: BucketUrl, settings: BucketSettings) -> None:
        self._client = client
        self._bucket = url.bucket
        self._prefix = f"{url.prefix}/" if url.prefix else ""
        self._settings = settings
        self.name = str(url)

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: BucketUrl, settings: BucketSettings) -> AsyncIterator[Bucket]:
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
        async with AsyncExitStack() as stack:
            with _translated(str(url)):
                client = await stack.enter_async_context(
                    _session().create_client(
                        "s3",
                        endpoint_url=settings.endpoint_url,
                        region_name=settings.region,
                        config=config,
                    )
                )
            bucket = cls(client, url, settings)
            # Cheap and early: wrong credentials or a missing bucket stop the run at once.
            with _translated(bucket.name):
                await client.list_objects_v2(Bucket=url.bucket, Prefix=bucket._prefix, MaxKeys=1)
            yield bucket

    def key(self, key: str) -> str:
        """The full key of `key`; one that would leave the prefix is refused."""
        parts = key.split("/")
        if any(p in ("", ".", "..") or not p.isprintable() for p in parts):
            raise UnsafePath(f"{self.where(key)}: refused key")
        return self._prefix + key

    def where(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._prefix}{key}"

    async def uploads(self) -> list[tuple[str, str]]:
        """(full key, upload id) of every multipart upload open under the prefix."""
        found = []
        with _translated(self.name):
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            )
            async for page in pages:
                found += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        return found

    async def listing(self, below: str) -> dict[str, dict[str, int]]:
        """Folder -> name -> size of the objects under `below` (relative to the prefix)."""
        found: dict[str, dict[str, int]] = {}
        with _translated(self.where(below)):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix + below
            )
            async for page in pages:
                for obj in page.get("Contents", []):
                    folder, _, name = obj["Key"][len(self._prefix) :].rpartition("/")
                    found.setdefault(folder, {})[name] = obj["Size"]
        return found

    async def put(self, key: str, data: bytes) -> None:
        """One PUT: atomic in S3, its SHA-256 checked by the store."""
        with _translated(self.where(key)):
            await self._client.put_object(
                Bucket=self._bucket,
                Key=self.key(key),
                Body=data,
                ChecksumSHA256=b64(hashlib.sha256(data).digest()),
                ContentType=content_type(key),
            )

    async def head(self, key: str) -> Stored | None:
        """Size and the store's checksum of `key`; None when there is no such object."""
        call = self._client.head_object(
            Bucket=self._bucket, Key=self.key(key), ChecksumMode="ENABLED"
        )
        head = await _unless_absent(call, self.where(key))
        return None if head is None else Stored(head["ContentLength"], stored_checksum(head))

    async def download(self, key: str, path: Path) -> bool:
        """`key`'s bytes into `path` (fsynced); False when there is no such object."""
        where = self.where(key)
        got = await _unless_absent(
            self._client.get_object(Bucket=self._bucket, Key=self.key(key)), where
        )
        if got is None:
            return False
        with _translated(where):
            async with got["Body"] as body:
                fh = await asyncio.to_thread(open, path, "wb", opener=files.nofollow_opener)
                with fh:
                    while chunk := await body.read(READ_CHUNK):
                        await asyncio.to_thread(fh.write, chunk)
                    await asyncio.to_thread(os.fsync, fh.fileno())
        return True

    async def start_upload(self, key: str, *, sha256: str) -> str:
        """A multipart upload of `key` whose parts carry SHA-256s; its upload id."""
        with _translated(self.where(key)):
            upload = await self._client.create_multipart_upload(
                Bucket=self._bucket,
                Key=self.key(key),
                ChecksumAlgorithm="SHA256",
                ContentType=content_type(key),
                Metadata={"sha256": sha256},
            )
        return upload["UploadId"]

    async def send_part(self, key: str, upload_id: str, number: int, piece: Piece) -> Part:
        with _translated(f"{self.where(key)} part {number}"):
            answer = await self._client.upload_part(
                Bucket=self._bucket,
                Key=self.key(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=piece.body(),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(piece.sha256),
            )
        return Part(number, answer["ETag"], piece.sha256)

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        """Completing is atomic: the object appears under `key` whole, or not at all."""
        with _translated(self.where(key)):
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": [p.completed() for p in parts]},
            )

    async def abort(self, full: str, upload_id: str) -> None:
        """Best effort: an upload left open costs money; the next run's cleanup tries again."""
        with contextlib.suppress(ClientError, BotoCoreError, OSError, TimeoutError):
            async with asyncio.timeout(self._settings.connect_timeout + 5):
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=full, UploadId=upload_id
                )

    async def delete(self, key: str) -> None:
        """Best effort: an object that turned out not to be what was sent goes."""
        with contextlib.suppress(ClientError, BotoCoreError):
            await self._client.delete_object(Bucket=self._bucket, Key=self.key(key))


async def _unless_absent(call: Awaitable[T], where: str) -> T | None:
    """A read's answer; None for a missing object, any other error translated."""
    try:
        return await call
    except ClientError as exc:
        if _code(exc) in _MISSING:
            return None
        raise _error(exc, where) from exc
    except BotoCoreError as exc:
        raise _error(exc, where) from exc


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
