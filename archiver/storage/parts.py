"""The arithmetic of a multipart upload, without the client: part sizes, part digests, and the
checksums a store reports for the whole object, so a HEAD can confirm what was uploaded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

MAX_PARTS = 10_000  # S3's limit per upload
ROUND = 1024 * 1024


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def part_size(size: int, wanted: int) -> int:
    """`wanted`, or larger (in whole MiB) when a file of `size` would need over 10,000 parts."""
    need = -(-size // MAX_PARTS)
    return max(wanted, -(-need // ROUND) * ROUND)


def content_type(key: str) -> str:
    """What a browser needs to show the object (the gallery from a static website bucket)."""
    if key.endswith(".yaml"):
        return "text/yaml; charset=utf-8"
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Part:
    """One uploaded part: what CompleteMultipartUpload names, and its digests."""

    number: int
    etag: str
    sha256: bytes

    def completed(self) -> CompletedPartTypeDef:
        return {"PartNumber": self.number, "ETag": self.etag, "ChecksumSHA256": b64(self.sha256)}


class PartReader(io.RawIOBase):
    """A seekable file over one part held in a reused buffer: the client reads it (again, on a
    retry) in small chunks, so a part is never copied whole."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, into: Any) -> int:
        count = min(len(into), len(self._view) - self._at)
        into[:count] = self._view[self._at : self._at + count]
        self._at += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        self._at = min(max(0, base + offset), len(self._view))
        return self._at

    def tell(self) -> int:
        return self._at


@dataclass(frozen=True, slots=True)
class Piece:
    """A part read from the file into `buffer`, and its digests."""

    buffer: bytearray
    length: int
    sha256: bytes

    def body(self) -> IO[bytes]:
        # A file object as the client wants one; it reads, seeks and tells, nothing else.
        return cast(IO[bytes], PartReader(memoryview(self.buffer)[: self.length]))


def read_part(
    fh: io.RawIOBase | io.BufferedIOBase, buffer: bytearray, size: int, whole: Any
) -> Piece:
    """The next `size` bytes of the file into `buffer`, hashed; `whole` hashes the file."""
    view = memoryview(buffer)[:size]
    length = 0
    while length < size and (got := fh.readinto(view[length:])):  # a read may come up short
        length += got
    data = view[:length]
    whole.update(data)
    return Piece(buffer, length, hashlib.sha256(data).digest())


def composite_sha256(parts: Sequence[Part]) -> str:
    """The checksum a store keeps for a multipart object: the SHA-256 of the parts' SHA-256s."""
    return "sha256:" + b64(hashlib.sha256(b"".join(p.sha256 for p in parts)).digest())


def multipart_etag(path: Path, each: int) -> str:
    """The ETag S3 and its look-alikes give a multipart object: the MD5 of the parts' MD5s.

    Only for a store that keeps no SHA-256; reads the (still staged) file once more.
    """
    digests, count = [], 0
    with open(path, "rb") as fh:
        while block := fh.read(each):
            digests.append(hashlib.md5(block, usedforsecurity=False).digest())
            count += 1
    whole = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"etag:{whole}-{max(count, 1)}"


def stored_checksum(head: Mapping[str, Any]) -> str | None:
    """A HEAD answer's checksum as one comparable text; composite SHA-256 first, else the ETag."""
    sha = head.get("ChecksumSHA256")
    if sha:
        return f"sha256:{str(sha).split('-', 1)[0]}"  # AWS appends -N (the part count); moto not
    etag = str(head.get("ETag") or "").strip('"')
    return f"etag:{etag}" if etag else None
