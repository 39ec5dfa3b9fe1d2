"""`verify`: re-check each file the catalog vouches for: present, same bytes and hash, still media.

Damaged files are reported by path; with --repair their tasks are marked and archived again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import files, verify
from .bounded import for_each
from .errors import StorageError, VerifyError
from .model import ArchivedFile, ProbeResult


@dataclass(frozen=True, slots=True)
class Damage:
    task_id: str
    path: str  # relative to the archive root
    reason: str


async def check_archive(
    root: Path,
    entries: Sequence[tuple[str, ArchivedFile]],
    *,
    workers: int,
    probe_timeout: float,
    on_checked: Callable[[], object] = lambda: None,
) -> tuple[int, list[Damage]]:
    """How many of `entries` (task id, file) were checked, and what is wrong, in their order."""
    found: dict[int, Damage] = {}

    async def one(item: tuple[int, tuple[str, ArchivedFile]]) -> None:
        n, (task_id, archived) = item
        reason = await check_file(root / archived.path, archived, probe_timeout=probe_timeout)
        if reason:
            found[n] = Damage(task_id, archived.path, reason)
        on_checked()

    await for_each(enumerate(entries), one, limit=workers)
    return len(entries), [found[n] for n in sorted(found)]


async def check_file(path: Path, archived: ArchivedFile, *, probe_timeout: float) -> str | None:
    """None when the file is as archived, else the reason it is not."""
    size = files.file_size(path)
    if size is None:
        return "missing"
    if size != archived.size:
        return f"size {size} bytes, catalog says {archived.size}"
    try:
        hasher, _ = await asyncio.to_thread(files.hash_file, path)
    except OSError as exc:
        raise StorageError(f"{path}: {exc.strerror or exc}") from exc
    if hasher.hexdigest() != archived.sha256:
        return "content changed (sha256 differs from the catalog)"
    try:
        probe = await _probe(path, archived.probe, size, probe_timeout)
    except VerifyError as exc:
        return f"no longer readable media: {exc}"
    if (probe.width, probe.height, probe.duration) != (
        archived.probe.width, archived.probe.height, archived.probe.duration
    ):  # fmt: skip
        return "media properties changed since it was archived"
    return None


async def _probe(path: Path, before: ProbeResult, size: int, timeout: float) -> ProbeResult:
    if before.duration is None and before.frame_rate is None:
        head, tail = await asyncio.to_thread(files.read_head_tail, path)
        return verify.probe_image(verify.sniff(head) or "", head, tail, size)
    return await verify.probe_video(path, timeout=timeout)


def write_report(path: Path, checked: int, damaged: list[Damage], repaired: set[str]) -> None:
    doc = {
        "summary": {"checked": checked, "damaged": len(damaged), "repaired": len(repaired)},
        "damaged": [
            {
                "task_id": d.task_id,
                "path": d.path,
                "reason": d.reason,
                "repaired": d.path in repaired,
            }
            for d in damaged
        ],
    }
    files.atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8"))
