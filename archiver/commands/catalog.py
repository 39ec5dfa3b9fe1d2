"""`catalog copy`: an archive's SQLite catalog into an empty PostgreSQL database, so the archive
goes multi-host without downloading anything again (archiver/catalog/copy.py does the copy)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from .. import storage
from ..catalog.sqlite_open import catalog_path, hold_lock
from ..config import CatalogUrl
from ..progress import Level
from . import common


def cmd_catalog_copy(args: argparse.Namespace) -> int:
    cfg = common.load_config(args, catalog=args.to)
    assert isinstance(cfg.catalog, CatalogUrl)  # with the [postgres] extra: config.load says
    from ..catalog.copy import copy_catalog  # psycopg loads only now

    common.state_dir(cfg)
    where = storage.place(cfg, os.environ)
    source = catalog_path(cfg, where)
    # No run may write the SQLite catalog meanwhile, nor after: hold its lock while copying.
    with hold_lock(where.state_dir) if where.state_dir.is_dir() else contextlib.nullcontext():
        copied = asyncio.run(copy_catalog(source, cfg.catalog, host=cfg.host))
    if common.level(args) > Level.QUIET:
        counts = copied.counts
        print(
            f"copied {counts['tasks']} tasks, {counts['files']} files, {counts['runs']} runs "
            f"into {cfg.catalog}; from now on: --catalog {cfg.catalog}"
        )
    return 0
