"""`gallery`: write the offline gallery from the catalog; and its refresh at the end of a run."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .. import config, scrub, storage
from ..bookkeeping import until_signal
from ..catalog import Access, Catalog, open_catalog
from ..errors import ArchiverError, Interrupted
from ..gallery import INDEX, Built, build, refresh
from ..progress import Level
from ..timespec import now
from . import common


def cmd_gallery(args: argparse.Namespace) -> int:
    cfg = common.load_config(args)
    common.state_dir(cfg)
    built, link = asyncio.run(_build(cfg))
    if common.level(args) > Level.QUIET:
        print(f"gallery: {built.tasks} tasks: {link}")
    return 0


async def _build(cfg: config.Config) -> tuple[Built, str]:
    async with open_catalog(cfg, Access.WRITE) as catalog, catalog.gallery_lock():
        return await storage.gallery(cfg, lambda root: build(root, catalog, now=now()), index=INDEX)


async def refresh_gallery(cfg: config.Config, catalog: Catalog, *, changed: bool) -> None:
    """After `run` and `verify --repair`: the gallery made again if the archive changed."""
    if not cfg.gallery:
        return
    try:
        # A shared catalog's runs end on several hosts: one writes the gallery at a time.
        async with catalog.gallery_lock():
            warning, _ = await until_signal(
                storage.gallery(
                    cfg,
                    lambda root: refresh(root, catalog, changed=changed, now=now()),
                    index=INDEX,
                )
            )
    except Interrupted:
        raise  # a signal ends the run, wherever it comes
    except ArchiverError as exc:  # a view of the archive: storing it is no task's failure
        warning = f"warning: gallery not stored: {exc}"
    if warning:
        print(scrub.text(warning), file=sys.stderr)
