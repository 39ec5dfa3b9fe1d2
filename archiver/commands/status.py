"""`status`: what the archive holds, from the catalog alone, without a single request."""

from __future__ import annotations

import argparse
import asyncio

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
    for line in asyncio.run(_lines(cfg)):
        print(scrub.text(line))
    return 0


async def _lines(cfg: Config) -> list[str]:
    async with open_catalog(cfg, Access.READ, fetch_copy=False) as catalog:
        return await render(str(cfg.output_dir), catalog)


async def render(root: str, catalog: Catalog) -> list[str]:
    totals = await catalog.totals()
    lines = [
        f"archive: {root}",
        "tasks: " + ", ".join(f"{totals.per_state.get(s, 0)} {s}" for s in State if s in _STORED),
        f"files: {totals.files} verified, {_size(totals.bytes)}",
        await _last_run(catalog),
    ]
    async for row in catalog.tasks():
        detail = row.error if row.state in (State.PENDING, State.ERROR, State.FAILED) else row.dir
        shown = "forgotten" if row.forgotten else State.GONE if row.gone else row.state
        lines.append(f"{shown:<8}  {row.task_id}  {detail or ''}".rstrip())
    return lines


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
