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
from .engines import cpu_floor
from .proc import BenchError
from .report import Report
from .rows import DEFAULT_ENGINE, Bench, RunResult, engine_row
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
    engines: tuple[str, ...] = (DEFAULT_ENGINE,)  # a row of the archiver with each probe engine


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


def tasks_profile(opt: Options, *, memory_only: bool = False) -> Report | None:
    """N tasks into a fresh folder beside curl, aria2c and the shell pipeline; `memory_only`:
    the archiver beside curl alone, for its peak RSS (10,000 tasks: the peer would take hours)."""
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
    if memory_only:
        rows = ["archiver", "curl"]
    ratios = _memory_ratios if memory_only else _tasks_ratios
    return _run_rows(opt, spec, name, timeout, rows, opt.cache, ratios)


def _expand(rows: list[str], opt: Options) -> list[str]:
    """ "archiver" becomes one row per probe engine; "baseline" follows them, with the first."""
    out: list[str] = []
    for row in rows:
        if row == "archiver":
            out += [f"archiver:{engine}" for engine in opt.engines]
            if opt.baseline is not None:
                out.append("baseline")
        else:
            out.append(row)
    return out


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
    rows = [f"archiver:{DEFAULT_ENGINE}", "curl", "curl+sync"]  # memory: one engine is enough
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
    rows = _expand(rows or ["archiver", "curl", "curl+sync", "aria2c", "peer"], opt)
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
            **{f"archiver:{engine}": _with_engine(bench, engine) for engine in opt.engines},
            "curl": bench.curl,
            "curl+sync": lambda: bench.curl(sync=True),
            "aria2c": bench.aria2c,
            "peer": bench.peer,
            "baseline": _with_engine(bench, opt.engines[0], code=opt.baseline),
        }
        for rep in range(opt.repeat):
            for row in rows:
                result = actions[row]()
                log(f"[{rep + 1}/{opt.repeat}] {result.row}: {result.wall:.2f} s")
                report.add(result)
        ratios(report, bench, opt)
        if opt.baseline is not None:
            _baseline_ratios(report, engine_row(opt.engines[0]))
        if opt.profile:
            profile_archiver(bench)
    report.note(
        f"disk: this profile used {gb(disk.used)} at peak ({gb(disk.start)} free before); "
        f"whole profile took {time.monotonic() - began:.0f} s"
    )
    shutil.rmtree(work, ignore_errors=True)
    return report


def _with_engine(bench: Bench, engine: str, *, code: Path | None = None) -> Callable[[], RunResult]:
    """The archiver with `engine`; given `code`, that checkout's, as the baseline row."""
    probe = None if engine == DEFAULT_ENGINE else engine  # no --probe: any checkout runs it
    if code is not None:
        return lambda: bench.archiver(row=BASELINE_ROW, code=code, probe=probe)
    return lambda: bench.archiver(probe=probe)


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


# The targets per probe engine: the share of the shell pipeline's wall on loopback,
# of curl's wall on the WAN profile, and of the engine's CPU floor on loopback.
PEER_TARGET = {"ffprobe": 0.65, "libav": 0.35}
WAN_TARGET = {"ffprobe": 1.1, "libav": 1.05}
CPU_FLOOR_TARGET = {"ffprobe": 1.1}
OWN_CPU_TARGET = 1.3  # the archiver's own CPU (probes apart) / curl's, same bytes, loopback
RSS_TARGET = 100.0


def _tasks_ratios(report: Report, bench: Bench, opt: Options) -> None:
    curl = report.median("curl --parallel 16", "wall")
    peer = report.median("shell pipeline", "wall")
    videos = sum(a.kind == "artifact" for a in bench.emu.assets)
    # The same cores must also receive, write and serve the bytes: curl's CPU and the
    # server's CPU during curl are the least that costs.
    moving = report.median("curl --parallel 16", "cpu")
    moving += report.median("curl --parallel 16", "server_cpu")
    alone = None
    if not opt.wan:
        probe_wall, alone = bench.ffprobe_cost()
        report.facts.update(ffprobe_wall=probe_wall, ffprobe_cpu=alone)
        report.note(
            f"ffprobe alone: {probe_wall * 1e3:.0f} ms/file wall, {alone * 1e3:.0f} ms CPU "
            f"(median of 20, the archiver's arguments)"
        )
    for engine in opt.engines:
        row = engine_row(engine)
        arch = report.median(row, "wall")
        report.ratio(
            f"{row}/peer", f"{row} / shell pipeline (wall)", arch / peer,
            at_most=None if opt.wan else PEER_TARGET.get(engine),
        )  # fmt: skip
        report.ratio(
            f"{row}/curl", f"{row} / curl --parallel 16 (wall)", arch / curl,
            at_most=WAN_TARGET.get(engine) if opt.wan else None,
        )  # fmt: skip
        if not opt.wan:
            isolated = alone if engine == DEFAULT_ENGINE else None
            floor = cpu_floor(
                report, engine, videos=videos, cores=opt.cores, moving=moving, isolated=isolated
            )
            report.ratio(
                f"{row}/cpu_floor", f"{row} / its CPU floor", arch / floor,
                at_most=CPU_FLOOR_TARGET.get(engine),
            )  # fmt: skip
        _cpu_and_memory(report, "curl --parallel 16", row, target=not opt.wan)
        report.note(
            f"per task: {row} {arch / opt.tasks * 1e3:.1f} ms, shell pipeline "
            f"{peer / opt.tasks * 1e3:.1f} ms, curl {curl / opt.tasks * 1e3:.1f} ms"
        )
        _check_requests(report, bench, opt.tasks, row)


def _memory_ratios(report: Report, bench: Bench, opt: Options) -> None:
    for engine in opt.engines:
        row = engine_row(engine)
        _cpu_and_memory(report, "curl --parallel 16", row, target=False)
        _check_requests(report, bench, opt.tasks, row)


def _big_ratios(report: Report, bench: Bench, opt: Options) -> None:
    arch = report.median("archiver", "wall")
    curl = report.median("curl --parallel 16", "wall")
    synced = report.median("curl --parallel 16 + sync", "wall")
    report.ratio("archiver/curl", "archiver / curl (wall)", arch / curl)
    report.ratio("archiver/curl+sync", "archiver / (curl + sync) (wall)", arch / synced)
    _cpu_and_memory(report, "curl --parallel 16", "archiver", target=False)
    _check_requests(report, bench, 1, "archiver")


def _baseline_ratios(report: Report, row: str) -> None:
    """`row` (the archiver with the first engine) against the baseline, which ran that engine."""
    for key, label in (("wall", "wall"), ("own_cpu", "own CPU")):
        value = report.median(row, key) / report.median(BASELINE_ROW, key)
        report.ratio(f"archiver/baseline {key}", f"archiver / baseline ({label})", value)


def _cpu_and_memory(report: Report, curl_row: str, row: str, *, target: bool) -> None:
    own = report.median(row, "own_cpu")
    curl_cpu = report.median(curl_row, "cpu")
    report.ratio(
        f"{row} own_cpu/curl_cpu",
        f"{row} own CPU {own:.2f} s / curl CPU {curl_cpu:.2f} s",
        own / curl_cpu,
        at_most=OWN_CPU_TARGET if target else None,
    )
    report.target(
        f"{row} own_rss_mb",
        f"{row} peak RSS (own process)",
        report.median(row, "own_rss_mb"),
        "MB",
        RSS_TARGET,
    )


def _check_requests(report: Report, bench: Bench, tasks: int, row: str) -> None:
    api = report.median(row, "api")
    cdn = report.median(row, "cdn")
    if (api, cdn) != (tasks, bench.expect_files):
        report.note(
            f"NOTE: {row} made {api:.0f} API and {cdn:.0f} CDN requests for "
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
        "thread only: hashing, writes and fsyncs run in worker threads)"
    )
    if not stats_file.exists():
        raise BenchError("the profiled archiver run wrote no stats")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(str(stats_file), stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(top)
