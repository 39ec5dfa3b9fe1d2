"""The only module that knows every stage: fetch a task, stream its files, verify, sidecar, catalog.

Tasks stream through with bounded concurrency; a TaskError ends one task in state `error`, any
other ArchiverError (401, storage, lock) ends the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import files, http, sidecar, verify
from .api import ApiClient
from .bounded import for_each
from .catalog import Catalog, TaskRow
from .config import Config
from .download import Downloader, Fetched
from .errors import InvalidTaskData, TaskError, UrlExpired, VerifyError
from .model import ArchivedFile, Artifact, FileKind, ProbeResult, State, Task, TaskOutcome
from .progress import Reporter
from .retry import RetryPolicy


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class FileJob:
    """One URL of a task and the name (without extension) it will have in the task's folder."""

    kind: FileKind
    artifact: Artifact
    stem: str
    url: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.stem}"


def plan_files(task: Task) -> list[FileJob]:
    """Every file of a task, named from the artifact and unique within the task."""
    if not task.artifacts:
        raise InvalidTaskData(f"artifacts: none in a {task.status} task")
    used: set[str] = set()
    jobs = []
    for artifact in task.artifacts:
        if not artifact.url:
            raise InvalidTaskData(f"artifacts[{artifact.index}].url: missing")
        stem = files.unique_stem(
            files.slug(artifact.filename, fallback=f"artifact-{artifact.index + 1}"), used
        )
        jobs.append(FileJob(FileKind.ARTIFACT, artifact, stem, artifact.url))
        for n, url in enumerate(artifact.preview_urls, 1):
            preview = files.unique_stem(f"{stem}.preview-{n}", used)
            jobs.append(FileJob(FileKind.PREVIEW, artifact, preview, url))
    return jobs


class Archiver:
    """One run's stages, wired; `run` archives a list of task ids."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        api: ApiClient,
        downloader: Downloader,
        reporter: Reporter,
    ) -> None:
        self.config = config
        self.root = config.output_dir
        self.catalog = catalog
        self.api = api
        self.downloader = downloader
        self.reporter = reporter
        self.probes = asyncio.Semaphore(config.probes)
        self.tolerances = verify.Tolerances(
            duration=config.duration_tolerance, frame_rate=config.frame_rate_tolerance
        )

    async def run(self, task_ids: Sequence[str]) -> list[TaskOutcome]:
        """Outcomes in the order of `task_ids`; done tasks are skipped without a request."""
        known = self.catalog.states()
        outcomes: dict[str, TaskOutcome] = {}
        todo: list[tuple[str, TaskRow | None]] = []
        for task_id in task_ids:
            row = known.get(task_id)
            if row is not None and self._is_done(row):
                outcomes[task_id] = TaskOutcome(
                    task_id, State.SKIPPED, row.status, row.dir, _sidecar_path(row.dir)
                )
            else:
                todo.append((task_id, row))
        self.reporter.start(len(task_ids))
        for outcome in outcomes.values():
            self.reporter.task_done(outcome)

        async def one(item: tuple[str, TaskRow | None]) -> None:
            outcomes[item[0]] = await self.archive_task(*item)

        await for_each(todo, one, limit=2 * self.config.concurrency)
        return [outcomes[t] for t in task_ids]

    def _is_done(self, row: TaskRow) -> bool:
        return row.state is State.ARCHIVED or (
            row.state is State.FAILED and not self.config.refresh
        )

    async def archive_task(self, task_id: str, row: TaskRow | None) -> TaskOutcome:
        """Archive one task; its TaskError becomes an outcome, recorded in the catalog."""
        folder = row.dir if row else None
        try:
            task = await self.api.fetch_task(task_id)
            if not task.is_final:
                outcome = _pending(task)
            else:
                folder = folder or files.task_dir_name(task)
                outcome = await self._archive_final(task, folder)
        except TaskError as exc:
            outcome = TaskOutcome(task_id, State.ERROR, dir=folder, error=str(exc))
        self.catalog.record(outcome, now=now())
        self.reporter.task_done(outcome)
        return outcome

    async def _archive_final(self, task: Task, folder: str) -> TaskOutcome:
        if not task.has_failed:
            plan_files(task)  # refuse a malformed task before its folder is made
        path = files.ensure_dir(self.root, folder)
        if task.has_failed:
            await self._write_sidecar(task, path, [])
            reason = task.error_message or f"status {task.status}"
            return TaskOutcome(
                task.task_id, State.FAILED, task.status, folder, _sidecar_path(folder), error=reason
            )
        done = self._reusable(task.task_id)
        try:
            archived = await self._fetch_all(task, folder, done)
        except TaskError as exc:
            # What did verify stays recorded, so the next run fetches only the rest;
            # its renames are made durable before the catalog names them.
            await asyncio.to_thread(files.fsync_dir, path)
            return TaskOutcome(
                task.task_id, State.ERROR, task.status, folder,
                files=tuple(done.values()), error=str(exc),
            )  # fmt: skip
        await self._write_sidecar(task, path, archived)
        return TaskOutcome(
            task.task_id,
            State.ARCHIVED,
            task.status,
            folder,
            _sidecar_path(folder),
            tuple(archived),
        )

    def _reusable(self, task_id: str) -> dict[str, ArchivedFile]:
        """Files an earlier run verified and that are still there at their size, by stem."""
        kept = {}
        for f in self.catalog.files(task_id):
            if files.file_size(self.root / f.path) == f.size:
                kept[f.path.rsplit(".", 1)[0]] = f
        return kept

    async def _fetch_all(
        self, task: Task, folder: str, done: dict[str, ArchivedFile]
    ) -> list[ArchivedFile]:
        """All files of the task; an expired signed URL makes us fetch the task again (bounded)."""
        for refresh in range(self.config.url_refreshes + 1):
            jobs = plan_files(task)
            pending = [j for j in jobs if f"{folder}/{j.stem}" not in done]
            results = await asyncio.gather(
                *(self._file(job, folder) for job in pending), return_exceptions=True
            )
            for job, result in zip(pending, results, strict=True):
                if isinstance(result, ArchivedFile):
                    done[f"{folder}/{job.stem}"] = result
            failures = [r for r in results if isinstance(r, BaseException)]
            if not failures:
                return [done[f"{folder}/{j.stem}"] for j in jobs]
            fatal = [e for e in failures if not isinstance(e, UrlExpired)]
            if fatal or refresh == self.config.url_refreshes:
                raise (fatal or failures)[0]
            self.reporter.note(
                f"note: {task.task_id}: signed URLs refused, fetching the task again"
            )
            task = await self.api.fetch_task(task.task_id)
        raise AssertionError("unreachable")

    async def _file(self, job: FileJob, folder: str) -> ArchivedFile:
        """Download, verify, give the final name; a file failing twice is kept as .rejected."""
        part = self.root / folder / f"{job.stem}{files.PART_SUFFIX}"
        expected = job.artifact.file_size if job.kind is FileKind.ARTIFACT else None
        for attempt in (1, 2):
            fetched = await self.downloader.fetch(job.url, part, expected_size=expected)
            ext = files.choose_extension(
                verify.sniff(fetched.head), _url_path(job.url), fetched.content_type
            )
            final = self.root / folder / f"{job.stem}.{ext}"
            try:
                probe, unchecked = await self._check(job, ext, fetched)
                await asyncio.to_thread(files.finalize, part, final)
            except VerifyError as exc:
                if attempt == 2:
                    kept = await asyncio.to_thread(files.reject, part, final)
                    raise VerifyError(f"{job.label}: {exc} (kept as {kept.name})") from exc
                files.discard(part)
                self.reporter.note(f"note: {job.label}: {exc}; downloading it once more")
                continue
            except BaseException:
                files.discard(part)  # cancelled before its rename: a whole file is no resume
                raise
            return ArchivedFile(
                job.kind,
                job.artifact.index,
                f"{folder}/{final.name}",
                fetched.size,
                fetched.sha256,
                probe,
                unchecked,
            )
        raise AssertionError("unreachable")

    async def _check(
        self, job: FileJob, ext: str, fetched: Fetched
    ) -> tuple[ProbeResult, tuple[str, ...]]:
        if ext in verify.IMAGE_TYPES:
            probe = verify.probe_image(ext, fetched.head, fetched.tail, fetched.size)
        elif job.kind is FileKind.PREVIEW:
            raise VerifyError("preview is not an image")
        else:
            async with self.probes:
                probe = await verify.probe_video(fetched.part, timeout=self.config.probe_timeout)
        if job.kind is FileKind.PREVIEW:
            return probe, ()
        return probe, verify.compare(job.artifact, fetched.size, probe, self.tolerances)

    async def _write_sidecar(
        self, task: Task, folder: Path, archived: Sequence[ArchivedFile]
    ) -> None:
        text = sidecar.render(task, archived, archived_at=now())
        await asyncio.to_thread(sidecar.write, folder, text)


def _pending(task: Task) -> TaskOutcome:
    reason = f"status {task.status or 'missing'}"
    if task.progress_ratio:
        reason += f", progress {task.progress_ratio}"
    if task.progress_text:
        reason += f": {task.progress_text}"
    return TaskOutcome(task.task_id, State.PENDING, task.status, error=reason)


def _sidecar_path(folder: str | None) -> str | None:
    return f"{folder}/{sidecar.NAME}" if folder else None


def _url_path(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


async def archive(
    config: Config, catalog: Catalog, task_ids: Sequence[str], reporter: Reporter
) -> list[TaskOutcome]:
    """Open one HTTP session for the run and archive `task_ids` through it."""
    assert config.token, "the command line checks for a token before a run starts"
    limits = http.Limits.from_config(config)
    policy = RetryPolicy.from_config(config)
    async with http.new_session(config) as session:
        api = ApiClient(
            session, base_url=config.base_url, token=config.token, limits=limits, policy=policy
        )
        downloader = Downloader(
            session=session,
            limits=limits,
            policy=policy,
            max_bytes=config.max_file_bytes,
            read_timeout=config.read_timeout,
            on_bytes=reporter.add_bytes,
        )
        return await Archiver(config, catalog, api, downloader, reporter).run(task_ids)
