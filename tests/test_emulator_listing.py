"""The emulator's task listing and moving tasks, over real loopback HTTP, as the reference says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from yarl import URL

from archiver.testing import LISTING, ArtifactSpec, Emulator, Lifecycle
from archiver.testing.tasks import timestamp

SUMMARY_KEYS = {
    "taskId",
    "taskType",
    "name",
    "status",
    "createdAt",
    "progressRatio",
    "error",
    "artifacts",
}
TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]
OTHER = "user:1234-runwayml:other@example.com-task:0b7c6c59-3f0d-4c1e-9a43-6d2f1b0e5a11"


async def listing(
    http: aiohttp.ClientSession, emu: Emulator, query: str, *, status: int = 200
) -> Any:
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with http.get(f"{emu.api_url}/runwayml/tasks/?{query}", headers=headers) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def retrieve(http: aiohttp.ClientSession, emu: Emulator, task_id: str) -> Any:
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with http.get(f"{emu.api_url}/runwayml/tasks/{task_id}", headers=headers) as resp:
        assert resp.status == 200
        return await resp.json()


def seed_days(emu: Emulator, count: int) -> list[str]:
    """`count` tasks a day apart, oldest first."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        emu.add_task(artifacts=TINY, created_at=timestamp(start + timedelta(days=n)))
        for n in range(count)
    ]


@pytest.mark.parametrize(
    "query",
    [
        "limit=10",
        "offset=0",
        "offset=-1&limit=10",
        "offset=1001&limit=10",
        "offset=0&limit=0",
        "offset=0&limit=1001",
        "offset=x&limit=10",
        "offset=0&limit=10&statuses=DONE",
    ],
)
async def test_listing_outside_its_bounds_is_400(
    emu: Emulator, http: aiohttp.ClientSession, query: str
) -> None:
    """offset 0..1000 and limit 1..1000 are required; outside them (or a bad status) is a 400."""
    body = await listing(http, emu, query, status=400)
    assert set(body) == {"error", "code"} and body["code"] == 400
    assert isinstance(body["error"], str) and body["error"]


async def test_listing_pages_newest_first_without_overlap(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """Pages at growing offsets cover every task once, newest first; offset 1000 is allowed."""
    ids = seed_days(emu, 25)
    pages = [await listing(http, emu, f"offset={o}&limit=10") for o in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    listed = [t["taskId"] for p in pages for t in p]
    assert listed == ids[::-1]
    assert await listing(http, emu, "offset=1000&limit=1000") == []


@pytest.mark.parametrize("order", ["oldest", "shuffled"])
async def test_listing_order_switch(emu: Emulator, http: aiohttp.ClientSession, order: str) -> None:
    """The order can be switched; every order pages through each task exactly once."""
    ids = seed_days(emu, 30)
    emu.listing_order = order
    listed = [
        t["taskId"] for o in (0, 10, 20) for t in await listing(http, emu, f"offset={o}&limit=10")
    ]
    assert sorted(listed) == sorted(ids)
    if order == "oldest":
        assert listed == ids
    else:
        assert listed not in (ids, ids[::-1])


async def test_summary_shape(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """Summaries have the documented keys only (no options), a name cut to 200, signed URLs."""
    task = emu.add_task(name="x" * 300, artifacts=TINY)
    failed = emu.add_task("FAILED", artifacts=TINY)
    entries = {t["taskId"]: t for t in await listing(http, emu, "offset=0&limit=5")}
    summary = entries[task]
    assert set(summary) == SUMMARY_KEYS
    assert summary["name"] == "x" * 200 and summary["status"] == "SUCCEEDED"
    (art,) = summary["artifacts"]
    assert set(art) == {"assetId", "url", "filename"}
    async with http.get(URL(art["url"], encoded=True)) as resp:
        assert resp.status == 200
        assert await resp.read() == emu.media_of(task)[0].read_bytes()
    assert entries[failed]["error"]["reason"] and entries[failed]["artifacts"] == []


async def test_statuses_and_email_filters(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """`statuses` keeps the named statuses; `email` keeps one account; an unknown one is 404;
    with two accounts, a listing without `email` is a 400."""
    done = emu.add_task(artifacts=TINY)
    running = emu.add_task("RUNNING")
    alone = await listing(http, emu, "offset=0&limit=10&statuses=RUNNING,PENDING")
    assert [t["taskId"] for t in alone] == [running]
    other = emu.add_task(task_id=OTHER, artifacts=TINY)
    both = await listing(http, emu, "offset=0&limit=10", status=400)
    assert both["code"] == 400 and "email" in both["error"]
    query = "offset=0&limit=10&statuses=RUNNING,PENDING&email=someone@example.com"
    pending = await listing(http, emu, query)
    assert [t["taskId"] for t in pending] == [running]
    mine = await listing(http, emu, "offset=0&limit=10&email=someone@example.com")
    assert {t["taskId"] for t in mine} == {done, running}
    theirs = await listing(http, emu, "offset=0&limit=10&email=other@example.com")
    assert [t["taskId"] for t in theirs] == [other]
    missing = await listing(http, emu, "offset=0&limit=10&email=nobody@example.com", status=404)
    assert missing["code"] == 404 and "nobody@example.com" in missing["error"]


async def test_listing_faults_and_auth(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """Faults armed for LISTING hit listing requests only; a wrong token is a 401."""
    task = emu.add_task(artifacts=TINY)
    emu.api_fault(LISTING, status=503, times=1)
    await listing(http, emu, "offset=0&limit=10", status=503)
    assert (await retrieve(http, emu, task))["taskId"] == task
    emu.token = "another"
    async with http.get(f"{emu.api_url}/runwayml/tasks/?offset=0&limit=1") as resp:
        assert resp.status == 401


async def test_fault_skip_lets_requests_through_first(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """A fault with skip=2 spares the first two matching requests and hits the third."""
    task = emu.add_task(artifacts=TINY)
    emu.api_fault(task, status=500, skip=2)
    await retrieve(http, emu, task)
    await retrieve(http, emu, task)
    async with http.get(
        f"{emu.api_url}/runwayml/tasks/{task}", headers={"Authorization": f"Bearer {emu.token}"}
    ) as resp:
        assert resp.status == 500
    await retrieve(http, emu, task)


async def test_task_moves_on_with_polls(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """PENDING (ETA counting down) -> RUNNING (progress rising) -> SUCCEEDED, one step a poll."""
    task = emu.add_task(artifacts=TINY, lifecycle=Lifecycle(pending=2, running=2, eta=40))
    seen = [await retrieve(http, emu, task) for _ in range(6)]
    assert [s["status"] for s in seen] == ["PENDING"] * 2 + ["RUNNING"] * 2 + ["SUCCEEDED"] * 2
    assert [s["estimatedTimeToStartSeconds"] for s in seen[:2]] == [40, 20]
    assert [s["progressRatio"] for s in seen[2:5]] == ["0.00", "0.50", "1"]
    assert seen[3]["artifacts"] == [] and len(seen[4]["artifacts"]) == 1
    # Listing shows where it stands without counting as a poll.
    (entry,) = await listing(http, emu, "offset=0&limit=10")
    assert entry["status"] == "SUCCEEDED"


async def test_task_that_fails_or_never_ends(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """A lifecycle can end in FAILED with an error, or keep RUNNING forever, creeping on."""
    failing = emu.add_task(lifecycle=Lifecycle(pending=0, running=1, final="FAILED"))
    endless = emu.add_task(lifecycle=Lifecycle(pending=0, running=None))
    assert [(await retrieve(http, emu, failing))["status"] for _ in range(2)] == [
        "RUNNING",
        "FAILED",
    ]
    assert (await retrieve(http, emu, failing))["error"]["reason"]
    ratios = [float((await retrieve(http, emu, endless))["progressRatio"]) for _ in range(30)]
    assert ratios == sorted(ratios) and ratios[-1] < 1
    assert (await retrieve(http, emu, endless))["status"] == "RUNNING"


def test_lifecycle_by_time() -> None:
    """Per second, the stage follows the time since seeding: ETA and progress move with it."""
    life = Lifecycle(pending=10, running=20, per="second", eta=10)
    assert life.at(0).status == "PENDING" and life.at(0).estimated_start == 10
    assert life.at(5).estimated_start == 5
    assert life.at(20).status == "RUNNING" and life.at(20).progress_ratio == "0.50"
    assert life.at(30).status == "SUCCEEDED" and life.at(30).estimated_start is None


async def test_2500_tasks_share_media_and_page_fully(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """2,500 tasks share a few media files: the listing serves all reachable pages of them."""
    ids = [emu.add_task(artifacts=TINY) for _ in range(2500)]
    files = {p for t in ids[:50] for p in emu.media_of(t)}
    assert len(files) == 2  # the tiny artifact, and the init_image input every task names
    first = await listing(http, emu, "offset=0&limit=1000")
    last = await listing(http, emu, "offset=1000&limit=1000")
    assert len(first) == len(last) == 1000
    assert [t["taskId"] for t in first + last] == ids[::-1][:2000]
