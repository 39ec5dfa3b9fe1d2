"""One run's bookkeeping: signals, the run record, the report and the summary, on every exit path.

However a run ends (done, 401, unreachable API, disk full, SIGINT/SIGTERM, a bug) the report
and the catalog's run record say what finished and the exit code it really ended with (the
ledger writes them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TypeVar

from . import pipeline, report
from .catalog import Catalog
from .config import Config
from .discover import Query
from .errors import ArchiverError, Interrupted
from .ledger import Ledger, exit_code_of
from .model import State, TaskOutcome
from .progress import Level, Reporter, reporter, status_line
from .selection import Finder, listing_json
from .tasklist import BadLine
from .timespec import now
from .waiting import Waiter, WaitPolicy

T = TypeVar("T")


async def until_signal(work: Awaitable[T]) -> T:
    """`work`, with SIGINT and SIGTERM cancelling it cleanly (then `Interrupted`)."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            main.cancel()

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in before:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await work
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for signum, handler in before.items():
            loop.remove_signal_handler(signum)
            if handler is not None:  # asyncio.run's own Ctrl-C handling, for the rest
                signal.signal(signum, handler)


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    code: int
    outcomes: list[TaskOutcome]
    ledger: Ledger  # written with `code`; written again by whatever ends the run after it


async def execute(
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
    only: bool = False,
) -> Finished:
    """Archive `task_ids` under an open catalog; account for the run however it ends.

    With a `query` the listing adds to them (`run --all`), as does a shared catalog's list
    unless `only` these ids are wanted (`verify --repair`); with `wait` seconds, unfinished
    tasks are polled until then (`--wait`).
    """
    started = time.monotonic()
    ledger = Ledger(
        catalog=catalog, run_id=await catalog.begin_run(now=now()),
        archive=str(cfg.output_dir), report_path=report_path, metrics_path=metrics_path,
    )  # fmt: skip
    shown = reporter(enabled=cfg.progress, level=level)
    for bad_line in bad:
        shown.warn(f"error: {bad_line}")
    finder = None if query is None and (only or not catalog.shared) else Finder(
        query, catalog, task_ids, refresh=cfg.refresh, warn=shown.warn, now=now
    )  # fmt: skip
    waiter = None if not wait else _waiter(cfg, wait, started, level)
    finished: dict[str, TaskOutcome] = {}
    stop = await _archive(cfg, catalog, task_ids, shown, ledger, finished, finder, waiter)
    if finder is not None:
        task_ids, bad = finder.ids, [*bad, *finder.bad]
    code = _account(ledger, task_ids, bad, finished, stop, finder)
    reason = str(stop) if isinstance(stop, ArchiverError) else None
    await ledger.close(code, reason)
    # Under -q a run something stopped says only what stopped it (the command line prints
    # that one line): cron mails one line, the report holds the rest.
    if level > Level.QUIET or (code != 0 and stop is None):
        found = finder.discovery if finder is not None else None
        line = report.summary_line(
            ledger.counts, time.monotonic() - started, unfinished=len(ledger.unfinished),
            stopped=reason, notes=[r.describe() for r in found.reach] if found else (),
        )  # fmt: skip
        print(line, file=sys.stderr if report_path == report.STDOUT else sys.stdout, flush=True)
    if stop is not None:
        raise stop
    return Finished(code, ledger.outcomes, ledger)


def _account(
    ledger: Ledger,
    task_ids: Sequence[str],
    bad: Sequence[BadLine],
    finished: dict[str, TaskOutcome],
    stop: BaseException | None,
    finder: Finder | None,
) -> int:
    """Put what the run ended with into `ledger`; the exit code that says it."""
    ledger.outcomes = [finished[t] for t in task_ids if t in finished]
    ledger.outcomes += [TaskOutcome(b.text, State.ERROR, error=str(b)) for b in bad]
    ledger.unfinished = [t for t in task_ids if t not in finished]
    found = finder.discovery if finder is not None else None
    ledger.listing = listing_json(found) if found else None
    code = exit_code_of(stop, ledger.counts)
    if finder is not None and finder.failed and code == 0:
        code = 1  # the listing broke off: the account may not be archived in full
    return code


async def _archive(
    cfg: Config,
    catalog: Catalog,
    task_ids: Sequence[str],
    shown: Reporter,
    ledger: Ledger,
    into: dict[str, TaskOutcome],
    finder: Finder | None,
    waiter: Waiter | None,
) -> BaseException | None:
    """The pipeline under the signal handlers; what ended it early, if anything did."""
    try:
        await until_signal(
            pipeline.archive(
                cfg,
                catalog,
                task_ids,
                shown,
                run_id=ledger.run_id,
                into=into,
                find=finder,
                waiter=waiter,
                on_retry=ledger.count_retry,
            )
        )
    except BaseException as exc:  # ends the run; accounted for by the caller, then raised again
        return exc
    finally:
        shown.close()
    return None


def _waiter(cfg: Config, seconds: float, started: float, level: Level) -> Waiter:
    policy = WaitPolicy.from_config(cfg, seconds=seconds, started=started)
    return Waiter(policy, status_line(enabled=cfg.progress and level > Level.QUIET))
