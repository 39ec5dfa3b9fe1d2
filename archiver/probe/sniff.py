"""What a file is by its first bytes, as one of our extensions; the extension decides its check.

The pipeline names a downloaded file from its magic bytes (before the URL or Content-Type), and
`probe.is_image` reads that name: one rule for the first check and for re-verification.
"""

from __future__ import annotations

IMAGE_TYPES = frozenset({"jpg", "png", "webp", "gif"})
AUDIO_TYPES = frozenset({"mp3", "m4a", "aac", "wav", "ogg", "flac"})


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
