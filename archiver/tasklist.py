"""Task ids from arguments, files and stdin: comments and blanks skipped, duplicates dropped.

Each id is checked locally against the API's full form before any request is made; a line that
is not one is reported with its file and line number (and a hint when the mistake is a common
one), and the others still run. Quotes and a trailing comma, as left by pasting, are stripped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# A task's uuid: the end of its id, and the API's `id` of it.
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# `user:<n>-runwayml:<email>-task:<uuid>`, as the API names every task.
TASK_ID = re.compile(
    rf"user:\d{{1,20}}-runwayml:[^\s@/]{{1,200}}@[^\s/]{{1,200}}-task:{UUID.pattern}"
)
FULL_FORM = "user:<n>-runwayml:<email>-task:<uuid>"
_PASTED = "\"'`,; "  # what a copy from JSON, a spreadsheet or a chat leaves around an id
SHOWN = 80  # characters of a bad line shown in its message


@dataclass(frozen=True, slots=True)
class BadLine:
    where: str  # "ids.txt:4" or "argument 2"
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {shorten(self.text)!r}"


def shorten(text: str) -> str:
    """At most SHOWN characters, keeping the end visible: ids differ at their ends."""
    if len(text) <= SHOWN:
        return text
    return f"{text[: SHOWN - 31]}…{text[-30:]}"


@dataclass
class TaskList:
    ids: list[str]
    bad: list[BadLine]

    @classmethod
    def empty(cls) -> TaskList:
        return cls([], [])


class SeenIds:
    """The task ids met so far, each kept as a 64-bit fingerprint (its str hash: SipHash, keyed
    afresh by every process) in an open-addressed table of 8-byte slots: a million ids take
    16 MB, not the ~200 MB of a set of strings. Two distinct ids share a fingerprint with odds
    of about n^2 / 2^65 (3 in 100 million for a list of a million ids)."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self, bits: int = 10) -> None:
        self._slots = memoryview(bytearray(8 << bits)).cast("Q")
        self._mask = (1 << bits) - 1
        self._count = 0

    def add(self, task_id: str) -> bool:
        """Note `task_id`; False when it was met before."""
        mark = hash(task_id) & 0xFFFF_FFFF_FFFF_FFFF or 1  # 0 marks a free slot
        slots, mask = self._slots, self._mask
        at = mark & mask
        while (held := slots[at]) != mark:
            if not held:
                slots[at] = mark
                self._count += 1
                if self._count * 2 > mask:
                    self._grow()
                return True
            at = (at + 1) & mask
        return False

    def _grow(self) -> None:
        bits = (self._mask + 1).bit_length()  # twice the slots
        slots, mask = memoryview(bytearray(8 << bits)).cast("Q"), (1 << bits) - 1
        for mark in self._slots:
            if mark:
                at = mark & mask
                while slots[at]:
                    at = (at + 1) & mask
                slots[at] = mark
        self._slots, self._mask = slots, mask


def check(text: str, where: str, seen: SeenIds, *, argument: bool = False) -> str | BadLine | None:
    """A line of a task list as the run takes it: the id, a BadLine, or None (a blank, a
    comment, or an id met before)."""
    candidate = text.split(" #", 1)[0].split("\t#", 1)[0].strip()
    if not candidate or candidate.startswith("#"):
        return None
    cleaned = candidate.strip(_PASTED)
    if not TASK_ID.fullmatch(cleaned):
        return BadLine(where, candidate, _reason(cleaned, argument=argument))
    return cleaned if seen.add(cleaned) else None


def _reason(text: str, *, argument: bool) -> str:
    if UUID.fullmatch(text):
        return f"a bare uuid; the API needs the full task id, {FULL_FORM}"
    if argument and ("/" in text or text.endswith((".txt", ".csv", ".list")) or _is_file(text)):
        return f"not a task id (a file? did you mean -i {text})"
    if TASK_ID.search(text):
        return "not a task id (it holds one: give the id alone)"
    return f"not a task id (expected {FULL_FORM})"


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def stream(
    arguments: Iterable[str], sources: Iterable[tuple[str, Iterable[str]]]
) -> Iterator[str | BadLine]:
    """Ids from command-line arguments, then each (name, lines) source, in order, once each,
    and the bad lines among them, read as they are asked for (a list of a million ids is
    never held; `lines` may be an open file)."""
    seen = SeenIds()
    for n, arg in enumerate(arguments, 1):
        if (taken := check(arg, f"argument {n}", seen, argument=True)) is not None:
            yield taken
    for name, lines in sources:
        yield from _read(name, lines, seen)


def _read(name: str, lines: Iterable[str], seen: SeenIds) -> Iterator[str | BadLine]:
    """`check` on each line, but a line that is one id alone under the owner part (the
    `user:...-task:` before the uuid) of the id last taken -- nearly every line of a real
    list -- is told by comparing its start and matching only its uuid. The whole pattern costs
    more than its backtracking suggests (sre's work per character): a million-line list takes
    ~1.7 s of CPU this way, ~2.8 s through `check`, on the run's event loop."""
    owner, end = "", -1  # no owner yet: no line's length is -1
    add = seen.add
    for number, line in enumerate(lines, 1):
        task_id = line.rstrip("\r\n")  # what check would strip from such a line
        if len(task_id) == end and task_id.startswith(owner) and UUID.fullmatch(task_id, end - 36):
            if add(task_id):
                yield task_id
        elif (taken := check(line, f"{name}:{number}", seen)) is not None:
            if isinstance(taken, str):  # a whole task id: its owner part is one too
                owner, end = taken[:-36], len(taken)
            yield taken


def gather(arguments: Iterable[str], sources: Iterable[tuple[str, Iterable[str]]]) -> TaskList:
    """`stream` held whole (for `list`, which prints every id)."""
    return collect(stream(arguments, sources))


def collect(taken_ids: Iterable[str | BadLine]) -> TaskList:
    """A stream of ids and bad lines, held whole."""
    result = TaskList.empty()
    for taken in taken_ids:
        if isinstance(taken, BadLine):
            result.bad.append(taken)
        else:
            result.ids.append(taken)
    return result
