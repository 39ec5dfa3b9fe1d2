"""The useapi emulator in its own process (aiohttp FileResponse = sendfile), and its counters.

`python -m archiver.testing` seeds the tasks, writes ids and a manifest of every asset URL with its
size, and on SIGUSR1 writes the requests it saw per origin and its own CPU to a stats file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .proc import BenchError, kill_group, tail

TOKEN = "bench-token"


@dataclass(frozen=True)
class DataSpec:
    """What the emulator seeds and how it serves it."""

    tasks: int
    video: str  # WxH@FPS:SECONDS
    bitrate: str | None
    variants: int
    previews: int
    full_previews: bool
    cdn_rate: float | None = None
    api_delay: float = 0.0


@dataclass(frozen=True)
class Asset:
    task_id: str
    kind: str
    url: str
    bytes: int
    path: str  # the served file on the emulator's disk


@dataclass(frozen=True)
class Stats:
    api: int
    cdn: int
    cpu: float
    statuses: dict[str, int] = field(default_factory=dict)

    def minus(self, before: Stats) -> Stats:
        statuses = {
            k: v - before.statuses.get(k, 0)
            for k, v in self.statuses.items()
            if v != before.statuses.get(k, 0)
        }
        return Stats(self.api - before.api, self.cdn - before.cdn, self.cpu - before.cpu, statuses)


class Emulator:
    """Start with `with Emulator(spec, work, cache) as emu:`; stopped (and waited for) on exit."""

    def __init__(self, spec: DataSpec, work: Path, cache: Path) -> None:
        self.spec = spec
        self.work = work
        self.cache = cache
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self.ids_file = work / "ids.txt"
        self.assets: list[Asset] = []
        self._stats_file = work / "emulator-stats.json"
        self._serial = 0

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _command(self, ready: Path) -> list[str]:
        s = self.spec
        cmd = [sys.executable, "-m", "archiver.testing", "--tasks", str(s.tasks)]
        cmd += ["--video", s.video, "--variants", str(s.variants), "--previews", str(s.previews)]
        cmd += ["--token", TOKEN, "--cache", str(self.cache), "--url-ttl", "86400"]
        cmd += ["--ids-out", str(self.ids_file), "--manifest-out", str(self.work / "manifest.json")]
        cmd += ["--stats-file", str(self._stats_file), "--ready-file", str(ready)]
        cmd += ["--no-request-log", "--api-delay", str(s.api_delay)]
        # Outputs only, so every row downloads the same files (the peers know no inputs).
        cmd.append("--no-inputs")
        if s.bitrate:
            cmd += ["--bitrate", s.bitrate]
        if s.full_previews:
            cmd.append("--full-previews")
        if s.cdn_rate:
            cmd += ["--cdn-rate", str(s.cdn_rate)]
        return cmd

    def start(self, timeout: float = 900.0) -> None:
        ready = self.work / "emulator-ready.json"
        log = self.work / "emulator.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                self._command(ready),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"the emulator did not start:\n{tail(log)}")
            time.sleep(0.1)
        self.api_url = json.loads(ready.read_text())["api_url"]
        self.assets = [
            Asset(t["task_id"], a["kind"], a["url"], a["bytes"], a["path"])
            for t in json.loads((self.work / "manifest.json").read_text())
            for a in t["assets"]
        ]

    def stats(self, timeout: float = 10.0) -> Stats:
        """Ask the running emulator for its counters (SIGUSR1) and wait for the answer."""
        assert self.proc is not None
        self._serial += 1
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = _read_json(self._stats_file)
            if data is not None and data["serial"] >= self._serial:
                requests = data["requests"]
                cpu = data["cpu_user"] + data["cpu_sys"]
                return Stats(requests.get("api", 0), requests.get("cdn", 0), cpu, data["statuses"])
            time.sleep(0.02)
        raise BenchError("the emulator did not answer SIGUSR1 with its stats")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_group(self.proc.pid)
                self.proc.wait()
        kill_group(self.proc.pid)  # ffmpeg still rendering if it was stopped while seeding
        self.proc = None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data
