"""The rerun's disk check of a local archive (storage/diskcheck.py, storage/checker.py): an
lstat of every expected file, in a worker process for big batches, in the run's process for
small ones and whenever the worker is gone."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from archiver.model import FileSizes
from archiver.storage.checker import DiskChecker


def _archive(root: Path) -> FileSizes:
    """Five tasks of two files each on disk, as the catalog records them."""
    entries = []
    for n in range(5):
        folder = root / f"d{n}"
        folder.mkdir(parents=True)
        (folder / "v.mp4").write_bytes(b"v" * (100 + n))
        (folder / "task.yaml").write_text("task: {}\n")
        entries += [(f"t{n}", f"d{n}/v.mp4", 100 + n), (f"t{n}", f"d{n}/task.yaml", None)]
    return FileSizes.pack(entries)


def _damage(root: Path) -> None:
    """t0 intact; t1 resized; t2 a symlink in place of its file; t3 a folder; t4 sidecar gone."""
    (root / "d1/v.mp4").write_bytes(b"short")
    target = root / "d2/v.mp4"
    target.rename(root / "elsewhere.mp4")
    target.symlink_to(root / "elsewhere.mp4")
    (root / "d3/v.mp4").unlink()
    (root / "d3/v.mp4").mkdir()
    (root / "d4/task.yaml").unlink()


@pytest.mark.parametrize("offload_from", [0, 10**9], ids=["worker", "in-process"])
async def test_a_file_gone_resized_or_not_a_plain_file_changes_its_task(
    tmp_path: Path, offload_from: int
) -> None:
    """Each kind of damage names its task and only its task, in the worker or in-process."""
    sizes = _archive(tmp_path)
    checker = DiskChecker(tmp_path, offload_from=offload_from)
    try:
        assert await checker.changed(sizes) == set()
        assert (checker.pid is not None) == (offload_from == 0)
        _damage(tmp_path)
        assert await checker.changed(sizes) == {"t1", "t2", "t3", "t4"}
        assert await checker.changed(FileSizes()) == set()
    finally:
        await checker.close()


async def test_a_dead_worker_leaves_the_check_to_the_run(tmp_path: Path) -> None:
    """Once its worker is killed the checker still finds every damaged task (checked in the
    run's process from then on, no worker started again), and a closed checker leaves no
    process behind."""
    sizes = _archive(tmp_path)
    checker = DiskChecker(tmp_path, offload_from=0)
    try:
        assert await checker.changed(sizes) == set()
        pid = checker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _damage(tmp_path)
        assert await checker.changed(sizes) == {"t1", "t2", "t3", "t4"}
        assert checker.pid is None
        assert await checker.changed(sizes) == {"t1", "t2", "t3", "t4"}
        assert checker.pid is None
    finally:
        await checker.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


async def test_closing_stops_the_worker(tmp_path: Path) -> None:
    """close() kills and reaps the worker: no process outlives the target."""
    checker = DiskChecker(tmp_path, offload_from=0)
    await checker.changed(_archive(tmp_path))
    pid = checker.pid
    assert pid is not None
    await checker.close()
    assert checker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
