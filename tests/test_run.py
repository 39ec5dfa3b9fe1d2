"""End to end over loopback: a task list in; a verified archive, sidecars, catalog, report out."""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import yaml

from archiver.catalog.sqlite_open import hold_lock
from archiver.testing import ArtifactSpec, VideoSpec

from .conftest import TOKEN, Runner


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mixed_list_ends_in_the_right_states(runner: Runner) -> None:
    """Succeeded, pending, failed, 404 and an invalid line each end as the contract says."""
    emu = runner.emu
    ok = emu.add_task()
    pending = emu.add_task("RUNNING")
    throttled = emu.add_task("THROTTLED")
    failed = emu.add_task("FAILED")
    cancelled = emu.add_task("CANCELLED")
    missing = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
    ids = runner.root.parent / "ids.txt"
    ids.write_text(
        f"# my tasks\n{ok}\n\n{pending}\n{throttled}\n{failed}\n{cancelled}\n"
        f"{missing}\nnot a task id!\n{ok}\n"
    )
    result = runner.run("-i", str(ids))
    assert result.code == 1
    assert result.states() == {
        ok: "archived",
        pending: "pending",
        throttled: "pending",
        failed: "failed",
        cancelled: "failed",
        missing: "error",
        "not a task id!": "error",
    }
    assert result.report is not None
    assert result.report["summary"] == {
        "archived": 1,
        "skipped": 0,
        "pending": 2,
        "failed": 2,
        "error": 2,
        "gone": 0,
    }
    assert "ids.txt:9" in result.task("not a task id!")["error"]
    assert "404" in result.task(missing)["error"]
    assert "RUNNING" in result.task(pending)["error"]
    assert result.out.strip().splitlines()[-1].startswith("7 tasks: 1 archived, 0 skipped")
    # the duplicate line was fetched once
    api_paths = [r.raw_path for r in emu.requests if r.origin == "api"]
    assert len(api_paths) == 6


def test_bytes_on_disk_equal_the_served_media(runner: Runner) -> None:
    """Every archived file has the emulator's bytes, and the report's sha256 is theirs."""
    task = runner.emu.add_task(previews=3)
    result = runner.run(task)
    assert result.code == 0
    served = runner.emu.media_of(task)
    files = result.task(task)["files"]
    assert [f["kind"] for f in files] == ["artifact", "preview", "preview", "preview", "input"]
    for entry, source in zip(files, served, strict=True):
        path = runner.root / entry["path"]
        assert path.read_bytes() == source.read_bytes()
        assert entry["sha256"] == sha(source)
        assert entry["bytes"] == source.stat().st_size
    assert [p.suffix for p in runner.final_files()] == [".mp4", *[".jpg"] * 4, ".yaml"]
    assert files[-1]["path"].endswith("/inputs/init_image.jpg")


def test_sidecar_round_trips_with_options_verbatim(runner: Runner) -> None:
    """task.yaml loads with safe_load and holds the options, nested and non-ASCII, as served."""
    options = {
        "name": "Zeitlupe 🐱",
        "seconds": 5,
        "seed": 42,
        "text_prompt": "Katze über Küchenboden",
        "gen2Options": {"mode": "gen2", "motion_vector": {"x": 0.5, "y": -1, "z": 0}},
        "keyframes": [{"image": "a", "timestamp": 0}],
        "flags": [True, None, 1.5],
    }
    task = runner.emu.add_task(options=options, quirks=True)
    result = runner.run(task)
    assert result.code == 0, result.err
    sidecar = runner.root / result.task(task)["sidecar"]
    doc = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    assert doc["task"]["options"] == runner.emu.task_json(task)["options"]
    assert doc["task"]["options"]["gen2Options"]["motion_vector"] == {"x": 0.5, "y": -1, "z": 0}
    assert doc["task"]["taskId"] == task
    assert (
        doc["task"]["artifacts"][0]["metadata"]
        == runner.emu.task_json(task)["artifacts"][0]["metadata"]
    )
    art = doc["archiver"]["artifacts"][0]
    assert art["file"]["sha256"] == result.task(task)["files"][0]["sha256"]
    assert art["file"]["probe"]["width"] == doc["task"]["artifacts"][0]["metadata"]["dimensions"][0]
    assert art["unchecked"] == []
    assert len(art["previews"]) == 3


def test_rerun_skips_archived_and_makes_no_request(runner: Runner) -> None:
    """A second run reports archived and failed tasks as skipped and sends nothing at all."""
    emu = runner.emu
    tasks = [emu.add_task(), emu.add_task(), emu.add_task("FAILED")]
    assert runner.run(*tasks).code == 0
    before = {p: p.stat().st_mtime_ns for p in runner.final_files()}
    emu.clear_requests()
    again = runner.run(*tasks)
    assert again.code == 0
    assert set(again.states().values()) == {"skipped"}
    assert emu.requests == []
    assert {p: p.stat().st_mtime_ns for p in runner.final_files()} == before
    assert len(again.task(tasks[0])["files"]) == 5  # the report still lists what is archived


def test_a_run_leaves_the_collector_thresholds_as_it_found_them(runner: Runner) -> None:
    """A run changes the collector's thresholds for itself alone: an in-process caller's return."""
    before = gc.get_threshold()
    try:
        gc.set_threshold(123, 4, 5)
        assert runner.run(runner.emu.add_task(previews=0)).code == 0
        assert gc.get_threshold() == (123, 4, 5)
    finally:
        gc.set_threshold(*before)


def test_pending_is_fetched_again_and_failed_only_with_refresh(runner: Runner) -> None:
    """Pending tasks are retried next run; FAILED ones only when --refresh asks."""
    emu = runner.emu
    pending, failed = emu.add_task("PENDING"), emu.add_task("FAILED")
    assert runner.run(pending, failed).states() == {pending: "pending", failed: "failed"}
    emu.set_status(pending, "SUCCEEDED")
    emu.clear_requests()
    assert runner.run(pending, failed).states() == {pending: "archived", failed: "skipped"}
    assert [r.origin for r in emu.requests].count("api") == 1
    emu.clear_requests()
    refreshed = runner.run(failed, "--refresh")
    assert refreshed.states() == {failed: "failed"}
    assert [r.origin for r in emu.requests] == ["api"]


def test_token_goes_to_the_api_origin_only(runner: Runner) -> None:
    """Every API request carries the Bearer token; no CDN request carries any Authorization."""
    task = runner.emu.add_task()
    assert runner.run(task).code == 0
    api = [r for r in runner.emu.requests if r.origin == "api"]
    cdn = [r for r in runner.emu.requests if r.origin == "cdn"]
    assert api and cdn
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in api)
    assert not any("authorization" in {k.lower() for k in r.headers} for r in cdn)


def test_task_id_reaches_the_server_verbatim(runner: Runner) -> None:
    """':' and '@' in the task id are sent as they are, not percent-encoded."""
    task = runner.emu.add_task()
    runner.run(task)
    paths = [r.raw_path for r in runner.emu.requests if r.origin == "api"]
    assert paths == [f"/v1/runwayml/tasks/{task}"]


def test_rejected_token_exits_3_and_never_shows_it(runner: Runner) -> None:
    """A 401 stops the run at once with exit 3; the token is in no output, report or file."""
    tasks = [runner.emu.add_task() for _ in range(3)]
    runner.emu.token = "another-token"
    result = runner.run(*tasks, "--concurrency", "1")
    assert result.code == 3
    assert "401" in result.err
    assert [r.origin for r in runner.emu.requests] == ["api"]
    everything = result.out + result.err
    for path in runner.root.rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode("latin-1")
    assert TOKEN not in everything


def test_mismatched_file_is_caught_and_never_final(runner: Runner) -> None:
    """Size, duration and dimension disagreements end in error; the file keeps a .rejected name."""
    emu = runner.emu
    claims = {
        "fileSize": ("fileSize", "123", "API says 123"),
        "duration": ("duration", 5.21, "duration 2.00 s, API says 5.21 s"),
        "dimensions": ("dimensions", [1280, 768], "dimensions 320x192, API says 1280x768"),
        "frameRate": ("frameRate", 30, "frame rate 24.00 fps, API says 30.00 fps"),
    }
    tasks = {}
    for name, (key, value, _) in claims.items():
        tasks[name] = emu.add_task()
        artifact = emu.task_json(tasks[name])["artifacts"][0]
        (artifact if key == "fileSize" else artifact["metadata"])[key] = value
    other = emu.add_task(artifacts=[ArtifactSpec(serve=VideoSpec(seconds=1.0))])
    result = runner.run(*tasks.values(), other)
    assert result.code == 1
    assert set(result.states().values()) == {"error"}
    for name, (_, _, message) in claims.items():
        assert message in result.task(tasks[name])["error"], name
    assert "API says" in result.task(other)["error"]
    assert [p for p in runner.final_files() if p.suffix == ".mp4"] == []
    assert len([p for p in runner.final_files() if p.name.endswith(".mp4.rejected")]) == 5
    # a file that fails verification is downloaded exactly once more
    url = emu.task_json(tasks["duration"])["artifacts"][0]["url"]
    video_path = url.split("?")[0].removeprefix(emu.cdn_url)
    assert len([r for r in emu.requests if r.raw_path.startswith(video_path + "?")]) == 2
    assert [f.path for _, f in runner.catalog().files if ".mp4" in f.path] == []


def test_image_artifacts_and_shared_filenames(runner: Runner) -> None:
    """An image artifact (no duration) is archived as an image; same filenames stay distinct."""
    task = runner.emu.add_task(
        artifacts=[
            ArtifactSpec(video=None, image=(320, 192), png=True, filename="same", previews=1),
            ArtifactSpec(filename="same", previews=1),
        ]
    )
    result = runner.run(task)
    assert result.code == 0, result.err
    names = sorted(Path(f["path"]).name for f in result.task(task)["files"])
    assert names == [
        "init_image.jpg",
        "same-2.mp4",
        "same-2.preview-1.jpg",
        "same.png",
        "same.preview-1.jpg",
    ]


def test_locked_archive_exits_75(runner: Runner) -> None:
    """While another holder has the archive lock, a run exits 75 at once and names the lock."""
    task = runner.emu.add_task()
    runner.root.mkdir()
    with hold_lock(runner.root):
        result = runner.run(task)
    assert result.code == 75
    assert ".runway-archiver.lock" in result.err and "pid" in result.err
    assert runner.emu.requests == []
