"""Progress bars on a terminal only: cron mail holds just the summary and the problems."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from .conftest import Runner


def run_on_a_terminal(runner: Runner, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a real pseudo-terminal; return (code, stdout, terminal text)."""
    master, slave = pty.openpty()
    # A terminal of 100 columns: at an unknown width (0) tqdm draws nothing at all.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    argv = [sys.executable, "-m", "archiver", "run", "-o", str(runner.root),
            "-c", str(runner.config), *args]  # fmt: skip
    with subprocess.Popen(
        argv, env={**os.environ, **runner.env()}, stdout=subprocess.PIPE, stderr=slave, text=True
    ) as process:
        os.close(slave)
        screen = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            screen += data
        out = process.stdout.read() if process.stdout else ""
        code = process.wait()
    os.close(master)
    return code, out, screen.decode("utf-8", "replace")


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
