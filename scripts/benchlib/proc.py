"""Run a command in its own process group and measure it: wall time and the whole tree's rusage.

os.wait4 on the child returns its rusage including every descendant it reaped, so CPU seconds
cover the tree; ru_maxrss is the largest single process in it, not a sum. A process keeps the
peak RSS of the one it was forked from across exec, so the command is forked by a tiny launcher
(python -I -S, ~9 MB), not by this 40 MB process: that launcher is the floor of the RSS column.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = """\
import os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - started
with open(report, "w") as fh:
    fh.write(f"{wall} {ru.ru_utime} {ru.ru_stime} {ru.ru_maxrss}\\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


class BenchError(RuntimeError):
    """A row failed (non-zero exit, wrong bytes, a request where none may be): stop loudly."""


@dataclass(frozen=True)
class Measured:
    wall: float
    user: float
    sys: float
    max_rss_kb: int
    exit_code: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def kill_group(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal what is left of a process group we started; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def run_measured(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float,
    log: Path,
    check: bool = True,
) -> Measured:
    """Run `cmd` to completion (killed after `timeout` s); stdout and stderr go to `log`."""
    report = log.with_suffix(".rusage")
    report.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *cmd]
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            launcher,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            if time.monotonic() - started < timeout:
                raise
            raise BenchError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s") from None
        finally:
            kill_group(proc.pid)  # stragglers a shell left behind, if any
    try:
        wall, user, system, rss = report.read_text().split()
    except (OSError, ValueError) as exc:
        raise BenchError(f"{Path(cmd[0]).name}: no rusage (exit {code}):\n{tail(log)}") from exc
    result = Measured(float(wall), float(user), float(system), int(rss), code)
    if check and code != 0:
        raise BenchError(f"{Path(cmd[0]).name} exit code {code}; last output:\n{tail(log)}")
    return result


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return "(no output)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (no output)"
