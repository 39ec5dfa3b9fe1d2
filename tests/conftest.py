"""Shared fixtures: real media, the emulator on loopback, the CLI in-process or as a process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from archiver import cli, timespec
from archiver.catalog import Access, open_catalog, sqlite_testing
from archiver.config import Config
from archiver.model import TaskOutcome
from archiver.testing import Emulator, MediaLibrary

TOKEN = "sk-test-7f3a9c2e51d04b8f"
# Tests never sleep through backoff: retries happen at once, with few attempts.
FAST = {
    "retry_attempts": 3,
    "retry_initial_delay": 0,
    "retry_max_delay": 0,
    "connect_timeout": 5,
    "read_timeout": 5,
}


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaLibrary:
    return MediaLibrary(tmp_path_factory.mktemp("media"))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session, for talking to the emulator directly."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def emu(media: MediaLibrary) -> Iterator[Emulator]:
    with Emulator(media, token=TOKEN).running_in_thread() as emulator:
        yield emulator


@dataclass
class Result:
    code: int
    out: str
    err: str
    report: dict[str, Any] | None

    def states(self) -> dict[str, str]:
        assert self.report is not None
        return {t["task_id"]: t["state"] for t in self.report["tasks"]}

    def task(self, task_id: str) -> dict[str, Any]:
        assert self.report is not None
        return next(t for t in self.report["tasks"] if t["task_id"] == task_id)


@dataclass
class Runner:
    """Runs `runway-archiver run` against one emulator into one archive folder."""

    emu: Emulator
    root: Path
    config: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    base_url: str | None = None  # None: the emulator's API

    @property
    def output(self) -> str:
        """What `-o` says: the archive folder (a bucket URL in BucketRunner)."""
        return str(self.root)

    def configure(self, **values: Any) -> None:
        self.config.write_text(json.dumps({**FAST, **values}))

    def env(self) -> dict[str, str]:
        return {"USEAPI_TOKEN": TOKEN, "USEAPI_BASE_URL": self.base_url or self.emu.api_url}

    def run(self, *args: str, command: str = "run", report: bool = True) -> Result:
        """In-process: fast, and the same code path as the console script."""
        for key, value in self.env().items():
            self.monkeypatch.setenv(key, value)
        report_path = self.root.parent / "report.json"
        report_path.unlink(missing_ok=True)
        argv = [*command.split(), "-o", self.output, "-c", str(self.config), *args]
        if report and command == "run":
            argv += ["--report", str(report_path)]
        self.capsys.readouterr()
        code = cli.main(argv)
        captured = self.capsys.readouterr()
        loaded = json.loads(report_path.read_text()) if report_path.exists() else None
        return Result(code, captured.out, captured.err, loaded)

    def spawn(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """A real process, for kill and lock tests."""
        env = {**os.environ, **self.env()}
        argv = [
            sys.executable,
            "-m",
            "archiver",
            "run",
            "-o",
            self.output,
            "-c",
            str(self.config),
            "--no-progress",
            *args,
        ]
        return subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
        )

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite3"

    def catalog(self) -> sqlite_testing.Contents:
        """What the archive's catalog holds now, read through the catalog's interface."""
        return sqlite_testing.read(self.catalog_path)

    def record(self, outcomes: Sequence[TaskOutcome]) -> None:
        """Write `outcomes` to the archive's catalog through its interface, as a run would."""

        async def write() -> None:
            config = Config(output_dir=self.root)
            async with open_catalog(config, Access.WRITE) as catalog:
                await catalog.record_many([(o, None) for o in outcomes], now=timespec.now())

        asyncio.run(write())

    def final_files(self) -> list[Path]:
        """Every file under the archive except the catalog, lock and gallery."""
        skip = {
            "catalog.sqlite3",
            "catalog.sqlite3-wal",
            "catalog.sqlite3-shm",
            "catalog.sqlite3-checked",
            ".runway-archiver.lock",
        }
        gallery = {self.root / "index.html", self.root / "gallery"}
        return sorted(
            p
            for p in self.root.rglob("*")
            if p.is_file() and p.name not in skip and gallery.isdisjoint({p, *p.parents})
        )


@pytest.fixture
def runner(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Runner:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    r = Runner(emu, tmp_path / "archive", tmp_path / "config.yaml", monkeypatch, capsys)
    r.configure()
    return r


# Bucket fixtures (one S3 server per session); imported last, as they build on Runner.
from .bucketing import area, bucket_runner, proxy, s3_endpoint, s3_inspector  # noqa: E402, F401
from .pg import pg_cluster, pg_url  # noqa: E402, F401
