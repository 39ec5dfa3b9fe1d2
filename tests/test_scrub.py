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
