"""The rows: each one a command that moves the data set into a fresh folder, measured alike.

archiver: `runway-archiver run` through a wrapper that records its own rusage (ffprobe children
apart); curl and aria2c: the same asset URLs straight to files; peer: benchlib/peer.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from archiver.probe.ffprobe import ARGS as FFPROBE_ARGS

from .proc import BenchError, Measured, run_measured
from .server import TOKEN, Emulator

PEER = Path(__file__).with_name("peer.sh")
DEFAULT_ENGINE = "ffprobe"
MEDIA_SUFFIXES = frozenset({".mp4", ".mov", ".jpg", ".jpeg", ".png", ".webp", ".gif"})
# The archiver's own rusage at exit (RUSAGE_SELF) and its reaped children's (the ffprobes).
WRAPPER = """\
import json, os, resource, sys
usage_file, argv = sys.argv[1], sys.argv[2:]
profile = os.environ.get("BENCH_CPROFILE")
from archiver.cli import main
code = 1
try:
    if profile:
        import cProfile
        prof = cProfile.Profile()
        code = prof.runcall(main, argv)
        prof.dump_stats(profile)
    else:
        code = main(argv)
finally:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    # VmHWM is this process's own peak; ru_maxrss would include its forking parent's.
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    with open(usage_file, "w") as fh:
        json.dump({"self_cpu": s.ru_utime + s.ru_stime, "self_rss_kb": hwm,
                   "self_user": s.ru_utime, "self_sys": s.ru_stime,
                   "children_cpu": c.ru_utime + c.ru_stime, "children_rss_kb": c.ru_maxrss}, fh)
sys.exit(code)
"""


@dataclass(frozen=True)
class RunResult:
    """One measured run of one row, with what the server saw meanwhile."""

    row: str
    wall: float
    cpu: float
    rss_mb: float
    api: int
    cdn: int
    server_cpu: float
    bytes: int
    files: int
    own_cpu: float | None = None
    own_user: float | None = None
    own_sys: float | None = None
    own_rss_mb: float | None = None
    probe_cpu: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Bench:
    """Runs rows against one emulator; every output folder is made fresh and deleted after."""

    emu: Emulator
    work: Path
    cores: int
    timeout: float
    expect_bytes: int = 0
    expect_files: int = 0

    def __post_init__(self) -> None:
        self.expect_bytes = sum(a.bytes for a in self.emu.assets)
        self.expect_files = len(self.emu.assets)
        self.env = {
            **os.environ,
            "USEAPI_TOKEN": TOKEN,
            "USEAPI_BASE_URL": self.emu.api_url,
            "XDG_CONFIG_HOME": str(self.work / "no-config"),
        }
        self._write_lists()

    def _write_lists(self) -> None:
        """curl's config (url/output pairs) and aria2c's input list, over the same URLs."""
        curl, aria = [], []
        for i, asset in enumerate(self.emu.assets):
            name = f"{i:06d}{Path(asset.url.partition('?')[0]).suffix}"
            curl.append(f'url = "{asset.url}"\noutput = "{name}"\n')
            aria.append(f"{asset.url}\n  out={name}\n")
        (self.work / "curl.cfg").write_text("".join(curl))
        (self.work / "aria2.txt").write_text("".join(aria))

    # -- the rows ------------------------------------------------------------------------

    def archiver(
        self,
        *,
        ids: Path | None = None,
        out: Path | None = None,
        row: str | None = None,
        code: Path | None = None,
        probe: str | None = None,
    ) -> RunResult:
        """A run into a fresh folder; given `out`, into that archive, which is kept.

        `code`: a checkout whose `archiver` package runs instead (for A/B in one invocation);
        `probe`: the probe engine (`--probe`), by default the archiver's own default.
        """
        keep = out is not None
        out = out or self.work / "out-archiver"
        usage = self.work / "archiver-usage.json"
        cmd = [sys.executable, "-c", WRAPPER, str(usage), "run"]
        cmd += ["-i", str(ids or self.emu.ids_file), "-o", str(out), "--no-progress"]
        if probe is not None:
            cmd += ["--probe", probe]
        row = row or engine_row(probe)
        env = {**self.env, "PYTHONPATH": str(code)} if code else None
        # `python -c` puts the working folder first on sys.path, before PYTHONPATH: another
        # checkout's package is imported only when run from that checkout.
        result = self._measure(row, cmd, out, media=out, keep=keep, env=env, cwd=code)
        own = json.loads(usage.read_text())
        return _with_own(result, own)

    def curl(self, *, sync: bool = False) -> RunResult:
        out = self.work / "out-curl"
        cmd = ["curl", "--parallel", "--parallel-max", "16", "--fail", "--silent", "--show-error"]
        cmd += ["-K", str(self.work / "curl.cfg")]
        if sync:  # the same, then wait for the bytes to reach the disk (the archiver fsyncs)
            cmd = ["sh", "-c", '"$@" && sync -f .', "curl+sync", *cmd]
        name = "curl --parallel 16" + (" + sync" if sync else "")
        return self._measure(name, cmd, out, media=out, cwd=out)

    def aria2c(self) -> RunResult:
        out = self.work / "out-aria2c"
        cmd = ["aria2c", "-j", "16", "-d", str(out), "-i", str(self.work / "aria2.txt")]
        cmd += ["--file-allocation=none", "--auto-file-renaming=false", "--allow-overwrite=true"]
        cmd += ["--console-log-level=error", "--summary-interval=0", "--download-result=hide"]
        return self._measure("aria2c -j 16", cmd, out, media=out)

    def peer(self) -> RunResult:
        out = self.work / "out-peer"
        cmd = ["bash", str(PEER), str(self.emu.ids_file), str(out), str(self.cores)]
        return self._measure("shell pipeline", cmd, out, media=out / "media")

    # -- measuring -----------------------------------------------------------------------

    def _measure(
        self,
        row: str,
        cmd: Sequence[str],
        out: Path,
        *,
        media: Path,
        cwd: Path | None = None,
        keep: bool = False,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        out.mkdir(parents=True, exist_ok=True)
        os.sync()  # the previous row's writeback is not this row's cost
        before = self.emu.stats()
        log = self.work / f"{row.split()[0]}.log"
        try:
            m = run_measured(cmd, env=env or self.env, cwd=cwd, timeout=self.timeout, log=log)
            after = self.emu.stats()
            size, count = media_bytes(media)
        finally:
            if not keep:
                shutil.rmtree(out, ignore_errors=True)
        if (size, count) != (self.expect_bytes, self.expect_files):
            raise BenchError(
                f"{row}: {count} files, {size} bytes on disk; expected {self.expect_files} "
                f"files, {self.expect_bytes} bytes"
            )
        seen = after.minus(before)
        return _result(row, m, seen.api, seen.cdn, seen.cpu, size, count, seen.statuses)

    def ffprobe_cost(self, runs: int = 20) -> tuple[float, float]:
        """Median wall and CPU seconds of one ffprobe (the archiver's arguments) on one video."""
        video = next(a.path for a in self.emu.assets if a.kind == "artifact")
        cmd = ["ffprobe", *FFPROBE_ARGS, "--", video]
        log = self.work / "ffprobe.log"
        measured = [run_measured(cmd, timeout=60, log=log) for _ in range(runs)]
        return statistics.median(m.wall for m in measured), statistics.median(
            m.cpu for m in measured
        )


def engine_row(probe: str | None) -> str:
    """The row of the archiver with probe engine `probe` (None: its default, ffprobe)."""
    return "archiver" if probe in (None, DEFAULT_ENGINE) else f"archiver --probe {probe}"


def media_bytes(folder: Path) -> tuple[int, int]:
    """Bytes and count of the media files under `folder` (no catalog, sidecars, lists).

    A file is counted once however many hard links it has (the rerun profile's synthetic
    tasks are links to real ones).
    """
    size = count = 0
    seen: set[tuple[int, int]] = set()
    for root, _, names in os.walk(folder):
        for name in names:
            if os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES:
                st = os.stat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_size
                    count += 1
    return size, count


def _result(
    row: str,
    m: Measured,
    api: int,
    cdn: int,
    server_cpu: float,
    size: int,
    count: int,
    statuses: dict[str, int],
) -> RunResult:
    rss = m.max_rss_kb / 1024
    return RunResult(row, m.wall, m.cpu, rss, api, cdn, server_cpu, size, count, statuses=statuses)


def _with_own(result: RunResult, own: dict[str, float]) -> RunResult:
    return RunResult(
        **{
            **result.__dict__,
            "own_cpu": own["self_cpu"],
            "own_user": own["self_user"],
            "own_sys": own["self_sys"],
            "own_rss_mb": own["self_rss_kb"] / 1024,
            "probe_cpu": own["children_cpu"],
        }
    )
