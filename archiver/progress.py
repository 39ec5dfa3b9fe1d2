"""What a person sees while a run works: tqdm bars on a terminal, plain lines otherwise.

This is the only module that imports tqdm.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from tqdm import tqdm

from .model import State, TaskOutcome


class Reporter(Protocol):
    def start(self, tasks: int) -> None: ...
    def add_bytes(self, count: int) -> None: ...
    def task_done(self, outcome: TaskOutcome) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


class PlainReporter:
    """For cron: no bars; only problems are printed, one line each."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def start(self, tasks: int) -> None:
        pass

    def add_bytes(self, count: int) -> None:
        pass

    def task_done(self, outcome: TaskOutcome) -> None:
        if outcome.state is State.ERROR:
            self.note(f"error: {outcome.task_id}: {outcome.error}")

    def note(self, message: str) -> None:
        print(message, file=self._stream, flush=True)

    def close(self) -> None:
        pass


class BarReporter(PlainReporter):
    """Two bars, tasks and bytes; problem lines are written above them."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._tasks = tqdm(total=0, unit="task", desc="tasks", file=stream, position=0)
        self._bytes = tqdm(
            total=None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="bytes",
            file=stream,
            position=1,
        )

    def start(self, tasks: int) -> None:
        self._tasks.reset(total=tasks)

    def add_bytes(self, count: int) -> None:
        self._bytes.update(count)

    def task_done(self, outcome: TaskOutcome) -> None:
        self._tasks.update(1)
        super().task_done(outcome)

    def note(self, message: str) -> None:
        tqdm.write(message, file=self._stream)

    def close(self) -> None:
        self._bytes.close()
        self._tasks.close()


class Counter(Protocol):
    def update(self, n: int = 1) -> object: ...
    def close(self) -> None: ...


class _NoCounter:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def counter(total: int, *, unit: str, enabled: bool, stream: TextIO | None = None) -> Counter:
    """One bar of `total` units on a terminal; nothing otherwise."""
    stream = stream or sys.stderr
    if enabled and stream.isatty():
        return tqdm(total=total, unit=unit, desc=f"{unit}s", file=stream)
    return _NoCounter()


def reporter(*, enabled: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr  # looked up now, not at import: callers may redirect it
    if enabled and stream.isatty():
        return BarReporter(stream)
    return PlainReporter(stream)
