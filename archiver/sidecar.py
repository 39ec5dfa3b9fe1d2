"""task.yaml beside the media: `task:` the JSON exactly as served, `archiver:` what we added.

Signed URLs stay in `task:` with their query strings: the sidecar is the record, inside the
archive, beside the media they point at. `render` is pure (the pipeline writes it atomically);
`listed_paths` reads back which files a sidecar names, for verify; `served` the task, for the
gallery.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from . import __version__, yamltext
from .errors import InvalidSidecar
from .files import nofollow_opener
from .model import ArchivedFile, FileKind, Missing, MissingInput, Task

NAME = "task.yaml"
# libyaml when PyYAML was built with it (as its wheels are): ~10x the pure Python code.
_FastDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STYLE: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "width": 100}
# Line breaks the pure Python emitter would write raw (so a reader folds them into spaces).
_RAW_BREAKS = re.compile("[\x85\u2028\u2029]")


class _PureDumper(yaml.SafeDumper):
    """The pure Python safe dumper, writing YAML's own line breaks (NEL, LS, PS) as escapes."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if _RAW_BREAKS.search(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_PureDumper.add_representer(str, _represent_str)


def render(
    task: Task,
    files: Sequence[ArchivedFile],
    *,
    archived_at: str,
    missing: Sequence[MissingInput] = (),
) -> str:
    """The sidecar text; paths in it are relative to the task's folder."""
    ours: dict[str, Any] = {
        "version": __version__,
        "archivedAt": archived_at,
        "artifacts": [_artifact(i, files) for i in range(len(task.artifacts))],
        "inputs": [
            {"option": option, **_file(f)}
            for f in files
            if f.kind is FileKind.INPUT
            for option in f.options
        ],
    }
    for why, key in (
        (Missing.UNAVAILABLE, "unavailableInputs"),
        (Missing.SKIPPED, "skippedInputs"),
    ):
        listed = [
            {"option": m.option, "url": m.url, "reason": m.reason} for m in missing if m.why is why
        ]
        if listed:
            ours[key] = listed
    return _dump({"task": dict(task.raw), "archiver": ours})


def _dump(doc: dict[str, Any]) -> str:
    try:
        text: str = yaml.dump(doc, Dumper=_FastDumper, **_STYLE)
    except UnicodeEncodeError:
        # libyaml takes UTF-8 only, and JSON can carry lone surrogates ("\ud800"): the pure
        # Python dumper writes them as "\uD800" escapes, which yaml.safe_load reads back.
        text = yaml.dump(doc, Dumper=_PureDumper, **_STYLE)
    return text


def _artifact(index: int, files: Sequence[ArchivedFile]) -> dict[str, Any]:
    mine = [f for f in files if f.artifact_index == index and f.kind is not FileKind.INPUT]
    main = next((f for f in mine if f.kind is FileKind.ARTIFACT), None)
    return {
        "file": _file(main) if main else None,
        "unchecked": list(main.unchecked) if main else None,
        "previews": [_file(f) for f in mine if f.kind is FileKind.PREVIEW],
    }


def _file(f: ArchivedFile) -> dict[str, Any]:
    probe = {k: v for k, v in dataclasses.asdict(f.probe).items() if v is not None}
    inside = f.path.partition("/")[2]  # catalog paths start with the task's folder
    return {"path": inside, "bytes": f.size, "sha256": f.sha256, "probe": probe}


def listed_paths(text: str) -> set[str]:
    """Every file the sidecar names (outputs, previews, inputs), relative to the task's folder.

    Raises InvalidSidecar (a ValueError) naming what is wrong when `text` is not a sidecar.
    Sidecars of the layout before `task:`/`archiver:` (one level, `artifacts[].file`) are read too.
    """
    doc = _load(text)
    if not isinstance(doc, dict):
        raise InvalidSidecar(f"expected a mapping, got {type(doc).__name__}")
    ours = doc.get("archiver")
    if "task" in doc and isinstance(ours, dict):
        where, artifacts, inputs = "archiver.", ours.get("artifacts"), ours.get("inputs", [])
    elif "taskId" in doc and "artifacts" in doc:
        where, artifacts, inputs = "", doc["artifacts"], []
    else:
        raise InvalidSidecar("no archiver section (task: and archiver:)")
    found: set[str] = set()
    for i, art in enumerate(_list(artifacts, f"{where}artifacts")):
        at = f"{where}artifacts[{i}]"
        art = _mapping(art, at)
        if art.get("file") is not None:
            found.add(_path(art["file"], f"{at}.file"))
        for j, preview in enumerate(_list(art.get("previews", []), f"{at}.previews")):
            found.add(_path(preview, f"{at}.previews[{j}]"))
    for k, entry in enumerate(_list(inputs, f"{where}inputs")):
        found.add(_path(entry, f"{where}inputs[{k}]"))
    return found


def served(folder: Path) -> dict[str, Any] | None:
    """The task JSON a folder's sidecar keeps (under `task:`, or the whole of a one-level sidecar
    from before that layout); None when it is missing or unreadable (the caller has a fallback)."""
    try:
        with open(folder / NAME, encoding="utf-8", opener=nofollow_opener) as fh:
            doc = _load(fh.read())
    except (OSError, UnicodeDecodeError, InvalidSidecar):
        return None
    if not isinstance(doc, dict):
        return None
    if "task" in doc and isinstance(doc.get("archiver"), dict):
        doc = doc["task"]
    return doc if isinstance(doc, dict) else None


def _load(text: str) -> Any:
    try:
        return yamltext.load(text)
    except yamltext.BrokenYaml as exc:
        raise InvalidSidecar(str(exc)) from exc


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidSidecar(f"{where}: expected a list")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSidecar(f"{where}: expected a mapping")
    return value


def _path(entry: Any, where: str) -> str:
    """A path inside the task's folder: relative, no `..`, no empty parts."""
    value = _mapping(entry, where).get("path")
    text = value if isinstance(value, str) else ""
    parts = PurePosixPath(text).parts if text else ()
    if not parts or parts[0] == "/" or ".." in parts or "\0" in text:
        raise InvalidSidecar(f"{where}.path: expected a relative path, got {value!r}")
    return str(PurePosixPath(*parts))


def relpath(folder: str | None) -> str | None:
    """Where a task folder's sidecar is, relative to the archive root."""
    return f"{folder}/{NAME}" if folder else None
