"""The run's account: counts per state, the exit code they imply, and the --report JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_write
from .model import ArchivedFile, State, TaskOutcome


def summary(outcomes: Sequence[TaskOutcome]) -> dict[str, int]:
    counts = {str(state): 0 for state in State}
    for outcome in outcomes:
        counts[str(outcome.state)] += 1
    return counts


def summary_line(counts: Mapping[str, int], seconds: float) -> str:
    parts = ", ".join(f"{counts[str(state)]} {state}" for state in State)
    total = sum(counts.values())
    return f"{total} tasks: {parts} ({seconds:.1f} s)"


def exit_code(counts: Mapping[str, int]) -> int:
    return 1 if counts[str(State.ERROR)] else 0


def write(
    path: Path,
    outcomes: Sequence[TaskOutcome],
    counts: Mapping[str, int],
    archived_files: Mapping[str, Sequence[ArchivedFile]] | None = None,
) -> None:
    """The JSON report; skipped tasks list the files the catalog holds for them."""
    known = archived_files or {}
    doc = {
        "summary": dict(counts),
        "tasks": [_task(o, o.files or tuple(known.get(o.task_id, ()))) for o in outcomes],
    }
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8"))


def _task(outcome: TaskOutcome, files: Sequence[ArchivedFile]) -> dict[str, Any]:
    return {
        "task_id": outcome.task_id,
        "state": str(outcome.state),
        "status": outcome.status,
        "dir": outcome.dir,
        "sidecar": outcome.sidecar,
        "files": [
            {
                "kind": str(f.kind),
                "path": f.path,
                "bytes": f.size,
                "sha256": f.sha256,
                "verified": True,
            }
            for f in files
        ],
        "error": outcome.error,
    }
