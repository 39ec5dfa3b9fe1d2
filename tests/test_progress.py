"""Progress bars on a terminal only: cron mail holds just the summary and the problems."""

from __future__ import annotations

from .conftest import Runner
from .helpers import run_on_a_terminal


def test_bars_are_drawn_on_a_terminal(runner: Runner) -> None:
    """With stderr on a TTY, tqdm draws the tasks and bytes bars; the summary goes to stdout."""
    tasks = [runner.emu.add_task() for _ in range(2)]
    code, out, screen = run_on_a_terminal(runner, *tasks)
    assert code == 0
    assert "tasks: 100%" in screen and "2/2" in screen
    assert "bytes:" in screen
    assert out.startswith("2 tasks: 2 archived")


def test_no_progress_keeps_the_terminal_quiet(runner: Runner) -> None:
    """--no-progress draws nothing even on a TTY: only problems would appear there."""
    task = runner.emu.add_task()
    code, out, screen = run_on_a_terminal(runner, task, "--no-progress")
    assert code == 0
    assert screen == ""
    assert out.startswith("1 tasks: 1 archived")


def test_no_bars_when_stderr_is_not_a_terminal(runner: Runner) -> None:
    """Under cron (stderr a pipe) no bar is drawn; a problem is one plain line."""
    good = runner.emu.add_task()
    missing = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
    process = runner.spawn(good, missing)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "\r" not in err and "%|" not in err
    assert err.splitlines() == [f"error: {missing}: the API answered HTTP 404: Not found."]
    assert out.splitlines() == [out.splitlines()[0]] and "1 archived" in out
