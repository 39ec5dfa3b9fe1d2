"""What the subcommands share once their arguments are parsed: the config, the selection of
tasks, and the checks made before any work starts."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import config, report, scrub, storage
from ..discover import Query
from ..errors import ConfigError, StorageError, UsageError
from ..progress import Level
from ..tasklist import BadLine, TaskList, collect, stream
from ..timespec import parse_since


def level(args: argparse.Namespace) -> Level:
    return Level.QUIET if args.quiet else Level.VERBOSE if args.verbose else Level.NORMAL


def load_config(args: argparse.Namespace, **overrides: Any) -> config.Config:
    cfg, warnings = config.load(
        path=args.config,
        env=os.environ,
        overrides={"output_dir": args.output, "catalog": args.catalog, **overrides},
    )
    if cfg.token:
        scrub.add_secret(cfg.token)
    # The database's password, from the URL or the environment libpq reads: never shown.
    for secret in (cfg.catalog.password if cfg.catalog else None, os.environ.get("PGPASSWORD")):
        if secret:
            scrub.add_secret(secret)
    for warning in warnings:
        print(scrub.text(warning), file=sys.stderr)
    return cfg


def require_token(cfg: config.Config) -> None:
    if not cfg.token:
        raise ConfigError(config.NO_TOKEN)


def state_dir(cfg: config.Config, *, make: bool = False) -> Path:
    """The archive's folder on this machine (for a bucket, its local state), refused if it is
    a file; with `make`, created when it is not there yet (a run's)."""
    root = storage.place(cfg, os.environ).state_dir
    if root.exists() and not root.is_dir():
        raise UsageError(f"-o {root}: not a folder")
    if make:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{root}: {exc.strerror or exc}") from exc
    return root


def check_report_path(path: Path | None, cfg: config.Config, *, flag: str = "--report") -> None:
    """A report (or metrics file) that could not be written is found out now, not after an
    hour of work. Its folder must exist, unless it is the archive folder itself, which the run
    makes."""
    if path is None or path == report.STDOUT:
        return
    root = storage.place(cfg, os.environ).state_dir
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder")
    if not path.parent.is_dir() and path.parent.absolute() != root.absolute():
        raise UsageError(f"{flag} {path}: no folder {path.parent}")


def selection(args: argparse.Namespace, *, shared: bool = False) -> tuple[TaskList, Query | None]:
    """The tasks `list` shows (and `run --dry-run`): ids, files of ids, with --all the
    listing's; the lists read whole."""
    query = selected(args, shared=shared)
    return task_list(args), query


def selected(args: argparse.Namespace, *, shared: bool = False) -> Query | None:
    """What `run` and `list` were asked to work on, checked before anything is read: the
    listing's query with --all, else None (the ids given alone; with a `shared` catalog none
    need be given: the run works through what the catalog holds)."""
    if not args.all and (args.email is not None or args.since is not None):
        raise UsageError("--email and --since work with --all only")
    if any(not email.strip() for email in args.email or ()):
        raise UsageError("--email: an empty address")
    if not args.all and not args.task_ids and not args.input and not shared:
        raise UsageError("no task ids given (arguments, -i FILE, -i - or --all)")
    if not args.all:
        return None
    since = parse_since(args.since) if args.since is not None else None
    emails = tuple(dict.fromkeys(email.strip() for email in args.email or ()))
    return Query(emails=emails, since=since)


def task_list(args: argparse.Namespace) -> TaskList:
    """The ids given as arguments and in each -i FILE (or stdin), checked line by line, held
    whole (`list` and `forget`; `run` reads them as it goes, through `task_source`)."""
    with task_source(args) as source:
        return collect(source)


@contextmanager
def task_source(args: argparse.Namespace) -> Iterator[Iterator[str | BadLine]]:
    """The ids given, read as they are asked for: each file opened now (one that cannot be
    opened is refused before any work), its lines read as the run goes."""
    with contextlib.ExitStack() as files:
        sources: list[tuple[str, Iterable[str]]] = []
        for name in args.input:
            if name == report.STDOUT:
                sources.append(("<stdin>", _lines("<stdin>", sys.stdin)))
                continue
            try:
                fh = files.enter_context(open(name, encoding="utf-8-sig", errors="replace"))
            except OSError as exc:
                raise UsageError(f"task list {name}: {exc.strerror or exc}") from exc
            sources.append((str(name), _lines(str(name), fh)))
        yield stream(args.task_ids, sources)


def _lines(name: str, lines: Iterable[str]) -> Iterator[str]:
    """A list's lines (a byte-order mark dropped); a read error is the list's, not a bug."""
    try:
        for number, line in enumerate(lines):
            yield line.removeprefix("\ufeff") if number == 0 else line
    except OSError as exc:
        raise UsageError(f"task list {name}: {exc.strerror or exc}") from exc
