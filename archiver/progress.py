"""What a person sees while a run works: tqdm bars on a terminal, plain lines otherwise.

Levels: QUIET prints only what is wrong (errors, warnings), NORMAL adds notes (a retry, a
re-download), VERBOSE adds one line per file. Every line goes through `scrub.text`.
This is the only module that imports tqdm.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import sys
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from . import scrub
from .model import ArchivedFile, State, TaskOutcome


class Level(enum.IntEnum):
    QUIET = -1
    NORMAL = 0
    VERBOSE = 1


class Reporter(Protocol):
    level: Level

    def start(self, tasks: int) -> None: ...
    def more(self, tasks: int) -> None: ...
    def add_bytes(self, count: int) -> None: ...
    def task_done(self, outcome: TaskOutcome) -> None: ...
    def skipped(self, count: int) -> None: ...
    def file_done(self, task_id: str, archived: ArchivedFile) -> None: ...
    def note(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def close(self) -> None: ...


class PlainReporter:
    """For cron: no bars; only problems are printed, one line each (and more if verbose)."""

    def __init__(self, stream: TextIO, level: Level = Level.NORMAL) -> None:
        self._stream = stream
        self.level = level

    def start(self, tasks: int) -> None:
        pass

    def more(self, tasks: int) -> None:
        """`tasks` more found in the task list, which is read as the run goes."""

    def add_bytes(self, count: int) -> None:
        pass

    def task_done(self, outcome: TaskOutcome) -> None:
        if outcome.state is State.ERROR:
            self._line(f"error: {outcome.task_id}: {outcome.error}")

    def skipped(self, count: int) -> None:
        """`count` tasks ended skipped, done and whole: nothing to print."""

    def file_done(self, task_id: str, archived: ArchivedFile) -> None:
        if self.level >= Level.VERBOSE:
            self._line(f"file: {archived.path} ({archived.size} bytes, sha256 {archived.sha256})")

    def note(self, message: str) -> None:
        """Something worth knowing that is not wrong: shown unless quiet."""
        if self.level >= Level.NORMAL:
            self._line(message)

    def warn(self, message: str) -> None:
        """Something wrong that did not end a task: shown at every level."""
        self._line(message)

    def _line(self, message: str) -> None:
        self._write(scrub.text(message))

    def _write(self, line: str) -> None:
        print(line, file=self._stream, flush=True)

    def close(self) -> None:
        pass


class BarReporter(PlainReporter):
    """Two bars, tasks and bytes; problem lines are written above them."""

    def __init__(self, stream: TextIO, level: Level = Level.NORMAL) -> None:
        super().__init__(stream, level)
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

    def more(self, tasks: int) -> None:
        # The total grows as the list is read: a count, never the list itself.
        self._tasks.total = (self._tasks.total or 0) + tasks
        self._tasks.refresh()

    def add_bytes(self, count: int) -> None:
        self._bytes.update(count)

    def task_done(self, outcome: TaskOutcome) -> None:
        self._tasks.update(1)
        super().task_done(outcome)

    def skipped(self, count: int) -> None:
        self._tasks.update(count)

    def _write(self, line: str) -> None:
        tqdm.write(line, file=self._stream)

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


def reporter(
    *, enabled: bool, level: Level = Level.NORMAL, stream: TextIO | None = None
) -> Reporter:
    stream = stream or sys.stderr  # looked up now, not at import: callers may redirect it
    if enabled and level > Level.QUIET and stream.isatty():
        return BarReporter(stream, level)
    return PlainReporter(stream, level)


class StatusLine(Protocol):
    def show(self, text: str) -> None: ...
    def close(self) -> None: ...


class _NoStatusLine:
    def show(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _TqdmStatusLine:
    """One line of text under the bars, redrawn in place (the tasks `--wait` is polling)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._line: tqdm[Any] | None = None

    def show(self, text: str) -> None:
        if self._line is None:
            # Below the reporter's two bars (positions 0 and 1).
            self._line = tqdm(file=self._stream, position=2, bar_format="{desc}", leave=False)
        width = shutil.get_terminal_size().columns
        with contextlib.suppress(OSError, ValueError):
            width = os.get_terminal_size(self._stream.fileno()).columns
        self._line.set_description_str(scrub.text(text)[: max(20, width - 1)])

    def close(self) -> None:
        if self._line is not None:
            self._line.close()
            self._line = None


def status_line(*, enabled: bool, stream: TextIO | None = None) -> StatusLine:
    """A line redrawn in place on a terminal; nothing at all otherwise (cron mail stays short)."""
    stream = stream or sys.stderr
    if enabled and stream.isatty():
        return _TqdmStatusLine(stream)
    return _NoStatusLine()
