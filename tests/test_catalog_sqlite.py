"""The SQLite engine's own choices, beyond the conformance suite: a lookup of most of the
catalog reads each table once instead of looking each id up, and answers the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.catalog import Access, open_catalog
from archiver.catalog import sqlite as engine
from archiver.config import Config
from archiver.model import (
    ArchivedFile,
    FileKind,
    Missing,
    MissingInput,
    ProbeResult,
    State,
    TaskOutcome,
)

IMAGE = ProbeResult("png", "png", 8, 8, None, None)


def files_of(folder: str) -> tuple[ArchivedFile, ...]:
    return tuple(
        ArchivedFile(FileKind.PREVIEW, 0, f"{folder}/p{n}.png", 10 + n, "a" * 64, IMAGE, ())
        for n in range(3)
    )


async def test_a_dense_lookup_answers_as_lookups_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rows, file_sizes and unavailable give the same answers whether the whole table is read
    (most ids asked) or each id is looked up (few asked)."""
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
            sizes = {t: sorted(s) async for t, s in catalog.file_sizes(asked)}
            answers.append((await catalog.rows(asked), sizes, await catalog.unavailable(asked)))
    assert answers[0] == answers[1]
    rows, sizes, unavailable = answers[0]
    assert sorted(rows) == sorted(set(t for t in asked if int(t[1:]) < 300))
    assert sizes.keys() == rows.keys() and len(sizes["t002"]) == 3
    assert sorted(unavailable) == sorted(t for t in rows if int(t[1:]) % 3)
