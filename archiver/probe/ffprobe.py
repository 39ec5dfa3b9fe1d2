"""The ffprobe engine, the default and the reference: one ffprobe process per media file.

ffprobe runs as an asyncio subprocess, not through ffmpeg-python's blocking probe(), which holds
a thread and leaves ffprobe running on timeout; here a timed-out or cancelled ffprobe is killed.
At most `concurrency` run at once: each is a process that loads FFmpeg's libraries anew.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ProbeTimeout, VerifyError
from ..model import ProbeResult
from .compare import require_media

NAME = "ffprobe"
# Only the entries the check reads; ffprobe prints nothing else.
ARGS = (
    "-v",
    "error",
    "-print_format",
    "json",
    "-show_entries",
    "format=format_name,duration:stream=codec_type,codec_name,width,height,avg_frame_rate,duration",
)


def find(binary: str) -> str:
    """The full path of `binary`, found before any request: without it nothing is verified."""
    found = shutil.which(binary)
    if found is None:
        raise ConfigError(
            f"ffprobe not found ({binary!r}): install ffmpeg, or set the config key 'ffprobe'"
        )
    return found


class FFprobe:
    """A Prober: what ffprobe says of a video or audio file."""

    name = NAME

    def __init__(self, *, binary: str, timeout: float, concurrency: int) -> None:
        self.binary = binary
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)

    async def media(self, path: Path) -> ProbeResult:
        """One ffprobe call; unreadable media is a VerifyError, and so is one without a video
        or audio stream; one ffprobe cannot read in time is a ProbeTimeout (it is killed)."""
        async with self._slots:
            data = await self._run(path)
        return require_media(parse(data), NAME)

    async def aclose(self) -> None:
        """Nothing outlives a call: each ffprobe has ended (or been killed) when it returns."""

    async def _run(self, path: Path) -> dict[str, Any]:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.binary,
                *ARGS,
                "--",
                str(path),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:  # removed or broken since the start-up check
            raise VerifyError(f"cannot run ffprobe ({self.binary}): {exc.strerror or exc}") from exc
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate()
        except TimeoutError as exc:
            await _kill(proc)
            late = f"ffprobe did not answer within {self.timeout:g} s (killed)"
            raise ProbeTimeout(late) from exc
        except BaseException:
            await _kill(proc)  # cancelled: never leave an ffprobe behind
            raise
        if proc.returncode != 0:
            reason = err.decode("utf-8", "replace").strip().splitlines()
            raise VerifyError(f"ffprobe cannot read it: {reason[-1] if reason else 'no output'}")
        try:
            data = json.loads(out or b"{}")
        except ValueError as exc:
            raise VerifyError("ffprobe answered something that is not JSON") from exc
        return data if isinstance(data, dict) else {}


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def parse(data: dict[str, Any]) -> ProbeResult:
    """The first video and the first audio stream of ffprobe's JSON; a codec ffprobe cannot
    name is "unknown", so that `codec` is None exactly when there is no video stream."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    main = video or audio or {}
    duration = _number(fmt.get("duration")) or _number(main.get("duration"))
    return ProbeResult(
        format_name=fmt.get("format_name"),
        codec=(video.get("codec_name") or "unknown") if video else None,
        width=(video.get("width") or None) if video else None,  # 0: FFmpeg does not know
        height=(video.get("height") or None) if video else None,
        duration=duration,
        frame_rate=_rate(video.get("avg_frame_rate")) if video else None,
        audio_codec=(audio.get("codec_name") or "unknown") if audio else None,
    )


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except (TypeError, ValueError):
        return None


def _rate(value: Any) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None
