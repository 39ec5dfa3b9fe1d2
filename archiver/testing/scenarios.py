"""Tasks shaped like today's API (2025), seedable by name: `emu.add_scenario("gen4_turbo_i2v")`.

Each is plain data: options with `Upload`s where the real task holds signed input URLs, and
artifacts rendered by ffmpeg. See ../shared/reference/useapi-runwayml-more.md for the shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archiver.testing.media import VideoSpec
from archiver.testing.tasks import ArtifactSpec, Hook, Upload

# Small media: scenarios are for tests, and every file is rendered once per cache.
_CLIP = VideoSpec(320, 192, 24, 2.0)
SAFETY_ERROR = {
    "errorMessage": "Your request was blocked by our third-party content moderation system.",
    "reason": "SAFETY.OUTPUT.THIRD_PARTY",
    "moderation_category": "THIRD_PARTY",
    "tally_asimov": False,
}
STRING_ERROR = "An unexpected error occurred while generating. Please try again."


@dataclass(frozen=True)
class Scenario:
    """Everything `Emulator.add_task` needs for one kind of task."""

    task_type: str
    name: str
    options: dict[str, Any]
    artifacts: list[ArtifactSpec] = field(default_factory=list)
    status: str = "SUCCEEDED"
    error: Any = None


def gen4_turbo_i2v() -> Scenario:
    """Image to video, 2025 metadata (width/height/hasAlphaChannel/hasAudio), newer URL path."""
    name = "Gen-4 Turbo 4242, the lighthouse beam sweeps over a stormy sea"
    return Scenario(
        task_type="gen4_turbo",
        name=name,
        options={
            "name": name,
            "text_prompt": "The lighthouse beam sweeps over a stormy sea",
            "seconds": 5,
            "seed": 4242424242,
            "init_image": Upload(image=(320, 192), variant=11, name="lighthouse"),
            "exploreMode": False,
            "watermark": False,
            "resolution": "720p",
            "assetGroupName": "Generative Video",
            "recordingEnabled": True,
        },
        artifacts=[
            ArtifactSpec(
                video=VideoSpec(320, 192, 24, 2.0, variant=1),
                shape="2025",
                model_path=True,
                previews=2,
            )
        ],
    )


def text_to_image() -> Scenario:
    """Four PNG image artifacts, no duration or frame rate."""
    return Scenario(
        task_type="text_to_image",
        name="Frames 77, a paper boat on a puddle",
        options={
            "textPrompt": "a paper boat on a puddle, morning light",
            "aspectRatio": "16:9",
            "numImages": 4,
            "seed": 77,
            "exploreMode": True,
        },
        artifacts=[
            ArtifactSpec(
                video=None, image=(256, 144), png=True, shape="2025", model_path=True, previews=0
            )
            for _ in range(4)
        ],
    )


def act_two() -> Scenario:
    """Act-Two style: a character image and a performance video as inputs, nested in mappings."""
    return Scenario(
        task_type="act_two",
        name="Act-Two 9001, character performance",
        options={
            "character": {
                "type": "image",
                "url": Upload(image=(320, 192), variant=12, name="hero"),
            },
            "reference": {
                "type": "video",
                "url": Upload(video=VideoSpec(320, 192, 24, 2.0, variant=3), name="performance"),
            },
            "bodyControl": True,
            "expressionIntensity": 3,
            "seed": 9001,
        },
        artifacts=[ArtifactSpec(video=VideoSpec(320, 192, 24, 2.0, variant=2), shape="2025")],
    )


def video_to_video() -> Scenario:
    """Gen-3 video to video: the input is a video, under gen2Options.init_video."""
    name = "Gen-3 Alpha 5150, the street turns to watercolour"
    return Scenario(
        task_type="gen3a",
        name=name,
        options={
            "name": name,
            "text_prompt": "the street turns to watercolour",
            "seed": 5150,
            "structure_transformation": 0.4,
            "gen2Options": {
                "mode": "gen2",
                "init_video": Upload(video=VideoSpec(320, 192, 24, 2.0, variant=4), name="street"),
                "watermark": False,
                "motion_vector": {"x": 0, "y": 0, "z": 0, "r": 0, "bg_x_pan": 0, "bg_y_pan": 0},
            },
        },
        artifacts=[ArtifactSpec(video=_CLIP, previews=1)],
    )


def failed_safety() -> Scenario:
    """FAILED by moderation: `error` is an object with a SAFETY reason; the input is kept."""
    return Scenario(
        task_type="gen4_turbo",
        name="Gen-4 Turbo 13, blocked",
        options={
            "text_prompt": "a crowd at a concert",
            "seed": 13,
            "init_image": Upload(image=(320, 192), variant=13, name="crowd"),
        },
        status="FAILED",
        error=SAFETY_ERROR,
    )


def failed_string_error() -> Scenario:
    """FAILED with `error` as a plain string, and no input."""
    return Scenario(
        task_type="gen4_turbo",
        name="Gen-4 Turbo 14, failed",
        options={"textPrompt": "a slow pan across a desert", "seed": 14, "duration": 5},
        status="FAILED",
        error=STRING_ERROR,
    )


def camel_references() -> Scenario:
    """camelCase options with referenceImages [{assetId, url, type}], the first also given as
    promptImage (one URL, one download), callback URLs never fetched, and an AAC soundtrack."""
    first = Upload(image=(320, 192), variant=14, name="reference-a")
    return Scenario(
        task_type="gen4",
        name="Gen-4 2718, two friends on a rooftop",
        options={
            "textPrompt": "two friends laughing on a rooftop at sunset",
            "duration": 5,
            "aspectRatio": "16:9",
            "resolution": "720p",
            "generateAudio": True,
            "promptImage": first,
            "referenceImages": [
                {"assetId": "asset-ref-a", "url": first, "type": "image"},
                {
                    "assetId": "asset-ref-b",
                    "url": Upload(image=(256, 144), png=True, variant=15, name="reference-b"),
                    "type": "image",
                },
            ],
            "replyUrl": Hook("reply"),
            "webhookUrl": Hook("webhook"),
            "callbacks": {"onDone": Hook("done")},
        },
        artifacts=[
            ArtifactSpec(video=VideoSpec(320, 192, 24, 2.0, variant=5, audio=True), shape="2025")
        ],
    )


def lip_sync() -> Scenario:
    """A video and an audio input (M4A, AAC); the output carries the voice."""
    return Scenario(
        task_type="lipsync",
        name="Lip Sync 31, the speech",
        options={
            "video": Upload(video=VideoSpec(320, 192, 24, 2.0, variant=6), name="face"),
            "audio": Upload(audio=2.0, variant=1, name="voice"),
        },
        artifacts=[
            ArtifactSpec(video=VideoSpec(320, 192, 24, 2.0, variant=6, audio=True), shape="2025")
        ],
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "gen4_turbo_i2v": gen4_turbo_i2v,
    "text_to_image": text_to_image,
    "act_two": act_two,
    "video_to_video": video_to_video,
    "failed_safety": failed_safety,
    "failed_string_error": failed_string_error,
    "camel_references": camel_references,
    "lip_sync": lip_sync,
}
