"""What one probe costs with each engine: CPU seconds (the archiver's process and its children,
ffprobe processes or libav workers) and wall time over N probes of one realistic video.

    .venv/bin/python scripts/probe_cost.py --files 200
    .venv/bin/python scripts/probe_cost.py --files 200 --ffprobe-arg=-probesize --ffprobe-arg=32

The video is the bench's realistic one (1280x768, 24 fps, 5.2 s, H.264 at 16 Mbit/s, ~10 MB),
made once with ffmpeg into --cache. Workers (and ffprobes at once) are one per core, as a run's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

from archiver import probe
from archiver.config import PROBE_ENGINES, Config
from archiver.probe import ffprobe
from archiver.testing.media import MediaLibrary, VideoSpec

REALISTIC = VideoSpec(1280, 768, 24, 5.2, bitrate="16M")


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # counted once waited for
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def measure(config: Config, path: Path, files: int) -> tuple[float, float]:
    """CPU and wall seconds for `files` probes of `path`, the engine started and stopped."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    async with probe.open_prober(config) as prober:
        await asyncio.gather(*(prober.media(path) for _ in range(files)))
    return cpu_seconds() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/runway-archiver-probe-cost"))
    parser.add_argument("--engine", choices=PROBE_ENGINES, action="append")
    parser.add_argument("--ffprobe-arg", action="append", default=[], help="added to ffprobe's")
    args = parser.parse_args()
    ffprobe.ARGS = (*args.ffprobe_arg, *ffprobe.ARGS)
    video = MediaLibrary(args.cache).video(REALISTIC)
    size = f"{video.size / 1e6:.1f} MB"
    print(f"{args.files} probes of {video.path.name} ({size}), {os.cpu_count()} cores")
    for engine in args.engine or PROBE_ENGINES:
        config = probe.ready(dataclasses.replace(Config(), probe=engine))
        cpu, wall = asyncio.run(measure(config, video.path, args.files))
        per = 1000 / args.files
        print(
            f"{engine:8} {cpu:6.2f} CPU-s ({cpu * per:5.1f} ms/file)"
            f"  {wall:6.2f} s wall ({wall * per:5.1f} ms/file)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
