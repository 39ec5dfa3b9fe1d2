"""`run`: archive the selected tasks, in one event loop with the catalog open for writing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import time
from collections.abc import Iterator
from pathlib import Path

from .. import bookkeeping, config, ledger, probe, report
from ..catalog import Access, Catalog, open_catalog
from ..discover import Query
from ..errors import ArchiverError, UsageError
from ..progress import Level
from ..tasklist import BadLine
from ..timespec import parse_duration
from . import common
from .gallery import refresh_gallery
from .list import show_plan


@dataclasses.dataclass
class _Attempt:
    """What a run refused before it opened the archive still reports, and where."""

    archive: str
    metrics: Path | None
    began: float = dataclasses.field(default_factory=time.time)
    started: bool = False  # from here on the run writes its own report and metrics


def cmd_run(args: argparse.Namespace) -> int:
    """A run; if it ends before it starts (config, lock...), the report still says why."""
    attempt = _Attempt(archive=str(args.output or ""), metrics=args.metrics)
    try:
        return _run_checked(args, attempt)
    except ArchiverError as exc:
        if not attempt.started:
            _report_refusal(args.report, exc)
            ledger.refused(
                attempt.metrics, archive=attempt.archive, began=attempt.began, code=exc.exit_code
            )
        raise


def _report_refusal(path: Path | None, exc: ArchiverError) -> None:
    """So an old report never stands for a run that could not even start."""
    if path is None or (path != report.STDOUT and not path.parent.is_dir()):
        return
    with contextlib.suppress(ArchiverError):
        report.write(path, [], report.summary([]), code=exc.exit_code, stopped=str(exc))


def _run_checked(args: argparse.Namespace, attempt: _Attempt) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency: expected a positive integer")
    cfg = common.load_config(
        args,
        concurrency=args.concurrency,
        progress=False if args.no_progress else None,
        refresh=True if args.refresh else None,
        retry_errors=True if args.retry_errors else None,
        inputs=False if args.no_inputs else None,
        metrics_file=args.metrics,
        probe=args.probe,
    )
    attempt.archive, attempt.metrics = str(cfg.output_dir), cfg.metrics_file
    wait = parse_duration(args.wait) if args.wait is not None else None
    shared = cfg.catalog is not None  # a PostgreSQL catalog: the list is every host's
    if args.dry_run:
        tasks, query = common.selection(args, shared=shared)
        return show_plan(cfg, tasks, query, as_json=False)
    query = common.selected(args, shared=shared)
    with common.task_source(args) as source:
        common.require_token(cfg)
        common.check_report_path(args.report, cfg)
        common.check_report_path(cfg.metrics_file, cfg, flag="metrics_file")
        cfg = probe.ready(cfg)
        common.state_dir(cfg, make=True)
        level = common.level(args)
        work = _archive(
            cfg, source, query, wait=wait, report_path=args.report, level=level, attempt=attempt
        )
        # What is loaded by now lives as long as the process: kept out of the collector's
        # full passes, which a run over a million ids (a few objects per id) sets off often.
        gc.freeze()
        # And a young pass every 50,000 new objects, not 700: a rerun over a million ids made
        # 2,568 passes (~1.5 s of CPU, the GIL held) to find ~1,850 objects of cyclic garbage;
        # with this, one pass, the rerun ~3.5 s faster (27.4 s, medians of 13) at the same peak
        # RSS (139 MB), as were first runs over 100,000 new ids and over 200 tasks.
        thresholds = gc.get_threshold()
        gc.set_threshold(50_000)
        try:
            return asyncio.run(work)
        finally:  # an in-process caller (the tests) keeps its own
            gc.set_threshold(*thresholds)


async def _archive(
    cfg: config.Config,
    source: Iterator[str | BadLine],
    query: Query | None,
    *,
    wait: float | None,
    report_path: Path | None,
    level: Level,
    attempt: _Attempt,
) -> int:
    async with open_catalog(cfg, Access.CREATE) as catalog:
        attempt.started = True
        finished = await bookkeeping.execute(
            cfg, catalog, source, report_path=report_path, level=level,
            query=query, wait=wait, metrics_path=cfg.metrics_file,
        )  # fmt: skip
        await _after_run(cfg, catalog, finished)
    return finished.code


async def _after_run(cfg: config.Config, catalog: Catalog, finished: bookkeeping.Finished) -> None:
    """The gallery, then the catalog flushed (a bucket's copy stored): whatever ends the run
    here is written into its report, metrics and run record first, so they say the exit code
    the process ends with."""
    try:
        await refresh_gallery(cfg, catalog, changed=finished.changed)
        await bookkeeping.until_signal(catalog.flush())
    except BaseException as exc:
        stopped = str(exc) if isinstance(exc, ArchiverError) else None
        await finished.ledger.close(ledger.exit_code_of(exc, {}), stopped)
        raise
