"""The SQLite engine's rows: the columns it reads, each row parsed into its typed record, and a
task's files as rows. The PostgreSQL engine keeps the same columns (`catalog copy` moves rows as
they are), so it parses and writes them with these too."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import fields
from typing import Any

from ..model import ArchivedFile, FileKind, ProbeResult, State, TaskOutcome
from .rows import RunRecord, TaskRow, TaskState

FILE_COLUMNS = "kind, artifact, path, bytes, sha256, probe, unchecked, stored"
TASK_COLUMNS = (
    "task_id, state, status, dir, error, updated_at, sidecar_bytes, failures, failed_run,"
    " failed_at, answered, forgotten_at"
)
# A task's files, packed with its id (`model.FileSizes`): the column after TASK_COLUMNS.
PACKED_FILES = "CAST(task_id || sizes AS BLOB)"
# TaskState's; index tasks_listed holds them all (schema 10): keep the two alike.
STATE_COLUMNS = "task_id, state, dir, error, failures, answered, forgotten_at"
STATES = {str(s): s for s in State}  # a dict lookup: State(...) is slow for 100,000 rows


def archived_file(r: Sequence[Any]) -> ArchivedFile:
    return ArchivedFile(
        kind=FileKind(r[0]),
        artifact_index=r[1],
        path=r[2],
        size=r[3],
        sha256=r[4],
        probe=ProbeResult(**json.loads(r[5])),
        unchecked=tuple(json.loads(r[6])),
        stored=r[7],
    )


# A named tuple made as a tuple is: its class's own __new__ is a Python function, a third of the
# cost of making a million rows (0.6 -> 0.4 us each, measured).
_made = tuple.__new__


def task_row(r: Sequence[Any]) -> TaskRow:
    return _made(TaskRow, (r[0], STATES[r[1]], *r[2:12]))  # TASK_COLUMNS, none that follow


def task_state(r: Sequence[Any]) -> TaskState:
    return _made(TaskState, (r[0], STATES[r[1]], *r[2:7]))


def run_record(r: Sequence[Any]) -> RunRecord:
    summary = json.loads(r[3]) if r[3] else None
    if summary is not None and not isinstance(summary, dict):
        raise ValueError("summary")
    return RunRecord(started_at=r[0], finished_at=r[1], exit_code=r[2], summary=summary)


def file_rows(outcome: TaskOutcome) -> list[tuple[Any, ...]]:
    """The files of an outcome as rows of (task_id, FILE_COLUMNS)."""
    return [
        (
            outcome.task_id,
            str(f.kind),
            f.artifact_index,
            f.path,
            f.size,
            f.sha256,
            probe_json(f.probe),
            json.dumps(list(f.unchecked)) if f.unchecked else "[]",
            f.stored,
        )
        for f in outcome.files
    ]


@functools.lru_cache(maxsize=256)
def probe_json(probe: ProbeResult) -> str:
    # dataclasses.asdict deep-copies every field: a third of a 100,000-task fill, measured.
    return json.dumps({f.name: getattr(probe, f.name) for f in fields(probe)})


BATCH = 5000  # task ids per lookup: fewer statements, well under SQLite's 32,766 parameters


def marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))


def batches(task_ids: Collection[str]) -> Iterator[list[str]]:
    # In key order: each batch then reads neighbouring pages of the B-tree, each page once,
    # instead of one page per id from all over a file far larger than SQLite's cache.
    ids = iter(sorted(task_ids))
    while batch := list(itertools.islice(ids, BATCH)):
        yield batch
