"""Typed records of the archiver: the task as the API describes it, and what a run made of it.

`Task.from_json` is the only place that reads the API's JSON; every field is optional there,
and `Task.raw` keeps that JSON as served, for the sidecar.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from .errors import InvalidTaskData

FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
FAILED_STATUSES = frozenset({"FAILED", "CANCELLED"})


class State(enum.StrEnum):
    """What a run made of a task; the catalog and the report use these words."""

    ARCHIVED = "archived"
    SKIPPED = "skipped"
    PENDING = "pending"
    FAILED = "failed"
    ERROR = "error"
    # Answered 404/410 run after run and never archived: deleted at Runway, or a typo. Counted
    # apart from `error`, so it no longer makes the exit code 1 (`forget --gone` drops it).
    GONE = "gone"


# The states of a task whose files the archive keeps: archived, and failed (its inputs and
# task.yaml). `verify` checks them, the gallery shows them, a run that made one changed it.
HOLDING_FILES: tuple[State, ...] = (State.ARCHIVED, State.FAILED)


class FileKind(enum.StrEnum):
    ARTIFACT = "artifact"
    PREVIEW = "preview"
    INPUT = "input"  # an asset the generation was made from, found in the task's options


@dataclass(frozen=True, slots=True)
class Artifact:
    """One generated asset and what the server claims about its file."""

    index: int
    id: str | None
    filename: str | None
    url: str | None
    file_size: int | None
    duration: float | None
    width: int | None
    height: int | None
    frame_rate: float | None
    preview_urls: tuple[str, ...]
    has_audio: bool | None = None  # metadata.hasAudio (2025 shape): checked against the file


@dataclass(frozen=True, slots=True)
class Task:
    """A task as retrieved; `raw` keeps the JSON for fields the sidecar copies verbatim."""

    task_id: str
    id: str | None
    name: str | None
    task_type: str | None
    status: str | None
    created_at: str | None
    updated_at: str | None
    options: Mapping[str, Any] | None
    error: Any
    progress_ratio: str | None
    progress_text: str | None
    artifacts: tuple[Artifact, ...]
    # estimatedTimeToStartSeconds: informative, so anything but a number >= 0 reads as unknown.
    estimated_start: float | None = None
    # The JSON exactly as served; not part of equality, which is about the typed values.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def has_failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def error_message(self) -> str | None:
        """A one-line reason from the API's error, object or string: `REASON: message`."""
        err = self.error
        if err is None:
            return None
        if isinstance(err, Mapping):
            reason = _text(err.get("reason"))
            message = _text(err.get("errorMessage")) or _text(err.get("message"))
            if reason and message:
                return f"{reason}: {message}"
            return message or reason
        return str(err) or None

    @classmethod
    def from_json(cls, data: Any, *, task_id: str) -> Task:
        """Parse one retrieved task; raise InvalidTaskData naming the first bad field."""
        if not isinstance(data, Mapping):
            raise InvalidTaskData(f"task JSON is {json_kind(data)}, not an object")
        status = data.get("status")
        try:
            return cls._parse(data, task_id)
        except InvalidTaskData as exc:
            if exc.task_status is None and isinstance(status, str):
                exc.task_status = status  # the report still says what the API said
            raise

    @classmethod
    def _parse(cls, data: Mapping[str, Any], task_id: str) -> Task:
        raw_artifacts = data.get("artifacts")
        if raw_artifacts is None:
            raw_artifacts = []
        if not isinstance(raw_artifacts, list):
            raise InvalidTaskData(f"artifacts: expected a list, got {json_kind(raw_artifacts)}")
        options = data.get("options")
        if options is not None and not isinstance(options, Mapping):
            raise InvalidTaskData(f"options: expected an object, got {json_kind(options)}")
        served_id = _str(data, "taskId", "taskId")
        if served_id is not None and served_id != task_id:
            raise InvalidTaskData(f"taskId: the API answered for {served_id!r}")
        return cls(
            task_id=task_id,
            id=_str(data, "id", "id"),
            name=_str(data, "name", "name"),
            task_type=_str(data, "taskType", "taskType"),
            status=_str(data, "status", "status"),
            created_at=_str(data, "createdAt", "createdAt"),
            updated_at=_str(data, "updatedAt", "updatedAt"),
            options=options,
            error=data.get("error"),
            progress_ratio=informative_text(data.get("progressRatio")),
            progress_text=informative_text(data.get("progressText")),
            artifacts=tuple(_artifact(i, a) for i, a in enumerate(raw_artifacts)),
            estimated_start=_seconds(data.get("estimatedTimeToStartSeconds")),
            raw=data,
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _artifact(index: int, data: Any) -> Artifact:
    where = f"artifacts[{index}]"
    if not isinstance(data, Mapping):
        raise InvalidTaskData(f"{where}: expected an object, got {json_kind(data)}")
    meta = data.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise InvalidTaskData(f"{where}.metadata: expected an object, got {json_kind(meta)}")
    width, height = _dimensions(meta, f"{where}.metadata")
    previews = data.get("previewUrls")
    if previews is None:
        previews = []
    if not isinstance(previews, list) or not all(isinstance(u, str) for u in previews):
        raise InvalidTaskData(f"{where}.previewUrls: expected a list of strings")
    return Artifact(
        index=index,
        id=_str(data, "id", f"{where}.id"),
        filename=_str(data, "filename", f"{where}.filename"),
        url=_str(data, "url", f"{where}.url"),
        file_size=_byte_count(data.get("fileSize"), f"{where}.fileSize"),
        duration=_positive(meta.get("duration"), f"{where}.metadata.duration"),
        width=width,
        height=height,
        frame_rate=_positive(meta.get("frameRate"), f"{where}.metadata.frameRate"),
        preview_urls=tuple(previews),
        has_audio=_flag(meta.get("hasAudio"), f"{where}.metadata.hasAudio"),
    )


def _dimensions(meta: Mapping[str, Any], where: str) -> tuple[int | None, int | None]:
    """From `dimensions` (2024), else `size`, else top-level `width`/`height` (2025)."""
    dims = meta.get("dimensions")
    if dims is not None:
        if (
            not isinstance(dims, list)
            or len(dims) != 2
            or not all(_is_int(d) and d > 0 for d in dims)
        ):
            raise InvalidTaskData(f"{where}.dimensions: expected [width, height], got {dims!r}")
        return int(dims[0]), int(dims[1])
    size = meta.get("size")
    if isinstance(size, Mapping):
        w, h = size.get("width"), size.get("height")
        if (
            isinstance(w, int)
            and isinstance(h, int)
            and _is_int(w)
            and _is_int(h)
            and min(w, h) > 0
        ):
            return w, h
    width, height = meta.get("width"), meta.get("height")
    if width is None and height is None:
        return None, None
    if _positive_int(width) and _positive_int(height):
        return width, height
    raise InvalidTaskData(
        f"{where}.width/height: expected two positive integers, got {width!r}, {height!r}"
    )


def _flag(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidTaskData(f"{where}: expected true or false, got {value!r}")


def _str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidTaskData(f"{where}: expected a string, got {json_kind(value)}")


def informative_text(value: Any) -> str | None:
    """A field that is informative only (progressRatio, progressText): any scalar becomes text,
    anything else None; it never makes a task invalid."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _byte_count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if _is_int(value) and value >= 0:
        return int(value)
    # A bounded length first: int() refuses (ValueError) strings of thousands of digits.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise InvalidTaskData(f"{where}: not a byte count: {value!r}")


def _positive(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer of hundreds of digits
            number = math.inf
        if math.isfinite(number) and number > 0:
            return number
    raise InvalidTaskData(f"{where}: expected a positive number, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> TypeGuard[int]:
    return _is_int(value) and int(value) > 0


def json_kind(value: Any) -> str:
    """What a JSON value is, for a message: `null`, `str`, `list`..."""
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What ffprobe (or the in-process image check) found in a file."""

    format_name: str | None
    codec: str | None
    width: int | None
    height: int | None
    duration: float | None
    frame_rate: float | None
    audio_codec: str | None = None  # the first audio stream's codec; None: no audio stream


@dataclass(frozen=True, slots=True)
class FileSizes:
    """Files as a rerun checks them against the archive: (task id, path, size) triples packed
    in one byte string, each field followed by a NUL (a size left empty: any size; a task id
    left empty: the previous triple's, so a task's files need it once). A batch of 100,000
    files is one object, not 300,000; no task id or path holds a NUL."""

    packed: bytes = b""

    @classmethod
    def pack(cls, entries: Iterable[tuple[str, str, int | None]]) -> FileSizes:
        return cls(
            "".join(f"{t}\0{p}\0{'' if s is None else s}\0" for t, p, s in entries).encode(
                "utf-8", "surrogateescape"
            )
        )

    def __add__(self, other: FileSizes) -> FileSizes:
        return FileSizes(self.packed + other.packed)

    def __iter__(self) -> Iterator[tuple[str, str, int | None]]:
        fields = iter(self.packed.decode("utf-8", "surrogateescape").split("\0"))
        task_id = ""
        # zip leaves out the last, empty field (after the last NUL)
        for named, path, size in zip(fields, fields, fields, strict=False):
            task_id = named or task_id
            yield task_id, path, int(size) if size else None


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """A file that passed verification and has its final name."""

    kind: FileKind
    artifact_index: int
    path: str  # relative to the archive root
    size: int
    sha256: str
    probe: ProbeResult
    unchecked: tuple[str, ...]  # claims the API left out, so nothing was compared
    # What this run checked of it: ("size",) for a stat, or all of size, sha256 and media.
    verified: tuple[str, ...] = ()
    # For an input: every option path whose URL it was downloaded from (not in the catalog).
    options: tuple[str, ...] = ()
    # The store's own checksum of the object (a bucket's), for `verify` without a download.
    stored: str | None = None


class Missing(enum.StrEnum):
    """Why an input named in the options is not in the archive."""

    UNAVAILABLE = "unavailable"  # the CDN no longer has it: recorded, never fetched again
    SKIPPED = "skipped"  # beyond max_inputs or max_input_bytes


@dataclass(frozen=True, slots=True)
class MissingInput:
    """An input of the task that is not archived, and why."""

    option: str  # its option path, e.g. options.referenceImages[1].url
    url: str  # without its query string (the signature)
    why: Missing
    reason: str


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How one task ended in this run; the catalog, report and summary are made from these."""

    task_id: str
    state: State
    status: str | None = None
    dir: str | None = None  # relative to the archive root
    sidecar: str | None = None
    files: tuple[ArchivedFile, ...] = ()
    error: str | None = None
    sidecar_bytes: int | None = None
    # A lasting error (the same answer every run: 4xx, bytes that never match): back off.
    backoff: bool = False
    next_attempt: str | None = None  # for a task in error left alone this run: when, at the latest
    missing: tuple[MissingInput, ...] = ()  # inputs not archived (unavailable or skipped)
    answered: int | None = None  # the HTTP status of a retrieve that answered with an error
