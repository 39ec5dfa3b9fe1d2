"""Hostile or broken answers: bad JSON, hostile names and URLs, huge bodies, redirects, symlinks.

Each bad task ends in state `error` naming its cause while the others archive, and nothing is
ever written (or read through a redirect) outside the archive folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from yarl import URL

import archiver
from archiver import files
from archiver.errors import TransferError
from archiver.http import _redirect_target
from archiver.model import Task
from archiver.testing import ArtifactSpec, Emulator, VideoSpec

from .conftest import TOKEN, Result, Runner
from .helpers import served_json

MEDIA_SUFFIXES = {".mp4", ".jpg", ".png", ".rejected", ".part"}


# -- helpers -------------------------------------------------------------------------------------


def video_path(emu: Emulator, task_id: str, index: int = 0) -> str:
    """The CDN path (no query) of an artifact's video, e.g. '/<uuid>.mp4'."""
    url = emu.task_json(task_id)["artifacts"][index]["url"]
    return str(url.split("?", 1)[0].removeprefix(emu.cdn_url))


def folder_of(emu: Emulator, task_id: str) -> str:
    return files.task_dir_name(Task.from_json(emu.task_json(task_id), task_id=task_id))


def everything_outside(runner: Runner) -> dict[str, bytes]:
    """Every file beside the archive folder (config, cwd, planted targets) with its bytes."""
    base = runner.root.parent
    found = {}
    for top, dirs, names in os.walk(base):
        here = Path(top)
        if here == runner.root or runner.root in here.parents:
            dirs.clear()
            continue
        for name in dirs + names:
            path = here / name
            if path in (base / "report.json", runner.root):
                continue
            found[str(path)] = b"<dir>" if path.is_dir() else path.read_bytes()
    return found


def sandbox(runner: Runner) -> Callable[[], None]:
    """Run from an empty working folder; the returned check says nothing changed outside."""
    cwd = runner.root.parent / "cwd"
    cwd.mkdir()
    runner.monkeypatch.chdir(cwd)
    before = everything_outside(runner)

    def check() -> None:
        assert everything_outside(runner) == before
        assert list(cwd.iterdir()) == []

    return check


def assert_only_bad_failed(result: Result, bad: str, good: str, needle: str) -> None:
    """The bad task is in error naming `needle`; the good one archived; exit code 1."""
    assert result.code == 1, result.err
    assert result.states() == {bad: "error", good: "archived"}
    error = result.task(bad)["error"]
    assert needle in error, error
    assert [f for f in result.task(bad)["files"] if f["kind"] == "artifact"] == []


# -- malformed task JSON -------------------------------------------------------------------------


def _set_art(key: str, value: Any) -> Callable[[Emulator, str], None]:
    def mutate(emu: Emulator, task_id: str) -> None:
        emu.task_json(task_id)["artifacts"][0][key] = value

    return mutate


def _set_meta(key: str, value: Any) -> Callable[[Emulator, str], None]:
    def mutate(emu: Emulator, task_id: str) -> None:
        emu.task_json(task_id)["artifacts"][0]["metadata"][key] = value

    return mutate


def _raw(body: bytes, content_type: str = "application/json") -> Callable[[Emulator, str], None]:
    def mutate(emu: Emulator, task_id: str) -> None:
        emu.set_raw(task_id, body, content_type=content_type)

    return mutate


def _null_artifacts(emu: Emulator, task_id: str) -> None:
    emu.task_json(task_id)["artifacts"] = None


BROKEN = {
    "html body": (_raw(b"<html>oops</html>", "text/html"), "not JSON"),
    "a list": (_raw(b'[{"status": "SUCCEEDED"}]'), "task JSON is list, not an object"),
    "a string": (_raw(b'"SUCCEEDED"'), "task JSON is str, not an object"),
    "fileSize abc": (_set_art("fileSize", "abc"), "artifacts[0].fileSize"),
    "dimensions x": (_set_meta("dimensions", "x"), "artifacts[0].metadata.dimensions"),
    "artifacts null": (_null_artifacts, "artifacts: none in a SUCCEEDED task"),
    "previewUrls a string": (_set_art("previewUrls", "http://x"), "artifacts[0].previewUrls"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_malformed_task_is_an_error_naming_the_field(runner: Runner, case: str) -> None:
    """Non-JSON, wrong shapes and wrong types end that task in error; the other task archives."""
    mutate, needle = BROKEN[case]
    check = sandbox(runner)
    bad, good = runner.emu.add_task(previews=1), runner.emu.add_task(previews=1)
    mutate(runner.emu, bad)
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, needle)
    held = runner.catalog()
    assert held.tasks[bad].state == "error"
    assert result.task(bad)["files"] == []
    assert held.files_of(bad) == []
    bad_files = [p for p in runner.final_files() if bad.rpartition(":")[2] in str(p)]
    assert bad_files == []
    check()


def _drop_meta(*keys: str) -> Callable[[Emulator, str], None]:
    def mutate(emu: Emulator, task_id: str) -> None:
        for key in keys:
            del emu.task_json(task_id)["artifacts"][0]["metadata"][key]

    return mutate


LEFT_OUT = {
    "dimensions and size": (_drop_meta("dimensions", "size"), ["dimensions"]),
    "dimensions, size given": (_drop_meta("dimensions"), []),
    "duration": (_drop_meta("duration"), ["duration"]),
    "frameRate": (_drop_meta("frameRate"), ["frameRate"]),
}


@pytest.mark.parametrize("case", LEFT_OUT, ids=list(LEFT_OUT))
def test_left_out_claim_is_archived_and_listed_unchecked(runner: Runner, case: str) -> None:
    """A claim the API left out is not compared, and the sidecar lists it under `unchecked`."""
    mutate, unchecked = LEFT_OUT[case]
    task = runner.emu.add_task(previews=1)
    mutate(runner.emu, task)
    result = runner.run("--no-progress", task)
    assert result.code == 0, result.err
    assert result.states() == {task: "archived"}
    sidecar = runner.root / result.task(task)["sidecar"]
    doc = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    assert doc["archiver"]["artifacts"][0]["unchecked"] == unchecked
    rows = [f.unchecked for _, f in runner.catalog().files if f.kind == "artifact"]
    assert rows == [tuple(unchecked)]


# -- hostile names -------------------------------------------------------------------------------

HOSTILE_NAME = "../../etc/passwd\\..\\x\x00\x01\x1b[31m\x7f\n" + "é" * 500


def test_hostile_names_stay_inside_the_archive(runner: Runner) -> None:
    """Separators, '..', NUL, controls and 500 chars become safe names; clashes stay distinct."""
    check = sandbox(runner)
    filenames = ["a/b", "a\\b", "..", "\x00\x01\x1b\t\n", "../" * 200, "ü" * 500]
    task = runner.emu.add_task(
        name=HOSTILE_NAME,
        artifacts=[ArtifactSpec(filename=f, previews=1) for f in filenames],
    )
    result = runner.run("--no-progress", task)
    assert result.code == 0, result.err
    assert result.states() == {task: "archived"}
    root = runner.root.resolve()
    for top, dirs, names in os.walk(runner.root):
        for name in dirs + names:
            path = Path(top, name)
            assert root in path.resolve().parents, path
            assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name), name
            assert "\\" not in name, name
            assert len(name.encode("utf-8")) <= 255, name
    folders = [p for p in runner.root.iterdir() if p.is_dir() and p.name != "gallery"]
    assert len(folders) == 1 and folders[0].name.endswith(task.rpartition(":")[2])
    paths = [f["path"] for f in result.task(task)["files"]]
    assert len(paths) == len(set(paths)) == 13  # 6 videos, 6 previews, the init_image
    stems = [Path(p).name for p in paths if p.endswith(".mp4")]
    assert stems[:2] == ["a-b.mp4", "a-b-2.mp4"]
    assert stems[2] == "artifact-3.mp4"
    served = runner.emu.media_of(task)
    for entry, source in zip(result.task(task)["files"], served, strict=True):
        assert (runner.root / entry["path"]).read_bytes() == source.read_bytes()
    sidecar = runner.root / result.task(task)["sidecar"]
    doc = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    assert doc["task"]["name"] == HOSTILE_NAME
    assert [a["filename"] for a in doc["task"]["artifacts"]] == filenames
    check()


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("file:///etc/passwd", "file"),
        ("ftp://127.0.0.1/x", "ftp"),
        ("data:video/mp4;base64,AAAA", "data"),
    ],
)
def test_non_http_url_is_refused_unrequested(runner: Runner, url: str, scheme: str) -> None:
    """file:, ftp: and data: artifact URLs are refused by scheme, and nothing fetches them."""
    check = sandbox(runner)
    bad, good = runner.emu.add_task(previews=1), runner.emu.add_task(previews=1)
    original = video_path(runner.emu, bad)
    runner.emu.task_json(bad)["artifacts"][0]["url"] = url
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, f"refused URL scheme '{scheme}'")
    cdn = [r.raw_path for r in runner.emu.requests if r.origin == "cdn"]
    assert not any(p.startswith(original) or p == "/x" or "passwd" in p for p in cdn)
    check()


def test_body_far_larger_than_file_size_is_cut_off(runner: Runner) -> None:
    """A body 2 MiB past fileSize ends the task in error; no .part and no final file remain."""
    check = sandbox(runner)
    bad, good = runner.emu.add_task(previews=1), runner.emu.add_task(previews=1)
    runner.emu.asset_fault(video_path(runner.emu, bad), extra_bytes=2 * 1024 * 1024)
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, "more than allowed")
    folder = runner.root / folder_of(runner.emu, bad)
    stem = files.slug(runner.emu.task_json(bad)["artifacts"][0]["filename"])
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{stem}.preview-1.jpg", "inputs"])
    check()


def test_file_above_max_file_bytes_is_refused(runner: Runner) -> None:
    """With max_file_bytes below a video's size that task ends in error; smaller files archive."""
    emu = runner.emu
    bad = emu.add_task(previews=0, video=VideoSpec(seconds=3.0))
    good = emu.add_task(previews=0, video=VideoSpec(width=64, height=64, seconds=1.0))
    big = emu.media_of(bad)[0].stat().st_size
    small = emu.media_of(good)[0].stat().st_size
    assert small < big - 1
    runner.configure(max_file_bytes=big - 1)
    check = sandbox(runner)
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, "more than allowed")
    # only the small init_image input is there: the video was refused
    folder = runner.root / folder_of(emu, bad)
    assert [p.relative_to(folder).as_posix() for p in folder.rglob("*")] == [
        "inputs",
        "inputs/init_image.jpg",
    ]
    kinds = [f.kind for f in runner.catalog().files_of(bad)]
    assert kinds == ["input"]  # what verified stays recorded; the video does not
    check()


# -- redirects -----------------------------------------------------------------------------------


def test_api_redirect_to_another_origin_drops_the_token(runner: Runner) -> None:
    """A redirect off the API origin is followed without the token; one onto it keeps it."""
    emu = runner.emu
    check = sandbox(runner)
    bad, good = emu.add_task(previews=1), emu.add_task(previews=1)
    emu.api_fault(bad, redirect_to=f"{emu.cdn_url}/moved?from=api")
    emu.api_fault(good, redirect_to=f"{emu.api_url}/runwayml/tasks/{good}")
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, "HTTP 404")
    moved = [r for r in emu.requests if r.raw_path == "/moved?from=api"]
    assert [r.origin for r in moved] == ["cdn"]
    assert not any(k.lower() == "authorization" for k in moved[0].headers)
    assert not any(
        k.lower() == "authorization" for r in emu.requests if r.origin == "cdn" for k in r.headers
    )
    api = [r for r in emu.requests if r.origin == "api"]
    assert len(api) == 3  # bad once, good twice (redirect, then the task)
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in api)
    check()


@pytest.mark.parametrize("kind", ["file", "userinfo"])
def test_cdn_redirect_to_file_or_userinfo_is_refused(runner: Runner, kind: str) -> None:
    """A CDN redirect to file:// or to a URL with user:password is refused, never followed."""
    emu = runner.emu
    check = sandbox(runner)
    port = URL(emu.cdn_url).port
    target, needle = {
        "file": ("file:///etc/passwd", "refused URL scheme 'file'"),
        "userinfo": (f"http://user:pw@127.0.0.1:{port}/x", "refused URL with user info"),
    }[kind]
    bad, good = emu.add_task(previews=1), emu.add_task(previews=1)
    emu.asset_fault(video_path(emu, bad), redirect_to=target)
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, needle)
    assert "pw" not in result.task(bad)["error"]
    assert not any(r.raw_path == "/x" for r in emu.requests)
    assert not any(
        k.lower() == "authorization" for r in emu.requests if r.origin == "cdn" for k in r.headers
    )
    check()


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("https://cdn.example/a/b.mp4?s=1", "https://cdn2.example/c.mp4?t=%3B", None),
        (
            "https://cdn.example/a/b.mp4?s=1",
            "../c/d.mp4?x=%2F%20",
            "https://cdn.example/c/d.mp4?x=%2F%20",
        ),
        ("https://cdn.example/a/b.mp4", "/z.mp4", "https://cdn.example/z.mp4"),
        ("http://cdn.example/a/b.mp4", "https://cdn.example/z.mp4", None),
    ],
)
def test_redirect_target_allows_and_resolves(
    current: str, location: str, expected: str | None
) -> None:
    """Same or stronger scheme is allowed; a relative Location resolves, never re-quoted."""
    target = _redirect_target(URL(current, encoded=True), location)
    assert str(target) == (expected or location)


@pytest.mark.parametrize(
    "location",
    ["http://cdn.example/z.mp4", "file:///etc/passwd", "http://u:p@cdn.example/z", "ftp://x/y"],
)
def test_redirect_target_refuses_downgrade_and_foreign_schemes(location: str) -> None:
    """From https, a redirect to http, file:, ftp: or user info raises TransferError."""
    with pytest.raises(TransferError):
        _redirect_target(URL("https://cdn.example/a/b.mp4?s=1", encoded=True), location)


# -- signed URLs and secrets ---------------------------------------------------------------------


def test_signed_urls_are_requested_byte_for_byte(runner: Runner) -> None:
    """Every CDN request's raw path+query is exactly the one in the JSON the API served."""
    emu = runner.emu
    task = emu.add_task(previews=2)
    body = served_json(emu, task)
    emu.set_raw(task, body)  # serve these very URLs, not freshly signed ones
    artifact = json.loads(body)["artifacts"][0]
    urls = [artifact["url"], *artifact["previewUrls"]]
    expected = sorted(u.removeprefix(emu.cdn_url) for u in urls)
    assert all(code in expected[0] for code in ("%3B", "%20", "%2F", "%22"))
    emu.clear_requests()
    result = runner.run("--no-progress", task)
    assert result.code == 0, result.err
    assert sorted(r.raw_path for r in emu.requests if r.origin == "cdn") == expected
    assert all(r.status == 200 for r in emu.requests)


def _leaky_run(runner: Runner) -> tuple[Result, dict[str, str]]:
    """A 404, a CDN 500 past all retries, a size mismatch and a good task; every text produced."""
    emu = runner.emu
    missing = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
    broken, mismatch, good = (emu.add_task(previews=1) for _ in range(3))
    emu.asset_fault(video_path(emu, broken), status=500, times=10)
    emu.task_json(mismatch)["artifacts"][0]["fileSize"] = "123"
    result = runner.run("--no-progress", missing, broken, mismatch, good)
    assert result.code == 1
    assert result.states() == {
        missing: "error",
        broken: "error",
        mismatch: "error",
        good: "archived",
    }
    assert "404" in result.task(missing)["error"]
    assert "HTTP 500" in result.task(broken)["error"]
    assert "API says 123" in result.task(mismatch)["error"]
    # the 500 was retried until the attempts ran out (retry_attempts 3)
    assert sum(r.status == 500 for r in emu.requests) == 3
    texts = {"stdout": result.out, "stderr": result.err}
    texts["report"] = (runner.root.parent / "report.json").read_text(encoding="utf-8")
    for path in runner.root.rglob("*"):
        if path.is_file() and path.suffix not in MEDIA_SUFFIXES:
            texts[str(path)] = path.read_bytes().decode("latin-1")
    return result, texts


def test_token_and_signed_queries_never_leak_into_output_report_or_catalog(
    runner: Runner,
) -> None:
    """After failures of every kind, neither the token nor a signed query is printed or stored."""
    _, texts = _leaky_run(runner)
    checked = {k: v for k, v in texts.items() if not k.endswith("task.yaml")}
    assert any(name.endswith("catalog.sqlite3") for name in checked)
    assert TOKEN not in "".join(checked.values())
    for name, text in checked.items():
        assert "_jwt=" not in text, name
        assert "X-Amz-Credential" not in text, name


def test_sidecars_keep_signed_urls_but_never_the_token(runner: Runner) -> None:
    """task.yaml, the record inside the archive, keeps the signed URLs as served; no token."""
    result, texts = _leaky_run(runner)
    sidecars = {k: v for k, v in texts.items() if k.endswith("task.yaml")}
    assert len(sidecars) == 1
    good = next(t for t, s in result.states().items() if s == "archived")
    served = runner.emu.task_json(good)
    for name, text in sidecars.items():
        assert TOKEN not in text, name
        task = yaml.safe_load(text)["task"]
        assert "_jwt=" in task["options"]["init_image"], name
        assert task["options"]["init_image"].startswith(runner.emu.uploads_url + "/datasets/")
        assert (
            task["artifacts"][0]["url"].split("?")[0] == served["artifacts"][0]["url"].split("?")[0]
        )
        assert "X-Amz-Credential" in task["artifacts"][0]["url"], name


# -- planted symlinks ----------------------------------------------------------------------------


def test_symlinked_task_folder_is_refused(runner: Runner) -> None:
    """A symlink at a task's folder is not followed: that task errors, the target stays empty."""
    emu = runner.emu
    bad, good = emu.add_task(previews=1), emu.add_task(previews=1)
    outside = runner.root.parent / "outside"
    outside.mkdir()
    runner.root.mkdir()
    (runner.root / folder_of(emu, bad)).symlink_to(outside, target_is_directory=True)
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, "not a plain folder")
    assert list(outside.iterdir()) == []
    assert (runner.root / folder_of(emu, bad)).is_symlink()


@pytest.mark.parametrize("planted", ["dangling symlink", "plain file"])
def test_non_folder_at_task_folder_is_a_task_error(runner: Runner, planted: str) -> None:
    """A dangling symlink or a file at a task's folder errors that task only (exit 1, not 74)."""
    emu = runner.emu
    bad, good = emu.add_task(previews=1), emu.add_task(previews=1)
    runner.root.mkdir()
    spot = runner.root / folder_of(emu, bad)
    if planted == "plain file":
        spot.write_bytes(b"mine")
    else:
        spot.symlink_to(runner.root.parent / "nowhere")
    result = runner.run("--no-progress", bad, good)
    assert_only_bad_failed(result, bad, good, "not a plain folder")
    assert not (runner.root.parent / "nowhere").exists()


def _plant(runner: Runner, task: str, name: Callable[[str], str]) -> tuple[Path, Path]:
    """A symlink in the task's (real) folder, named from the artifact's stem, to an outside file."""
    emu = runner.emu
    folder = runner.root / folder_of(emu, task)
    folder.mkdir(parents=True)
    outside = runner.root.parent / "precious.bin"
    outside.write_bytes(b"precious, not yours")
    stem = files.slug(emu.task_json(task)["artifacts"][0]["filename"])
    link = folder / name(stem)
    link.symlink_to(outside)
    return link, outside


@pytest.mark.parametrize(
    "name",
    [lambda s: f"{s}.part", lambda s: f"{s}.mp4", lambda s: f"{s}.preview-1.jpg"],
    ids=["part", "final", "final-preview"],
)
def test_symlink_at_a_file_name_is_replaced_not_followed(
    runner: Runner, name: Callable[[str], str]
) -> None:
    """A symlink at a part or final name is never written through; the task archives anyway."""
    task = runner.emu.add_task(previews=1)
    link, outside = _plant(runner, task, name)
    result = runner.run("--no-progress", task)
    assert result.code == 0, result.err
    assert result.states() == {task: "archived"}
    assert outside.read_bytes() == b"precious, not yours"
    for entry, source in zip(result.task(task)["files"], runner.emu.media_of(task), strict=True):
        final = runner.root / entry["path"]
        assert not final.is_symlink()
        assert final.read_bytes() == source.read_bytes()
    assert not link.name.endswith(".part") or not os.path.lexists(link)


def test_symlink_at_the_etag_name_is_not_fatal(runner: Runner) -> None:
    """A symlink planted at '<stem>.part.etag' is replaced; the outside file is untouched."""
    task = runner.emu.add_task(previews=1)
    link, outside = _plant(runner, task, lambda s: f"{s}.part.etag")
    result = runner.run("--no-progress", task)
    assert outside.read_bytes() == b"precious, not yours"
    assert result.code == 0, result.err
    assert not os.path.lexists(link)


# -- static --------------------------------------------------------------------------------------


def test_package_reads_yaml_only_with_safe_load() -> None:
    """No module of the package calls yaml.load, unsafe_load, or names an unsafe Loader."""
    package = Path(archiver.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 20
    forbidden = (
        "yaml.load(",
        "yaml.unsafe_load",
        "yaml.Loader",
        "yaml.FullLoader",
        "yaml.UnsafeLoader",
    )
    offenders = [
        f"{path.relative_to(package)}: {word}"
        for path in sources
        for word in forbidden
        if word in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
