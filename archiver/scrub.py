"""Every message is scrubbed before it is shown or stored: no secret, no signed query, one line.

Servers may echo the token or a signed URL back in an error body; whatever they send, what the
archiver prints or writes outside the archive folder never carries a credential.
"""

from __future__ import annotations

import re
import urllib.parse

from yarl import URL

_secrets: list[str] = []  # longest first: a secret holding another is replaced whole
# A query string is a signature on the CDN's URLs (`?_jwt=...`): the path is enough to name one.
# The query ends where the URL does; punctuation just before a blank belongs to the sentence.
_URL_QUERY = re.compile(
    r"""(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>]*)\?[^\s"'<>]*?(?=[:;,.)\]]*(?:[\s"'<>]|$))"""
)
_JWT = re.compile(r"""(_jwt=)[^\s&"'<>]+""", re.IGNORECASE)
_BEARER = re.compile(r"""(\bBearer\s+)[^\s"'<>]+""", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# What any of the patterns above needs (besides a control or a surrogate, which only a line
# that is not printable ASCII can hold): without it (most lines), there is nothing to scrub.
_SUSPECTS = (b"://", b"_jwt=", b"bearer")
_PRINTABLE = bytes(range(0x20, 0x7F))  # printable ASCII: what str.isprintable says of it


def add_secret(secret: str) -> None:
    """Remember a credential (the token) so that no message can show it, however it is echoed."""
    if len(secret) >= 4:  # a shorter "secret" would blank out ordinary words
        new = {secret, urllib.parse.quote(secret, safe="")}.difference(_secrets)
        _secrets[:] = sorted([*_secrets, *new], key=len, reverse=True)


def text(message: str) -> str:
    """`message` fit for a terminal, a log or a report: one line, valid UTF-8, no credential."""
    for secret in _secrets:
        message = message.replace(secret, "<token>")
    if _plain(message):
        return message  # `status` scrubs a line per task: a million lines, a few scans each
    message = _URL_QUERY.sub(r"\1?…", message)
    message = _JWT.sub(r"\1…", message)
    message = _BEARER.sub(r"\1…", message)
    # A lone surrogate (JSON can carry one, UTF-8 cannot) would make every write fail.
    message = _SURROGATE.sub("\ufffd", message)
    return _CONTROL.sub(_escape, message)


def texts(messages: list[str]) -> list[str]:
    """Each of `messages` as `text` makes it; a page of plain lines (most pages) tested at once,
    in C: `status` writes a million lines, and a call per line was a sixth of its time."""
    joined = "".join(messages)
    # Plain and secret-free together means plain and secret-free each (a suspect or a secret
    # spanning two messages only sends the page the slow way).
    if _plain(joined) and not any(secret in joined for secret in _secrets):
        return messages
    return [text(m) for m in messages]


def redact(url: str | URL) -> str:
    """A URL fit for logs: signed query strings and user info are credentials."""
    text = str(url)
    try:
        parsed = URL(text, encoded=True)
    except ValueError:
        return "<unparseable URL>"
    if parsed.user is not None or parsed.password is not None:
        parsed = parsed.with_user(None)
    shown = str(parsed.with_query(None).with_fragment(None))
    return shown + ("?…" if parsed.raw_query_string else "")


def _plain(message: str) -> bool:
    """Nothing to scrub: printable ASCII without a URL, a `_jwt=` or a bearer token. Tested on
    the bytes, in C: a page of `status` (160 KB) in a third of the time `str.isprintable` and
    a lowered copy take, measured."""
    if not message.isascii():
        return False
    data = message.encode("ascii")
    if data.translate(None, _PRINTABLE):  # what is left is not printable
        return False
    lowered = data.lower()
    return not any(suspect in lowered for suspect in _SUSPECTS)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return " " if char in "\t\r\n" else f"\\x{ord(char):02x}"
