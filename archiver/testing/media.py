"""Real test media made once with ffmpeg (via ffmpeg-python) and cached on disk by spec.

Each file is measured with ffprobe and its metadata kept as JSON next to it, so reruns are free.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

# Hue steps that are far apart, so neighbouring variants differ visibly and byte-wise.
_HUE_STEP = 67
# Video codec -> the encoder and its options: fast settings, the content does not matter.
_ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {}),
    "hevc": ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "b:v": "200k"}),
    "av1": ("libaom-av1", {"cpu-used": "8", "row-mt": "1", "b:v": "200k"}),
}
# Container -> the video codecs its muxer takes (ffmpeg 5.1's mov takes no VP9 or AV1, WebM
# only VP8, VP9 and AV1), its audio codec and its Content-Type.
CONTAINERS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "mp4": (("h264", "hevc", "vp9", "av1"), "aac", "video/mp4"),
    "mov": (("h264", "hevc"), "aac", "video/quicktime"),
    "webm": (("vp9", "av1"), "libopus", "video/webm"),
}


@dataclass(frozen=True)
class VideoSpec:
    """What to render: size, frame rate, length, a content variant, a CBR rate (H.264 only),
    a sound track (AAC, or Opus in WebM), the video codec and the container."""

    width: int = 320
    height: int = 192
    fps: int = 24
    seconds: float = 2.0
    variant: int = 0
    bitrate: str | None = None
    audio: bool = False  # a sine tone as a sound track beside the video
    codec: str = "h264"  # a key of _ENCODERS
    container: str = "mp4"  # a key of CONTAINERS, whose muxer takes `codec`
    faststart: bool = True  # MP4/MOV: the index (moov) first, as web video is; else at the end

    def key(self) -> str:
        """A file-name-safe, unique key for this spec."""
        rate = self.bitrate or "crf"
        sound = f"-{CONTAINERS[self.container][1].removeprefix('lib')}" if self.audio else ""
        codec = "" if self.codec == "h264" else f"-{self.codec}"
        index = "" if self.faststart else "-moovlast"
        return (
            f"video-{self.width}x{self.height}-{self.fps}-{self.seconds:g}s-v{self.variant}-{rate}"
            + sound
            + codec
            + index
        )


def can_encode(codec: str) -> bool:
    """Whether this machine's ffmpeg has the encoder the emulator uses for `codec`."""
    return f" {_ENCODERS[codec][0]} " in _encoders()


@functools.cache
def _encoders() -> str:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout


@dataclass(frozen=True)
class Media:
    """A real file on disk and what ffprobe says about it."""

    path: Path
    size: int
    content_type: str
    width: int
    height: int
    duration: float | None
    fps: float | None
    audio: bool = False  # ffprobe sees an audio stream


class MediaLibrary:
    """Makes videos and images on demand and reuses them from `cache_dir` across runs."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # One lock: seeding happens from one thread at a time in practice, and rendering the
        # same spec twice in parallel would only waste CPU.
        self._lock = threading.Lock()
        self._memo: dict[str, Media] = {}

    def video(self, spec: VideoSpec) -> Media:
        """Return a video rendered from `spec` (H.264 in MP4 by default), made if not cached."""
        codecs, _, content_type = CONTAINERS[spec.container]
        if spec.codec not in codecs:
            raise ValueError(f"{spec.container} does not take {spec.codec}")
        path = self.cache_dir / f"{spec.key()}.{spec.container}"
        return self._get(path, content_type, lambda tmp: _render_video(spec, tmp))

    def image(
        self, width: int, height: int, variant: int = 0, *, png: bool = False, noise: int = 0
    ) -> Media:
        """Return a one-frame JPEG (or PNG) of the given size and variant.

        `noise` (0-100) adds grain, which compresses like real footage: at 1280x768 a JPEG of
        noise 10-14 is 70-120 KB, where the clean test pattern is 45 KB.
        """
        ext, ctype = ("png", "image/png") if png else ("jpg", "image/jpeg")
        grain = f"-n{noise}" if noise else ""
        path = self.cache_dir / f"image-{width}x{height}-v{variant}{grain}.{ext}"
        return self._get(
            path, ctype, lambda tmp: _render_image(width, height, variant, png, tmp, noise)
        )

    def audio(self, seconds: float = 2.0, variant: int = 0, *, wav: bool = False) -> Media:
        """Return an audio-only file: AAC in an M4A container, or PCM in a WAV one."""
        ext, ctype = ("wav", "audio/wav") if wav else ("m4a", "audio/mp4")
        path = self.cache_dir / f"audio-{seconds:g}s-v{variant}.{ext}"
        return self._get(path, ctype, lambda tmp: _render_audio(seconds, variant, wav, tmp))

    def _get(self, path: Path, content_type: str, render: Callable[[Path], None]) -> Media:
        with self._lock:
            key = str(path)
            if key in self._memo:
                return self._memo[key]
            meta_path = path.with_name(path.name + ".json")
            media = _load_meta(path, meta_path)
            if media is None:
                if not path.exists():
                    _atomic(path, render)
                media = _measure(path, content_type)
                _atomic_text(meta_path, json.dumps(_meta_json(media)))
            self._memo[key] = media
            return media


def _render_video(spec: VideoSpec, out: Path) -> None:
    src = f"testsrc2=size={spec.width}x{spec.height}:rate={spec.fps}:duration={spec.seconds:g}"
    stream = ffmpeg.input(src, f="lavfi")
    if spec.variant:
        stream = stream.filter("hue", h=(spec.variant * _HUE_STEP) % 360)
    encoder, opts = _ENCODERS[spec.codec]
    if spec.bitrate:
        # Real Gen-3 files are ~16 Mbit/s; a synthetic pattern compresses far better, so
        # force CBR with filler data to get realistic sizes for the benchmark.
        opts = {
            "b:v": spec.bitrate,
            "minrate": spec.bitrate,
            "maxrate": spec.bitrate,
            "bufsize": spec.bitrate,
            "x264-params": "nal-hrd=cbr:force-cfr=1",
            "preset": "veryfast",
        }
    streams = [stream]
    muxing: dict[str, str | None] = {}
    if spec.audio:
        tone = 220 * (spec.variant + 2)
        streams.append(ffmpeg.input(f"sine=frequency={tone}:duration={spec.seconds:g}", f="lavfi"))
        muxing = {"acodec": CONTAINERS[spec.container][1], "shortest": None}
    if spec.container != "webm" and spec.faststart:
        muxing["movflags"] = "+faststart"
    ffmpeg.output(
        *streams,
        str(out),
        f=spec.container,
        vcodec=encoder,
        pix_fmt="yuv420p",
        **opts,
        **muxing,
    ).overwrite_output().run(quiet=True)


def _render_audio(seconds: float, variant: int, wav: bool, out: Path) -> None:
    tone = ffmpeg.input(f"sine=frequency={330 + 110 * variant}:duration={seconds:g}", f="lavfi")
    # "ipod" is ffmpeg's M4A muxer: the ftyp brand audio players (and sniffers) expect.
    codec = {"f": "wav", "acodec": "pcm_s16le"} if wav else {"f": "ipod", "acodec": "aac"}
    tone.output(str(out), **codec).overwrite_output().run(quiet=True)


def _render_image(
    width: int, height: int, variant: int, png: bool, out: Path, noise: int = 0
) -> None:
    stream = ffmpeg.input(f"testsrc2=size={width}x{height}:rate=1:duration=1", f="lavfi")
    if variant:
        stream = stream.filter("hue", h=(variant * _HUE_STEP) % 360)
    if noise:
        stream = stream.filter("noise", alls=noise, allf="u")
    codec = {"vcodec": "png"} if png else {"vcodec": "mjpeg", "q:v": "4", "pix_fmt": "yuvj420p"}
    stream.output(str(out), f="image2", vframes=1, update=1, **codec).overwrite_output().run(
        quiet=True
    )


def _measure(path: Path, content_type: str) -> Media:
    info = ffmpeg.probe(str(path))
    kinds = {s.get("codec_type"): s for s in reversed(info["streams"])}
    video = kinds.get("video") or {}
    duration: float | None = None
    fps: float | None = None
    if not content_type.startswith("image/"):
        # The format duration is what the API reports (5.209 for a 5.208333 s stream).
        duration = float(info["format"]["duration"])
    if content_type.startswith("video/"):
        fps = float(Fraction(video["avg_frame_rate"]))
    return Media(
        path=path,
        size=path.stat().st_size,
        content_type=content_type,
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        duration=duration,
        fps=fps,
        audio="audio" in kinds,
    )


def _meta_json(media: Media) -> dict[str, Any]:
    data = asdict(media)
    data["path"] = media.path.name
    return data


def _load_meta(path: Path, meta_path: Path) -> Media | None:
    if not (path.exists() and meta_path.exists()):
        return None
    try:
        data = json.loads(meta_path.read_text())
        media = Media(**{**data, "path": path})
    except (ValueError, TypeError):
        return None
    # A size mismatch means the file was replaced behind our back: measure it again.
    return media if media.size == path.stat().st_size else None


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _atomic(path: Path, render: Callable[[Path], None]) -> None:
    tmp = _tmp_name(path)
    try:
        render(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text)

    _atomic(path, write)
