"""scripts/bench: runway-archiver against curl, aria2c and a shell pipeline, over loopback.

Serves a realistic data set from the useapi emulator in its own process and runs each row
several times into fresh folders (deleted after), printing medians, ratios and the issue's
targets. Run it through scripts/bench, which installs ffmpeg, curl, jq and aria2 first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import report as report_mod
from benchlib.bucket import bucket_profile
from benchlib.disk import parse_size
from benchlib.engines import ENGINES, available
from benchlib.gallery import gallery_profile
from benchlib.hosts import hosts_profile
from benchlib.newids import new_ids_profile
from benchlib.proc import BenchError
from benchlib.profiles import Options, big_profile, log, tasks_profile
from benchlib.report import Report
from benchlib.rerun import rerun_profile

EXAMPLES = """\
examples:
  scripts/bench                          200 tasks of realistic media, 3 runs per row
  scripts/bench --tasks 1000 --repeat 1  10 GB; N=1000 should take ~5x N=200
  scripts/bench --wan                    8 MB/s per CDN connection, 150 ms API answers
  scripts/bench --tasks 10000 --repeat 1 small media (auto above 2000 tasks: disk)
  scripts/bench --rerun 100000           a rerun over 100,000 archived ids: no request
  scripts/bench --big 2G --repeat 1      one 2 GB video: the archiver's peak RSS
  scripts/bench --gallery 100000         build the gallery of 100,000 tasks, load it in Chromium
  scripts/bench --profile                also one archiver run under cProfile
  scripts/bench --bucket --tasks 50      into an S3 bucket (moto) beside onto disk
  scripts/bench --new-ids 100000         a first run over 100,000 unknown ids beside 10,000
  scripts/bench --probe ffprobe,libav    a row of the archiver with each probe engine
  scripts/bench --all                    every profile of issue 18 in one invocation (hours)
  scripts/bench --hosts --tasks 200      1, 2 and 3 processes on one PostgreSQL catalog (WAN)
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks", type=int, default=200, help="tasks in the data set (default 200)")
    p.add_argument("--repeat", type=int, default=3, help="runs per row; medians (default 3)")
    p.add_argument("--wan", action="store_true", help="8 MB/s per CDN connection, API +150 ms")
    p.add_argument(
        "--media",
        choices=("auto", "realistic", "small"),
        default="auto",
        help="realistic: 1280x768 16 Mbit/s videos, full-size previews; small: a few KB each; "
        "auto: realistic up to 2000 tasks if the disk allows (default)",
    )
    p.add_argument("--rerun", type=int, metavar="N", help="time a rerun over N archived ids")
    p.add_argument("--big", metavar="SIZE", help="one task whose video is SIZE (e.g. 2G)")
    p.add_argument(
        "--gallery", type=int, metavar="N", help="time the gallery of N tasks: build and page load"
    )
    p.add_argument(
        "--new-ids",
        type=int,
        metavar="N",
        help="a first run over N ids the API does not know (404 each), beside 10,000",
    )
    p.add_argument(
        "--probe",
        default=",".join(ENGINES),
        metavar="ENGINES",
        help="probe engines to give the archiver a row each, of %(default)s; one the checkout "
        "lacks is skipped with a note (default: %(default)s)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="every profile in one invocation: 200 and 1,000 tasks on loopback, 200 on the WAN "
        "profile, a rerun over 1,000,000 ids, 100,000 new ids, the gallery of 100,000 tasks, "
        "and peak RSS at 10,000 tasks and for one 2 GB video",
    )
    p.add_argument("--profile", action="store_true", help="one more archiver run under cProfile")
    p.add_argument(
        "--bucket",
        action="store_true",
        help="the archiver into an S3 bucket (moto's server, its own process) and onto disk",
    )
    p.add_argument(
        "--hosts",
        action="store_true",
        help="1, 2 and 3 archiver processes against one PostgreSQL catalog, WAN-like, and the "
        "catalog's own cost per task",
    )
    p.add_argument(
        "--host-concurrency",
        type=int,
        default=4,
        metavar="N",
        help="with --hosts: --concurrency of each process, its own link (default 4)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also save the figures as JSON")
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also run the archiver package of another checkout (e.g. a git worktree of an "
        "older commit) as a row, with the first --probe engine, for an A/B in the same "
        "invocation",
    )
    p.add_argument("--workdir", type=Path, help="where outputs go (default: a fresh temp dir)")
    p.add_argument("--timeout", type=float, help="seconds a row may take (default: from size)")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "runway-archiver"
        / "bench-media",
        help="media cache: a few variants, reused across runs (default: %(default)s)",
    )
    args = p.parse_args(argv)
    counts = (args.rerun, args.gallery, args.new_ids)
    if args.tasks < 1 or args.repeat < 1 or any(n is not None and n < 1 for n in counts):
        p.error("--tasks, --repeat, --rerun, --gallery and --new-ids must be positive")
    args.probe = tuple(e.strip() for e in args.probe.split(",") if e.strip())
    unknown = set(args.probe) - set(ENGINES)
    if unknown or not args.probe:
        p.error(f"--probe: expected engines of {', '.join(ENGINES)}")
    if args.big is not None:
        try:
            parse_size(args.big)
        except ValueError as exc:
            p.error(f"--big: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools: tuple[str, ...] = ("curl", "aria2c", "jq", "ffprobe")
    if args.gallery:
        tools = ("chromium", "chromedriver")
    if args.all:
        tools = ("chromium", "chromedriver", "curl", "aria2c", "jq", "ffprobe")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"bench: missing {', '.join(missing)}: run scripts/bench", file=sys.stderr)
        return 2
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="runway-bench-", dir=parent))
    engines, skipped = available(args.probe)
    for note in skipped:
        log(note)
    opt = Options(
        tasks=args.tasks,
        repeat=args.repeat,
        wan=args.wan,
        media=args.media,
        work=work,
        cache=args.cache,
        cores=os.cpu_count() or 1,
        timeout=args.timeout,
        profile=args.profile,
        baseline=args.baseline.resolve() if args.baseline else None,
        engines=tuple(engines),
    )
    began = time.monotonic()
    reports: list[Report] = []
    try:
        for job in _jobs(args, opt):
            report = job()
            if report is not None:
                print()
                print(report.render(), flush=True)
                reports.append(report)
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.json and reports:
            report_mod.save(args.json, reports)
    if len(reports) > 1:
        print()
        print(report_mod.targets_table(reports))
    for note in skipped:
        print(f"bench: {note}")
    log(f"done in {time.monotonic() - began:.0f} s")
    return 0


def _jobs(args: argparse.Namespace, opt: Options) -> list[Callable[[], Report | None]]:
    """The profiles this invocation runs, in order."""
    if not args.all:
        if args.gallery is not None:
            return [lambda: gallery_profile(opt, args.gallery)]
        if args.rerun is not None:
            return [lambda: rerun_profile(opt, args.rerun)]
        if args.new_ids is not None:
            return [lambda: new_ids_profile(opt, args.new_ids)]
        if args.big is not None:
            return [lambda: big_profile(opt, args.big)]
        if args.bucket:
            return [lambda: bucket_profile(opt)]
        if args.hosts:
            return [lambda: hosts_profile(opt, args.host_concurrency)]
        return [lambda: tasks_profile(opt)]
    once = dataclasses.replace(opt, repeat=1)
    return [
        lambda: tasks_profile(dataclasses.replace(opt, tasks=200, wan=False)),
        lambda: tasks_profile(dataclasses.replace(opt, tasks=1000, wan=False)),
        lambda: tasks_profile(dataclasses.replace(opt, tasks=200, wan=True)),
        lambda: rerun_profile(opt, args.rerun or 1_000_000),
        lambda: new_ids_profile(opt, args.new_ids or 100_000),
        lambda: gallery_profile(opt, args.gallery or 100_000),
        lambda: tasks_profile(dataclasses.replace(once, tasks=10_000, wan=False), memory_only=True),
        lambda: big_profile(once, args.big or "2G"),
    ]


if __name__ == "__main__":
    sys.exit(main())
