"""Transient faults of the API and the CDN, injected by the emulator: retried, resumed."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import pytest

from archiver.testing import Emulator

from .conftest import Runner
from .helpers import closed_port


def video_path(emu: Emulator, task: str) -> str:
    """The CDN path (no query) of a task's first video, as the emulator serves it."""
    url: str = emu.task_json(task)["artifacts"][0]["url"]
    return url.split("?")[0].removeprefix(emu.cdn_url)


def cdn_hits(emu: Emulator, path: str) -> list[dict[str, str]]:
    return [r.headers for r in emu.requests if r.raw_path.startswith(path + "?")]


def assert_archived_intact(runner: Runner, task: str) -> None:
    result_files = [(f.path, f.size, f.sha256) for f in runner.catalog().files_of(task)]
    served = runner.emu.media_of(task)
    assert len(result_files) == len(served)
    on_disk = {
        hashlib.sha256((runner.root / p).read_bytes()).hexdigest() for p, _, _ in result_files
    }
    assert on_disk == {hashlib.sha256(s.read_bytes()).hexdigest() for s in served}
    assert {sha for _, _, sha in result_files} == on_disk
    leftovers = [p for p in runner.root.rglob("*") if p.suffix in (".part", ".etag", ".tmp")]
    assert leftovers == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_api_server_errors_are_retried(runner: Runner, status: int) -> None:
    """A 5xx (or 408) from the API is retried and the task still archives."""
    task = runner.emu.add_task()
    runner.emu.api_fault(task, status=status, times=2)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert [r.status for r in runner.emu.requests if r.origin == "api"] == [status, status, 200]
    assert_archived_intact(runner, task)


def test_api_retries_are_bounded(runner: Runner) -> None:
    """When every attempt fails the task is in error after retry_attempts tries, others go on."""
    bad, good = runner.emu.add_task(), runner.emu.add_task()
    runner.emu.api_fault(bad, status=503, times=100)
    result = runner.run(bad, good)
    assert result.code == 1
    assert result.states() == {bad: "error", good: "archived"}
    assert "HTTP 503" in result.task(bad)["error"]
    assert len([r for r in runner.emu.requests if r.origin == "api" and bad in r.raw_path]) == 3


def test_connection_reset_by_the_api_is_retried(runner: Runner) -> None:
    """A connection dropped without an answer is retried (aiohttp itself retries once, so 2)."""
    task = runner.emu.add_task()
    runner.emu.api_fault(task, reset=True, times=2)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert [r.status for r in runner.emu.requests if r.origin == "api"] == [0, 0, 200]


def test_api_read_timeout_is_retried(runner: Runner) -> None:
    """An API that does not answer within read_timeout is asked again."""
    runner.configure(read_timeout=0.3)
    task = runner.emu.add_task()
    runner.emu.api_fault(task, status=200, delay=2.0, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert len([r for r in runner.emu.requests if r.origin == "api"]) == 2


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A listening socket whose backlog is full, so new connections never complete."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    port = server.getsockname()[1]
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for s in [*fillers, server]:
        s.close()


def test_unreachable_api_stops_the_run_with_one_line(runner: Runner, unanswered_port: int) -> None:
    """An API that times out or refuses every connection: one line naming the base URL, exit 1,
    a report, and no line per task."""
    runner.configure(connect_timeout=0.2)
    tasks = [runner.emu.add_task() for _ in range(6)]
    for port, why in ((unanswered_port, "timed out"), (closed_port(), "cannot connect")):
        runner.base_url = f"http://127.0.0.1:{port}/v1"
        result = runner.run(*tasks)
        assert result.code == 1
        lines = result.err.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"runway-archiver: the API at {runner.base_url} is unreachable")
        assert why in lines[0]
        assert result.report is not None
        assert result.report["stopped"].startswith(f"the API at {runner.base_url}")
        assert result.report["exit_code"] == 1
        assert result.report["unfinished"] == tasks  # none was tried beyond the first few
    assert runner.emu.requests == []


def test_429_retry_after_pauses_the_whole_api_lane(runner: Runner) -> None:
    """After a 429 with Retry-After: 1, no API request of any task goes out for a second."""
    runner.configure(api_concurrency=1, retry_max_delay=5)
    tasks = [runner.emu.add_task() for _ in range(3)]
    runner.emu.api_fault(tasks[0], status=429, headers={"Retry-After": "1"}, times=1)
    result = runner.run(*tasks)
    assert result.code == 0, result.err
    api = [r for r in runner.emu.requests if r.origin == "api"]
    throttled = next(r for r in api if r.status == 429)
    later = [r for r in api if r.at > throttled.at]
    assert len(later) == 3
    assert min(r.at for r in later) >= throttled.at + 1.0


def test_429_with_an_http_date_is_honoured(runner: Runner) -> None:
    """Retry-After given as an HTTP date in the past means retry at once; the task archives."""
    task = runner.emu.add_task()
    runner.emu.api_fault(
        task, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, times=1
    )
    assert runner.run(task).code == 0
    assert [r.status for r in runner.emu.requests if r.origin == "api"] == [429, 200]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_cdn_errors_are_retried(runner: Runner, status: int) -> None:
    """A 5xx or 429 from the CDN is retried; the file arrives whole."""
    task = runner.emu.add_task()
    path = video_path(runner.emu, task)
    runner.emu.asset_fault(path, status=status, times=2)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert [r.status for r in runner.emu.requests if r.raw_path.startswith(path + "?")] == [
        status,
        status,
        200,
    ]
    assert_archived_intact(runner, task)


def test_body_cut_short_resumes_with_range(runner: Runner) -> None:
    """A body cut mid-stream is resumed from the bytes on disk; the sha256 covers the whole file."""
    # Paced, so the cut comes mid-stream (bytes still in flight when it lands are lost, by design).
    runner.emu.cdn_rate = 200_000
    task = runner.emu.add_task()
    path = video_path(runner.emu, task)
    runner.emu.asset_fault(path, truncate_at=40_000, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    first, second = cdn_hits(runner.emu, path)
    assert "Range" not in first
    start = int(second["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 40_000
    assert "If-Range" in second
    statuses = [r.status for r in runner.emu.requests if r.raw_path.startswith(path + "?")]
    assert statuses == [200, 206]
    assert_archived_intact(runner, task)


def test_body_cut_short_without_range_support_starts_over(runner: Runner) -> None:
    """When the server ignores Range (answers 200), the download starts over, still intact."""
    runner.emu.range_support = False
    runner.emu.cdn_rate = 200_000  # paced, so bytes are on disk when the cut comes
    task = runner.emu.add_task()
    path = video_path(runner.emu, task)
    runner.emu.asset_fault(path, truncate_at=40_000, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert "Range" in cdn_hits(runner.emu, path)[1]  # a resume was asked for, and refused
    assert [r.status for r in runner.emu.requests if r.raw_path.startswith(path + "?")] == [
        200,
        200,
    ]
    assert_archived_intact(runner, task)


def test_stalled_download_times_out_and_is_retried(runner: Runner) -> None:
    """A CDN that sends headers then nothing is abandoned after read_timeout and retried."""
    runner.configure(read_timeout=0.3)
    task = runner.emu.add_task()
    path = video_path(runner.emu, task)
    runner.emu.asset_fault(path, hang=True, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert len(cdn_hits(runner.emu, path)) == 2
    assert_archived_intact(runner, task)


def test_extra_bytes_are_caught_and_downloaded_again(runner: Runner) -> None:
    """More bytes than fileSize fail verification; the second download is right."""
    task = runner.emu.add_task()
    path = video_path(runner.emu, task)
    runner.emu.asset_fault(path, extra_bytes=1000, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert len(cdn_hits(runner.emu, path)) == 2
    assert "size" in result.err and "downloading it once more" in result.err
    assert_archived_intact(runner, task)


@pytest.mark.parametrize("status", [403, 404, 410])
def test_refused_signed_url_fetches_the_task_again(runner: Runner, status: int) -> None:
    """A refused asset URL makes the run fetch fresh URLs and finish, reusing what is done."""
    task = runner.emu.add_task()
    path = video_path(runner.emu, task)
    runner.emu.asset_fault(path, status=status, times=1)
    result = runner.run(task)
    assert result.code == 0, result.err
    assert len([r for r in runner.emu.requests if r.origin == "api"]) == 2
    # the previews finished in the first round and were not downloaded again
    previews = [r for r in runner.emu.requests if "/previews/" in r.raw_path]
    assert len(previews) == 3
    assert_archived_intact(runner, task)


def test_urls_expired_by_the_cdn_clock_are_refreshed(runner: Runner) -> None:
    """URLs the CDN refuses by its own clock are fetched anew, url_refreshes times, then error."""
    runner.configure(url_refreshes=2)
    task = runner.emu.add_task(previews=0)
    runner.emu.url_ttl = -60  # every URL the API serves has already expired
    result = runner.run(task)
    assert result.code == 1
    assert "HTTP 403" in result.task(task)["error"]
    assert [r.origin for r in runner.emu.requests].count("api") == 3
    assert {r.status for r in runner.emu.requests if r.origin == "cdn"} == {403}
    runner.emu.url_ttl = 3600
    again = runner.run(task)
    assert again.code == 0, again.err
    assert_archived_intact(runner, task)


def test_refresh_is_bounded(runner: Runner) -> None:
    """A CDN that refuses every URL ends the task in error after url_refreshes re-fetches."""
    runner.configure(url_refreshes=2)
    task = runner.emu.add_task()
    runner.emu.asset_fault(video_path(runner.emu, task), status=410, times=100)
    result = runner.run(task)
    assert result.code == 1
    assert "HTTP 410" in result.task(task)["error"]
    assert len([r for r in runner.emu.requests if r.origin == "api"]) == 3
    assert [p for p in runner.final_files() if p.suffix == ".mp4"] == []


def test_retry_gives_up_when_the_wait_exceeds_the_time_budget(runner: Runner) -> None:
    """A Retry-After beyond retry_total_seconds ends the task at once instead of waiting."""
    runner.configure(retry_total_seconds=1, retry_attempts=5)
    task = runner.emu.add_task()
    # 3 s > the 1 s budget: a broken bound would wait, retry, and fail the count below.
    runner.emu.api_fault(task, status=503, headers={"Retry-After": "3"}, times=5)
    result = runner.run(task)
    assert result.code == 1
    assert "HTTP 503" in result.task(task)["error"]
    assert [r.status for r in runner.emu.requests if r.origin == "api"] == [503]
