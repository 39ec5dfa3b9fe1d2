"""The catalog's conformance suite: every engine behind the `Catalog` protocol behaves alike.

Each test talks to the protocol only. An engine joins by adding its name to ENGINES and an
async context manager that yields it open and empty to OPENERS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from archiver import scrub
from archiver.catalog import (
    NEVER_FETCHED,
    NOT_FETCHED,
    Access,
    Catalog,
    DisplayRow,
    TaskRow,
    TaskState,
    open_catalog,
)
from archiver.config import CatalogUrl, Config
from archiver.errors import NoArchive
from archiver.model import (
    ArchivedFile,
    FileKind,
    Missing,
    MissingInput,
    ProbeResult,
    State,
    TaskOutcome,
)

from .conftest import TOKEN
from .helpers import by_task


@asynccontextmanager
async def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Catalog]:
    async with open_catalog(Config(output_dir=tmp_path / "archive"), Access.CREATE) as catalog:
        yield catalog


@asynccontextmanager
async def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Catalog]:
    """An empty database of the session's throwaway PostgreSQL cluster (tests/pg.py)."""
    url = request.getfixturevalue("pg_url")
    config = Config(output_dir=tmp_path / "archive", catalog=CatalogUrl.parse(url))
    async with open_catalog(config, Access.CREATE) as catalog:
        yield catalog


Opener = Callable[[Path, pytest.FixtureRequest], AbstractAsyncContextManager[Catalog]]
OPENERS: dict[str, Opener] = {"sqlite": _sqlite, "postgres": _postgres}
ENGINES = ["sqlite", "postgres"]

SHOWN = (State.ARCHIVED, State.FAILED)
VIDEO = ProbeResult("mov,mp4", "h264", 1280, 768, 5.21, 24.0, "aac")
IMAGE = ProbeResult("jpeg_pipe", "mjpeg", 1280, 768, None, None)


@pytest.fixture(params=ENGINES)
async def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Catalog]:
    async with OPENERS[request.param](tmp_path, request) as opened:
        yield opened


def files_of(folder: str, *, video_bytes: int = 1000) -> tuple[ArchivedFile, ...]:
    video = ArchivedFile(
        FileKind.ARTIFACT, 0, f"{folder}/v.mp4", video_bytes, "a" * 64, VIDEO, ("fps",),
        stored="sha256:x-1",
    )  # fmt: skip
    return (
        video,
        ArchivedFile(FileKind.PREVIEW, 0, f"{folder}/v.preview-1.jpg", 50, "b" * 64, IMAGE, ()),
        ArchivedFile(FileKind.INPUT, -1, f"{folder}/inputs/init.jpg", 70, "c" * 64, IMAGE, ()),
    )


def archived(task_id: str, folder: str, **kwargs: object) -> TaskOutcome:
    return TaskOutcome(
        task_id, State.ARCHIVED, "SUCCEEDED", folder, f"{folder}/task.yaml",
        files_of(folder), sidecar_bytes=321, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def lasting(task_id: str, error: str) -> TaskOutcome:
    return TaskOutcome(task_id, State.ERROR, "SUCCEEDED", "d", error=error, backoff=True)


def display_of(folder: str, *, created: str = "2024-08-01", shard: str = "0a") -> DisplayRow:
    return DisplayRow(2, created, shard, "3:1120", f'["{folder}"]', f'"{folder}":{{}}')


async def test_a_recorded_task_reads_back_with_its_files(catalog: Catalog) -> None:
    """An outcome's row and files read back exactly, files ordered by artifact, kind, path."""
    await catalog.record(archived("t1", "d1"), now="2024-08-01T00:00:00+00:00", run_id=1)
    rows = await catalog.rows(["t1", "unknown"])
    assert rows == {
        "t1": TaskRow("t1", State.ARCHIVED, "SUCCEEDED", "d1", None,
                      "2024-08-01T00:00:00+00:00", 321, 0, None, None, None, None),
    }  # fmt: skip
    expected = sorted(files_of("d1"), key=lambda f: (f.artifact_index, f.kind, f.path))
    assert await catalog.files("t1") == expected
    assert await catalog.files("unknown") == []


async def test_a_later_outcome_holds_exactly_its_own_files(catalog: Catalog) -> None:
    """Recording again replaces the task's row and its files: none of the old ones remain."""
    await catalog.record(archived("t1", "d1"), now="n1")
    fewer = TaskOutcome("t1", State.ERROR, "SUCCEEDED", "d1", files=files_of("d1")[2:],
                        error="boom")  # fmt: skip
    await catalog.record(fewer, now="n2")
    (row,) = (await catalog.rows(["t1"])).values()
    assert (row.state, row.error, row.updated_at, row.sidecar_bytes) == (
        "error",
        "boom",
        "n2",
        None,
    )
    assert await catalog.files("t1") == list(files_of("d1")[2:])


async def test_a_lasting_error_counts_the_runs_it_repeats_in(catalog: Catalog) -> None:
    """The same lasting error counts up with its run and time; another error starts at 1; a
    passing error or success starts again at 0."""
    counts = []
    for run_id, outcome in enumerate(
        [lasting("t", "HTTP 404"), lasting("t", "HTTP 404"), lasting("t", "HTTP 410"),
         TaskOutcome("t", State.ERROR, error="HTTP 503"), lasting("t", "HTTP 503"),
         archived("t", "d")],
        start=1,
    ):  # fmt: skip
        await catalog.record(outcome, now=f"when-{run_id}", run_id=run_id)
        row = (await catalog.rows(["t"]))["t"]
        counts.append((row.failures, row.failed_run, row.failed_at))
    assert counts == [
        (1, 1, "when-1"), (2, 2, "when-2"), (1, 3, "when-3"),
        (0, None, None), (1, 5, "when-5"), (0, None, None),
    ]  # fmt: skip


async def test_answered_and_forgotten_read_back(catalog: Catalog) -> None:
    """A retrieve's error status is stored as `answered`; `forget` marks known and unknown ids
    (an unknown one gets a pending row), keeps the first time and nothing else of the row or
    its files; recording an outcome forgets it no more; `gone` after three 404s unarchived."""
    for run_id in (1, 2, 3):
        gone = TaskOutcome("g", State.ERROR, error="HTTP 404", backoff=True, answered=404)
        await catalog.record(gone, now=f"n{run_id}", run_id=run_id)
    await catalog.record(archived("a", "d1"), now="n1")
    row = (await catalog.rows(["g"]))["g"]
    assert (row.answered, row.failures, row.gone, row.forgotten) == (404, 3, True, False)
    await catalog.forget(["g", "a", "new"], now="f1")
    await catalog.forget(["a"], now="f2")
    rows = await catalog.rows(["g", "a", "new"])
    assert {t: r.forgotten_at for t, r in rows.items()} == {"g": "f1", "a": "f1", "new": "f1"}
    assert (rows["a"].state, rows["a"].dir, rows["a"].sidecar_bytes) == ("archived", "d1", 321)
    assert len(await catalog.files("a")) == 3
    assert (rows["new"].state, rows["new"].error) == ("pending", NEVER_FETCHED)
    assert (rows["g"].answered, rows["g"].failures) == (404, 3)
    await catalog.record(archived("g", "d2"), now="n4")
    row = (await catalog.rows(["g"]))["g"]
    assert (row.forgotten_at, row.answered, row.gone) == (None, None, False)
    listed = {r.task_id: r.forgotten for r in [r async for r in catalog.tasks()]}
    assert listed == {"g": False, "a": True, "new": True}


async def test_secrets_are_scrubbed_before_they_are_stored(catalog: Catalog) -> None:
    """An error or status holding the token is stored with the token replaced."""
    scrub.add_secret(TOKEN)
    leaky = TaskOutcome("t", State.ERROR, f"BAD {TOKEN}", error=f"answered with {TOKEN}")
    await catalog.record(leaky, now="n")
    row = (await catalog.rows(["t"]))["t"]
    assert TOKEN not in f"{row.status} {row.error}" and "<token>" in str(row.error)


async def test_many_ids_are_looked_up_in_batches(catalog: Catalog) -> None:
    """rows, rows_with_files and unavailable answer for thousands of ids at once, and only for
    those asked about that the catalog knows."""
    gone = MissingInput("options.a", "https://u/a.jpg", Missing.UNAVAILABLE, "HTTP 404")
    outcomes = [archived(f"t{n:05d}", f"d{n:05d}", missing=(gone,)) for n in range(2500)]
    await catalog.record_many([(o, None) for o in outcomes], now="n")
    asked = [f"t{n:05d}" for n in range(0, 3000, 2)]  # every other one, some unknown
    rows = await catalog.rows(asked)
    assert sorted(rows) == [t for t in asked if int(t[1:]) < 2500]
    known, files = await catalog.rows_with_files(set(asked))
    sizes = by_task(files)
    assert known == rows and sizes.keys() == rows.keys()
    assert sizes["t00002"] == sorted((f.path, f.size) for f in files_of("d00002"))
    assert (await catalog.unavailable(asked)).keys() == rows.keys()


async def test_the_files_looked_up_with_the_rows_follow_every_change(catalog: Catalog) -> None:
    """rows_with_files names each task's files at their sizes as they are now: after a record,
    a record of fewer files (one resized), a file marked damaged, a forget, and for a task
    with no files or none recorded at all."""

    async def sizes() -> dict[str, list[tuple[str, int | None]]]:
        known, files = await catalog.rows_with_files(["t1", "t2", "t3", "unknown"])
        assert sorted(known) == ["t1", "t2", "t3"]
        return by_task(files)

    await catalog.record(archived("t1", "d1"), now="n")
    await catalog.record(archived("t2", "d2"), now="n")
    await catalog.record(TaskOutcome("t3", State.ERROR, error="HTTP 500"), now="n")
    whole = [("d1/inputs/init.jpg", 70), ("d1/v.mp4", 1000), ("d1/v.preview-1.jpg", 50)]
    assert await sizes() == {"t1": whole, "t2": [(p.replace("d1", "d2"), n) for p, n in whole]}
    fewer = dataclasses.replace(archived("t2", "d2"), files=files_of("d2", video_bytes=9)[:2])
    await catalog.record(fewer, now="n")
    await catalog.mark_damaged("t1", ["d1/v.mp4"], reason="gone", now="n")
    await catalog.forget(["t1"], now="n")
    assert await sizes() == {
        "t1": [("d1/inputs/init.jpg", 70), ("d1/v.preview-1.jpg", 50)],
        "t2": [("d2/v.mp4", 9), ("d2/v.preview-1.jpg", 50)],
    }


async def test_every_task_streams_in_folder_order(catalog: Catalog) -> None:
    """tasks() yields every task (or those in the states asked for), folderless ones first,
    then by folder and id, through more rows than fit one page."""
    await catalog.record_many(
        [(archived(f"a{n:05d}", f"{9999 - n:05d}"), None) for n in range(5000)], now="n"
    )
    await catalog.remember_listed([("p2", "RUNNING"), ("p1", None)], now="n")
    await catalog.record(lasting("e1", "HTTP 404"), now="n")
    every = [row.task_id async for row in catalog.tasks()]
    assert every[:2] == ["p1", "p2"] and len(every) == 5003
    assert every[2:] == [f"a{n:05d}" for n in range(4999, 4990, -1)] + every[11:]
    dirs = [row.dir async for row in catalog.tasks() if row.dir is not None]
    assert dirs == sorted(dirs)
    undone = TaskRow.undone_states(refresh=False)
    assert [row.task_id async for row in catalog.tasks(states=undone)] == ["p1", "p2", "e1"]


async def test_the_listing_is_each_task_row_s_shown_columns_in_the_same_order(
    catalog: Catalog,
) -> None:
    """listing() gives, task for task in tasks()' order, the columns `status` shows, through
    more rows than fit one page, with forgotten and gone tasks as their rows say."""
    await catalog.record_many(
        [(archived(f"a{n:05d}", f"{4999 - n:05d}"), None) for n in range(4000)], now="n"
    )
    await catalog.remember_listed([("p1", "RUNNING")], now="n")
    await catalog.forget(["a00007", "never-seen"], now="n")
    for run in range(1, 4):
        gone = dataclasses.replace(lasting("g1", "HTTP 404"), dir=None, answered=404)
        await catalog.record(gone, now="n", run_id=run)
    rows = [r async for r in catalog.tasks()]
    shown = [r async for r in catalog.listing()]
    assert shown == [
        TaskState(r.task_id, r.state, r.dir, r.error, r.failures, r.answered, r.forgotten_at)
        for r in rows
    ]
    assert len(shown) == 4003 and [s.task_id for s in shown if s.gone] == ["g1"]
    assert [s.task_id for s in shown if s.forgotten_at] == ["never-seen", "a00007"]


async def test_listed_tasks_are_pending_until_fetched_and_known_ones_keep_their_row(
    catalog: Catalog,
) -> None:
    """A listed task new to the catalog is pending (not fetched yet, with its listed status);
    a task the catalog knows keeps its state, status and folder."""
    await catalog.record(archived("done", "d"), now="n1")
    await catalog.remember_listed([("done", "SUCCEEDED"), ("new", "RUNNING")], now="n2")
    rows = await catalog.rows(["done", "new"])
    assert (rows["new"].state, rows["new"].status, rows["new"].error) == (
        "pending", "RUNNING", NOT_FETCHED,
    )  # fmt: skip
    assert (rows["done"].state, rows["done"].dir, rows["done"].updated_at) == (
        "archived",
        "d",
        "n1",
    )


async def test_damaged_files_are_forgotten_and_the_task_is_put_in_error(catalog: Catalog) -> None:
    """mark_damaged drops exactly the named files and sets the task in error with the reason."""
    await catalog.record(archived("t", "d"), now="n1")
    await catalog.mark_damaged("t", ["d/v.mp4"], reason="verify: 1 file", now="n2")
    row = (await catalog.rows(["t"]))["t"]
    assert (row.state, row.error, row.updated_at) == ("error", "verify: 1 file", "n2")
    assert [f.path for f in await catalog.files("t")] == ["d/inputs/init.jpg", "d/v.preview-1.jpg"]


async def test_inputs_gone_for_good_are_kept(catalog: Catalog) -> None:
    """Only unavailable inputs are kept, in the order recorded, even when a later outcome no
    longer names them."""
    first = MissingInput("options.b", "https://u/b.jpg", Missing.UNAVAILABLE, "HTTP 404")
    second = MissingInput("options.a", "https://u/a.jpg", Missing.UNAVAILABLE, "HTTP 410")
    skipped = MissingInput("options.v", "https://u/v.mp4", Missing.SKIPPED, "too large")
    await catalog.record(archived("t", "d", missing=(first, skipped)), now="n1")
    await catalog.record(archived("t", "d", missing=(second,)), now="n2")
    await catalog.record(TaskOutcome("t", State.ERROR, error="x"), now="n3")
    assert await catalog.unavailable(["t", "other"]) == {"t": (first, second)}


async def test_runs_are_recorded_from_start_to_end(catalog: Catalog) -> None:
    """No run before the first; an open run has no end; an ended one has its code and summary."""
    assert await catalog.last_run() is None and await catalog.next_run_id() == 1
    first = await catalog.begin_run(now="s1")
    await catalog.end_run(first, now="e1", exit_code=1, summary={"archived": 2, "error": 1})
    second = await catalog.begin_run(now="s2")
    assert second > first and await catalog.next_run_id() == second + 1
    last = await catalog.last_run()
    assert last is not None and (last.started_at, last.finished_at, last.exit_code) == (
        "s2", None, None,
    )  # fmt: skip
    await catalog.end_run(second, now="e2", exit_code=0, summary={"archived": 3})
    last = await catalog.last_run()
    assert last is not None and (last.finished_at, last.exit_code) == ("e2", 0)
    assert last.summary == {"archived": 3}


async def test_totals_count_tasks_per_state_and_the_files(catalog: Catalog) -> None:
    """Tasks per state, and the count and bytes of every file."""
    await catalog.record(archived("a", "da"), now="n")
    await catalog.record(archived("b", "db"), now="n")
    await catalog.record(lasting("c", "HTTP 404"), now="n")
    totals = await catalog.totals()
    assert dict(totals.per_state) == {State.ARCHIVED: 2, State.ERROR: 1}
    assert (totals.files, totals.bytes) == (6, 2 * (1000 + 50 + 70))


async def test_totals_follow_the_files_as_they_are_replaced_and_dropped(catalog: Catalog) -> None:
    """The count and bytes of the files stay those of the files the catalog holds, through a
    task recorded again with fewer files, files marked damaged, and record_many."""
    await catalog.record(archived("a", "da"), now="n")
    await catalog.record(archived("b", "db"), now="n")
    fewer = archived("a", "da")
    await catalog.record(dataclasses.replace(fewer, files=fewer.files[:1]), now="n")
    await catalog.mark_damaged("b", ["db/v.mp4"], reason="gone", now="n")
    await catalog.record_many(
        [(archived("c", "dc"), None), (lasting("b", "HTTP 404"), None)], now="n"
    )
    held = [f async for _, f in catalog.all_files()]
    totals = await catalog.totals()
    assert (
        (totals.files, totals.bytes) == (len(held), sum(f.size for f in held)) == (4, 1000 + 1120)
    )


async def test_all_files_stream_in_task_order(catalog: Catalog) -> None:
    """Every file with its task id, ordered by task, artifact, kind, path."""
    await catalog.record(archived("b", "db"), now="n")
    await catalog.record(archived("a", "da"), now="n")
    listed = [(t, f.path) async for t, f in catalog.all_files()]
    assert listed == [
        ("a", "da/inputs/init.jpg"), ("a", "da/v.mp4"), ("a", "da/v.preview-1.jpg"),
        ("b", "db/inputs/init.jpg"), ("b", "db/v.mp4"), ("b", "db/v.preview-1.jpg"),
    ]  # fmt: skip


async def test_display_rows_are_current_until_their_files_change(catalog: Catalog) -> None:
    """A shown task without a display row is stale; with one made from its files it is not;
    once its files change (count or bytes) it is stale again; unshown states never are."""
    await catalog.record(archived("a", "da"), now="n")
    await catalog.record(lasting("e", "HTTP 404"), now="n")
    stale = await catalog.stale_display(SHOWN, 2)
    assert [(s.task_id, s.dir, s.status) for s in stale] == [("a", "da", "SUCCEEDED")]
    await catalog.record_display("a", display_of("da"))
    assert await catalog.stale_display(SHOWN, 2) == []
    assert [s.task_id for s in await catalog.stale_display(SHOWN, 3)] == ["a"]
    changed = TaskOutcome(
        "a", State.ARCHIVED, "SUCCEEDED", "da", files=files_of("da", video_bytes=9)
    )
    await catalog.record(changed, now="n2")
    assert [s.task_id for s in await catalog.stale_display(SHOWN, 2)] == ["a"]


async def test_cards_and_entries_come_back_by_date_and_shard(catalog: Catalog) -> None:
    """Cards newest first; entries per shard by id; a shard's stamp changes with its rows."""
    for task_id, created, shard in [("a", "2024-01", "0a"), ("b", "2024-03", "0b"),
                                    ("c", "2024-02", "0a")]:  # fmt: skip
        await catalog.record(
            archived(task_id, f"d{task_id}"), now="n",
            display=display_of(f"d{task_id}", created=created, shard=shard),
        )  # fmt: skip
    await catalog.record(lasting("x", "HTTP 404"), now="n")
    assert await catalog.display_cards(SHOWN) == ['["db"]', '["dc"]', '["da"]']
    assert await catalog.display_entries(SHOWN, "0a") == ['"da":{}', '"dc":{}']
    before = await catalog.display_stamps(SHOWN)
    assert sorted(before) == ["0a", "0b"]
    await catalog.record_display("c", display_of("dc", created="2024-02", shard="0b"))
    after = await catalog.display_stamps(SHOWN)
    assert after["0a"] != before["0a"] and after["0b"] != before["0b"]
    assert await catalog.display_entries(SHOWN, "0a") == ['"da":{}']
    await catalog.record(lasting("a", "HTTP 404"), now="n2")  # no longer shown
    assert await catalog.display_cards(SHOWN) == ['["db"]', '["dc"]']


async def test_record_many_stores_what_record_stores(catalog: Catalog) -> None:
    """A batch of outcomes with display rows reads back as the same outcomes recorded singly."""
    await catalog.record_many(
        [(archived("a", "da"), display_of("da")), (lasting("b", "HTTP 404"), None)], now="n"
    )
    rows = await catalog.rows(["a", "b"])
    assert (rows["a"].state, rows["b"].state, rows["b"].failures) == ("archived", "error", 1)
    expected = sorted(files_of("da"), key=lambda f: (f.artifact_index, f.kind, f.path))
    assert await catalog.files("a") == expected
    assert await catalog.display_cards(SHOWN) == ['["da"]']


@pytest.mark.parametrize("access", [Access.READ, Access.WRITE])
async def test_reading_or_writing_no_archive_is_refused(tmp_path: Path, access: Access) -> None:
    """READ and WRITE of an archive that has no catalog raise NoArchive and make nothing."""
    config = Config(output_dir=tmp_path / "none")
    with pytest.raises(NoArchive, match="no archive at"):
        async with open_catalog(config, access):
            pass
    assert not (tmp_path / "none").exists()
