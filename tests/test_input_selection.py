"""Which URLs of a task's options are inputs, and what each is called: pure, no network."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import inputs

U = "https://uploads.example/datasets/1/a.jpg?_jwt=x.y.z"
V = "https://uploads.example/datasets/2/b.mp4?_jwt=x.y.z"
W = "http://uploads.example/datasets/3/c.png"


def found(options: Any) -> list[tuple[str, str]]:
    return [(inputs.option_path(path), url) for path, url in inputs.find(options)]


def test_urls_at_any_depth_in_document_order() -> None:
    """Top-level, nested mappings and lists all count, in the order the options list them."""
    options = {
        "init_image": U,
        "gen2Options": {"init_video": V, "keyframes": [{"image": W, "timestamp": 0}]},
        "referenceImages": [{"assetId": "a", "url": U, "type": "image"}],
        "seed": 5,
    }
    assert found(options) == [
        ("options.init_image", U),
        ("options.gen2Options.init_video", V),
        ("options.gen2Options.keyframes[0].image", W),
        ("options.referenceImages[0].url", U),
    ]


@pytest.mark.parametrize(
    "key", ["replyUrl", "REPLYURL", "webhookUrl", "my_Webhook", "onCallback", "callbacks"]
)
def test_callback_keys_are_never_inputs(key: str) -> None:
    """replyUrl and any key holding webhook or callback (any case) is skipped, subtree and all."""
    assert found({key: {"url": U, "list": [V]}, "init_image": W}) == [("options.init_image", W)]
    assert found({key: U}) == []


@pytest.mark.parametrize(
    "value",
    [
        "ftp://x/y",
        "file:///etc/passwd",
        "data:image/png;base64,AA",
        "https://x/a b",
        "see https://x/a",
        "https://",
        "<asset image url>",
        5,
        None,
        True,
    ],
)
def test_what_is_not_an_http_url_is_not_an_input(value: Any) -> None:
    """Other schemes, text around or inside a URL, placeholders and non-strings are ignored."""
    assert found({"image": value}) == []


def test_the_scheme_is_case_insensitive() -> None:
    """HTTPS://... is a URL like https://... ."""
    assert found({"image": "HTTPS://x/a.jpg"}) == [("options.image", "HTTPS://x/a.jpg")]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (("init_image",), "options.init_image"),
        (("referenceImages", 1, "url"), "options.referenceImages[1].url"),
        (("a.b", 0), 'options["a.b"][0]'),
        (('say "hi"',), 'options["say \\"hi\\""]'),
        (("", "x"), 'options[""].x'),
        (("1st",), 'options["1st"]'),
    ],
)
def test_option_path_is_unambiguous(path: tuple[str | int, ...], shown: str) -> None:
    """Identifier keys with dots, list indexes in brackets, any other key quoted."""
    assert inputs.option_path(path) == shown


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (("init_image",), "init_image"),
        (("image",), "image"),
        (("referenceImages", 1, "url"), "reference-2"),
        (("reference_images", 0, "uri"), "reference-1"),
        (("keyframes", 0, "image"), "keyframe-1"),
        (("gen2Options", "init_video"), "init_video"),
        (("character", "url"), "character"),
        (("reference", "video", "url"), "video"),
        (("gen2Options", "image"), "image"),
        (("images", 2), "image-3"),
        (("grid", 0, 1), "grid-1-2"),
        (("../../etc", "url"), "etc"),
        (("é" * 100,), "é" * 30),
    ],
)
def test_name_comes_from_the_option_path(path: tuple[str | int, ...], name: str) -> None:
    """The nearest telling key, singular before a list index, numbered from 1, sanitised."""
    assert inputs.name(path) == name


def test_selection_downloads_each_url_once_with_every_path() -> None:
    """The same URL under two keys is one input listing both option paths, first first."""
    chosen = inputs.select(
        {"promptImage": U, "referenceImages": [{"url": U}, {"url": V}]}, limit=10
    )
    assert [(r.stem, r.url, r.options) for r in chosen.refs] == [
        ("inputs/promptImage", U, ("options.promptImage", "options.referenceImages[0].url")),
        ("inputs/reference-2", V, ("options.referenceImages[1].url",)),
    ]
    assert chosen.over_limit == ()


def test_selection_names_are_unique_case_insensitively() -> None:
    """Two different URLs that would get one name are told apart with a number."""
    chosen = inputs.select({"image": U, "Image": V, "gen2Options": {"image": W}}, limit=10)
    assert [r.stem for r in chosen.refs] == ["inputs/image", "inputs/Image-2", "inputs/image-3"]


def test_selection_is_bounded_and_says_what_it_left_out() -> None:
    """Beyond `limit` distinct URLs, the rest are listed (every path) and not selected."""
    options = {"list": [f"https://x/{i}.jpg" for i in range(5)], "again": "https://x/4.jpg"}
    chosen = inputs.select(options, limit=2)
    assert [r.url for r in chosen.refs] == ["https://x/0.jpg", "https://x/1.jpg"]
    assert chosen.over_limit == (
        ("options.list[2]", "https://x/2.jpg"),
        ("options.list[3]", "https://x/3.jpg"),
        ("options.list[4]", "https://x/4.jpg"),
        ("options.again", "https://x/4.jpg"),
    )
    assert inputs.select(options, limit=0).refs == ()


def test_selection_leaves_out_excluded_paths() -> None:
    """An input recorded before (by any of its paths) is not selected again."""
    chosen = inputs.select({"a": U, "b": V, "c": U}, limit=10, exclude={"options.c"})
    assert [r.url for r in chosen.refs] == [V]


def test_deep_options_do_not_recurse() -> None:
    """Options nested thousands of levels deep are walked without a RecursionError."""
    deep: Any = U
    for _ in range(5000):
        deep = [deep]
    assert len(found({"x": deep})) == 1


KEYS = st.text(st.characters(codec="utf-8"), max_size=30)
OPTIONS = st.recursive(
    st.sampled_from([U, V, W, "text", 3, None]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(options=st.dictionaries(KEYS, OPTIONS, max_size=5))
def test_selected_names_are_safe_and_unique(options: dict[str, Any]) -> None:
    """Whatever the keys, every stem is inputs/<one safe component>, unique without case."""
    chosen = inputs.select(options, limit=100)
    stems = [r.stem for r in chosen.refs]
    assert len({s.casefold() for s in stems}) == len(stems)
    for stem in stems:
        folder, _, name = stem.partition("/")
        assert folder == "inputs" and name and "/" not in name and "\\" not in name
        assert not name.startswith(".") and len(name.encode()) <= 80
    assert len(chosen.refs) == len({r.url for r in chosen.refs})
