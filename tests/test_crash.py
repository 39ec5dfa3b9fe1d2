"""Real processes killed mid-run, runs that overlap, and a disk that fills up."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.errors import ArchiverError
from archiver.testing import VideoSpec

from .conftest import Runner
from .helpers import DEADLINE, kill, part_files, temp_files, wait_for

# Larger than the downloader's 512 KiB write buffer, so a part file holds bytes mid-download.
BIG = VideoSpec(bitrate="4M", seconds=2.0)


def assert_catalog_honest(runner: Runner) -> None:
    """Every file the catalog vouches for is on disk with its recorded size and sha256."""
    if not runner.catalog_path.exists():
        return
    for _, archived in runner.catalog().files:
        data = (runner.root / archived.path).read_bytes()
        assert len(data) == archived.size, archived.path
        assert hashlib.sha256(data).hexdigest() == archived.sha256, archived.path


def test_kill_9_mid_download_then_rerun_completes(runner: Runner) -> None:
    """Killed while a video streams: the rerun resumes it, everything verifies, no temp is left."""
    runner.emu.cdn_rate = 400_000  # slow enough to be caught mid-body
    tasks = [runner.emu.add_task(previews=1, video=BIG) for _ in range(2)]
    full = runner.emu.media_of(tasks[0])[0].stat().st_size

    def video_parts() -> list[Path]:
        return [
            p
            for p in part_files(runner.root)
            if ".preview-" not in p.name and p.parent.name != "inputs"
        ]

    process = runner.spawn(*tasks)
    try:
        wait_for(lambda: any(0 < p.stat().st_size < full for p in video_parts()), "a video part")
    finally:
        kill(process)
    assert process.returncode == -signal.SIGKILL
    assert video_parts(), "the kill left the partial download behind"
    assert_catalog_honest(runner)

    runner.emu.cdn_rate = None
    runner.emu.clear_requests()
    result = runner.run(*tasks)
    assert result.code == 0, result.err
    assert set(result.states().values()) == {"archived"}
    assert temp_files(runner.root) == []
    assert_catalog_honest(runner)
    ranged = [r for r in runner.emu.requests if "Range" in r.headers and ".mp4" in r.raw_path]
    assert ranged and all(r.status == 206 for r in ranged)
    served = {
        hashlib.sha256(p.read_bytes()).hexdigest() for t in tasks for p in runner.emu.media_of(t)
    }
    archived = {f["sha256"] for t in tasks for f in result.task(t)["files"]}
    assert archived == served


def test_kill_9_between_tasks_keeps_what_is_done(runner: Runner) -> None:
    """Killed after some tasks are archived: the rerun skips them without a request."""
    runner.emu.cdn_rate = 200_000
    runner.configure(concurrency=1)
    tasks = [runner.emu.add_task(previews=1) for _ in range(4)]
    process = runner.spawn(*tasks)

    def one_archived() -> bool:
        try:
            return any(r.state == "archived" for r in runner.catalog().tasks.values())
        except ArchiverError:  # not created yet by the child process
            return False

    try:
        wait_for(one_archived, "an archived task")
    finally:
        kill(process)
    assert_catalog_honest(runner)
    done = {t for t, row in runner.catalog().tasks.items() if row.state == "archived"}
    runner.emu.cdn_rate = None
    runner.emu.clear_requests()
    result = runner.run(*tasks)
    assert result.code == 0, result.err
    assert {t for t, s in result.states().items() if s == "skipped"} == done
    asked = {r.raw_path.rsplit("/", 1)[-1] for r in runner.emu.requests if r.origin == "api"}
    assert asked.isdisjoint(done)
    assert temp_files(runner.root) == []
    assert_catalog_honest(runner)


def test_overlapping_run_exits_75_and_stale_lock_does_not_block(runner: Runner) -> None:
    """A second run exits 75 naming the holder's pid; after the holder is killed, runs go on."""
    runner.emu.cdn_rate = 20_000
    tasks = [runner.emu.add_task(previews=1) for _ in range(2)]
    first = runner.spawn(*tasks)
    lock = runner.root / ".runway-archiver.lock"
    try:
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), "the lock")
        second = runner.spawn(*tasks)
        out, err = second.communicate(timeout=DEADLINE)
        assert second.returncode == 75
        assert str(lock) in err and f"pid {first.pid}" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        kill(first)
    runner.emu.cdn_rate = None
    third = runner.spawn(*tasks)
    out, err = third.communicate(timeout=DEADLINE)
    assert third.returncode == 0, err
    assert out.strip().endswith("s)") and "2 archived" in out


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 400 KiB tmpfs: writes past it fail with ENOSPC."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_stops_with_74_and_keeps_the_archive_consistent(
    runner: Runner, small_disk: Path
) -> None:
    """ENOSPC: exit 74 naming the path, only resumable parts left, the catalog claims real files."""
    runner.root = small_disk / "archive"
    tasks = [runner.emu.add_task() for _ in range(12)]
    result = runner.run(*tasks[:1])
    assert result.code == 0, result.err
    first = {p: p.read_bytes() for p in runner.final_files()}
    result = runner.run(*tasks, report=False)
    assert result.code == 74
    line = result.err.strip().splitlines()[-1]
    assert "No space left on device" in line and str(runner.root) in line
    # Downloads cut short by the stop stay for a resume: each with the validators to prove it.
    for leftover in temp_files(runner.root):
        assert leftover.suffix in (".part", ".etag"), leftover
        twin = leftover.with_suffix("" if leftover.suffix == ".etag" else ".part.etag")
        assert twin.is_file() and leftover.stat().st_size > 0, leftover
    assert_catalog_honest(runner)
    assert {p: p.read_bytes() for p in first} == first  # nothing already archived was touched


def test_output_that_is_not_a_folder_exits_2(runner: Runner, tmp_path: Path) -> None:
    """-o naming a regular file is a usage error: "not a folder", naming it, the file untouched."""
    runner.root = tmp_path / "a-file"
    runner.root.write_text("not a folder")
    result = runner.run(runner.emu.add_task(), report=False)
    assert result.code == 2
    assert result.err == f"runway-archiver: -o {runner.root}: not a folder\n"
    assert runner.root.read_text() == "not a folder"
    assert runner.emu.requests == []


def test_sigterm_is_not_a_silent_success(runner: Runner) -> None:
    """A run stopped by SIGTERM does not exit 0 and leaves the catalog honest."""
    runner.emu.cdn_rate = 400_000
    task = runner.emu.add_task(previews=1, video=BIG)
    process = runner.spawn(task)
    wait_for(lambda: any(p.stat().st_size > 0 for p in part_files(runner.root)), "a part file")
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=DEADLINE)
    assert process.returncode != 0
    assert_catalog_honest(runner)
