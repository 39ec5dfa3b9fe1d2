"""Integrity: a resume proven to continue the same body, an archive that heals, damaged catalogs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from archiver.catalog import sqlite_testing
from archiver.storage import checker
from archiver.testing import VideoSpec

from .conftest import Runner

# Larger than the downloader's 512 KiB write buffer, so a cut body leaves resumable bytes.
BIG = VideoSpec(bitrate="4M", seconds=2.0)
CUT = 600_000


def cdn_video_requests(runner: Runner) -> list[tuple[int, str | None]]:
    return [
        (r.status, r.headers.get("Range"))
        for r in runner.emu.requests
        if r.origin == "cdn" and ".mp4" in r.raw_path
    ]


def leave_a_part_file(runner: Runner, task: str, **fault: object) -> None:
    """A first run whose video download is cut after CUT bytes, with no retry left."""
    runner.configure(retry_attempts=1)
    runner.emu.asset_fault(".mp4", truncate_at=CUT, **fault)  # type: ignore[arg-type]
    assert runner.run(task).task(task)["state"] == "error"
    runner.configure()


def test_resume_of_a_changed_file_starts_from_zero(runner: Runner) -> None:
    """A 206 with another ETag (a cache ignoring If-Range) restarts from zero: the archived
    bytes are the new version whole, never the old one's start joined to the new one's end."""
    task = runner.emu.add_task(previews=0, video=BIG)
    leave_a_part_file(runner, task)
    (part,) = runner.root.rglob("*.part")
    have = part.stat().st_size
    assert have >= 512 * 1024
    new = runner.emu.replace_video(task, 0, VideoSpec(bitrate="4M", seconds=2.0, variant=5))
    runner.emu.asset_fault(".mp4", ignore_if_range=True)
    runner.emu.clear_requests()
    result = runner.run(task)
    assert result.code == 0, result.err
    (video,) = [p for p in runner.final_files() if p.suffix == ".mp4"]
    assert video.read_bytes() == new.read_bytes()
    assert result.task(task)["files"][0]["sha256"] == hashlib.sha256(new.read_bytes()).hexdigest()
    assert cdn_video_requests(runner) == [(206, f"bytes={have}-"), (200, None)]


def test_resume_with_the_same_etag_continues(runner: Runner) -> None:
    """The same strong ETag on the 206: the download continues after the bytes on disk."""
    task = runner.emu.add_task(previews=0, video=BIG)
    leave_a_part_file(runner, task)
    (part,) = runner.root.rglob("*.part")
    have = part.stat().st_size
    runner.emu.clear_requests()
    result = runner.run(task)
    assert result.code == 0, result.err
    assert cdn_video_requests(runner) == [(206, f"bytes={have}-")]
    (video,) = [p for p in runner.final_files() if p.suffix == ".mp4"]
    assert video.read_bytes() == runner.emu.media_of(task)[0].read_bytes()


def test_a_weak_etag_is_never_used_to_resume(runner: Runner) -> None:
    """A weak ETag cannot prove a range continues the same bytes: the next run starts over."""
    task = runner.emu.add_task(previews=0, video=BIG)
    leave_a_part_file(runner, task, headers={"ETag": 'W/"weak"'})
    assert list(runner.root.rglob("*.part")) == []
    runner.emu.clear_requests()
    result = runner.run(task)
    assert result.code == 0, result.err
    assert cdn_video_requests(runner) == [(200, None)]


def test_last_modified_proves_a_resume_when_there_is_no_etag(runner: Runner) -> None:
    """Without an ETag the Last-Modified date is the validator: If-Range carries it."""
    task = runner.emu.add_task(previews=0, video=BIG)
    leave_a_part_file(runner, task, headers={"ETag": ""})
    (part,) = runner.root.rglob("*.part")
    saved = (part.parent / (part.name + ".etag")).read_text()
    assert '"etag": null' in saved and '"last_modified": "' in saved
    runner.emu.asset_fault(".mp4", headers={"ETag": ""})  # the server still sends none
    runner.emu.clear_requests()
    result = runner.run(task)
    assert result.code == 0, result.err
    (seen,) = [r for r in runner.emu.requests if r.origin == "cdn"]
    assert seen.headers["If-Range"].endswith(" GMT") and seen.status == 206


@pytest.mark.parametrize("offload_from", [None, 0], ids=["in-process", "worker"])
def test_deleted_media_and_sidecar_are_healed_fetching_only_what_is_missing(
    runner: Runner, offload_from: int | None
) -> None:
    """A file gone or of another size, or a sidecar gone, makes the next run archive the task
    again, downloading only what is missing, whether the disk is checked in the run's process
    or its worker; the report says what each run checked."""
    if offload_from is not None:
        runner.monkeypatch.setattr(checker, "OFFLOAD_FROM", offload_from)
    emu = runner.emu
    a, b, c = (emu.add_task(previews=2) for _ in range(3))
    first = runner.run(a, b, c)
    assert first.code == 0, first.err
    dirs = {t: runner.root / first.task(t)["dir"] for t in (a, b, c)}
    (video_a,) = dirs[a].glob("*.mp4")
    video_a.unlink()
    (dirs[b] / "task.yaml").unlink()
    (preview_c,) = dirs[c].glob("*.preview-2.jpg")
    preview_c.write_bytes(preview_c.read_bytes()[:100])
    emu.clear_requests()
    healed = runner.run(a, b, c)
    assert healed.code == 0, healed.err
    assert healed.states() == {a: "archived", b: "archived", c: "archived"}
    api = sorted(r.raw_path.rsplit(":", 1)[1] for r in emu.requests if r.origin == "api")
    assert api == sorted(t.rsplit(":", 1)[1] for t in (a, b, c))
    cdn = [r.raw_path.partition("?")[0] for r in emu.requests if r.origin == "cdn"]
    assert len(cdn) == 2 and sum(p.endswith(".mp4") for p in cdn) == 1
    assert video_a.read_bytes() == emu.media_of(a)[0].read_bytes()
    assert preview_c.read_bytes() == emu.media_of(c)[2].read_bytes()
    assert yaml.safe_load((dirs[b] / "task.yaml").read_text())["task"]["taskId"] == b
    verified = {Path(f["path"]).name: f["verified"] for f in healed.task(a)["files"]}
    assert verified[video_a.name] == ["size", "sha256", "media"]
    assert {tuple(v) for n, v in verified.items() if n != video_a.name} == {("size",)}
    emu.clear_requests()
    again = runner.run(a, b, c)
    assert set(again.states().values()) == {"skipped"}
    assert emu.requests == []
    assert {tuple(f["verified"]) for t in (a, b, c) for f in again.task(t)["files"]} == {("size",)}


def test_a_failed_task_without_its_sidecar_is_written_again(runner: Runner) -> None:
    """A FAILED task is not fetched again, unless its sidecar is gone: then it is, once."""
    task = runner.emu.add_task("FAILED")
    first = runner.run(task)
    sidecar = runner.root / first.task(task)["sidecar"]
    sidecar.unlink()
    runner.emu.clear_requests()
    assert runner.run(task).states() == {task: "failed"}
    assert sidecar.is_file()
    assert len(runner.emu.requests) == 1


def test_verify_checks_each_sidecar(runner: Runner) -> None:
    """verify finds a sidecar missing, one that does not parse and one that leaves out a file;
    --repair writes them again from a fresh fetch without downloading media."""
    emu = runner.emu
    tasks = [emu.add_task(previews=1) for _ in range(3)]
    first = runner.run(*tasks)
    sidecars = [runner.root / first.task(t)["sidecar"] for t in tasks]
    sidecars[0].unlink()
    sidecars[1].write_text("{not: [valid")
    doc = yaml.safe_load(sidecars[2].read_text())
    doc["archiver"]["artifacts"][0]["previews"] = []
    sidecars[2].write_text(yaml.safe_dump(doc))
    result = runner.run("--no-progress", command="verify", report=False)
    assert result.code == 1
    damaged = [line for line in result.out.splitlines() if line.startswith("damaged:")]
    rel = [str(s.relative_to(runner.root)) for s in sidecars]
    assert sorted(damaged) == sorted(
        [
            f"damaged: {rel[0]}: missing",
            f"damaged: {rel[1]}: does not parse as a sidecar: not valid YAML (line 1)",
            f"damaged: {rel[2]}: does not name 1 archived file(s)",
        ]
    )
    emu.clear_requests()
    repaired = runner.run("--no-progress", "--repair", command="verify", report=False)
    assert repaired.code == 0, repaired.out + repaired.err
    assert [r.origin for r in emu.requests] == ["api"] * 3
    assert runner.run("--no-progress", command="verify", report=False).code == 0


def _archive_of(runner: Runner, count: int) -> Path:
    tasks = [runner.emu.add_task(previews=3) for _ in range(count)]
    assert runner.run(*tasks).code == 0
    return runner.root / "catalog.sqlite3"


@pytest.mark.parametrize("command", ["run", "status", "verify"])
def test_a_damaged_catalog_page_is_exit_74_and_the_file_is_left_alone(
    runner: Runner, command: str
) -> None:
    """One page of the catalog overwritten: every command says the catalog is damaged, exits 74,
    makes no request, and leaves the file byte for byte as it was."""
    db = _archive_of(runner, 12)
    size, count = sqlite_testing.pages(db)
    assert count >= 4
    data = bytearray(db.read_bytes())
    start = size * (count // 2)
    data[start : start + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    runner.emu.clear_requests()
    args = [runner.emu.add_task(previews=0)] if command == "run" else []
    result = runner.run(*args, command=command, report=False)
    assert result.code == 74
    (line,) = result.err.splitlines()
    assert line.startswith(f"runway-archiver: {db}: the catalog is damaged")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert runner.emu.requests == []


def _damage(db: Path, kind: str) -> None:
    if kind == "not-sqlite":
        db.write_bytes(b"this is no database" * 100)
        return
    sqlite_testing.damage(db, kind)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("not-sqlite", "the catalog is damaged"),
        ("foreign-db", "not a runway-archiver catalog"),
        ("bad-row", "the catalog is damaged (a row does not parse)"),
    ],
)
def test_other_damage_to_the_catalog_is_exit_74(runner: Runner, kind: str, says: str) -> None:
    """Garbage, a database that is not ours, or a row that does not parse: exit 74, unchanged."""
    db = _archive_of(runner, 1)
    _damage(db, kind)
    before = db.read_bytes()
    for command in ("run", "status"):
        args = [runner.emu.add_task(previews=0)] if command == "run" else []
        result = runner.run(*args, command=command, report=False)
        assert result.code == 74, result.err
        assert says in result.err and len(result.err.splitlines()) == 1
    assert db.read_bytes() == before
