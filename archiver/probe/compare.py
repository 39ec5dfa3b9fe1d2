"""A probe held against the API's claims (the first check) and against the catalog (`verify`).

Both use the same tolerances: two engines, or two versions of one, may differ in the last digits
of a duration, and neither must turn an archived file into a damaged one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..errors import VerifyError
from ..model import Artifact, ProbeResult
from .sniff import AUDIO_TYPES


@dataclass(frozen=True, kw_only=True)
class Tolerances:
    duration: float = 0.1  # seconds
    frame_rate: float = 0.01  # fraction of the claimed rate

    @classmethod
    def from_config(cls, config: Config) -> Tolerances:
        return cls(duration=config.duration_tolerance, frame_rate=config.frame_rate_tolerance)


def check_input(ext: str, probe: ProbeResult) -> None:
    """An input named as audio must hold audio, one named as video must hold video."""
    if ext in AUDIO_TYPES and probe.audio_codec is None:
        raise VerifyError(f"{ext} without an audio stream")
    if ext not in AUDIO_TYPES and ext != "bin" and probe.codec is None:
        raise VerifyError(f"{ext} without a video stream")


def require_media(probe: ProbeResult, engine: str) -> ProbeResult:
    """What an engine found is media only with a video or an audio stream."""
    if probe.codec is None and probe.audio_codec is None:
        raise VerifyError(f"{engine} found no video or audio stream")
    return probe


def require_video(probe: ProbeResult, engine: str) -> None:
    """A generation's media file is a video: sound alone is not one."""
    if probe.codec is None:
        raise VerifyError(f"{engine} found no video stream")


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
        raise VerifyError(f"dimensions {_size(probe)}, API says {artifact.width}x{artifact.height}")
    if probe.duration is None and probe.frame_rate is None:
        if artifact.duration is not None:
            raise VerifyError(f"a still image, API says {artifact.duration:.2f} s of video")
        return tuple(unchecked)  # a still image: duration and frame rate do not apply
    if artifact.duration is None:
        unchecked.append("duration")
    elif not _close(probe.duration, artifact.duration, tol.duration):
        raise VerifyError(
            f"duration {_seconds(probe.duration)}, API says {artifact.duration:.2f} s"
        )
    if artifact.frame_rate is None:
        unchecked.append("frameRate")
    elif not _close(probe.frame_rate, artifact.frame_rate, artifact.frame_rate * tol.frame_rate):
        raise VerifyError(
            f"frame rate {_fps(probe.frame_rate)}, API says {artifact.frame_rate:.2f} fps"
        )
    return tuple(unchecked)


def changed(before: ProbeResult, now: ProbeResult, tol: Tolerances) -> bool:
    """Re-verification: the dimensions and the duration (within tolerance) the catalog holds."""
    if (now.width, now.height) != (before.width, before.height):
        return True
    if before.duration is None or now.duration is None:
        return before.duration != now.duration
    return not _close(now.duration, before.duration, tol.duration)


def _close(measured: float | None, claimed: float, tolerance: float) -> bool:
    return measured is not None and abs(measured - claimed) <= tolerance


def _size(probe: ProbeResult) -> str:
    return "unknown" if probe.width is None else f"{probe.width}x{probe.height}"


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} s"


def _fps(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} fps"
