"""`verify`: re-check each file the catalog vouches for: present, same bytes and hash, still media;
and each task's sidecar: present, valid, naming the files the catalog holds.

Where reading costs a download (a bucket) the default is shallow: presence, size and the store's
checksum; --deep downloads, re-hashes and re-probes. Damaged files are reported by path; with
--repair their tasks are marked and archived again.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import bookkeeping, config, files, probe, progress, report, scrub, sidecar
from ..bounded import for_each
from ..catalog import Access, Catalog, TaskRow, open_catalog
from ..config import Config
from ..errors import ConfigError, StorageError, VerifyError
from ..model import ArchivedFile, State
from ..probe import Prober, compare
from ..progress import Level
from ..storage import Target, open_target
from ..timespec import now
from . import common
from .gallery import refresh_gallery


def cmd_verify(args: argparse.Namespace) -> int:
    cfg = common.load_config(args, progress=False if args.no_progress else None, probe=args.probe)
    cfg = probe.ready(cfg)
    if args.repair and not cfg.token:
        raise ConfigError(f"--repair needs the API token: set {config.ENV_TOKEN}")
    common.check_report_path(args.report, cfg)
    common.state_dir(cfg)
    level = common.level(args)
    checked, damaged, repaired = asyncio.run(
        _verify(cfg, level, deep=args.deep, repair=args.repair)
    )
    if args.report is not None:
        write_report(args.report, checked, damaged, repaired)
    left = [d for d in damaged if d.path not in repaired]
    if level > Level.QUIET or left:
        line = f"checked {checked} files: {checked - len(damaged)} ok, {len(damaged)} damaged"
        print(line + (f", {len(repaired)} repaired" if args.repair else ""))
    return 1 if left else 0


async def _verify(
    cfg: Config, level: Level, *, deep: bool, repair: bool
) -> tuple[int, list[Damage], set[str]]:
    """What was checked, what is damaged, and (with `repair`) the paths that are whole again."""
    if not repair:
        # Reading only: no lock and no write, so a read-only copy or mount can be verified.
        async with open_catalog(cfg, Access.READ) as catalog:
            checked, damaged = await _audit(cfg, catalog, level, deep=deep)
        return checked, damaged, set()
    async with open_catalog(cfg, Access.WRITE) as catalog:
        checked, damaged = await _audit(cfg, catalog, level, deep=deep)
        if not damaged:
            return checked, damaged, set()
        repaired = await _repair(cfg, catalog, damaged, level)
        await refresh_gallery(cfg, catalog, changed=True)
    return checked, damaged, repaired


async def _audit(
    cfg: Config, catalog: Catalog, level: Level, *, deep: bool
) -> tuple[int, list[Damage]]:
    entries = [entry async for entry in catalog.all_files()]
    tasks = [row async for row in catalog.tasks()]
    bar = progress.counter(len(entries), unit="file", enabled=cfg.progress and level >= 0)
    try:
        checked, damaged = await check_archive(
            cfg, entries, tasks, deep=deep, on_checked=bar.update
        )
    finally:
        bar.close()
    for damage in damaged:
        print(scrub.text(f"damaged: {damage.path}: {damage.reason}"))
    return checked, damaged


async def _repair(cfg: Config, catalog: Catalog, damaged: list[Damage], level: Level) -> set[str]:
    """Archive the damaged tasks again; the paths that are whole now."""
    by_task: dict[str, list[str]] = {}
    for damage in damaged:
        by_task.setdefault(damage.task_id, []).append(damage.path)
    for task_id, paths in by_task.items():
        reason = f"verify: {len(paths)} file(s) missing or altered, repairing"
        await catalog.mark_damaged(task_id, paths, reason=reason, now=now())
    finished = await bookkeeping.execute(
        cfg, catalog, list(by_task), report_path=None, level=level, keep=True, only=True
    )
    done = (State.ARCHIVED, State.FAILED)  # a FAILED task holds files too: its inputs
    whole = {
        path
        for o in finished.ledger.outcomes
        if o.state in done
        for path in [*(f.path for f in o.files), o.sidecar]
    }
    return {d.path for d in damaged if d.path in whole}


@dataclass(frozen=True, slots=True)
class Damage:
    task_id: str
    path: str  # relative to the archive root
    reason: str


async def check_archive(
    config: Config,
    entries: Sequence[tuple[str, ArchivedFile]],
    tasks: Sequence[TaskRow],
    *,
    deep: bool = False,
    on_checked: Callable[[], object] = lambda: None,
) -> tuple[int, list[Damage]]:
    """How many files (`entries` and sidecars) were checked, and what is wrong, in order."""
    async with open_target(config) as target, probe.open_prober(config) as prober:
        check = _Check(
            target,
            deep=deep or target.reads_are_local,
            prober=prober,
            tolerances=compare.Tolerances.from_config(config),
        )
        return await check.archive(entries, tasks, workers=config.probes, on_checked=on_checked)


@dataclass(frozen=True, slots=True)
class _Check:
    target: Target
    deep: bool
    prober: Prober
    tolerances: compare.Tolerances

    async def archive(
        self,
        entries: Sequence[tuple[str, ArchivedFile]],
        tasks: Sequence[TaskRow],
        *,
        workers: int,
        on_checked: Callable[[], object],
    ) -> tuple[int, list[Damage]]:
        found: dict[int, Damage] = {}

        async def one(item: tuple[int, tuple[str, ArchivedFile]]) -> None:
            n, (task_id, archived) = item
            reason = await self.file(archived)
            if reason:
                found[n] = Damage(task_id, archived.path, reason)
            on_checked()

        await for_each(enumerate(entries), one, limit=workers)
        damaged = [found[n] for n in sorted(found)]
        held: dict[str, list[str]] = {}
        for task_id, archived in entries:
            held.setdefault(task_id, []).append(archived.path)
        with_sidecar = [t for t in tasks if t.dir and t.state in (State.ARCHIVED, State.FAILED)]
        for row in with_sidecar:
            damage = await self.sidecar(row, held.get(row.task_id, []))
            if damage is not None:
                damaged.append(damage)
        return len(entries) + len(with_sidecar), damaged

    async def file(self, archived: ArchivedFile) -> str | None:
        """None when the file is as archived, else the reason it is not."""
        stored = await self.target.stat(archived.path)
        if stored is None:
            return "missing"
        if stored.size != archived.size:
            return f"size {stored.size} bytes, catalog says {archived.size}"
        if archived.stored is not None and stored.checksum != archived.stored:
            return "content changed (the store's checksum differs from the catalog)"
        if not self.deep:
            return None
        async with self.target.local_copy(archived.path) as path:
            if path is None:
                return "missing"
            return await check_file(path, archived, self.prober, self.tolerances)

    async def sidecar(self, row: TaskRow, paths: Sequence[str]) -> Damage | None:
        """Shallow: there at its size; deep: it parses and names the catalog's files."""
        assert row.dir is not None
        where = f"{row.dir}/{sidecar.NAME}"
        if not self.deep:
            stored = await self.target.stat(where)
            if stored is None:
                return Damage(row.task_id, where, "missing")
            if row.sidecar_bytes not in (None, stored.size):
                reason = f"size {stored.size} bytes, catalog says {row.sidecar_bytes}"
                return Damage(row.task_id, where, reason)
            return None
        async with self.target.local_copy(where) as path:
            return await asyncio.to_thread(check_sidecar, path, row, paths)


def check_sidecar(path: Path | None, row: TaskRow, paths: Sequence[str]) -> Damage | None:
    """A task's task.yaml (read from `path`) parses and names every file the catalog holds."""
    assert row.dir is not None
    where = f"{row.dir}/{sidecar.NAME}"
    if path is None:
        return Damage(row.task_id, where, "missing")
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return Damage(row.task_id, where, "missing")
    except (OSError, UnicodeDecodeError) as exc:
        return Damage(row.task_id, where, f"unreadable ({getattr(exc, 'strerror', None) or exc})")
    try:
        listed = sidecar.listed_paths(text)
    except ValueError as exc:
        return Damage(row.task_id, where, f"does not parse as a sidecar: {exc}")
    missing = sorted(p for p in paths if p.removeprefix(f"{row.dir}/") not in listed)
    if missing:
        return Damage(row.task_id, where, f"does not name {len(missing)} archived file(s)")
    return None


async def check_file(
    path: Path, archived: ArchivedFile, prober: Prober, tolerances: compare.Tolerances
) -> str | None:
    """None when the file is as archived, else the reason it is not."""
    size = files.file_size(path)
    if size is None:
        return "missing"
    if size != archived.size:
        return f"size {size} bytes, catalog says {archived.size}"
    try:
        hasher, _ = await asyncio.to_thread(files.hash_file, path)
        head, tail = await asyncio.to_thread(files.read_head_tail, path)
    except OSError as exc:
        raise StorageError(f"{path}: {exc.strerror or exc}") from exc
    if hasher.hexdigest() != archived.sha256:
        return "content changed (sha256 differs from the catalog)"
    ext = Path(archived.path).suffix.removeprefix(".")
    try:
        found = await probe.examine(prober, path, ext, head=head, tail=tail, size=size)
    except VerifyError as exc:
        return f"no longer readable media: {exc}"
    if compare.changed(archived.probe, found, tolerances):
        return "media properties changed since it was archived"
    return None


def write_report(path: Path, checked: int, damaged: list[Damage], repaired: set[str]) -> None:
    doc = {
        "summary": {"checked": checked, "damaged": len(damaged), "repaired": len(repaired)},
        "damaged": [
            {
                "task_id": d.task_id,
                "path": d.path,
                "reason": d.reason,
                "repaired": d.path in repaired,
            }
            for d in damaged
        ],
    }
    report.write_json(path, doc)
