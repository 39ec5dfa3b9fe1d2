"""task.yaml as a pure function: the served JSON round-trips type-strictly; listed_paths too."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from archiver import sidecar
from archiver.api import MAX_JSON_DEPTH
from archiver.errors import InvalidSidecar, InvalidTaskData
from archiver.model import (
    ArchivedFile,
    FileKind,
    Missing,
    MissingInput,
    ProbeResult,
    Task,
)

from .strict import differences

TASK_ID = "user:1-runwayml:a@b.c-task:00000000-0000-4000-8000-000000000001"
FOLDER = "2025-01-01_x_00000000-0000-4000-8000-000000000001"
# Strings YAML 1.1 would read as something else if written plain.
LOOKALIKES = [
    "0755", "0x1F", "0o17", "1_000", "1e3", "1.0", ".5", "+1", "-0", "12:30:45", "1:20",
    "true", "True", "yes", "No", "on", "OFF", "y", "n", "null", "Null", "~", "", " ",
    ".inf", "-.inf", ".nan", "2024-08-01", "2024-08-01T01:02:03Z", "<<", "=", "- x", ": x",
    "#x", "@x", "`x", "!x", "&a", "*a", "%x", "|", ">", "'", '"', "[]", "{}", "x: y", "a #b",
    "\ufeffbom", "line\nbreak", "tab\there", "\x00nul", "\x85nel", "\u2028ls", "trailing ",
]  # fmt: skip
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # lone surrogates included
STRINGS = st.text(ANY_CHAR, max_size=12) | st.sampled_from(LOOKALIKES)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**4000), max_value=10**4000)
    | st.floats()
    | STRINGS
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=16,
)


def task_of(data: dict[str, Any]) -> Task:
    return Task.from_json(data, task_id=TASK_ID)


def round_trip(
    data: dict[str, Any], *files: ArchivedFile, missing: tuple[MissingInput, ...] = ()
) -> dict[str, Any]:
    text = sidecar.render(
        task_of(data), files, archived_at="2025-01-01T00:00:00+00:00", missing=missing
    )
    text.encode("utf-8")  # what write() does: it must not raise
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def base() -> dict[str, Any]:
    return {"taskId": TASK_ID, "status": "SUCCEEDED", "artifacts": []}


@settings(max_examples=400, deadline=None)
@given(
    options=st.dictionaries(STRINGS, JSON, max_size=6),
    extra=st.dictionaries(STRINGS, JSON, max_size=4),
)
@example(options={"init_image": "https://u.example/x.jpg?_jwt=a.b.c"}, extra={"image": None})
@example(options={"p": "\ud800", "\udfff": ["\ud800\udc00"]}, extra={})
@example(options={"huge": 10**4000, "neg": -(10**300), "f": 1e308, "z": -0.0}, extra={})
@example(options={"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, extra={})
@example(options={k: k for k in LOOKALIKES}, extra={})
def test_any_served_json_round_trips_type_strictly(
    options: dict[str, Any], extra: dict[str, Any]
) -> None:
    """Whatever JSON the API serves, yaml.safe_load(sidecar)["task"] is that JSON, type for type."""
    data = {**base(), **{k: v for k, v in extra.items() if k not in base()}, "options": options}
    try:
        task_of(data)
    except InvalidTaskData:
        assume(False)  # an unknown top-level key that collides with a typed one (e.g. name: 5)
    assert differences(round_trip(data)["task"], data) == []


def test_lone_surrogate_is_escaped_and_read_back() -> None:
    """A string the API sent as "\\ud800" (not encodable as UTF-8) is written as an escape."""
    data = {**base(), "options": {"text_prompt": "cat \ud800 dog"}}
    text = sidecar.render(task_of(data), [], archived_at="t")
    assert '"cat \\uD800 dog"' in text
    assert yaml.safe_load(text)["task"]["options"]["text_prompt"] == "cat \ud800 dog"
    assert sidecar.listed_paths(text) == set()


def probe(**values: Any) -> ProbeResult:
    return ProbeResult(**{"format_name": "x", "codec": None, "width": None, "height": None,
                          "duration": None, "frame_rate": None, **values})  # fmt: skip


def archived(kind: FileKind, index: int, name: str, options: tuple[str, ...] = ()) -> ArchivedFile:
    return ArchivedFile(
        kind, index, f"{FOLDER}/{name}", 10, "ab" * 32, probe(codec="h264"), (), options=options
    )


def test_archiver_section_lists_files_inputs_and_missing_inputs() -> None:
    """archiver: has version and time, per artifact file/unchecked/previews, inputs by option."""
    data = {**base(), "artifacts": [{"url": "https://c/x.mp4"}]}
    files = (
        archived(FileKind.ARTIFACT, 0, "clip.mp4"),
        archived(FileKind.PREVIEW, 0, "clip.preview-1.jpg"),
        archived(
            FileKind.INPUT,
            -1,
            "inputs/init_image.jpg",
            ("options.init_image", "options.promptImage"),
        ),
    )
    gone = MissingInput(
        "options.referenceImages[1].url", "https://u/r.jpg?…", Missing.UNAVAILABLE, "HTTP 404"
    )
    big = MissingInput("options.video", "https://u/v.mp4?…", Missing.SKIPPED, "too large")
    doc = round_trip(data, *files, missing=(gone, big))
    ours = doc["archiver"]
    assert set(ours) == {
        "version",
        "archivedAt",
        "artifacts",
        "inputs",
        "unavailableInputs",
        "skippedInputs",
    }
    assert ours["artifacts"] == [
        {
            "file": {
                "path": "clip.mp4",
                "bytes": 10,
                "sha256": "ab" * 32,
                "probe": {"format_name": "x", "codec": "h264"},
            },
            "unchecked": [],
            "previews": [
                {
                    "path": "clip.preview-1.jpg",
                    "bytes": 10,
                    "sha256": "ab" * 32,
                    "probe": {"format_name": "x", "codec": "h264"},
                }
            ],
        }
    ]
    assert [(i["option"], i["path"]) for i in ours["inputs"]] == [
        ("options.init_image", "inputs/init_image.jpg"),
        ("options.promptImage", "inputs/init_image.jpg"),
    ]
    assert ours["unavailableInputs"] == [
        {"option": gone.option, "url": gone.url, "reason": "HTTP 404"}
    ]
    assert ours["skippedInputs"] == [{"option": big.option, "url": big.url, "reason": "too large"}]


def test_listed_paths_names_outputs_previews_and_inputs() -> None:
    """listed_paths gives every file the sidecar names, relative to the task's folder."""
    data = {**base(), "artifacts": [{"url": "https://c/x.mp4"}, {"url": "https://c/y.mp4"}]}
    files = (
        archived(FileKind.ARTIFACT, 0, "a.mp4"),
        archived(FileKind.PREVIEW, 0, "a.preview-1.jpg"),
        archived(FileKind.INPUT, -1, "inputs/init_image.jpg", ("options.init_image",)),
    )
    text = sidecar.render(task_of(data), files, archived_at="t")
    assert sidecar.listed_paths(text) == {"a.mp4", "a.preview-1.jpg", "inputs/init_image.jpg"}


def test_listed_paths_reads_the_layout_before_task_and_archiver() -> None:
    """A sidecar written before the task:/archiver: layout still lists its files."""
    old = yaml.safe_dump(
        {
            "taskId": TASK_ID,
            "options": {"init_image": "https://u/x.jpg"},
            "artifacts": [
                {
                    "id": "a",
                    "file": {"path": "a.mp4", "bytes": 1},
                    "previews": [{"path": "a.preview-1.jpg"}],
                },
                {"id": "b", "file": None, "previews": []},
            ],
            "archiver": {"version": "0.1.0"},
        }
    )
    assert sidecar.listed_paths(old) == {"a.mp4", "a.preview-1.jpg"}


def test_served_reads_the_task_of_either_layout_from_a_folder(tmp_path: Path) -> None:
    """`served` is the task JSON under `task:` (a lone surrogate included), or the whole of a
    one-level sidecar; None when the file is missing, not YAML, or a link."""
    data = {**base(), "options": {"text_prompt": "cat \ud800 dog"}}
    (tmp_path / sidecar.NAME).write_text(sidecar.render(task_of(data), [], archived_at="t"))
    assert differences(sidecar.served(tmp_path), data) == []
    old = {"taskId": TASK_ID, "options": {"seed": 1}, "artifacts": [], "archiver": {}}
    (tmp_path / sidecar.NAME).write_text(yaml.safe_dump(old))
    assert sidecar.served(tmp_path) == old
    for text in ("task: [unclosed", "- a\n", "task: 7\narchiver: {}\n"):
        (tmp_path / sidecar.NAME).write_text(text)
        assert sidecar.served(tmp_path) is None, text
    (tmp_path / sidecar.NAME).unlink()
    assert sidecar.served(tmp_path) is None
    (tmp_path / "elsewhere.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / sidecar.NAME).symlink_to(tmp_path / "elsewhere.yaml")
    assert sidecar.served(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task: [unclosed", "not valid YAML (line 1)"),
        ("- a\n- b\n", "expected a mapping, got list"),
        ("just text", "expected a mapping, got str"),
        ("task: {}\n", "no archiver section"),
        ("task: {}\narchiver: {artifacts: 3}\n", "archiver.artifacts: expected a list"),
        ("task: {}\narchiver: {artifacts: [7]}\n", "archiver.artifacts[0]: expected a mapping"),
        (
            "task: {}\narchiver: {artifacts: [{file: {path: ../x}}]}\n",
            "archiver.artifacts[0].file.path: expected a relative path, got '../x'",
        ),
        (
            "task: {}\narchiver: {artifacts: [{file: {path: /etc/x}}]}\n",
            "expected a relative path, got '/etc/x'",
        ),
        (
            "task: {}\narchiver: {artifacts: [{file: {path: 5}}]}\n",
            "expected a relative path, got 5",
        ),
        (
            "task: {}\narchiver: {artifacts: [], inputs: [{option: o}]}\n",
            "archiver.inputs[0].path: expected a relative path, got None",
        ),
    ],
)
def test_listed_paths_refuses_what_is_not_a_sidecar(text: str, message: str) -> None:
    """Text that is not a sidecar raises InvalidSidecar, a ValueError naming what is wrong."""
    with pytest.raises(InvalidSidecar) as info:
        sidecar.listed_paths(text)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)


def test_the_deepest_json_a_task_may_have_is_written() -> None:
    """JSON as deep as the API client takes (MAX_JSON_DEPTH) still makes a sidecar that loads."""
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 3):  # task > options > lists > "x": MAX_JSON_DEPTH levels
        deep = [deep]
    data = {**base(), "options": {"deep": deep}}
    assert differences(round_trip(data)["task"], data) == []
