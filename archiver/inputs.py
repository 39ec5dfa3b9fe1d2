"""The input assets of a task: every http(s) URL in its options, at any depth, with a file name.

Pure. Keys that name a callback are never followed; the same URL is one input, however often
the options repeat it. Names come from the option path: `referenceImages[1].url` -> `reference-2`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .files import slug, unique_stem

FOLDER = "inputs"  # inside the task's folder
ROOT = "options"
# Leaf keys that say what the value is rather than which input it is: the name comes from the
# key above (`character.uri` -> character); media words only right after a list index
# (`keyframes[0].image` -> keyframe-1, while `gen2Options.image` stays image).
_LINK_WORDS = frozenset({"url", "uri", "src", "href", "link"})
_MEDIA_WORDS = frozenset({"image", "video", "audio", "file"})
_PLURALS = ("Images", "Videos", "Audios", "Assets", "Urls", "Files")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Token = str | int


@dataclass(frozen=True, slots=True)
class InputRef:
    """One URL to download as an input, and every option path that names it (first first)."""

    stem: str  # e.g. "inputs/init_image", unique within the task, without extension
    url: str
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InputSelection:
    """The inputs a task's options name: those to download, and those beyond the limit."""

    refs: tuple[InputRef, ...]
    over_limit: tuple[tuple[str, str], ...]  # (option path, url) beyond max_inputs


def is_callback(key: str) -> bool:
    """A key naming where the API reports back, never an asset: replyUrl, *webhook*, *callback*."""
    lowered = key.lower()
    return lowered == "replyurl" or "webhook" in lowered or "callback" in lowered


def find(options: Mapping[str, Any] | None) -> list[tuple[tuple[Token, ...], str]]:
    """Every http(s) URL in `options` with its path below the root, in document order."""
    found: list[tuple[tuple[Token, ...], str]] = []
    stack: list[tuple[tuple[Token, ...], Any]] = [((), options)]
    while stack:  # iterative: the depth of the JSON is the server's choice
        path, value = stack.pop()
        if isinstance(value, Mapping):
            items = [(k, v) for k, v in value.items() if not is_callback(str(k))]
            stack.extend(((*path, str(k)), v) for k, v in reversed(items))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
        elif _is_url(value):
            found.append((path, value))
    return found


def select(
    options: Mapping[str, Any] | None, *, limit: int, exclude: Collection[str] = ()
) -> InputSelection:
    """Distinct URLs, at most `limit`, each uniquely named; URLs of paths in `exclude` left out."""
    by_url: dict[str, list[tuple[Token, ...]]] = {}
    for path, url in find(options):
        by_url.setdefault(url, []).append(path)
    used: set[str] = set()
    refs: list[InputRef] = []
    over: list[tuple[str, str]] = []
    for url, paths in by_url.items():
        shown = tuple(option_path(p) for p in paths)
        if any(p in exclude for p in shown):
            continue
        if len(refs) >= limit:
            over.extend((p, url) for p in shown)
            continue
        stem = unique_stem(name(paths[0]), used)
        refs.append(InputRef(f"{FOLDER}/{stem}", url, shown))
    return InputSelection(tuple(refs), tuple(over))


def option_path(path: tuple[Token, ...]) -> str:
    """`options.referenceImages[1].url`; a key that is not an identifier is quoted: `["a.b"]`."""
    parts = [ROOT]
    for token in path:
        if isinstance(token, int):
            parts.append(f"[{token}]")
        elif _IDENTIFIER.fullmatch(token):
            parts.append(f".{token}")
        else:
            parts.append('["' + token.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(parts)


def name(path: tuple[Token, ...]) -> str:
    """A file name (without extension) from the option path, as one safe path component."""
    tokens = list(path)
    while len(tokens) > 1 and _says_only_what(tokens[-1], tokens[-2]):
        if not any(isinstance(t, str) for t in tokens[:-1]):
            break
        tokens.pop()
    keys = [i for i, t in enumerate(tokens) if isinstance(t, str)]
    last = keys[-1] if keys else -1
    base = str(tokens[last]) if keys else "input"
    numbers = [str(int(t) + 1) for t in tokens[last + 1 :]]
    if numbers:
        base = _singular(base)
    return slug("-".join([base, *numbers]), limit=60, fallback="input")


def _says_only_what(token: Token, before: Token) -> bool:
    if not isinstance(token, str):
        return False
    word = token.lower()
    return word in _LINK_WORDS or (word in _MEDIA_WORDS and isinstance(before, int))


def _singular(key: str) -> str:
    for suffix in (*_PLURALS, *(f"_{p.lower()}" for p in _PLURALS)):
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    if key.endswith("s") and not key.endswith("ss") and len(key) > 1:
        return key[:-1]
    return key


def _is_url(value: Any) -> bool:
    # No whitespace: a prompt that merely starts with a link is not an asset.
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    scheme, sep, rest = value.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and rest[:1] not in ("", "/")
