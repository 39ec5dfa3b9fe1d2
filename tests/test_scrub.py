"""Scrubbing messages: the quick test for "nothing to scrub" never lets a credential through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from archiver import scrub

PIECES = st.sampled_from(
    ["https://cdn.example/v.mp4?_jwt=abc", "?x=1", "://", "_JWT=", "Bearer ", "bEaReR\tx",
     "\ud800", "\x00", "\x85", "\n", " ", "a", "é", ":", "?", "=", "_jwt"]
)  # fmt: skip


@given(st.lists(st.one_of(st.text(max_size=20), PIECES), max_size=12).map("".join))
def test_a_message_without_a_suspect_is_what_every_pattern_leaves(message: str) -> None:
    """Where the quick search finds nothing, no pattern would have changed the message."""
    if not scrub._plain(message):
        return
    for pattern in (scrub._URL_QUERY, scrub._JWT, scrub._BEARER, scrub._SURROGATE):
        assert pattern.sub("X", message) == message
    assert scrub._CONTROL.sub(scrub._escape, message) == message
    assert scrub.text(message) == message


def test_signed_urls_and_tokens_are_still_scrubbed() -> None:
    """The slow path runs whenever a message holds anything to scrub."""
    scrub.add_secret("s3cr3t-token")
    line = "GET https://cdn.example/a.mp4?_jwt=xyz failed; Bearer s3cr3t-token\n"
    assert scrub.text(line) == "GET https://cdn.example/a.mp4?… failed; Bearer <token> "


MESSAGES = st.lists(st.one_of(st.text(max_size=20), PIECES), max_size=8).map("".join)


@given(st.lists(MESSAGES, max_size=6))
def test_a_page_is_scrubbed_as_its_lines_one_by_one(page: list[str]) -> None:
    """`texts` gives each message what `text` gives it, whether the page is plain or not."""
    scrub.add_secret("s3cr3t-token")
    assert scrub.texts(page) == [scrub.text(m) for m in page]


def test_a_secret_split_across_two_lines_of_a_page_is_scrubbed_in_each() -> None:
    """A secret only the page holds whole (split over two lines) leaves each line as it is, and
    a line holding it whole is scrubbed even among plain ones."""
    scrub.add_secret("s3cr3t-token")
    assert scrub.texts(["plain s3cr3t", "-token plain"]) == ["plain s3cr3t", "-token plain"]
    assert scrub.texts(["plain", "x s3cr3t-token y"]) == ["plain", "x <token> y"]
