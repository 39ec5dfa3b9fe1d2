"""Write the gallery: index.html at the archive root and its folder of static files and data.

Everything is read from the catalog's display rows, made when each task was archived (a task
without a current one gets it here first); every file is written whole under a temp name and
renamed, and a file whose bytes did not change is left alone, so a browser open on the page
never reads a half-written file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .. import bounded, files, sidecar
from ..catalog import Catalog
from ..errors import InvalidTaskData, StorageError
from ..model import State, Task
from . import display

INDEX = "index.html"
FOLDER = "gallery"
DETAIL = "detail"
STATIC = ("gallery.js", "gallery.css")
FIRST = 500  # rows in data.js: more than a screen holds
PIECE = 1000  # cards joined at once while data-more.js is written
MANIFEST = "manifest.json"
SHARD_WRITES = 4  # shard files written (and fsynced) at once: the fsync threads' count


@dataclass(frozen=True, slots=True)
class Built:
    index: Path
    tasks: int
    remade: int  # display rows made now: tasks archived before the gallery, or changed since


async def build(root: Path, catalog: Catalog, *, now: str) -> Built:
    """Write the whole gallery from the catalog; return where it is and how many tasks it shows."""
    remade = await _remake_stale(root, catalog)
    out = files.ensure_dir(root, FOLDER)
    versions: dict[str, Any] = {
        "shards": await _write_shards(files.ensure_dir(out, DETAIL), catalog)
    }
    for name in STATIC:
        versions[name] = _put(out / name, _static(name))
    cards = await catalog.display_cards(display.SHOWN_STATES)
    # The newest rows come first, in their own small file, so the first screen is drawn at
    # once; the rest (megabytes at 100,000 tasks) arrives while the page is already usable.
    versions["data-more.js"] = _put_pieces(
        out / "data-more.js", lambda: _array_script("RUNWAY_GALLERY_MORE", cards, FIRST)
    )
    head = await _head(catalog, now, len(cards), versions)
    data = f'{head[:-1]},"rows":[{",".join(cards[:FIRST])}]}}'
    versions["data.js"] = _put(out / "data.js", _script("RUNWAY_GALLERY_DATA", data))
    page = _static("index.html").decode("utf-8")
    for name in ("gallery.css", "gallery.js", "data.js"):
        page = page.replace(f"{{{{{name}}}}}", str(versions[name]))
    index = root / INDEX
    _put(index, page.encode("utf-8"))
    return Built(index, len(cards), remade)


async def _head(catalog: Catalog, now: str, count: int, versions: dict[str, Any]) -> str:
    totals = await catalog.totals()
    last = await catalog.last_run()
    head = {
        "version": display.VERSION,
        "built": now,
        "columns": display.CARD_COLUMNS,
        "count": count,
        "more": versions["data-more.js"],
        "shards": versions["shards"],
        "totals": {
            "tasks": totals.per_state.get(State.ARCHIVED, 0),
            "failed": totals.per_state.get(State.FAILED, 0),
            "files": totals.files,
            "bytes": totals.bytes,
            "lastRun": (last.finished_at or last.started_at) if last else None,
        },
    }
    return json.dumps(head, separators=(",", ":"))


async def _remake_stale(root: Path, catalog: Catalog) -> int:
    """Make the display row of each task without a current one: archived before the gallery
    existed, or whose files changed since (from its sidecar and its catalog files)."""
    stale = await catalog.stale_display(display.SHOWN_STATES, display.VERSION)
    for row in stale:
        task = _from_sidecar(root / row.dir, row.task_id, row.status)
        shown = display.of_task(task, row.dir, await catalog.files(row.task_id))
        await catalog.record_display(row.task_id, shown)
    return len(stale)


def _from_sidecar(folder: Path, task_id: str, status: str | None) -> Task:
    """The task as its sidecar recorded it, or what the catalog knows when that cannot be read."""
    doc = sidecar.served(folder)
    if doc is not None:
        try:
            return Task.from_json(doc, task_id=task_id)
        except InvalidTaskData:
            pass  # hand-edited or damaged: the catalog's facts below still make a card
    return Task.from_json({"status": status}, task_id=task_id)


async def _write_shards(folder: Path, catalog: Catalog) -> dict[str, str]:
    """One detail file per shard that has tasks, each read and written on its own (bounded
    memory), and only when its rows changed since the last build (MANIFEST says which)."""
    stamps = await catalog.display_stamps(display.SHOWN_STATES)
    before = _manifest(folder)
    after: dict[str, list[Any]] = {}

    async def changed() -> AsyncGenerator[tuple[str, str, bytes], None]:
        for key, stamp in sorted(stamps.items()):
            known = before.get(key)
            if known and known[0] == stamp and files.file_size(folder / f"{key}.js") == known[2]:
                after[key] = known
                continue
            entries = await catalog.display_entries(display.SHOWN_STATES, key)
            yield key, stamp, _script("RUNWAY_GALLERY_SHARD", "{" + ",".join(entries) + "}", key)

    async def put(shard: tuple[str, str, bytes]) -> None:
        key, stamp, body = shard
        digest = await files.syncing(_put, folder / f"{key}.js", body, sync_folder=False)
        after[key] = [stamp, digest, len(body)]

    # Each file's fsync waits on the disk: a few at once share the journal's commits (the
    # first build of 200 tasks writes ~140 shards; one at a time that was most of a run's tail).
    await bounded.for_each(changed(), put, limit=SHARD_WRITES)
    after = dict(sorted(after.items()))  # finished in any order; the manifest's stays fixed
    for key in before.keys() - after.keys():
        files.discard(folder / f"{key}.js")  # its tasks are gone from the gallery
    manifest = json.dumps(after, separators=(",", ":")).encode()
    _put(folder / MANIFEST, manifest, sync_folder=False)
    try:
        files.fsync_dir(folder)  # once for all the renames above
    except OSError as exc:
        raise files.storage_error(exc, folder) from exc
    return {key: known[1] for key, known in after.items()}


def _manifest(folder: Path) -> dict[str, list[Any]]:
    """What the last build wrote: shard -> [stamp, digest, bytes]; empty when unreadable."""
    try:
        with open(folder / MANIFEST, "rb", opener=files.nofollow_opener) as fh:
            found = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {
        k: v
        for k, v in found.items()
        if k in display.SHARDS and isinstance(v, list) and len(v) == 3
    }


def _script(name: str, json_text: str, key: str | None = None) -> bytes:
    """A script handing JSON to the page: a file:// page may not fetch() a file, but may load
    a script. JSON is a JavaScript literal; measured, it loads faster than JSON.parse of it."""
    if key is None:
        return f"window.{name} = {json_text};\n".encode()
    return f'window.{name}("{key}", {json_text});\n'.encode()


def _array_script(name: str, items: Sequence[str], start: int) -> Iterator[bytes]:
    """`_script(name, "[items[start:]...]")` in pieces of a few hundred KB: at 100,000 tasks
    the whole text is some 50 MB, never held at once, nor a copy of the list."""
    yield f"window.{name} = [".encode()
    for at in range(start, len(items), PIECE):
        comma = "," if at > start else ""
        yield (comma + ",".join(items[at : at + PIECE])).encode()
    yield b"];\n"


def _put_pieces(
    path: Path, pieces: Callable[[], Iterable[bytes]], *, sync_folder: bool = True
) -> str:
    """`_put` for a file given in pieces (called twice: to compare, then to write, only when
    the bytes differ from the file's); never joined in memory."""
    hasher, size = hashlib.sha256(), 0
    for piece in pieces():
        hasher.update(piece)
        size += len(piece)
    digest = hasher.hexdigest()
    try:
        same = files.file_size(path) == size and files.hash_file(path)[0].hexdigest() == digest
    except OSError:
        same = False
    if not same:
        files.atomic_write(path, pieces(), sync_folder=sync_folder)
    return digest[:16]


def _put(path: Path, data: bytes, *, sync_folder: bool = True) -> str:
    """Write `data` atomically unless the file already holds it; return a short digest."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        same = files.file_size(path) == len(data) and path.read_bytes() == data
    except OSError:
        same = False
    if not same:
        files.atomic_write(path, data, sync_folder=sync_folder)
    return digest


def _static(name: str) -> bytes:
    try:
        return (resources.files(__package__) / "static" / name).read_bytes()
    except OSError as exc:
        raise StorageError(f"gallery: the installed package lacks static/{name}: {exc}") from exc
