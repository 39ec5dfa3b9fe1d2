"""`--wait`: unfinished tasks polled on the stated schedule until they end or the deadline passes.

The schedule and the deadline are scaled by `wait_time_scale`, so `--wait 2m` lasts 2.4 s here;
the poll counts are checked against the schedule the README states, in unscaled seconds.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time

import pytest

from archiver.testing import ArtifactSpec, Emulator, Lifecycle, Seen

from .conftest import Runner
from .test_crash import DEADLINE, wait_for
from .test_discover import run_process
from .test_progress import run_on_a_terminal

SCALE = 0.02  # --wait 2m lasts 2.4 s; polls 0.2 s apart growing to 1.2 s
INITIAL, MAXIMUM, GROWTH, JITTER = 10.0, 60.0, 1.5, 0.1
TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]
FOREVER = Lifecycle(pending=0, running=None)
# Each answer may take this long (unscaled s: 20 ms here) before the next wait starts.
LATENCY = 1.0


def hits(emu: Emulator, task_id: str, origin: str = "api") -> list[Seen]:
    return [r for r in emu.requests if r.origin == origin and task_id in r.raw_path]


def poll_bounds(deadline: float, *, first: float) -> tuple[int, int]:
    """Fewest and most polls after a task's first answer that the stated schedule allows: each
    wait initial x growth^(n-1) capped at maximum, jittered by +-10%, then one last poll at
    the deadline. The fewest: first answered at `first`, every answer taking LATENCY; the
    most: answered at once."""

    def count(spread: float, at: float, latency: float) -> int:
        polls = 0
        while True:
            polls += 1
            at += min(MAXIMUM, min(MAXIMUM, INITIAL * GROWTH ** (polls - 1)) * spread) + latency
            if at >= deadline:
                return polls  # this one is the last look, at the deadline

    return count(1 + JITTER, first, LATENCY), count(1 - JITTER, 0.0, 0.0)


def test_wait_archives_finishers_and_leaves_the_rest_pending(runner: Runner) -> None:
    """--wait 2m: finishers archive as they finish; an endless task is polled on schedule."""
    runner.configure(wait_time_scale=SCALE)
    emu = runner.emu
    done = emu.add_task(artifacts=TINY, lifecycle=Lifecycle(pending=1, running=2))
    failed = emu.add_task(lifecycle=Lifecycle(pending=0, running=1, final="FAILED"))
    endless = emu.add_task(lifecycle=FOREVER)
    started = time.monotonic()  # the run starts after this; the emulator keeps the same clock
    result = runner.run(done, failed, endless, "--wait", "2m")
    assert result.code == 0, result.err
    assert result.states() == {done: "archived", failed: "failed", endless: "pending"}
    assert "status RUNNING" in result.task(endless)["error"]
    assert runner.catalog_rows("SELECT state FROM tasks WHERE task_id = ?", endless) == [
        ("pending",)
    ]
    # Each is polled until it ends and no more; the finished one is downloaded at once.
    assert [len(hits(emu, t)) for t in (done, failed)] == [4, 2]
    url = emu.task_json(done)["artifacts"][0]["url"]
    (download,) = hits(emu, url.split("?")[0].removeprefix(emu.cdn_url), "cdn")
    endless_polls = hits(emu, endless)
    assert download.at < endless_polls[-1].at
    fewest, most = poll_bounds(120, first=(endless_polls[0].at - started) / SCALE)
    assert fewest <= len(endless_polls) - 1 <= most
    gaps = [b.at - a.at for a, b in itertools.pairwise(endless_polls)]
    for n, gap in enumerate(gaps[:-1], 1):  # the last one may be cut short by the deadline
        assert gap >= SCALE * (1 - JITTER) * min(MAXIMUM, INITIAL * GROWTH ** (n - 1)), n


def test_estimated_start_pushes_the_next_poll_out(runner: Runner) -> None:
    """A task that says it starts in 50 s is not asked again sooner (until the deadline)."""
    runner.configure(wait_time_scale=SCALE)
    queued = runner.emu.add_task(lifecycle=Lifecycle(pending=None, eta=50))
    result = runner.run(queued, "--wait", "2m")
    assert result.states() == {queued: "pending"}
    polls = hits(runner.emu, queued)
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert len(polls) - 1 <= 3  # 50 s, 100 s, then the deadline at 120 s
    assert all(gap >= SCALE * 50 for gap in gaps[:-1]) and gaps


def test_a_429_while_polling_pauses_every_poll(runner: Runner) -> None:
    """A poll answered 429 with Retry-After: 1 holds the other task's polls for that second."""
    runner.configure(wait_time_scale=SCALE, retry_max_delay=5)
    first, other = (runner.emu.add_task(lifecycle=FOREVER) for _ in range(2))
    runner.emu.api_fault(first, status=429, headers={"Retry-After": "1"}, skip=2)
    result = runner.run(first, other, "--wait", "2m")
    assert result.states() == {first: "pending", other: "pending"}
    throttled = next(r for r in hits(runner.emu, first) if r.status == 429)
    later = [r for r in runner.emu.requests if r.at > throttled.at]
    assert later and min(r.at for r in later) >= throttled.at + 1.0
    assert any(other in r.raw_path for r in later)


def test_polls_keep_to_the_api_lane_cap(runner: Runner) -> None:
    """With api_concurrency 1, polls of several tasks never overlap at the server."""
    runner.configure(wait_time_scale=SCALE, api_concurrency=1)
    runner.emu.api_delay = 0.05
    tasks = [runner.emu.add_task(lifecycle=FOREVER) for _ in range(4)]
    result = runner.run(*tasks, "--wait", "1m")
    assert set(result.states().values()) == {"pending"}
    arrivals = sorted(r.at for r in runner.emu.requests if r.origin == "api")
    assert len(arrivals) > 8
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(arrivals))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_waiting_ends_the_run_cleanly(
    runner: Runner, signum: signal.Signals, code: int
) -> None:
    """SIGTERM/SIGINT while waiting: the finished task is recorded, the other stays pending."""
    runner.configure(wait_time_scale=SCALE)
    done = runner.emu.add_task(artifacts=TINY, lifecycle=Lifecycle(pending=0, running=1))
    endless = runner.emu.add_task(lifecycle=FOREVER)
    report = runner.root.parent / "report.json"
    process = runner.spawn(done, endless, "--wait", "60m", "--report", str(report))

    def archived_and_waiting() -> bool:
        return len(hits(runner.emu, endless)) >= 3 and any(
            r.origin == "cdn" and r.status == 200 for r in runner.emu.requests
        )

    wait_for(archived_and_waiting, "one task archived while the other is polled")
    os.kill(process.pid, signum)
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == code
    assert err.splitlines() == [
        "runway-archiver: interrupted" + (" (SIGTERM)" if signum == signal.SIGTERM else "")
    ]
    assert out.startswith("2 tasks: 1 archived, 0 skipped, 1 pending")
    rows = dict(runner.catalog_rows("SELECT task_id, state FROM tasks"))
    assert rows == {done: "archived", endless: "pending"}
    assert runner.catalog_rows("SELECT exit_code FROM runs") == [(code,)]
    doc = json.loads(report.read_text())
    states = {t["task_id"]: t["state"] for t in doc["tasks"]}
    assert states == {done: "archived", endless: "pending"}
    assert doc["exit_code"] == code and doc["unfinished"] == []


def test_waiting_tasks_are_shown_on_a_terminal_only(runner: Runner) -> None:
    """On a TTY a line shows each waiting task's status and progress; under cron, nothing."""
    runner.configure(wait_time_scale=SCALE)
    task = runner.emu.add_task(artifacts=TINY, lifecycle=Lifecycle(pending=1, running=3))
    code, out, screen = run_on_a_terminal(runner, task, "--wait", "2m")
    assert code == 0, screen
    short = task.rpartition("-task:")[2][:8]
    assert "waiting for 1" in screen
    assert f"{short} PENDING starts in ~30s" in screen
    assert f"{short} RUNNING 33%" in screen and f"{short} RUNNING 67%" in screen
    assert out.startswith("1 tasks: 1 archived")

    quiet = runner.emu.add_task(artifacts=TINY, lifecycle=Lifecycle(pending=1, running=3))
    result = run_process(runner, quiet, "--wait", "2m")
    assert result.code == 0
    assert result.err == ""
    assert result.states() == {quiet: "archived"}
