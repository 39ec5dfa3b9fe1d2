"""`status`: what the archive holds, from the catalog alone, without a single request."""

from __future__ import annotations

from .catalog import Catalog
from .model import State


def render(root: str, catalog: Catalog) -> list[str]:
    per_state, file_count, total_bytes = catalog.totals()
    lines = [
        f"archive: {root}",
        "tasks: "
        + ", ".join(f"{per_state.get(str(s), 0)} {s}" for s in State if s is not State.SKIPPED),
        f"files: {file_count} verified, {_size(total_bytes)}",
        _last_run(catalog),
    ]
    for row in catalog.all_tasks():
        detail = row.error if row.state in (State.PENDING, State.ERROR, State.FAILED) else row.dir
        lines.append(f"{row.state:<8}  {row.task_id}  {detail or ''}".rstrip())
    return lines


def _last_run(catalog: Catalog) -> str:
    last = catalog.last_run()
    if last is None:
        return "last run: never"
    if last["finished_at"] is None:
        return f"last run: started {last['started_at']}, did not finish (killed, or running now)"
    summary = last["summary"] or {}
    counts = ", ".join(f"{n} {state}" for state, n in summary.items() if n)
    return f"last run: {last['finished_at']}, exit {last['exit_code']} ({counts or 'no tasks'})"


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
