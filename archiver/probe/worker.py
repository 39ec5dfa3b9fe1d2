"""A libav worker process, `python -P .../archiver/probe/worker.py`: PyAV, FFmpeg's libraries.

For each path it reads (a JSON line on stdin) it writes `taken`, then one JSON line with what
it found, until stdin ends. FFmpeg runs here and not in the archiver, so a file that crashes or
hangs it costs this process only: the pool in `libav.py` kills and replaces it. It imports
nothing of the archiver, so that it starts fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any, BinaryIO

import av

READY = b"ready\n"  # written once PyAV is imported: the worker can take a path
TAKEN = b"taken\n"  # written on reading a path, before FFmpeg opens it


def probe(path: str) -> dict[str, Any]:
    """ffprobe's view of the file (see ffprobe.parse): the first video and audio stream."""
    try:
        container = av.open(path)
    except av.FFmpegError as exc:  # PyAV's own errors; a bug elsewhere ends the worker
        return {"error": exc.strerror or str(exc)}
    with container:
        video = next((s for s in container.streams if s.type == "video"), None)
        audio = next((s for s in container.streams if s.type == "audio"), None)
        main = video or audio
        duration = container.duration / av.time_base if container.duration else None
        if not duration and main is not None and main.duration and main.time_base:
            duration = float(main.duration * main.time_base)
        found: dict[str, Any] = {
            "format_name": container.format.name,
            "duration": duration,
            "audio_codec": _codec(audio) if audio is not None else None,
        }
        if isinstance(video, av.VideoStream):
            rate = video.average_rate
            # No codec context: no decoder of this build knows the codec, nor its picture size.
            context = video.codec_context
            found |= {
                "codec": _codec(video),
                "width": (context.width or None) if context is not None else None,
                "height": (context.height or None) if context is not None else None,
                "frame_rate": float(rate) if rate and rate > 0 else None,
            }
        return {"found": found}


def _codec(stream: av.stream.Stream) -> str:
    """The codec's own name (`av1`), as ffprobe prints it, not the decoder's (`libdav1d`)."""
    context = stream.codec_context
    return (context.codec.canonical_name if context is not None else None) or "unknown"


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    answers.write(READY)
    answers.flush()
    for line in requests:
        answers.write(TAKEN)
        answers.flush()
        answers.write(json.dumps(probe(json.loads(line))).encode() + b"\n")
        answers.flush()


if __name__ == "__main__":
    av.logging.set_level(None)  # FFmpeg's own messages would land on the archiver's terminal
    serve(sys.stdin.buffer, sys.stdout.buffer)
