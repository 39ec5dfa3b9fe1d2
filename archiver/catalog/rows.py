"""The typed rows a catalog hands out, whatever its engine: a task's state, the last run, the
totals, and the gallery's display rows. Plain frozen dataclasses (a task's row a named tuple); no
engine's types leak out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ..model import State

NOT_FETCHED = "found in the listing, not retrieved yet"  # the error of a task only listed so far
NEVER_FETCHED = "forgotten before any run fetched it"  # the error of a task forgotten unseen
GONE_STATUSES = frozenset({404, 410})  # a retrieve's answers that say the task is not there
GONE_AFTER = 3  # runs in a row that answered so, for a task never archived to be gone


class TaskRow(NamedTuple):
    """What the catalog knows of one task.

    A named tuple, not a dataclass: a rerun and `status` make one per task, a million of them,
    and a frozen dataclass's `__init__` costs 2.5x as much (4.6 against 1.9 us, measured)."""

    task_id: str
    state: State
    status: str | None
    dir: str | None
    error: str | None
    updated_at: str
    sidecar_bytes: int | None = None
    failures: int = 0  # runs in a row that ended in the same lasting error
    failed_run: int | None = None
    failed_at: str | None = None
    answered: int | None = None  # the HTTP status of the last retrieve, when it was an error
    forgotten_at: str | None = None  # when `forget` dropped it from what runs try

    @property
    def forgotten(self) -> bool:
        return self.forgotten_at is not None

    @property
    def gone(self) -> bool:
        return is_gone(self.state, self.answered, self.failures, self.dir)

    def is_done(self, *, refresh: bool) -> bool:
        """Nothing left to fetch: archived, or FAILED/CANCELLED unless a refresh is asked for."""
        return self.state is State.ARCHIVED or (self.state is State.FAILED and not refresh)

    @staticmethod
    def undone_states(*, refresh: bool) -> frozenset[State]:
        """The states of the tasks `is_done` says are not done (what `run --all` retries)."""
        done = {State.ARCHIVED} if refresh else {State.ARCHIVED, State.FAILED}
        never = {State.SKIPPED, State.GONE}  # outcomes only: no row is ever in these states
        return frozenset(s for s in State if s not in done and s not in never)


class TaskState(NamedTuple):
    """A task as `status` lists it: the few columns of its row it shows, all that a listing of
    a million tasks reads (a third less time than whole rows, measured)."""

    task_id: str
    state: State
    dir: str | None
    error: str | None
    failures: int
    answered: int | None
    forgotten_at: str | None

    @property
    def gone(self) -> bool:
        return is_gone(self.state, self.answered, self.failures, self.dir)


def is_gone(state: State, answered: int | None, failures: int, folder: str | None) -> bool:
    """Answered 404/410 on GONE_AFTER runs in a row and never archived (no folder)."""
    return (
        state is State.ERROR
        and answered in GONE_STATUSES
        and failures >= GONE_AFTER
        and folder is None
    )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The record of one run: when it started, and how it ended if it did."""

    started_at: str
    finished_at: str | None  # None: killed, or running now
    exit_code: int | None
    summary: Mapping[str, int] | None  # tasks per state (the report's summary)


@dataclass(frozen=True, slots=True)
class Totals:
    """Tasks per state, and the count and bytes of the files the catalog vouches for."""

    per_state: Mapping[State, int]
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class DisplayRow:
    """What the gallery shows of a task (archiver/gallery/display.py makes it): its card (a JSON
    array) and its detail entry (`"folder":{...}`), stored so a build only joins texts."""

    version: int
    created: str
    shard: str
    files: str  # the fingerprint (count:bytes) of the files it was made from
    card: str
    entry: str


@dataclass(frozen=True, slots=True)
class StaleDisplay:
    """A task whose display row is missing, of another version, or made from other files."""

    task_id: str
    dir: str
    status: str | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A run's claim on a task: granted by `Catalog.claim`, renewed while the task's files
    stream, ended by the task's recorded outcome. `token` fences the claim's writes (None: an
    engine with one writer at a time, SQLite, has nothing to fence)."""

    task_id: str
    token: int | None = None

    @property
    def tag(self) -> str:
        """What tells this claim's temp files from another's in a shared folder ("" alone)."""
        return "" if self.token is None else f".~{self.token}"


@dataclass(frozen=True, slots=True)
class Settled:
    """Of tasks another run held: those it finished since this run began (their rows), and
    how long until the soonest live claim of another run expires (None: none is held)."""

    finished: Mapping[str, TaskRow]
    wait: float | None


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host of a shared catalog: its last run, and how many claims it holds now."""

    host: str
    last_run: RunRecord | None
    claims: int
