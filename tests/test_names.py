"""Names inside the archive: slugs, task folders, unique stems and the chosen extension."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from archiver import files
from archiver.model import Task

UUID = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
TASK_ID = f"user:1234-runwayml:me@example.com-task:{UUID}"
HOSTILE = ["../../etc/passwd", "a/b\\c", "\x00\x1f", "é" * 500, "..", "   ", ".", "/", "~"]


def task(**fields: Any) -> Task:
    data = {"id": UUID, "name": "Gen-3 Alpha 123, cat", "createdAt": "2024-08-01T01:02:03.456Z"}
    task_id = fields.pop("task_id", TASK_ID)
    data.update(fields)
    return Task.from_json(data, task_id=task_id)


def is_safe_component(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and not any(unicodedata.category(c).startswith("C") for c in name)
        and not any(c.isspace() for c in name)
    )


@settings(max_examples=300, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=8, max_value=120))
@example(text="../../etc/passwd", limit=80)
@example(text="é" * 500, limit=80)
@example(text="a" + "😀" * 30, limit=9)
def test_slug_is_one_safe_component_within_limit(text: str, limit: int) -> None:
    """For any text, slug is non-empty, safe as one path component and at most `limit` bytes."""
    name = files.slug(text, limit=limit)
    assert is_safe_component(name), name
    assert len(name.encode("utf-8")) <= limit


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_slug_always_lands_in_its_parent(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Joined to a root, any slug resolves to a direct child of that root."""
    root = tmp_path_factory.getbasetemp()
    assert Path(root, files.slug(text)).resolve().parent == root.resolve()


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_stay_inside_the_parent(tmp_path: Path, text: str) -> None:
    """Traversal, separators, controls, overlong and blank names stay one level below root."""
    name = files.slug(text)
    assert is_safe_component(name)
    assert Path(tmp_path, name).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Gen-3 Alpha 123, cat chasing dog", "Gen-3-Alpha-123-cat-chasing-dog"),
        ("../../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ("\x00\x1f", "untitled"),
        ("..", "untitled"),
        ("   ", "untitled"),
        (None, "untitled"),
        ("Küche 🐱 café", "Küche-café"),
        (".hidden", "hidden"),
        ("e\u0301", "é"),  # NFC: a decomposed é becomes one character
    ],
)
def test_slug_exact_values(text: str | None, expected: str) -> None:
    """slug keeps letters, digits, '.', '+', '-' and '_', joins the rest with one '-'."""
    assert files.slug(text) == expected


def test_slug_cuts_on_a_character_boundary() -> None:
    """500 'é' (2 bytes each) are cut to 40 whole characters: 80 bytes, no broken UTF-8."""
    assert files.slug("é" * 500) == "é" * 40


def test_slug_uses_the_fallback_given() -> None:
    """An empty result takes the caller's fallback (the pipeline's 'artifact-N')."""
    assert files.slug("///", fallback="artifact-2") == "artifact-2"


def test_task_dir_name_is_date_title_uuid() -> None:
    """A trusted uuid gives '<date>_<slug of name>_<uuid>'."""
    assert files.task_dir_name(task()) == f"2024-08-01_Gen-3-Alpha-123-cat_{UUID}"


def test_task_dir_name_lowercases_the_uuid() -> None:
    """An upper-case uuid that is the tail of taskId is used, lower-cased."""
    upper = UUID.upper()
    t = task(id=upper, task_id=f"user:1-runwayml:me@example.com-task:{upper}", name=None)
    assert files.task_dir_name(t) == f"2024-08-01_{UUID}"


def test_task_dir_name_without_name() -> None:
    """No name leaves the title out rather than writing 'untitled'."""
    assert files.task_dir_name(task(name=None)) == f"2024-08-01_{UUID}"


def test_task_dir_name_hostile_name_is_sanitised() -> None:
    """A name with '../' and '/' still makes a single component."""
    name = files.task_dir_name(task(name="../../../root/.ssh/authorized_keys"))
    assert name == f"2024-08-01_root-.ssh-authorized_keys_{UUID}"
    assert is_safe_component(name)


def hashed(task_id: str) -> str:
    return hashlib.sha256(task_id.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "served_id",
    [
        "not-a-uuid",
        "../../x",
        "00000000-0000-4000-8000-000000000000",  # a uuid, but not this task's
        None,
    ],
)
def test_task_dir_name_hashes_an_untrusted_id(served_id: str | None) -> None:
    """An `id` that is not a uuid, or not the tail of taskId, is replaced by a taskId hash."""
    t = task(id=served_id)
    assert files.task_dir_name(t) == f"2024-08-01_Gen-3-Alpha-123-cat_{hashed(TASK_ID)}"


def test_server_cannot_point_two_tasks_at_one_folder() -> None:
    """Two tasks answered with the same id, name and date still get different folders."""
    other_id = "user:1234-runwayml:me@example.com-task:11111111-2222-4333-8444-555555555555"
    a = task(id=UUID)
    b = task(id=UUID, task_id=other_id)
    assert files.task_dir_name(a) != files.task_dir_name(b)
    assert files.task_dir_name(b).endswith(hashed(other_id))


@pytest.mark.parametrize(
    "created_at", [None, "", "yesterday", "2024-8-1T00:00:00Z", "../2024-08-01", "2024/08/01"]
)
def test_task_dir_name_undated_for_a_bad_created_at(created_at: str | None) -> None:
    """A createdAt that does not start with YYYY-MM-DD gives 'undated'."""
    assert files.task_dir_name(task(createdAt=created_at)) == (
        f"undated_Gen-3-Alpha-123-cat_{UUID}"
    )


def test_task_dir_name_title_is_at_most_60_bytes() -> None:
    """A long name is cut to 60 bytes in the folder name."""
    name = files.task_dir_name(task(name="x" * 300))
    assert name == f"2024-08-01_{'x' * 60}_{UUID}"


def test_unique_stem_numbers_repeats() -> None:
    """The same wanted stem comes back as stem, stem-2, stem-3."""
    used: set[str] = set()
    assert [files.unique_stem("clip", used) for _ in range(3)] == ["clip", "clip-2", "clip-3"]
    assert used == {"clip", "clip-2", "clip-3"}


def test_unique_stem_ignores_case() -> None:
    """'Clip' after 'clip' is a clash (case-insensitive file systems) and keeps its case."""
    used: set[str] = set()
    assert files.unique_stem("clip", used) == "clip"
    assert files.unique_stem("Clip", used) == "Clip-2"
    assert files.unique_stem("CLIP-2", used) == "CLIP-2-2"


def test_unique_stem_skips_a_taken_number() -> None:
    """If 'a-2' was taken by name, the second 'a' becomes 'a-3'."""
    used: set[str] = set()
    got = [files.unique_stem(s, used) for s in ("a-2", "a", "a")]
    assert got == ["a-2", "a", "a-3"]


@pytest.mark.parametrize(
    ("sniffed", "url_path", "content_type", "expected"),
    [
        ("png", "https://cdn.example/v/clip.mp4", "video/mp4", "png"),  # the bytes win
        ("webm", "https://cdn.example/v/clip.exe", None, "webm"),
        (None, "https://cdn.example/v/clip.MP4", "image/png", "mp4"),  # then the URL
        (None, "https://cdn.example/v/clip.jpeg", None, "jpg"),
        (None, "https://cdn.example/v/clip.m4v", None, "m4v"),
        (None, "https://cdn.example/v.mp4/clip", "video/webm", "webm"),  # folder dot ignored
        (None, "https://cdn.example/v/clip.exe", None, "bin"),
        (None, "https://cdn.example/v/clip.sh", "video/mp4", "mp4"),  # then the label
        (None, "https://cdn.example/v/run.mp4.sh", None, "bin"),
        (None, "https://cdn.example/v/clip", "image/jpeg; charset=binary", "jpg"),
        (None, "https://cdn.example/v/clip", "Video/QuickTime", "mov"),
        (None, "https://cdn.example/v/clip", "text/html", "bin"),
        (None, "https://cdn.example/v/clip", "application/x-sh", "bin"),
        (None, "", None, "bin"),
    ],
)
def test_choose_extension(
    sniffed: str | None, url_path: str, content_type: str | None, expected: str
) -> None:
    """Magic bytes first, then an allow-listed URL suffix, then the content type, else 'bin'."""
    assert files.choose_extension(sniffed, url_path, content_type) == expected


@settings(max_examples=200, deadline=None)
@given(url_path=st.text(), content_type=st.none() | st.text())
def test_choose_extension_never_leaves_the_allow_list(
    url_path: str, content_type: str | None
) -> None:
    """Whatever the URL and the label, the extension is allow-listed or 'bin'."""
    ext = files.choose_extension(None, url_path, content_type)
    assert ext in (files.ALLOWED_EXTENSIONS - {"jpeg"}) | {"bin"}


def test_dotless_url_name_is_not_a_suffix() -> None:
    """A URL ending in '/mp4' has no suffix, so the content type decides."""
    assert files.choose_extension(None, "https://cdn.example/assets/mp4", "image/png") == "png"
