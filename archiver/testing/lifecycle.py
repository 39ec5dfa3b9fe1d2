"""Seeded tasks that move on by themselves: PENDING -> RUNNING -> SUCCEEDED (or FAILED).

A step is one retrieve of the task (`per="poll"`), or one second since it was seeded
(`per="second"`), so tests can finish a task after exactly N polls without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Stage:
    """Where a task stands after some steps."""

    status: str
    progress_ratio: str
    estimated_start: float | None


@dataclass(frozen=True)
class Lifecycle:
    """PENDING for `pending` steps, RUNNING for `running` steps, then `final`.

    None for either means forever. While PENDING, estimatedTimeToStartSeconds counts down from
    `eta` to 0; while RUNNING, progressRatio climbs from 0 towards 1.
    """

    pending: float | None = 1
    running: float | None = 1
    final: Literal["SUCCEEDED", "FAILED"] = "SUCCEEDED"
    per: Literal["poll", "second"] = "poll"
    eta: float = 30.0

    def at(self, steps: float) -> Stage:
        pending = self.pending
        if pending is None or steps < pending:
            left = 1.0 if not pending else 1 - steps / pending
            return Stage("PENDING", "0", round(self.eta * left, 1))
        running = steps - pending
        if self.running is None:
            # Never done: creeps towards 1 without reaching it.
            return Stage("RUNNING", f"{running / (running + 10):.2f}", 0)
        if running < self.running:
            return Stage("RUNNING", f"{running / self.running:.2f}", 0)
        return Stage(self.final, "1" if self.final == "SUCCEEDED" else "0", None)
