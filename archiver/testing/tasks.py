"""Task JSON shaped exactly like the useapi.net "Retrieve task" page, quirks included on request.

Pure builders: they take ids, URLs and media facts and return plain dicts ready for json.dumps.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.testing.media import Media, VideoSpec

USER_ID = 1234
EMAIL = "someone@example.com"
NON_ASCII_PROMPT = "Zeitlupe: Katze jagt Hund 🐱 über den Küchenboden"
STATUSES = ("SUCCEEDED", "PENDING", "RUNNING", "THROTTLED", "FAILED", "CANCELLED")
DEFAULT_ERROR: dict[str, Any] = {
    "errorMessage": "This generation could not be completed.",
    "reason": "SAFETY.INPUT.TEXT",
    "message": "Content policy violation",
    "moderation_category": None,
    "tally_asimov": False,
}
# Keys a newer API version might add; a robust parser must ignore them.
_EXTRA = {"_emulatorFutureField": {"nested": [1, "two", None]}}


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact of a seeded task: a video (default) or an image, and what is really served.

    `shape` "2025" describes it with metadata width/height/hasAlphaChannel/hasAudio instead of
    dimensions/size; `model_path` serves it at /<model>/<id>/<name>.<ext> instead of /<uuid>.<ext>.
    """

    video: VideoSpec | None = VideoSpec()  # noqa: RUF009 - frozen, so one shared default is safe
    image: tuple[int, int] | None = None
    png: bool = False
    filename: str | None = None
    previews: int = 3
    serve: VideoSpec | None = None
    shape: str = "2024"
    model_path: bool = False


@dataclass(frozen=True)
class Upload:
    """An input asset to put in a task's options: the store serves it from the uploads origin.

    Put it anywhere in `options`; equal Uploads are one asset behind one URL.
    """

    image: tuple[int, int] | None = None
    png: bool = False
    video: VideoSpec | None = None
    audio: float | None = None  # seconds of an M4A (AAC) tone
    variant: int = 7
    name: str = "upload"
    file: Path | None = None  # serve these exact bytes instead (a broken or foreign file)


@dataclass(frozen=True)
class Hook:
    """A callback URL to put in `options` (replyUrl, webhookUrl): on the uploads host, never an
    asset, so a client that fetches it shows up in the request log (answered 404)."""

    name: str = "reply"


def new_task_id(email: str = EMAIL) -> tuple[str, str]:
    """Return (taskId, uuid) in the shape the real API uses, with ':' and '@' in it."""
    task_uuid = str(uuid.uuid4())
    return f"user:{USER_ID}-runwayml:{email}-task:{task_uuid}", task_uuid


def asset_id(asset_uuid: str) -> str:
    """The long assetId the API pairs with an artifact's uuid."""
    return f"user:{USER_ID}-runwayml:{EMAIL}-asset:{asset_uuid}"


def timestamp(when: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as the API writes it."""
    when = when or datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def default_options(
    name: str | None, prompt: str, seconds: float, init_image: Any
) -> dict[str, Any]:
    """The Gen-3 options block from the page's example."""
    return {
        "name": name,
        "seconds": round(seconds) or 5,
        "text_prompt": prompt,
        "seed": 123456789,
        "exploreMode": True,
        "watermark": False,
        "enhance_prompt": False,
        "init_image": init_image,
        "resolution": "720p",
        "assetGroupName": "Generative Video",
        "recordingEnabled": True,
    }


def build_task(
    *,
    task_id: str,
    task_uuid: str,
    name: str | None,
    options: dict[str, Any],
    created_at: str,
    task_type: str = "gen3a",
    extra_keys: bool = False,
) -> dict[str, Any]:
    """A task dict without status fields; call `apply_status` to fill them in."""
    task: dict[str, Any] = {
        "taskId": task_id,
        "id": task_uuid,
        "name": name,
        "image": None,
        "createdAt": created_at,
        "updatedAt": created_at,
        "taskType": task_type,
        "options": dict(options),
        "status": "PENDING",
        "error": None,
        "progressText": None,
        "progressRatio": None,
        "estimatedTimeToStartSeconds": None,
        "artifacts": [],
        "sharedAsset": None,
    }
    if extra_keys:
        task.update(_EXTRA)
        task["options"].update(_EXTRA)
    return task


def apply_status(
    task: dict[str, Any],
    status: str,
    *,
    artifacts: list[dict[str, Any]],
    error: Any = None,
    null_progress: bool = False,
) -> None:
    """Set status, progress, error and artifacts in place the way the API does for `status`."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
    table: dict[str, dict[str, Any]] = {
        "SUCCEEDED": {"progressText": None, "progressRatio": "1", "eta": None},
        "PENDING": {"progressText": "Queued", "progressRatio": "0", "eta": 42},
        "THROTTLED": {"progressText": "Throttled", "progressRatio": "0", "eta": 300},
        "RUNNING": {"progressText": "Generating", "progressRatio": "0.42", "eta": 0},
        "FAILED": {"progressText": None, "progressRatio": "0", "eta": None},
        "CANCELLED": {"progressText": None, "progressRatio": "0", "eta": None},
    }
    progress = table[status]
    task["status"] = status
    task["updatedAt"] = timestamp()
    task["progressText"] = progress["progressText"]
    task["progressRatio"] = None if null_progress else progress["progressRatio"]
    task["estimatedTimeToStartSeconds"] = progress["eta"]
    failure = copy.deepcopy(DEFAULT_ERROR if error is None else error)  # an object or a string
    task["error"] = failure if status == "FAILED" else None
    task["artifacts"] = artifacts if status == "SUCCEEDED" else []


def describe(media: Media, shape: str = "2024") -> dict[str, Any]:
    """An artifact's `metadata`: the 2024 shape (dimensions, size) or the 2025 one."""
    metadata: dict[str, Any] = {}
    if media.fps is not None:
        metadata["frameRate"] = int(media.fps) if media.fps.is_integer() else media.fps
    if media.duration is not None:
        metadata["duration"] = round(media.duration, 3)
    if shape == "2025":
        metadata |= {"width": media.width, "height": media.height, "hasAlphaChannel": False}
        if media.duration is not None:
            metadata["hasAudio"] = media.audio
    else:
        metadata["dimensions"] = [media.width, media.height]
        metadata["size"] = {"width": media.width, "height": media.height}
    return metadata


def build_artifact(
    *,
    task_id: str,
    asset_uuid: str,
    filename: str,
    url: str,
    preview_urls: list[str],
    media: Media,
    created_at: str,
    shape: str = "2024",
    extra_keys: bool = False,
) -> dict[str, Any]:
    """One artifacts[] entry describing `media` (filename without extension, like the API)."""
    metadata = describe(media, shape)
    artifact: dict[str, Any] = {
        "assetId": asset_id(asset_uuid),
        "id": asset_uuid,
        "createdAt": created_at,
        "updatedAt": created_at,
        "userId": 1234567,
        "createdBy": 1234567,
        "taskId": task_id,
        "parentAssetGroupId": str(uuid.uuid5(uuid.NAMESPACE_URL, "Generative Video")),
        "filename": filename,
        "url": url,
        # A string, as on the page: parsers must convert it.
        "fileSize": str(media.size),
        "isDirectory": False,
        "previewUrls": preview_urls,
        "private": True,
        "privateInTeam": True,
        "deleted": False,
        "reported": False,
        "metadata": metadata,
        "favorite": False,
    }
    if extra_keys:
        artifact.update(_EXTRA)
        metadata.update(_EXTRA)
    return artifact
