"""Each of today's response shapes, end to end over loopback: the record, the inputs, the rerun.

For every scenario of the emulator: the sidecar equals the served JSON (type-strict), every input
is on disk with the served bytes and listed with its option path, a rerun makes no request,
`verify` catches an altered input and `--repair` restores it, the report carries the status.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver.testing import SCENARIOS, Emulator

from .conftest import Result, Runner
from .helpers import served_json
from .strict import differences

WITH_INPUTS = [n for n in SCENARIOS if n not in ("failed_string_error", "text_to_image")]


def pinned(emu: Emulator, task_id: str) -> Any:
    """Serve the task's JSON exactly as fetched now (signatures and all); return it parsed."""
    body = served_json(emu, task_id)
    emu.set_raw(task_id, body)
    return json.loads(body)


def sidecar_of(runner: Runner, result: Result, task_id: str) -> dict[str, Any]:
    path = runner.root / result.task(task_id)["sidecar"]
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_is_archived_as_served(runner: Runner, name: str) -> None:
    """The sidecar's task: is the served JSON, its inputs are the served files, with their paths."""
    emu = runner.emu
    task = emu.add_scenario(name)
    served = pinned(emu, task)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert result.task(task)["status"] == served["status"]
    assert result.task(task)["state"] == ("failed" if served["status"] == "FAILED" else "archived")
    doc = sidecar_of(runner, result, task)
    assert differences(doc["task"], served) == []
    folder = runner.root / result.task(task)["dir"]
    listed = {entry["option"]: entry for entry in doc["archiver"]["inputs"]}
    assert set(listed) == set(emu.inputs_of(task))
    for option, source in emu.inputs_of(task).items():
        entry = listed[option]
        on_disk = folder / entry["path"]
        assert entry["path"].startswith("inputs/"), option
        assert on_disk.read_bytes() == source.read_bytes(), option
        assert (entry["bytes"], entry["sha256"]) == (source.stat().st_size, sha(source)), option
        assert entry["probe"], option
    kinds = [f["kind"] for f in result.task(task)["files"]]
    assert kinds.count("input") == len(set(emu.inputs_of(task).values()))
    assert all(r.status == 200 for r in emu.requests if r.origin != "api")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_rerun_makes_no_request(runner: Runner, name: str) -> None:
    """Archived or failed, a scenario's second run is skipped without a single request."""
    task = runner.emu.add_scenario(name)
    assert runner.run(task).code == 0
    runner.emu.clear_requests()
    again = runner.run(task)
    assert again.code == 0 and again.states() == {task: "skipped"}
    assert runner.emu.requests == []
    assert again.task(task)["status"] == runner.emu.task_json(task)["status"]


@pytest.mark.parametrize("name", WITH_INPUTS)
def test_verify_catches_an_altered_input_and_repair_restores_it(runner: Runner, name: str) -> None:
    """A flipped byte in an input is 'damaged' (exit 1); --repair downloads that input alone."""
    emu = runner.emu
    task = emu.add_scenario(name)
    first = runner.run(task)
    assert first.code == 0, first.err
    entry = next(f for f in first.task(task)["files"] if f["kind"] == "input")
    path = runner.root / entry["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    emu.clear_requests()
    report = runner.root.parent / "verify.json"
    checked = runner.run("--no-progress", "--report", str(report), command="verify")
    assert checked.code == 1
    assert (
        f"damaged: {entry['path']}: content changed (sha256 differs from the catalog)"
        in checked.out
    )
    assert emu.requests == []
    repaired = runner.run("--no-progress", "--repair", command="verify")
    assert repaired.code == 0, repaired.out + repaired.err
    assert sha(path) == entry["sha256"]
    downloads = [r.raw_path.split("?")[0] for r in emu.requests if r.origin != "api"]
    assert len(downloads) == 1 and downloads[0].startswith("/datasets/")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "failed_safety",
            "SAFETY.OUTPUT.THIRD_PARTY: Your request was blocked by our third-party content"
            " moderation system.",
        ),
        ("failed_string_error", "An unexpected error occurred while generating. Please try again."),
    ],
)
def test_failed_scenarios_carry_the_reason(runner: Runner, name: str, reason: str) -> None:
    """A FAILED task's outcome says REASON: message (object) or the string itself."""
    task = runner.emu.add_scenario(name)
    result = runner.run(task)
    assert result.code == 0
    assert (result.task(task)["state"], result.task(task)["error"]) == ("failed", reason)
    rows = runner.catalog().tasks.values()
    assert [(row.state, row.status, row.error) for row in rows] == [("failed", "FAILED", reason)]


def test_2025_metadata_is_checked_against_the_file(runner: Runner) -> None:
    """width/height of the 2025 shape and hasAudio are compared; nothing is left unchecked."""
    task = runner.emu.add_scenario("camel_references")
    meta = runner.emu.task_json(task)["artifacts"][0]["metadata"]
    assert "dimensions" not in meta and meta["hasAudio"] is True
    result = runner.run(task)
    assert result.code == 0, result.err
    art = sidecar_of(runner, result, task)["archiver"]["artifacts"][0]
    assert art["unchecked"] == []
    assert (art["file"]["probe"]["width"], art["file"]["probe"]["height"]) == (
        meta["width"],
        meta["height"],
    )
    assert art["file"]["probe"]["audio_codec"] == "aac"


def test_image_generation_keeps_four_images_without_duration(runner: Runner) -> None:
    """text_to_image: four PNG artifacts, each verified as an image, nothing unchecked."""
    task = runner.emu.add_scenario("text_to_image")
    result = runner.run(task)
    assert result.code == 0, result.err
    files = result.task(task)["files"]
    assert [f["kind"] for f in files] == ["artifact"] * 4
    assert all(f["path"].endswith(".png") for f in files)
    served = runner.emu.media_of(task)
    assert [(runner.root / f["path"]).read_bytes() for f in files] == [
        p.read_bytes() for p in served
    ]
    arts = sidecar_of(runner, result, task)["archiver"]["artifacts"]
    assert [a["unchecked"] for a in arts] == [[]] * 4
    assert all("duration" not in a["file"]["probe"] for a in arts)


def test_newer_url_paths_get_the_right_extension(runner: Runner) -> None:
    """An output at /<model>/<id>/<name>.mp4 is archived as .mp4."""
    task = runner.emu.add_scenario("gen4_turbo_i2v")
    url = runner.emu.task_json(task)["artifacts"][0]["url"].split("?")[0]
    assert url.removeprefix(runner.emu.cdn_url).startswith("/gen4_turbo/")
    result = runner.run(task)
    assert result.code == 0, result.err
    video = next(f for f in result.task(task)["files"] if f["kind"] == "artifact")
    assert video["path"].endswith(".mp4")
