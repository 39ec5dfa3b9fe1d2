"""`--wait`: poll tasks that are not finished yet until they are, or until the run's deadline.

A task's polls come poll_interval apart at first, growing 1.5 times each to poll_max_interval,
with 10% jitter; a later estimatedTimeToStartSeconds pushes the next poll out (to the cap), and
a task not finished by the deadline gets one last poll then. A signal ends the run's work as
a whole (bookkeeping.py): what finished is recorded, the tasks still waiting stay pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Protocol

from .bounded import Slots
from .config import Config
from .model import State, Task, TaskOutcome
from .progress import StatusLine

WAITABLE = frozenset({"PENDING", "RUNNING", "THROTTLED"})
SHOWN = 8  # tasks named on the status line; a terminal line holds no more anyway
Poll = Callable[[str], Awaitable[TaskOutcome]]
Outcomes = MutableMapping[str, TaskOutcome]


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Seconds between one task's polls."""

    initial: float = 10.0
    maximum: float = 60.0
    growth: float = 1.5
    jitter: float = 0.1
    scale: float = 1.0

    def nominal(self, poll: int) -> float:
        """The unjittered, unscaled wait before poll `poll` (1: the first after the fetch)."""
        return min(self.maximum, self.initial * self.growth ** min(poll - 1, 64))

    def delay(self, poll: int, estimated_start: float | None = None) -> float:
        """Seconds to wait before poll `poll`, jittered, never past the cap, then scaled."""
        spread = random.uniform(1 - self.jitter, 1 + self.jitter)
        wait = min(self.maximum, self.nominal(poll) * spread)
        if estimated_start:
            # The API says it will not start sooner: no point asking before (up to the cap).
            wait = max(wait, min(self.maximum, estimated_start))
        return wait * self.scale


@dataclass(frozen=True, kw_only=True)
class WaitPolicy:
    """How long `--wait` waits, how often it polls, and how many polls run at once."""

    deadline: float  # the clock's time after which no task is polled again
    schedule: Schedule
    limit: int = 32  # polls (and archives of tasks that finished) running at once

    @classmethod
    def from_config(cls, config: Config, *, seconds: float, started: float) -> WaitPolicy:
        return cls(
            deadline=started + seconds * config.wait_time_scale,
            schedule=Schedule(
                initial=config.poll_interval,
                maximum=config.poll_max_interval,
                scale=config.wait_time_scale,
            ),
            limit=2 * config.concurrency,
        )


class Clock(Protocol):
    """The waiter's time: seconds that only go forward, and a wait that a wake-up ends early.

    The run's clock is the monotonic one; tests drive their own, so no schedule they check
    depends on how fast a loaded machine answers.
    """

    def now(self) -> float: ...

    async def wait(self, wake: asyncio.Event, until: float | None) -> None:
        """Return once `wake` is set or `until` has come (None: only once woken)."""


class Monotonic:
    """time.monotonic(), and asyncio's own timeouts."""

    def now(self) -> float:
        return time.monotonic()

    async def wait(self, wake: asyncio.Event, until: float | None) -> None:
        timeout = None if until is None else max(0.0, until - self.now())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wake.wait()


class Waiter:
    """Runs beside a run's first pass, polling each task handed to it by `take`.

    A poll is the pipeline's own fetch-and-archive of the task, so one that has finished is
    archived there and then, while the others keep waiting.
    """

    def __init__(self, policy: WaitPolicy, line: StatusLine, *, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock = clock or Monotonic()
        self._polls: Counter[str] = Counter()
        self._line = line
        self._due: list[tuple[float, int, str]] = []  # a heap of (when, tie-breaker, task id)
        self._order = itertools.count()
        self._latest: dict[str, Task] = {}  # each waiting task's last answer, for the display
        self._wake = asyncio.Event()
        self._open = True  # the first pass may still hand over tasks

    def take(self, task: Task) -> bool:
        """Poll this unfinished task again later; False if waiting for it is over."""
        now = self._clock.now()
        if task.status not in WAITABLE or now >= self.policy.deadline:
            self._latest.pop(task.task_id, None)
            return False
        self._polls[task.task_id] += 1
        delay = self.policy.schedule.delay(self._polls[task.task_id], task.estimated_start)
        due = min(now + delay, self.policy.deadline)
        heapq.heappush(self._due, (due, next(self._order), task.task_id))
        self._latest[task.task_id] = task
        self._wake.set()
        return True

    async def alongside(self, first_pass: Awaitable[None], poll: Poll, outcomes: Outcomes) -> None:
        """Run the first pass and the polls together, each poll's outcome put into `outcomes`
        as it ends. Cancelled (a signal), both stop, and `outcomes` holds what was recorded."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._polling(poll, outcomes, group))
                try:
                    await first_pass
                finally:
                    self._open = False
                    self._wake.set()
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        finally:
            self._line.close()

    async def _polling(self, poll: Poll, outcomes: Outcomes, group: asyncio.TaskGroup) -> None:
        slots = Slots(self.policy.limit)
        while self._open or self._due or slots.busy:
            self._line.show(describe(self._latest, self.policy.deadline - self._clock.now()))
            self._wake.clear()
            await self._clock.wait(self._wake, self._due[0][0] if self._due else None)
            now = self._clock.now()
            while self._due and self._due[0][0] <= now:
                _, _, task_id = heapq.heappop(self._due)
                await slots.spawn(group, functools.partial(self._poll_one, task_id, poll, outcomes))

    async def _poll_one(self, task_id: str, poll: Poll, outcomes: Outcomes) -> None:
        try:
            outcomes[task_id] = outcome = await poll(task_id)
            if outcome.state is not State.PENDING:
                self._latest.pop(task_id, None)
        finally:
            # The slot is given back right after this, before the loop can run again.
            self._wake.set()


def describe(waiting: Mapping[str, Task], seconds_left: float) -> str:
    """The status line: how many tasks wait, and each one's status and progress."""
    if not waiting:
        return ""
    parts = [f"waiting for {len(waiting)} (up to {_clock(seconds_left)} more):"]
    for task in itertools.islice(waiting.values(), SHOWN):
        part = f"{_short(task.task_id)} {task.status}"
        percent = _percent(task.progress_ratio)
        if percent is not None and (task.status == "RUNNING" or percent != "0%"):
            part += f" {percent}"
        if task.estimated_start:
            part += f" starts in ~{_clock(task.estimated_start)}"
        parts.append(part)
    if len(waiting) > SHOWN:
        parts.append(f"+{len(waiting) - SHOWN} more")
    return parts[0] + " " + " · ".join(parts[1:])


def _short(task_id: str) -> str:
    return task_id.rpartition("-task:")[2][:8] or task_id[-8:]


def _percent(ratio: str | None) -> str | None:
    if ratio is None:
        return None
    try:
        value = float(ratio)
    except ValueError:
        return None
    return f"{value * 100:.0f}%" if 0 <= value <= 1 else None


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
