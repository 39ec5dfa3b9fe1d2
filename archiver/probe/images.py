"""The in-process image check: dimensions from the header, the end marker from the tail.

No engine runs for an image: the bytes the download already holds (head and tail) decide.
"""

from __future__ import annotations

import struct

from ..errors import VerifyError
from ..model import ProbeResult


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
