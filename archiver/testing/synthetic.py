"""A catalog of N synthetic archived tasks, shaped like real rows, for gallery scale tests.

Archiving 100,000 tasks for real would take 100,000 ffprobes: the rows are written through the
catalog's `record_many` instead, with display rows made by the real `display.of_task`. No media
is on disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver import files
from archiver.catalog import Access, DisplayRow, open_catalog
from archiver.config import Config
from archiver.gallery import display
from archiver.model import ArchivedFile, FileKind, ProbeResult, State, Task, TaskOutcome
from archiver.testing.tasks import EMAIL, USER_ID, default_options

WORDS = [
    "slow",
    "motion",
    "zoom",
    "cat",
    "dog",
    "fox",
    "city",
    "night",
    "neon",
    "rain",
    "forest",
    "ocean",
    "wave",
    "drone",
    "shot",
    "portrait",
    "golden",
    "hour",
    "cinematic",
    "close",
    "up",
    "wide",
    "angle",
    "snow",
    "desert",
    "mountain",
    "river",
    "robot",
    "dancer",
    "smoke",
    "light",
    "leaks",
    "35mm",
    "film",
    "grain",
    "handheld",
    "tracking",
    "shot",
    "aerial",
    "sunset",
    "fog",
    "lantern",
    "market",
]
MODELS = ("gen3a", "gen3a_turbo", "gen4_turbo", "gen4", "act_two")
START = datetime(2024, 1, 1, tzinfo=UTC)
VIDEO = ProbeResult("mov,mp4,m4a,3gp,3g2,mj2", "h264", 1280, 768, 5.21, 24.0)
IMAGE = ProbeResult("jpeg_pipe", "mjpeg", 1280, 768, None, None)


def fill(root: Path, count: int, *, distinct: int | None = None, seed: int = 7) -> int:
    """Add `count` archived tasks (a video and three previews each) to root's catalog.

    With `distinct`, only that many different tasks are made and the rest repeat them under
    new ids and folders: much faster, for tests that need many rows more than varied ones.
    """
    asyncio.run(_fill(root, count, distinct=distinct, seed=seed))
    return count


async def _fill(root: Path, count: int, *, distinct: int | None, seed: int) -> None:
    rng = random.Random(seed)
    pool = [_task(rng, n) for n in range(min(count, distinct or count))]
    made: list[tuple[DisplayRow, str]] = []
    recorded: list[tuple[TaskOutcome, DisplayRow | None]] = []
    for n in range(count):
        task = pool[n % len(pool)]
        task_uuid = task.id if n < len(pool) else str(uuid.UUID(int=rng.getrandbits(128)))
        task_id = f"user:{USER_ID}-runwayml:{EMAIL}-task:{task_uuid}"
        folder = f"{files.task_dir_name(task).rsplit('_', 1)[0]}_{task_uuid}"
        archived = _files(folder, files.slug(task.name))
        if n < len(pool):
            shown = display.of_task(task, folder, archived)
            made.append((shown, folder))
        else:
            shown = _moved(*made[n % len(pool)], folder)
        outcome = TaskOutcome(task_id, State.ARCHIVED, "SUCCEEDED", folder, files=tuple(archived))
        recorded.append((outcome, shown))
    # In key order: random-order inserts into 100 MB of B-tree take many times as long.
    recorded.sort(key=lambda r: r[0].task_id)
    async with open_catalog(Config(output_dir=root), Access.CREATE) as catalog:
        await catalog.record_many(recorded, now=datetime.now(UTC).isoformat(timespec="seconds"))


def _moved(shown: DisplayRow, old: str, folder: str) -> DisplayRow:
    """The display row of a repeated task: the same texts under another uuid (folder, task id)
    and so in another shard."""
    key = display.shard(folder)
    card = shown.card.replace(old[-36:], folder[-36:])
    return dataclasses.replace(
        shown,
        shard=key,
        card=f'{card[: card.rindex(",")]},"{key}"]',
        entry=shown.entry.replace(old[-36:], folder[-36:]),
    )


def _files(folder: str, stem: str) -> list[ArchivedFile]:
    made = [(FileKind.ARTIFACT, f"{stem}.mp4", 10_220_004, VIDEO)]
    made += [(FileKind.PREVIEW, f"{stem}.preview-{p}.jpg", 95_000 + p, IMAGE) for p in (1, 2, 3)]
    return [
        ArchivedFile(kind, 0, f"{folder}/{name}", size, _sha(f"{folder}/{name}"), probe, ())
        for kind, name, size, probe in made
    ]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _task(rng: random.Random, n: int) -> Task:
    task_uuid = str(uuid.UUID(int=rng.getrandbits(128)))
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40)))
    name = f"Gen-3 Alpha {rng.randint(1000, 9999999)}, {' '.join(prompt.split()[:4])}"
    created = (START + timedelta(seconds=rng.randint(0, 730 * 86400))).isoformat()
    seconds = rng.choice((5, 10))
    options = default_options(name, prompt, seconds, "https://cdn.example/init.jpg?sig=x")
    options["seed"] = rng.randint(0, 4294967295)
    raw = {
        "id": task_uuid,
        "name": name,
        "taskType": MODELS[n % len(MODELS)],
        "status": "SUCCEEDED",
        "createdAt": created.replace("+00:00", ".000Z"),
        "options": options,
    }
    return Task.from_json(raw, task_id=f"user:{USER_ID}-runwayml:{EMAIL}-task:{task_uuid}")
