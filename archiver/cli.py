"""The command line: the parser, and one line and an exit code for whatever ends a command.

The commands themselves (arguments -> Config -> the work) are in commands/, one module each.

Exit codes (README): 0 all well, 1 some task in error, 2 usage/config, 3 token rejected,
70 internal error, 74 storage, 75 archive locked, 130/143 interrupted, 141 stdout closed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from . import __version__, config, scrub
from .errors import EX_SOFTWARE, ArchiverError

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
FORGET_EXAMPLES = """\
examples:
  runway-archiver forget --gone -o ~/runway-archive      # every task deleted at Runway (404)
  runway-archiver forget 'user:1234-runwayml:me@example.com-task:3f2a...' -o ~/runway-archive
  runway-archiver run -i tasks.txt --refresh -o ~/runway-archive  # fetch a forgotten one again
"""
CATALOG_EXAMPLES = """\
examples:
  runway-archiver catalog copy -o ~/runway-archive --to postgresql://archiver@db.lan/runway
  runway-archiver run --catalog postgresql://archiver@db.lan/runway -o /mnt/runway-archive
"""
STATUS_EXAMPLES = """\
examples:
  runway-archiver status -o ~/runway-archive
  runway-archiver status -o ~/runway-archive | grep '^error'
  runway-archiver status --json --catalog postgresql://archiver@db.lan/runway | jq .hosts
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
            # Scrubbed a line at a time: scrub.text makes one line of whatever it is given.
            lines = traceback.format_exc().splitlines()
            print("\n".join(scrub.text(line) for line in lines), file=sys.stderr)
        _error(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug"
            + ("" if args.debug else "; --debug shows the traceback")
        )
        return EX_SOFTWARE


def _command(module: str, name: str) -> Handler:
    """A command's handler, its module imported only when it runs: `status` and `list` need
    not load the HTTP client and the pipeline (a third of a second of start-up, measured)."""

    def handler(args: argparse.Namespace) -> int:
        run: Handler = getattr(importlib.import_module(f"{__package__}.commands.{module}"), name)
        return run(args)

    return handler


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
    _add_forget(commands)
    _add_catalog(commands)
    return parser


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]


def _path(text: str) -> Path:
    """An argparse type: a path, never the empty string (which would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _output(text: str) -> str | Path:
    """-o: a folder, or an s3:// URL kept as text (a Path would fold its '//')."""
    return text if text.startswith("s3://") else _path(text)


def _subcommand(
    commands: Subparsers,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    shared_catalog: bool = True,
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
    if shared_catalog:
        sub.add_argument(
            "--catalog",
            metavar="URL",
            help="the catalog in PostgreSQL (postgresql://user@host:port/db), shared by hosts",
        )
    else:
        sub.set_defaults(catalog=None)
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
    run.add_argument(
        "--metrics",
        type=_path,
        metavar="FILE",
        help="write Prometheus metrics here at the end (node_exporter's textfile collector)",
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
    _add_probe(run)
    run.set_defaults(handler=_command("run", "cmd_run"))


def _add_probe(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--probe",
        choices=config.PROBE_ENGINES,
        help="the engine that probes video and audio (default ffprobe; libav needs the "
        "[libav] extra)",
    )


def _add_ids(sub: argparse.ArgumentParser, *, verb: str) -> None:
    """Task ids as arguments and in files of ids (`run`, `list`, `forget`)."""
    sub.add_argument("task_ids", nargs="*", metavar="TASK_ID", help=f"task ids to {verb}")
    sub.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        type=_path,
        metavar="FILE",
        help="file of task ids, one per line ('-' for stdin); may repeat",
    )


def _add_selection(sub: argparse.ArgumentParser) -> None:
    """Which tasks: ids, files of ids, the account's listing; shared by `run` and `list`."""
    _add_ids(sub, verb="archive")
    sub.add_argument(
        "--all",
        action="store_true",
        help="also every task the accounts' listings name (the newest 2000 of each status of "
        "each account), and every unfinished task the archive knows",
    )
    sub.add_argument(
        "--email",
        action="append",
        metavar="EMAIL",
        help="with --all: list only this RunwayML account (may repeat; default: every account "
        "configured at useapi)",
    )
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
    listing.set_defaults(handler=_command("list", "cmd_list"))


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
    _add_probe(check)
    check.set_defaults(handler=_command("verify", "cmd_verify"))


def _add_status(commands: Subparsers) -> None:
    sub = _subcommand(
        commands, "status", summary="what the archive holds (no network)",
        examples=STATUS_EXAMPLES,
        description="Counts per state, bytes archived, the last run, and a line per task; "
        "with a shared (PostgreSQL) catalog, each host's last run and the claims it holds now.",
    )  # fmt: skip
    sub.add_argument("--json", action="store_true", help="one JSON document on stdout")
    sub.set_defaults(handler=_command("status", "cmd_status"))


def _add_gallery(commands: Subparsers) -> None:
    sub = _subcommand(
        commands, "gallery", summary="write the offline gallery (index.html, no network)",
        examples=GALLERY_EXAMPLES,
        description="Write index.html at the archive root and its gallery/ folder from the "
        "catalog: search, filters and a detail view of every task, opened from file://.",
    )  # fmt: skip
    sub.set_defaults(handler=_command("gallery", "cmd_gallery"))


def _add_forget(commands: Subparsers) -> None:
    sub = _subcommand(
        commands, "forget", summary="drop tasks from what runs try (no file is deleted)",
        examples=FORGET_EXAMPLES,
        description="Mark tasks forgotten: no run fetches them again (--all leaves them out; "
        "an id given by name is a note, unless --refresh). Nothing is deleted from the archive.",
    )  # fmt: skip
    _add_ids(sub, verb="forget")
    sub.add_argument(
        "--gone",
        action="store_true",
        help="also every task whose last retrieve answered 404 or 410 (gone at source)",
    )
    sub.add_argument(
        "--archived",
        action="store_true",
        help="forget archived tasks too (their files stay in the archive)",
    )
    sub.set_defaults(handler=_command("forget", "cmd_forget"))


def _add_catalog(commands: Subparsers) -> None:
    group = commands.add_parser(
        "catalog", help="the catalog itself: copy it into PostgreSQL",
        description="Operations on the archive's catalog.",
    )  # fmt: skip
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    copy = _subcommand(
        actions, "copy", summary="copy an archive's SQLite catalog into an empty PostgreSQL db",
        examples=CATALOG_EXAMPLES, shared_catalog=False,
        description="Copy every task, file, run, listing and back-off row of the archive's SQLite "
        "catalog into an empty PostgreSQL database, check the counts, and leave the SQLite file "
        "as it is: the archive then goes multi-host (--catalog URL) without downloading again.",
    )  # fmt: skip
    copy.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user[:password]@host[:port]/db"
    )
    copy.set_defaults(handler=_command("catalog", "cmd_catalog_copy"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
