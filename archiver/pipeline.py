"""The only module that knows every stage: fetch a task, stream its files, verify, sidecar, catalog.

Tasks stream through with bounded concurrency; a TaskError ends one task in state `error`, any
other ArchiverError (401, unreachable API, storage, a signal) ends the run. Outcomes are handed
over as each task ends, so a run that is stopped still accounts for what it finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Sequence

from . import files, http, inputs, leases, partfile, probe, sidecar
from .api import ApiClient
from .catalog import GONE_STATUSES, Catalog, TaskRow
from .catalog.rows import Claim
from .config import Config
from .download import Downloader, Fetched
from .errors import (
    ApiError,
    InvalidTaskData,
    LeaseLost,
    ProbeTimeout,
    TaskError,
    UrlExpired,
    VerifyError,
)
from .gallery import display
from .holds import elsewhere, gone_at_source, lasting
from .intake import SIZE_CHECKED, Intake, Tally, Work
from .jobs import FileJob, file_jobs, for_job, lost_input, output_jobs, url_path
from .leases import Lease
from .model import ArchivedFile, FileKind, MissingInput, ProbeResult, State, Task, TaskOutcome
from .probe import Prober, compare, sniff
from .progress import Reporter
from .retry import RetryPolicy
from .selection import Finder
from .storage import Target, open_target, size_in
from .tasklist import BadLine
from .timespec import now
from .waiting import Waiter

FULLY_CHECKED = ("size", "sha256", "media")  # streamed, hashed and probed by this run


class Archiver:
    """One run's stages, wired; `run` archives a list of task ids."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        api: ApiClient,
        downloader: Downloader,
        reporter: Reporter,
        target: Target,
        prober: Prober,
        tally: Tally,
        waiter: Waiter | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self.catalog = catalog
        self.api = api
        self.downloader = downloader
        self.reporter = reporter
        self.waiter = waiter
        self.prober = prober
        self.run_id = 0
        self.tolerances = compare.Tolerances.from_config(config)
        self.tally = tally
        # Tasks the waiter polls again: their rows and inputs known gone, until then.
        self._waiting: dict[str, tuple[TaskRow | None, tuple[MissingInput, ...]]] = {}

    async def run(self, source: Iterable[str | BadLine], *, run_id: int) -> None:
        """Archive the ids of `source` as it is read, a batch at a time; each task ends in the
        tally (done tasks without a request), so memory holds a batch, never the list."""
        self.run_id = run_id
        self.reporter.start(0)
        intake = Intake(
            config=self.config, run_id=run_id, catalog=self.catalog, target=self.target,
            reporter=self.reporter, tally=self.tally,
        )  # fmt: skip
        first_pass = leases.work_through(
            self.catalog, intake.work(source), self._claimed, run_id=run_id,
            limit=2 * self.config.concurrency, settled=self._settled,
        )  # fmt: skip
        if self.waiter is None:
            await first_pass
        else:
            # Each poll ends its task in the tally itself: the mapping is the waiter's scratch.
            await self.waiter.alongside(first_pass, self._poll, {})

    async def _poll(self, task_id: str) -> TaskOutcome:
        """A task the waiter polls again, claimed again first: another run may hold it now."""
        row, gone = self._waiting.pop(task_id)
        for claim in await self.catalog.claim([task_id], run_id=self.run_id, limit=1):
            if (outcome := await self._claimed(claim, (task_id, row, gone))) is not None:
                return outcome
        return self._settled((await self.catalog.rows([task_id]))[task_id])

    async def _claimed(self, claim: Claim, work: Work) -> TaskOutcome | None:
        """Archive a task this run claimed, renewing the claim meanwhile; None if another run
        took it over (stopped at once, its temp files removed; unfinished here)."""
        lease = Lease(self.catalog, claim, self.config.lease_seconds)
        task_id, row, gone = work
        try:
            return await lease.hold(self.archive_task(task_id, row, gone, lease))
        except LeaseLost as exc:
            self.reporter.note(f"note: {exc}; stopped here and left to that run")
            return None

    def _settled(self, row: TaskRow) -> TaskOutcome:
        """A task another run (of a shared catalog) finished while this one waited for it."""
        outcome = elsewhere(row, refresh=self.config.refresh)
        self._end(outcome)
        return outcome

    def _end(self, outcome: TaskOutcome) -> None:
        self.tally.end(outcome)
        self.reporter.task_done(outcome)

    async def archive_task(
        self, task_id: str, row: TaskRow | None, gone: tuple[MissingInput, ...], lease: Lease
    ) -> TaskOutcome:
        """Archive one task under its claim; its TaskError becomes an outcome, recorded in the
        catalog and ended in the tally (or kept by the waiter, to poll again)."""
        folder = row.dir if row else None
        waited = False
        task: Task | None = None
        try:
            task = await self.api.fetch_task(task_id)
            if not task.is_final:
                outcome = _pending(task)
                # Handed to the waiter: reported when its waiting ends, not now.
                waited = self.waiter is not None and self.waiter.take(task)
            else:
                folder = folder or files.task_dir_name(task)
                outcome = await self._archive_final(task, folder, gone, lease)
        except TaskError as exc:
            # The API's status whenever its JSON arrived, even when that JSON is unusable.
            status = task.status if task else None
            if isinstance(exc, InvalidTaskData) and task is None:
                status = exc.task_status
            # The retrieve's own answer: 404/410 run after run means gone at source.
            answered = exc.status if isinstance(exc, ApiError) and task is None else None
            outcome = TaskOutcome(
                task_id, State.ERROR, status, dir=folder, error=str(exc), backoff=lasting(exc),
                answered=answered,
            )  # fmt: skip
        shown = None
        if task is not None and outcome.dir and outcome.state in display.SHOWN_STATES:
            shown = display.of_task(task, outcome.dir, outcome.files)
        await self.catalog.record(
            outcome, now=now(), run_id=self.run_id, display=shown, claim=lease.claim
        )
        if outcome.answered in GONE_STATUSES:
            # Counted by the catalog's own rule: the row as it now stands says if it is gone.
            recorded = await self.catalog.rows([task_id])
            outcome = gone_at_source(recorded.get(task_id), outcome)
        if waited:
            self._waiting[task_id] = (row, gone)
            self.tally.wait(outcome)
        else:
            self._end(outcome)
        return outcome

    async def _archive_final(
        self, task: Task, folder: str, gone: tuple[MissingInput, ...], lease: Lease
    ) -> TaskOutcome:
        """Outputs (of a SUCCEEDED task) and inputs (of any final task), then the sidecar."""
        if not task.has_failed:
            output_jobs(task)  # refuse a malformed task before its folder is made
        await self.target.prepare(folder)
        done = await self._reusable(task.task_id)
        lost = {m.option: m for m in gone}
        try:
            archived, over = await self._fetch_all(task, folder, done, lost, lease)
        except TaskError as exc:
            # What did verify stays recorded, so the next run fetches only the rest;
            # its commits are made durable before the catalog names them.
            await self.target.durable(folder)
            return TaskOutcome(
                task.task_id, State.ERROR, task.status, folder,
                files=tuple(done.values()), error=str(exc), backoff=lasting(exc),
                missing=tuple(lost.values()),
            )  # fmt: skip
        if over:
            self.reporter.note(
                f"warning: {task.task_id}: {len(over)} input(s) beyond max_inputs "
                f"({self.config.max_inputs}) not fetched"
            )
        missing = (*lost.values(), *over)
        await lease.confirm()  # a final name only under a claim just confirmed
        written = await self._write_sidecar(task, folder, archived, missing)
        failed = task.has_failed
        return TaskOutcome(
            task.task_id,
            State.FAILED if failed else State.ARCHIVED,
            task.status,
            folder,
            sidecar.relpath(folder),
            tuple(archived),
            error=(task.error_message or f"status {task.status}") if failed else None,
            sidecar_bytes=written,
            missing=missing,
        )

    async def _reusable(self, task_id: str) -> dict[str, ArchivedFile]:
        """Files an earlier run verified and that are still there at their size, by stem."""
        kept = {}
        known = await self.catalog.files(task_id)
        stored = await self.target.sizes({f.path.rpartition("/")[0] for f in known})
        for f in known:
            if size_in(stored, f.path) == f.size:
                kept[f.path.rsplit(".", 1)[0]] = dataclasses.replace(f, verified=SIZE_CHECKED)
        return kept

    async def _fetch_all(
        self,
        task: Task,
        folder: str,
        done: dict[str, ArchivedFile],
        lost: dict[str, MissingInput],
        lease: Lease,
    ) -> tuple[list[ArchivedFile], list[MissingInput]]:
        """All files of the task; an expired signed URL makes us fetch the task again (bounded).

        An input refused with 404/410 after a fresh fetch, or too large, goes into `lost`.
        """
        for refresh in range(self.config.url_refreshes + 1):
            jobs, over = file_jobs(task, self.config, lost=lost)
            pending = [j for j in jobs if f"{folder}/{j.stem}" not in done]
            if any(j.kind is FileKind.INPUT for j in pending):
                await self.target.prepare(f"{folder}/{inputs.FOLDER}")
            results = await asyncio.gather(
                *(self._file(task.task_id, job, folder, lease) for job in pending),
                return_exceptions=True,
            )
            failures: list[BaseException] = []
            for job, result in zip(pending, results, strict=True):
                if isinstance(result, ArchivedFile):
                    done[f"{folder}/{job.stem}"] = result
                elif missing := lost_input(job, result, refreshed=refresh > 0, config=self.config):
                    self._lose(task, job, missing, lost)
                else:
                    failures.append(result)
            if not failures:
                kept = [j for j in jobs if f"{folder}/{j.stem}" in done]
                return [for_job(done[f"{folder}/{j.stem}"], j) for j in kept], over
            fatal = [e for e in failures if not isinstance(e, UrlExpired)]
            if fatal or refresh == self.config.url_refreshes:
                raise (fatal or failures)[0]
            self.reporter.note(
                f"note: {task.task_id}: signed URLs refused, fetching the task again"
            )
            task = await self.api.fetch_task(task.task_id)
        raise AssertionError("unreachable")

    def _lose(
        self, task: Task, job: FileJob, missing: list[MissingInput], lost: dict[str, MissingInput]
    ) -> None:
        lost.update((m.option, m) for m in missing)
        first = missing[0]
        # The URL goes last: scrubbing cuts a query (here "?…") up to the next blank.
        self.reporter.note(
            f"warning: {task.task_id}: {job.label} {first.why} ({first.reason}),"
            f" archived without it: {first.url}"
        )

    async def _file(self, task_id: str, job: FileJob, folder: str, lease: Lease) -> ArchivedFile:
        """Download, verify, commit to the target; a file failing twice is kept as .rejected.

        The temp file is this claim's own (in a folder several hosts share); it takes over what
        an earlier claim of the task left, and is written only while the claim surely holds.
        """
        part = self.target.staged(folder, f"{job.stem}{lease.claim.tag}{files.PART_SUFFIX}")
        if lease.fenced:
            files.adopt(lease.temp(part), job.stem)
        artifact = job.artifact if job.kind is FileKind.ARTIFACT else None
        expected = artifact.file_size if artifact else None
        cap = self.config.max_input_bytes if job.kind is FileKind.INPUT else None
        for attempt in (1, 2):
            fetched = await self.downloader.fetch(
                job.url, part, expected_size=expected, max_bytes=cap, guard=lease.guard
            )
            ext = files.choose_extension(
                sniff.sniff(fetched.head), url_path(job.url), fetched.content_type
            )
            key = f"{folder}/{job.stem}.{ext}"
            try:
                probe, unchecked = await partfile.synced_while(part, self._check(job, ext, fetched))
                await lease.confirm()  # a final name only under a claim just confirmed
                stored = await self.target.commit(part, key, sha256=fetched.sha256)
            except ProbeTimeout as exc:
                files.discard(part)  # says nothing of the bytes: no second download
                raise ProbeTimeout(f"{job.label}: {exc}") from exc
            except VerifyError as exc:
                if attempt == 2:
                    await lease.confirm()
                    kept = await self.target.keep_rejected(part, key)
                    raise VerifyError(f"{job.label}: {exc} (kept as {kept})") from exc
                files.discard(part)
                self.reporter.note(f"note: {task_id}: {job.label}: {exc}; downloading it once more")
                continue
            except BaseException:
                files.discard(part)  # cancelled before its commit: a whole file is no resume
                raise
            archived = ArchivedFile(
                job.kind, job.index, key, fetched.size, fetched.sha256, probe, unchecked,
                FULLY_CHECKED, job.options, stored=stored,
            )  # fmt: skip
            self.reporter.file_done(task_id, archived)
            return archived
        raise AssertionError("unreachable")

    async def _check(
        self, job: FileJob, ext: str, fetched: Fetched
    ) -> tuple[ProbeResult, tuple[str, ...]]:
        """Verification by kind (probe.is_image): image headers in-process, else the engine."""
        if job.kind is FileKind.PREVIEW and not probe.is_image(ext):
            raise VerifyError("preview is not an image")
        found = await probe.examine(
            self.prober, fetched.part, ext, head=fetched.head, tail=fetched.tail, size=fetched.size
        )
        if job.kind is FileKind.INPUT:
            compare.check_input(ext, found)
        elif not probe.is_image(ext):
            compare.require_video(found, self.prober.name)
        if job.artifact is None or job.kind is not FileKind.ARTIFACT:
            return found, ()
        return found, compare.compare(job.artifact, fetched.size, found, self.tolerances)

    async def _write_sidecar(
        self,
        task: Task,
        folder: str,
        archived: Sequence[ArchivedFile],
        missing: Sequence[MissingInput],
    ) -> int:
        """Write task.yaml; its size in bytes, for the next run's check of the archive."""
        text = sidecar.render(task, archived, archived_at=now(), missing=missing)
        data = text.encode("utf-8")
        await self.target.write(f"{folder}/{sidecar.NAME}", data)
        return len(data)


def _pending(task: Task) -> TaskOutcome:
    reason = f"status {task.status or 'missing'}"
    if task.progress_ratio:
        reason += f", progress {task.progress_ratio}"
    if task.progress_text:
        reason += f": {task.progress_text}"
    return TaskOutcome(task.task_id, State.PENDING, task.status, error=reason)


async def archive(
    config: Config,
    catalog: Catalog,
    source: Iterable[str | BadLine],
    reporter: Reporter,
    *,
    run_id: int,
    tally: Tally,
    find: Finder | None = None,
    waiter: Waiter | None = None,
    on_retry: Callable[[], None] | None = None,
) -> None:
    """Open one HTTP session for the run and archive the ids of `source` (or what `find`
    chooses) through it, each task ending in `tally`; with a waiter, unfinished tasks are
    polled until it says; `on_retry` is told of each request tried again."""
    limits = http.Limits.from_config(config)
    policy = dataclasses.replace(RetryPolicy.from_config(config), on_retry=on_retry)
    # The target first: a store that refuses our credentials stops the run before any request.
    async with (
        open_target(config) as target,
        http.new_session(config) as session,
        probe.open_prober(config) as prober,
    ):
        aborted = await target.cleanup()
        if aborted:
            reporter.note(f"note: aborted {aborted} upload(s) an interrupted run left open")
        api = ApiClient.from_config(session, config, limits=limits, policy=policy)
        if find is not None:
            source = await find(api)
        downloader = Downloader(
            session=session,
            limits=limits,
            policy=policy,
            max_bytes=config.max_file_bytes,
            read_timeout=config.read_timeout,
            on_bytes=reporter.add_bytes,
        )
        archiver = Archiver(
            config, catalog, api, downloader, reporter, target, prober, tally, waiter
        )
        await archiver.run(source, run_id=run_id)
        await target.cleanup()  # nothing is in flight now: staging ends empty
