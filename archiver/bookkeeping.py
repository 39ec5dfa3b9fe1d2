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
from collections.abc import Awaitable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from . import pipeline, report
from .catalog import Catalog
from .config import Config
from .discover import Query
from .errors import ArchiverError, Interrupted
from .intake import bad_line
from .ledger import Ledger, exit_code_of
from .model import HOLDING_FILES
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
    ledger: Ledger  # written with `code`; written again by whatever ends the run after it

    @property
    def changed(self) -> bool:
        """Did the run store anything (the gallery has something new to show)?"""
        return any(self.ledger.counts[str(s)] for s in HOLDING_FILES)


async def execute(
    cfg: Config,
    catalog: Catalog,
    source: Iterable[str | BadLine],
    *,
    report_path: Path | None,
    level: Level,
    query: Query | None = None,
    wait: float | None = None,
    metrics_path: Path | None = None,
    keep: bool = False,
    only: bool = False,
) -> Finished:
    """Archive the ids of `source`, read as the run goes, under an open catalog; account for
    the run however it ends (`keep`: the ledger keeps every outcome too).

    With a `query` the listing adds to them (`run --all`), as does a shared catalog's list
    unless `only` these ids are wanted (`verify --repair`); with `wait` seconds, unfinished
    tasks are polled until then (`--wait`).
    """
    started = time.monotonic()
    ledger = Ledger(
        catalog=catalog, run_id=await catalog.begin_run(now=now()), archive=str(cfg.output_dir),
        report_path=report_path, metrics_path=metrics_path, keep=keep,
    )  # fmt: skip
    shown = reporter(enabled=cfg.progress, level=level)
    waiter = None if not wait else _waiter(cfg, wait, started, level)
    finder, rest = None, iter(source)
    if query is not None or (catalog.shared and not only):
        # The given ids join the listing's, or a shared catalog's list: read at once.
        given = list(rest)
        _bad(ledger, shown, [b for b in given if isinstance(b, BadLine)])
        ids = [t for t in given if isinstance(t, str)]
        finder = Finder(query, catalog, ids, refresh=cfg.refresh, warn=shown.warn, now=now)
        rest = iter(ids)
    stop = await _archive(cfg, catalog, rest, shown, ledger, finder, waiter)
    if finder is not None:
        _bad(ledger, None, finder.bad)
        rest = finder.rest if finder.rest is not None else rest
    ledger.settle(rest)
    code = _account(ledger, stop, finder)
    reason = str(stop) if isinstance(stop, ArchiverError) else None
    await ledger.close(code, reason)
    # Under -q a run something stopped says only what stopped it (the command line prints
    # that one line): cron mails one line, the report holds the rest.
    if level > Level.QUIET or (code != 0 and stop is None):
        _summary(ledger, finder, time.monotonic() - started, reason, report_path)
    if stop is not None:
        raise stop
    return Finished(code, ledger)


def _summary(
    ledger: Ledger, finder: Finder | None, seconds: float, reason: str | None, to: Path | None
) -> None:
    """The run's one line: stderr when the report goes to stdout."""
    found = finder.discovery if finder is not None else None
    line = report.summary_line(
        ledger.counts, seconds, unfinished=ledger.unfinished, stopped=reason,
        notes=[r.describe() for r in found.reach] if found else (),
    )  # fmt: skip
    print(line, file=sys.stderr if to == report.STDOUT else sys.stdout, flush=True)


def _bad(ledger: Ledger, shown: Reporter | None, bad: Iterable[BadLine]) -> None:
    """Lines that are no task id: each an error in the account (and a line, when `shown`)."""
    for line in bad:
        if shown is not None:
            shown.warn(f"error: {line}")
        ledger.end(bad_line(line))


def _account(ledger: Ledger, stop: BaseException | None, finder: Finder | None) -> int:
    """The exit code that says what the run ended with; the listing's reach in `ledger`."""
    found = finder.discovery if finder is not None else None
    ledger.listing = listing_json(found) if found else None
    code = exit_code_of(stop, ledger.counts)
    if finder is not None and finder.failed and code == 0:
        code = 1  # the listing broke off: the account may not be archived in full
    return code


async def _archive(
    cfg: Config,
    catalog: Catalog,
    source: Iterator[str | BadLine],
    shown: Reporter,
    ledger: Ledger,
    finder: Finder | None,
    waiter: Waiter | None,
) -> BaseException | None:
    """The pipeline under the signal handlers; what ended it early, if anything did."""
    try:
        await until_signal(
            pipeline.archive(
                cfg,
                catalog,
                source,
                shown,
                run_id=ledger.run_id,
                tally=ledger,
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
