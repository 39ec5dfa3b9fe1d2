"""The rerun's disk check of a local archive (storage/diskcheck.py, storage/checker.py): an
lstat of every expected file, in a worker process for big batches, in the run's process for
small ones and whenever the worker is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.model import FileSizes
from archiver.storage.checker import DiskChecker

from .helpers import kill, wait_for


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


@pytest.mark.parametrize("offload_from", [0, 10**9], ids=["worker", "in-process"])
async def test_a_file_packed_without_its_task_id_counts_for_the_task_before(
    tmp_path: Path, offload_from: int
) -> None:
    """A task's files after its first, packed with the task id left empty (as the catalog
    packs them), are the task's: damage to such a file names that task and no other; an
    archive folder gone names every task."""
    _archive(tmp_path)
    grouped = FileSizes(
        b"".join(b"t%d\0d%d/v.mp4\0%d\0\0d%d/task.yaml\0\0" % (n, n, 100 + n, n) for n in range(5))
    )
    assert sorted(grouped) == sorted(_archive(tmp_path / "again"))
    checker = DiskChecker(tmp_path, offload_from=offload_from)
    try:
        assert await checker.changed(grouped) == set()
        (tmp_path / "d4/task.yaml").unlink()
        (tmp_path / "d2/task.yaml").unlink()
        (tmp_path / "d2/task.yaml").mkdir()
        assert await checker.changed(grouped) == {"t2", "t4"}
    finally:
        await checker.close()
    checker = DiskChecker(tmp_path / "gone", offload_from=offload_from)
    try:
        assert await checker.changed(grouped) == {f"t{n}" for n in range(5)}
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


# A run's process as the test kills it: its checker's worker started, its pid printed, then
# the process waits forever (on its stdin, which the test never writes).
_PARENT = """
import asyncio, sys
from pathlib import Path
from archiver.model import FileSizes
from archiver.storage.checker import DiskChecker

async def main():
    checker = DiskChecker(Path(sys.argv[1]), offload_from=0)
    await checker.changed(FileSizes.pack([("t", "missing", 1)]))
    print(checker.pid, flush=True)
    sys.stdin.read()

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    """No such process, or one that has exited (a zombie until its new parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_killed_run_takes_its_worker_with_it(tmp_path: Path) -> None:
    """A run's process killed outright (SIGKILL: no cleanup of its own) leaves no worker: the
    worker ends when its stdin does."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert not _gone(worker)
        parent.kill()
        parent.wait()
        wait_for(lambda: _gone(worker), "the worker to end with its run")
    finally:
        kill(parent)
