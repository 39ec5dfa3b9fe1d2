"""The command line: arguments -> Config -> a run under the archive lock -> an exit code.

Exit codes: 0 all well, 1 some task in error, 2 usage/config, 3 token rejected, 74 storage,
75 archive locked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

from . import __version__, audit, config, lock, pipeline, progress, report, status
from .catalog import Catalog
from .catalog import require as require_archive
from .errors import ArchiverError, ConfigError, StorageError, UsageError
from .model import State, TaskOutcome
from .tasklist import TaskList, gather

RUN_EXAMPLES = """\
examples:
  export USEAPI_TOKEN=...            # never put the token on the command line
  runway-archiver run -i tasks.txt -o ~/runway-archive
  runway-archiver run 'user:1234-runwayml:me@example.com-task:3f2a...' -o archive
  grep -v done ids.txt | runway-archiver run -i - --report run.json --no-progress
"""


VERIFY_EXAMPLES = """\
examples:
  runway-archiver verify -o ~/runway-archive
  USEAPI_TOKEN=... runway-archiver verify -o ~/runway-archive --repair --report verify.json
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
        print(f"runway-archiver: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("runway-archiver: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runway-archiver",
        description="Archive RunwayML generations retrieved through useapi.net, verified on disk.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_verify(commands)
    _add_status(commands)
    return parser


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _subcommand(
    commands: Subparsers, name: str, *, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name, help=summary, description=description, epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub.add_argument("-o", "--output", type=Path, metavar="DIR", help="the archive folder")
    sub.add_argument("-c", "--config", type=Path, metavar="CONFIG", help="YAML config file")
    return sub


def _add_run(commands: Subparsers) -> None:
    run = _subcommand(
        commands, "run", summary="archive a list of tasks", examples=RUN_EXAMPLES,
        description="Fetch each task, download its video and previews, verify them with "
        "ffprobe, write task.yaml, and remember what is done.",
    )  # fmt: skip
    run.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="task ids to archive")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="FILE",
        help="file of task ids, one per line ('-' for stdin); may repeat",
    )
    run.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report here")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="HTTP requests in flight at once (API and downloads together)",
    )
    run.add_argument("--refresh", action="store_true", help="fetch FAILED/CANCELLED tasks again")
    run.set_defaults(handler=_run)  # fmt: skip


def _add_verify(commands: Subparsers) -> None:
    check = _subcommand(
        commands, "verify", summary="re-check every archived file", examples=VERIFY_EXAMPLES,
        description="Check every file the catalog holds: present, same size and sha256, and "
        "still readable media. Exit 1 if any is missing or altered.",
    )  # fmt: skip
    check.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report here")
    check.add_argument(
        "--repair",
        action="store_true",
        help="fetch damaged tasks again and re-download what is missing or altered",
    )
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(handler=_verify)  # fmt: skip


def _add_status(commands: Subparsers) -> None:
    status = _subcommand(
        commands, "status", summary="what the archive holds (no network)",
        examples=STATUS_EXAMPLES,
        description="Counts per state, bytes archived, the last run, and a line per task.",
    )  # fmt: skip
    status.set_defaults(handler=_status)


def _load_config(args: argparse.Namespace, **overrides: Any) -> config.Config:
    cfg, warnings = config.load(
        path=args.config, env=os.environ, overrides={"output_dir": args.output, **overrides}
    )
    for warning in warnings:
        print(warning, file=sys.stderr)
    return cfg


def _run(args: argparse.Namespace) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency: expected a positive integer")
    cfg = _load_config(
        args,
        concurrency=args.concurrency,
        progress=False if args.no_progress else None,
        refresh=True if args.refresh else None,
    )
    if not cfg.token:
        raise ConfigError(f"no API token: set {config.ENV_TOKEN} or the config key 'token'")
    tasks = _task_list(args)
    if not tasks.ids and not tasks.bad:
        raise UsageError("no task ids given (arguments, -i FILE or -i -)")
    with _archive(cfg.output_dir) as catalog:
        return _run_locked(cfg, catalog, tasks, args.report)


def _run_locked(
    cfg: config.Config, catalog: Catalog, tasks: TaskList, report_path: Path | None
) -> int:
    started = time.monotonic()
    run_id = catalog.begin_run(now=pipeline.now())
    reporter = progress.reporter(enabled=cfg.progress)
    for bad in tasks.bad:
        reporter.note(f"error: {bad}")
    outcomes: list[TaskOutcome] = []
    code = 1
    try:
        try:
            outcomes = asyncio.run(pipeline.archive(cfg, catalog, tasks.ids, reporter))
        finally:
            reporter.close()
        outcomes += [TaskOutcome(b.text, State.ERROR, error=str(b)) for b in tasks.bad]
        counts = report.summary(outcomes)
        code = report.exit_code(counts)
        if report_path is not None:
            skipped = {
                o.task_id: catalog.files(o.task_id) for o in outcomes if o.state is State.SKIPPED
            }
            report.write(report_path, outcomes, counts, skipped)
        print(report.summary_line(counts, time.monotonic() - started), flush=True)
        return code
    except ArchiverError as exc:
        code = exc.exit_code
        raise
    finally:
        catalog.end_run(
            run_id, now=pipeline.now(), exit_code=code, summary=report.summary(outcomes)
        )


def _verify(args: argparse.Namespace) -> int:
    cfg = _load_config(args, progress=False if args.no_progress else None)
    if args.repair and not cfg.token:
        raise ConfigError(f"--repair needs the API token: set {config.ENV_TOKEN}")
    with _archive(cfg.output_dir, create=False) as catalog:
        entries = catalog.all_files()
        bar = progress.counter(len(entries), unit="file", enabled=cfg.progress)
        try:
            checked, damaged = asyncio.run(
                audit.check_archive(
                    cfg.output_dir,
                    entries,
                    workers=cfg.probes,
                    probe_timeout=cfg.probe_timeout,
                    on_checked=bar.update,
                )
            )
        finally:
            bar.close()
        for damage in damaged:
            print(f"damaged: {damage.path}: {damage.reason}")
        repaired = _repair(cfg, catalog, damaged) if args.repair and damaged else set()
    if args.report is not None:
        audit.write_report(args.report, checked, damaged, repaired)
    print(
        f"checked {checked} files: {checked - len(damaged)} ok, {len(damaged)} damaged"
        + (f", {len(repaired)} repaired" if args.repair else "")
    )
    return 1 if any(d.path not in repaired for d in damaged) else 0


def _repair(cfg: config.Config, catalog: Catalog, damaged: list[audit.Damage]) -> set[str]:
    """Archive the damaged tasks again; the paths that are whole now."""
    by_task: dict[str, list[str]] = {}
    for damage in damaged:
        by_task.setdefault(damage.task_id, []).append(damage.path)
    for task_id, paths in by_task.items():
        reason = f"verify: {len(paths)} file(s) missing or altered, repairing"
        catalog.mark_damaged(task_id, paths, reason=reason, now=pipeline.now())
    reporter = progress.reporter(enabled=cfg.progress)
    try:
        outcomes = asyncio.run(pipeline.archive(cfg, catalog, list(by_task), reporter))
    finally:
        reporter.close()
    whole = {f.path for o in outcomes if o.state is State.ARCHIVED for f in o.files}
    return {d.path for d in damaged if d.path in whole}


def _status(args: argparse.Namespace) -> int:
    cfg = _load_config(args)
    catalog = Catalog.open(cfg.output_dir, readonly=True)
    try:
        for line in status.render(cfg.output_dir, catalog):
            print(line)
    finally:
        catalog.close()
    return 0


@contextmanager
def _archive(root: Path, *, create: bool = True) -> Iterator[Catalog]:
    """The archive folder, locked for this run, with its catalog open."""
    if not create:
        require_archive(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{root}: {exc.strerror or exc}") from exc
    with lock.hold(root):
        catalog = Catalog.open(root)
        try:
            yield catalog
        finally:
            catalog.close()


def _task_list(args: argparse.Namespace) -> TaskList:
    sources = []
    for name in args.input:
        if name == "-":
            sources.append(("<stdin>", sys.stdin.read().removeprefix("\ufeff").splitlines()))
            continue
        try:
            text = Path(name).read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise UsageError(f"task list {name}: {exc.strerror or exc}") from exc
        sources.append((name, text.splitlines()))
    return gather(args.task_ids, sources)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
