"""What a downloaded file is: images checked in-process, video and audio by a probe engine.

__init__   the Prober interface, the one rule "image or media", the engine chosen once
sniff      the file type from its magic bytes: the extension that decides its check
images     the in-process image check (header dimensions, end marker)
compare    a probe against the API's claims, and against the catalog (`verify`)
ffprobe    the default engine: one ffprobe process per file
libav      the in-process engine: PyAV in a pool of worker processes (worker.py)
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from ..config import Config
from ..model import ProbeResult
from . import ffprobe, libav
from .images import probe_image
from .sniff import IMAGE_TYPES


class Prober(Protocol):
    """A probe engine: what a video or audio file holds, the same fields whatever the engine.

    `media` raises VerifyError for a file that is not readable media (no video or audio stream
    included) and ProbeTimeout for one the engine could not read within `probe_timeout`.
    """

    name: str

    async def media(self, path: Path) -> ProbeResult: ...

    async def aclose(self) -> None: ...


def is_image(ext: str) -> bool:
    """The one rule: a file named as an image (from its magic bytes first) is checked as one;
    anything else goes to the engine."""
    return ext in IMAGE_TYPES


async def examine(
    prober: Prober, path: Path, ext: str, *, head: bytes, tail: bytes, size: int
) -> ProbeResult:
    """What the file at `path` (named `ext`; its first and last bytes, its size) is."""
    if is_image(ext):
        return probe_image(ext, head, tail, size)
    return await prober.media(path)


def ready(config: Config) -> Config:
    """The engine's own check, before any request: ffprobe found (its full path kept), or
    PyAV installed."""
    if config.probe == libav.NAME:
        libav.require()
        return config
    return dataclasses.replace(config, ffprobe=ffprobe.find(config.ffprobe))


@asynccontextmanager
async def open_prober(config: Config) -> AsyncIterator[Prober]:
    """The engine `config.probe` names, for one run or one `verify`; its workers end with it."""
    prober: Prober
    if config.probe == libav.NAME:
        prober = libav.Libav(timeout=config.probe_timeout, workers=config.libav_workers)
    else:
        prober = ffprobe.FFprobe(
            binary=config.ffprobe, timeout=config.probe_timeout, concurrency=config.probes
        )
    try:
        yield prober
    finally:
        await prober.aclose()
