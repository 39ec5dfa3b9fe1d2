"""`list` (and `run --dry-run`): what a run with the same arguments would do, having made no
request but the listing's: each task's action, its state in the archive, its listed status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .. import scrub, storage
from ..catalog import Access, Catalog, TaskRow, open_catalog
from ..config import Config
from ..discover import Discovery, ListedTask, Query
from ..errors import NoArchive
from ..holds import Holds
from ..model import FileSizes, State
from ..selection import forgotten, listing, listing_json, run_ids, unfinished
from ..tasklist import TaskList
from . import common

NEW = "new"  # the catalog state shown for a task the archive has never seen
FORGOTTEN = "forgotten"  # ... and for a task `forget` dropped from what runs try


def cmd_list(args: argparse.Namespace) -> int:
    cfg = common.load_config(args, refresh=True if args.refresh else None)
    common.state_dir(cfg)
    tasks, query = common.selection(args, shared=cfg.catalog is not None)
    return show_plan(cfg, tasks, query, as_json=args.json)


def show_plan(cfg: Config, tasks: TaskList, query: Query | None, *, as_json: bool) -> int:
    """Print what a run would do; 1 if a line, an entry or the listing was bad."""
    if query is not None:
        common.require_token(cfg)
    plan, discovery = asyncio.run(_plan(cfg, tasks, query))  # Ctrl-C: KeyboardInterrupt, 130
    problems = [f"error: {b}" for b in tasks.bad + (discovery.bad if discovery else [])]
    problems += [f"error: {e}" for e in discovery.errors] if discovery else []
    for problem in problems:
        print(scrub.text(problem), file=sys.stderr)
    if as_json:
        print(scrub.text(render_json(plan, discovery)))
    else:
        for line in render_text(plan):
            print(scrub.text(line))
        print(scrub.text(summary_line(plan, discovery)), file=sys.stderr)
        for reach in discovery.reach if discovery else []:
            print(scrub.text(f"note: {reach.describe()}"), file=sys.stderr)
    return 1 if problems else 0


async def _plan(
    cfg: Config, tasks: TaskList, query: Query | None
) -> tuple[list[Entry], Discovery | None]:
    """Each task of the run, with what it would do, decided as that run decides."""
    discovery = None if query is None else await listing(cfg, query)
    try:
        async with open_catalog(cfg, Access.READ, fetch_copy=False) as catalog:
            wanted = discovery is not None or catalog.shared
            undone = await unfinished(catalog, refresh=cfg.refresh) if wanted else []
            dropped = await forgotten(catalog, discovery)
            ids = run_ids(tasks.ids, discovery, undone, forgotten=dropped, shared=catalog.shared)
            known, files = await catalog.rows_with_files(ids)
            holds = await _holds(cfg, catalog, known, files)
    except NoArchive:  # no archive yet: every task is new, and fetched
        ids, known, holds = run_ids(tasks.ids, discovery, ()), {}, Holds(cfg, 1, set())
    return entries(ids, known, discovery, holds), discovery


async def _holds(
    cfg: Config, catalog: Catalog, known: Mapping[str, TaskRow], files: FileSizes
) -> Holds:
    """What the next run would leave alone, the archive checked as that run will check it."""
    async with storage.open_target(cfg) as target:
        return await Holds.of(cfg, await catalog.next_run_id(), target, known, files)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the plan."""

    task_id: str
    action: str  # "fetch", "skip" (done, and whole on disk) or "hold" (backing off an error)
    state: str  # the catalog's state, "gone", "forgotten", or "new"
    listed: ListedTask | None


def entries(
    ids: Sequence[str],
    known: Mapping[str, TaskRow],
    discovery: Discovery | None,
    holds: Holds,
) -> list[Entry]:
    """Each id with what the run `holds` describes would do, decided as that run decides."""
    listed = discovery.by_id() if discovery else {}
    rows = []
    for task_id in ids:
        row = known.get(task_id)
        held = holds.held(row) if row is not None else None
        action = "fetch" if held is None else "skip" if held.state is State.SKIPPED else "hold"
        state = NEW if row is None else _shown_state(row)
        rows.append(Entry(task_id, action, state, listed.get(task_id)))
    return rows


def _shown_state(row: TaskRow) -> str:
    """The catalog's state, or what `forget` and three 404s in a row made of the task."""
    if row.forgotten:
        return FORGOTTEN
    return str(State.GONE) if row.gone else str(row.state)


def render_text(plan: Sequence[Entry]) -> list[str]:
    """`ACTION STATE LISTED-STATUS TASK-ID`, one task a line; `-` where it was not listed."""
    lines = []
    for e in plan:
        listed = (e.listed.status or "?") if e.listed else "-"
        lines.append(f"{e.action:<5}  {e.state:<9}  {listed:<9}  {e.task_id}")
    return lines


def summary_line(plan: Sequence[Entry], discovery: Discovery | None) -> str:
    actions = Counter(e.action for e in plan)
    line = f"{len(plan)} tasks: {actions['fetch']} to fetch, {actions['skip']} to skip"
    if actions["hold"]:
        line += f", {actions['hold']} in error backing off"
    if discovery is None:
        return line
    accounts = len({w.email for w in discovery.windows})
    line += (
        f"; the listing named {len(discovery.tasks)} of {accounts} account(s)"
        f" in {discovery.requests} request(s)"
    )
    if discovery.stopped_by_since:
        line += ", stopped early at --since"
    if discovery.truncated:
        full = ", ".join(r.email or "the account" for r in discovery.reach)
        line += f"; the window is full for {full}: older tasks can only be archived by id"
    if not discovery.newest_first:
        line += " (not newest first: filtered by date instead of stopping)"
    return line


def render_json(plan: Sequence[Entry], discovery: Discovery | None) -> str:
    doc = {
        "tasks": [
            {
                "task_id": e.task_id,
                "action": e.action,
                "state": e.state,
                "listed_status": e.listed.status if e.listed else None,
                "created_at": e.listed.created_at.isoformat()
                if e.listed and e.listed.created_at
                else None,
                "name": e.listed.name if e.listed else None,
            }
            for e in plan
        ],
        "listing": None if discovery is None else listing_json(discovery),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)
