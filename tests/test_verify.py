"""verify: magic bytes, image headers, ffprobe on real files made by ffmpeg, and the comparison."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from archiver import verify
from archiver.errors import ProbeTimeout, VerifyError
from archiver.files import HEAD_BYTES, TAIL_BYTES
from archiver.model import Artifact, ProbeResult

HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>\n"
SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24:duration=2"]
STILL = ["-f", "lavfi", "-i", "testsrc2=size=200x120:rate=1:duration=1", "-frames:v", "1"]
RECIPES: dict[str, list[str]] = {
    "mp4": [
        *SOURCE,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ],
    # no +faststart: the moov atom is written at the end, so the first half has no index
    "mp4-moov-last": [*SOURCE, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4"],
    "mov": [*SOURCE, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mov"],
    "mkv": [*SOURCE, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "matroska"],
    "webm": [*SOURCE, "-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime", "-f", "webm"],
    "m4a": ["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-f", "mp4"],
    # ffmpeg's M4A muxer: the ftyp brand audio files carry
    "ipod": ["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-f", "ipod"],
    "wav": ["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "pcm_s16le", "-f", "wav"],
    "mp4-aac": [
        *SOURCE,
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        "-f",
        "mp4",
    ],
    "jpg": [*STILL, "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-f", "image2"],
    "png": [*STILL, "-c:v", "png", "-f", "image2"],
    "gif": [*STILL, "-f", "gif"],
    "webp": [*STILL, "-c:v", "libwebp", "-f", "webp"],
}
ENCODER = {"webm": "libvpx", "webp": "libwebp", "mp4": "libx264"}


@functools.cache
def encoders() -> str:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout


class Media:
    """Real files made with ffmpeg once per session, each on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: dict[str, Path] = {}

    def __call__(self, kind: str) -> Path:
        if kind not in self.made:
            encoder = ENCODER.get(kind)
            if encoder and f" {encoder} " not in encoders():
                pytest.skip(f"this ffmpeg has no {encoder} encoder")
            out = self.folder / f"sample-{kind}.bin"
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", *RECIPES[kind], str(out)],
                check=True,
                capture_output=True,
            )
            self.made[kind] = out
        return self.made[kind]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("verify-media"))


def head_tail(data: bytes) -> tuple[bytes, bytes, int]:
    """What the downloader hands to probe_image: the first and last bytes and the size."""
    return data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data)


def ffprobe_says(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,avg_frame_rate:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


# -- sniff --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp4", "mov", "mkv", "webm", "jpg", "png", "gif", "webp"])
def test_sniff_names_real_files(media: Media, kind: str) -> None:
    """The magic bytes of a file ffmpeg wrote give its extension."""
    assert verify.sniff(media(kind).read_bytes()[:HEAD_BYTES]) == kind


@pytest.mark.parametrize(
    "junk",
    [b"", HTML, b'{"error": "Not found.", "code": 404}', b"\x00" * 64, b"ftyp", b"\xff\xd8"],
)
def test_sniff_junk_is_unknown(junk: bytes) -> None:
    """An error page, JSON, zeros or a too-short header are not taken for media."""
    assert verify.sniff(junk) is None


# -- probe_image ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jpg", "png", "gif", "webp"])
def test_probe_image_reads_dimensions(media: Media, kind: str) -> None:
    """A real image made by ffmpeg gives ffmpeg's width and height and no duration."""
    result = verify.probe_image(kind, *head_tail(media(kind).read_bytes()))
    assert result == ProbeResult(kind, kind, 200, 120, None, None)


@pytest.mark.parametrize("kind", ["jpg", "png", "gif"])
@pytest.mark.parametrize("cut", ["one byte", "half"])
def test_probe_image_refuses_a_cut_file(media: Media, kind: str, cut: str) -> None:
    """The same image missing its last byte, or its second half, is a VerifyError."""
    data = media(kind).read_bytes()
    data = data[:-1] if cut == "one byte" else data[: len(data) // 2]
    with pytest.raises(VerifyError, match=f"^{kind} "):
        verify.probe_image(kind, *head_tail(data))


def test_probe_image_refuses_a_cut_webp(media: Media) -> None:
    """A webp missing its last byte is caught by its RIFF size."""
    data = media("webp").read_bytes()[:-1]
    with pytest.raises(VerifyError) as info:
        verify.probe_image("webp", *head_tail(data))
    assert str(info.value) == "webp is cut short (RIFF size beyond the end)"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("jpg", "jpg is cut short (no end-of-image marker)"),
        ("png", "png is cut short (no IEND chunk)"),
        ("gif", "gif is cut short (no trailer)"),
        ("bin", "not an image (unknown magic bytes)"),
    ],
)
def test_probe_image_refuses_an_html_body(kind: str, message: str) -> None:
    """An HTML error page served under an image's name is a VerifyError."""
    with pytest.raises(VerifyError) as info:
        verify.probe_image(kind, *head_tail(HTML))
    assert str(info.value) == message


def test_probe_image_refuses_a_jpeg_without_frame_header(media: Media) -> None:
    """A JPEG whose frame header lies past the head read is 'header unreadable', not a crash."""
    data = media("jpg").read_bytes()
    with pytest.raises(VerifyError) as info:
        verify.probe_image("jpg", data[:20], data[-TAIL_BYTES:], len(data))
    assert str(info.value) == "jpg header unreadable"


# -- probe_video ----------------------------------------------------------------------------


async def test_probe_video_agrees_with_ffprobe(media: Media) -> None:
    """probe_video's width, height, duration and frame rate are ffprobe's own numbers."""
    path = media("mp4")
    result = await verify.probe_video(path, timeout=30)
    own = ffprobe_says(path)
    stream = own["streams"][0]
    assert (result.width, result.height) == (stream["width"], stream["height"]) == (160, 96)
    assert result.duration == float(own["format"]["duration"])
    assert result.duration == pytest.approx(2.0, abs=0.05)
    assert result.frame_rate == float(Fraction(stream["avg_frame_rate"])) == 24.0
    assert result.codec == "h264"
    assert result.format_name is not None and "mp4" in result.format_name


async def test_probe_video_reads_webm(media: Media) -> None:
    """A VP8 webm is probed like an mp4."""
    result = await verify.probe_video(media("webm"), timeout=30)
    assert (result.codec, result.width, result.height, result.frame_rate) == ("vp8", 160, 96, 24)


async def test_probe_video_refuses_a_cut_mp4(media: Media, tmp_path: Path) -> None:
    """An mp4 with its moov atom at the end, cut in half, is a VerifyError from ffprobe."""
    data = media("mp4-moov-last").read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" not in data[: len(data) // 2]
    cut = tmp_path / "cut.part"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VerifyError, match=r"^ffprobe cannot read it: .+"):
        await verify.probe_video(cut, timeout=30)


async def test_probe_video_refuses_text(tmp_path: Path) -> None:
    """An HTML error page saved as the video is a VerifyError quoting ffprobe's reason."""
    page = tmp_path / "clip.part"
    page.write_bytes(HTML)
    with pytest.raises(VerifyError) as info:
        await verify.probe_video(page, timeout=30)
    assert (
        str(info.value)
        == f"ffprobe cannot read it: {page}: Invalid data found when processing input"
    )


async def test_probe_video_refuses_audio_only(media: Media) -> None:
    """A file with sound but no picture is 'no video stream'."""
    with pytest.raises(VerifyError) as info:
        await verify.probe_video(media("m4a"), timeout=30)
    assert str(info.value) == "ffprobe found no video stream"


async def test_probe_video_path_starting_with_dash(
    media: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative file name starting with '-' is read as a file, not as an ffprobe option."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(media("mp4"), tmp_path / "-i.mp4")
    result = await verify.probe_video(Path("-i.mp4"), timeout=30)
    assert (result.width, result.height) == (160, 96)


def ffprobe_processes(marker: str) -> list[str]:
    """ffprobe children of this process (zombies too) and any process naming `marker`."""
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
        if (comm == "ffprobe" and ppid == os.getpid()) or marker in cmdline:
            found.append(f"{entry.name} {comm} {cmdline}")
    return found


def release(fifo: Path) -> None:
    """If a reader is still blocked on the FIFO, open and close its write end to free it."""
    # ENXIO (no reader left) is what the test wants
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def test_probe_video_timeout_kills_ffprobe(tmp_path: Path) -> None:
    """A probe that outlives its timeout is a ProbeTimeout and leaves no ffprobe running."""
    fifo = tmp_path / "never-written.fifo"
    os.mkfifo(fifo)
    try:
        with pytest.raises(ProbeTimeout, match=r"did not answer within 0\.3 s"):
            await verify.probe_video(fifo, timeout=0.3)
        assert ffprobe_processes(str(fifo)) == []
    finally:
        release(fifo)


async def test_probe_video_cancelled_kills_ffprobe(tmp_path: Path) -> None:
    """A probe cancelled from outside (the run is stopping) also leaves no ffprobe running."""
    fifo = tmp_path / "cancelled.fifo"
    os.mkfifo(fifo)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(verify.probe_video(fifo, timeout=60), 0.3)
        assert ffprobe_processes(str(fifo)) == []
    finally:
        release(fifo)


# -- compare --------------------------------------------------------------------------------


def artifact(
    *,
    file_size: int | None = 1000,
    duration: float | None = 5.209,
    width: int | None = 1280,
    height: int | None = 768,
    frame_rate: float | None = 24,
) -> Artifact:
    return Artifact(
        index=0,
        id=None,
        filename=None,
        url="https://cdn.example/clip.mp4",
        file_size=file_size,
        duration=duration,
        width=width,
        height=height,
        frame_rate=frame_rate,
        preview_urls=(),
        metadata=None,
    )


def video(
    *, width: int = 1280, height: int = 768, duration: float | None = 5.2, fps: float | None = 24
) -> ProbeResult:
    return ProbeResult("mov,mp4,m4a,3gp,3g2,mj2", "h264", width, height, duration, fps)


IMAGE = ProbeResult("jpg", "jpg", 1280, 768, None, None)
TOL = verify.Tolerances()


def test_compare_all_claims_agree() -> None:
    """A file matching every claim passes with nothing unchecked."""
    assert verify.compare(artifact(), 1000, video(), TOL) == ()


@pytest.mark.parametrize(
    ("claims", "size", "probe", "message"),
    [
        ({}, 999, video(), "size 999 bytes, API says 1000"),
        ({}, 1000, video(width=320, height=192), "dimensions 320x192, API says 1280x768"),
        ({}, 1000, video(width=768, height=1280), "dimensions 768x1280, API says 1280x768"),
        ({}, 1000, video(duration=3.0), "duration 3.00 s, API says 5.21 s"),
        ({}, 1000, video(duration=None), "duration unknown, API says 5.21 s"),
        ({}, 1000, video(fps=30), "frame rate 30.00 fps, API says 24.00 fps"),
        ({}, 1000, video(fps=None), "frame rate unknown, API says 24.00 fps"),
        ({"frame_rate": 23.976}, 1000, video(fps=25), "frame rate 25.00 fps, API says 23.98 fps"),
        # the first disagreement is the one reported: size before dimensions before duration
        ({}, 1, video(width=1, duration=1, fps=1), "size 1 bytes, API says 1000"),
        ({}, 1000, video(width=1, duration=1, fps=1), "dimensions 1x768, API says 1280x768"),
        ({}, 1000, video(duration=1, fps=1), "duration 1.00 s, API says 5.21 s"),
    ],
)
def test_compare_disagreement_messages(
    claims: dict[str, Any], size: int, probe: ProbeResult, message: str
) -> None:
    """Each disagreement raises VerifyError with the measured value and the API's claim."""
    with pytest.raises(VerifyError) as info:
        verify.compare(artifact(**claims), size, probe, TOL)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("measured", "ok"), [(5.09, True), (4.91, True), (5.11, False), (4.89, False)]
)
def test_compare_duration_tolerance_edges(measured: float, ok: bool) -> None:
    """The default 0.1 s tolerance passes at 0.09 s off and fails at 0.11 s off."""
    claim, probe = artifact(duration=5.0), video(duration=measured)
    if ok:
        assert verify.compare(claim, 1000, probe, TOL) == ()
    else:
        with pytest.raises(VerifyError) as info:
            verify.compare(claim, 1000, probe, TOL)
        assert str(info.value) == f"duration {measured:.2f} s, API says 5.00 s"


@pytest.mark.parametrize(
    ("measured", "ok"), [(24.23, True), (23.77, True), (24.25, False), (23.75, False)]
)
def test_compare_frame_rate_tolerance_edges(measured: float, ok: bool) -> None:
    """The default frame rate tolerance is 1% of the claim: 0.24 fps at 24 fps."""
    claim, probe = artifact(frame_rate=24), video(fps=measured)
    if ok:
        assert verify.compare(claim, 1000, probe, TOL) == ()
    else:
        with pytest.raises(VerifyError) as info:
            verify.compare(claim, 1000, probe, TOL)
        assert str(info.value) == f"frame rate {measured:.2f} fps, API says 24.00 fps"


def test_compare_custom_tolerances() -> None:
    """Wider Tolerances let a 0.4 s and 4% difference through; the defaults do not."""
    claim, probe = artifact(duration=5.0, frame_rate=25), video(duration=5.4, fps=26)
    wide = verify.Tolerances(duration=0.5, frame_rate=0.05)
    assert verify.compare(claim, 1000, probe, wide) == ()
    with pytest.raises(VerifyError):
        verify.compare(claim, 1000, probe, TOL)


def test_compare_lists_every_claim_left_out_for_a_video() -> None:
    """A video whose artifact has no claims at all comes back with all four unchecked."""
    bare = artifact(file_size=None, duration=None, width=None, height=None, frame_rate=None)
    assert verify.compare(bare, 1000, video(), TOL) == (
        "fileSize",
        "dimensions",
        "duration",
        "frameRate",
    )


@pytest.mark.parametrize(
    ("claims", "unchecked"),
    [
        ({"file_size": None}, ("fileSize",)),
        ({"width": None}, ("dimensions",)),
        ({"height": None}, ("dimensions",)),
        ({"duration": None}, ("duration",)),
        ({"frame_rate": None}, ("frameRate",)),
    ],
)
def test_compare_names_each_missing_claim(claims: dict[str, Any], unchecked: tuple[str]) -> None:
    """Each claim the API left out is returned by name, the others still checked."""
    assert verify.compare(artifact(**claims), 1000, video(), TOL) == unchecked


def test_compare_still_image_has_no_duration_to_check() -> None:
    """An image artifact (no duration claimed) lists only size and dimensions when absent."""
    bare = artifact(file_size=None, duration=None, width=None, height=None, frame_rate=None)
    assert verify.compare(bare, 1000, IMAGE, TOL) == ("fileSize", "dimensions")
    claimed_image = artifact(duration=None, frame_rate=None)
    assert verify.compare(claimed_image, 1000, IMAGE, TOL) == ()


def test_compare_refuses_an_image_where_a_video_was_claimed() -> None:
    """A still image served for an artifact the API says lasts 5.21 s is a disagreement."""
    claim = artifact(file_size=None)  # only the size could have caught it otherwise
    with pytest.raises(VerifyError, match=r"API says 5\.21 s"):
        verify.compare(claim, 1000, IMAGE, TOL)


# -- audio: one ffprobe run sees it, hasAudio is checked against it -------------------------


@pytest.mark.parametrize(("kind", "ext"), [("ipod", "m4a"), ("wav", "wav"), ("mp4-aac", "mp4")])
def test_sniff_names_audio_files(media: Media, kind: str, ext: str) -> None:
    """An M4A-branded file is m4a, a RIFF WAVE is wav; a video with sound is still mp4."""
    assert verify.sniff(media(kind).read_bytes()[:64]) == ext


@pytest.mark.parametrize(
    ("head", "ext"),
    [
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
        (b"OggS\x00", "ogg"),
        (b"fLaC\x00", "flac"),
    ],
)
def test_sniff_audio_magic_bytes(head: bytes, ext: str) -> None:
    """MP3 (ID3 or a frame sync), Ogg and FLAC are told by their first bytes."""
    assert verify.sniff(head) == ext


async def test_probe_media_sees_video_and_audio_in_one_run(media: Media) -> None:
    """A video with an AAC track: codec h264 and audio_codec aac from the same probe."""
    result = await verify.probe_media(media("mp4-aac"), timeout=30)
    assert (result.codec, result.audio_codec, result.width, result.height) == (
        "h264",
        "aac",
        160,
        96,
    )
    silent = await verify.probe_media(media("mp4"), timeout=30)
    assert silent.audio_codec is None


@pytest.mark.parametrize("kind", ["ipod", "wav"])
async def test_probe_media_reads_audio_only(media: Media, kind: str) -> None:
    """An audio-only file is media: audio codec and duration, no video codec or size."""
    result = await verify.probe_media(media(kind), timeout=30)
    assert result.codec is None and result.width is None
    assert result.audio_codec in ("aac", "pcm_s16le")
    assert result.duration == pytest.approx(1.0, abs=0.05)


async def test_probe_media_refuses_text(tmp_path: Path) -> None:
    """A page of HTML is not media."""
    page = tmp_path / "x.m4a"
    page.write_bytes(HTML)
    with pytest.raises(VerifyError, match=r"^ffprobe cannot read it"):
        await verify.probe_media(page, timeout=30)


@pytest.mark.parametrize(
    ("ext", "probe", "message"),
    [
        ("m4a", ProbeResult("mp4", "h264", 1, 1, 1.0, 24), "m4a without an audio stream"),
        (
            "mp4",
            ProbeResult("mp4", None, None, None, 1.0, None, "aac"),
            "mp4 without a video stream",
        ),
        ("m4a", ProbeResult("mp4", None, None, None, 1.0, None, "aac"), None),
        ("mp4", ProbeResult("mp4", "h264", 1, 1, 1.0, 24), None),
        ("bin", ProbeResult("mpegts", None, None, None, 1.0, None, "mp2"), None),
    ],
)
def test_check_input_by_kind(ext: str, probe: ProbeResult, message: str | None) -> None:
    """An input named as audio must hold audio, one named as video must hold video."""
    if message is None:
        verify.check_input(ext, probe)
        return
    with pytest.raises(VerifyError) as info:
        verify.check_input(ext, probe)
    assert str(info.value) == message


def with_audio(claim: bool | None) -> Artifact:
    return dataclasses.replace(artifact(), has_audio=claim)


@pytest.mark.parametrize(
    ("claim", "track", "message"),
    [
        (True, None, "no audio stream, API says hasAudio: true"),
        (False, "aac", "an audio stream (aac), API says hasAudio: false"),
        (True, "aac", None),
        (False, None, None),
        (None, "aac", None),
        (None, None, None),
    ],
)
def test_compare_has_audio(claim: bool | None, track: str | None, message: str | None) -> None:
    """hasAudio true needs an audio stream, false needs none; absent is not checked (nor listed)."""
    probe = dataclasses.replace(video(), audio_codec=track)
    if message is None:
        assert verify.compare(with_audio(claim), 1000, probe, TOL) == ()
        return
    with pytest.raises(VerifyError) as info:
        verify.compare(with_audio(claim), 1000, probe, TOL)
    assert str(info.value) == message
