"""Task ids from arguments, files and stdin: comments and blanks skipped, duplicates dropped.

A line that is not a task id is reported with its file and line number; the others still run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Real ids look like `user:1234-runwayml:someone@example.com-task:<uuid>`.
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:@._+\-]{0,299}")


@dataclass(frozen=True, slots=True)
class BadLine:
    where: str  # "ids.txt:4" or "argument 2"
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.text[:80]!r}"


@dataclass
class TaskList:
    ids: list[str]
    bad: list[BadLine]

    @classmethod
    def empty(cls) -> TaskList:
        return cls([], [])

    def add(self, text: str, where: str, seen: set[str]) -> None:
        candidate = text.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not candidate or candidate.startswith("#"):
            return
        if not TASK_ID.fullmatch(candidate):
            reason = "not a task id" if len(candidate) <= 300 else "task id too long"
            self.bad.append(BadLine(where, candidate, reason))
        elif candidate not in seen:
            seen.add(candidate)
            self.ids.append(candidate)


def gather(arguments: Iterable[str], sources: Iterable[tuple[str, Iterable[str]]]) -> TaskList:
    """Ids from command-line arguments, then each (name, lines) source, in order, once each."""
    result, seen = TaskList.empty(), set[str]()
    for n, arg in enumerate(arguments, 1):
        result.add(arg, f"argument {n}", seen)
    for name, lines in sources:
        for number, line in enumerate(lines, 1):
            result.add(line, f"{name}:{number}", seen)
    return result
