"""The profiles: N tasks over loopback (or WAN-like), one very large file, a rerun over a big
catalog. Each serves its data set from its own emulator process and returns a Report.
"""

from __future__ import annotations

import pstats
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .disk import PeakUse, free_bytes, gb, parse_size
from .proc import BenchError
from .report import Report
from .rows import Bench, RunResult
from .server import DataSpec, Emulator

REALISTIC = "1280x768@24:5.2"
SMALL = "320x192@24:2"
REALISTIC_TASK_BYTES = 10.6e6  # a 16 Mbit/s video and three 70-120 KB previews
SMALL_TASK_BYTES = 0.09e6
MARGIN = 1e9
BASELINE_ROW = "archiver @baseline"
BIG_BITRATE = 2000  # Mbit/s: x264's CBR ceiling is ~2,147; a 2 GB file is then ~8.6 s long


@dataclass(frozen=True)
class Options:
    tasks: int
    repeat: int
    wan: bool
    media: str  # realistic, small or auto
    work: Path
    cache: Path
    cores: int
    timeout: float | None
    profile: bool
    baseline: Path | None = None  # another checkout, run as an extra row for A/B


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def enough_disk(opt: Options, need: float, what: str) -> bool:
    free = free_bytes(opt.work)
    if free < need:
        log(f"skipping {what}: it needs about {gb(need)} free, {gb(free)} is free")
        return False
    log(f"{what}: needs about {gb(need)}, {gb(free)} free")
    return True


def standard_spec(tasks: int, *, small: bool, **extra: Any) -> DataSpec:
    """The data set of the task profiles: realistic media (or small), four variants, three
    previews each."""
    return DataSpec(
        tasks=tasks,
        video=SMALL if small else REALISTIC,
        bitrate=None if small else "16M",
        variants=4,
        previews=3,
        full_previews=not small,
        **extra,
    )


def tasks_profile(opt: Options) -> Report | None:
    small = opt.media == "small" or (
        opt.media == "auto"
        and (opt.tasks > 2000 or free_bytes(opt.work) < opt.tasks * REALISTIC_TASK_BYTES * 1.2)
    )
    per_task = SMALL_TASK_BYTES if small else REALISTIC_TASK_BYTES
    name = f"{'WAN-like' if opt.wan else 'loopback'}, {opt.tasks} tasks"
    if not enough_disk(opt, opt.tasks * per_task * 1.1 + MARGIN, name):
        return None
    spec = standard_spec(
        opt.tasks,
        small=small,
        cdn_rate=8_000_000 if opt.wan else None,
        api_delay=0.15 if opt.wan else 0.0,
    )
    timeout = opt.timeout or 180 + opt.tasks * (0.15 if small else 0.5)
    rows = ["archiver", "curl", "aria2c", "peer"] if opt.wan else None
    return _run_rows(opt, spec, name, timeout, rows, opt.cache, _tasks_ratios)


def big_profile(opt: Options, size_text: str) -> Report | None:
    size = parse_size(size_text)
    if not enough_disk(opt, 2 * size + 1.5 * MARGIN, f"one {size_text} file"):
        return None
    seconds = size * 8 / (BIG_BITRATE * 1e6)
    spec = DataSpec(
        tasks=1,
        video=f"1280x768@24:{seconds:.2f}",
        bitrate=f"{BIG_BITRATE}M",
        variants=1,
        previews=2,
        full_previews=True,
    )
    cache = opt.work / "big-media"  # deleted with the work folder: 2 GB is no cache
    timeout = opt.timeout or 120 + size / 20e6
    rows = ["archiver", "curl", "curl+sync"]
    return _run_rows(opt, spec, f"one {size_text} video", timeout, rows, cache, _big_ratios)


def _run_rows(
    opt: Options,
    spec: DataSpec,
    name: str,
    timeout: float,
    rows: list[str] | None,
    cache: Path,
    ratios: Callable[[Report, Bench, Options], None],
) -> Report:
    rows = rows or ["archiver", "curl", "curl+sync", "aria2c", "peer"]
    if opt.baseline is not None:
        rows = ["archiver", "baseline", *rows[1:]]
    work = opt.work / "profile"
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with PeakUse(opt.work) as disk, Emulator(spec, work, cache) as emu:
        log(
            f"{name}: the emulator serves {len(emu.assets)} files, seeded in "
            f"{time.monotonic() - began:.1f} s"
        )
        bench = Bench(emu, work, opt.cores, timeout)
        report = Report(_title(name, spec, bench, opt), _facts(spec, bench, opt))
        actions: dict[str, Callable[[], RunResult]] = {
            "archiver": bench.archiver,
            "curl": bench.curl,
            "curl+sync": lambda: bench.curl(sync=True),
            "aria2c": bench.aria2c,
            "peer": bench.peer,
            "baseline": lambda: bench.archiver(row=BASELINE_ROW, code=opt.baseline),
        }
        for rep in range(opt.repeat):
            for row in rows:
                result = actions[row]()
                log(f"[{rep + 1}/{opt.repeat}] {result.row}: {result.wall:.2f} s")
                report.add(result)
        ratios(report, bench, opt)
        if opt.baseline is not None:
            _baseline_ratios(report)
        if opt.profile:
            profile_archiver(bench)
    report.note(
        f"disk: this profile used {gb(disk.used)} at peak ({gb(disk.start)} free before); "
        f"whole profile took {time.monotonic() - began:.0f} s"
    )
    shutil.rmtree(work, ignore_errors=True)
    return report


def _title(name: str, spec: DataSpec, bench: Bench, opt: Options) -> str:
    videos = [a for a in bench.emu.assets if a.kind == "artifact"]
    previews = [a.bytes for a in bench.emu.assets if a.kind == "preview"]
    media = f"video {spec.video} {spec.bitrate or 'crf'} ({videos[0].bytes / 1e6:.2f} MB)"
    if previews:
        low, high = min(previews) / 1e3, max(previews) / 1e3
        media += f", {spec.previews} previews {low:.0f}-{high:.0f} KB"
    wan = ""
    if spec.cdn_rate:
        wan = f"; CDN {spec.cdn_rate / 1e6:g} MB/s per connection, API delay {spec.api_delay} s"
    return (
        f"== {name}: {bench.expect_bytes / 1e6:,.1f} MB in {bench.expect_files} files; {media}"
        f"{wan}\n   medians of {opt.repeat}, {opt.cores} cores, "
        f"emulator in its own process (sendfile{' off: paced' if spec.cdn_rate else ''})"
    )


def _facts(spec: DataSpec, bench: Bench, opt: Options) -> dict[str, object]:
    return {
        "spec": spec.__dict__,
        "bytes": bench.expect_bytes,
        "files": bench.expect_files,
        "videos": sum(a.kind == "artifact" for a in bench.emu.assets),
        "repeat": opt.repeat,
        "cores": opt.cores,
    }


def _tasks_ratios(report: Report, bench: Bench, opt: Options) -> None:
    arch = report.median("archiver", "wall")
    curl = report.median("curl --parallel 16", "wall")
    peer = report.median("shell pipeline", "wall")
    videos = sum(a.kind == "artifact" for a in bench.emu.assets)
    report.ratio(
        "archiver/peer",
        "archiver / shell pipeline (wall)",
        arch / peer,
        at_most=None if opt.wan else 0.55,
    )
    report.ratio(
        "archiver/curl",
        "archiver / curl --parallel 16 (wall)",
        arch / curl,
        at_most=1.1 if opt.wan else None,
    )
    if not opt.wan:
        probe_wall, probe_cpu = bench.ffprobe_cost()
        floor = probe_wall * videos / opt.cores
        report.facts.update(ffprobe_wall=probe_wall, ffprobe_cpu=probe_cpu, floor=floor)
        report.note(
            f"floor: ffprobe {probe_wall * 1e3:.0f} ms/file (CPU {probe_cpu * 1e3:.0f} ms) x "
            f"{videos} videos / {opt.cores} cores = {floor:.2f} s; + curl's time "
            f"{curl:.2f} s if nothing overlapped = {floor + curl:.2f} s"
        )
        report.ratio("archiver/floor", "archiver / floor", arch / floor, at_most=1.2)
        report.ratio("archiver/floor+curl", "archiver / (floor + curl)", arch / (floor + curl))
        # The same cores must also receive, write and serve the bytes: curl's CPU and the
        # server's CPU during curl are the least that costs.
        moving = report.median("curl --parallel 16", "cpu")
        moving += report.median("curl --parallel 16", "server_cpu")
        cpu_floor = (probe_cpu * videos + moving) / opt.cores
        report.facts["cpu_floor"] = cpu_floor
        report.note(
            f"CPU floor: (ffprobe CPU {probe_cpu * videos:.2f} s + curl and server CPU "
            f"{moving:.2f} s) / {opt.cores} cores = {cpu_floor:.2f} s"
        )
        report.ratio("archiver/cpu_floor", "archiver / CPU floor", arch / cpu_floor)
    _cpu_and_memory(report, "curl --parallel 16")
    report.note(
        f"per task: archiver {arch / opt.tasks * 1e3:.1f} ms, shell pipeline "
        f"{peer / opt.tasks * 1e3:.1f} ms, curl {curl / opt.tasks * 1e3:.1f} ms"
    )
    _check_requests(report, bench, opt.tasks)


def _big_ratios(report: Report, bench: Bench, opt: Options) -> None:
    arch = report.median("archiver", "wall")
    curl = report.median("curl --parallel 16", "wall")
    synced = report.median("curl --parallel 16 + sync", "wall")
    report.ratio("archiver/curl", "archiver / curl (wall)", arch / curl)
    report.ratio("archiver/curl+sync", "archiver / (curl + sync) (wall)", arch / synced)
    _cpu_and_memory(report, "curl --parallel 16")
    _check_requests(report, bench, 1)


def _baseline_ratios(report: Report) -> None:
    for key, label in (("wall", "wall"), ("own_cpu", "own CPU")):
        value = report.median("archiver", key) / report.median(BASELINE_ROW, key)
        report.ratio(f"archiver/baseline {key}", f"archiver / baseline ({label})", value)


def _cpu_and_memory(report: Report, curl_row: str) -> None:
    own = report.median("archiver", "own_cpu")
    curl_cpu = report.median(curl_row, "cpu")
    report.ratio(
        "own_cpu/curl_cpu",
        f"archiver own CPU {own:.2f} s / curl CPU {curl_cpu:.2f} s",
        own / curl_cpu,
        at_most=2.0,
    )
    report.target(
        "own_rss_mb",
        "archiver peak RSS (own process)",
        report.median("archiver", "own_rss_mb"),
        "MB",
        100,
    )


def _check_requests(report: Report, bench: Bench, tasks: int) -> None:
    api = report.median("archiver", "api")
    cdn = report.median("archiver", "cdn")
    if (api, cdn) != (tasks, bench.expect_files):
        report.note(
            f"NOTE: the archiver made {api:.0f} API and {cdn:.0f} CDN requests for "
            f"{tasks} tasks and {bench.expect_files} files (retries or refetches)"
        )


def profile_archiver(bench: Bench, top: int = 25) -> None:
    """One more archiver run under cProfile (not in the medians): where its main thread goes."""
    stats_file = bench.work / "archiver.pstats"
    bench.env["BENCH_CPROFILE"] = str(stats_file)
    try:
        result = bench.archiver()
    finally:
        del bench.env["BENCH_CPROFILE"]
    print(
        f"\n== cProfile of one archiver run ({result.wall:.2f} s under the profiler; main "
        "thread only: aiofiles writes and fsyncs run in worker threads)"
    )
    if not stats_file.exists():
        raise BenchError("the profiled archiver run wrote no stats")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(str(stats_file), stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(top)
