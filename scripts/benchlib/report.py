"""Medians per row, the table, the ratio lines with the issue's targets, and the JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .rows import RunResult

NUMERIC = ("wall", "cpu", "rss_mb", "api", "cdn", "server_cpu", "own_cpu", "own_user", "own_sys")
NUMERIC += ("own_rss_mb", "probe_cpu")
HEADER = (
    f"{'row':<26}{'wall s':>8}{'min-max':>14}{'MB/s':>9}{'CPU s':>8}{'RSS MB':>8}"
    f"{'api req':>9}{'cdn req':>9}{'srv CPU s':>11}"
)


@dataclass
class Report:
    """What one invocation measured: a title, rows of runs, and lines of ratios with targets."""

    title: str
    facts: dict[str, Any]
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, run: RunResult) -> None:
        self.runs.setdefault(run.row, []).append(run)

    def median(self, row: str, key: str) -> float:
        values = [getattr(r, key) for r in self.runs[row] if getattr(r, key) is not None]
        return float(statistics.median(values))

    def ratio(self, key: str, label: str, value: float, *, at_most: float | None = None) -> None:
        """A ratio line; with a target, also whether it is met and by how much it misses."""
        self.ratios[key] = value
        line = f"  {label:<44}{value:>8.2f}x"
        if at_most is not None:
            met = value <= at_most
            verdict = "ok" if met else f"MISS by {value / at_most:.2f}x"
            line += f"   target <= {at_most:g}x   {verdict}"
            self.targets[key] = {"value": value, "at_most": at_most, "met": met}
        self.lines.append(line)

    def target(self, key: str, label: str, value: float, unit: str, at_most: float) -> None:
        met = value <= at_most
        verdict = "ok" if met else f"MISS by {value / at_most:.2f}x" if at_most else "MISS"
        line = f"  {label:<44}{value:>8.2f} {unit}   target <= {at_most:g} {unit}   {verdict}"
        self.lines.append(line)
        self.targets[key] = {"value": value, "at_most": at_most, "unit": unit, "met": met}

    def note(self, text: str) -> None:
        self.lines.append(f"  {text}")

    def render(self) -> str:
        out = [self.title, HEADER]
        for row, runs in self.runs.items():
            walls = [r.wall for r in runs]
            wall = self.median(row, "wall")
            # A run that downloaded nothing (a rerun) has no transfer rate.
            moved = wall and self.median(row, "cdn")
            mbps = f"{runs[0].bytes / 1e6 / wall:.1f}" if moved else "-"
            spread = f"{min(walls):.2f}-{max(walls):.2f}"
            out.append(
                f"{row:<26}{wall:>8.2f}{spread:>14}{mbps:>9}{self.median(row, 'cpu'):>8.2f}"
                f"{self.median(row, 'rss_mb'):>8.1f}{self.median(row, 'api'):>9.0f}"
                f"{self.median(row, 'cdn'):>9.0f}{self.median(row, 'server_cpu'):>11.2f}"
            )
            if runs[0].own_cpu is not None:
                out.append(
                    f"{'':<4}own process, probe children excluded: CPU "
                    f"{self.median(row, 'own_cpu'):.2f} s (user {self.median(row, 'own_user'):.2f}"
                    f" + sys {self.median(row, 'own_sys'):.2f}), peak RSS "
                    f"{self.median(row, 'own_rss_mb'):.1f} MB; probe children CPU "
                    f"{self.median(row, 'probe_cpu'):.2f} s"
                )
        out.append("")
        out += self.lines
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        medians = {
            row: {k: self.median(row, k) for k in NUMERIC if _has(runs, k)}
            for row, runs in self.runs.items()
        }
        return {
            "title": self.title,
            "facts": self.facts,
            "medians": medians,
            "runs": {row: [asdict(r) for r in runs] for row, runs in self.runs.items()},
            "ratios": self.ratios,
            "targets": self.targets,
            "lines": self.lines,
        }


def _has(runs: list[RunResult], key: str) -> bool:
    return any(getattr(r, key) is not None for r in runs)


def save(path: Path, reports: list[Report]) -> None:
    data = [r.to_json() for r in reports]
    path.write_text(json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n")


def targets_table(reports: list[Report]) -> str:
    """Every target of every profile, one line each: met, or missed and by how much."""
    out = ["== targets"]
    for report in reports:
        for key, t in report.targets.items():
            unit = t.get("unit", "x")
            verdict = "ok" if t["met"] else "MISS"
            if not t["met"] and t["at_most"]:
                verdict += f" by {t['value'] / t['at_most']:.2f}x"
            out.append(
                f"  {key:<48}{t['value']:>10.2f} {unit:<3} <= {t['at_most']:g} {unit:<3} {verdict}"
            )
    return "\n".join(out)
