"""Which tasks a run works on: the ids given, the ids the listing names, and (with `--all`)
every task the archive knows that is not done. `list` and `run --dry-run` print that plan,
having made no request but the listing's.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import http, scrub, storage
from .api import ApiClient
from .catalog import Catalog, TaskRow
from .config import NO_TOKEN, Config
from .discover import Discovery, ListedTask, Query, discover
from .errors import ConfigError
from .holds import Holds
from .model import State
from .tasklist import BadLine, TaskList

NEW = "new"  # the catalog state shown for a task the archive has never seen


def run_ids(
    given: Sequence[str],
    discovery: Discovery | None,
    known: Mapping[str, TaskRow],
    *,
    refresh: bool,
) -> list[str]:
    """Given ids first, then listed ones (newest first), then the archive's unfinished ones."""
    ids = dict.fromkeys(given)
    if discovery is not None:
        ids.update(dict.fromkeys(t.task_id for t in discovery.tasks))
        ids.update(dict.fromkeys(t for t, row in known.items() if not row.is_done(refresh=refresh)))
    return list(ids)


class Finder:
    """`run --all`: discovery inside the run's session, its ids remembered before any fetch."""

    def __init__(
        self,
        query: Query,
        catalog: Catalog,
        given: Sequence[str],
        *,
        refresh: bool,
        warn: Callable[[str], None],
        now: Callable[[], str],
    ) -> None:
        self.query = query
        self.discovery: Discovery | None = None
        self.ids = list(given)  # the run's ids: the given ones until the listing has answered
        self._catalog = catalog
        self._refresh = refresh
        self._warn = warn
        self._now = now

    async def __call__(self, api: ApiClient) -> list[str]:
        found = self.discovery = await discover(api, self.query)
        for bad in found.bad:
            self._warn(f"error: {bad}")
        for error in found.errors:
            self._warn(f"error: {error}; archiving the {len(found.tasks)} tasks found so far")
        self._catalog.remember_listed([(t.task_id, t.status) for t in found.tasks], now=self._now())
        self.ids = run_ids(self.ids, found, self._catalog.states(), refresh=self._refresh)
        return self.ids

    @property
    def bad(self) -> list[BadLine]:
        return self.discovery.bad if self.discovery else []

    @property
    def failed(self) -> bool:
        return self.discovery is not None and bool(self.discovery.errors)


def show(cfg: Config, tasks: TaskList, query: Query | None, *, as_json: bool) -> int:
    """Print what a run would do; 1 if a line, an entry or the listing was bad."""
    discovery: Discovery | None = None
    if query is not None:
        if not cfg.token:
            raise ConfigError(NO_TOKEN)
        discovery = asyncio.run(listing(cfg, query))  # Ctrl-C: KeyboardInterrupt, exit 130
    known: dict[str, TaskRow] = {}
    holds = Holds(cfg, 1, set())
    ids = run_ids(tasks.ids, discovery, known, refresh=cfg.refresh)
    where = storage.place(cfg, os.environ)
    if where.catalog_path.is_file():
        archive = Catalog.open(where.state_dir, readonly=True, path=where.catalog_path)
        try:
            known = archive.states()
            ids = run_ids(tasks.ids, discovery, known, refresh=cfg.refresh)
            holds = asyncio.run(_holds(cfg, archive, ids, known))
        finally:
            archive.close()
    plan = entries(ids, known, discovery, holds)
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


async def _holds(
    cfg: Config, archive: Catalog, ids: Sequence[str], known: Mapping[str, TaskRow]
) -> Holds:
    """What the next run would leave alone, the archive checked as that run will check it."""
    async with storage.open_target(cfg) as target:
        return await Holds.of(cfg, archive.next_run_id(), archive, target, ids, known)


async def listing(config: Config, query: Query) -> Discovery:
    """Discovery alone, for `list --all`: the listing's pages and nothing else."""
    async with http.new_session(config) as session:
        return await discover(ApiClient.from_config(session, config), query)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the plan."""

    task_id: str
    action: str  # "fetch", "skip" (done, and whole on disk) or "hold" (backing off an error)
    state: str  # the catalog's state, or "new"
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
        state = str(row.state) if row else NEW
        rows.append(Entry(task_id, action, state, listed.get(task_id)))
    return rows


def render_text(plan: Sequence[Entry]) -> list[str]:
    """`ACTION STATE LISTED-STATUS TASK-ID`, one task a line; `-` where it was not listed."""
    lines = []
    for e in plan:
        listed = (e.listed.status or "?") if e.listed else "-"
        lines.append(f"{e.action:<5}  {e.state:<8}  {listed:<9}  {e.task_id}")
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


def listing_json(discovery: Discovery) -> dict[str, Any]:
    """The listing's account, for `list --json` and the run's report."""
    return {
        "requests": discovery.requests,
        "found": len(discovery.tasks),
        "accounts": sorted({w.email or "" for w in discovery.windows}),
        "newest_first": discovery.newest_first,
        "stopped_by_since": discovery.stopped_by_since,
        "truncated": discovery.truncated,
        "windows": [
            {
                "email": w.email,
                "status": w.status,
                "requests": w.requests,
                "entries": w.entries,
                "full": w.full,
                "oldest": w.oldest.isoformat() if w.oldest else None,
            }
            for w in discovery.windows
        ],
        "unreached": [
            {
                "email": r.email,
                "reached": r.reached,
                "statuses": {s: when.isoformat() if when else None for s, when in r.beyond},
                "note": r.describe(),
            }
            for r in discovery.reach
        ],
        "bad_entries": [str(b) for b in discovery.bad],
        "errors": discovery.errors,
    }
