"""Is a downloaded file what the API claimed? ffprobe for video and audio, headers for images.

ffprobe runs as an asyncio subprocess, not through ffmpeg-python's blocking probe(), which holds
a thread and leaves ffprobe running on timeout; here a timed-out ffprobe is killed.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import ProbeTimeout, VerifyError
from .model import Artifact, ProbeResult

IMAGE_TYPES = frozenset({"jpg", "png", "webp", "gif"})
AUDIO_TYPES = frozenset({"mp3", "m4a", "aac", "wav", "ogg", "flac"})
FFPROBE_ARGS = (
    "-v",
    "error",
    "-print_format",
    "json",
    "-show_entries",
    "format=format_name,duration:stream=codec_type,codec_name,width,height,avg_frame_rate,duration",
)


@dataclass(frozen=True, kw_only=True)
class Tolerances:
    duration: float = 0.1  # seconds
    frame_rate: float = 0.01  # fraction of the claimed rate


def sniff(head: bytes) -> str | None:
    """The file type from its magic bytes, as one of our extensions."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[4:8] == b"ftyp":
        return {b"qt  ": "mov", b"M4A ": "m4a"}.get(head[8:12], "mp4")
    return _sniff_audio(head)


def _sniff_audio(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return "aac"  # ADTS
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    return None


async def probe_video(path: Path, *, timeout: float, ffprobe: str = "ffprobe") -> ProbeResult:
    """One ffprobe call; a file it cannot read, or without a video stream, is a VerifyError."""
    probe = await probe_media(path, timeout=timeout, ffprobe=ffprobe)
    if probe.codec is None:
        raise VerifyError("ffprobe found no video stream")
    return probe


async def probe_media(path: Path, *, timeout: float, ffprobe: str = "ffprobe") -> ProbeResult:
    """One ffprobe call, for video and audio streams alike; unreadable media is a VerifyError,
    and so is one ffprobe cannot read in time."""
    try:
        proc = await asyncio.create_subprocess_exec(
            ffprobe,
            *FFPROBE_ARGS,
            "--",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:  # removed or broken since the start-up check
        raise VerifyError(f"cannot run ffprobe ({ffprobe}): {exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError as exc:
        await _kill(proc)
        raise ProbeTimeout(f"ffprobe did not answer within {timeout:g} s (killed)") from exc
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
    return parse_ffprobe(data if isinstance(data, dict) else {})


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def parse_ffprobe(data: dict[str, Any]) -> ProbeResult:
    """The first video and the first audio stream; a file with neither is not media."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise VerifyError("ffprobe found no video or audio stream")
    main = video or audio or {}
    duration = _number(fmt.get("duration")) or _number(main.get("duration"))
    return ProbeResult(
        format_name=fmt.get("format_name"),
        codec=video.get("codec_name") if video else None,
        width=video.get("width") if video else None,
        height=video.get("height") if video else None,
        duration=duration,
        frame_rate=_rate(video.get("avg_frame_rate")) if video else None,
        audio_codec=(audio.get("codec_name") or "unknown") if audio else None,
    )


def check_input(ext: str, probe: ProbeResult) -> None:
    """An input named as audio must hold audio, one named as video must hold video."""
    if ext in AUDIO_TYPES and probe.audio_codec is None:
        raise VerifyError(f"{ext} without an audio stream")
    if ext not in AUDIO_TYPES and ext != "bin" and probe.codec is None:
        raise VerifyError(f"{ext} without a video stream")


def probe_image(kind: str, head: bytes, tail: bytes, size: int) -> ProbeResult:
    """Dimensions from the header and the end marker from the tail: a cut or foreign body fails."""
    if kind == "webp" and int.from_bytes(head[4:8], "little") + 8 > size:
        raise VerifyError("webp is cut short (RIFF size beyond the end)")
    parse = {"jpg": _jpeg, "png": _png, "webp": _webp, "gif": _gif}.get(kind)
    if parse is None:
        raise VerifyError("not an image (unknown magic bytes)")
    try:
        width, height = parse(head, tail)
    except (struct.error, IndexError, ValueError) as exc:
        raise VerifyError(f"{kind} header unreadable") from exc
    if width <= 0 or height <= 0:
        raise VerifyError(f"{kind} has no dimensions")
    return ProbeResult(kind, kind, width, height, None, None)


def compare(artifact: Artifact, size: int, probe: ProbeResult, tol: Tolerances) -> tuple[str, ...]:
    """Raise VerifyError on the first disagreement; return the claims the API left out.

    `hasAudio` is only in the 2025 shape: when absent it is not listed as unchecked.
    """
    unchecked: list[str] = []
    if artifact.has_audio is True and probe.audio_codec is None:
        raise VerifyError("no audio stream, API says hasAudio: true")
    if artifact.has_audio is False and probe.audio_codec is not None:
        raise VerifyError(f"an audio stream ({probe.audio_codec}), API says hasAudio: false")
    if artifact.file_size is None:
        unchecked.append("fileSize")
    elif size != artifact.file_size:
        raise VerifyError(f"size {size} bytes, API says {artifact.file_size}")
    if artifact.width is None or artifact.height is None:
        unchecked.append("dimensions")
    elif (probe.width, probe.height) != (artifact.width, artifact.height):
        raise VerifyError(
            f"dimensions {probe.width}x{probe.height}, API says {artifact.width}x{artifact.height}"
        )
    if probe.duration is None and probe.frame_rate is None:
        if artifact.duration is not None:
            raise VerifyError(f"a still image, API says {artifact.duration:.2f} s of video")
        return tuple(unchecked)  # a still image: duration and frame rate do not apply
    if artifact.duration is None:
        unchecked.append("duration")
    elif probe.duration is None or abs(probe.duration - artifact.duration) > tol.duration:
        raise VerifyError(
            f"duration {_seconds(probe.duration)}, API says {artifact.duration:.2f} s"
        )
    if artifact.frame_rate is None:
        unchecked.append("frameRate")
    elif (
        probe.frame_rate is None
        or abs(probe.frame_rate - artifact.frame_rate) > artifact.frame_rate * tol.frame_rate
    ):
        raise VerifyError(
            f"frame rate {_fps(probe.frame_rate)}, API says {artifact.frame_rate:.2f} fps"
        )
    return tuple(unchecked)


def _jpeg(head: bytes, tail: bytes) -> tuple[int, int]:
    # Scan data stuffs every 0xFF, so FFD9 near the end can only be the real end-of-image marker.
    if b"\xff\xd9" not in tail:
        raise VerifyError("jpg is cut short (no end-of-image marker)")
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            raise ValueError("lost marker sync")
        marker = head[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = struct.unpack(">H", head[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise ValueError("no frame header in the first bytes")


def _png(head: bytes, tail: bytes) -> tuple[int, int]:
    if not tail.endswith(b"IEND\xaeB`\x82"):
        raise VerifyError("png is cut short (no IEND chunk)")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _webp(head: bytes, tail: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    raise ValueError("unknown WebP chunk")


def _gif(head: bytes, tail: bytes) -> tuple[int, int]:
    if not tail.endswith(b"\x3b"):
        raise VerifyError("gif is cut short (no trailer)")
    width, height = struct.unpack("<HH", head[6:10])
    return width, height


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


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} s"


def _fps(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} fps"
