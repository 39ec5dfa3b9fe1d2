"""Task ids from arguments, files and stdin: comments and blanks skipped, duplicates dropped.

Each id is checked locally against the API's full form before any request is made; a line that
is not one is reported with its file and line number (and a hint when the mistake is a common
one), and the others still run. Quotes and a trailing comma, as left by pasting, are stripped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# `user:<n>-runwayml:<email>-task:<uuid>`, as the API names every task.
TASK_ID = re.compile(rf"user:\d{{1,20}}-runwayml:[^\s@/]{{1,200}}@[^\s/]{{1,200}}-task:{_UUID}")
FULL_FORM = "user:<n>-runwayml:<email>-task:<uuid>"
_BARE_UUID = re.compile(_UUID)
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

    def add(self, text: str, where: str, seen: set[str], *, argument: bool = False) -> None:
        candidate = text.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not candidate or candidate.startswith("#"):
            return
        cleaned = candidate.strip(_PASTED)
        if not TASK_ID.fullmatch(cleaned):
            self.bad.append(BadLine(where, candidate, _reason(cleaned, argument=argument)))
        elif cleaned not in seen:
            seen.add(cleaned)
            self.ids.append(cleaned)


def _reason(text: str, *, argument: bool) -> str:
    if _BARE_UUID.fullmatch(text):
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


def gather(arguments: Iterable[str], sources: Iterable[tuple[str, Iterable[str]]]) -> TaskList:
    """Ids from command-line arguments, then each (name, lines) source, in order, once each."""
    result, seen = TaskList.empty(), set[str]()
    for n, arg in enumerate(arguments, 1):
        result.add(arg, f"argument {n}", seen, argument=True)
    for name, lines in sources:
        for number, line in enumerate(lines, 1):
            result.add(line, f"{name}:{number}", seen)
    return result
