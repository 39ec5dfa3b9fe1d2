"""What a run writes about itself: the --report file, the --metrics file and the catalog's run
record, all with the exit code the process ends with.

Written when the run's work ends, and written again by whatever ends the run after that (the
catalog's copy not stored, a signal), so the report and the exit code always agree.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import metrics, report
from .catalog import Catalog
from .errors import EX_SOFTWARE, ArchiverError
from .model import HOLDING_FILES, ArchivedFile, State, TaskOutcome
from .pipeline import FULLY_CHECKED, SIZE_CHECKED
from .timespec import now


def exit_code_of(stop: BaseException | None, counts: Mapping[str, int]) -> int:
    """The exit code of a run that `stop` ended (None: it ended on its own)."""
    if stop is None:
        return report.exit_code(counts)
    if isinstance(stop, ArchiverError):
        return stop.exit_code
    if isinstance(stop, KeyboardInterrupt):
        return 130
    return EX_SOFTWARE


@dataclasses.dataclass(kw_only=True)
class Ledger:
    """One run's account, kept until the process ends: `close` writes it, again if need be."""

    catalog: Catalog
    run_id: int
    archive: str  # the archive folder or s3:// URL, as the metrics label it
    began: float = dataclasses.field(default_factory=time.time)  # unix seconds
    report_path: Path | None = None
    metrics_path: Path | None = None
    outcomes: list[TaskOutcome] = dataclasses.field(default_factory=list)
    unfinished: list[str] = dataclasses.field(default_factory=list)
    listing: Mapping[str, Any] | None = None
    retries: int = 0
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    def count_retry(self) -> None:
        self.retries += 1

    @property
    def counts(self) -> dict[str, int]:
        return report.summary(self.outcomes)

    async def close(self, code: int, stopped: str | None) -> None:
        """The report, the metrics and the run record, all saying `code` (and why it stopped).

        A metrics file that cannot be written costs one warning line, never another exit code:
        the report would then disagree with the process.
        """
        counts = self.counts
        try:
            if self.report_path is not None:
                skipped = {
                    o.task_id: await self._size_checked(o)
                    for o in self.outcomes
                    if o.state is State.SKIPPED
                }
                report.write(
                    self.report_path, self.outcomes, counts, skipped,
                    code=code, unfinished=self.unfinished, stopped=stopped,
                    listing=self.listing, retries=self.retries,
                )  # fmt: skip
        finally:
            await self.catalog.end_run(self.run_id, now=now(), exit_code=code, summary=counts)
        if self.metrics_path is not None:
            try:
                metrics.write(self.metrics_path, await self.figures(code))
            except ArchiverError as exc:
                self.warn(f"warning: metrics not written: {exc}")

    async def figures(self, code: int) -> metrics.RunMetrics:
        """The metrics of this run, from the same outcomes as its report."""
        stored = [
            f
            for o in self.outcomes
            if o.state in HOLDING_FILES
            for f in o.files
            if f.verified == FULLY_CHECKED
        ]
        totals = await self.catalog.totals()
        return metrics.RunMetrics(
            archive=self.archive,
            started=self.began,
            ended=time.time(),
            exit_code=code,
            outcomes=self.counts,
            files=len(stored),
            bytes=sum(f.size for f in stored),
            retries=self.retries,
            totals=metrics.Totals(
                tasks={str(s): n for s, n in totals.per_state.items()},
                files=totals.files,
                bytes=totals.bytes,
            ),
        )

    async def _size_checked(self, outcome: TaskOutcome) -> Sequence[ArchivedFile]:
        """A skipped task's files: what this run checked of them is their size on disk."""
        return [
            dataclasses.replace(f, verified=SIZE_CHECKED)
            for f in await self.catalog.files(outcome.task_id)
        ]


def refused(path: Path | None, *, archive: str, began: float, code: int) -> None:
    """The metrics of a run refused before it opened the archive (lock held, bad config)."""
    if path is None or not path.parent.is_dir():
        return
    try:
        metrics.write(
            path,
            metrics.RunMetrics(archive=archive, started=began, ended=time.time(), exit_code=code),
        )
    except ArchiverError as exc:
        print(f"warning: metrics not written: {exc}", file=sys.stderr, flush=True)
