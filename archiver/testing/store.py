"""The emulator's seeded state: tasks, the files behind each CDN path, and URL re-signing.

Mutated from the test thread and read by the server thread, so every access takes one lock.
"""

from __future__ import annotations

import copy
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
    apply_status,
    build_artifact,
    build_task,
    default_options,
    new_task_id,
    timestamp,
)

_PREVIEW_NOISE = (10, 12, 14)


@dataclass
class TaskRecord:
    """A seeded task: its live JSON and what is needed to (re)build its artifacts."""

    json: dict[str, Any]
    specs: list[ArtifactSpec]
    default_name: str
    error: dict[str, Any] | None
    quirks: bool
    artifacts: list[dict[str, Any]] | None = None
    files: list[Path] = field(default_factory=list)
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
    """Tasks by id and CDN files by URL path, with signed URLs built from `cdn_url`."""

    def __init__(
        self, media: MediaLibrary, signer: UrlSigner, cdn_url: str, url_ttl: float
    ) -> None:
        self.media = media
        self.signer = signer
        self.cdn_url = cdn_url
        self.url_ttl = url_ttl
        self.lock = threading.RLock()
        self.tasks: dict[str, TaskRecord] = {}
        self.raw: dict[str, RawAnswer] = {}
        self.assets: dict[str, tuple[Path, str]] = {}
        # Off: previews at 1, 1/2 and 1/4 of the video's size (small, fast tests). On: every
        # preview at full size with grain, 70-120 KB at 1280x768 like real ones (benchmarks).
        self.full_size_previews = False

    def add(
        self,
        status: str,
        *,
        task_id: str | None,
        name: str | None,
        prompt: str,
        options: dict[str, Any] | None,
        specs: list[ArtifactSpec],
        error: dict[str, Any] | None,
        quirks: bool,
        created_at: str | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> str:
        """Seed one task and return its id; with a lifecycle it starts where that one does."""
        if task_id is None:
            task_id, task_uuid = new_task_id()
        else:
            tail = task_id.rpartition("-task:")[2]
            task_uuid = tail if tail != task_id and tail else str(uuid.uuid4())
        init = self.media.image(320, 192, variant=7)
        init_url = self.url(self.register(f"/init/{task_uuid}.jpg", init))
        seconds = next((s.video.seconds for s in specs if s.video is not None), 5.0)
        task = build_task(
            task_id=task_id,
            task_uuid=task_uuid,
            name=name,
            options=options
            if options is not None
            else default_options(name, prompt, seconds, init_url),
            created_at=created_at or timestamp(),
            extra_keys=quirks,
        )
        record = TaskRecord(
            json=task,
            specs=specs,
            default_name=name or f"Gen-3 Alpha 1234, {prompt}",
            error=error,
            quirks=quirks,
            lifecycle=lifecycle,
        )
        if lifecycle is not None and lifecycle.final == "SUCCEEDED":
            # Made now, in the seeding thread, so no poll waits for media to render.
            record.artifacts = [self._artifact(record, i, spec) for i, spec in enumerate(specs)]
        with self.lock:
            self.tasks[task_id] = record
        if lifecycle is None:
            self.set_status(task_id, status)
        else:
            self._advance(record, steps=0)
        return task_id

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
            accounts = {EMAIL} | {listing.email_of(t) or EMAIL for t in self.tasks}
            page = listing.select(
                [r.json for _, r in records], query, order=order, accounts=accounts
            )
            return [listing.summary(task, self._refresh) for task in page]

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
        path = self.register(f"/{asset_uuid}{described.path.suffix}", served)
        record.files.append(served.path)
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
        return build_artifact(
            task_id=record.json["taskId"],
            asset_uuid=asset_uuid,
            filename=spec.filename or record.default_name,
            url=self.url(path),
            preview_urls=previews,
            media=described,
            created_at=timestamp(),
            extra_keys=record.quirks,
        )

    def replace_video(self, task_id: str, index: int, video: VideoSpec) -> Path:
        """A new version of artifact `index` at the same URL path, described in the JSON."""
        media = self.media.video(video)
        with self.lock:
            record = self.tasks[task_id]
            assert record.artifacts is not None, "the task has no artifacts yet"
            artifact = record.artifacts[index]
            path = artifact["url"][len(self.cdn_url) :].partition("?")[0]
            self.assets[path] = (media.path, media.content_type)
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

    def register(self, path: str, media: Media) -> str:
        """Make `media` downloadable at CDN `path`; return the path."""
        with self.lock:
            self.assets[path] = (media.path, media.content_type)
        return path

    def url(self, path: str) -> str:
        """A freshly signed absolute URL for CDN `path`."""
        name = path.rpartition("/")[2]
        return self.cdn_url + self.signer.sign(path, self.url_ttl, download_name=name)

    def served_json(self, task_id: str) -> dict[str, Any] | None:
        """A copy of the task's live JSON with every CDN URL signed afresh, or None."""
        with self.lock:
            record = self.tasks.get(task_id)
            if record is None:
                return None
            steps = self._steps(record, polled=True)
            if steps is not None:
                self._advance(record, steps=steps)
            data = copy.deepcopy(record.json)
        for art in data.get("artifacts") or []:
            if isinstance(art, dict):
                art["url"] = self._refresh(art.get("url"))
                if isinstance(art.get("previewUrls"), list):
                    art["previewUrls"] = [self._refresh(u) for u in art["previewUrls"]]
        options = data.get("options")
        if isinstance(options, dict) and "init_image" in options:
            options["init_image"] = self._refresh(options["init_image"])
        return data

    def _refresh(self, url: Any) -> Any:
        # Only URLs of our own CDN are re-signed; anything a test put there is left alone.
        if not isinstance(url, str) or not url.startswith(self.cdn_url + "/"):
            return url
        path = url[len(self.cdn_url) :].partition("?")[0]
        with self.lock:
            known = path in self.assets
        return self.url(path) if known else url
