"""`-o s3://bucket/prefix` end to end: the emulator for API and CDN, moto over loopback for S3.

The same guarantees as on disk: whole objects only, a rerun without requests, a killed run
that leaves nothing half-stored or open, and a catalog a new machine can take over.
"""

from __future__ import annotations

import hashlib
import signal
import time
from importlib import resources
from pathlib import Path

import yaml

from archiver.catalog import sqlite_testing
from archiver.testing import ArtifactSpec, VideoSpec
from archiver.testing.s3proxy import FaultProxy

from .bucketing import BucketRunner
from .conftest import Result

DEADLINE = 30.0
BIG = VideoSpec(bitrate="4M", seconds=2.0)


def served(runner: BucketRunner, task: str) -> dict[str, str]:
    """sha256 -> served file name of every file the emulator serves for `task`."""
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in runner.emu.media_of(task)}


def assert_objects_are_the_served_files(runner: BucketRunner, result: Result, task: str) -> None:
    assert runner.area is not None
    files = result.task(task)["files"]
    assert {f["sha256"] for f in files} == set(served(runner, task))
    for entry in files:
        data = runner.area.get(entry["path"])
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]


def staging_of(runner: BucketRunner) -> Path:
    assert runner.state_home is not None
    (found,) = (runner.state_home / "runway-archiver" / "buckets").iterdir()
    return found / "staging"


def test_mixed_list_is_archived_into_the_bucket(bucket_runner: BucketRunner) -> None:
    """Every object (outputs, inputs, sidecars) has the served bytes, nothing is staged or open."""
    emu, area = bucket_runner.emu, bucket_runner.area
    assert area is not None
    one = emu.add_task(previews=3)
    two = emu.add_task(artifacts=[ArtifactSpec(previews=1), ArtifactSpec(image=(320, 192))])
    act_two = emu.add_scenario("act_two")  # an input image and an input video, nested
    failed, pending = emu.add_task("FAILED"), emu.add_task("RUNNING")
    result = bucket_runner.run(one, two, act_two, failed, pending)
    assert result.code == 0, result.err
    assert result.states() == {
        one: "archived",
        two: "archived",
        act_two: "archived",
        failed: "failed",
        pending: "pending",
    }
    done = (one, two, act_two, failed)
    for task in done:  # a FAILED task's inputs are kept too
        assert_objects_are_the_served_files(bucket_runner, result, task)
        doc = yaml.safe_load(area.get(result.task(task)["sidecar"]).decode("utf-8"))
        assert doc["task"]["taskId"] == task
    keys = set(area.objects())
    wanted = {f["path"] for t in done for f in result.task(t)["files"]}
    wanted |= {result.task(t)["sidecar"] for t in done} | {"catalog.sqlite3"}
    assert any("/inputs/" in key for key in wanted)
    gallery = {k for k in keys - wanted if k == "index.html" or k.startswith("gallery/")}
    assert keys == wanted | gallery and "index.html" in gallery  # and nothing else
    assert area.uploads() == []
    assert [p for p in staging_of(bucket_runner).rglob("*") if p.is_file()] == []
    assert not bucket_runner.root.exists()  # nothing of the archive on the local disk
    secrets = (area.endpoint.secret_key, area.endpoint.access_key)
    copy = area.get("catalog.sqlite3").decode("latin-1")
    seen = result.out + result.err + str(result.report) + copy
    assert not any(s in seen for s in secrets)
    signed = [r for r in emu.requests if "AWS4" in r.headers.get("Authorization", "")]
    assert signed == []  # the store's credentials never went to the API or the CDN


def test_rerun_skips_with_no_request_to_api_or_cdn(bucket_runner: BucketRunner) -> None:
    """A second run over the same ids skips all of them and asks the emulator nothing."""
    tasks = [bucket_runner.emu.add_task(previews=1) for _ in range(3)]
    assert bucket_runner.run(*tasks).code == 0
    bucket_runner.emu.clear_requests()
    again = bucket_runner.run(*tasks)
    assert again.code == 0, again.err
    assert set(again.states().values()) == {"skipped"}
    assert bucket_runner.emu.requests == []


def test_kill_9_during_an_upload_leaves_no_object_and_the_next_run_completes(
    bucket_runner: BucketRunner, proxy: FaultProxy
) -> None:
    """Killed mid-upload: no object under a final key; the next run stores all, leaves none open."""
    area = bucket_runner.area
    assert area is not None
    bucket_runner.endpoint_url = proxy.url
    bucket_runner.configure()
    task = bucket_runner.emu.add_task(previews=1, video=BIG)
    proxy.hold("UploadPart")
    process = bucket_runner.spawn(task)
    try:
        assert proxy.arrived.wait(DEADLINE), "no part upload reached the store"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=DEADLINE)
    assert process.returncode == -signal.SIGKILL
    assert area.objects() == {}  # a part was on its way: nothing under any final key
    assert area.uploads() != []  # ... and the upload it belonged to is still open
    proxy.release()
    result = bucket_runner.run(task)
    assert result.code == 0, result.err
    assert_objects_are_the_served_files(bucket_runner, result, task)
    assert area.uploads() == []
    assert [p for p in staging_of(bucket_runner).rglob("*") if p.is_file()] == []


def test_slow_down_from_the_store_is_retried(
    bucket_runner: BucketRunner, proxy: FaultProxy
) -> None:
    """503 SlowDown to a part upload and to the sidecar's PUT: retried, and the run succeeds."""
    bucket_runner.endpoint_url = proxy.url
    bucket_runner.configure()
    task = bucket_runner.emu.add_task(previews=1)
    proxy.slow_down("UploadPart", 1)
    proxy.slow_down("PutObject", 1)
    result = bucket_runner.run(task)
    assert result.code == 0, result.err
    assert proxy.answered["UploadPart 503"] == 1 and proxy.answered["PutObject 503"] == 1
    assert_objects_are_the_served_files(bucket_runner, result, task)


def test_wrong_credentials_are_one_line_exit_2_before_any_download(
    bucket_runner: BucketRunner,
) -> None:
    """A secret the store refuses: exit 2, one line naming the bucket, no request to the API."""
    task = bucket_runner.emu.add_task()
    bucket_runner.extra_env["AWS_SECRET_ACCESS_KEY"] = "nope-wrong"
    result = bucket_runner.run(task, report=False)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and bucket_runner.output in lines[0] and "refused" in lines[0]
    assert "nope-wrong" not in result.err
    assert bucket_runner.emu.requests == []


def test_verify_finds_a_deleted_and_an_overwritten_object(
    bucket_runner: BucketRunner, proxy: FaultProxy
) -> None:
    """Shallow verify (no download) names both; --repair fetches them again and exit is 0."""
    area = bucket_runner.area
    assert area is not None
    task = bucket_runner.emu.add_task(previews=2)
    result = bucket_runner.run(task)
    assert result.code == 0, result.err
    video, preview = (f["path"] for f in result.task(task)["files"][:2])
    area.inspector.delete(f"{area.prefix}/{video}")
    size = len(area.get(preview))
    area.inspector.put(f"{area.prefix}/{preview}", b"\0" * size)  # same size, other bytes
    bucket_runner.endpoint_url = proxy.url
    bucket_runner.configure()
    checked = bucket_runner.run("--no-progress", command="verify")
    assert checked.code == 1
    assert f"damaged: {video}: missing" in checked.out
    assert f"damaged: {preview}: content changed" in checked.out
    assert proxy.seen["GetObject"] == 0  # presence, size and stored checksum: HEAD only
    deep = bucket_runner.run("--no-progress", "--deep", command="verify")
    assert deep.code == 1 and proxy.seen["GetObject"] > 0
    repaired = bucket_runner.run("--no-progress", "--repair", command="verify")
    assert repaired.code == 0, repaired.out + repaired.err
    assert bucket_runner.run("--no-progress", command="verify").code == 0


def test_staging_never_holds_more_than_the_files_in_flight(bucket_runner: BucketRunner) -> None:
    """With a paced CDN, staging holds files of at most the tasks in flight, and ends empty."""
    emu = bucket_runner.emu
    emu.cdn_rate = 1_000_000
    bucket_runner.configure(concurrency=1, download_concurrency=1)  # 2 tasks in flight
    tasks = [emu.add_task(previews=1) for _ in range(6)]
    per_task = len(emu.media_of(tasks[0]))  # the video, its preview, its input
    process = bucket_runner.spawn(*tasks)
    most, seen_tasks = 0, set()
    end = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < end:
        try:
            staging = staging_of(bucket_runner)
            staged = [p.relative_to(staging) for p in staging.rglob("*.part") if p.is_file()]
        except (FileNotFoundError, ValueError):  # not made yet, or gone between two calls
            staged = []
        most = max(most, len(staged))
        seen_tasks |= {p.parts[0] for p in staged}
        time.sleep(0.005)  # a sampling interval, not a synchronisation
    _, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, err
    assert 1 <= most <= 2 * per_task  # 2 tasks in flight, whatever the 6 tasks hold in all
    assert len(seen_tasks) >= 2  # the samples did see the run move on
    assert [p for p in staging_of(bucket_runner).rglob("*") if p.is_file()] == []


def test_catalog_copy_lets_a_fresh_state_folder_continue(bucket_runner: BucketRunner) -> None:
    """`run --all` on a new machine (empty state folder) reads the bucket's catalog copy first."""
    emu, area = bucket_runner.emu, bucket_runner.area
    assert area is not None
    first = emu.add_task(previews=1)
    assert bucket_runner.run(first).code == 0
    bucket_runner.state_home = bucket_runner.root.parent / "another-machine"
    emu.clear_requests()
    second = emu.add_task(previews=1)
    result = bucket_runner.run("--all")
    assert result.code == 0, result.err
    assert result.states() == {first: "skipped", second: "archived"}
    by_id = [r.raw_path for r in emu.requests if r.origin == "api" and "/tasks/user:" in r.raw_path]
    assert len(by_id) == 1 and by_id[0].endswith(second.rsplit(":", 1)[-1])
    copy = bucket_runner.root.parent / "copy.sqlite3"
    copy.write_bytes(area.get("catalog.sqlite3"))
    held = sqlite_testing.read(copy).tasks
    archived = {t for t, row in held.items() if row.state == "archived"}
    assert archived == {first, second}


def test_a_deleted_object_makes_the_rerun_fetch_that_task_again(
    bucket_runner: BucketRunner,
) -> None:
    """The rerun lists each task folder: a task missing an object is archived again, alone."""
    area = bucket_runner.area
    assert area is not None
    kept, damaged = bucket_runner.emu.add_task(previews=1), bucket_runner.emu.add_task(previews=1)
    first = bucket_runner.run(kept, damaged)
    assert first.code == 0, first.err
    video = first.task(damaged)["files"][0]["path"]
    area.inspector.delete(f"{area.prefix}/{video}")
    bucket_runner.emu.clear_requests()
    again = bucket_runner.run(kept, damaged)
    assert again.code == 0, again.err
    assert again.states() == {kept: "skipped", damaged: "archived"}
    fetched = [r.raw_path for r in bucket_runner.emu.requests if r.origin == "cdn"]
    assert len(fetched) == 1 and ".mp4" in fetched[0]  # the preview was still there
    assert_objects_are_the_served_files(bucket_runner, again, damaged)


def test_no_credentials_at_all_is_one_line_exit_2(bucket_runner: BucketRunner) -> None:
    """Without AWS keys or a profile the run stops at once, saying what to set."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        bucket_runner.extra_env[name] = ""
    result = bucket_runner.run(bucket_runner.emu.add_task(), report=False)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "AWS_ACCESS_KEY_ID" in result.err and bucket_runner.output in result.err
    assert bucket_runner.emu.requests == []


def test_status_of_a_bucket_archive_reads_the_local_catalog_only(
    bucket_runner: BucketRunner,
) -> None:
    """status needs no network: it answers with the store unreachable."""
    task = bucket_runner.emu.add_task(previews=1)
    assert bucket_runner.run(task).code == 0
    bucket_runner.endpoint_url = "http://127.0.0.1:9"  # the discard port: nothing listens
    bucket_runner.configure()
    shown = bucket_runner.run(command="status")
    assert shown.code == 0, shown.err
    assert f"archive: {bucket_runner.output}" in shown.out
    assert "1 archived" in shown.out and task in shown.out


def test_a_download_that_keeps_failing_leaves_staging_empty_at_the_end(
    bucket_runner: BucketRunner,
) -> None:
    """A video cut short, then refused with 500s, ends its task in error; its part is not kept."""
    emu = bucket_runner.emu
    bad, good = emu.add_task(previews=1, video=BIG), emu.add_task(previews=1)
    video = emu.task_json(bad)["artifacts"][0]["url"].partition("?")[0].rsplit("/", 1)[-1]
    emu.asset_fault(video, truncate_at=600_000)  # leaves a part a resume could continue
    emu.asset_fault(video, times=100, status=500)
    result = bucket_runner.run(bad, good)
    assert result.code == 1
    assert result.states() == {bad: "error", good: "archived"}
    assert [p for p in staging_of(bucket_runner).rglob("*") if p.is_file()] == []


def test_list_plans_a_bucket_archive_from_its_listing(bucket_runner: BucketRunner) -> None:
    """`list` sees what the bucket holds: a whole task is skipped, one missing an object fetched."""
    area = bucket_runner.area
    assert area is not None
    whole, damaged = bucket_runner.emu.add_task(previews=1), bucket_runner.emu.add_task(previews=1)
    first = bucket_runner.run(whole, damaged)
    assert first.code == 0, first.err
    area.inspector.delete(f"{area.prefix}/{first.task(damaged)['files'][1]['path']}")
    bucket_runner.emu.clear_requests()
    shown = bucket_runner.run(whole, damaged, command="list")
    assert shown.code == 0, shown.err
    actions = {line.split()[-1]: line.split()[0] for line in shown.out.strip().splitlines()}
    assert actions == {whole: "skip", damaged: "fetch"}
    assert bucket_runner.emu.requests == []


def test_the_gallery_is_stored_in_the_bucket_and_only_what_changed_is_sent_again(
    bucket_runner: BucketRunner, proxy: FaultProxy
) -> None:
    """index.html and gallery/ sit at the prefix's root; a run with one new task resends only
    what changed, and `gallery` names the page in the bucket."""
    area = bucket_runner.area
    assert area is not None
    bucket_runner.endpoint_url = proxy.url
    bucket_runner.configure()
    assert bucket_runner.run(bucket_runner.emu.add_task(previews=1)).code == 0
    stored = area.objects()
    assert {"index.html", "gallery/gallery.js", "gallery/gallery.css", "gallery/data.js"} <= set(
        stored
    )
    static = resources.files("archiver.gallery") / "static" / "gallery.js"
    assert area.get("gallery/gallery.js") == static.read_bytes()
    proxy.paths.clear()
    assert bucket_runner.run(bucket_runner.emu.add_task(previews=1)).code == 0
    put = {path.split(f"/{area.prefix}/", 1)[-1] for op, path in proxy.paths if op == "PutObject"}
    assert "gallery/data.js" in put and "gallery/gallery.js" not in put
    shown = bucket_runner.run(command="gallery")
    assert shown.code == 0, shown.err
    assert f"{bucket_runner.output}/index.html" in shown.out
