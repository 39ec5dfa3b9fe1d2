"""`verify` and `status`: re-check what the catalog vouches for, repair it, and report the archive.

Both read the archive without a request (repair aside) and never make an archive where none was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from archiver.catalog import Access, open_catalog, sqlite_testing
from archiver.config import Config

from .conftest import Result, Runner


def snapshot(runner: Runner) -> str:
    """Every table and row of the catalog."""
    return sqlite_testing.dump(runner.catalog_path)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` with size and mtime; SQLite's empty -wal/-shm side files aside."""
    found = {}
    for top, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(top, name)
            st = path.lstat()
            if name.endswith(("-shm", "-wal")) and (name.endswith("-shm") or st.st_size == 0):
                continue
            found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


def archive_two(runner: Runner) -> tuple[list[str], Result]:
    """A clean archive of two tasks, each one video, three previews and its init_image input."""
    tasks = [runner.emu.add_task(previews=3), runner.emu.add_task(previews=3)]
    result = runner.run("--no-progress", *tasks)
    assert result.code == 0, result.err
    runner.emu.clear_requests()
    return tasks, result


def verify(runner: Runner, *args: str) -> Result:
    report = runner.root.parent / "report.json"
    return runner.run("--no-progress", "--report", str(report), *args, command="verify")


def paths_of(result: Result, task_id: str, kind: str) -> list[str]:
    return [f["path"] for f in result.task(task_id)["files"] if f["kind"] == kind]


def damage(runner: Runner, tasks: list[str], result: Result) -> dict[str, str]:
    """Delete a preview and flip a video byte of task 0, truncate task 1's video: path -> reason."""
    preview = paths_of(result, tasks[0], "preview")[1]
    flipped = paths_of(result, tasks[0], "artifact")[0]
    cut = paths_of(result, tasks[1], "artifact")[0]
    (runner.root / preview).unlink()
    data = bytearray((runner.root / flipped).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (runner.root / flipped).write_bytes(bytes(data))
    size = (runner.root / cut).stat().st_size
    with open(runner.root / cut, "r+b") as fh:
        fh.truncate(size - 1000)
    return {
        preview: "missing",
        flipped: "content changed (sha256 differs from the catalog)",
        cut: f"size {size - 1000} bytes, catalog says {size}",
    }


def test_verify_clean_archive_exits_0_without_a_request(runner: Runner) -> None:
    """2 tasks (video, 3 previews, an input, the sidecar each) verify as 12 ok files, no request."""
    archive_two(runner)
    before = snapshot(runner)
    result = verify(runner)
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["checked 12 files: 12 ok, 0 damaged"]
    assert result.err == ""
    assert runner.emu.requests == []
    assert result.report == {
        "summary": {"checked": 12, "damaged": 0, "repaired": 0},
        "damaged": [],
    }
    assert snapshot(runner) == before


def test_verify_names_each_damaged_file_and_leaves_the_catalog(runner: Runner) -> None:
    """Missing, altered and cut files each get a 'damaged:' line; exit 1; the catalog as it was."""
    tasks, archived = archive_two(runner)
    expected = damage(runner, tasks, archived)
    before = snapshot(runner)
    result = verify(runner)
    assert result.code == 1
    damaged = [line for line in result.out.splitlines() if line.startswith("damaged: ")]
    assert sorted(damaged) == sorted(f"damaged: {p}: {r}" for p, r in expected.items())
    assert result.out.splitlines()[-1] == "checked 12 files: 9 ok, 3 damaged"
    assert result.report is not None
    assert result.report["summary"] == {"checked": 12, "damaged": 3, "repaired": 0}
    owner = {p: t for t in tasks for p in (f["path"] for f in archived.task(t)["files"])}
    assert sorted(result.report["damaged"], key=lambda d: d["path"]) == sorted(
        (
            {"task_id": owner[p], "path": p, "reason": r, "repaired": False}
            for p, r in expected.items()
        ),
        key=lambda d: d["path"],
    )
    assert snapshot(runner) == before
    assert runner.emu.requests == []
    # nothing was put back or renamed: the damage is still there
    assert not (runner.root / next(iter(expected))).exists()


def test_verify_repair_fetches_only_what_is_damaged(runner: Runner) -> None:
    """--repair fetches each damaged task once, downloads only damaged files, and exits 0."""
    emu = runner.emu
    tasks, archived = archive_two(runner)
    expected = damage(runner, tasks, archived)
    untouched = {
        f["path"]: (runner.root / f["path"]).stat().st_mtime_ns
        for t in tasks
        for f in archived.task(t)["files"]
        if f["path"] not in expected
    }
    result = verify(runner, "--repair")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "checked 12 files: 9 ok, 3 damaged, 3 repaired"
    assert result.report is not None
    assert result.report["summary"] == {"checked": 12, "damaged": 3, "repaired": 3}
    assert all(d["repaired"] for d in result.report["damaged"])
    api = sorted(r.raw_path for r in emu.requests if r.origin == "api")
    assert api == sorted(f"/v1/runwayml/tasks/{t}" for t in tasks)
    cdn = sorted(r.raw_path.split("?")[0] for r in emu.requests if r.origin == "cdn")
    served = {t: emu.media_of(t) for t in tasks}
    by_path = {
        f["path"]: src
        for t in tasks
        for f, src in zip(archived.task(t)["files"], served[t], strict=True)
    }
    cdn_path_of = {
        f["path"]: u.split("?")[0].removeprefix(emu.cdn_url).removeprefix(emu.uploads_url)
        for t in tasks
        for f, u in zip(archived.task(t)["files"], _urls(runner, t), strict=True)
    }
    assert cdn == sorted(cdn_path_of[p] for p in expected)
    for path, source in by_path.items():
        assert (runner.root / path).read_bytes() == source.read_bytes(), path
    assert {p: (runner.root / p).stat().st_mtime_ns for p in untouched} == untouched
    held = runner.catalog()
    assert [row.state for row in held.tasks.values()] == ["archived", "archived"]
    rows = sorted((f.path, f.sha256) for _, f in held.files)
    assert rows == sorted(
        (p, hashlib.sha256(src.read_bytes()).hexdigest()) for p, src in by_path.items()
    )
    emu.clear_requests()
    again = verify(runner)
    assert again.code == 0, again.out
    assert again.out.splitlines() == ["checked 12 files: 12 ok, 0 damaged"]
    assert emu.requests == []


def _urls(runner: Runner, task_id: str) -> list[str]:
    """The task's URLs in the order of its files: video, previews, init_image."""
    data = runner.emu.task_json(task_id)
    artifact = data["artifacts"][0]
    return [artifact["url"], *artifact["previewUrls"], data["options"]["init_image"]]


def test_verify_without_a_catalog_exits_2_naming_the_folder(runner: Runner) -> None:
    """verify on a folder with no catalog exits 2, names the folder, and creates nothing."""
    runner.root.mkdir()
    result = runner.run("--no-progress", command="verify", report=False)
    assert result.code == 2
    assert result.err.splitlines() == [
        f"runway-archiver: no archive at {runner.root} (no catalog.sqlite3)"
    ]
    assert list(runner.root.iterdir()) == []
    assert runner.emu.requests == []


def test_status_summarises_the_archive_without_a_request(runner: Runner) -> None:
    """status prints counts, files and bytes, the last exit code and one line per task."""
    emu = runner.emu
    done, running, failed = (
        emu.add_task(previews=2),
        emu.add_task("RUNNING"),
        emu.add_task("FAILED"),
    )
    missing = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
    first = runner.run("--no-progress", done, running, failed, missing)
    assert first.code == 1
    emu.clear_requests()
    before = tree(runner.root)
    result = runner.run(command="status", report=False)
    assert result.code == 0, result.err
    assert result.err == ""
    assert emu.requests == []
    assert tree(runner.root) == before
    lines = result.out.splitlines()
    total = sum(p.stat().st_size for t in (done, failed) for p in emu.media_of(t))
    assert lines[0] == f"archive: {runner.root}"
    assert lines[1] == "tasks: 1 archived, 1 pending, 1 failed, 1 error"
    # video, 2 previews, its input; and the FAILED task's input
    assert lines[2] == f"files: 5 verified, {total / 1024:.1f} KiB"
    assert lines[3].startswith("last run: ")
    assert lines[3].endswith(", exit 1 (1 archived, 1 pending, 1 failed, 1 error)")
    per_task = {line.split()[1]: line for line in lines[4:]}
    assert len(lines) == 8 and set(per_task) == {done, running, failed, missing}
    assert per_task[done].split()[0] == "archived"
    assert per_task[done].endswith(first.task(done)["dir"])
    assert per_task[running].split()[0] == "pending"
    assert "status RUNNING" in per_task[running]
    assert per_task[failed].split()[0] == "failed"
    assert "This generation could not be completed." in per_task[failed]
    assert per_task[missing].split()[0] == "error"
    assert "404" in per_task[missing]


def test_status_of_a_fresh_archive_with_no_run(runner: Runner) -> None:
    """A catalog whose only run is still open shows zero counts and an unfinished last run."""
    runner.root.mkdir()

    async def begin() -> None:
        async with open_catalog(Config(output_dir=runner.root), Access.CREATE) as catalog:
            await catalog.begin_run(now="2024-08-01T00:00:00+00:00")

    asyncio.run(begin())
    result = runner.run(command="status", report=False)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"archive: {runner.root}",
        "tasks: 0 archived, 0 pending, 0 failed, 0 error",
        "files: 0 verified, 0 B",
        "last run: started 2024-08-01T00:00:00+00:00, did not finish (killed, or running now)",
    ]


def test_status_on_a_folder_that_is_no_archive_creates_nothing(runner: Runner) -> None:
    """status on an empty folder exits 2 with one line and leaves the folder empty."""
    runner.root.mkdir()
    result = runner.run(command="status", report=False)
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines() == [
        f"runway-archiver: no archive at {runner.root} (no catalog.sqlite3)"
    ]
    assert list(runner.root.iterdir()) == []
    assert runner.emu.requests == []


def test_status_on_a_missing_folder_does_not_make_it(runner: Runner) -> None:
    """status on a folder that does not exist exits 2 and does not create it."""
    result = runner.run(command="status", report=False)
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert str(runner.root) in result.err
    assert not runner.root.exists()
