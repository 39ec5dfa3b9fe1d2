"""Both probe engines on real files: the same verdict and values on every media kind the emulator
makes and on truncated, corrupt and non-media files; no process left behind; the libav pool
surviving a crashed and a hung worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import shutil
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from archiver import probe
from archiver.config import PROBE_ENGINES, Config
from archiver.errors import ProbeTimeout, VerifyError
from archiver.files import file_size, read_head_tail
from archiver.model import ProbeResult
from archiver.probe import Prober, compare
from archiver.probe.sniff import sniff
from archiver.testing import Media, MediaLibrary, VideoSpec
from archiver.testing.media import CONTAINERS, can_encode

from .conftest import Runner

TOL = compare.Tolerances()
WORKER = "archiver/probe/worker.py"


def config(engine: str, **values: Any) -> Config:
    """The engine's config, checked as a run checks it: 30 s to answer, one libav worker."""
    return probe.ready(
        Config(**{"probe": engine, "probe_timeout": 30, "probe_workers": 1, **values})
    )


@asynccontextmanager
async def engine(name: str, **values: Any) -> AsyncIterator[Prober]:
    async with probe.open_prober(config(name, **values)) as prober:
        yield prober


# -- the cases: every kind the emulator makes, then damaged and foreign bodies ---------------


def spec(codec: str, container: str, *, sound: bool = False, faststart: bool = True) -> VideoSpec:
    return VideoSpec(160, 96, 24, 1.0, audio=sound, codec=codec, container=container,
                     faststart=faststart)  # fmt: skip


VIDEOS = {
    f"{codec}-{container}{'-sound' if sound else ''}": spec(codec, container, sound=sound)
    for container, (codecs, _, _) in CONTAINERS.items()
    for codec in codecs
    for sound in (False, True)
} | {"h264-mp4-moov-last": spec("h264", "mp4", faststart=False)}


def _cut(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


def _junk(start: Callable[[bytes], int], count: int, seed: int) -> Callable[[bytes], bytes]:
    """`count` random bytes (the same each time) written over the file from `start(data)`."""

    def spoil(data: bytes) -> bytes:
        at = start(data)
        noise = random.Random(seed).randbytes(count)[: len(data) - at]
        return data[:at] + noise + data[at + len(noise) :]

    return spoil


# name -> (the good file it starts from, what is done to its bytes)
DAMAGED: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "h264-mp4 first half": ("h264-mp4", _cut(0.5)),  # the index comes first: still readable
    "h264-mp4 first 1000 bytes": ("h264-mp4", lambda d: d[:1000]),
    "h264-mp4 last byte missing": ("h264-mp4", lambda d: d[:-1]),
    "h264-mp4-moov-last first half": ("h264-mp4-moov-last", _cut(0.5)),
    "vp9-webm-sound first half": ("vp9-webm-sound", _cut(0.5)),
    "hevc-mov-sound first half": ("hevc-mov-sound", _cut(0.5)),
    "m4a first half": ("m4a", _cut(0.5)),
    "wav first half": ("wav", _cut(0.5)),
    "wav header only": ("wav", lambda d: d[:44]),
    "jpg first half": ("jpg", _cut(0.5)),
    "h264-mp4 index overwritten": ("h264-mp4", _junk(lambda d: d.find(b"moov") + 8, 200, 1)),
    "h264-mp4 pictures overwritten": ("h264-mp4", _junk(lambda d: d.find(b"mdat") + 8, 10**6, 2)),
    "h264-mp4 first 32 bytes zeroed": ("h264-mp4", lambda d: bytes(32) + d[32:]),
    "vp9-webm-sound header zeroed": ("vp9-webm-sound", lambda d: bytes(64) + d[64:]),
    "vp9-webm-sound middle overwritten": ("vp9-webm-sound", _junk(lambda d: len(d) // 3, 2000, 3)),
    "hevc-mov-sound codec entry overwritten": (
        "hevc-mov-sound",
        _junk(lambda d: d.find(b"stsd"), 100, 4),
    ),
}
FOREIGN = {
    "html error page": b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>\n",
    "json error": b'{"error": "Not found.", "code": 404}',
    "empty": b"",
    "zeros": bytes(4096),
    "random bytes": random.Random(5).randbytes(65536),
    "text": b"hello\n" * 100,
}
CASES = [*VIDEOS, "m4a", "wav", "jpg", "png", *DAMAGED, *FOREIGN]
# Where the engines may differ, and how; empty: on every case above they agree.
DIFFERENCES: dict[str, str] = {}


class Cases:
    """Each case's file, made on first use (the media through the emulator's library)."""

    def __init__(self, media: MediaLibrary, folder: Path) -> None:
        self.media = media
        self.folder = folder

    @staticmethod
    def makeable(name: str) -> bool:
        """False for a video (or damage done to one) this machine's ffmpeg cannot encode."""
        source = DAMAGED[name][0] if name in DAMAGED else name
        return source not in VIDEOS or can_encode(VIDEOS[source].codec)

    def good(self, name: str) -> Media:
        if name in VIDEOS:
            return self.media.video(VIDEOS[name])
        if name in ("m4a", "wav"):
            return self.media.audio(1.0, wav=name == "wav")
        return self.media.image(160, 96, png=name == "png")

    def path(self, name: str) -> Path:
        if name in DAMAGED:
            source, spoil = DAMAGED[name]
            data = spoil(self.good(source).path.read_bytes())
        elif name in FOREIGN:
            data = FOREIGN[name]
        else:
            return self.good(name).path
        out = self.folder / name.replace(" ", "-")
        out.write_bytes(data)
        return out


@pytest.fixture(scope="module")
def cases(media: MediaLibrary, tmp_path_factory: pytest.TempPathFactory) -> Cases:
    return Cases(media, tmp_path_factory.mktemp("probe-cases"))


Verdict = ProbeResult | str  # what the engine found, or why it refused the file


async def verdict(prober: Prober, path: Path) -> Verdict:
    """What a run decides of the file: the one rule on its sniffed name, the engine's answer."""
    head, tail = read_head_tail(path)
    size = file_size(path)
    assert size is not None
    ext = sniff(head) or "bin"
    try:
        return await probe.examine(prober, path, ext, head=head, tail=tail, size=size)
    except VerifyError as exc:
        return f"refused ({exc})"


@pytest.fixture(scope="module")
def verdicts(cases: Cases) -> dict[str, tuple[Verdict, Verdict]]:
    """Each case this machine can make, probed by ffprobe and by libav (one of each for all)."""

    async def probe_all() -> dict[str, tuple[Verdict, Verdict]]:
        found = {}
        async with engine("ffprobe") as ffprobe, engine("libav") as libav:
            for name in filter(Cases.makeable, CASES):
                path = cases.path(name)
                found[name] = (await verdict(ffprobe, path), await verdict(libav, path))
        return found

    return asyncio.run(probe_all())


def agree(first: Verdict, second: Verdict) -> bool:
    """The same verdict; for media, the same values within the comparison's tolerances."""
    if isinstance(first, str) or isinstance(second, str):
        return isinstance(first, str) and isinstance(second, str)
    if compare.changed(first, second, TOL):
        return False
    rates = (first.frame_rate, second.frame_rate)
    if None in rates:
        same_rate = rates[0] == rates[1]
    else:
        same_rate = abs(rates[0] - rates[1]) <= rates[0] * TOL.frame_rate  # type: ignore[operator]
    named = (first.format_name, first.codec, first.audio_codec)
    return same_rate and named == (second.format_name, second.codec, second.audio_codec)


# -- parity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_engines_agree(verdicts: dict[str, tuple[Verdict, Verdict]], name: str) -> None:
    """ffprobe and libav give the same verdict and values on each kind of file and damage."""
    if name not in verdicts:
        pytest.skip("this machine's ffmpeg cannot encode its codec")
    first, second = verdicts[name]
    assert agree(first, second) is (name not in DIFFERENCES), (first, second)


@pytest.mark.parametrize("name", [*VIDEOS, "m4a", "wav"])
def test_engines_read_what_the_emulator_made(
    verdicts: dict[str, tuple[Verdict, Verdict]], cases: Cases, name: str
) -> None:
    """Both engines read each media kind as the emulator measured it: codec, size, length,
    frame rate, sound."""
    if name not in verdicts:
        pytest.skip("this machine's ffmpeg cannot encode its codec")
    made = cases.good(name)
    for found in verdicts[name]:
        assert isinstance(found, ProbeResult), found
        assert (found.width or 0, found.height or 0) == (made.width, made.height)
        assert found.duration == pytest.approx(made.duration, abs=TOL.duration)
        assert found.frame_rate == (pytest.approx(made.fps) if made.fps else None)
        assert (found.audio_codec is not None) is made.audio
        assert found.codec == (VIDEOS[name].codec if name in VIDEOS else None)


# -- each engine alone ------------------------------------------------------------------------


@pytest.mark.parametrize("name_of_engine", PROBE_ENGINES)
async def test_engine_refuses_text_naming_itself(cases: Cases, name_of_engine: str) -> None:
    """An HTML page is a VerifyError that names the engine and FFmpeg's reason."""
    async with engine(name_of_engine) as prober:
        with pytest.raises(VerifyError) as info:
            await prober.media(cases.path("html error page"))
    assert str(info.value).startswith(f"{name_of_engine} cannot read it: ")
    assert str(info.value).endswith("Invalid data found when processing input")


@pytest.mark.parametrize("name_of_engine", PROBE_ENGINES)
async def test_engine_reads_a_path_starting_with_dash(
    cases: Cases, name_of_engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative file name starting with '-' is read as a file, not as an option."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(cases.path("h264-mp4"), "-i.mp4")
    async with engine(name_of_engine) as prober:
        found = await prober.media(Path("-i.mp4"))
    assert (found.width, found.height) == (160, 96)


def probe_processes() -> list[int]:
    """Our own children that probe: ffprobe processes and libav workers, zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and (comm == "ffprobe" or WORKER in cmdline):
            found.append(int(entry.name))
    return found


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO no one writes to: opening it for reading blocks, a real hang for any engine."""
    path = tmp_path / "never-written.fifo"
    os.mkfifo(path)
    yield path
    # Whoever is still blocked opening it (a reader, or the test's writer) is released; ENXIO
    # (no reader left) is what the test wants.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("name_of_engine", PROBE_ENGINES)
async def test_engine_timeout_kills_its_process(fifo: Path, name_of_engine: str) -> None:
    """A probe past probe_timeout is a ProbeTimeout and leaves no process running."""
    async with engine(name_of_engine, probe_timeout=1.5) as prober:
        with pytest.raises(ProbeTimeout, match=r"did not answer within 1\.5 s"):
            await prober.media(fifo)
        assert probe_processes() == []


@pytest.mark.parametrize("name_of_engine", PROBE_ENGINES)
async def test_engine_cancelled_kills_its_process(fifo: Path, name_of_engine: str) -> None:
    """A probe cancelled from outside (the run is stopping) also leaves no process running."""
    async with engine(name_of_engine) as prober:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(prober.media(fifo), 1.5)
        assert probe_processes() == []


# -- the libav pool: a crashed or hung worker costs one file, never the run -------------------


@pytest.fixture
def no_core_files() -> Iterator[None]:
    """A worker killed with SIGSEGV, as a crashing FFmpeg would be, leaves no core file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


@pytest.mark.usefixtures("no_core_files")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
async def test_pool_survives_a_worker_dying_mid_probe(
    cases: Cases, fifo: Path, sig: signal.Signals
) -> None:
    """A worker killed mid-probe costs that file's check (a VerifyError, not a timeout); the
    next probe is answered by a fresh worker."""
    clip = cases.path("h264-mp4")
    async with engine("libav") as prober:
        await prober.media(clip)
        (first,) = probe_processes()
        probing = asyncio.create_task(prober.media(fifo))
        # The write end opens once the worker has opened the FIFO to read it: it is mid-probe.
        writer = await asyncio.wait_for(asyncio.to_thread(os.open, fifo, os.O_WRONLY), 30)
        try:
            os.kill(first, sig)
            with pytest.raises(VerifyError) as info:
                await probing
        finally:
            os.close(writer)
        assert type(info.value) is VerifyError
        assert str(info.value) == f"libav worker died reading it (killed by {sig.name})"
        found = await prober.media(clip)
        (second,) = probe_processes()
    assert second != first and found.codec == "h264"
    assert probe_processes() == []


async def test_pool_replaces_a_hung_worker(cases: Cases, fifo: Path) -> None:
    """A worker that never answers is killed at probe_timeout (a ProbeTimeout); the next probe
    is answered by a fresh worker."""
    clip = cases.path("h264-mp4")
    async with engine("libav", probe_timeout=3) as prober:
        await prober.media(clip)
        (first,) = probe_processes()
        with pytest.raises(ProbeTimeout) as info:
            await prober.media(fifo)
        assert str(info.value) == "libav did not answer within 3 s (worker killed)"
        assert probe_processes() == []
        found = await prober.media(clip)
        (second,) = probe_processes()
    assert second != first and found.codec == "h264"


async def test_pool_replaces_a_worker_killed_while_idle(cases: Cases) -> None:
    """A worker that died between two probes is not the next file's fault: it is answered."""
    clip = cases.path("h264-mp4")
    async with engine("libav") as prober:
        await prober.media(clip)
        (first,) = probe_processes()
        os.kill(first, signal.SIGKILL)
        found = await prober.media(clip)
        (second,) = probe_processes()
    assert second != first and found.codec == "h264"


async def test_pool_runs_at_most_probe_workers(cases: Cases) -> None:
    """Eight probes at once with probe_workers 2 are all answered, by two workers, which end
    with the engine."""
    clip = cases.path("h264-mp4")
    async with engine("libav", probe_workers=2) as prober:
        found = await asyncio.gather(*(prober.media(clip) for _ in range(8)))
        assert len(probe_processes()) == 2
    assert {f.codec for f in found} == {"h264"}
    assert probe_processes() == []


def test_pool_size_defaults_to_the_core_count() -> None:
    """probe_workers 0 (the default) means one worker per core."""
    assert Config().libav_workers == (os.cpu_count() or 1)
    assert Config(probe_workers=3).libav_workers == 3


# -- choosing the engine ----------------------------------------------------------------------


def test_run_and_verify_with_libav(runner: Runner) -> None:
    """A run with --probe libav archives a video with sound; verify passes with either engine,
    the durations compared within the tolerance."""
    task = runner.emu.add_task(previews=1, video=VideoSpec(audio=True))
    result = runner.run(task, "--probe", "libav", "--no-progress")
    assert result.code == 0, result.err
    assert result.states() == {task: "archived"}
    for name in PROBE_ENGINES:
        checked = runner.run("--probe", name, "--no-progress", command="verify")
        assert (checked.code, checked.out) == (0, "checked 4 files: 4 ok, 0 damaged\n")


def test_unknown_engine_is_a_config_error(runner: Runner) -> None:
    """`probe: avlib` in the config is one line naming the key and the engines (exit 2)."""
    runner.configure(probe="avlib")
    result = runner.run("any-task-id", report=False)
    assert result.code == 2
    assert result.err.strip().endswith("expected ffprobe or libav, got avlib")
    assert runner.emu.requests == []


async def test_config_chooses_the_engine() -> None:
    """The config's `probe` names the engine open_prober opens."""
    for name in PROBE_ENGINES:
        async with probe.open_prober(config(name)) as prober:
            assert prober.name == name
