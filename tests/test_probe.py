"""The probe package's engine-free parts: magic bytes, image headers, the comparisons, the rule."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from archiver import probe
from archiver.config import Config
from archiver.errors import VerifyError
from archiver.files import HEAD_BYTES, TAIL_BYTES
from archiver.model import Artifact, ProbeResult
from archiver.probe import compare, images
from archiver.probe.sniff import sniff

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
    "mov": [*SOURCE, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mov"],
    "mkv": [*SOURCE, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "matroska"],
    "webm": [*SOURCE, "-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime", "-f", "webm"],
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


# -- sniff --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp4", "mov", "mkv", "webm", "jpg", "png", "gif", "webp"])
def test_sniff_names_real_files(media: Media, kind: str) -> None:
    """The magic bytes of a file ffmpeg wrote give its extension."""
    assert sniff(media(kind).read_bytes()[:HEAD_BYTES]) == kind


@pytest.mark.parametrize(
    "junk",
    [b"", HTML, b'{"error": "Not found.", "code": 404}', b"\x00" * 64, b"ftyp", b"\xff\xd8"],
)
def test_sniff_junk_is_unknown(junk: bytes) -> None:
    """An error page, JSON, zeros or a too-short header are not taken for media."""
    assert sniff(junk) is None


# -- probe_image ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jpg", "png", "gif", "webp"])
def test_probe_image_reads_dimensions(media: Media, kind: str) -> None:
    """A real image made by ffmpeg gives ffmpeg's width and height and no duration."""
    result = images.probe_image(kind, *head_tail(media(kind).read_bytes()))
    assert result == ProbeResult(kind, kind, 200, 120, None, None)


@pytest.mark.parametrize("kind", ["jpg", "png", "gif"])
@pytest.mark.parametrize("cut", ["one byte", "half"])
def test_probe_image_refuses_a_cut_file(media: Media, kind: str, cut: str) -> None:
    """The same image missing its last byte, or its second half, is a VerifyError."""
    data = media(kind).read_bytes()
    data = data[:-1] if cut == "one byte" else data[: len(data) // 2]
    with pytest.raises(VerifyError, match=f"^{kind} "):
        images.probe_image(kind, *head_tail(data))


def test_probe_image_refuses_a_cut_webp(media: Media) -> None:
    """A webp missing its last byte is caught by its RIFF size."""
    data = media("webp").read_bytes()[:-1]
    with pytest.raises(VerifyError) as info:
        images.probe_image("webp", *head_tail(data))
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
        images.probe_image(kind, *head_tail(HTML))
    assert str(info.value) == message


def test_probe_image_refuses_a_jpeg_without_frame_header(media: Media) -> None:
    """A JPEG whose frame header lies past the head read is 'header unreadable', not a crash."""
    data = media("jpg").read_bytes()
    with pytest.raises(VerifyError) as info:
        images.probe_image("jpg", data[:20], data[-TAIL_BYTES:], len(data))
    assert str(info.value) == "jpg header unreadable"


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
    )


def video(
    *, width: int = 1280, height: int = 768, duration: float | None = 5.2, fps: float | None = 24
) -> ProbeResult:
    return ProbeResult("mov,mp4,m4a,3gp,3g2,mj2", "h264", width, height, duration, fps)


IMAGE = ProbeResult("jpg", "jpg", 1280, 768, None, None)
TOL = compare.Tolerances()


def test_compare_all_claims_agree() -> None:
    """A file matching every claim passes with nothing unchecked."""
    assert compare.compare(artifact(), 1000, video(), TOL) == ()


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
        compare.compare(artifact(**claims), size, probe, TOL)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("measured", "ok"), [(5.09, True), (4.91, True), (5.11, False), (4.89, False)]
)
def test_compare_duration_tolerance_edges(measured: float, ok: bool) -> None:
    """The default 0.1 s tolerance passes at 0.09 s off and fails at 0.11 s off."""
    claim, probe = artifact(duration=5.0), video(duration=measured)
    if ok:
        assert compare.compare(claim, 1000, probe, TOL) == ()
    else:
        with pytest.raises(VerifyError) as info:
            compare.compare(claim, 1000, probe, TOL)
        assert str(info.value) == f"duration {measured:.2f} s, API says 5.00 s"


@pytest.mark.parametrize(
    ("measured", "ok"), [(24.23, True), (23.77, True), (24.25, False), (23.75, False)]
)
def test_compare_frame_rate_tolerance_edges(measured: float, ok: bool) -> None:
    """The default frame rate tolerance is 1% of the claim: 0.24 fps at 24 fps."""
    claim, probe = artifact(frame_rate=24), video(fps=measured)
    if ok:
        assert compare.compare(claim, 1000, probe, TOL) == ()
    else:
        with pytest.raises(VerifyError) as info:
            compare.compare(claim, 1000, probe, TOL)
        assert str(info.value) == f"frame rate {measured:.2f} fps, API says 24.00 fps"


def test_compare_custom_tolerances() -> None:
    """Wider Tolerances let a 0.4 s and 4% difference through; the defaults do not."""
    claim, probe = artifact(duration=5.0, frame_rate=25), video(duration=5.4, fps=26)
    wide = compare.Tolerances(duration=0.5, frame_rate=0.05)
    assert compare.compare(claim, 1000, probe, wide) == ()
    with pytest.raises(VerifyError):
        compare.compare(claim, 1000, probe, TOL)


def test_compare_lists_every_claim_left_out_for_a_video() -> None:
    """A video whose artifact has no claims at all comes back with all four unchecked."""
    bare = artifact(file_size=None, duration=None, width=None, height=None, frame_rate=None)
    assert compare.compare(bare, 1000, video(), TOL) == (
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
    assert compare.compare(artifact(**claims), 1000, video(), TOL) == unchecked


def test_compare_still_image_has_no_duration_to_check() -> None:
    """An image artifact (no duration claimed) lists only size and dimensions when absent."""
    bare = artifact(file_size=None, duration=None, width=None, height=None, frame_rate=None)
    assert compare.compare(bare, 1000, IMAGE, TOL) == ("fileSize", "dimensions")
    claimed_image = artifact(duration=None, frame_rate=None)
    assert compare.compare(claimed_image, 1000, IMAGE, TOL) == ()


def test_compare_refuses_an_image_where_a_video_was_claimed() -> None:
    """A still image served for an artifact the API says lasts 5.21 s is a disagreement."""
    claim = artifact(file_size=None)  # only the size could have caught it otherwise
    with pytest.raises(VerifyError, match=r"API says 5\.21 s"):
        compare.compare(claim, 1000, IMAGE, TOL)


# -- audio: hasAudio is checked against the probe -------------------------


@pytest.mark.parametrize(("kind", "ext"), [("ipod", "m4a"), ("wav", "wav"), ("mp4-aac", "mp4")])
def test_sniff_names_audio_files(media: Media, kind: str, ext: str) -> None:
    """An M4A-branded file is m4a, a RIFF WAVE is wav; a video with sound is still mp4."""
    assert sniff(media(kind).read_bytes()[:64]) == ext


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
    assert sniff(head) == ext


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
        compare.check_input(ext, probe)
        return
    with pytest.raises(VerifyError) as info:
        compare.check_input(ext, probe)
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
        assert compare.compare(with_audio(claim), 1000, probe, TOL) == ()
        return
    with pytest.raises(VerifyError) as info:
        compare.compare(with_audio(claim), 1000, probe, TOL)
    assert str(info.value) == message


# -- the one rule, and re-verification ----------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "image"),
    [(ext, True) for ext in ("jpg", "png", "webp", "gif")]
    + [(ext, False) for ext in ("mp4", "mov", "webm", "m4a", "bin")],
)
def test_is_image_by_extension(ext: str, image: bool) -> None:
    """The extension (from the magic bytes first) alone decides: image check or the engine."""
    assert probe.is_image(ext) is image


def test_require_media_and_video() -> None:
    """No stream at all is not media; sound alone is media but no video, named by engine."""
    nothing = ProbeResult("mpegts", None, None, None, 1.0, None)
    with pytest.raises(VerifyError) as info:
        compare.require_media(nothing, "libav")
    assert str(info.value) == "libav found no video or audio stream"
    sound = dataclasses.replace(nothing, audio_codec="aac")
    assert compare.require_media(sound, "ffprobe") is sound
    with pytest.raises(VerifyError) as info:
        compare.require_video(sound, "ffprobe")
    assert str(info.value) == "ffprobe found no video stream"


@pytest.mark.parametrize(
    ("now", "changed"),
    [
        (video(duration=5.2), False),
        (video(duration=5.29), False),  # within the 0.1 s tolerance: another engine's digits
        (video(duration=5.11), False),
        (video(duration=5.31), True),
        (video(duration=None), True),
        (video(width=1281, duration=5.2), True),
        (video(height=767, duration=5.2), True),
        (video(duration=5.2, fps=25), False),  # the frame rate is not compared again
    ],
)
def test_changed_compares_duration_within_tolerance(now: ProbeResult, changed: bool) -> None:
    """verify compares the dimensions exactly and the duration with the run's tolerance."""
    assert compare.changed(video(duration=5.2), now, TOL) is changed


def test_changed_still_image() -> None:
    """An image has no duration then or now: only its dimensions count."""
    assert compare.changed(IMAGE, IMAGE, TOL) is False
    assert compare.changed(IMAGE, dataclasses.replace(IMAGE, width=1), TOL) is True


def test_tolerances_from_config() -> None:
    """The tolerances are the config's duration_tolerance and frame_rate_tolerance."""
    config = Config(duration_tolerance=0.25, frame_rate_tolerance=0.05)
    assert compare.Tolerances.from_config(config) == compare.Tolerances(
        duration=0.25, frame_rate=0.05
    )
