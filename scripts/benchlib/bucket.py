"""The bucket profile: the archiver into an S3 bucket beside the archiver onto disk, same data.

The bucket is moto's S3 server in its own process on loopback (archiver.testing.bucket), so
the bucket row also pays for a store written in Python: its CPU is reported apart.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from archiver.testing.bucket import Endpoint, Inspector, moto_server

from .disk import PeakUse, gb
from .proc import BenchError, run_measured
from .profiles import (
    MARGIN,
    REALISTIC_TASK_BYTES,
    SMALL_TASK_BYTES,
    Options,
    enough_disk,
    log,
    standard_spec,
)
from .report import Report
from .rows import MEDIA_SUFFIXES, WRAPPER, Bench, RunResult, _result, _with_own
from .server import Emulator

BUCKET = "runway-bench"
DISK_ROW = "archiver onto disk"
BUCKET_ROW = "archiver into bucket"


def bucket_profile(opt: Options) -> Report | None:
    small = opt.media == "small" or (opt.media == "auto" and opt.tasks > 2000)
    name = f"bucket (moto over loopback) vs disk, {opt.tasks} tasks"
    # moto keeps the objects (spooled to temp files) while a run lasts: twice the data set.
    per_task = SMALL_TASK_BYTES if small else REALISTIC_TASK_BYTES
    if not enough_disk(opt, 2.2 * opt.tasks * per_task + MARGIN, name):
        return None
    spec = standard_spec(opt.tasks, small=small)
    work = opt.work / "profile"
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with PeakUse(opt.work) as disk, Emulator(spec, work, opt.cache) as emu, moto_server() as s3:
        inspector = Inspector(s3, BUCKET)
        inspector.ensure_bucket()
        bench = Bench(emu, work, opt.cores, opt.timeout or 180 + opt.tasks * 1.0)
        report = Report(_title(name, bench, opt), {"tasks": opt.tasks, "spec": spec.__dict__})
        store_cpu: list[float] = []
        for rep in range(opt.repeat):
            for result in (
                bench.archiver(row=DISK_ROW),
                _into_bucket(bench, s3, inspector, f"run-{rep}", store_cpu),
            ):
                log(f"[{rep + 1}/{opt.repeat}] {result.row}: {result.wall:.2f} s")
                report.add(result)
        _ratios(report, store_cpu)
    report.note(
        f"disk: this profile used {gb(disk.used)} at peak; whole profile took "
        f"{time.monotonic() - began:.0f} s"
    )
    shutil.rmtree(work, ignore_errors=True)
    return report


def _title(name: str, bench: Bench, opt: Options) -> str:
    return (
        f"== {name}: {bench.expect_bytes / 1e6:,.1f} MB in {bench.expect_files} files\n"
        f"   medians of {opt.repeat}, {opt.cores} cores; emulator and moto each in their own "
        "process; default s3_part_size 8 MiB x s3_parts_in_flight 4"
    )


def _into_bucket(
    bench: Bench, s3: Endpoint, inspector: Inspector, prefix: str, store_cpu: list[float]
) -> RunResult:
    """One run into s3://BUCKET/prefix; the objects are counted, then the prefix is emptied."""
    usage = bench.work / "archiver-usage.json"
    config = bench.work / "bucket-config.yaml"
    config.write_text(f"s3_endpoint_url: {s3.url}\n")
    state = bench.work / "bucket-state"
    cmd = [sys.executable, "-c", WRAPPER, str(usage), "run", "-i", str(bench.emu.ids_file)]
    cmd += ["-o", f"s3://{inspector.bucket}/{prefix}", "-c", str(config), "--no-progress"]
    env = {**bench.env, **s3.env(), "XDG_STATE_HOME": str(state)}
    os.sync()
    before, cpu_before = bench.emu.stats(), _cpu_seconds(s3.pid)
    try:
        m = run_measured(cmd, env=env, timeout=bench.timeout, log=bench.work / "bucket.log")
        after = bench.emu.stats()
        store_cpu.append(_cpu_seconds(s3.pid) - cpu_before)
        media = {
            k: v
            for k, v in inspector.objects(prefix + "/").items()
            if Path(k).suffix in MEDIA_SUFFIXES
        }
    finally:
        inspector.clear(prefix + "/")
        shutil.rmtree(state, ignore_errors=True)
    size, count = sum(media.values()), len(media)
    if (size, count) != (bench.expect_bytes, bench.expect_files):
        raise BenchError(
            f"{BUCKET_ROW}: {count} objects, {size} bytes in the bucket; expected "
            f"{bench.expect_files} files, {bench.expect_bytes} bytes"
        )
    seen = after.minus(before)
    result = _result(BUCKET_ROW, m, seen.api, seen.cdn, seen.cpu, size, count, seen.statuses)
    return _with_own(result, json.loads(usage.read_text()))


def _cpu_seconds(pid: int | None) -> float:
    """user + system seconds a process has used so far (/proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ratios(report: Report, store_cpu: list[float]) -> None:
    disk, bucket = report.median(DISK_ROW, "wall"), report.median(BUCKET_ROW, "wall")
    report.ratio("bucket/disk", "into bucket / onto disk (wall)", bucket / disk)
    own = report.median(BUCKET_ROW, "own_cpu") / report.median(DISK_ROW, "own_cpu")
    report.ratio("bucket/disk own_cpu", "into bucket / onto disk (archiver's own CPU)", own)
    if store_cpu:
        store_cpu.sort()
        report.note(
            f"moto's own CPU per bucket run (median): {store_cpu[len(store_cpu) // 2]:.2f} s, "
            "on the same 2 cores"
        )
    # The archiver's 100 MB, and for the bucket the part buffers the README states on top.
    buffers = 8 * 4 * 1024**2 / 1e6
    for row, budget in ((DISK_ROW, 100.0), (BUCKET_ROW, 100.0 + buffers)):
        report.target(
            f"{row} rss", f"{row}: peak RSS (own process)", report.median(row, "own_rss_mb"),
            "MB", budget,
        )  # fmt: skip
