"""The run's metrics as a Prometheus text file for node_exporter's textfile collector, written
atomically at the end of every run however it ends (`--metrics FILE`, `metrics_file`).

Every value describes the last run or the archive as it is now, so every metric is a gauge (as
Prometheus advises for batch jobs); each carries an `archive` label, so several archives on one
machine can write files side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_write

PREFIX = "runway_archiver_"


@dataclass(frozen=True, kw_only=True)
class Totals:
    """What the archive holds at the end of the run (the catalog's counts)."""

    tasks: Mapping[str, int]  # per state
    files: int
    bytes: int


@dataclass(frozen=True, kw_only=True)
class RunMetrics:
    """One run's figures, as its report gives them."""

    archive: str  # the archive folder or s3:// URL, the label of every sample
    started: float  # unix seconds
    ended: float
    exit_code: int
    outcomes: Mapping[str, int] = field(default_factory=dict)  # tasks per state, as the report
    files: int = 0  # files downloaded, verified and stored by this run
    bytes: int = 0
    retries: int = 0  # requests tried again after a transient failure
    totals: Totals | None = None  # None: the run ended before it opened the archive


Sample = tuple[str, float]  # (extra labels, value)


def render(m: RunMetrics) -> str:
    """The text exposition format: HELP and TYPE once per family, then its samples."""
    families: list[tuple[str, str, list[Sample]]] = [
        ("last_run_start_time_seconds", "When the last run started (unix time).",
         [("", m.started)]),
        ("last_run_end_time_seconds", "When the last run ended (unix time).", [("", m.ended)]),
        ("last_run_duration_seconds", "How long the last run took.", [("", m.ended - m.started)]),
        ("last_run_exit_code", "The exit code of the last run (0: all well).", [("", m.exit_code)]),
        ("last_run_tasks", "Tasks of the last run by outcome, as its report counts them.",
         _labelled("outcome", m.outcomes)),
        ("last_run_archived_files", "Files the last run downloaded, verified and stored.",
         [("", m.files)]),
        ("last_run_archived_bytes", "Bytes of the files the last run stored.", [("", m.bytes)]),
        ("last_run_retries", "Requests the last run tried again after a transient failure.",
         [("", m.retries)]),
    ]  # fmt: skip
    if m.totals is not None:
        families += [
            ("archive_tasks", "Tasks the archive knows, by state.",
             _labelled("state", m.totals.tasks)),
            ("archive_files", "Files the archive holds.", [("", m.totals.files)]),
            ("archive_bytes", "Bytes of the files the archive holds.", [("", m.totals.bytes)]),
        ]  # fmt: skip
    archive = f'archive="{_escape(m.archive)}"'
    lines = []
    for name, help_text, samples in families:
        lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} gauge"]
        lines += [f"{PREFIX}{name}{{{archive}{labels}}} {_number(v)}" for labels, v in samples]
    return "\n".join(lines) + "\n"


def _labelled(label: str, values: Mapping[str, int]) -> list[Sample]:
    return [(f',{label}="{_escape(key)}"', n) for key, n in sorted(values.items())]


def write(path: Path, m: RunMetrics) -> None:
    """Atomically: the collector reads the old file or the new one, never half of one (its
    temp name does not end in .prom, so the collector never reads it)."""
    atomic_write(path, render(m).encode("utf-8"))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
