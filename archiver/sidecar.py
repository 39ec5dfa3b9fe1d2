"""task.yaml beside the media: the task's options as given, and what was archived and checked.

Signed URLs in the options are credentials: their query strings are left out, and listed.

`render` is pure (the pipeline writes it atomically); `listed_paths` reads one back for verify.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .http import redact
from .model import ArchivedFile, FileKind, Task

NAME = "task.yaml"
# libyaml's safe dumper when PyYAML was built with it (as its wheels are): ~10x the pure one.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render(task: Task, files: Sequence[ArchivedFile], *, archived_at: str) -> str:
    redacted: list[str] = []
    options = _without_signatures(task.options, "options", redacted)
    doc: dict[str, Any] = {
        "taskId": task.task_id,
        "id": task.id,
        "name": task.name,
        "taskType": task.task_type,
        "status": task.status,
        "createdAt": task.created_at,
        "updatedAt": task.updated_at,
        "options": options,
        "error": task.error,
        "artifacts": [_artifact(task, i, files) for i in range(len(task.artifacts))],
        "archiver": {"version": __version__, "archivedAt": archived_at},
    }
    if redacted:
        doc["archiver"]["redactedQueryStrings"] = redacted
    return dump(doc)


def dump(doc: Any) -> str:
    """YAML text; a string UTF-8 cannot carry (a lone surrogate) is written as an escape."""
    options: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "width": 100}
    try:
        return str(yaml.dump(doc, Dumper=_Dumper, **options))
    except UnicodeEncodeError:
        # libyaml takes UTF-8 only; the pure dumper escapes what UTF-8 cannot hold ("\uD800").
        return str(yaml.dump(doc, Dumper=yaml.SafeDumper, **options))


def _without_signatures(value: Any, where: str, redacted: list[str]) -> Any:
    """The options with every http(s) URL's query string (its signature) cut off."""
    if isinstance(value, Mapping):
        return {k: _without_signatures(v, f"{where}.{k}", redacted) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_signatures(v, f"{where}[{i}]", redacted) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(("http://", "https://")) and "?" in value:
        redacted.append(where)
        return redact(value)
    return value


def _artifact(task: Task, index: int, files: Sequence[ArchivedFile]) -> dict[str, Any]:
    artifact = task.artifacts[index]
    mine = [f for f in files if f.artifact_index == index]
    main = next((f for f in mine if f.kind is FileKind.ARTIFACT), None)
    return {
        "id": artifact.id,
        "filename": artifact.filename,
        "file": _file(main) if main else None,
        "metadata": artifact.metadata,
        "unchecked": list(main.unchecked) if main else None,
        "previews": [_file(f) for f in mine if f.kind is FileKind.PREVIEW],
    }


def _file(f: ArchivedFile) -> dict[str, Any]:
    probe = {k: v for k, v in dataclasses.asdict(f.probe).items() if v is not None}
    return {"path": Path(f.path).name, "bytes": f.size, "sha256": f.sha256, "probe": probe}


def listed_paths(text: str) -> set[str]:
    """The paths (relative to the task folder) of every file a sidecar names.

    Raises ValueError when `text` is not a sidecar this version writes.
    """
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError("not valid YAML") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("artifacts"), list):
        raise ValueError("not a task sidecar (no artifacts list)")
    paths: set[str] = set()
    for artifact in doc["artifacts"]:
        if not isinstance(artifact, dict):
            raise ValueError("an artifact entry is not a mapping")
        entries = [artifact.get("file"), *(artifact.get("previews") or [])]
        paths.update(e["path"] for e in entries if isinstance(e, dict) and "path" in e)
    return paths
