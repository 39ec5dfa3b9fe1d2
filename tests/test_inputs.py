"""Input assets over loopback: downloaded once into inputs/, through the outputs' own path.

Resume, expiry re-fetch, retries, size caps and verification by kind; an input gone for good is
recorded once and never asked for again; callbacks are never fetched.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver.catalog import Access, open_catalog, sqlite_testing
from archiver.config import Config
from archiver.model import Missing, MissingInput, State, TaskOutcome
from archiver.testing import Emulator, Upload, VideoSpec

from .conftest import TOKEN, Result, Runner


def upload_path(emu: Emulator, task_id: str, option: str) -> str:
    """The uploads path (no query) of the input at `option`, e.g. '/datasets/<uuid>/x.jpg'."""
    value: Any = {"options": emu.task_json(task_id)["options"]}
    for part in option.replace("[", ".").replace("]", "").split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return str(value).split("?")[0].removeprefix(emu.uploads_url)


def faulty_init_image(runner: Runner, *, previews: int, **fault: Any) -> tuple[str, str]:
    """A default task whose init_image input misbehaves as `fault` says: (task id, its path)."""
    task = runner.emu.add_task(previews=previews)
    path = upload_path(runner.emu, task, "options.init_image")
    runner.emu.asset_fault(path, **fault)
    return task, path


def hits(emu: Emulator, path: str) -> list[int]:
    return [r.status for r in emu.requests if r.raw_path.split("?")[0] == path]


def sidecar(runner: Runner, result: Result, task_id: str) -> dict[str, Any]:
    text = (runner.root / result.task(task_id)["sidecar"]).read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_callback_urls_are_never_requested(runner: Runner) -> None:
    """replyUrl, webhookUrl and callbacks.* hold URLs on a live host; none is ever asked for."""
    task = runner.emu.add_scenario("camel_references")
    result = runner.run(task)
    assert result.code == 0, result.err
    assert [r for r in runner.emu.requests if "/hooks/" in r.raw_path] == []
    listed = [i["option"] for i in sidecar(runner, result, task)["archiver"]["inputs"]]
    assert not any("reply" in o.lower() or "hook" in o.lower() or "callback" in o for o in listed)


def test_one_url_under_two_options_is_downloaded_once(runner: Runner) -> None:
    """promptImage and referenceImages[0].url name one URL: one request, one file, both listed."""
    emu = runner.emu
    task = emu.add_scenario("camel_references")
    path = upload_path(emu, task, "options.promptImage")
    assert path == upload_path(emu, task, "options.referenceImages[0].url")
    result = runner.run(task)
    assert result.code == 0, result.err
    assert hits(emu, path) == [200]
    inputs = {i["option"]: i["path"] for i in sidecar(runner, result, task)["archiver"]["inputs"]}
    assert inputs == {
        "options.promptImage": "inputs/promptImage.jpg",
        "options.referenceImages[0].url": "inputs/promptImage.jpg",
        "options.referenceImages[1].url": "inputs/reference-2.png",
    }


@pytest.mark.parametrize("status", [404, 410])
def test_input_gone_for_good_is_recorded_once_and_never_asked_again(
    runner: Runner, status: int
) -> None:
    """404/410 also for a fresh URL: the task is archived, the input listed unavailable, once."""
    emu = runner.emu
    task, path = faulty_init_image(runner, previews=1, status=status, times=100)
    result = runner.run("--no-progress", task)
    assert result.code == 0, result.err
    assert result.states() == {task: "archived"}
    assert hits(emu, path) == [status, status]  # the first URL, then one from a fresh fetch
    assert [r.origin for r in emu.requests].count("api") == 2
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {task}: input options.init_image unavailable (HTTP {status}, also after a"
        f" fresh fetch of the task), archived without it: {emu.uploads_url}{path}?…"
    ]
    gone = {"option": "options.init_image", "url": f"{emu.uploads_url}{path}?…",
            "reason": f"HTTP {status}, also after a fresh fetch of the task"}  # fmt: skip
    assert sidecar(runner, result, task)["archiver"]["unavailableInputs"] == [gone]
    assert sidecar(runner, result, task)["archiver"]["inputs"] == []
    assert result.task(task)["unavailable_inputs"] == [gone]
    held = runner.catalog().unavailable
    assert {t: [(m.option, m.reason) for m in found] for t, found in held.items()} == {
        task: [("options.init_image", gone["reason"])]
    }
    # A later run skips the task; a repair that archives it again does not ask either.
    emu.clear_requests()
    again = runner.run("--no-progress", task)
    assert again.states() == {task: "skipped"} and emu.requests == []
    assert again.task(task)["unavailable_inputs"] == [gone]
    video = next(f for f in result.task(task)["files"] if f["kind"] == "artifact")
    (runner.root / video["path"]).unlink()
    repaired = runner.run("--no-progress", "--repair", command="verify")
    assert repaired.code == 0, repaired.out + repaired.err
    assert hits(emu, path) == [] and "warning" not in repaired.err
    assert sidecar(runner, result, task)["archiver"]["unavailableInputs"] == [gone]


def test_refused_input_url_fetches_the_task_again(runner: Runner) -> None:
    """A 403 (expired signature) on an input re-fetches the task; the fresh URL is archived."""
    emu = runner.emu
    task, path = faulty_init_image(runner, previews=1, status=403, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert hits(emu, path) == [403, 200]
    assert [r.origin for r in emu.requests].count("api") == 2
    queries = [r.raw_path for r in emu.requests if r.raw_path.startswith(path + "?")]
    assert len(set(queries)) == 2  # re-signed on the second retrieve
    source = emu.inputs_of(task)["options.init_image"]
    assert (
        runner.root / result.task(task)["files"][-1]["path"]
    ).read_bytes() == source.read_bytes()


def test_urls_expired_by_the_clock_include_inputs(runner: Runner) -> None:
    """With every URL expired, outputs and inputs alike are refreshed, then archived next run."""
    emu = runner.emu
    task = emu.add_task(previews=0)
    emu.url_ttl = -60
    failed = runner.run(task)
    assert failed.code == 1 and "HTTP 403" in failed.task(task)["error"]
    assert {r.status for r in emu.requests if r.origin == "uploads"} == {403}
    emu.url_ttl = 3600
    assert runner.run(task).code == 0


def test_transient_input_failure_is_a_task_error_then_only_it_is_fetched(runner: Runner) -> None:
    """A 503 on an input past all retries ends the task in error; the next run gets only it."""
    emu = runner.emu
    task, path = faulty_init_image(runner, previews=2, status=503, times=3)
    first = runner.run(task)
    assert first.code == 1
    assert (first.task(task)["state"], first.task(task)["status"]) == ("error", "SUCCEEDED")
    assert "HTTP 503" in first.task(task)["error"] and "_jwt" not in first.task(task)["error"]
    assert [f["kind"] for f in first.task(task)["files"]] == ["artifact", "preview", "preview"]
    emu.clear_requests()
    second = runner.run(task)
    assert second.code == 0, second.err
    assert [r.raw_path.split("?")[0] for r in emu.requests if r.origin != "api"] == [path]
    assert [f["kind"] for f in second.task(task)["files"]][-1] == "input"


def test_input_cut_short_resumes_with_range(runner: Runner) -> None:
    """An input video cut mid-body is resumed from the bytes on disk and verifies whole."""
    emu = runner.emu
    emu.cdn_rate = 200_000  # paced, so the cut lands mid-stream (uploads share the pacing)
    source = Upload(video=VideoSpec(320, 192, 24, 2.0, variant=9, bitrate="1M"), name="take")
    task = emu.add_task(previews=0, options={"video": source})
    path = upload_path(emu, task, "options.video")
    emu.asset_fault(path, truncate_at=60_000, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    first, second = [r.headers for r in emu.requests if r.raw_path.startswith(path + "?")]
    assert "Range" not in first and "If-Range" in second
    assert 0 < int(second["Range"].removeprefix("bytes=").rstrip("-")) <= 60_000
    assert hits(emu, path) == [200, 206]
    entry = result.task(task)["files"][-1]
    assert entry["path"].endswith("/inputs/video.mp4")
    assert entry["sha256"] == sha(emu.inputs_of(task)["options.video"])
    assert [p for p in runner.root.rglob("*") if p.suffix in (".part", ".etag")] == []


def test_input_larger_than_max_input_bytes_is_skipped(runner: Runner) -> None:
    """Past max_input_bytes an input is not kept (warned, listed skipped); the task archives."""
    emu = runner.emu
    task = emu.add_task(
        previews=0, options={"image": Upload(image=(64, 64)), "video": Upload(video=VideoSpec())}
    )
    small = emu.inputs_of(task)["options.image"].stat().st_size
    runner.configure(max_input_bytes=small + 1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert [Path(f["path"]).name for f in result.task(task)["files"]] == [
        "Gen-3-Alpha-1234-a-cat.mp4",
        "image.jpg",
    ]
    skipped = sidecar(runner, result, task)["archiver"]["skippedInputs"]
    assert [(s["option"], s["reason"]) for s in skipped] == [
        ("options.video", f"larger than {small + 1} bytes (max_input_bytes)")
    ]
    assert result.task(task)["skipped_inputs"][0]["option"] == "options.video"
    assert "warning: " in result.err and "options.video" in result.err
    assert not (runner.root / result.task(task)["dir"] / "inputs" / "video.part").exists()
    assert runner.catalog().unavailable == {}


def test_max_inputs_bounds_what_one_task_fetches(runner: Runner) -> None:
    """A task naming 6 inputs with max_inputs 2 fetches 2, lists 4 as skipped, and archives."""
    emu = runner.emu
    options = {"refs": [{"url": Upload(image=(32, 32), variant=v)} for v in range(6)]}
    task = emu.add_task(previews=0, options=options)
    runner.configure(max_inputs=2)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert len([r for r in emu.requests if r.origin == "uploads"]) == 2
    doc = sidecar(runner, result, task)["archiver"]
    assert [i["option"] for i in doc["inputs"]] == ["options.refs[0].url", "options.refs[1].url"]
    assert [s["option"] for s in doc["skippedInputs"]] == [
        f"options.refs[{i}].url" for i in range(2, 6)
    ]
    assert f"warning: {task}: 4 input(s) beyond max_inputs (2) not fetched" in result.err


@pytest.mark.parametrize("how", ["flag", "config"])
def test_inputs_can_be_turned_off(runner: Runner, how: str) -> None:
    """--no-inputs (or inputs: false) archives the outputs only; options still verbatim."""
    task = runner.emu.add_task(previews=1)
    args = ["--no-inputs"] if how == "flag" else []
    if how == "config":
        runner.configure(inputs=False)
    result = runner.run(*args, task)
    assert result.code == 0, result.err
    assert [r for r in runner.emu.requests if r.origin == "uploads"] == []
    assert [f["kind"] for f in result.task(task)["files"]] == ["artifact", "preview"]
    doc = sidecar(runner, result, task)
    assert doc["archiver"]["inputs"] == []
    assert "_jwt=" in doc["task"]["options"]["init_image"]


def test_symlink_at_the_inputs_folder_is_refused(runner: Runner) -> None:
    """A symlink planted at <task>/inputs is not followed: the task errors, the target is empty."""
    emu = runner.emu
    task = emu.add_task(previews=0)
    first = runner.run("--no-inputs", task)
    outside = runner.root.parent / "outside"
    outside.mkdir()
    (runner.root / first.task(task)["dir"] / "inputs").symlink_to(outside, target_is_directory=True)
    sqlite_testing.forget_tasks(runner.catalog_path)  # archived again, now with inputs
    result = runner.run(task)
    assert result.code == 1
    assert "not a plain folder" in result.task(task)["error"]
    assert list(outside.iterdir()) == []


def test_audio_input_is_verified_as_audio(runner: Runner) -> None:
    """An M4A input is archived when ffprobe sees its audio stream; its probe names the codec."""
    task = runner.emu.add_scenario("lip_sync")
    result = runner.run(task)
    assert result.code == 0, result.err
    inputs = {i["option"]: i for i in sidecar(runner, result, task)["archiver"]["inputs"]}
    assert inputs["options.audio"]["path"] == "inputs/audio.m4a"
    assert inputs["options.audio"]["probe"]["audio_codec"] == "aac"
    assert "codec" not in inputs["options.audio"]["probe"]
    assert inputs["options.video"]["probe"]["codec"] == "h264"


def test_audio_input_that_is_no_audio_is_rejected(runner: Runner, tmp_path: Path) -> None:
    """An input that claims to be M4A but is not readable audio fails twice, kept as .rejected."""
    fake = tmp_path / "voice.m4a"
    fake.write_bytes(b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00" + os.urandom(4000))
    task = runner.emu.add_task(previews=0, options={"audio": Upload(file=fake)})
    result = runner.run(task)
    assert result.code == 1
    error = result.task(task)["error"]
    assert (
        error.startswith("input options.audio: ffprobe cannot read it")
        and "kept as audio.m4a.rejected" in error
    )
    folder = runner.root / result.task(task)["dir"]
    assert (folder / "inputs" / "audio.m4a.rejected").read_bytes() == fake.read_bytes()
    assert not (folder / "inputs" / "audio.m4a").exists()


@pytest.mark.parametrize(
    ("scenario", "claim", "message"),
    [
        ("gen4_turbo_i2v", True, "no audio stream, API says hasAudio: true"),
        ("camel_references", False, "an audio stream (aac), API says hasAudio: false"),
    ],
)
def test_audio_claim_that_disagrees_with_the_file_is_caught(
    runner: Runner, scenario: str, claim: bool, message: str
) -> None:
    """hasAudio true on a silent video, or false on one with AAC, is a verification error."""
    task = runner.emu.add_scenario(scenario)
    runner.emu.task_json(task)["artifacts"][0]["metadata"]["hasAudio"] = claim
    result = runner.run(task)
    assert result.code == 1
    assert message in result.task(task)["error"]
    assert [p for p in runner.final_files() if p.suffix == ".mp4"] == []
    assert len([p for p in runner.final_files() if p.name.endswith(".mp4.rejected")]) == 1


def test_each_media_file_is_probed_once(runner: Runner, tmp_path: Path) -> None:
    """One ffprobe run per video or audio file, audio claims included; images need none."""
    real = next(
        Path(d, "ffprobe") for d in os.environ["PATH"].split(":") if Path(d, "ffprobe").is_file()
    )
    log = tmp_path / "ffprobe.log"
    shim = tmp_path / "bin" / "ffprobe"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    runner.monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    task = runner.emu.add_scenario("lip_sync")  # an AAC video out; a video and an M4A in
    result = runner.run(task)
    assert result.code == 0, result.err
    probed = [Path(line.split()[-1]).name for line in log.read_text().splitlines()]
    assert sorted(probed) == sorted(["Lip-Sync-31-the-speech.part", "video.part", "audio.part"])


def test_report_carries_the_status_of_every_retrieved_task(runner: Runner) -> None:
    """Archived, failed, pending and every kind of error: the API's status whenever it answered."""
    emu = runner.emu
    ok, failed, running = emu.add_task(), emu.add_task("FAILED"), emu.add_task("RUNNING")
    empty, malformed, broken = emu.add_task(), emu.add_task(), emu.add_task()
    emu.task_json(empty)["artifacts"] = []
    emu.task_json(malformed)["artifacts"] = "x"
    emu.asset_fault(upload_path(emu, broken, "options.init_image"), status=500, times=10)
    missing = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
    result = runner.run("--no-progress", ok, failed, running, empty, malformed, broken, missing)
    got = {t: (result.task(t)["state"], result.task(t)["status"]) for t in result.states()}
    assert got == {
        ok: ("archived", "SUCCEEDED"),
        failed: ("failed", "FAILED"),
        running: ("pending", "RUNNING"),
        empty: ("error", "SUCCEEDED"),
        malformed: ("error", "SUCCEEDED"),
        broken: ("error", "SUCCEEDED"),
        missing: ("error", None),  # the API answered 404: no task JSON
    }
    assert "artifacts: none in a SUCCEEDED task" in result.task(empty)["error"]
    statuses = {t: row.status for t, row in runner.catalog().tasks.items()}
    assert statuses[empty] == statuses[malformed] == statuses[broken] == "SUCCEEDED"


def test_inputs_go_without_the_token_and_byte_for_byte(runner: Runner) -> None:
    """Input URLs are requested exactly as served, from the uploads host, with no Authorization."""
    emu = runner.emu
    task = emu.add_scenario("act_two")
    result = runner.run(task)
    assert result.code == 0, result.err
    uploads = [r for r in emu.requests if r.origin == "uploads"]
    served = sorted(
        v["url"].removeprefix(emu.uploads_url)
        for v in (emu.task_json(task)["options"][k] for k in ("character", "reference"))
    )
    assert sorted(r.raw_path.split("?")[0] for r in uploads) == [s.split("?")[0] for s in served]
    assert all("?_jwt=" in r.raw_path for r in uploads)
    assert not any(k.lower() == "authorization" for r in uploads for k in r.headers)
    texts = [result.out, result.err, (runner.root.parent / "report.json").read_text()]
    texts.append((runner.root / "catalog.sqlite3").read_bytes().decode("latin-1"))
    assert not any("_jwt=" in t or TOKEN in t for t in texts)


def test_a_catalog_from_before_inputs_is_migrated_in_place(tmp_path: Path) -> None:
    """A version-1 catalog gains the unavailable_inputs table; its rows and probes still read."""
    old_probe = json.dumps({"format_name": "mp4", "codec": "h264", "width": 320, "height": 192,
                            "duration": 2.0, "frame_rate": 24.0})  # fmt: skip
    path = tmp_path / "catalog.sqlite3"
    sqlite_testing.write_version_1(
        path,
        [("t", "archived", "SUCCEEDED", "d", None, "x")],
        [("t", "d/a.mp4", "artifact", 0, 5, "ab", old_probe, "[]")],
    )
    gone = MissingInput("options.init_image", "https://u/x.jpg?…", Missing.UNAVAILABLE, "HTTP 404")
    skipped = MissingInput("options.video", "https://u/v.mp4?…", Missing.SKIPPED, "too large")

    async def migrated() -> None:
        async with open_catalog(Config(output_dir=tmp_path), Access.WRITE) as opened:
            assert (await opened.files("t"))[0].probe.audio_codec is None
            assert await opened.unavailable(["t"]) == {}
            outcome = TaskOutcome("t", State.ARCHIVED, "SUCCEEDED", "d", missing=(gone, skipped))
            await opened.record(outcome, now="n1")
            await opened.record(TaskOutcome("t", State.ERROR, "SUCCEEDED", "d"), now="n2")
            # kept, and only what is gone for good
            assert await opened.unavailable(["t"]) == {"t": (gone,)}

    asyncio.run(migrated())
    assert sqlite_testing.schema_version(path) == sqlite_testing.SCHEMA_VERSION
