"""`status`: what the archive holds, from the catalog alone, without a single request; with a
shared (PostgreSQL) catalog, also each host's last run and the claims it holds now.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from .. import scrub
from ..catalog import Access, Catalog, RunRecord, open_catalog
from ..config import Config
from ..model import State
from . import common

# The states a catalog row is in (`skipped` and `gone` are what a run made of a task).
_STORED = [s for s in State if s not in (State.SKIPPED, State.GONE)]
PAGE = 1000  # lines written at once
# Each state padded once: formatting an enum member runs Python code, a million times.
_LABEL = {s: f"{s:<8}" for s in State}
# A line shows the error of a task in these states, the folder of the others.
_ERRED = frozenset({State.PENDING, State.ERROR, State.FAILED})


def cmd_status(args: argparse.Namespace) -> int:
    cfg = common.load_config(args)
    common.state_dir(cfg)
    asyncio.run(_show(cfg, as_json=args.json))
    return 0


async def _show(cfg: Config, *, as_json: bool) -> None:
    """Lines printed as they are made, a page at a time (a write per line costs more than
    making the line): a catalog of a million tasks is never held."""
    out, page = sys.stdout, []
    async with open_catalog(cfg, Access.READ, fetch_copy=False) as catalog:
        made = (
            document(str(cfg.output_dir), catalog)
            if as_json
            else render(str(cfg.output_dir), catalog)
        )
        async for line in made:
            page.append(line)
            if len(page) >= PAGE:
                _write(out, page)
                page.clear()
    _write(out, page)
    out.flush()


def _write(out: TextIO, page: list[str]) -> None:
    if page:
        out.write("\n".join(scrub.texts(page)) + "\n")


async def render(root: str, catalog: Catalog) -> AsyncIterator[str]:
    totals = await catalog.totals()
    yield f"archive: {root}"
    yield "tasks: " + ", ".join(f"{totals.per_state.get(s, 0)} {s}" for s in State if s in _STORED)
    yield f"files: {totals.files} verified, {_size(totals.bytes)}"
    yield f"last run: {_run_text(await catalog.last_run())}"
    if catalog.shared:
        yield f"catalog: {catalog.name}"
        for host in await catalog.hosts():
            last = _run_text(host.last_run)
            yield f"host {host.host}: last run {last}; holds {host.claims} claim(s) now"
    async for row in catalog.listing():
        detail = row.error if row.state in _ERRED else row.dir
        if row.forgotten_at is not None:
            shown = "forgotten"
        else:
            shown = _LABEL[State.GONE if row.state is State.ERROR and row.gone else row.state]
        yield f"{shown}  {row.task_id}  {detail or ''}".rstrip()


async def document(root: str, catalog: Catalog) -> AsyncIterator[str]:
    """The same as `render`, as one JSON document, written a task at a time."""
    totals = await catalog.totals()
    head = {
        "archive": root,
        "catalog": catalog.name,
        "tasks": {str(s): totals.per_state.get(s, 0) for s in State if s is not State.SKIPPED},
        "files": totals.files,
        "bytes": totals.bytes,
        "last_run": _run_json(await catalog.last_run()),
        "hosts": [
            {"host": h.host, "last_run": _run_json(h.last_run), "claims": h.claims}
            for h in (await catalog.hosts() if catalog.shared else [])
        ],
    }
    # The head object left open (its closing brace cut), the task list streamed into it.
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "task_list": ['
    comma = ""
    async for r in catalog.listing():
        entry = {"task_id": r.task_id, "state": str(r.state), "dir": r.dir, "error": r.error}
        yield comma + json.dumps(entry, ensure_ascii=False)
        comma = ","
    yield "]}"


def _run_text(last: RunRecord | None) -> str:
    if last is None:
        return "never"
    if last.finished_at is None:
        return f"started {last.started_at}, did not finish (killed, or running now)"
    counts = ", ".join(f"{n} {state}" for state, n in (last.summary or {}).items() if n)
    return f"{last.finished_at}, exit {last.exit_code} ({counts or 'no tasks'})"


def _run_json(last: RunRecord | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {
        "started_at": last.started_at,
        "finished_at": last.finished_at,
        "exit_code": last.exit_code,
        "summary": dict(last.summary) if last.summary is not None else None,
    }


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
