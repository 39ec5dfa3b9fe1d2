"""What a run writes about itself: the --report file, the --metrics file and the catalog's run
record, all with the exit code the process ends with.

Written when the run's work ends, and written again by whatever ends the run after that (the
catalog's copy not stored, a signal), so the report and the exit code always agree.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import metrics, report
from .catalog import Catalog
from .errors import EX_SOFTWARE, ArchiverError
from .intake import bad_line
from .model import HOLDING_FILES, State, TaskOutcome
from .pipeline import FULLY_CHECKED
from .tasklist import BadLine
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
    """One run's account as its tasks end, kept until the process ends: `close` writes it,
    again if need be. It holds counts and the tasks in hand, never the run's outcomes: those
    go to the report's spool as they come (a run over a million ids keeps a few thousand)."""

    catalog: Catalog
    run_id: int
    archive: str  # the archive folder or s3:// URL, as the metrics label it
    began: float = dataclasses.field(default_factory=time.time)  # unix seconds
    report_path: Path | None = None
    metrics_path: Path | None = None
    listing: Mapping[str, Any] | None = None
    retries: int = 0
    keep: bool = False  # also keep the outcomes (`verify --repair` reads its few back)
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: report.summary(()))
    outcomes: list[TaskOutcome] = dataclasses.field(default_factory=list)  # with `keep` only
    stored_files: int = 0  # files this run stored (fetched and fully checked), and their bytes
    stored_bytes: int = 0
    unfinished: int = 0
    # Tasks read from the list and not accounted for yet; a pending one the waiter polls has
    # its last outcome here (it is what the report says if the run ends while it waits).
    _open: dict[str, TaskOutcome | None] = dataclasses.field(default_factory=dict)
    _spool: report.Spool | None = None

    def __post_init__(self) -> None:
        if self.report_path is not None:
            self._spool = report.Spool(self.report_path)

    @property
    def lists_files(self) -> bool:
        """A skipped task's outcome names its files: the report lists them."""
        return self._spool is not None

    def count_retry(self) -> None:
        self.retries += 1

    def begin(self, task_id: str) -> None:
        self._open[task_id] = None

    def wait(self, outcome: TaskOutcome) -> None:
        self._open[outcome.task_id] = outcome

    def end(self, outcome: TaskOutcome) -> None:
        """Account for a task's outcome: counted, and its entry in the report's spool."""
        self._open.pop(outcome.task_id, None)
        self.counts[str(outcome.state)] += 1
        if outcome.state in HOLDING_FILES:
            stored = [f.size for f in outcome.files if f.verified == FULLY_CHECKED]
            self.stored_files += len(stored)
            self.stored_bytes += sum(stored)
        if self._spool is not None:
            self._spool.add(outcome)
        if self.keep:
            self.outcomes.append(outcome)

    def end_skipped(self, task_ids: list[str]) -> None:
        """Tasks skipped as done and whole, counted without an outcome each (never with a
        report to write: `lists_files`); `keep` keeps none of them (`verify --repair` reads
        back only the tasks it archived)."""
        for task_id in task_ids:
            self._open.pop(task_id, None)
        self.counts[str(State.SKIPPED)] += len(task_ids)

    def settle(self, rest: Iterable[str | BadLine]) -> None:
        """The run's work is over: a task still waiting ends as its last poll left it; the
        ones read but not done, then the ids never read from `rest`, are unfinished (its bad
        lines are errors, as if read)."""
        for outcome in [o for o in self._open.values() if o is not None]:
            self.end(outcome)
        left = itertools.chain(list(self._open), self._ids(rest))
        self._open.clear()
        self.unfinished = 0
        if self._spool is not None:
            self._spool.unfinished(self._counted(left))
        else:
            for _ in self._counted(left):
                pass

    def _ids(self, rest: Iterable[str | BadLine]) -> Iterator[str]:
        for item in rest:
            if isinstance(item, BadLine):
                self.end(bad_line(item))
            else:
                yield item

    def _counted(self, task_ids: Iterable[str]) -> Iterator[str]:
        for task_id in task_ids:
            self.unfinished += 1
            yield task_id

    async def close(self, code: int, stopped: str | None) -> None:
        """The report, the metrics and the run record, all saying `code` (and why it stopped).

        A metrics file that cannot be written costs one warning line, never another exit code:
        the report would then disagree with the process.
        """
        try:
            if self._spool is not None:
                self._spool.write(
                    self.counts, code=code, stopped=stopped, listing=self.listing,
                    retries=self.retries,
                )  # fmt: skip
        finally:
            await self.catalog.end_run(self.run_id, now=now(), exit_code=code, summary=self.counts)
        if self.metrics_path is not None:
            try:
                metrics.write(self.metrics_path, await self.figures(code))
            except ArchiverError as exc:
                self.warn(f"warning: metrics not written: {exc}")

    async def figures(self, code: int) -> metrics.RunMetrics:
        """The metrics of this run, from the same outcomes as its report."""
        totals = await self.catalog.totals()
        return metrics.RunMetrics(
            archive=self.archive,
            started=self.began,
            ended=time.time(),
            exit_code=code,
            outcomes=dict(self.counts),
            files=self.stored_files,
            bytes=self.stored_bytes,
            retries=self.retries,
            totals=metrics.Totals(
                tasks={str(s): n for s, n in totals.per_state.items()},
                files=totals.files,
                bytes=totals.bytes,
            ),
        )


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
