"""Which tasks a run works on: the ids given, the ids the listing names, and (with `--all`)
every task the archive knows that is not done; `Finder` chooses them inside a run's session.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

from . import http
from .api import ApiClient
from .catalog import Catalog, TaskRow
from .config import Config
from .discover import Discovery, Query, discover
from .tasklist import BadLine


def run_ids(
    given: Sequence[str],
    discovery: Discovery | None,
    unfinished: Iterable[str],
    *,
    forgotten: Collection[str] = (),
    shared: bool = False,
) -> list[str]:
    """Given ids first, then listed ones (newest first, but not those `forgotten`), then the
    archive's `unfinished` ones; without a listing (no `--all`), the given ids alone, unless
    the catalog is `shared` (every run works through every unfinished id it holds)."""
    ids = dict.fromkeys(given)
    if discovery is not None:
        listed = (t.task_id for t in discovery.tasks)
        ids.update(dict.fromkeys(t for t in listed if t not in forgotten))
    if discovery is not None or shared:
        ids.update(dict.fromkeys(unfinished))
    return list(ids)


async def unfinished(catalog: Catalog, *, refresh: bool) -> list[str]:
    """The ids of the tasks the archive knows that are not done (nor forgotten), in id order."""
    states = TaskRow.undone_states(refresh=refresh)
    rows = catalog.tasks(states=states)
    return sorted([row.task_id async for row in rows if not row.forgotten])


async def forgotten(catalog: Catalog, discovery: Discovery | None) -> set[str]:
    """The listed ids `forget` dropped: a run leaves them out unless they are given by name."""
    if discovery is None:
        return set()
    rows = await catalog.rows([t.task_id for t in discovery.tasks])
    return {task_id for task_id, row in rows.items() if row.forgotten}


class Finder:
    """`run --all`: discovery inside the run's session, its ids remembered before any fetch.
    With a shared catalog (also without `--all`): the given ids join the catalog's list, and
    the run works through every unfinished id there."""

    def __init__(
        self,
        query: Query | None,
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
        self.rest: Iterator[str] | None = None  # the run's ids as the run reads them
        self._catalog = catalog
        self._refresh = refresh
        self._warn = warn
        self._now = now

    async def __call__(self, api: ApiClient) -> Iterator[str]:
        shared = self._catalog.shared
        if shared:
            await self._catalog.remember_given(self.ids, now=self._now())
        found = None if self.query is None else await self._discover(api, self.query)
        undone = await unfinished(self._catalog, refresh=self._refresh)
        dropped = await forgotten(self._catalog, found)
        self.ids = run_ids(self.ids, found, undone, forgotten=dropped, shared=shared)
        self.rest = iter(self.ids)
        return self.rest

    async def _discover(self, api: ApiClient, query: Query) -> Discovery:
        found = self.discovery = await discover(api, query)
        for bad in found.bad:
            self._warn(f"error: {bad}")
        for error in found.errors:
            self._warn(f"error: {error}; archiving the {len(found.tasks)} tasks found so far")
        listed = [(t.task_id, t.status) for t in found.tasks]
        await self._catalog.remember_listed(listed, now=self._now())
        return found

    @property
    def bad(self) -> list[BadLine]:
        return self.discovery.bad if self.discovery else []

    @property
    def failed(self) -> bool:
        return self.discovery is not None and bool(self.discovery.errors)


async def listing(config: Config, query: Query) -> Discovery:
    """Discovery alone, for `list --all`: the listing's pages and nothing else."""
    async with http.new_session(config) as session:
        return await discover(ApiClient.from_config(session, config), query)


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
