"""What a final task asks to download: its outputs and its inputs, each a FileJob with its name.

Pure: the pipeline's list of file jobs for a task, and the rule for an input that cannot be kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass

from . import files, inputs
from .config import Config
from .errors import AssetGone, InvalidTaskData, TooLarge
from .model import ArchivedFile, Artifact, FileKind, Missing, MissingInput, Task
from .scrub import redact


@dataclass(frozen=True, slots=True)
class FileJob:
    """One URL of a task and the name (without extension) it will have in the task's folder."""

    kind: FileKind
    artifact: Artifact | None  # None for an input
    stem: str  # relative to the task's folder: "clip", "clip.preview-1", "inputs/init_image"
    url: str
    options: tuple[str, ...] = ()  # an input's option paths

    @property
    def index(self) -> int:
        """The artifact's index; -1 for an input, which belongs to the task as a whole."""
        return self.artifact.index if self.artifact else -1

    @property
    def label(self) -> str:
        return f"input {self.options[0]}" if self.options else f"{self.kind} {self.stem}"


def output_jobs(task: Task) -> list[FileJob]:
    """Every output of a task, named from the artifact and unique within the task."""
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


def file_jobs(
    task: Task, config: Config, *, lost: Collection[str]
) -> tuple[list[FileJob], list[MissingInput]]:
    """Outputs (SUCCEEDED only), then inputs; and the inputs beyond max_inputs, not fetched.

    Inputs whose option path is in `lost` (unavailable or skipped before) are left out.
    """
    jobs = [] if task.has_failed else output_jobs(task)
    if not config.inputs:
        return jobs, []
    found = inputs.select(task.options, limit=config.max_inputs, exclude=lost)
    jobs += [FileJob(FileKind.INPUT, None, r.stem, r.url, r.options) for r in found.refs]
    reason = f"beyond max_inputs ({config.max_inputs})"
    over = [MissingInput(p, redact(u), Missing.SKIPPED, reason) for p, u in found.over_limit]
    return jobs, over


def lost_input(
    job: FileJob, exc: BaseException, *, refreshed: bool, config: Config
) -> list[MissingInput]:
    """The records of an input not to keep after `exc`, one per option path; [] if it is not one.

    An input is not kept when it is too large, or when the CDN answers 404/410 to a URL from a
    fresh fetch of the task (`refreshed`): gone for good. Anything else is an ordinary failure.
    """
    if job.kind is not FileKind.INPUT:
        return []
    if isinstance(exc, TooLarge):
        cap = min(config.max_input_bytes, config.max_file_bytes)
        why, reason = Missing.SKIPPED, f"larger than {cap} bytes (max_input_bytes)"
    elif isinstance(exc, AssetGone) and refreshed:
        why, reason = (
            Missing.UNAVAILABLE,
            f"HTTP {exc.status}, also after a fresh fetch of the task",
        )
    else:
        return []
    url = redact(job.url)
    return [MissingInput(option, url, why, reason) for option in job.options]


def for_job(archived: ArchivedFile, job: FileJob) -> ArchivedFile:
    """A reused input's record from the catalog, with the option paths of this task's JSON."""
    if job.kind is FileKind.INPUT and archived.options != job.options:
        return dataclasses.replace(archived, options=job.options)
    return archived


def url_path(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]
