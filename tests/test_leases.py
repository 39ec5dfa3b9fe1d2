"""Claims and leases (archiver/leases.py) on a real PostgreSQL catalog: runs working through
one shared list, and a task whose claim is taken over stopping at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from archiver import files, leases
from archiver.catalog.rows import Claim, TaskRow
from archiver.errors import LeaseLost
from archiver.intake import Work
from archiver.model import State, TaskOutcome

from .pg import NOW, opened


async def test_runs_sharing_a_list_work_each_task_exactly_once(pg_url: str) -> None:
    """Three runs over the same 60 ids, claiming as slots free up: every task once in all."""
    ids = [f"task-{n:03}" for n in range(60)]
    done: Counter[str] = Counter()
    by_run: dict[str, list[str]] = {}

    async def one_run(host: str) -> None:
        async with opened(pg_url, host=host) as catalog:
            await catalog.remember_given(ids, now=NOW)
            run_id = await catalog.begin_run(now=NOW)
            # As a run does: what was done before it began is left alone (holds.py).
            known = await catalog.rows(ids)
            todo = [t for t in ids if not known[t].is_done(refresh=False)]

            async def work() -> AsyncIterator[Work]:
                for task_id in todo:  # as intake.py hands a run's tasks over, row and all
                    yield task_id, known[task_id], ()

            async def worker(claim: Claim, item: Work) -> None:
                assert item[0] == claim.task_id
                await asyncio.sleep(0.01)  # the task's work; other runs claim meanwhile
                done[claim.task_id] += 1
                by_run.setdefault(host, []).append(claim.task_id)
                outcome = TaskOutcome(claim.task_id, State.ARCHIVED, dir=claim.task_id)
                await catalog.record(outcome, now=NOW, run_id=run_id, claim=claim)

            seen: list[TaskRow] = []
            await leases.work_through(
                catalog, work(), worker, run_id=run_id, limit=4, settled=seen.append
            )
            assert {r.task_id for r in seen} | set(by_run.get(host, [])) == set(todo)

    await asyncio.gather(*(one_run(h) for h in ("h1", "h2", "h3")))
    assert done == Counter(ids)
    assert len(by_run) >= 2  # the work was shared, not done by whoever came first alone


async def test_a_claim_taken_over_stops_its_task_and_removes_its_temp_files(
    pg_url: str, tmp_path: Path
) -> None:
    """Another run takes the claim: the next renewal cancels the work, its temp file goes."""
    async with opened(pg_url, lease=0.6) as catalog:
        await catalog.remember_given(["t"], now=NOW)
        run_id = await catalog.begin_run(now=NOW)
        [claim] = await catalog.claim(["t"], run_id=run_id, limit=1)
        lease = leases.Lease(catalog, claim, 0.6)
        part = lease.temp(tmp_path / f"video{claim.tag}.part")
        part.write_bytes(b"partial")
        started = asyncio.Event()

        async def work() -> None:
            started.set()
            await asyncio.Event().wait()  # streams on until stopped

        async def take_over() -> None:
            await started.wait()
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("UPDATE tasks SET claim_token = nextval('claim_tokens')")

        with pytest.raises(LeaseLost, match="taken over"):
            await asyncio.gather(lease.hold(work()), take_over())
        assert not part.exists()
        with pytest.raises(LeaseLost):
            await lease.confirm()


def test_adopt_takes_over_the_largest_earlier_temp_file(tmp_path: Path) -> None:
    """A new claim resumes from the largest temp file an earlier claim left; the rest go."""
    (tmp_path / "clip.part").write_bytes(b"12")
    (tmp_path / "clip.~3.part").write_bytes(b"12345")
    (tmp_path / "clip.~3.part.etag").write_text('{"etag": "\\"v1\\""}')
    (tmp_path / "clip.preview-1.~3.part").write_bytes(b"other file")
    mine = tmp_path / "clip.~9.part"
    files.adopt(mine, "clip")
    assert mine.read_bytes() == b"12345"
    assert (tmp_path / "clip.~9.part.etag").read_text() == '{"etag": "\\"v1\\""}'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clip.preview-1.~3.part",
        "clip.~9.part",
        "clip.~9.part.etag",
    ]
