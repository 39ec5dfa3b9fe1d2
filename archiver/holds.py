"""What a run leaves alone without a request: tasks done and still whole in the archive, tasks
backing off after failing the same way run after run, and tasks forgotten; and when a task
that answers 404 run after run is gone at source.

`list` asks the same `Holds` to show what a run would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from . import sidecar
from .catalog import GONE_AFTER, TaskRow
from .config import Config
from .errors import ProbeTimeout, TaskError, TransientError, UrlExpired
from .model import FileSizes, State, TaskOutcome
from .storage import Target

MAX_BACKOFF_RUNS = 2**20
GONE = "gone at source (forget it with `runway-archiver forget --gone`)"
FORGOTTEN = "forgotten (`runway-archiver forget`): not fetched; --refresh fetches it"


@dataclass(frozen=True, slots=True)
class Holds:
    """Which tasks run `run_id` leaves alone, without a request: done and still whole in the
    archive, or backing off after the same lasting error (`list` asks it too, to show a run's
    plan)."""

    config: Config
    run_id: int
    changed: set[str]  # tasks with a file or the sidecar gone or resized since it was recorded

    @classmethod
    async def of(
        cls,
        config: Config,
        run_id: int,
        target: Target,
        known: Mapping[str, TaskRow],
        files: FileSizes,
    ) -> Holds:
        """The holds of a run over the tasks `known`: their recorded `files` and sidecars
        checked by the target (a stat each on disk, a listing per folder in a bucket; no
        hashing, no request to the API)."""
        return cls(config, run_id, await target.changed(files + sidecars(known)))

    def held(self, row: TaskRow) -> TaskOutcome | None:
        """The outcome of a task this run leaves alone, or None when it must be archived."""
        if row.forgotten and not self.config.refresh:
            shown = sidecar.relpath(row.dir) if row.dir else None
            return TaskOutcome(
                row.task_id, State.SKIPPED, row.status, row.dir, shown, error=FORGOTTEN
            )
        if row.is_done(refresh=self.config.refresh) and self._intact(row):
            return TaskOutcome(
                row.task_id, State.SKIPPED, row.status, row.dir, sidecar.relpath(row.dir)
            )
        if row.state is State.ERROR and row.failures and not self.config.retry_errors:
            return self._backing_off(row)
        return None

    def whole(self, row: TaskRow) -> bool:
        """Is `row` a task `held` skips as done and whole (not forgotten, not backing off)?"""
        return (
            (row.forgotten_at is None or self.config.refresh)
            and row.is_done(refresh=self.config.refresh)
            and self._intact(row)
        )

    def _intact(self, row: TaskRow) -> bool:
        """The catalog is trusted only as far as the disk agrees: every file and the sidecar
        still there at its size (a stat each in `of`; no hashing, no request)."""
        return row.dir is not None and row.task_id not in self.changed

    def _backing_off(self, row: TaskRow) -> TaskOutcome | None:
        """A task failing the same way every run is tried after 1, 2, 4 ... runs, and at least
        once per `retry_backoff`; None when this run is its turn."""
        wait_runs = min(2 ** (row.failures - 1), MAX_BACKOFF_RUNS)
        runs_since = self.run_id - (row.failed_run or 0)
        try:
            latest = datetime.fromisoformat(row.failed_at or "") + timedelta(
                seconds=self.config.retry_backoff
            )
        except (ValueError, OverflowError):
            return None  # no usable record of the last failure: try now
        if runs_since >= wait_runs or datetime.now(UTC) >= latest:
            return None
        when = latest.isoformat(timespec="seconds")
        left = wait_runs - runs_since
        return TaskOutcome(
            row.task_id, State.GONE if row.gone else State.ERROR, row.status, row.dir,
            error=f"{row.error} (failed {row.failures} runs in a row; tried again in {left} "
            f"run(s) or after {when}; --retry-errors tries it now)",
            next_attempt=when,
        )  # fmt: skip


def sidecars(known: Mapping[str, TaskRow]) -> FileSizes:
    """The sidecar of each task with a folder, at its size where one was recorded."""
    return FileSizes.pack(
        (row.task_id, f"{row.dir}/{sidecar.NAME}", row.sidecar_bytes)
        for row in known.values()
        if row.dir is not None
    )


def gone_at_source(row: TaskRow | None, outcome: TaskOutcome) -> TaskOutcome:
    """What to report of a task whose retrieve answered 404/410 again, its row recorded: on
    the GONE_AFTER-th run in a row (never archived) one error saying it is gone at source,
    then, on every later run, `gone`, which no longer makes the exit code 1 on its own."""
    if row is None or not row.gone:
        return outcome
    if row.failures == GONE_AFTER:
        return replace(outcome, error=f"{outcome.error}; {GONE}")
    return replace(outcome, state=State.GONE)


def elsewhere(row: TaskRow, *, refresh: bool) -> TaskOutcome:
    """A task another run (of a shared catalog) recorded while this one ran: as it left it,
    done (skipped here: no request made) or not."""
    if row.is_done(refresh=refresh) and row.dir is not None:
        return TaskOutcome(
            row.task_id, State.SKIPPED, row.status, row.dir, sidecar.relpath(row.dir)
        )
    return TaskOutcome(row.task_id, row.state, row.status, row.dir, error=row.error)


def lasting(exc: TaskError) -> bool:
    """Will the next run most likely meet the same error? Then it backs off (see `Holds`)."""
    return not isinstance(exc, TransientError | UrlExpired | ProbeTimeout)
