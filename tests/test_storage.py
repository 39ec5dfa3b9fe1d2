"""The archive targets behave alike: a local folder and a bucket on moto over loopback.

Each conformance test runs once per target; the bucket-only tests below it cover what only a
store has (credentials, multipart uploads left open, 503 SlowDown, parts in flight).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.config import Config
from archiver.errors import StoreAccessError, TransferError, UnsafePath
from archiver.storage import Target, open_target, place
from archiver.storage.parts import multipart_etag
from archiver.testing.s3proxy import FaultProxy

from .bucketing import Area

MIB = 1024 * 1024
FAST = {"retry_attempts": 3, "connect_timeout": 5.0, "read_timeout": 5.0}


def bucket_config(area: Area, tmp_path: Path, **values: object) -> tuple[Config, dict[str, str]]:
    settings = {"s3_endpoint_url": area.endpoint.url, "s3_part_size": 5 * MIB, **FAST, **values}
    config = Config(output_dir=area.url, **settings)  # type: ignore[arg-type]
    return config, {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture(params=["folder", "bucket"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """An opened target of each kind, with its task folder `t1` prepared."""
    if request.param == "folder":
        config, env = Config(output_dir=tmp_path / "archive"), dict(os.environ)
        (tmp_path / "archive").mkdir()
    else:
        config, env = bucket_config(request.getfixturevalue("area"), tmp_path)
    async with open_target(config, env) as opened:
        await opened.cleanup()
        await opened.prepare("t1")
        yield opened


async def stage(target: Target, name: str, data: bytes) -> tuple[Path, str]:
    staged = target.staged("t1", name + ".part")
    staged.write_bytes(data)
    return staged, hashlib.sha256(data).hexdigest()


async def read(target: Target, key: str) -> bytes | None:
    async with target.local_copy(key) as path:
        return None if path is None else path.read_bytes()


async def test_commit_stores_the_bytes_and_removes_the_staged_file(target: Target) -> None:
    """A committed file reads back byte for byte, is listed at its size, and its stage is gone."""
    data = os.urandom(300_000)
    staged, sha = await stage(target, "clip.mp4", data)
    assert await target.stat("t1/clip.mp4") is None  # nothing under the final key before
    checksum = await target.commit(staged, "t1/clip.mp4", sha256=sha)
    assert not staged.exists()
    assert await read(target, "t1/clip.mp4") == data
    stored = await target.stat("t1/clip.mp4")
    assert stored is not None and stored.size == len(data)
    assert stored.checksum == checksum
    assert (await target.sizes(["t1"]))["t1"]["clip.mp4"] == len(data)


async def test_a_file_of_several_parts_reads_back_whole(target: Target) -> None:
    """11 MiB in 5 MiB parts: the stored object is the whole file, in order."""
    data = os.urandom(11 * MIB)
    staged, sha = await stage(target, "big.mp4", data)
    await target.commit(staged, "t1/big.mp4", sha256=sha)
    back = await read(target, "t1/big.mp4")
    assert back is not None and hashlib.sha256(back).hexdigest() == sha


async def test_write_replaces_a_small_file_whole(target: Target) -> None:
    """write() stores new content over old, and the reader sees one or the other."""
    await target.write("t1/task.yaml", b"first: 1\n")
    await target.write("t1/task.yaml", b"second: 2\n")
    assert await read(target, "t1/task.yaml") == b"second: 2\n"
    await target.write("gallery/assets/app.js", b"// js\n")  # folders made as needed
    assert await read(target, "gallery/assets/app.js") == b"// js\n"


async def test_sizes_lists_only_the_folder_itself(target: Target) -> None:
    """One listing: files directly in the folder, not a deeper one nor a folder sharing a prefix."""
    await target.prepare("t10")
    await target.write("t1/a.jpg", b"a" * 10)
    await target.write("t1/sub/b.jpg", b"b" * 20)
    await target.write("t10/c.jpg", b"c" * 30)
    assert await target.sizes(["t1", "missing"]) == {"t1": {"a.jpg": 10}, "missing": {}}


async def test_sizes_of_many_folders_agree_with_one_listing_each(target: Target) -> None:
    """A rerun checking hundreds of folders (a bucket then lists its prefix once) sees the same."""
    await target.write("t1/a.jpg", b"a" * 10)
    await target.write("t7/b.jpg", b"b" * 20)
    folders = ["t1", "t7", *(f"none-{n}" for n in range(250))]
    found = await target.sizes(folders)
    assert found == {"t1": {"a.jpg": 10}, "t7": {"b.jpg": 20}, **{f: {} for f in folders[2:]}}


async def test_keep_rejected_keeps_the_bytes_under_a_name_never_taken_as_final(
    target: Target,
) -> None:
    """A file that failed verification is kept as NAME.rejected, not under its final name."""
    staged, _ = await stage(target, "bad.mp4", b"not a video")
    name = await target.keep_rejected(staged, "t1/bad.mp4")
    assert name == "bad.mp4.rejected"
    assert await read(target, "t1/bad.mp4.rejected") == b"not a video"
    assert await target.stat("t1/bad.mp4") is None


async def test_a_folder_inside_a_task_folder_holds_files_like_any(target: Target) -> None:
    """prepare() of t1/inputs makes it; a file staged there commits under that key."""
    await target.prepare("t1/inputs")
    staged = target.staged("t1", "inputs/in.jpg.part")
    staged.write_bytes(b"input bytes")
    await target.commit(
        staged, "t1/inputs/in.jpg", sha256=hashlib.sha256(b"input bytes").hexdigest()
    )
    assert await read(target, "t1/inputs/in.jpg") == b"input bytes"
    assert (await target.sizes(["t1/inputs"]))["t1/inputs"] == {"in.jpg": 11}


async def test_missing_files_are_none_not_errors(target: Target) -> None:
    """stat and local_copy of a key that is not there say so with None."""
    assert await target.stat("t1/nothing.mp4") is None
    assert await read(target, "t1/nothing.mp4") is None


@pytest.mark.parametrize("key", ["../escape.mp4", "t1/../../x", "t1//x", "/abs"])
async def test_keys_that_leave_the_archive_are_refused(target: Target, key: str) -> None:
    """No key climbs out of the archive or has an empty part."""
    with pytest.raises(UnsafePath):
        await target.write(key, b"x")


async def test_durable_and_getting_a_missing_file_are_safe_on_a_fresh_archive(
    target: Target, tmp_path: Path
) -> None:
    """durable() after commits works, and a key that is not there is not got (nothing written)."""
    staged, sha = await stage(target, "a.mp4", b"x" * 100)
    await target.commit(staged, "t1/a.mp4", sha256=sha)
    await target.durable("t1")
    assert await target.get_file("catalog.sqlite3", tmp_path / "fresh.sqlite3") is False
    assert not (tmp_path / "fresh.sqlite3").exists()


async def test_a_whole_file_is_put_and_got_back(target: Target, tmp_path: Path) -> None:
    """put_file stores a local file under a key, whole; get_file copies it back, byte for byte."""
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    await target.put_file(source, "copy.bin")
    assert source.exists()  # the source stays
    stored = await target.stat("copy.bin")
    assert stored is not None and stored.size == 256_000
    assert await target.get_file("copy.bin", tmp_path / "back.bin") is True
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


# -- only a bucket ----------------------------------------------------------------------------


async def test_wrong_credentials_are_refused_at_open(
    area: Area, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the store does not know stops at open, with a usage error naming the bucket."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-for-this-test")
    config, env = bucket_config(area, tmp_path)
    with pytest.raises(StoreAccessError) as caught:
        async with open_target(config, env):
            pass
    message = str(caught.value)
    assert str(area.url) in message and "refused" in message
    assert "wrong-secret" not in message and area.endpoint.access_key not in message
    assert caught.value.exit_code == 2


async def test_a_missing_bucket_is_refused_at_open(area: Area, tmp_path: Path) -> None:
    """A bucket that does not exist is a one-line usage error, not a crash."""
    config, env = bucket_config(area, tmp_path)
    config = Config(**{**config.__dict__, "output_dir": type(area.url)("no-such-bucket-xyz", "")})
    with pytest.raises(StoreAccessError, match="no such bucket"):
        async with open_target(config, env):
            pass


async def test_cleanup_aborts_stale_uploads_and_empties_staging(area: Area, tmp_path: Path) -> None:
    """Uploads left open under the prefix are aborted, others' are not; staging is emptied."""
    area.inspector.start_upload(f"{area.prefix}/t1/killed.mp4", b"x" * 1000)
    area.inspector.start_upload(f"{area.prefix}-other/t1/theirs.mp4", b"x" * 1000)
    config, env = bucket_config(area, tmp_path)
    staging = place(config, env).state_dir / "staging"
    (staging / "t1").mkdir(parents=True)
    (staging / "t1" / "left.mp4.part").write_bytes(b"x")
    try:
        async with open_target(config, env) as opened:
            assert await opened.cleanup() == 1
        assert area.uploads() == []
        assert area.inspector.uploads(f"{area.prefix}-other/") == [
            f"{area.prefix}-other/t1/theirs.mp4"
        ]
        assert list(staging.rglob("*")) == []
    finally:
        area.inspector.clear(f"{area.prefix}-other/")


async def test_a_staged_file_that_changed_is_not_stored(area: Area, tmp_path: Path) -> None:
    """The upload re-hashes what it sends: bytes that differ from the download are refused."""
    config, env = bucket_config(area, tmp_path)
    async with open_target(config, env) as opened:
        await opened.prepare("t1")
        staged, _ = await stage(opened, "x.mp4", b"changed on disk")
        with pytest.raises(TransferError, match="changed"):
            await opened.commit(staged, "t1/x.mp4", sha256=hashlib.sha256(b"other").hexdigest())
    assert "t1/x.mp4" not in area.objects()
    assert area.uploads() == []


def test_the_etag_fallback_is_the_one_the_store_computes(area: Area, tmp_path: Path) -> None:
    """For a store that keeps no SHA-256: our multipart ETag of a file is the store's own."""
    data = os.urandom(11 * MIB)
    (tmp_path / "f").write_bytes(data)
    etag = area.inspector.put_multipart(f"{area.prefix}/plain.bin", data, 5 * MIB)
    assert multipart_etag(tmp_path / "f", 5 * MIB) == f"etag:{etag}"


async def test_slow_down_is_retried_by_the_client(
    area: Area, tmp_path: Path, proxy: FaultProxy
) -> None:
    """503 SlowDown to a part and to a PUT is retried by the client; the objects are whole."""
    proxy.slow_down("UploadPart", 1)
    proxy.slow_down("PutObject", 1)
    config, env = bucket_config(area, tmp_path, s3_endpoint_url=proxy.url)
    data = os.urandom(100_000)
    async with open_target(config, env) as opened:
        await opened.prepare("t1")
        staged, sha = await stage(opened, "v.mp4", data)
        await opened.commit(staged, "t1/v.mp4", sha256=sha)
        await opened.write("t1/task.yaml", b"ok: true\n")
    assert proxy.answered["UploadPart 503"] == 1 and proxy.answered["UploadPart 200"] == 1
    assert proxy.answered["PutObject 503"] == 1 and proxy.answered["PutObject 200"] == 1
    assert area.get("t1/v.mp4") == data and area.get("t1/task.yaml") == b"ok: true\n"


async def test_parts_in_flight_are_bounded(area: Area, tmp_path: Path, proxy: FaultProxy) -> None:
    """However many files upload at once, at most s3_parts_in_flight parts are in flight."""
    import asyncio

    config, env = bucket_config(area, tmp_path, s3_endpoint_url=proxy.url, s3_parts_in_flight=2)
    blobs = [os.urandom(11 * MIB) for _ in range(3)]
    async with open_target(config, env) as opened:
        await opened.prepare("t1")
        staged = [await stage(opened, f"f{n}.mp4", b) for n, b in enumerate(blobs)]
        await asyncio.gather(
            *(opened.commit(p, f"t1/f{n}.mp4", sha256=s) for n, (p, s) in enumerate(staged))
        )
    assert proxy.seen["UploadPart"] == 9
    assert 1 <= proxy.most_at_once["UploadPart"] <= 2
    assert [area.get(f"t1/f{n}.mp4") == b for n, b in enumerate(blobs)] == [True] * 3


async def test_uploads_hold_at_most_part_size_times_parts_in_flight(
    area: Area, tmp_path: Path
) -> None:
    """Six files of three parts at once: the memory traced at peak stays near 2 x 5 MiB."""
    import asyncio
    import tracemalloc

    config, env = bucket_config(area, tmp_path, s3_parts_in_flight=2)
    async with open_target(config, env) as opened:
        await opened.prepare("t1")
        staged = [await stage(opened, f"m{n}.mp4", os.urandom(11 * MIB)) for n in range(6)]
        tracemalloc.start()
        try:
            await asyncio.gather(
                *(opened.commit(p, f"t1/m{n}.mp4", sha256=s) for n, (p, s) in enumerate(staged))
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(area.objects()) == 6
    assert peak < 2 * 5 * MIB + 4 * MIB, f"{peak / MIB:.1f} MiB traced at peak"
