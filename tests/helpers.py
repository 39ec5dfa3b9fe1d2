"""Helpers shared by several test modules: waiting on an observable condition, processes, ports.

Test modules import from here (and fixtures come from conftest.py), never from each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from archiver.model import FileSizes
from archiver.testing import Emulator, Seen

from .conftest import TOKEN, Result, Runner

DEADLINE = 30.0  # seconds a test waits for something it knows will happen
LISTING_PATH = "/v1/runwayml/tasks/?"
TASK_PATH = "/v1/runwayml/tasks/user:"


def by_task(sizes: FileSizes) -> dict[str, list[tuple[str, int | None]]]:
    """A catalog's packed file sizes per task, each task's (path, size) sorted."""
    found: dict[str, list[tuple[str, int | None]]] = {}
    for task_id, path, size in sizes:
        found.setdefault(task_id, []).append((path, size))
    return {task_id: sorted(entries) for task_id, entries in found.items()}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll an observable condition (not a fixed sleep), failing after a generous deadline."""
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL, then collect the process (and its pipes)."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=DEADLINE)


def part_files(root: Path) -> list[Path]:
    """Every partial download under `root`."""
    return [p for p in root.rglob("*.part") if p.is_file()]


def closed_port() -> int:
    """A loopback port nothing listens on (bound a moment ago, then released)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    return port


def served_json(emu: Emulator, task_id: str) -> bytes:
    """The task exactly as the API serves it (URLs signed afresh), fetched over loopback."""
    request = urllib.request.Request(
        f"{emu.api_url}/runwayml/tasks/{task_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: bytes = response.read()
    return body


def run_process(runner: Runner, *args: str) -> Result:
    """`run` as a real process (the emulator keeps a core of its own), with a report."""
    path = runner.root.parent / "report.json"
    path.unlink(missing_ok=True)
    process = runner.spawn(*args, "--report", str(path))
    out, err = process.communicate(timeout=300)
    report = json.loads(path.read_text()) if path.exists() else None
    return Result(process.returncode, out, err, report)


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


def listing_requests(emu: Emulator) -> list[Seen]:
    """The listing's requests the emulator saw, in order."""
    return [r for r in emu.requests if r.origin == "api" and r.raw_path.startswith(LISTING_PATH)]


def retrieved(emu: Emulator) -> list[str]:
    """Task ids asked for by id, in order."""
    return [
        r.raw_path.rsplit("/", 1)[1]
        for r in emu.requests
        if r.origin == "api" and r.raw_path.startswith(TASK_PATH)
    ]


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".part", ".etag", ".tmp")]
