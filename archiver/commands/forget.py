"""`forget`: drop tasks from what runs try (a typo kept in a list, a task deleted at Runway),
without deleting anything from the archive."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .. import config, scrub
from ..catalog import GONE_STATUSES, Access, open_catalog
from ..errors import UsageError
from ..model import State
from ..progress import Level
from ..timespec import now
from . import common

ARCHIVED = (State.ARCHIVED, State.FAILED)  # what a task with its sidecar in the archive is in


@dataclass(frozen=True, slots=True)
class Forgetting:
    """What `forget` did with each id it was given or found."""

    forgotten: list[str]  # forgotten now
    already: list[str]  # forgotten before
    kept: list[str]  # archived, so not forgotten without --archived


def cmd_forget(args: argparse.Namespace) -> int:
    cfg = common.load_config(args)
    common.state_dir(cfg)
    if not args.task_ids and not args.input and not args.gone:
        raise UsageError("no task ids given (arguments, -i FILE, -i - or --gone)")
    tasks = common.task_list(args)
    for bad in tasks.bad:
        print(scrub.text(f"error: {bad}"), file=sys.stderr)
    done = asyncio.run(_forget(cfg, tasks.ids, gone=args.gone, archived=args.archived))
    for task_id in done.kept:
        print(
            scrub.text(
                f"error: {task_id}: archived, not forgotten (--archived forgets it too;"
                " no file is deleted)"
            ),
            file=sys.stderr,
        )
    problems = bool(tasks.bad or done.kept)
    if common.level(args) > Level.QUIET or problems:
        for task_id in done.forgotten:
            print(scrub.text(f"forgot {task_id}"))
        print(_summary(done))
    return 1 if problems else 0


async def _forget(
    cfg: config.Config, given: Sequence[str], *, gone: bool, archived: bool
) -> Forgetting:
    """Mark the ids forgotten in the catalog (with `gone`, also every task whose retrieve last
    answered 404 or 410); an archived one only with `archived`."""
    async with open_catalog(cfg, Access.WRITE) as catalog:
        wanted = list(given)
        if gone:
            errors = catalog.tasks(states=[State.ERROR])
            wanted += [row.task_id async for row in errors if row.answered in GONE_STATUSES]
        wanted = list(dict.fromkeys(wanted))
        rows = await catalog.rows(wanted)
        already = [t for t in wanted if t in rows and rows[t].forgotten]
        kept = [
            t
            for t in wanted
            if not archived and t in rows and rows[t].state in ARCHIVED and t not in already
        ]
        forgotten = [t for t in wanted if t not in already and t not in kept]
        await catalog.forget(forgotten, now=now())
    return Forgetting(forgotten, already, kept)


def _summary(done: Forgetting) -> str:
    line = f"forgot {len(done.forgotten)} task(s)"
    if done.already:
        line += f" ({len(done.already)} forgotten before)"
    if done.kept:
        line += f"; {len(done.kept)} archived, kept"
    return line + "; no file was deleted"
