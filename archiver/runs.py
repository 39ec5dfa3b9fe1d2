"""One run's bookkeeping: signals, the run record, the report and the summary, on every exit path.

However a run ends (done, 401, unreachable API, disk full, SIGINT/SIGTERM, a bug) the report
and the catalog's run record say what finished and the exit code it really ended with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from . import pipeline, plan, report
from .catalog import Catalog
from .config import Config
from .discover import Query
from .errors import ArchiverError, Interrupted
from .ledger import Ledger, exit_code_of
from .model import State, TaskOutcome
from .progress import Level, reporter, status_line
from .tasklist import BadLine
from .waiting import Waiter, WaitPolicy

T = TypeVar("T")


def run_until_signal(make: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, with SIGINT and SIGTERM cancelling the work cleanly (then `Interrupted`)."""

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        received: list[int] = []

        def stop(signum: int) -> None:
            if not received:
                received.append(signum)
                main.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await make()
        except asyncio.CancelledError:
            if received:
                raise Interrupted(received[0]) from None
            raise
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(guarded())


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    code: int
    outcomes: list[TaskOutcome]
    ledger: Ledger  # written with `code`; written again by whatever ends the run after it


def execute(
    cfg: Config,
    catalog: Catalog,
    task_ids: Sequence[str],
    bad: Sequence[BadLine] = (),
    *,
    report_path: Path | None,
    level: Level,
    query: Query | None = None,
    wait: float | None = None,
    metrics_path: Path | None = None,
) -> Finished:
    """Archive `task_ids` under an open catalog; account for the run however it ends.

    With a `query` the listing adds to them (`run --all`); with `wait` seconds, unfinished
    tasks are polled until then (`--wait`).
    """
    started = time.monotonic()
    ledger = Ledger(
        catalog=catalog, run_id=catalog.begin_run(now=pipeline.now()),
        archive=str(cfg.output_dir), report_path=report_path, metrics_path=metrics_path,
    )  # fmt: skip
    shown = reporter(enabled=cfg.progress, level=level)
    for bad_line in bad:
        shown.warn(f"error: {bad_line}")
    finder = None if query is None else plan.Finder(
        query, catalog, task_ids, refresh=cfg.refresh, warn=shown.warn, now=pipeline.now
    )  # fmt: skip
    waiter = None if not wait else _waiter(cfg, wait, started, level)
    finished: dict[str, TaskOutcome] = {}
    stop: BaseException | None = None
    try:
        run_until_signal(
            lambda: pipeline.archive(
                cfg,
                catalog,
                task_ids,
                shown,
                run_id=ledger.run_id,
                into=finished,
                find=finder,
                waiter=waiter,
                on_retry=ledger.count_retry,
            )
        )
    except BaseException as exc:  # ends the run; accounted for below, then raised again
        stop = exc
    finally:
        shown.close()
    if finder is not None:
        task_ids, bad = finder.ids, [*bad, *finder.bad]
    ledger.outcomes = [finished[t] for t in task_ids if t in finished]
    ledger.outcomes += [TaskOutcome(b.text, State.ERROR, error=str(b)) for b in bad]
    ledger.unfinished = [t for t in task_ids if t not in finished]
    code = exit_code_of(stop, ledger.counts)
    if finder is not None and finder.failed and code == 0:
        code = 1  # the listing broke off: the account may not be archived in full
    reason = str(stop) if isinstance(stop, ArchiverError) else None
    found = finder.discovery if finder is not None else None
    ledger.listing = plan.listing_json(found) if found else None
    ledger.close(code, reason)
    # Under -q a run something stopped says only what stopped it (the command line prints
    # that one line): cron mails one line, the report holds the rest.
    if level > Level.QUIET or (code != 0 and stop is None):
        line = report.summary_line(
            ledger.counts, time.monotonic() - started, unfinished=len(ledger.unfinished),
            stopped=reason, notes=[r.describe() for r in found.reach] if found else (),
        )  # fmt: skip
        print(line, file=sys.stderr if report_path == report.STDOUT else sys.stdout, flush=True)
    if stop is not None:
        raise stop
    return Finished(code, ledger.outcomes, ledger)


def _waiter(cfg: Config, seconds: float, started: float, level: Level) -> Waiter:
    policy = WaitPolicy.from_config(cfg, seconds=seconds, started=started)
    return Waiter(policy, status_line(enabled=cfg.progress and level > Level.QUIET))
