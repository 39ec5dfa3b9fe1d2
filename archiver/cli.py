"""The command line: arguments -> Config -> a run under the archive lock -> an exit code.

Exit codes (README): 0 all well, 1 some task in error, 2 usage/config, 3 token rejected,
70 internal error, 74 storage, 75 archive locked, 130/143 interrupted, 141 stdout closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

from . import (
    __version__,
    audit,
    config,
    lock,
    pipeline,
    plan,
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
from .errors import EX_SOFTWARE, ArchiverError, ConfigError, StorageError, UsageError
from .gallery import INDEX
from .gallery import build as build_gallery
from .gallery import refresh as refresh_gallery
from .model import State
from .progress import Level
from .tasklist import TaskList, gather
from .timespec import parse_duration, parse_since

EX_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a reader that went away
RUN_EXAMPLES = """\
examples:
  export USEAPI_TOKEN=...            # never put the token on the command line
  runway-archiver run -i tasks.txt -o ~/runway-archive
  runway-archiver run -i tasks.txt -o s3://my-bucket/runway   # AWS_* credentials
  runway-archiver run 'user:1234-runwayml:me@example.com-task:3f2a...' -o archive
  grep -v done ids.txt | runway-archiver run -i - --report run.json -q
  runway-archiver run --all -o ~/runway-archive           # find the tasks through the listing
  runway-archiver run --all --since 7d --wait 20m -o archive
"""
LIST_EXAMPLES = """\
examples:
  runway-archiver list --all -o ~/runway-archive
  runway-archiver list --all --json -o ~/runway-archive | jq '.tasks[] | select(.action == "fetch")'
  runway-archiver list -i tasks.txt -o ~/runway-archive   # no token needed without --all
"""
VERIFY_EXAMPLES = """\
examples:
  runway-archiver verify -o ~/runway-archive
  runway-archiver verify -o s3://my-bucket/runway --deep   # download, re-hash, re-probe
  USEAPI_TOKEN=... runway-archiver verify -o ~/runway-archive --repair --report verify.json
"""
GALLERY_EXAMPLES = """\
examples:
  runway-archiver gallery -o ~/runway-archive     # then open the file:// link it prints
  rclone sync ~/runway-archive remote:bucket      # every link is relative: it works anywhere
"""
STATUS_EXAMPLES = """\
examples:
  runway-archiver status -o ~/runway-archive
  runway-archiver status -o ~/runway-archive | grep '^error'
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ArchiverError as exc:
        _error(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        # `status | head`: the reader has all it wanted. Nothing more goes to the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EX_PIPE
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # the last resort: a bug is one line, never a traceback dump
        if args.debug:
            print(scrub.text(traceback.format_exc()).replace("\\x0a", "\n"), file=sys.stderr)
        _error(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug"
            + ("" if args.debug else "; --debug shows the traceback")
        )
        return EX_SOFTWARE


def _error(message: str) -> None:
    with contextlib.suppress(OSError):  # stderr itself gone: nothing else can be told
        print(f"runway-archiver: {scrub.text(message)}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runway-archiver",
        description="Archive RunwayML generations retrieved through useapi.net, verified on disk.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_list(commands)
    _add_verify(commands)
    _add_status(commands)
    _add_gallery(commands)
    return parser


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _path(text: str) -> Path:
    """An argparse type: a path, never the empty string (which would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _output(text: str) -> str | Path:
    """-o: a folder, or an s3:// URL kept as text (a Path would fold its '//')."""
    return text if text.startswith("s3://") else _path(text)


def _subcommand(
    commands: Subparsers, name: str, *, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name, help=summary, description=description, epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub.add_argument(
        "-o",
        "--output",
        type=_output,
        metavar="DIR",
        help="the archive folder, or s3://bucket/prefix",
    )
    sub.add_argument("-c", "--config", type=_path, metavar="CONFIG", help="YAML config file")
    loud = sub.add_mutually_exclusive_group()
    loud.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing unless something is wrong"
    )
    loud.add_argument("-v", "--verbose", action="store_true", help="one line per file")
    sub.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    return sub


def _add_run(commands: Subparsers) -> None:
    run = _subcommand(
        commands, "run", summary="archive a list of tasks", examples=RUN_EXAMPLES,
        description="Fetch each task, download its video, previews and input assets, verify "
        "them with ffprobe, write task.yaml, and remember what is done.",
    )  # fmt: skip
    _add_selection(run)
    run.add_argument(
        "--wait",
        metavar="DURATION",
        help="poll unfinished tasks until they end or DURATION (30m, 2h) since the start passed",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print what would be done (as `list`), do nothing"
    )
    run.add_argument(
        "--report", type=_path, metavar="FILE", help="write a JSON report here ('-': stdout)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="HTTP requests in flight at once (API and downloads together)",
    )
    run.add_argument(
        "--retry-errors", action="store_true", help="try tasks in error now, despite back-off"
    )
    run.add_argument(
        "--no-inputs", action="store_true", help="do not download the input assets in the options"
    )
    run.set_defaults(handler=_run)


def _add_selection(sub: argparse.ArgumentParser) -> None:
    """Which tasks: ids, files of ids, the account's listing; shared by `run` and `list`."""
    sub.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="task ids to archive")
    sub.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        type=_path,
        metavar="FILE",
        help="file of task ids, one per line ('-' for stdin); may repeat",
    )
    sub.add_argument(
        "--all",
        action="store_true",
        help="also every task the account's listing names (the newest ~2000), and every "
        "unfinished task the archive knows",
    )
    sub.add_argument("--email", metavar="EMAIL", help="with --all: the RunwayML account to list")
    sub.add_argument(
        "--since", metavar="WHEN", help="with --all: listed tasks created since (2024-08-01, 7d)"
    )
    sub.add_argument("--refresh", action="store_true", help="fetch FAILED/CANCELLED tasks again")


def _add_list(commands: Subparsers) -> None:
    listing = _subcommand(
        commands, "list", summary="what a run would do (no retrieve, no download)",
        examples=LIST_EXAMPLES,
        description="Each task a run with the same arguments would work on: what it would do "
        "(fetch or skip), its state in the archive, and with --all its status in the listing.",
    )  # fmt: skip
    _add_selection(listing)
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing.set_defaults(handler=_list)


def _add_verify(commands: Subparsers) -> None:
    check = _subcommand(
        commands, "verify", summary="re-check every archived file", examples=VERIFY_EXAMPLES,
        description="Check every file the catalog holds: present, same size and sha256, and "
        "still readable media; and every task's task.yaml. Exit 1 if anything is missing or "
        "altered.",
    )  # fmt: skip
    check.add_argument(
        "--report", type=_path, metavar="FILE", help="write a JSON report here ('-': stdout)"
    )
    check.add_argument(
        "--repair",
        action="store_true",
        help="fetch damaged tasks again and re-download what is missing or altered",
    )
    check.add_argument(
        "--deep",
        action="store_true",
        help="for a bucket: download each file, re-hash and re-probe it (a folder always is)",
    )
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(handler=_verify)


def _add_status(commands: Subparsers) -> None:
    sub = _subcommand(
        commands, "status", summary="what the archive holds (no network)",
        examples=STATUS_EXAMPLES,
        description="Counts per state, bytes archived, the last run, and a line per task.",
    )  # fmt: skip
    sub.set_defaults(handler=_status)


def _add_gallery(commands: Subparsers) -> None:
    sub = _subcommand(
        commands, "gallery", summary="write the offline gallery (index.html, no network)",
        examples=GALLERY_EXAMPLES,
        description="Write index.html at the archive root and its gallery/ folder from the "
        "catalog: search, filters and a detail view of every task, opened from file://.",
    )  # fmt: skip
    sub.set_defaults(handler=_gallery)


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


def _with_ffprobe(cfg: config.Config) -> config.Config:
    """Find ffprobe before any request: without it nothing could be verified."""
    found = shutil.which(cfg.ffprobe)
    if found is None:
        raise ConfigError(
            f"ffprobe not found ({cfg.ffprobe!r}): install ffmpeg, or set the config key 'ffprobe'"
        )
    return dataclasses.replace(cfg, ffprobe=found)


def _check_report_path(path: Path | None, root: Path) -> None:
    """A report that could not be written is found out now, not after an hour of work.

    Its folder must exist, unless it is the archive folder itself, which the run makes.
    """
    if path is None or path == report.STDOUT:
        return
    if path.is_dir():
        raise UsageError(f"--report {path}: is a folder")
    if not path.parent.is_dir() and path.parent.absolute() != root.absolute():
        raise UsageError(f"--report {path}: no folder {path.parent}")


def _run(args: argparse.Namespace) -> int:
    """A run; if it ends before it starts (config, lock...), the report still says why."""
    started: list[bool] = []
    try:
        return _run_checked(args, started)
    except ArchiverError as exc:
        if not started:
            _report_refusal(args.report, exc)
        raise


def _report_refusal(path: Path | None, exc: ArchiverError) -> None:
    """So an old report never stands for a run that could not even start."""
    if path is None or (path != report.STDOUT and not path.parent.is_dir()):
        return
    with contextlib.suppress(ArchiverError):
        report.write(path, [], report.summary([]), code=exc.exit_code, stopped=str(exc))


def _run_checked(args: argparse.Namespace, started: list[bool]) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency: expected a positive integer")
    cfg = _load_config(
        args,
        concurrency=args.concurrency,
        progress=False if args.no_progress else None,
        refresh=True if args.refresh else None,
        retry_errors=True if args.retry_errors else None,
        inputs=False if args.no_inputs else None,
    )
    wait = parse_duration(args.wait) if args.wait is not None else None
    tasks, query = _selection(args)
    if args.dry_run:
        return plan.show(cfg, tasks, query, as_json=False)
    _require_token(cfg)
    _check_report_path(args.report, storage.place(cfg, os.environ).state_dir)
    cfg = _with_ffprobe(cfg)
    with _archive(cfg) as catalog:
        started.append(True)  # from here on the run writes its own report, however it ends
        finished = runs.execute(
            cfg, catalog, tasks.ids, tasks.bad, report_path=args.report, level=_level(args),
            query=query, wait=wait,
        )  # fmt: skip
        changed = any(o.state in (State.ARCHIVED, State.FAILED) for o in finished.outcomes)
        _refresh_gallery(cfg, catalog, changed=changed)
    return finished.code


def _require_token(cfg: config.Config) -> None:
    if not cfg.token:
        raise ConfigError(config.NO_TOKEN)


def _selection(args: argparse.Namespace) -> tuple[TaskList, Query | None]:
    if not args.all and (args.email is not None or args.since is not None):
        raise UsageError("--email and --since work with --all only")
    if args.email is not None and not args.email.strip():
        raise UsageError("--email: an empty address")
    if not args.all and not args.task_ids and not args.input:
        raise UsageError("no task ids given (arguments, -i FILE, -i - or --all)")
    tasks = _task_list(args)
    if not args.all:
        return tasks, None
    since = parse_since(args.since) if args.since is not None else None
    return tasks, Query(email=args.email, since=since)


def _list(args: argparse.Namespace) -> int:
    cfg = _load_config(args, refresh=True if args.refresh else None)
    tasks, query = _selection(args)
    return plan.show(cfg, tasks, query, as_json=args.json)


def _verify(args: argparse.Namespace) -> int:
    cfg = _with_ffprobe(_load_config(args, progress=False if args.no_progress else None))
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


def _status(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    with _readonly(cfg, fetch=False) as catalog:
        for line in status.render(str(cfg.output_dir), catalog):
            print(scrub.text(line))
    return 0


def _gallery(args: argparse.Namespace) -> int:
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
        warning, _ = asyncio.run(
            storage.gallery(
                cfg,
                lambda root: refresh_gallery(root, catalog, changed=changed, now=pipeline.now()),
                index=INDEX,
            )
        )
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
def _archive(cfg: config.Config, *, create: bool = True) -> Iterator[Catalog]:
    """The archive, locked for this run, with its catalog open (a bucket's copy fetched on a
    machine that has none, and stored again after a run that ended normally)."""
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
