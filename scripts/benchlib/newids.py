"""The new-ids profile: a first run over N task ids the API does not know (a 404 each), beside
the same run over 10,000, into fresh archives: the archiver's memory must not grow with N.

Cheap to serve, so the run is mostly the archiver's own bookkeeping per id: reading the list,
the catalog's rows, the report, the progress count.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from archiver.testing.tasks import new_task_id

from .disk import PeakUse, gb
from .proc import BenchError, run_measured
from .profiles import MARGIN, SMALL, Options, enough_disk, log
from .report import Report
from .rows import WRAPPER, Bench, RunResult, _result, _with_own
from .server import DataSpec, Emulator

SMALLER = 10_000
GROWTH_MB = 20.0  # the bound on peak RSS growth from 10,000 to N new ids


def new_ids_profile(opt: Options, count: int) -> Report | None:
    if not enough_disk(opt, count * 2000 + MARGIN, f"first run over {count} new ids"):
        return None
    spec = DataSpec(tasks=1, video=SMALL, bitrate=None, variants=1, previews=1, full_previews=False)
    work = opt.work / "profile"
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    sizes = sorted({min(SMALLER, count), count})
    with PeakUse(opt.work) as disk, Emulator(spec, work, opt.cache) as emu:
        bench = Bench(emu, work, opt.cores, opt.timeout or 120 + count * 0.01)
        lists = {n: _ids_file(work, n) for n in sizes}
        report = Report(
            f"== first run over task ids the API does not know (404 each): "
            f"{', '.join(f'{n:,}' for n in sizes)} ids\n"
            f"   medians of {opt.repeat}, {opt.cores} cores; a fresh archive per run",
            {"sizes": sizes},
        )
        for rep in range(opt.repeat):
            for n in sizes:
                result = _first_run(bench, lists[n], n)
                log(
                    f"[{rep + 1}/{opt.repeat}] {result.row}: {result.wall:.2f} s, peak RSS "
                    f"{result.own_rss_mb:.1f} MB"
                )
                report.add(result)
        rows = [_row(n) for n in sizes]
        for row, n in zip(rows, sizes, strict=True):
            wall = report.median(row, "wall")
            report.note(f"{row}: {wall / n * 1e6:.0f} us per id")
        if len(sizes) == 2:
            small, large = (report.median(r, "own_rss_mb") for r in rows)
            report.target(
                "new_ids_rss_growth",
                f"peak RSS growth, {sizes[0]:,} -> {sizes[1]:,} ids",
                large - small,
                "MB",
                GROWTH_MB,
            )
    shutil.rmtree(work, ignore_errors=True)
    report.note(
        f"disk: this profile used {gb(disk.used)} at peak; whole profile took "
        f"{time.monotonic() - began:.0f} s"
    )
    return report


def _row(count: int) -> str:
    return f"first run, {count:,} new ids"


def _ids_file(work: Path, count: int) -> Path:
    path = work / f"new-ids-{count}.txt"
    path.write_text("".join(f"{new_task_id()[0]}\n" for _ in range(count)))
    return path


def _first_run(bench: Bench, ids: Path, count: int) -> RunResult:
    """One run into a fresh archive; every id must end in error after exactly one request."""
    out = bench.work / "out-new-ids"
    usage = bench.work / "archiver-usage.json"
    cmd = [sys.executable, "-c", WRAPPER, str(usage), "run", "-i", str(ids), "-o", str(out)]
    cmd += ["--no-progress", "--quiet"]
    before = bench.emu.stats()
    try:
        m = run_measured(
            cmd, env=bench.env, timeout=bench.timeout, log=bench.work / "new-ids.log", check=False
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    seen = bench.emu.stats().minus(before)
    if m.exit_code != 1 or seen.api != count or seen.cdn:
        raise BenchError(
            f"{_row(count)}: exit {m.exit_code} after {seen.api} API and {seen.cdn} CDN "
            f"requests; expected exit 1 (every task in error) after {count} API requests"
        )
    result = _result(_row(count), m, seen.api, seen.cdn, seen.cpu, 0, 0, seen.statuses)
    return _with_own(result, json.loads(usage.read_text()))
