"""The gallery profile: build the gallery of an N-task catalog, then load it in headless Chromium.

The catalog is filled with N distinct synthetic tasks (archiver.testing.synthetic: real display
rows, no media on disk). Rows: `runway-archiver gallery` from scratch, again with nothing changed,
again after 10 tasks were added (only their detail files are written again), and page loads
timed by the page's own marks.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

from archiver.testing import synthetic
from archiver.testing.browser import chromium

from .disk import PeakUse, gb
from .proc import run_measured
from .profiles import MARGIN, Options, enough_disk, log
from .report import Report
from .rows import RunResult

FIRST_RESULTS_S = 1.0
NEW = 10
BUILD_S = 5.0
BUILD_MB = 150.0


def gallery_profile(opt: Options, count: int) -> Report | None:
    if not enough_disk(opt, count * 6000 + MARGIN, f"gallery of {count} tasks"):
        return None
    work = opt.work / "profile"
    archive = work / "archive"
    archive.mkdir(parents=True)
    began = time.monotonic()
    with PeakUse(opt.work) as disk:
        started = time.monotonic()
        synthetic.fill(archive, count)
        filled = time.monotonic() - started
        log(f"filled a catalog with {count:,} distinct synthetic tasks in {filled:.1f} s")
        report = Report(
            f"== gallery of {count:,} tasks (synthetic catalog rows, no media on disk)\n"
            f"   medians of {opt.repeat}, {opt.cores} cores",
            {"count": count, "fill_seconds": filled},
        )
        fresh, same = f"gallery build, {count:,}", "gallery rebuild, unchanged"
        grown = f"rebuild, {NEW} tasks added"
        for rep in range(opt.repeat):
            shutil.rmtree(archive / "gallery", ignore_errors=True)
            for row in (fresh, same, grown):
                if row == grown:  # what a cron run adds: a few new tasks
                    synthetic.fill(archive, NEW, seed=1000 + rep)
                result = _build(opt, archive, work, row)
                log(f"[{rep + 1}/{opt.repeat}] {row}: {result.wall:.2f} s")
                report.add(result)
        sizes = {p.name: p.stat().st_size for p in (archive / "gallery").glob("*.js")}
        details = sum(p.stat().st_size for p in (archive / "gallery/detail").glob("??.js"))
        report.note(
            f"data.js {sizes['data.js'] / 1e3:.0f} KB (the newest rows), data-more.js "
            f"{sizes['data-more.js'] / 1e6:.1f} MB ({sizes['data-more.js'] / count:.0f} B per "
            f"task), detail files {details / 1e6:.0f} MB in 256"
        )
        first, full = _page_loads(archive / "index.html", opt.repeat)
        report.facts.update(first_results_ms=first, all_rows_ms=full)
        report.target("build_wall", "gallery build from scratch", report.median(fresh, "wall"),
                      "s", BUILD_S)  # fmt: skip
        report.target("build_rss", "gallery build from scratch: peak RSS",
                      report.median(fresh, "rss_mb"), "MB", BUILD_MB)  # fmt: skip
        report.target("first_results", "page: first results on screen", first / 1e3, "s",
                      FIRST_RESULTS_S)  # fmt: skip
        report.note(f"page: all {count:,} rows loaded and searchable after {full / 1e3:.2f} s")
    shutil.rmtree(work, ignore_errors=True)
    report.note(
        f"disk: this profile used {gb(disk.used)} at peak; whole profile took "
        f"{time.monotonic() - began:.0f} s"
    )
    return report


def _build(opt: Options, archive: Path, work: Path, row: str) -> RunResult:
    cmd = [sys.executable, "-m", "archiver", "gallery", "-o", str(archive)]
    measured = run_measured(cmd, timeout=opt.timeout or 600, log=work / "gallery.log")
    return RunResult(
        row=row,
        wall=measured.wall,
        cpu=measured.cpu,
        rss_mb=measured.max_rss_kb / 1024,
        api=0,
        cdn=0,
        server_cpu=0.0,
        bytes=0,
        files=0,
    )


def _page_loads(index: Path, repeat: int) -> tuple[float, float]:
    """Median ms from navigation to the first cards, and to every row loaded, in Chromium."""
    firsts, fulls = [], []
    with chromium() as browser:
        for rep in range(repeat + 1):
            browser.open("about:blank", ready=False)
            browser.open(index.resolve().as_uri())
            if rep == 0:
                continue  # the first load warms the page cache and the browser
            firsts.append(browser.mark_ms("gallery-first-results"))
            fulls.append(browser.mark_ms("gallery-all-results"))
            log(f"[{rep}/{repeat}] page: first results {firsts[-1]:.0f} ms, all {fulls[-1]:.0f} ms")
    return statistics.median(firsts), statistics.median(fulls)
