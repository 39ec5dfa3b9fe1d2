"""What each subcommand does once its arguments are parsed: Config, the archive, the work.

`cli.py` builds the parser and turns whatever ends a command into one line and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import (
    audit,
    config,
    ledger,
    lock,
    pipeline,
    plan,
    probe,
    progress,
    report,
    runs,
    scrub,
    status,
    storage,
)
from .catalog import Catalog
from .catalog import require as require_archive
from .discover import Query
from .errors import ArchiverError, ConfigError, Interrupted, StorageError, UsageError
from .gallery import INDEX
from .gallery import build as build_gallery
from .gallery import refresh as refresh_gallery
from .model import State
from .progress import Level
from .tasklist import TaskList, gather
from .timespec import parse_duration, parse_since


def _level(args: argparse.Namespace) -> Level:
    return Level.QUIET if args.quiet else Level.VERBOSE if args.verbose else Level.NORMAL


def _load_config(args: argparse.Namespace, **overrides: Any) -> config.Config:
    cfg, warnings = config.load(
        path=args.config, env=os.environ, overrides={"output_dir": args.output, **overrides}
    )
    if cfg.token:
        scrub.add_secret(cfg.token)
    for warning in warnings:
        print(scrub.text(warning), file=sys.stderr)
    return cfg


def _check_report_path(path: Path | None, root: Path, *, flag: str = "--report") -> None:
    """A report (or metrics file) that could not be written is found out now, not after an
    hour of work. Its folder must exist, unless it is the archive folder itself, which the run
    makes."""
    if path is None or path == report.STDOUT:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder")
    if not path.parent.is_dir() and path.parent.absolute() != root.absolute():
        raise UsageError(f"{flag} {path}: no folder {path.parent}")


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
    cfg = _load_config(
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
    tasks, query = _selection(args)
    if args.dry_run:
        return plan.show(cfg, tasks, query, as_json=False)
    _require_token(cfg)
    state_dir = storage.place(cfg, os.environ).state_dir
    _check_report_path(args.report, state_dir)
    _check_report_path(cfg.metrics_file, state_dir, flag="metrics_file")
    cfg = probe.ready(cfg)
    with _archive(cfg, publish=False) as catalog:
        attempt.started = True
        finished = runs.execute(
            cfg, catalog, tasks.ids, tasks.bad, report_path=args.report, level=_level(args),
            query=query, wait=wait, metrics_path=cfg.metrics_file,
        )  # fmt: skip
        _after_run(cfg, catalog, finished)
    return finished.code


def _after_run(cfg: config.Config, catalog: Catalog, finished: runs.Finished) -> None:
    """The gallery, then the catalog's copy stored: whatever ends the run here is written into
    its report, metrics and run record first, so they say the exit code the process ends with."""
    try:
        changed = any(o.state in (State.ARCHIVED, State.FAILED) for o in finished.outcomes)
        _refresh_gallery(cfg, catalog, changed=changed)
        runs.run_until_signal(lambda: storage.publish_catalog(cfg, catalog))
    except BaseException as exc:
        stopped = str(exc) if isinstance(exc, ArchiverError) else None
        finished.ledger.close(ledger.exit_code_of(exc, {}), stopped)
        raise


def _require_token(cfg: config.Config) -> None:
    if not cfg.token:
        raise ConfigError(config.NO_TOKEN)


def _selection(args: argparse.Namespace) -> tuple[TaskList, Query | None]:
    if not args.all and (args.email is not None or args.since is not None):
        raise UsageError("--email and --since work with --all only")
    if any(not email.strip() for email in args.email or ()):
        raise UsageError("--email: an empty address")
    if not args.all and not args.task_ids and not args.input:
        raise UsageError("no task ids given (arguments, -i FILE, -i - or --all)")
    tasks = _task_list(args)
    if not args.all:
        return tasks, None
    since = parse_since(args.since) if args.since is not None else None
    emails = tuple(dict.fromkeys(email.strip() for email in args.email or ()))
    return tasks, Query(emails=emails, since=since)


def cmd_list(args: argparse.Namespace) -> int:
    cfg = _load_config(args, refresh=True if args.refresh else None)
    _output_folder(storage.place(cfg, os.environ).state_dir)
    tasks, query = _selection(args)
    return plan.show(cfg, tasks, query, as_json=args.json)


def cmd_verify(args: argparse.Namespace) -> int:
    cfg = _load_config(args, progress=False if args.no_progress else None, probe=args.probe)
    cfg = probe.ready(cfg)
    if args.repair and not cfg.token:
        raise ConfigError(f"--repair needs the API token: set {config.ENV_TOKEN}")
    _check_report_path(args.report, storage.place(cfg, os.environ).state_dir)
    level = _level(args)
    if args.repair:
        with _archive(cfg, create=False) as catalog:
            checked, damaged = _audit(cfg, catalog, level, deep=args.deep)
            repaired = _repair(cfg, catalog, damaged, level) if damaged else set()
            if damaged:
                _refresh_gallery(cfg, catalog, changed=True)
    else:
        # Reading only: no lock and no write, so a read-only copy or mount can be verified.
        with _readonly(cfg) as catalog:
            checked, damaged = _audit(cfg, catalog, level, deep=args.deep)
        repaired = set()
    if args.report is not None:
        audit.write_report(args.report, checked, damaged, repaired)
    left = [d for d in damaged if d.path not in repaired]
    if level > Level.QUIET or left:
        line = f"checked {checked} files: {checked - len(damaged)} ok, {len(damaged)} damaged"
        print(line + (f", {len(repaired)} repaired" if args.repair else ""))
    return 1 if left else 0


def _audit(
    cfg: config.Config, catalog: Catalog, level: Level, *, deep: bool
) -> tuple[int, list[audit.Damage]]:
    entries = catalog.all_files()
    bar = progress.counter(len(entries), unit="file", enabled=cfg.progress and level >= 0)
    try:
        checked, damaged = asyncio.run(
            audit.check_archive(cfg, entries, catalog.all_tasks(), deep=deep, on_checked=bar.update)
        )
    finally:
        bar.close()
    for damage in damaged:
        print(scrub.text(f"damaged: {damage.path}: {damage.reason}"))
    return checked, damaged


def _repair(
    cfg: config.Config, catalog: Catalog, damaged: list[audit.Damage], level: Level
) -> set[str]:
    """Archive the damaged tasks again; the paths that are whole now."""
    by_task: dict[str, list[str]] = {}
    for damage in damaged:
        by_task.setdefault(damage.task_id, []).append(damage.path)
    for task_id, paths in by_task.items():
        reason = f"verify: {len(paths)} file(s) missing or altered, repairing"
        catalog.mark_damaged(task_id, paths, reason=reason, now=pipeline.now())
    finished = runs.execute(cfg, catalog, list(by_task), report_path=None, level=level)
    done = (State.ARCHIVED, State.FAILED)  # a FAILED task holds files too: its inputs
    whole = {
        path
        for o in finished.outcomes
        if o.state in done
        for path in [*(f.path for f in o.files), o.sidecar]
    }
    return {d.path for d in damaged if d.path in whole}


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    with _readonly(cfg, fetch=False) as catalog:
        for line in status.render(str(cfg.output_dir), catalog):
            print(scrub.text(line))
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    with _archive(cfg, create=False) as catalog:
        built, link = asyncio.run(
            storage.gallery(
                cfg, lambda root: build_gallery(root, catalog, now=pipeline.now()), index=INDEX
            )
        )
    if _level(args) > Level.QUIET:
        print(f"gallery: {built.tasks} tasks: {link}")
    return 0


def _refresh_gallery(cfg: config.Config, catalog: Catalog, *, changed: bool) -> None:
    if not cfg.gallery:
        return
    try:
        warning, _ = runs.run_until_signal(
            lambda: storage.gallery(
                cfg,
                lambda root: refresh_gallery(root, catalog, changed=changed, now=pipeline.now()),
                index=INDEX,
            )
        )
    except Interrupted:
        raise  # a signal ends the run, wherever it comes
    except ArchiverError as exc:  # a view of the archive: storing it is no task's failure
        warning = f"warning: gallery not stored: {exc}"
    if warning:
        print(scrub.text(warning), file=sys.stderr)


def _output_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"-o {root}: not a folder")


@contextmanager
def _readonly(cfg: config.Config, *, fetch: bool = True) -> Iterator[Catalog]:
    """The catalog, read only; `fetch`: from the bucket's copy on a machine that has none."""
    where = storage.place(cfg, os.environ)
    _output_folder(where.state_dir)
    if fetch:
        asyncio.run(storage.restore_catalog(cfg, where.catalog_path))
    require_archive(where.name, where.catalog_path)
    catalog = Catalog.open(where.state_dir, readonly=True, path=where.catalog_path)
    try:
        yield catalog
    finally:
        catalog.close()


@contextmanager
def _archive(cfg: config.Config, *, create: bool = True, publish: bool = True) -> Iterator[Catalog]:
    """The archive, locked for this run, with its catalog open (a bucket's copy fetched on a
    machine that has none, and, with `publish`, stored again after a run that ended
    normally)."""
    where = storage.place(cfg, os.environ)
    _output_folder(where.state_dir)
    asyncio.run(storage.restore_catalog(cfg, where.catalog_path))
    if not create:
        require_archive(where.name, where.catalog_path)
    try:
        where.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{where.state_dir}: {exc.strerror or exc}") from exc
    with lock.hold(where.state_dir):
        catalog = Catalog.open(where.state_dir, path=where.catalog_path)
        try:
            yield catalog
            if publish:
                asyncio.run(storage.publish_catalog(cfg, catalog))
        finally:
            catalog.close()


def _task_list(args: argparse.Namespace) -> TaskList:
    sources = []
    for name in args.input:
        if name == report.STDOUT:
            sources.append(("<stdin>", sys.stdin.read().removeprefix("\ufeff").splitlines()))
            continue
        try:
            text = name.read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise UsageError(f"task list {name}: {exc.strerror or exc}") from exc
        sources.append((str(name), text.splitlines()))
    return gather(args.task_ids, sources)
