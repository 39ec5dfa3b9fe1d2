"""The run's account: counts per state, the exit code they imply, and the --report JSON.

The report leaves the archive folder (cron mail, dashboards), so every message in it is scrubbed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import scrub
from .files import atomic_write
from .model import ArchivedFile, Missing, State, TaskOutcome

STDOUT = Path("-")


def summary(outcomes: Sequence[TaskOutcome]) -> dict[str, int]:
    counts = {str(state): 0 for state in State}
    for outcome in outcomes:
        counts[str(outcome.state)] += 1
    return counts


def summary_line(
    counts: Mapping[str, int],
    seconds: float,
    *,
    unfinished: int = 0,
    stopped: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    parts = ", ".join(f"{counts[str(state)]} {state}" for state in State)
    if unfinished:
        parts += f", {unfinished} not done"
    total = sum(counts.values()) + unfinished
    tail = "".join(f"; {scrub.text(note)}" for note in notes)
    tail += f"; stopped: {scrub.text(stopped)}" if stopped else ""
    return f"{total} tasks: {parts} ({seconds:.1f} s){tail}"


def exit_code(counts: Mapping[str, int]) -> int:
    return 1 if counts[str(State.ERROR)] else 0


def write(
    path: Path,
    outcomes: Sequence[TaskOutcome],
    counts: Mapping[str, int],
    archived_files: Mapping[str, Sequence[ArchivedFile]] | None = None,
    *,
    code: int,
    unfinished: Sequence[str] = (),
    stopped: str | None = None,
    listing: Mapping[str, Any] | None = None,
    retries: int = 0,
) -> None:
    """The JSON report, atomically (`-`: stdout); skipped tasks list the catalog's files;
    `listing`: what `run --all`'s listing reached."""
    known = archived_files or {}
    doc = {
        "summary": dict(counts),
        "exit_code": code,
        "stopped": scrub.text(stopped) if stopped else None,
        "unfinished": list(unfinished),
        "retries": retries,
        "listing": listing,
        "tasks": [_task(o, o.files or tuple(known.get(o.task_id, ()))) for o in outcomes],
    }
    write_json(path, doc)


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Atomically, so an old report never stands beside a newer run; `-` is stdout."""
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    # A lone surrogate (JSON can carry one) becomes a \uXXXX escape: still valid JSON.
    atomic_write(path, text.encode("utf-8", "backslashreplace"))


def _task(outcome: TaskOutcome, files: Sequence[ArchivedFile]) -> dict[str, Any]:
    return {
        "task_id": scrub.text(outcome.task_id),
        "state": str(outcome.state),
        "status": scrub.text(outcome.status) if outcome.status is not None else None,
        "dir": outcome.dir,
        "sidecar": outcome.sidecar,
        "files": [
            {
                "kind": str(f.kind),
                "path": f.path,
                "bytes": f.size,
                "sha256": f.sha256,
                "verified": list(f.verified),
            }
            for f in files
        ],
        "error": scrub.text(outcome.error) if outcome.error is not None else None,
        "next_attempt": outcome.next_attempt,
        **{
            f"{why}_inputs": [
                {"option": scrub.text(m.option), "url": scrub.text(m.url), "reason": m.reason}
                for m in outcome.missing
                if m.why is why
            ]
            for why in Missing
        },
    }
