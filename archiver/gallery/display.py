"""What the gallery shows of a task, as compact JSON texts: pure functions, no I/O.

Made once when a task is archived (from the task and the files the catalog records for it) and
stored in the catalog, so that a build only joins finished texts: seconds for 100,000 tasks.
`fingerprint` tells the build when the files changed since, and the texts must be made again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..catalog.rows import DisplayRow
from ..model import HOLDING_FILES, ArchivedFile, FileKind, Task
from ..scrub import redact

# Bump when the stored texts change shape: older rows are made again from the sidecars.
VERSION = 2
SHOWN_STATES = HOLDING_FILES
# A card is one JSON array in this order (gallery.js reads the names from data.js).
CARD_COLUMNS = (
    "dir", "name", "prompt", "model", "created", "status", "error", "seed",
    "thumb", "video", "duration", "width", "height", "inputs", "shard",
)  # fmt: skip
# Untrusted text from the API can be of any length: a card keeps what a person reads and
# searches; an option value past its cap is cut (the sidecar has it whole).
MAX_NAME = 300
MAX_PROMPT = 2000
MAX_VALUE = 4000
MAX_OPTIONS = 400
_PROMPT_KEYS = ("text_prompt", "textPrompt")
SHARDS = frozenset(f"{n:02x}" for n in range(256))
_KIND_ORDER = {FileKind.ARTIFACT: 0, FileKind.PREVIEW: 1, FileKind.INPUT: 2}


def fingerprint(count: int, size: int) -> str:
    """How many files a task has and their bytes: what the catalog can compare in one scan."""
    return f"{count}:{size}"


def of_task(task: Task, folder: str, files: Sequence[ArchivedFile]) -> DisplayRow:
    """The display row of a task archived in `folder` with `files`; URLs in it are redacted."""
    options = task.options or {}
    # Outputs by artifact, each with its previews, then the inputs (of the task as a whole).
    ordered = sorted(
        files,
        key=lambda f: (f.kind is FileKind.INPUT, f.artifact_index, _KIND_ORDER[f.kind], f.path),
    )
    artifacts = [f for f in ordered if f.kind is FileKind.ARTIFACT]
    video = next((f for f in artifacts if f.probe.duration is not None), None)
    thumb = next((f for f in ordered if f.kind is FileKind.PREVIEW), None) or next(
        (f for f in artifacts if f.probe.duration is None), None
    )
    first = artifacts[0].probe if artifacts else None
    key = shard(folder)
    card = [
        folder,
        _cut(task.name, MAX_NAME),
        _cut(prompt_of(options), MAX_PROMPT),
        task.task_type,
        task.created_at,
        task.status,
        _cut(task.error_message, MAX_VALUE),
        seed_of(options),
        _inside(folder, thumb),
        _inside(folder, video),
        first.duration if first else None,
        first.width if first else None,
        first.height if first else None,
        sum(f.kind is FileKind.INPUT for f in files),
        key,
    ]
    detail = {
        "task": {
            "taskId": task.task_id,
            "id": task.id,
            "updated": task.updated_at,
            "options": flatten(options),
            "error": flatten(task.error) if isinstance(task.error, Mapping) else None,
        },
        "files": [_listed(folder, f) for f in ordered],
    }
    return DisplayRow(
        version=VERSION,
        created=_utf8(task.created_at or ""),
        shard=key,
        files=fingerprint(len(files), sum(f.size for f in files)),
        card=_json(card),
        entry=f"{_json(folder)}:{_json(detail)}",
    )


def _listed(folder: str, f: ArchivedFile) -> list[Any]:
    """[kind, artifact, path, bytes, sha256, [codec, width, height, duration, fps], unchecked];
    the path within the task's folder, or "/" and the path in the archive if it lies elsewhere."""
    p = f.probe
    facts = [p.codec or p.format_name, p.width, p.height, p.duration, p.frame_rate]
    path = _inside(folder, f) or f"/{f.path}"
    return [str(f.kind), f.artifact_index, path, f.size, f.sha256, facts, list(f.unchecked)]


def _inside(folder: str, f: ArchivedFile | None) -> str | None:
    if f is None or not f.path.startswith(folder + "/"):
        return None
    return f.path[len(folder) + 1 :]


def prompt_of(options: Mapping[str, Any]) -> str | None:
    """The text prompt, from the options or their nested gen2Options."""
    for where in (options, options.get("gen2Options")):
        if isinstance(where, Mapping):
            for key in _PROMPT_KEYS:
                if isinstance(where.get(key), str):
                    return str(where[key])
    return None


def seed_of(options: Mapping[str, Any]) -> str | None:
    """The seed as text: a JSON number past 2**53 would lose digits in the browser."""
    for where in (options, options.get("gen2Options")):
        if isinstance(where, Mapping):
            seed = where.get("seed")
            if isinstance(seed, int | str) and not isinstance(seed, bool):
                return _cut(str(seed), 100)
    return None


def flatten(value: Any, prefix: str = "") -> list[list[str]]:
    """Nested options as [dotted key, value text] pairs, in order, for a two-column table."""
    pairs: list[list[str]] = []
    _flatten(value, prefix, pairs)
    return pairs[:MAX_OPTIONS]


def _flatten(value: Any, key: str, pairs: list[list[str]]) -> None:
    if len(pairs) >= MAX_OPTIONS:
        return
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(v, f"{key}.{k}" if key else str(k), pairs)
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{key}[{i}]", pairs)
    else:
        pairs.append([key, _cut(_text(value), MAX_VALUE) or ""])


def _text(value: Any) -> str:
    if isinstance(value, str):
        return redact(value) if value.lower().startswith(("http://", "https://")) else value
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        value = [_text(v) if isinstance(v, str) else v for v in value]
    return json.dumps(value, ensure_ascii=False, default=str)


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _json(value: Any) -> str:
    """Compact JSON that is valid UTF-8 even when the API sent a lone surrogate."""
    return _utf8(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _utf8(text: str) -> str:
    """`text` with any lone surrogate (JSON can carry one, UTF-8 and SQLite cannot) as U+FFFD."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def shard(folder: str) -> str:
    """Which of 256 detail files holds a task, so that a click loads a small one: the last two
    hex digits of its folder's uuid, or of a hash of a folder named otherwise."""
    tail = folder[-2:]
    if tail in SHARDS:
        return tail
    return hashlib.sha256(folder.encode("utf-8", "surrogatepass")).hexdigest()[:2]
