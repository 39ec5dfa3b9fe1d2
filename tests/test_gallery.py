"""The gallery's files, its command, its refresh after run and verify --repair (no browser here)."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver.catalog import sqlite_testing
from archiver.gallery import display
from archiver.model import Task
from archiver.scrub import redact
from archiver.testing import ArtifactSpec, Upload

from .conftest import TOKEN, Runner

PREFIX = {
    "data.js": "window.RUNWAY_GALLERY_DATA = ",
    "data-more.js": "window.RUNWAY_GALLERY_MORE = ",
}
SHARD = re.compile(r'window\.RUNWAY_GALLERY_SHARD\("([0-9a-f]{2})", (.*)\);\n', re.S)


def script_json(path: Path, prefix: str) -> Any:
    text = path.read_text(encoding="utf-8")
    assert text.startswith(prefix) and text.endswith(";\n"), path
    return json.loads(text[len(prefix) : -2])


def cards(root: Path) -> list[dict[str, Any]]:
    """Every card of the gallery, as column name -> value."""
    head = script_json(root / "gallery/data.js", PREFIX["data.js"])
    rows = head["rows"] + script_json(root / "gallery/data-more.js", PREFIX["data-more.js"])
    assert len(rows) == head["count"]
    return [dict(zip(head["columns"], row, strict=True)) for row in rows]


def details(root: Path) -> dict[str, Any]:
    """Every detail entry of the gallery, by task folder."""
    found: dict[str, Any] = {}
    for path in sorted((root / "gallery/detail").glob("??.js")):
        text = path.read_text(encoding="utf-8")
        match = SHARD.fullmatch(text)
        assert match and match[1] == path.stem, path
        entries = json.loads(match[2])
        assert all(display.shard(folder) == path.stem for folder in entries)
        found.update(entries)
    return found


def gallery_files(root: Path) -> list[Path]:
    return [root / "index.html", *sorted((root / "gallery").rglob("*.*"))]


def test_gallery_command_writes_a_page_that_needs_no_network(runner: Runner) -> None:
    """`gallery` writes index.html and its folder, prints the file:// link, and links nothing
    outside the archive: relative paths only, a CSP that forbids inline script."""
    tasks = [runner.emu.add_task(), runner.emu.add_task(), runner.emu.add_task("FAILED")]
    assert runner.run(*tasks).code == 0
    shutil.rmtree(runner.root / "gallery")
    (runner.root / "index.html").unlink()
    result = runner.run(command="gallery")
    assert result.code == 0, result.err
    index = runner.root / "index.html"
    assert result.out == f"gallery: 3 tasks: {index.resolve().as_uri()}\n"
    names = {p.relative_to(runner.root).as_posix() for p in gallery_files(runner.root)}
    assert {"index.html", "gallery/gallery.js", "gallery/gallery.css", "gallery/data.js"} <= names
    assert len([n for n in names if n.startswith("gallery/detail/")]) in (2, 3, 4)
    assert "gallery/detail/manifest.json" in names
    page = index.read_text(encoding="utf-8")
    assert "script-src 'self'" in page and "default-src 'none'" in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(links) == 3
    assert all(link.startswith("gallery/") and "//" not in link for link in links)
    assert "<script>" not in page and "style=" not in page
    # The one URL in the page's code is SVG's namespace name, which is never fetched (URLs in
    # the data are option values, shown as text: the browser tests watch every request).
    for path in (index, runner.root / "gallery/gallery.js", runner.root / "gallery/gallery.css"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path


def test_cards_and_details_match_the_catalog(runner: Runner) -> None:
    """One card per archived or failed task, thumbnail and video on disk, and every catalog
    file in the detail entry with its bytes and sha256."""
    emu = runner.emu
    ok, other = emu.add_task(previews=2), emu.add_task(previews=1)
    failed, pending = emu.add_task("FAILED"), emu.add_task("RUNNING")
    assert runner.run(ok, other, failed, pending).code == 0
    shown = {c["dir"]: c for c in cards(runner.root)}
    held = runner.catalog()
    rows = [(t, row.dir, row.state) for t, row in held.tasks.items()]
    assert set(shown) == {d for _, d, state in rows if state in ("archived", "failed")}
    entries = details(runner.root)
    assert set(entries) == set(shown)
    for task_id, folder, state in rows:
        if state == "pending":
            continue
        card, entry = shown[folder], entries[folder]
        listed = [(f.kind, f.path, f.size, f.sha256) for f in held.files_of(task_id)]
        assert sorted((f[0], f"{folder}/{f[2]}", f[3], f[4]) for f in entry["files"]) == sorted(
            listed
        )
        assert entry["task"]["taskId"] == task_id
        assert card["inputs"] == 1  # the default options' init_image, kept for a failed task too
        assert entry["files"][-1][:3] == ["input", -1, "inputs/init_image.jpg"]
        if state == "failed":
            assert card["status"] == "FAILED" and card["thumb"] is None
            assert card["error"] == "SAFETY.INPUT.TEXT: This generation could not be completed."
            continue
        assert (runner.root / folder / card["thumb"]).is_file()
        assert card["thumb"].endswith(".preview-1.jpg")
        assert (runner.root / folder / card["video"]).read_bytes()[4:8] == b"ftyp"
        assert (card["duration"], card["width"], card["height"]) == (2.0, 320, 192)
        assert card["model"] == "gen3a" and card["seed"] == "123456789"


def test_signed_urls_and_the_token_never_reach_the_gallery(runner: Runner) -> None:
    """Options are flattened into rows; signed input URLs and a callback URL with a password
    keep no query string and no credentials, and the token is in no gallery file."""
    options = {
        "seed": 2**60 + 1,
        "init_image": Upload(image=(64, 64), name="init"),
        "gen2Options": {"textPrompt": "an owl at dusk", "motion_vector": {"x": 0.5, "y": -1}},
        "keyframes": [{"image": Upload(image=(32, 32), name="key"), "timestamp": 0}],
        # a callback is never fetched, so its URL stays in the options as served
        "webhookUrl": "https://u:p@hooks.example/done?X-Amz-Signature=deadbeef&X-Amz-Credential=k",
    }
    task = runner.emu.add_task(options=options)
    result = runner.run(task)
    assert result.code == 0, result.err
    served = runner.emu.task_json(task)["options"]
    (card,) = cards(runner.root)
    assert card["prompt"] == "an owl at dusk"
    assert card["seed"] == str(2**60 + 1)  # as text: a JavaScript number would lose digits
    assert card["inputs"] == 2
    (entry,) = details(runner.root).values()
    pairs = dict(entry["task"]["options"])
    assert pairs["init_image"] == served["init_image"].split("?")[0] + "?…"
    assert pairs["keyframes[0].image"] == served["keyframes"][0]["image"].split("?")[0] + "?…"
    assert pairs["gen2Options.motion_vector.y"] == "-1"
    assert pairs["webhookUrl"] == "https://hooks.example/done?…"
    for path in gallery_files(runner.root):
        text = path.read_text(encoding="utf-8")
        assert "deadbeef" not in text and "Credential" not in text and "u:p@" not in text
        assert TOKEN not in text and "_jwt" not in text


def test_run_refreshes_the_gallery_only_when_something_changed(runner: Runner) -> None:
    """A run that archives refreshes the gallery; a run that only skips leaves it as it was."""
    first = runner.emu.add_task()
    assert runner.run(first).code == 0
    data = runner.root / "gallery/data.js"
    data.write_text("stale")
    assert runner.run(first).code == 0
    assert data.read_text() == "stale"
    second = runner.emu.add_task()
    result = runner.run(first, second)
    assert result.code == 0 and result.err == ""
    assert len(cards(runner.root)) == 2


def test_gallery_false_writes_no_gallery(runner: Runner) -> None:
    """With `gallery: false` a run writes no index.html and no gallery folder."""
    runner.configure(gallery=False)
    assert runner.run(runner.emu.add_task()).code == 0
    assert not (runner.root / "index.html").exists()
    assert not (runner.root / "gallery").exists()


def test_a_gallery_failure_is_one_warning_and_no_task_error(runner: Runner) -> None:
    """A file where the gallery folder goes: the run still archives and exits 0, says so in one
    warning line, and the media and sidecar are as archived."""
    runner.root.mkdir()
    (runner.root / "gallery").write_text("not a folder")
    task = runner.emu.add_task()
    result = runner.run(task)
    assert result.code == 0
    assert result.states() == {task: "archived"}
    (line,) = result.err.splitlines()
    assert line.startswith("warning: gallery not refreshed: ") and "gallery" in line[32:]
    assert (runner.root / "gallery").read_text() == "not a folder"
    for f in result.task(task)["files"]:
        data = (runner.root / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    assert (runner.root / result.task(task)["sidecar"]).is_file()
    failed = runner.run(command="gallery")
    assert failed.code == 1 and failed.out == ""
    assert failed.err.count("\n") == 1 and "not a plain folder" in failed.err


def test_a_gallery_bug_is_exit_70_not_a_warning(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the gallery (injected here) is not hidden as a warning: the run's tasks are
    archived and reported, then the last-resort guard prints its one line and exits 70."""
    task = runner.emu.add_task(previews=0)

    def broken(*_: object) -> bytes:
        raise KeyError("injected")

    # The module, not the `build` function the package exports under the same name.
    monkeypatch.setattr(importlib.import_module("archiver.gallery.build"), "_script", broken)
    result = runner.run(task)
    assert result.code == 70
    assert result.err.splitlines() == [
        "runway-archiver: internal error (KeyError: 'injected'); this is a bug;"
        " --debug shows the traceback"
    ]
    assert result.states() == {task: "archived"}
    for f in result.task(task)["files"]:
        assert hashlib.sha256((runner.root / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert not (runner.root / "index.html").exists()


def test_a_planted_symlink_is_replaced_not_followed(runner: Runner) -> None:
    """A symlink planted at index.html is replaced by the page; its target is left as it was."""
    task = runner.emu.add_task()
    assert runner.run(task).code == 0
    outside = runner.root.parent / "outside.txt"
    outside.write_text("keep me")
    (runner.root / "index.html").unlink()
    (runner.root / "index.html").symlink_to(outside)
    assert runner.run(command="gallery").code == 0
    assert outside.read_text() == "keep me"
    assert not (runner.root / "index.html").is_symlink()
    assert "<!doctype html>" in (runner.root / "index.html").read_text()


def test_verify_repair_refreshes_the_gallery(runner: Runner) -> None:
    """verify leaves the gallery alone; verify --repair, which changes the archive, rebuilds it."""
    task = runner.emu.add_task()
    result = runner.run(task)
    video = runner.root / result.task(task)["files"][0]["path"]
    video.write_bytes(video.read_bytes()[:-100])
    data = runner.root / "gallery/data.js"
    data.write_text("stale")
    assert runner.run("--no-progress", command="verify").code == 1
    assert data.read_text() == "stale"
    repaired = runner.run("--no-progress", "--repair", command="verify")
    assert repaired.code == 0, repaired.err
    assert [c["dir"] for c in cards(runner.root)] == [result.task(task)["dir"]]


def test_an_archive_from_before_the_gallery_is_filled_from_its_sidecars(runner: Runner) -> None:
    """A catalog from before the display table is migrated, and each card is made from the
    task's sidecar, equal to the card made when the task was archived."""
    tasks = [runner.emu.add_task(), runner.emu.add_task("CANCELLED")]
    assert runner.run(*tasks).code == 0
    before = cards(runner.root), details(runner.root)
    # The schema as it was before the display step: that step and the later ones undone.
    sqlite_testing.undo_display_step(runner.catalog_path)
    result = runner.run(command="gallery")
    assert result.code == 0, result.err
    assert (cards(runner.root), details(runner.root)) == before
    assert sqlite_testing.schema_version(runner.catalog_path) == sqlite_testing.SCHEMA_VERSION
    assert sqlite_testing.display_rows(runner.catalog_path) == 2


def test_a_sidecar_of_the_layout_before_task_and_archiver_still_makes_the_card(
    runner: Runner,
) -> None:
    """A one-level sidecar (taskId, options, artifacts[].file: the layout before task: and
    archiver:) makes the same card and detail as the sidecar written now."""
    task = runner.emu.add_task()
    result = runner.run(task)
    before = cards(runner.root), details(runner.root)
    path = runner.root / result.task(task)["sidecar"]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    served, ours = doc["task"], doc["archiver"]
    old = {k: served[k] for k in ("taskId", "id", "name", "taskType", "status", "createdAt")}
    old |= {"updatedAt": served["updatedAt"], "options": served["options"], "error": None}
    old["options"]["init_image"] = redact(old["options"]["init_image"])
    old["artifacts"] = [
        {"id": a["id"], "filename": a["filename"], "metadata": a["metadata"], **mine}
        for a, mine in zip(served["artifacts"], ours["artifacts"], strict=True)
    ]
    old["archiver"] = {"version": ours["version"], "archivedAt": ours["archivedAt"]}
    path.write_text(yaml.safe_dump(old, sort_keys=False), encoding="utf-8")
    sqlite_testing.forget_display_rows(runner.catalog_path)
    assert runner.run(command="gallery").code == 0
    assert (cards(runner.root), details(runner.root)) == before


def test_a_task_without_its_sidecar_still_gets_a_card(runner: Runner) -> None:
    """An old task whose sidecar is gone gets a card from what the catalog knows."""
    task = runner.emu.add_task()
    result = runner.run(task)
    (runner.root / result.task(task)["sidecar"]).unlink()
    sqlite_testing.forget_display_rows(runner.catalog_path)
    assert runner.run(command="gallery").code == 0
    (card,) = cards(runner.root)
    assert card["status"] == "SUCCEEDED" and card["name"] is None
    assert card["video"] is not None


def test_input_files_are_counted_and_listed(runner: Runner) -> None:
    """Each input the catalog holds for a task counts on its card and is listed in its detail,
    after the outputs, with the bytes and sha256 of the file served; no input, no count."""
    emu = runner.emu
    one = emu.add_task(previews=1)
    two = emu.add_scenario("act_two")
    none = emu.add_task(previews=1, options={"text_prompt": "no inputs here"})
    result = runner.run(one, two, none)
    assert result.code == 0, result.err
    shown = {c["dir"]: c for c in cards(runner.root)}
    entries = details(runner.root)
    for task, count in ((one, 1), (two, 2), (none, 0)):
        folder = result.task(task)["dir"]
        assert shown[folder]["inputs"] == count
        listed = [f for f in entries[folder]["files"] if f[0] == "input"]
        assert len(listed) == count
        assert entries[folder]["files"][len(entries[folder]["files"]) - count :] == listed
        served = {hashlib.sha256(p.read_bytes()).hexdigest() for p in emu.inputs_of(task).values()}
        assert {f[4] for f in listed} == served
        for f in listed:
            assert f[2].startswith("inputs/") and f[1] == -1
            assert (runner.root / folder / f[2]).stat().st_size == f[3]
    (first,) = (f for f in entries[result.task(one)["dir"]]["files"] if f[0] == "input")
    assert first[2] == "inputs/init_image.jpg"


def test_unchanged_files_are_not_written_again(runner: Runner) -> None:
    """A second build leaves every file whose bytes are the same untouched (same inode)."""
    tasks = [runner.emu.add_task() for _ in range(3)]
    assert runner.run(*tasks).code == 0
    before = {p: p.stat().st_ino for p in gallery_files(runner.root)}
    assert runner.run(command="gallery").code == 0
    after = {p: p.stat().st_ino for p in gallery_files(runner.root)}
    assert set(after) == set(before)
    changed = {p.name for p in before if before[p] != after[p]}
    assert changed <= {"data.js", "index.html"}  # the build time is in data.js


def test_display_of_a_task_is_compact_and_valid_utf8() -> None:
    """The prompt comes from text_prompt or textPrompt (nested too), long text is cut, and a
    lone surrogate from the API still makes valid UTF-8."""
    for options, prompt in (
        ({"text_prompt": "a"}, "a"),
        ({"textPrompt": "b"}, "b"),
        ({"gen2Options": {"text_prompt": "c"}}, "c"),
        ({"text_prompt": 5, "gen2Options": {"textPrompt": "d"}}, "d"),
        ({"seed": 1}, None),
    ):
        assert display.prompt_of(options) == prompt
    task = Task.from_json(
        {"name": "x\ud800y", "options": {"text_prompt": "p" * 5000, "seed": True}}, task_id="t"
    )
    shown = display.of_task(task, "undated_x", [])
    card = dict(zip(display.CARD_COLUMNS, json.loads(shown.card.encode("utf-8")), strict=True))
    assert card["name"] in ("x\ufffd\ufffd\ufffdy", "x\ufffdy")
    assert len(card["prompt"]) == display.MAX_PROMPT and card["prompt"].endswith("…")
    assert card["seed"] is None  # a boolean is no seed
    assert card["thumb"] is None and card["inputs"] == 0 and shown.files == "0:0"


def test_gallery_without_an_archive_exits_2_and_creates_nothing(runner: Runner) -> None:
    """`gallery` on a folder with no catalog exits 2 with one line naming it, writing nothing."""
    runner.root.mkdir()
    result = runner.run(command="gallery")
    assert result.code == 2
    assert result.err == f"runway-archiver: no archive at {runner.root} (no catalog.sqlite3)\n"
    assert list(runner.root.iterdir()) == []


def test_a_task_whose_files_changed_since_is_shown_as_it_is_now(runner: Runner) -> None:
    """A file row the catalog no longer holds (changed by anything but a run) is gone from the
    card's detail at the next build: the display row is made again from the catalog."""
    task = runner.emu.add_task(previews=2)
    result = runner.run(task)
    dropped = result.task(task)["files"][2]["path"]
    sqlite_testing.forget_file_row(runner.catalog_path, dropped)
    assert runner.run(command="gallery").code == 0
    (entry,) = details(runner.root).values()
    listed = [f"{result.task(task)['dir']}/{f[2]}" for f in entry["files"]]
    assert len(listed) == 3 and dropped not in listed  # the video, a preview, the input


def test_a_run_rewrites_only_the_detail_file_of_its_new_task(runner: Runner) -> None:
    """After a run that adds one task, only that task's detail file (and the data files) are
    written again; a detail file that went missing is written again by the next build."""
    old = [runner.emu.add_task() for _ in range(3)]
    assert runner.run(*old).code == 0
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in gallery_files(runner.root)}
    new = runner.emu.add_task()
    result = runner.run(new)
    assert result.code == 0
    after = {p.name: (p.stat().st_ino, p.read_bytes()) for p in gallery_files(runner.root)}
    changed = {name for name in after if before.get(name) != after[name]}
    new_shard = f"{display.shard(result.task(new)['dir'])}.js"
    assert changed <= {"data.js", "data-more.js", "index.html", "manifest.json", new_shard}
    assert new_shard in changed
    folder = runner.catalog().tasks[old[0]].dir
    assert folder is not None
    old_shard = runner.root / "gallery/detail" / f"{display.shard(folder)}.js"
    kept = old_shard.read_bytes()
    old_shard.unlink()
    assert runner.run(command="gallery").code == 0
    assert old_shard.read_bytes() == kept


def test_an_image_artifact_is_its_own_thumbnail(runner: Runner) -> None:
    """A task whose artifact is an image and has no preview shows that image, and no video."""
    task = runner.emu.add_task(artifacts=[ArtifactSpec(video=None, image=(320, 192), previews=0)])
    result = runner.run(task)
    assert result.code == 0, result.err
    (card,) = cards(runner.root)
    assert card["video"] is None and card["duration"] is None
    assert card["thumb"] is not None and card["thumb"].endswith(".jpg")
    assert (card["width"], card["height"]) == (320, 192)
    assert (runner.root / card["dir"] / card["thumb"]).is_file()


def test_a_detail_file_that_cannot_be_written_is_one_error_line(runner: Runner) -> None:
    """Detail files are written several at once: a folder planted where one goes stops the
    build with one line naming that file (exit 74, storage); no temp file is left, and every
    other detail file there is whole."""
    tasks = [runner.emu.add_task(previews=0) for _ in range(8)]
    result = runner.run(*tasks)
    assert result.code == 0
    detail = runner.root / "gallery/detail"
    written = {p.name: p.read_bytes() for p in detail.glob("??.js")}
    assert len(written) >= 2
    shutil.rmtree(detail)
    blocked = detail / sorted(written)[0]
    blocked.mkdir(parents=True)
    failed = runner.run(command="gallery")
    assert failed.code == 74 and failed.out == ""
    (line,) = failed.err.splitlines()
    assert line.endswith(f"gallery/detail/{blocked.name}: Is a directory")
    assert blocked.is_dir() and not list(detail.glob(".*"))
    for path in detail.glob("??.js"):
        assert path == blocked or path.read_bytes() == written[path.name]
