"""The run's account: counts per state, the exit code they imply, and the --report JSON.

A run's task entries go to a spool file as each task ends (a run over a million ids holds none
of them); the report is written whole from it, atomically, and again if the run's exit code
changes after. The report leaves the archive folder (cron mail, dashboards), so every message in
it is scrubbed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from . import scrub
from .files import atomic_write, discard, fsync_dir, nofollow_opener, storage_error
from .model import ArchivedFile, Missing, State, TaskOutcome

STDOUT = Path("-")


def summary(outcomes: Iterable[TaskOutcome]) -> dict[str, int]:
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
    """The JSON report of outcomes known at once, atomically (`-`: stdout); skipped tasks list
    the catalog's files; `listing`: what `run --all`'s listing reached."""
    known = archived_files or {}
    with Spool(path) as spool:
        for outcome in outcomes:
            spool.add(outcome, known.get(outcome.task_id, ()))
        spool.unfinished(unfinished)
        spool.write(counts, code=code, stopped=stopped, listing=listing, retries=retries)


class Spool:
    """A report's task entries, added as tasks end and kept in an unnamed temp file beside the
    report (gone with the process, whatever ends it): `write` makes the whole report from
    them, as often as needed, holding none in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = self._temp()
        self._left = self._temp()  # the ids of tasks the run did not finish
        self._count = self._left_count = 0

    def _temp(self) -> IO[str]:
        folder = None if self.path == STDOUT else self.path.parent
        try:
            # A lone surrogate (JSON can carry one) becomes a \uXXXX escape: still valid JSON.
            return tempfile.TemporaryFile(
                "w+", encoding="utf-8", errors="backslashreplace", dir=folder
            )
        except OSError as exc:
            raise storage_error(exc, self.path) from exc

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, outcome: TaskOutcome, files: Sequence[ArchivedFile] = ()) -> None:
        """A task's entry; `files`: what it holds when the outcome names none (a skipped task,
        from the catalog)."""
        entry = json.dumps(_task(outcome, outcome.files or files), indent=2, ensure_ascii=False)
        self._put(self._entries, ("," if self._count else "") + "\n" + _indent(entry, 4))
        self._count += 1

    def unfinished(self, task_ids: Iterable[str]) -> None:
        """The tasks the run did not finish (replacing any given before)."""
        self._left.seek(0)
        self._left.truncate()
        self._left_count = 0
        for task_id in task_ids:
            text = json.dumps(scrub.text(task_id), ensure_ascii=False)
            self._put(self._left, ("," if self._left_count else "") + "\n    " + text)
            self._left_count += 1

    def write(
        self,
        counts: Mapping[str, int],
        *,
        code: int,
        stopped: str | None = None,
        listing: Mapping[str, Any] | None = None,
        retries: int = 0,
    ) -> None:
        """The report, whole: atomically in place of the last one (`-`: to stdout)."""
        if self.path == STDOUT:
            self._document(sys.stdout, counts, code, stopped, listing, retries)
            sys.stdout.flush()
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        discard(tmp)  # the temp name is ours: whatever sits there (a planted link) goes
        try:
            with open(
                tmp, "w", encoding="utf-8", errors="backslashreplace", opener=nofollow_opener
            ) as out:
                self._document(out, counts, code, stopped, listing, retries)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            discard(tmp)
            raise storage_error(exc, self.path) from exc

    def _document(
        self,
        out: IO[str],
        counts: Mapping[str, int],
        code: int,
        stopped: str | None,
        listing: Mapping[str, Any] | None,
        retries: int,
    ) -> None:
        head = {
            "summary": dict(counts),
            "exit_code": code,
            "stopped": scrub.text(stopped) if stopped else None,
            "unfinished": "@",
            "retries": retries,
            "listing": listing,
            "tasks": "@",
        }
        text = json.dumps(head, indent=2, ensure_ascii=False)
        before, between, after = text.split('"@"')
        self._put(out, before)
        self._copy(self._left, self._left_count, out)
        self._put(out, between)
        self._copy(self._entries, self._count, out)
        self._put(out, after + "\n")

    def _copy(self, items: IO[str], count: int, out: IO[str]) -> None:
        """A JSON array of the items spooled in `items`, as json.dumps(indent=2) lays it out."""
        self._put(out, "[")
        items.flush()
        items.seek(0)
        try:
            shutil.copyfileobj(items, out)
        except OSError as exc:
            raise storage_error(exc, self.path) from exc
        items.seek(0, os.SEEK_END)
        self._put(out, "\n  ]" if count else "]")

    def _put(self, out: IO[str], text: str) -> None:
        try:
            out.write(text)
        except OSError as exc:
            raise storage_error(exc, self.path) from exc

    def close(self) -> None:
        self._entries.close()
        self._left.close()


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


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
