"""Where the archive lives, behind one small interface; chosen once, from `output_dir`.

    local.py   a folder on disk (the default): verified files renamed into place, fsynced
    bucket.py  an S3-compatible bucket: multipart uploads, SHA-256 per part, confirmed by HEAD
      s3.py    its client (aiobotocore), every call and error translation in one place
      parts.py the arithmetic of a multipart upload: part sizes, digests, the store's checksum

Every file is still downloaded to a local staging file first (ffprobe needs a file); the target
says where that file goes and how it becomes part of the archive. Keys are paths relative to the
archive root with `/` between parts, as in the catalog and the report.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from .. import extras
from ..config import BUCKET_ARCHIVE, BucketUrl, Config
from ..files import slug
from ..model import FileSizes

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stored:
    """What the target knows about a stored file without reading it."""

    size: int
    # The store's own checksum of the object ("sha256:<composite>" or "etag:<md5-N>"), the
    # same text the commit returned; None where the target keeps none (a local folder).
    checksum: str | None


def size_in(listed: Mapping[str, Mapping[str, int]], key: str) -> int | None:
    """The size of `key` in what `Target.sizes` listed, None when it is not there."""
    folder, _, name = key.rpartition("/")
    return listed.get(folder, {}).get(name)


@dataclass(frozen=True, slots=True)
class Place:
    """The local side of an archive: its name in messages, and its folder on this machine."""

    name: str  # a folder path, or s3://bucket/prefix
    # The archive folder, or for a bucket the folder on this machine that holds its staging
    # folder (and the catalog's lock and file, where the catalog is a file: catalog/).
    state_dir: Path


class Target(Protocol):
    """The few operations the pipeline, `verify` and the gallery need from an archive."""

    name: str
    # True where reading a stored file costs no transfer: `verify` then re-hashes and re-probes
    # by default (as --deep does elsewhere).
    reads_are_local: bool

    async def cleanup(self) -> int:
        """Remove stale staging files and abort stale uploads of this archive; how many uploads."""

    async def prepare(self, folder: str) -> None:
        """Make a task's folder (and its staging folder); refuse one that is not ours."""

    def staged(self, folder: str, name: str) -> Path:
        """The local file a download of `folder/name` goes to until it is committed."""

    async def commit(self, staged: Path, key: str, *, sha256: str) -> str | None:
        """Make a verified staged file the stored `key`, whole or not at all; the stored checksum.

        Once this returns, the staged file is gone and `key` holds its bytes.
        """

    async def keep_rejected(self, staged: Path, key: str) -> str:
        """Keep a file that failed verification as `key.rejected`; its name."""

    async def write(self, key: str, data: bytes) -> None:
        """Store a small file (sidecar, gallery page) atomically: old content or new, never part."""

    async def sizes(self, folders: Collection[str]) -> dict[str, dict[str, int]]:
        """Folder -> name -> size of every file directly in each of `folders`: a listing,
        never a read nor a HEAD per file."""

    async def changed(self, expected: FileSizes) -> set[str]:
        """The rerun's cheap check: the tasks of `expected` with a file gone or of another size
        (None: any size) than the catalog says."""

    async def stat(self, key: str) -> Stored | None:
        """Size and stored checksum of `key`, without reading it; None when it is not there."""

    def local_copy(self, key: str) -> AbstractAsyncContextManager[Path | None]:
        """A local file with the bytes of `key` (downloaded if need be) while it is open."""

    async def durable(self, folder: str) -> None:
        """Make the commits into `folder` survive a power loss before the catalog names them."""

    def gallery_root(self) -> Path:
        """Where the gallery is written on this machine: the archive folder itself, or for a
        bucket a local mirror, which `publish_gallery` stores in the bucket."""

    async def publish_gallery(self) -> None:
        """Store with the archive what changed under `gallery_root()` since the last time."""

    def link(self, key: str) -> str:
        """Where a person opens `key`: a file:// URL, or the object's s3:// URL."""

    async def put_file(self, source: Path, key: str) -> None:
        """Store the local file `source` as `key`, whole or not at all (`source` is kept)."""

    async def get_file(self, key: str, dest: Path) -> bool:
        """Copy `key` to the local file `dest`; False (nothing written) when there is no `key`."""


@dataclass(frozen=True, kw_only=True)
class BucketSettings:
    """What the bucket target reads from the config, in one place."""

    endpoint_url: str | None
    region: str | None
    part_size: int
    parts_in_flight: int
    attempts: int
    connect_timeout: float
    read_timeout: float
    # False with a shared catalog: other runs, here and on other hosts, write the bucket too.
    exclusive: bool = True

    @classmethod
    def from_config(cls, config: Config, env: Mapping[str, str]) -> BucketSettings:
        return cls(
            exclusive=config.catalog is None,
            endpoint_url=config.s3_endpoint_url,
            # botocore itself reads AWS_DEFAULT_REGION and the profile, not AWS_REGION.
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            part_size=config.s3_part_size,
            parts_in_flight=config.s3_parts_in_flight,
            attempts=config.retry_attempts,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )


def place(config: Config, env: Mapping[str, str]) -> Place:
    """Where `config`'s archive is on this machine: its name, and its folder (for a bucket, the
    folder of its staging files and, with the SQLite catalog, its catalog and lock)."""
    out = config.output_dir
    if isinstance(out, BucketUrl):
        # A catalog file moved by `catalog_path` takes the bucket's local state along with it.
        moved = config.catalog_path.parent if config.catalog_path else None
        return Place(name=str(out), state_dir=moved or _bucket_state_dir(out, env))
    return Place(name=str(out), state_dir=out)


def _bucket_state_dir(url: BucketUrl, env: Mapping[str, str]) -> Path:
    """One folder per bucket and prefix under $XDG_STATE_HOME, readable and unique."""
    home = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    readable = slug(f"{url.bucket}-{url.prefix}", limit=60)
    unique = hashlib.sha256(str(url).encode()).hexdigest()[:8]
    return Path(home) / "runway-archiver" / "buckets" / f"{readable}-{unique}"


@asynccontextmanager
async def open_target(
    config: Config, env: Mapping[str, str] | None = None
) -> AsyncIterator[Target]:
    """The target `config.output_dir` names, open for this event loop; closed after.

    A bucket is checked (credentials, existence) with one cheap request before this yields.
    """
    env = os.environ if env is None else env
    where = place(config, env)
    out = config.output_dir
    if isinstance(out, BucketUrl):
        with extras.engine("s3", wanted=BUCKET_ARCHIVE.format(out)):
            from .bucket import BucketTarget  # the S3 client loads only for a bucket archive

        settings = BucketSettings.from_config(config, env)
        async with BucketTarget.connect(out, settings, where.state_dir / "staging") as bucket:
            yield bucket
    else:
        from .local import FolderTarget

        folder = FolderTarget(out)
        try:
            yield folder
        finally:
            await folder.close()


async def gallery(
    config: Config, build: Callable[[Path], Awaitable[T]], *, index: str
) -> tuple[T, str]:
    """`build` writes the gallery under the local root it is given; what it changed is then
    stored with the archive. Its result, and the link that opens `index`."""
    async with open_target(config) as target:
        result = await build(target.gallery_root())
        await target.publish_gallery()
        return result, target.link(index)
