"""`status`: what the archive holds, from the catalog alone, without a single request."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

from .. import scrub
from ..catalog import Access, Catalog, open_catalog
from ..config import Config
from ..model import State
from . import common

# The states a catalog row is in (`skipped` and `gone` are what a run made of a task).
_STORED = [s for s in State if s not in (State.SKIPPED, State.GONE)]


def cmd_status(args: argparse.Namespace) -> int:
    cfg = common.load_config(args)
    common.state_dir(cfg)
    asyncio.run(_show(cfg))
    return 0


async def _show(cfg: Config) -> None:
    """Each line printed as it is made: a catalog of a million tasks is never held."""
    out = sys.stdout
    async with open_catalog(cfg, Access.READ, fetch_copy=False) as catalog:
        async for line in render(str(cfg.output_dir), catalog):
            out.write(scrub.text(line) + "\n")
    out.flush()


async def render(root: str, catalog: Catalog) -> AsyncIterator[str]:
    totals = await catalog.totals()
    yield f"archive: {root}"
    yield "tasks: " + ", ".join(f"{totals.per_state.get(s, 0)} {s}" for s in State if s in _STORED)
    yield f"files: {totals.files} verified, {_size(totals.bytes)}"
    yield await _last_run(catalog)
    async for row in catalog.tasks():
        detail = row.error if row.state in (State.PENDING, State.ERROR, State.FAILED) else row.dir
        shown = "forgotten" if row.forgotten else State.GONE if row.gone else row.state
        yield f"{shown:<8}  {row.task_id}  {detail or ''}".rstrip()


async def _last_run(catalog: Catalog) -> str:
    last = await catalog.last_run()
    if last is None:
        return "last run: never"
    if last.finished_at is None:
        return f"last run: started {last.started_at}, did not finish (killed, or running now)"
    counts = ", ".join(f"{n} {state}" for state, n in (last.summary or {}).items() if n)
    return f"last run: {last.finished_at}, exit {last.exit_code} ({counts or 'no tasks'})"


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
