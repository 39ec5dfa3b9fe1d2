"""Unattended runs: no hangs, no leaks, signals, quiet cron output, ffprobe trouble, back-off."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from archiver import cli
from archiver.catalog import sqlite_testing
from archiver.model import State, TaskOutcome
from archiver.testing import ArtifactSpec, VideoSpec

from .conftest import TOKEN, Runner
from .helpers import DEADLINE, part_files, wait_for

MISSING = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
BIG = VideoSpec(bitrate="4M", seconds=2.0)


def api_requests(runner: Runner, task: str | None = None) -> int:
    return sum(
        1
        for r in runner.emu.requests
        if r.origin == "api" and (task is None or r.raw_path.endswith(task.rsplit(":", 1)[1]))
    )


# -- no hangs ---------------------------------------------------------------------------------


def test_a_trickled_api_answer_ends_within_the_deadline(runner: Runner) -> None:
    """An answer sent a byte every 50 ms (never a read timeout, never done) is cut at
    api_timeout, retried within the budget, and ends the task in error; the others archive."""
    runner.configure(api_timeout=0.5, retry_attempts=2)
    slow, fine = runner.emu.add_task(previews=0), runner.emu.add_task(previews=0)
    runner.emu.api_fault(slow, trickle=0.05, times=2)
    result = runner.run(slow, fine)
    assert result.code == 1
    assert result.states() == {slow: "error", fine: "archived"}
    assert "no complete answer within 0.5 s" in result.task(slow)["error"]
    assert api_requests(runner, slow) == 2


def test_a_trickle_then_a_good_answer_archives(runner: Runner) -> None:
    """After one trickled answer is cut, the retry's answer archives the task."""
    runner.configure(api_timeout=0.5)
    task = runner.emu.add_task(previews=0)
    runner.emu.api_fault(task, trickle=0.05)
    assert runner.run(task).states() == {task: "archived"}
    assert api_requests(runner, task) == 2


def test_a_one_hour_retry_after_does_not_hold_up_the_other_tasks(runner: Runner) -> None:
    """A 429 asking for an hour ends that task (it cannot wait that long) and pauses the lane
    no longer than the retry budget: the run finishes and the other tasks are archived."""
    # One API request at a time, the slow task first: the others queue behind its 429.
    runner.configure(retry_total_seconds=1, retry_attempts=3, api_concurrency=1)
    slow = runner.emu.add_task(previews=0)
    others = [runner.emu.add_task(previews=0) for _ in range(3)]
    runner.emu.api_fault(slow, status=429, headers={"Retry-After": "3600"})
    report = runner.root.parent / "r.json"
    process = runner.spawn(slow, *others, "--report", str(report))
    try:
        process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
    assert process.returncode == 1
    states = {t["task_id"]: t["state"] for t in json.loads(report.read_text())["tasks"]}
    assert states == {slow: "error", **{t: "archived" for t in others}}
    assert api_requests(runner, slow) == 1


def test_a_hung_ffprobe_is_killed_and_only_its_task_errs(runner: Runner, tmp_path: Path) -> None:
    """An ffprobe that never answers is killed at probe_timeout; its task is in error, a task
    of images (no ffprobe) is archived, and no ffprobe is left running."""
    pids = tmp_path / "pids"
    script = tmp_path / "ffprobe-that-hangs"
    script.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 600\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    runner.configure(ffprobe=str(script), probe_timeout=0.5)
    video = runner.emu.add_task(previews=0)
    images = runner.emu.add_task(artifacts=[ArtifactSpec(video=None, image=(64, 48), previews=0)])
    result = runner.run(video, images)
    assert result.code == 1
    assert result.states() == {video: "error", images: "archived"}
    assert "ffprobe did not answer within 0.5 s (killed)" in result.task(video)["error"]
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 1  # a timeout is no reason to download and probe again
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert list(runner.root.rglob("*.part")) == list(runner.root.rglob("*.rejected")) == []


def test_ffprobe_missing_is_exit_2_before_any_request(
    runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ffprobe on PATH (or at the configured path): one line, exit 2, no request made;
    the config key `ffprobe` can point at one off PATH."""
    task = runner.emu.add_task(previews=0)
    real = subprocess.run(["which", "ffprobe"], capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.run(task, report=False)
    assert result.code == 2
    assert result.err == (
        "runway-archiver: ffprobe not found ('ffprobe'): install ffmpeg, "
        "or set the config key 'ffprobe'\n"
    )
    runner.configure(ffprobe=str(tmp_path / "nowhere" / "ffprobe"))
    assert runner.run(task, report=False).code == 2
    assert runner.emu.requests == []
    runner.configure(ffprobe=real)
    assert runner.run(task).states() == {task: "archived"}


# -- no leaks ---------------------------------------------------------------------------------


def test_a_server_echoing_the_token_never_gets_it_printed(runner: Runner) -> None:
    """The token and a signed query echoed back in an error body, a header or a redirect
    appear nowhere: not on stdout or stderr, not in the report, not in the catalog."""
    emu = runner.emu
    tasks = [emu.add_task(previews=0) for _ in range(3)]
    echo = (
        f"Invalid request; Authorization: Bearer {TOKEN} token={TOKEN} "
        f"see {emu.cdn_url}/a.mp4?_jwt=SIGNED-SECRET&x=1\nsecond line"
    )
    body = json.dumps({"error": echo, "code": 400}).encode()
    emu.api_fault(tasks[0], status=400, body=body, headers={"X-Echo": TOKEN})
    emu.api_fault(tasks[1], status=502, times=5, body=echo.encode())
    emu.api_fault(tasks[2], redirect_to=f"{emu.cdn_url}/echo?token={TOKEN}&_jwt=SIGNED-SECRET")
    result = runner.run(*tasks, "-v")
    assert result.code == 1
    error = result.task(tasks[0])["error"]
    assert error.startswith("the API answered HTTP 400: Invalid request;")
    assert "<token>" in error and "\n" not in error
    dump = sqlite_testing.dump(runner.catalog_path)
    for text in (result.out, result.err, json.dumps(result.report), dump):
        assert TOKEN not in text
        assert "SIGNED-SECRET" not in text


def test_a_token_is_stripped_and_one_with_a_control_character_is_never_sent(
    runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whitespace and line ends around a token (env, config, token_file) are stripped; a token
    that still holds a control character is a config error naming its source, never sent."""
    task = runner.emu.add_task(previews=0)
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\r\n")
    runner.configure(token_file=str(token_file))
    monkeypatch.delenv("USEAPI_TOKEN", raising=False)
    env = runner.env()
    env.pop("USEAPI_TOKEN")
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "archiver",
            "run",
            "-o",
            str(runner.root),
            "-c",
            str(runner.config),
            task,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert process.returncode == 0, process.stderr
    assert {r.headers["Authorization"] for r in runner.emu.requests if r.origin == "api"} == {
        f"Bearer {TOKEN}"
    }
    runner.emu.clear_requests()
    runner.monkeypatch.setattr(runner, "env", lambda: {**env, "USEAPI_TOKEN": f"{TOKEN}\x07x"})
    result = runner.run(runner.emu.add_task(previews=0), report=False)
    assert result.code == 2
    assert result.err == (
        "runway-archiver: the token (environment USEAPI_TOKEN) holds a space, control or "
        "non-ASCII character; not sending it\n"
    )
    assert runner.emu.requests == []


# -- signals and honest records ---------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_partial_downloads_and_the_rerun_resumes(
    runner: Runner, signum: int, code: int
) -> None:
    """SIGINT and SIGTERM alike: the part file stays with its validators, the exit code is
    130/143, the report and the catalog's run record say so, and the rerun resumes with Range."""
    runner.emu.cdn_rate = 400_000
    tasks = [runner.emu.add_task(previews=0, video=BIG) for _ in range(2)]
    report = runner.root.parent / "stopped.json"
    report.write_text('{"old": true}')
    process = runner.spawn(*tasks, "--report", str(report))
    try:
        wait_for(
            lambda: any(p.with_name(p.name + ".etag").exists() for p in part_files(runner.root)),
            "a resumable part file",
        )
        process.send_signal(signum)
        process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
    assert process.returncode == code
    assert part_files(runner.root)
    doc = json.loads(report.read_text())
    assert doc["exit_code"] == code and doc["stopped"].startswith("interrupted")
    assert sorted(doc["unfinished"]) == sorted(tasks)
    last = runner.catalog().last_run
    assert last is not None and last.exit_code == code
    assert last.summary is not None and last.summary["archived"] == 0
    status = runner.run(command="status", report=False)
    assert f", exit {code} (" in status.out or f", exit {code} (no tasks)" in status.out
    runner.emu.cdn_rate = None
    runner.emu.clear_requests()
    result = runner.run(*tasks)
    assert result.code == 0, result.err
    ranges = [r.headers.get("Range") for r in runner.emu.requests if r.origin == "cdn"]
    assert any(r is not None and r.startswith("bytes=") for r in ranges)
    for task in tasks:
        (video,) = (runner.root / result.task(task)["dir"]).glob("*.mp4")
        assert video.read_bytes() == runner.emu.media_of(task)[0].read_bytes()


def test_quiet_under_cron_prints_nothing_on_success(runner: Runner) -> None:
    """-q with no terminal: a good run prints nothing at all; a bad one prints its problems."""
    good = runner.emu.add_task(previews=1)
    process = runner.spawn(good, "-q")
    out, err = process.communicate(timeout=DEADLINE)
    assert (process.returncode, out, err) == (0, "", "")
    process = runner.spawn(good, MISSING, "-q")
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 1
    assert err.splitlines() == [f"error: {MISSING}: the API answered HTTP 404: Not found."]
    assert out.startswith("2 tasks: 0 archived, 1 skipped")


def test_verbose_prints_one_line_per_file(runner: Runner) -> None:
    """-v: one line per archived file, naming its final path."""
    task = runner.emu.add_task(previews=2)
    result = runner.run(task, "-v")
    lines = [line for line in result.err.splitlines() if line.startswith("file: ")]
    assert sorted(line.split()[1] for line in lines) == sorted(
        f["path"] for f in result.task(task)["files"]
    )


def test_report_folder_is_checked_before_any_work(runner: Runner, tmp_path: Path) -> None:
    """--report into a folder that does not exist: exit 2 at once, no request."""
    target = tmp_path / "no-such-folder" / "r.json"
    result = runner.run(runner.emu.add_task(), "--report", str(target), report=False)
    assert result.code == 2
    assert result.err == f"runway-archiver: --report {target}: no folder {target.parent}\n"
    assert runner.emu.requests == [] and not runner.root.exists()


def test_report_dash_goes_to_stdout(runner: Runner) -> None:
    """--report - writes the JSON report to stdout; the summary line goes to stderr."""
    task = runner.emu.add_task(previews=0)
    result = runner.run(task, "--report", "-", report=False)
    doc = json.loads(result.out)
    assert doc["tasks"][0]["state"] == "archived" and doc["exit_code"] == 0
    assert result.err.startswith("1 tasks: 1 archived")


def test_a_run_stopped_by_401_still_writes_its_report(runner: Runner) -> None:
    """A rejected token ends the run (exit 3) and the report says so, replacing an old one."""
    task = runner.emu.add_task(previews=0)
    runner.emu.api_fault(status=401, times=10)
    result = runner.run(task)
    assert result.code == 3
    assert result.report is not None and result.report["exit_code"] == 3
    assert result.report["unfinished"] == [task]


def test_a_bug_is_one_line_exit_70_with_report_and_run_record(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception (a bug, injected here) is one line and exit 70; the report and
    the run record are written; --debug adds the traceback."""
    task = runner.emu.add_task(previews=0)

    def broken(*_: object) -> None:
        raise ZeroDivisionError("injected")

    monkeypatch.setattr("archiver.pipeline.output_jobs", broken)
    result = runner.run(task)
    assert result.code == 70
    assert result.err.splitlines() == [
        "runway-archiver: internal error (ZeroDivisionError: injected); this is a bug;"
        " --debug shows the traceback"
    ]
    assert result.report is not None and result.report["exit_code"] == 70
    last = runner.catalog().last_run
    assert last is not None and last.exit_code == 70
    debug = runner.run(task, "--debug")
    assert "Traceback (most recent call last)" in debug.err and debug.code == 70


def test_a_closed_stdout_ends_quietly(runner: Runner) -> None:
    """`status | head -1`: the reader goes away; the archiver ends with no message (141)."""
    tasks = [runner.emu.add_task(previews=0) for _ in range(2)]
    runner.run(*tasks, "--no-progress")
    runner.record(
        [TaskOutcome(f"{MISSING[:-12]}{n:012d}", State.ERROR, error="x" * 200) for n in range(2000)]
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "archiver", "status", "-o", str(runner.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"archive: ")
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=DEADLINE) == 141
    assert err == b""


# -- back-off of lasting errors ---------------------------------------------------------------


def test_a_task_failing_the_same_way_backs_off(runner: Runner) -> None:
    """A 400 is tried after 1, 2, 4 ... runs; between tries it stays in error with its next
    attempt and makes no request; --retry-errors tries it at once. (A 404 is the same, until
    its third in a row makes it gone: test_forget.py.)"""
    refused = b'{"error": "Invalid taskId", "code": 400}'
    runner.emu.set_raw(MISSING, refused, status=400)
    tried = []
    for _ in range(8):
        runner.emu.clear_requests()
        result = runner.run(MISSING)
        assert result.code == 1 and result.states() == {MISSING: "error"}
        tried.append(api_requests(runner))
    assert tried == [1, 1, 0, 1, 0, 0, 0, 1]
    runner.emu.clear_requests()
    held = runner.run(MISSING)
    assert api_requests(runner) == 0
    assert "--retry-errors" in held.task(MISSING)["error"]
    assert held.task(MISSING)["next_attempt"] is not None
    runner.run(MISSING, "--retry-errors")
    assert api_requests(runner) == 1


def test_transient_errors_do_not_back_off(runner: Runner) -> None:
    """A task lost to 5xx every try is tried again on every run: the next may work."""
    task = runner.emu.add_task(previews=0)
    for _ in range(3):
        runner.emu.api_fault(task, status=503, times=3)
        assert runner.run(task).states() == {task: "error"}
    runner.emu.clear_requests()
    assert runner.run(task).states() == {task: "archived"}


def test_the_back_off_is_capped_by_retry_backoff_seconds(runner: Runner) -> None:
    """With retry_backoff 0 a lasting error is tried on every run."""
    runner.configure(retry_backoff=0)
    for _ in range(3):
        runner.emu.clear_requests()
        runner.run(MISSING)
        assert api_requests(runner) == 1


# -- read-only archives ------------------------------------------------------------------------


@pytest.fixture
def readonly_mount(tmp_path: Path) -> Path:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_status_and_verify_work_on_a_read_only_archive(
    runner: Runner, readonly_mount: Path
) -> None:
    """A copy of the archive on a read-only mount: status and verify work, nothing is created."""
    task = runner.emu.add_task(previews=1)
    assert runner.run(task).code == 0
    subprocess.run(["cp", "-a", str(runner.root), str(readonly_mount / "copy")], check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(readonly_mount)], check=True)
    copy = readonly_mount / "copy"
    before = sorted(p.name for p in copy.iterdir())
    runner.capsys.readouterr()
    assert cli.main(["status", "-o", str(copy), "-c", str(runner.config)]) == 0
    assert "tasks: 1 archived" in runner.capsys.readouterr().out
    assert cli.main(["verify", "-o", str(copy), "-c", str(runner.config)]) == 0
    # the video, its preview, its init_image input and the sidecar
    assert runner.capsys.readouterr().out == "checked 4 files: 4 ok, 0 damaged\n"
    assert sorted(p.name for p in copy.iterdir()) == before
    assert not any(name.endswith(("-wal", "-shm")) for name in before)


def test_a_plain_install_needs_no_ffmpeg_python() -> None:
    """ffmpeg-python is the emulator's (an extra); the archiver runs without it importable."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("ffmpeg-python") for d in project["dependencies"])
    assert any(d.startswith("ffmpeg-python") for d in project["optional-dependencies"]["emulator"])
    code = "import sys; sys.modules['ffmpeg'] = None; from archiver import cli; cli.main(['-h'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.startswith("usage: runway-archiver"), done.stderr


def test_report_inside_the_archive_folder_of_a_first_run(runner: Runner) -> None:
    """--report into the archive folder itself is fine on a first run: the run makes it."""
    task = runner.emu.add_task(previews=0)
    target = runner.root / "last-run.json"
    result = runner.run(task, "--report", str(target), report=False)
    assert result.code == 0, result.err
    assert json.loads(target.read_text())["tasks"][0]["state"] == "archived"


@pytest.mark.parametrize("cause", ["no-token", "locked"])
def test_a_run_that_cannot_start_still_replaces_the_old_report(
    runner: Runner, cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run refused before it starts (no token, the lock held) writes a report saying why, so
    an old report never stands for it."""
    task = runner.emu.add_task(previews=0)
    report = runner.root.parent / "report.json"
    assert runner.run(task).code == 0
    assert json.loads(report.read_text())["exit_code"] == 0
    if cause == "no-token":
        monkeypatch.setattr(runner, "env", lambda: {"USEAPI_BASE_URL": runner.emu.api_url})
        monkeypatch.delenv("USEAPI_TOKEN")
        expected = 2
    else:
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(runner.root / ".runway-archiver.lock")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        expected = 75
    try:
        result = runner.run(task)
    finally:
        if cause == "locked":
            holder.kill()
            holder.wait()
    assert result.code == expected
    assert result.report is not None
    assert result.report["exit_code"] == expected and result.report["tasks"] == []
    assert result.report["stopped"] == result.err.strip().removeprefix("runway-archiver: ")


LOCK_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("command", ["run", "status", "verify", "list", "gallery"])
def test_every_command_says_not_a_folder_for_a_file(
    runner: Runner, tmp_path: Path, command: str
) -> None:
    """-o naming a regular file: every command says "not a folder" (exit 2), the file untouched."""
    runner.root = tmp_path / "a-file"
    runner.root.write_text("mine")
    args = [MISSING] if command in ("run", "list") else []
    result = runner.run(*args, command=command, report=False)
    assert result.code == 2
    assert result.err == f"runway-archiver: -o {runner.root}: not a folder\n"
    assert runner.root.read_text() == "mine"
