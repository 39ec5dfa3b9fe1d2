"""`--wait`: unfinished tasks polled on the stated schedule until they end or the deadline passes.

The schedule itself is checked on a clock the test drives (`SteppedClock`): exact poll times,
whatever the machine's load. The runs against the emulator scale it by `wait_time_scale`, so
`--wait 2m` lasts 2.4 s there, and check only what load cannot break: no gap shorter than the
schedule allows, and no more polls than it allows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
from collections.abc import Iterator

import pytest

from archiver.bounded import Slots
from archiver.model import State, Task, TaskOutcome
from archiver.progress import status_line
from archiver.testing import ArtifactSpec, Emulator, Lifecycle, Seen
from archiver.waiting import Schedule, Waiter, WaitPolicy

from .conftest import Runner
from .helpers import DEADLINE, run_on_a_terminal, run_process, wait_for

SCALE = 0.02  # --wait 2m lasts 2.4 s; polls 0.2 s apart growing to 1.2 s
INITIAL, MAXIMUM, GROWTH, JITTER = 10.0, 60.0, 1.5, 0.1
TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]
FOREVER = Lifecycle(pending=0, running=None)
ROUNDING = 1e-9  # seconds: the float error in a gap between two polls of a driven clock


def hits(emu: Emulator, task_id: str, origin: str = "api") -> list[Seen]:
    return [r for r in emu.requests if r.origin == origin and task_id in r.raw_path]


def most_polls(deadline: float) -> int:
    """The most polls after a task's first answer the stated schedule allows: every wait
    initial x growth^(n-1), capped at maximum, at its shortest jitter, answered at once;
    then one last poll at the deadline."""
    polls, at = 0, 0.0
    while True:
        polls += 1
        at += min(MAXIMUM, INITIAL * GROWTH ** (polls - 1)) * (1 - JITTER)
        if at >= deadline:
            return polls  # this one is the last look, at the deadline


class SteppedClock:
    """The waiter's clock, driven by the test: time moves when a poll says it took time, or,
    once every ready piece of work has run, straight to the next poll that is due."""

    def __init__(self) -> None:
        self.at = 0.0

    def now(self) -> float:
        return self.at

    async def wait(self, wake: asyncio.Event, until: float | None) -> None:
        await asyncio.sleep(0)  # the polls started just now run first: they may wake us
        if wake.is_set() or until is None:
            await wake.wait()
        else:
            self.at = max(self.at, until)


def waiting(status: str, task_id: str = "t1", *, eta: float | None = None) -> Task:
    return Task.from_json({"status": status, "estimatedTimeToStartSeconds": eta}, task_id=task_id)


async def polled_at(
    answers: Iterator[Task], *, deadline: float, latency: float = 0.0, jitter: float = 0.0
) -> list[float]:
    """When the waiter polls one task on a driven clock, the task answering `answers` in turn
    (the first pass's answer first), each answer `latency` seconds after its poll."""
    clock = SteppedClock()
    schedule = Schedule(initial=INITIAL, maximum=MAXIMUM, growth=GROWTH, jitter=jitter)
    waiter = Waiter(
        WaitPolicy(deadline=deadline, schedule=schedule), status_line(enabled=False), clock=clock
    )
    times: list[float] = []

    async def first_pass() -> None:
        waiter.take(next(answers))

    async def poll(task_id: str) -> TaskOutcome:
        times.append(clock.now())
        clock.at += latency
        task = next(answers)
        waited = waiter.take(task)
        return TaskOutcome(task_id, State.PENDING if waited else State.ARCHIVED, task.status)

    await waiter.alongside(first_pass(), poll, {})
    return times


async def test_an_unfinished_task_is_polled_on_the_stated_schedule() -> None:
    """Waits of 10, 15, 22.5, 33.75 s, growing 1.5x, then one last poll at the deadline."""
    endless = itertools.repeat(waiting("RUNNING"))
    assert await polled_at(endless, deadline=120) == [10, 25, 47.5, 81.25, 120]


async def test_the_waits_grow_to_the_cap_and_start_after_each_answer() -> None:
    """The wait is capped at 60 s and counted from the answer, however long it took."""
    endless = itertools.repeat(waiting("RUNNING"))
    times = await polled_at(endless, deadline=400, latency=2.0)
    assert times == [10, 27, 51.5, 87.25, 139.875, 201.875, 263.875, 325.875, 387.875, 400]


async def test_a_jittered_schedule_keeps_to_its_bounds() -> None:
    """With 10% jitter every wait is within 10% of the stated one, and the count within its
    bound; the last poll is at the deadline."""
    endless = itertools.repeat(waiting("RUNNING"))
    times = await polled_at(endless, deadline=600, jitter=JITTER)
    gaps = [b - a for a, b in itertools.pairwise([0.0, *times])]
    for n, gap in enumerate(gaps[:-1], 1):
        nominal = min(MAXIMUM, INITIAL * GROWTH ** (n - 1))
        low, high = nominal * (1 - JITTER), min(MAXIMUM, nominal * (1 + JITTER))
        # A gap is a difference of two sums of floats: a 60 s wait after a poll at 287.3 s
        # comes back as 60.00000000000003, so the bounds hold to a rounding error, not exactly.
        assert low - ROUNDING <= gap <= high + ROUNDING, (n, gap)
    assert times[-1] == 600 and len(times) <= most_polls(600)


async def test_a_task_that_finishes_is_polled_no_more() -> None:
    """Polled until its answer is final: PENDING, RUNNING, then SUCCEEDED ends its polls."""
    answers = iter([waiting("PENDING"), waiting("RUNNING"), waiting("SUCCEEDED")])
    assert await polled_at(answers, deadline=120) == [10, 25]


async def test_estimated_start_pushes_a_poll_out_on_the_clock() -> None:
    """A task that says it starts in 50 s is asked again after 50 s, not 10."""
    answers = iter([waiting("PENDING", eta=50)] * 2 + [waiting("RUNNING")] * 2)
    assert await polled_at(answers, deadline=120) == [50, 100, 120]


async def test_no_more_polls_run_at_once_than_the_policy_allows() -> None:
    """Ten tasks due together, a limit of 3: a spy sees at most 3 polls running at once."""
    clock = SteppedClock()
    policy = WaitPolicy(deadline=100, schedule=Schedule(jitter=0.0), limit=3)
    waiter = Waiter(policy, status_line(enabled=False), clock=clock)
    running, most = 0, 0

    async def first_pass() -> None:
        for n in range(10):
            waiter.take(waiting("RUNNING", f"t{n}"))

    async def poll(task_id: str) -> TaskOutcome:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(5):  # stay running while the waiter tries to start more
            await asyncio.sleep(0)
        running -= 1
        return TaskOutcome(task_id, State.ARCHIVED, "SUCCEEDED")

    outcomes: dict[str, TaskOutcome] = {}
    await waiter.alongside(first_pass(), poll, outcomes)
    assert len(outcomes) == 10 and most == 3


async def test_slots_start_work_only_when_one_is_free() -> None:
    """Slots.spawn waits for a free slot before it starts: 20 pieces, 4 slots, never more
    than 4 running and never more than 4 started but unfinished."""
    slots, running, most, started = Slots(4), 0, 0, 0

    async def work() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1

    async with asyncio.TaskGroup() as group:
        for _ in range(20):
            await slots.spawn(group, work)
            started += 1
            assert slots.busy <= 4
    assert (started, most, slots.busy) == (20, 4, 0)


def test_wait_archives_finishers_and_leaves_the_rest_pending(runner: Runner) -> None:
    """--wait 2m: finishers archive as they finish; an endless task is polled on schedule."""
    runner.configure(wait_time_scale=SCALE)
    emu = runner.emu
    done = emu.add_task(artifacts=TINY, lifecycle=Lifecycle(pending=1, running=2))
    failed = emu.add_task(lifecycle=Lifecycle(pending=0, running=1, final="FAILED"))
    endless = emu.add_task(lifecycle=FOREVER)
    result = runner.run(done, failed, endless, "--wait", "2m")
    assert result.code == 0, result.err
    assert result.states() == {done: "archived", failed: "failed", endless: "pending"}
    assert "status RUNNING" in result.task(endless)["error"]
    assert runner.catalog().tasks[endless].state == "pending"
    # Each is polled until it ends and no more; the finished one is downloaded at once.
    assert [len(hits(emu, t)) for t in (done, failed)] == [4, 2]
    url = emu.task_json(done)["artifacts"][0]["url"]
    (download,) = hits(emu, url.split("?")[0].removeprefix(emu.cdn_url), "cdn")
    endless_polls = hits(emu, endless)
    assert download.at < endless_polls[-1].at
    assert 2 <= len(endless_polls) - 1 <= most_polls(120)  # a poll or more, and the last look
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
        # Archived means recorded in the catalog: the file served (the emulator's CDN request)
        # still has to be written, verified and recorded, and a signal before that leaves it
        # pending. The catalog is read only once the file was served, while the run writes it.
        if len(hits(runner.emu, endless)) < 3 or not any(
            r.origin == "cdn" and r.status == 200 for r in runner.emu.requests
        ):
            return False
        row = runner.catalog().tasks.get(done)
        return row is not None and row.state == "archived"

    wait_for(archived_and_waiting, "one task archived while the other is polled")
    os.kill(process.pid, signum)
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == code
    assert err.splitlines() == [
        "runway-archiver: interrupted" + (" (SIGTERM)" if signum == signal.SIGTERM else "")
    ]
    assert out.startswith("2 tasks: 1 archived, 0 skipped, 1 pending")
    held = runner.catalog()
    assert {t: row.state for t, row in held.tasks.items()} == {done: "archived", endless: "pending"}
    assert held.runs == 1 and held.last_run is not None and held.last_run.exit_code == code
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
