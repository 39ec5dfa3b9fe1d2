"""The SQLite engine's own choices, beyond the conformance suite: a lookup of most of the
catalog reads each table once instead of looking each id up, and answers the same; an open of
a catalog unchanged since its last clean close skips the full check, and any write shows."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from archiver.catalog import Access, open_catalog, sqlite_stamp, sqlite_testing
from archiver.catalog import sqlite as engine
from archiver.catalog.sqlite_rows import STATE_COLUMNS
from archiver.catalog.sqlite_schema import SCHEMA_VERSION
from archiver.config import Config
from archiver.errors import StorageError
from archiver.model import (
    ArchivedFile,
    FileKind,
    Missing,
    MissingInput,
    ProbeResult,
    State,
    TaskOutcome,
)

from .helpers import by_task

IMAGE = ProbeResult("png", "png", 8, 8, None, None)


def files_of(folder: str) -> tuple[ArchivedFile, ...]:
    return tuple(
        ArchivedFile(FileKind.PREVIEW, 0, f"{folder}/p{n}.png", 10 + n, "a" * 64, IMAGE, ())
        for n in range(3)
    )


async def test_a_dense_lookup_answers_as_lookups_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rows, rows_with_files and unavailable give the same answers whether the whole table is
    read (most ids asked) or each id is looked up (few asked)."""
    gone = MissingInput("options.a", "https://u/a.jpg", Missing.UNAVAILABLE, "HTTP 404")
    outcomes = [
        TaskOutcome(f"t{n:03d}", State.ARCHIVED, "SUCCEEDED", f"d{n:03d}",
                    files=files_of(f"d{n:03d}"), missing=(gone,) if n % 3 else ())
        for n in range(300)
    ]  # fmt: skip
    asked = [f"t{n:03d}" for n in range(0, 320, 2)] + ["t001"]  # some unknown, one twice
    answers = []
    async with open_catalog(Config(output_dir=tmp_path), Access.CREATE) as catalog:
        await catalog.record_many([(o, None) for o in outcomes], now="n")
        for dense in (10**9, 100):  # by id, then the whole table (161 ids of 300 tasks)
            monkeypatch.setattr(engine, "DENSE", dense)
            known, files = await catalog.rows_with_files(asked)
            assert known == await catalog.rows(asked)
            answers.append((known, by_task(files), await catalog.unavailable(asked)))
    assert answers[0] == answers[1]
    rows, sizes, unavailable = answers[0]
    assert sorted(rows) == sorted(set(t for t in asked if int(t[1:]) < 300))
    assert sizes.keys() == rows.keys() and len(sizes["t002"]) == 3
    assert sorted(unavailable) == sorted(t for t in rows if int(t[1:]) % 3)


async def test_a_lookup_on_the_side_connection_still_closes_clean(tmp_path: Path) -> None:
    """rows_with_files reads through a second, read-only connection on a thread; the close
    still checkpoints the WAL away and records the clean check."""
    config = Config(output_dir=tmp_path)
    db = tmp_path / "catalog.sqlite3"
    async with open_catalog(config, Access.CREATE) as catalog:
        outcome = TaskOutcome("t1", State.ARCHIVED, "SUCCEEDED", "d1", files=files_of("d1"))
        await catalog.record_many([(outcome, None)], now="n")
        known, files = await catalog.rows_with_files(["t1", "t2"])
        assert list(known) == ["t1"] and len(list(files)) == 3
    assert not db.with_name(db.name + "-wal").exists()
    assert sqlite_stamp.unchanged(db)


async def test_a_clean_close_records_the_check_and_any_later_write_undoes_it(
    tmp_path: Path,
) -> None:
    """After a writer's clean close the record matches the file, and the file's mtime is older
    than the record's (a write in the same clock tick still changes it); a writer drops the
    record while it has the file open; a reader leaves it as it is; a write by another
    program makes the next open check in full, which finds the bad row."""
    config = Config(output_dir=tmp_path)
    db, stamp = tmp_path / "catalog.sqlite3", tmp_path / "catalog.sqlite3-checked"
    async with open_catalog(config, Access.CREATE) as catalog:
        await catalog.record(TaskOutcome("t1", State.ARCHIVED, "SUCCEEDED", "d1"), now="n")
    assert sqlite_stamp.unchanged(db)
    assert os.stat(db).st_mtime_ns < os.stat(stamp).st_mtime_ns
    async with open_catalog(config, Access.WRITE) as catalog:
        assert not stamp.exists()  # a writer killed now leaves no record
    recorded = stamp.read_bytes()
    async with open_catalog(config, Access.READ) as catalog:
        assert [r.task_id async for r in catalog.tasks()] == ["t1"]
    assert stamp.read_bytes() == recorded and sqlite_stamp.unchanged(db)
    sqlite_testing.damage(db, "bad-row")  # same size, at once: within the same tick, often
    assert not sqlite_stamp.unchanged(db)
    for access in (Access.READ, Access.WRITE):
        with pytest.raises(StorageError, match="a row does not parse"):
            async with open_catalog(config, access):
                pass
    assert not sqlite_stamp.unchanged(db)


async def test_damage_that_keeps_size_and_times_is_still_found_when_read(tmp_path: Path) -> None:
    """A bad row written with the file's size and times put back (what the record cannot see)
    passes the open, and the statement that reads it says the catalog is damaged."""
    config = Config(output_dir=tmp_path)
    db = tmp_path / "catalog.sqlite3"
    async with open_catalog(config, Access.CREATE) as catalog:
        await catalog.record(TaskOutcome("t1", State.ARCHIVED, "SUCCEEDED", "d1"), now="n")
    before = os.stat(db)
    sqlite_testing.damage(db, "bad-row")
    os.utime(db, ns=(before.st_atime_ns, before.st_mtime_ns))
    sqlite_stamp.path_of(db).write_text(sqlite_stamp._identity(os.stat(db)))
    async with open_catalog(config, Access.READ) as catalog:
        with pytest.raises(StorageError, match="the catalog is damaged"):
            [r async for r in catalog.tasks()]


async def test_totals_of_an_older_catalog_are_counted_once_migrated_and_read_as_is(
    tmp_path: Path,
) -> None:
    """A version-1 catalog's files are counted when it is migrated, later records keep the
    count, and a catalog read without migrating (read-only) is summed as it is."""
    path = tmp_path / "catalog.sqlite3"
    probe = '{"format_name": "png", "codec": "png", "width": 8, "height": 8}'
    sqlite_testing.write_version_1(
        path,
        [("t", "archived", "SUCCEEDED", "d", None, "x")],
        [("t", "d/a.png", "preview", 0, 5, "ab", probe, "[]"),
         ("t", "d/b.png", "preview", 0, 7, "cd", probe, "[]")],
    )  # fmt: skip
    config = Config(output_dir=tmp_path)
    async with open_catalog(config, Access.READ) as catalog:
        totals = await catalog.totals()
        assert (totals.files, totals.bytes) == (2, 12)
    assert sqlite_testing.schema_version(path) == 1
    async with open_catalog(config, Access.WRITE) as catalog:
        totals = await catalog.totals()
        assert (totals.files, totals.bytes) == (2, 12)
        await catalog.record(
            TaskOutcome("u", State.ARCHIVED, "SUCCEEDED", "e", files=files_of("e")), now="n"
        )
    async with open_catalog(config, Access.READ) as catalog:
        totals = await catalog.totals()
        assert (totals.files, totals.bytes) == (5, 12 + 10 + 11 + 12)


async def test_files_of_an_older_catalog_are_packed_once_migrated_and_read_as_is(
    tmp_path: Path,
) -> None:
    """A schema-8 catalog's files are looked up with its rows when it is read as it is
    (read-only, from the files themselves), then packed into each task's row when it is
    migrated: the same answer either way, and kept so by later records."""
    path, config = tmp_path / "catalog.sqlite3", Config(output_dir=tmp_path)
    async with open_catalog(config, Access.CREATE) as catalog:
        await catalog.record(TaskOutcome("t", State.ARCHIVED, "SUCCEEDED", "d",
                                         files=files_of("d")), now="n")  # fmt: skip
        await catalog.record(TaskOutcome("u", State.ERROR, error="HTTP 500"), now="n")
    sqlite_testing.undo_packed_step(path)
    answers = []
    for access, version in ((Access.READ, 8), (Access.WRITE, SCHEMA_VERSION)):
        async with open_catalog(config, access) as catalog:
            known, files = await catalog.rows_with_files(["t", "u", "v"])
            answers.append((sorted(known), by_task(files)))
        assert sqlite_testing.schema_version(path) == version
    whole = [("d/p0.png", 10), ("d/p1.png", 11), ("d/p2.png", 12)]
    assert answers[0] == answers[1] == (["t", "u"], {"t": whole})
    async with open_catalog(config, Access.WRITE) as catalog:
        await catalog.record(TaskOutcome("u", State.ARCHIVED, "SUCCEEDED", "e",
                                         files=files_of("e")[1:]), now="n")  # fmt: skip
        known, files = await catalog.rows_with_files(["t", "u"])
    assert by_task(files) == {"t": whole, "u": [("e/p1.png", 11), ("e/p2.png", 12)]}


async def test_inputs_recorded_gone_are_seen_after_a_lookup_found_none(tmp_path: Path) -> None:
    """unavailable() remembers between writes that no input is recorded gone, and a write
    that records one is seen by the next lookup."""
    gone = MissingInput("options.a", "https://u/a.jpg", Missing.UNAVAILABLE, "HTTP 404")
    async with open_catalog(Config(output_dir=tmp_path), Access.CREATE) as catalog:
        await catalog.record(TaskOutcome("t1", State.ARCHIVED, "SUCCEEDED", "d1"), now="n")
        assert await catalog.unavailable(["t1", "t2"]) == {}
        outcome = TaskOutcome("t2", State.ARCHIVED, "SUCCEEDED", "d2", missing=(gone,))
        await catalog.record(outcome, now="n")
        assert await catalog.unavailable(["t1", "t2"]) == {"t2": (gone,)}


async def test_the_listing_reads_its_index_alone(tmp_path: Path) -> None:
    """`status`'s listing (STATE_COLUMNS in folder order) is answered from index tasks_listed,
    unsorted and without the table: the index holds every column it reads."""
    async with open_catalog(Config(output_dir=tmp_path), Access.CREATE) as catalog:
        await catalog.record(TaskOutcome("t1", State.ARCHIVED, "SUCCEEDED", "d1"), now="n")
        assert [r.task_id async for r in catalog.listing()] == ["t1"]
    conn = sqlite3.connect(tmp_path / "catalog.sqlite3")
    try:
        sql = f"SELECT {STATE_COLUMNS} FROM tasks ORDER BY dir, task_id"
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        conn.close()
    assert plan == ["SCAN tasks USING COVERING INDEX tasks_listed"]
