"""The rerun profile: an archive that knows N tasks, run again over all N ids.

Archiving 100,000 tasks for real would take 100,000 ffprobes, so a few tasks with tiny media are
archived for real and the rest are written through Catalog.record_many, shaped like the real rows,
each with a folder of hard links to a real task's files (the rerun stats every file it skips).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import sys
import time
import uuid
from pathlib import Path

from archiver import sidecar
from archiver.catalog import Access, TaskRow, open_catalog
from archiver.config import Config
from archiver.model import ArchivedFile, State, TaskOutcome
from archiver.testing.tasks import new_task_id
from archiver.timespec import now

from .disk import PeakUse, gb
from .proc import run_measured
from .profiles import MARGIN, SMALL, Options, enough_disk, log
from .report import Report
from .rows import Bench, RunResult
from .server import DataSpec, Emulator

REAL_TASKS = 100
RERUN_S = 15.0  # the bounds at 1,000,000 ids (the disk check included)
STATUS_S = 5.0
RSS_MB = 150.0
STATUS_ROW = "status"
FILL_BATCH = 10_000  # tasks per record_many: one transaction each
_PREFIX = new_task_id()[0].rpartition("-task:")[0] + "-task:"  # the synthetic ids' user and email


def rerun_profile(opt: Options, count: int) -> Report | None:
    if not enough_disk(opt, count * 3000 + MARGIN, f"rerun over {count} ids"):
        return None
    real = min(count, REAL_TASKS)
    spec = DataSpec(
        tasks=real, video=SMALL, bitrate=None, variants=2, previews=3, full_previews=False
    )
    work = opt.work / "profile"
    work.mkdir(parents=True, exist_ok=True)
    archive = work / "archive"
    began = time.monotonic()
    with PeakUse(opt.work) as disk, Emulator(spec, work, opt.cache) as emu:
        bench = Bench(emu, work, opt.cores, opt.timeout or 600)
        first = bench.archiver(out=archive, row="fill: archive tiny tasks")
        log(f"archived {real} tiny tasks for real in {first.wall:.2f} s")
        started = time.monotonic()
        ids = [emu.ids_file.read_text()] + [f"{i}\n" for i in fill_catalog(archive, count - real)]
        filled = time.monotonic() - started
        log(f"wrote {count - real} rows through Catalog.record_many in {filled:.1f} s")
        all_ids = work / "all-ids.txt"
        all_ids.write_text("".join(ids))
        title = (
            f"== rerun over {count:,} archived task ids ({real} archived for real with tiny media, "
            f"{count - real:,} written through Catalog.record_many)\n   medians of {opt.repeat}, "
            f"{opt.cores} cores; catalog {gb(catalog_bytes(archive))} on disk"
        )
        report = Report(title, {"count": count, "real": real, "fill_seconds": filled})
        report.add(first)
        row = f"rerun, {count:,} ids"
        for rep in range(opt.repeat):
            result = bench.archiver(ids=all_ids, out=archive, row=row)
            log(
                f"[{rep + 1}/{opt.repeat}] {row}: {result.wall:.2f} s, {result.api} API and "
                f"{result.cdn} CDN requests"
            )
            report.add(result)
        for rep in range(opt.repeat):
            shown = _status(opt, archive, work)
            log(f"[{rep + 1}/{opt.repeat}] {shown.row}: {shown.wall:.2f} s")
            report.add(shown)
        report.target("rerun_wall", "rerun wall", report.median(row, "wall"), "s", RERUN_S)
        report.target(
            "rerun_requests",
            "requests the emulator saw during the reruns",
            max(r.api + r.cdn for r in report.runs[row]),
            "",
            0,
        )
        report.target(
            "rerun_rss", "rerun peak RSS (own process)", report.median(row, "own_rss_mb"), "MB",
            RSS_MB,
        )  # fmt: skip
        report.target("status_wall", "status wall", report.median(STATUS_ROW, "wall"), "s",
                      STATUS_S)  # fmt: skip
        report.target("status_rss", "status peak RSS", report.median(STATUS_ROW, "rss_mb"), "MB",
                      RSS_MB)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    report.note(
        f"disk: this profile used {gb(disk.used)} at peak; whole profile took "
        f"{time.monotonic() - began:.0f} s"
    )
    return report


def _status(opt: Options, archive: Path, work: Path) -> RunResult:
    """`runway-archiver status` on the archive: its own process, the listing to a file."""
    cmd = [sys.executable, "-m", "archiver", "status", "-o", str(archive)]
    m = run_measured(cmd, timeout=opt.timeout or 600, log=work / "status.log")
    return RunResult(STATUS_ROW, m.wall, m.cpu, m.max_rss_kb / 1024, 0, 0, 0.0, 0, 0)


def fill_catalog(archive: Path, count: int) -> list[str]:
    """`count` more archived tasks, each with the files of a real one under its own folder,
    written through the catalog's bulk `record_many`; their ids in random order."""
    return asyncio.run(_fill(archive, count))


async def _fill(archive: Path, count: int) -> list[str]:
    async with open_catalog(Config(output_dir=archive), Access.WRITE) as catalog:
        # Rotating over the real tasks keeps each file under ext4's 65,000 links.
        archived = [r async for r in catalog.tasks(states=[State.ARCHIVED])]
        templates = [(t, await catalog.files(t.task_id)) for t in archived]
        # Written in key order the catalog's B-trees grow at their end (measured: 2.4x faster
        # than random keys); the rerun reads the ids in random order, as a real list names them.
        uuids = sorted(str(uuid.uuid4()) for _ in range(count))
        stamp = now()
        for start in range(0, count, FILL_BATCH):
            batch = [
                (_synthetic(archive, u, *templates[n % len(templates)]), None)
                for n, u in enumerate(uuids[start : start + FILL_BATCH], start)
            ]
            await catalog.record_many(batch, now=stamp)
    ids = [_PREFIX + u for u in uuids]
    random.shuffle(ids)
    return ids


def _synthetic(
    archive: Path, task_uuid: str, template: TaskRow, files: list[ArchivedFile]
) -> TaskOutcome:
    """Task `task_uuid`, archived: a folder of hard links to `template`'s files (the rerun's
    stat sees real files, no bytes copied), recorded as the template is."""
    assert template.dir is not None
    folder = f"2024-08-01_Gen-3-Alpha-synthetic_{task_uuid}"
    source, target = f"{archive}/{template.dir}/", f"{archive}/{folder}/"
    os.mkdir(target)
    for name in [*(f.path.partition("/")[2] for f in files), sidecar.NAME]:
        os.link(source + name, target + name)
    moved = tuple(
        dataclasses.replace(f, path=f"{folder}/{f.path.partition('/')[2]}") for f in files
    )
    return TaskOutcome(
        _PREFIX + task_uuid, State.ARCHIVED, "SUCCEEDED", folder, f"{folder}/{sidecar.NAME}",
        moved, sidecar_bytes=template.sidecar_bytes,
    )  # fmt: skip


def catalog_bytes(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.glob("catalog.sqlite3*"))
