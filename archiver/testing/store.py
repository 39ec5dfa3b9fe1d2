"""The emulator's seeded state: tasks, the files behind each asset path, and URL re-signing.

Outputs are served from the CDN origin, inputs (`Upload`s in the options) from the uploads
origin, like RunwayML's two CloudFront hosts. Mutated from the test thread and read by the
server thread, so every access takes one lock.
"""

from __future__ import annotations

import copy
import mimetypes
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.testing import listing
from archiver.testing.lifecycle import Lifecycle
from archiver.testing.media import Media, MediaLibrary, VideoSpec
from archiver.testing.signing import UrlSigner
from archiver.testing.tasks import (
    EMAIL,
    ArtifactSpec,
    Hook,
    Upload,
    apply_status,
    build_artifact,
    build_task,
    default_options,
    new_task_id,
    timestamp,
)

_PREVIEW_NOISE = (10, 12, 14)
CDN = "cdn"
UPLOADS = "uploads"


@dataclass
class TaskRecord:
    """A seeded task: its live JSON and what is needed to (re)build its artifacts."""

    json: dict[str, Any]
    specs: list[ArtifactSpec]
    default_name: str
    error: Any
    quirks: bool
    artifacts: list[dict[str, Any]] | None = None
    files: list[Path] = field(default_factory=list)
    # Each option path holding an input URL, with the file served behind it.
    inputs: dict[str, Path] = field(default_factory=dict)
    input_files: list[Path] = field(default_factory=list)  # one per distinct input URL
    lifecycle: Lifecycle | None = None
    polls: int = 0  # retrieves served so far
    born: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class RawAnswer:
    """Exact bytes to serve for a task id instead of its JSON."""

    body: bytes
    status: int
    content_type: str


class Store:
    """Tasks by id and asset files by origin and URL path, with signed URLs built per origin."""

    def __init__(
        self, media: MediaLibrary, signer: UrlSigner, origins: dict[str, str], url_ttl: float
    ) -> None:
        self.media = media
        self.signer = signer
        self.origins = origins  # "cdn"/"uploads" -> base URL
        self.cdn_url = origins[CDN]
        self.url_ttl = url_ttl
        self.lock = threading.RLock()
        self.tasks: dict[str, TaskRecord] = {}
        self.raw: dict[str, RawAnswer] = {}
        self.assets: dict[str, dict[str, tuple[Path, str]]] = {name: {} for name in origins}
        # Off: previews at 1, 1/2 and 1/4 of the video's size (small, fast tests). On: every
        # preview at full size with grain, 70-120 KB at 1280x768 like real ones (benchmarks).
        self.full_size_previews = False
        # The Runway accounts configured at useapi; None: the default account and every
        # account a seeded task names.
        self.accounts: list[str] | None = None

    def add(
        self,
        status: str,
        *,
        task_id: str | None,
        name: str | None,
        prompt: str,
        options: dict[str, Any] | None,
        specs: list[ArtifactSpec],
        error: Any,
        quirks: bool,
        created_at: str | None = None,
        lifecycle: Lifecycle | None = None,
        task_type: str = "gen3a",
        email: str = EMAIL,
    ) -> str:
        """Seed one task and return its id; with a lifecycle it starts where that one does.

        Uploads in `options` become signed input URLs.
        """
        task_id, task_uuid = _id_and_uuid(task_id, email)
        if options is None:
            seconds = next((s.video.seconds for s in specs if s.video is not None), 5.0)
            options = default_options(name, prompt, seconds, Upload(image=(320, 192)))
        inputs: dict[str, Path] = {}
        urls: dict[Upload, str] = {}
        resolved = self._uploads(options, "options", inputs, urls)
        task = build_task(
            task_id=task_id,
            task_uuid=task_uuid,
            name=name,
            options=resolved,
            created_at=created_at or timestamp(),
            task_type=task_type,
            extra_keys=quirks,
        )
        record = TaskRecord(
            json=task,
            specs=specs,
            default_name=name or f"Gen-3 Alpha 1234, {prompt}",
            error=error,
            quirks=quirks,
            inputs=inputs,
            input_files=[self._upload_media(u).path for u in urls],
            lifecycle=lifecycle,
        )
        self._start(record, status)
        return task_id

    def _start(self, record: TaskRecord, status: str) -> None:
        """Put a new task in place at `status`, or where its lifecycle begins."""
        life = record.lifecycle
        if life is not None and life.final == "SUCCEEDED":
            # Made now, in the seeding thread, so no poll waits for media to render.
            record.artifacts = [self._artifact(record, i, s) for i, s in enumerate(record.specs)]
        with self.lock:
            self.tasks[record.json["taskId"]] = record
        if life is None:
            self.set_status(record.json["taskId"], status)
        else:
            self._advance(record, steps=0)

    def _advance(self, record: TaskRecord, *, steps: float) -> None:
        """Move a task with a lifecycle to where it stands after `steps`."""
        assert record.lifecycle is not None
        stage = record.lifecycle.at(steps)
        with self.lock:
            if stage.status != record.json["status"]:
                self.set_status(record.json["taskId"], stage.status)
            record.json["progressRatio"] = stage.progress_ratio
            record.json["estimatedTimeToStartSeconds"] = stage.estimated_start

    def _steps(self, record: TaskRecord, *, polled: bool) -> float | None:
        """How far a task with a lifecycle has come; None if this request does not move it."""
        life = record.lifecycle
        if life is None:
            return None
        if life.per == "second":
            return time.monotonic() - record.born
        if not polled:
            return None
        record.polls += 1
        return record.polls - 1

    def listed(self, query: listing.Query, order: str) -> list[dict[str, Any]]:
        """A page of the listing: summaries of the tasks `query` selects, signed afresh."""
        with self.lock:
            records = sorted(
                enumerate(self.tasks.values()),
                key=lambda item: (str(item[1].json.get("createdAt") or ""), item[0]),
            )
            for _, record in records:
                steps = self._steps(record, polled=False)
                if steps is not None:
                    self._advance(record, steps=steps)
            page = listing.select(
                [r.json for _, r in records], query, order=order, accounts=self.account_emails()
            )
            fresh: dict[str, Any] = {}
            return [listing.summary(task, lambda u: self._refresh(u, fresh)) for task in page]

    def account_emails(self) -> list[str]:
        """The accounts configured at useapi, in the order they were added."""
        with self.lock:
            if self.accounts is not None:
                return list(self.accounts)
            found = [EMAIL, *(listing.email_of(t) or EMAIL for t in self.tasks)]
            return list(dict.fromkeys(found))

    def _uploads(
        self, value: Any, where: str, found: dict[str, Path], urls: dict[Upload, str]
    ) -> Any:
        """`value` with every Upload replaced by its URL; `found` gets option path -> file."""
        if isinstance(value, Hook):
            return f"{self.origins[UPLOADS]}/hooks/{value.name}?ref={uuid.uuid4().hex[:8]}"
        if isinstance(value, Upload):
            media = self._upload_media(value)
            if value not in urls:
                path = f"/datasets/{uuid.uuid4()}/{value.name}{media.path.suffix}"
                urls[value] = self.url(self.register(path, media, origin=UPLOADS), origin=UPLOADS)
            found[where] = media.path
            return urls[value]
        if isinstance(value, dict):
            return {k: self._uploads(v, f"{where}.{k}", found, urls) for k, v in value.items()}
        if isinstance(value, list):
            return [self._uploads(v, f"{where}[{i}]", found, urls) for i, v in enumerate(value)]
        return value

    def _upload_media(self, spec: Upload) -> Media:
        if spec.file is not None:
            ctype = mimetypes.guess_type(spec.file.name)[0] or "application/octet-stream"
            return Media(spec.file, spec.file.stat().st_size, ctype, 0, 0, None, None)
        if spec.video is not None:
            return self.media.video(spec.video)
        if spec.audio is not None:
            return self.media.audio(spec.audio, spec.variant % 3)
        width, height = spec.image or (320, 192)
        return self.media.image(width, height, variant=spec.variant, png=spec.png)

    def set_status(self, task_id: str, status: str) -> None:
        """Move a task to `status`; artifacts are made the first time it SUCCEEDS."""
        with self.lock:
            record = self.tasks[task_id]
            if status == "SUCCEEDED" and record.artifacts is None:
                record.artifacts = [
                    self._artifact(record, i, spec) for i, spec in enumerate(record.specs)
                ]
            apply_status(
                record.json,
                status,
                artifacts=record.artifacts or [],
                error=record.error,
                null_progress=record.quirks,
            )

    def _artifact(self, record: TaskRecord, index: int, spec: ArtifactSpec) -> dict[str, Any]:
        described = self._described(spec, index)
        served = self.media.video(spec.serve) if spec.serve is not None else described
        asset_uuid = str(uuid.uuid4())
        filename = spec.filename or record.default_name
        if spec.model_path:  # the newer style: /<model>/<id>/<name>.<ext>
            stem = "".join(c if c.isalnum() else "_" for c in filename)[:40] or "output"
            where = f"/{record.json['taskType']}/{asset_uuid}/{stem}{described.path.suffix}"
        else:
            where = f"/{asset_uuid}{described.path.suffix}"
        path = self.register(where, served)
        record.files.append(served.path)
        return build_artifact(
            task_id=record.json["taskId"],
            asset_uuid=asset_uuid,
            filename=filename,
            url=self.url(path),
            preview_urls=self._previews(record, spec, described, asset_uuid),
            media=described,
            created_at=timestamp(),
            shape=spec.shape,
            extra_keys=record.quirks,
        )

    def _previews(
        self, record: TaskRecord, spec: ArtifactSpec, described: Media, asset_uuid: str
    ) -> list[str]:
        previews: list[str] = []
        for j in range(spec.previews):
            # Real previews are frames at a few sizes; vary size and content per index.
            scale = 1 if self.full_size_previews else (1, 2, 4)[j % 3]
            width = max(16, described.width // scale // 2 * 2)
            height = max(16, described.height // scale // 2 * 2)
            noise = _PREVIEW_NOISE[j % len(_PREVIEW_NOISE)] if self.full_size_previews else 0
            image = self.media.image(width, height, variant=j + 1, noise=noise)
            previews.append(self.url(self.register(f"/previews/{asset_uuid}/{j}.jpg", image)))
            record.files.append(image.path)
        return previews

    def replace_video(self, task_id: str, index: int, video: VideoSpec) -> Path:
        """A new version of artifact `index` at the same URL path, described in the JSON."""
        media = self.media.video(video)
        with self.lock:
            record = self.tasks[task_id]
            assert record.artifacts is not None, "the task has no artifacts yet"
            artifact = record.artifacts[index]
            path = artifact["url"][len(self.cdn_url) :].partition("?")[0]
            self.assets[CDN][path] = (media.path, media.content_type)
            artifact["fileSize"] = str(media.size)
            artifact["metadata"]["duration"] = round(media.duration or 0, 3)
            # files: artifact 0, its previews, artifact 1, its previews, ...
            at = sum(1 + len(a["previewUrls"]) for a in record.artifacts[:index])
            record.files[at] = media.path
        return media.path

    def _described(self, spec: ArtifactSpec, index: int) -> Media:
        if spec.image is not None:
            return self.media.image(*spec.image, variant=index, png=spec.png)
        if spec.video is None:
            raise ValueError("an ArtifactSpec needs video=VideoSpec(...) or image=(w, h)")
        return self.media.video(spec.video)

    def register(self, path: str, media: Media, *, origin: str = CDN) -> str:
        """Make `media` downloadable at `path` of `origin`; return the path."""
        with self.lock:
            self.assets[origin][path] = (media.path, media.content_type)
        return path

    def asset(self, origin: str, path: str) -> tuple[Path, str] | None:
        with self.lock:
            return self.assets[origin].get(path)

    def url(self, path: str, *, origin: str = CDN) -> str:
        """A freshly signed absolute URL for `path` of `origin`."""
        name = path.rpartition("/")[2]
        signed = self.signer.sign(
            path, self.url_ttl, download_name=name, jwt_only=origin == UPLOADS
        )
        return self.origins[origin] + signed

    def media_of(self, task_id: str) -> list[Path]:
        """Outputs (artifact, its previews, next artifact, ...), then each distinct input."""
        with self.lock:
            record = self.tasks[task_id]
            return [*record.files, *record.input_files]

    def served_json(self, task_id: str) -> dict[str, Any] | None:
        """A copy of the task's live JSON with every asset URL signed afresh, or None."""
        with self.lock:
            record = self.tasks.get(task_id)
            if record is None:
                return None
            steps = self._steps(record, polled=True)
            if steps is not None:
                self._advance(record, steps=steps)
            data = copy.deepcopy(record.json)
        fresh: dict[str, Any] = {}  # one new signature per URL, so repeats stay equal
        for art in data.get("artifacts") or []:
            if isinstance(art, dict):
                art["url"] = self._refresh(art.get("url"), fresh)
                if isinstance(art.get("previewUrls"), list):
                    art["previewUrls"] = [self._refresh(u, fresh) for u in art["previewUrls"]]
        if "options" in data:
            data["options"] = self._resign(data["options"], fresh)
        return data

    def _resign(self, value: Any, fresh: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {k: self._resign(v, fresh) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resign(v, fresh) for v in value]
        return self._refresh(value, fresh)

    def _refresh(self, url: Any, fresh: dict[str, Any]) -> Any:
        # Only URLs of our own origins are re-signed; anything a test put there is left alone.
        if not isinstance(url, str):
            return url
        if url not in fresh:
            fresh[url] = url
            for origin, base in self.origins.items():
                if url.startswith(base + "/"):
                    path = url[len(base) :].partition("?")[0]
                    if self.asset(origin, path) is not None:
                        fresh[url] = self.url(path, origin=origin)
        return fresh[url]


def _id_and_uuid(task_id: str | None, email: str) -> tuple[str, str]:
    """A new task id (of `email`'s account) and its uuid, or the uuid of the one given (a fresh
    one if it has none)."""
    if task_id is None:
        return new_task_id(email)
    tail = task_id.rpartition("-task:")[2]
    return task_id, tail if tail != task_id and tail else str(uuid.uuid4())
