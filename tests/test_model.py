"""Task.from_json against the useapi.net "Retrieve task" page: typed values, leniency, errors."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import InvalidTaskData
from archiver.model import Artifact, Task

TASK_ID = "user:user_id-runwayml:account_email-task:task_uuid"

# The 200 OK example of https://useapi.net/docs/api-runwayml-v1/get-runwayml-tasks-taskId,
# as served (with the page's missing comma after "taskId" put back).
FILENAME = "Gen-3 Alpha 123456789, Slow motion zoom in, cat chasing dog in the kitchen"
EXAMPLE: dict[str, Any] = {
    "taskId": TASK_ID,
    "id": "<task uuid>",
    "name": "Gen-3 Alpha 123456, Slow motion zoom in, cat chasing dog in the kitchen",
    "image": None,
    "createdAt": "2024-08-01T01:02:03.456Z",
    "updatedAt": "2024-08-01T01:02:03.456Z",
    "taskType": "gen3a",
    "options": {
        "name": "Gen-3 Alpha 123456789, Slow motion zoom in, cat chasing dog in the kitchen",
        "seconds": 5,
        "text_prompt": "Slow motion zoom in",
        "seed": 123456789,
        "exploreMode": True,
        "watermark": False,
        "enhance_prompt": False,
        "init_image": "<asset image url>",
        "resolution": "720p",
        "assetGroupName": "Generative Video",
        "recordingEnabled": True,
    },
    "status": "SUCCEEDED",
    "error": None,
    "progressText": None,
    "progressRatio": "1",
    "estimatedTimeToStartSeconds": None,
    "artifacts": [
        {
            "assetId": "user:user_id-runwayml:account_email-asset:asset_uuid",
            "id": "<asset uuid>",
            "createdAt": "2024-08-01T01:02:03.456Z",
            "updatedAt": "2024-08-01T01:02:03.456Z",
            "userId": 1234567,
            "createdBy": 1234567,
            "taskId": TASK_ID,
            "parentAssetGroupId": "<group uuid>",
            "filename": FILENAME,
            "url": "<asset url>",
            "fileSize": "12345678",
            "isDirectory": False,
            "previewUrls": ["<asset preview url>"],
            "private": True,
            "privateInTeam": True,
            "deleted": False,
            "reported": False,
            "metadata": {
                "frameRate": 24,
                "duration": 5.209,
                "dimensions": [1280, 768],
                "size": {"width": 1280, "height": 768},
            },
            "favorite": False,
        }
    ],
    "sharedAsset": None,
}


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def parse(data: Any) -> Task:
    return Task.from_json(data, task_id=TASK_ID)


def test_page_example_parses_to_typed_values() -> None:
    """The documented example gives the task's strings and the artifact's numbers, typed."""
    task = parse(example())
    assert task.task_id == TASK_ID
    assert task.id == "<task uuid>"
    assert task.name == EXAMPLE["name"]
    assert task.task_type == "gen3a"
    assert task.status == "SUCCEEDED"
    assert task.created_at == "2024-08-01T01:02:03.456Z"
    assert task.updated_at == "2024-08-01T01:02:03.456Z"
    assert task.options == EXAMPLE["options"]
    assert task.error is None
    assert task.progress_ratio == "1"
    assert task.progress_text is None
    assert task.is_final is True
    assert task.has_failed is False
    assert task.artifacts == (
        Artifact(
            index=0,
            id="<asset uuid>",
            filename=EXAMPLE["artifacts"][0]["filename"],
            url="<asset url>",
            file_size=12345678,
            duration=5.209,
            width=1280,
            height=768,
            frame_rate=24.0,
            preview_urls=("<asset preview url>",),
        ),
    )
    assert type(task.artifacts[0].file_size) is int
    assert type(task.artifacts[0].frame_rate) is float


def test_nulls_for_name_and_progress_are_accepted() -> None:
    """name, progressRatio and progressText may be null; they parse as None."""
    data = example()
    data.update(name=None, progressRatio=None, progressText=None)
    task = parse(data)
    assert (task.name, task.progress_ratio, task.progress_text) == (None, None, None)


def test_numeric_progress_ratio_becomes_text() -> None:
    """progressRatio sent as a number (0.42) is kept as the text "0.42", not rejected."""
    data = example()
    data["progressRatio"] = 0.42
    assert parse(data).progress_ratio == "0.42"


def test_extra_keys_at_every_level_are_ignored() -> None:
    """Unknown keys at the top, in an artifact and in its metadata change no typed value."""
    data = example()
    data["brandNewField"] = {"nested": [1, 2, 3]}
    data["artifacts"][0]["anotherField"] = [None, "x"]
    data["artifacts"][0]["metadata"]["colorSpace"] = "bt709"
    plain, extra = parse(example()), parse(data)
    assert dataclasses.replace(extra, artifacts=()) == dataclasses.replace(plain, artifacts=())
    assert extra.artifacts == plain.artifacts


def test_missing_metadata_leaves_claims_unknown() -> None:
    """An artifact without metadata has no duration, dimensions or frame rate, and no error."""
    data = example()
    del data["artifacts"][0]["metadata"]
    art = parse(data).artifacts[0]
    assert (art.duration, art.width, art.height, art.frame_rate) == (None, None, None, None)
    assert art.file_size == 12345678


def test_image_artifact_without_duration() -> None:
    """An image artifact (dimensions, no duration or frameRate) parses with those as None."""
    data = example()
    data["artifacts"][0]["metadata"] = {"dimensions": [1024, 1024]}
    art = parse(data).artifacts[0]
    assert (art.width, art.height, art.duration, art.frame_rate) == (1024, 1024, None, None)


def test_null_artifacts_is_an_empty_tuple() -> None:
    """`artifacts: null` (a task still running) gives no artifacts rather than an error."""
    data = example()
    data["artifacts"] = None
    data["status"] = "RUNNING"
    task = parse(data)
    assert task.artifacts == ()
    assert task.is_final is False


def test_metadata_size_used_when_dimensions_absent() -> None:
    """Without metadata.dimensions, metadata.size gives width and height."""
    data = example()
    meta = data["artifacts"][0]["metadata"]
    del meta["dimensions"]
    meta["size"] = {"width": 640, "height": 360}
    art = parse(data).artifacts[0]
    assert (art.width, art.height) == (640, 360)


def test_dimensions_win_over_size() -> None:
    """When both are present, metadata.dimensions is the claim that counts."""
    data = example()
    data["artifacts"][0]["metadata"]["size"] = {"width": 1, "height": 1}
    art = parse(data).artifacts[0]
    assert (art.width, art.height) == (1280, 768)


def test_numeric_file_size_is_accepted() -> None:
    """fileSize sent as a JSON number (not the documented string) still parses."""
    data = example()
    data["artifacts"][0]["fileSize"] = 999
    assert parse(data).artifacts[0].file_size == 999


def test_metadata_width_and_height_of_the_2025_shape() -> None:
    """The 2025 shape (width, height, hasAlphaChannel, hasAudio) gives dimensions and hasAudio."""
    data = example()
    data["artifacts"][0]["metadata"] = {
        "frameRate": 24,
        "duration": 5.2,
        "width": 1280,
        "height": 720,
        "hasAlphaChannel": False,
        "hasAudio": True,
    }
    art = parse(data).artifacts[0]
    assert (art.width, art.height, art.has_audio) == (1280, 720, True)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"width": 1280}, "expected two positive integers, got 1280, None"),
        ({"width": 1280, "height": "720"}, "expected two positive integers, got 1280, '720'"),
        ({"width": 0, "height": 720}, "expected two positive integers, got 0, 720"),
        ({"width": True, "height": 720}, "expected two positive integers, got True, 720"),
    ],
)
def test_bad_width_or_height_is_named(meta: dict[str, Any], message: str) -> None:
    """A 2025 width/height that is missing, a string, zero or a boolean names both fields."""
    data = example()
    data["artifacts"][0]["metadata"] = meta
    with pytest.raises(InvalidTaskData) as info:
        parse(data)
    assert str(info.value) == f"artifacts[0].metadata.width/height: {message}"


def test_has_audio_absent_in_the_2024_shape() -> None:
    """Without metadata.hasAudio the claim is None: not checked."""
    assert parse(example()).artifacts[0].has_audio is None


def test_task_keeps_the_served_json_as_raw() -> None:
    """Task.raw is the very JSON parsed, unknown keys and all; it does not count for equality."""
    data = example()
    data["sharedAsset"] = {"future": [1, None]}
    task = parse(data)
    assert task.raw is data
    assert task == parse(example())


def test_invalid_task_data_carries_the_served_status() -> None:
    """A malformed SUCCEEDED task raises InvalidTaskData that still knows status SUCCEEDED."""
    data = example()
    data["artifacts"] = "nope"
    with pytest.raises(InvalidTaskData) as info:
        parse(data)
    assert info.value.task_status == "SUCCEEDED"


def set_in(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("artifacts", 0, "fileSize"),
            "abc",
            "artifacts[0].fileSize: not a byte count: 'abc'",
        ),
        (
            ("artifacts", 0, "fileSize"),
            "-5",
            "artifacts[0].fileSize: not a byte count: '-5'",
        ),
        (
            ("artifacts", 0, "fileSize"),
            "١٢٣",
            "artifacts[0].fileSize: not a byte count: '١٢٣'",
        ),
        (
            ("artifacts", 0, "metadata", "dimensions"),
            [1280],
            "artifacts[0].metadata.dimensions: expected [width, height], got [1280]",
        ),
        (
            ("artifacts", 0, "metadata", "dimensions"),
            "x",
            "artifacts[0].metadata.dimensions: expected [width, height], got 'x'",
        ),
        (
            ("artifacts", 0, "metadata", "dimensions"),
            [1280, True],
            "artifacts[0].metadata.dimensions: expected [width, height], got [1280, True]",
        ),
        (
            ("artifacts", 0, "metadata", "duration"),
            0,
            "artifacts[0].metadata.duration: expected a positive number, got 0",
        ),
        (
            ("artifacts", 0, "metadata", "frameRate"),
            "24",
            "artifacts[0].metadata.frameRate: expected a positive number, got '24'",
        ),
        (
            ("artifacts", 0, "metadata", "duration"),
            float("nan"),
            "artifacts[0].metadata.duration: expected a positive number, got nan",
        ),
        (
            ("artifacts", 0, "metadata"),
            [],
            "artifacts[0].metadata: expected an object, got list",
        ),
        (
            ("artifacts", 0, "previewUrls"),
            ["ok", 3],
            "artifacts[0].previewUrls: expected a list of strings",
        ),
        (
            ("artifacts", 0, "metadata", "hasAudio"),
            "yes",
            "artifacts[0].metadata.hasAudio: expected true or false, got 'yes'",
        ),
        (("artifacts", 0, "url"), 12, "artifacts[0].url: expected a string, got int"),
        (("artifacts", 0), "x", "artifacts[0]: expected an object, got str"),
        (("artifacts",), {"0": {}}, "artifacts: expected a list, got dict"),
        (("options",), "fast", "options: expected an object, got str"),
        (("status",), 1, "status: expected a string, got int"),
        (("taskId",), "user:9-task:other", "taskId: the API answered for 'user:9-task:other'"),
    ],
)
def test_bad_field_is_named_in_the_error(
    path: tuple[str | int, ...], value: Any, message: str
) -> None:
    """A malformed field raises InvalidTaskData whose message names that field exactly."""
    with pytest.raises(InvalidTaskData) as info:
        parse(set_in(example(), path, value))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([EXAMPLE], "task JSON is list, not an object"),
        ("SUCCEEDED", "task JSON is str, not an object"),
        (None, "task JSON is null, not an object"),
    ],
)
def test_top_level_must_be_an_object(data: Any, message: str) -> None:
    """A top level that is a list, a string or null is InvalidTaskData saying what it was."""
    with pytest.raises(InvalidTaskData) as info:
        parse(data)
    assert str(info.value) == message


def test_error_names_the_second_artifact() -> None:
    """A bad field in artifacts[1] is reported with index 1, not 0."""
    data = example()
    second = copy.deepcopy(data["artifacts"][0])
    second["fileSize"] = "12 MB"
    data["artifacts"].append(second)
    with pytest.raises(InvalidTaskData, match=r"^artifacts\[1\]\.fileSize: "):
        parse(data)


def test_huge_file_size_string_is_invalid_task_data() -> None:
    """A fileSize of 5000 digits is InvalidTaskData naming the field, not a bare ValueError."""
    data = example()
    data["artifacts"][0]["fileSize"] = "1" * 5000
    with pytest.raises(InvalidTaskData, match=r"^artifacts\[0\]\.fileSize: "):
        parse(data)


@pytest.mark.parametrize("key", ["duration", "frameRate"])
def test_huge_integer_claim_is_invalid_task_data(key: str) -> None:
    """A 401-digit integer duration/frameRate (valid JSON) is InvalidTaskData, not OverflowError."""
    data = example()
    data["artifacts"][0]["metadata"][key] = json.loads("1" + "0" * 400)
    with pytest.raises(InvalidTaskData, match=rf"^artifacts\[0\]\.metadata\.{key}: "):
        parse(data)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"errorMessage": "Prompt flagged", "message": "m", "reason": "r"}, "r: Prompt flagged"),
        ({"message": "Out of credits", "reason": "r"}, "r: Out of credits"),
        ({"errorMessage": "Blocked", "message": "m"}, "Blocked"),
        (
            {"errorMessage": "Your request was blocked.", "reason": "SAFETY.OUTPUT.THIRD_PARTY"},
            "SAFETY.OUTPUT.THIRD_PARTY: Your request was blocked.",
        ),
        ({"reason": "SAFETY.INPUT.TEXT"}, "SAFETY.INPUT.TEXT"),
        ({"errorMessage": "", "message": None, "reason": "fallback"}, "fallback"),
        ({"moderation_category": "violence", "tally_asimov": True}, None),
        ({}, None),
        ("Generation failed", "Generation failed"),
        ("", None),
        (None, None),
    ],
)
def test_error_message_for_each_error_shape(error: Any, message: str | None) -> None:
    """error_message is `REASON: message` (errorMessage, else message); a string is kept as is."""
    data = example()
    data["status"] = "FAILED"
    data["error"] = error
    assert parse(data).error_message == message


# JSON-like values: what json.loads can hand to from_json.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
TOP_KEYS = [*EXAMPLE, "assetId"]
ARTIFACT_KEYS = list(EXAMPLE["artifacts"][0])
METADATA_KEYS = ["frameRate", "duration", "dimensions", "size", "width", "height", "hasAudio"]


@settings(max_examples=300, deadline=None)
@given(
    place=st.sampled_from(["whole", "top", "artifact", "artifact key", "metadata key", "size"]),
    top_key=st.sampled_from(TOP_KEYS),
    artifact_key=st.sampled_from(ARTIFACT_KEYS),
    metadata_key=st.sampled_from(METADATA_KEYS),
    value=JSON_VALUES,
)
def test_any_json_gives_a_task_or_invalid_task_data(
    place: str, top_key: str, artifact_key: str, metadata_key: str, value: Any
) -> None:
    """Whatever JSON value sits anywhere, from_json returns a Task or raises InvalidTaskData."""
    data: Any = example()
    if place == "whole":
        data = value
    elif place == "top":
        data[top_key] = value
    elif place == "artifact":
        data["artifacts"][0] = value
    elif place == "artifact key":
        data["artifacts"][0][artifact_key] = value
    elif place == "metadata key":
        data["artifacts"][0]["metadata"][metadata_key] = value
    else:
        data["artifacts"][0]["metadata"]["size"] = {"width": value, "height": 768}
        del data["artifacts"][0]["metadata"]["dimensions"]
    try:
        task = parse(data)
    except InvalidTaskData:
        return
    assert isinstance(task, Task)
    assert task.task_id == TASK_ID
    for art in task.artifacts:
        assert art.file_size is None or (type(art.file_size) is int and art.file_size >= 0)
        assert art.width is None or (type(art.width) is int and art.width > 0)
        assert art.duration is None or art.duration > 0
