"""The archiver's probe engines: which ones the checkout under test offers, and the CPU floor a
run with each cannot go below (its probes plus moving the bytes, spread over the cores).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from .report import Report
from .rows import DEFAULT_ENGINE, engine_row

ENGINES = (DEFAULT_ENGINE, "libav")


def available(wanted: tuple[str, ...], code: Path | None = None) -> tuple[list[str], list[str]]:
    """The engines of `wanted` this checkout offers, and a note for each it does not.

    ffprobe is always there (the bench installs it); libav needs `run --probe` in the
    archiver and PyAV installed (`runway-archiver[libav]`).
    """
    found, notes = [], []
    for engine in wanted:
        if engine == DEFAULT_ENGINE:
            found.append(engine)
        elif not _takes_probe_flag(code):
            notes.append(f"no row for --probe {engine}: this archiver has no --probe option")
        elif importlib.util.find_spec("av") is None:
            notes.append(f"no row for --probe {engine}: PyAV is not installed (pip install av)")
        else:
            found.append(engine)
    return found, notes


def _takes_probe_flag(code: Path | None) -> bool:
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    shown = subprocess.run(
        [sys.executable, "-m", "archiver", "run", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return "--probe" in shown.stdout


def cpu_floor(
    report: Report,
    engine: str,
    *,
    videos: int,
    cores: int,
    moving: float,
    isolated: float | None = None,
) -> float:
    """(probe CPU of `videos` + the CPU of moving the bytes) / cores, for `engine`'s row.

    `isolated`: one probe's CPU measured alone (ffprobe); otherwise the CPU the run's own
    probe processes used (children of the archiver: ffprobe, or libav's worker pool).
    """
    row = engine_row(engine)
    if isolated is not None:
        probes, how = isolated * videos, f"{isolated * 1e3:.0f} ms alone x {videos} videos"
    else:
        probes, how = report.median(row, "probe_cpu"), "its probe processes during the run"
    floor = (probes + moving) / cores
    report.facts.setdefault("cpu_floor", {})[engine] = floor
    report.note(
        f"CPU floor, {engine}: (probe CPU {probes:.2f} s [{how}] + curl and server CPU "
        f"{moving:.2f} s) / {cores} cores = {floor:.2f} s"
    )
    return floor
