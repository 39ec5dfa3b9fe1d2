"""The SQLite catalog's record of its last clean check, so an open of an unchanged catalog skips
the integrity check, which reads the whole file (tens of seconds at a million tasks).

A writing command that closes the catalog cleanly (the check passed at open, no statement found
damage, no write-ahead log left) writes the file's identity beside it (`<name>-checked`): device,
inode, size, mtime and ctime. Anything that writes to the file later changes its mtime, so the
next open checks the file in full again. The catalog's mtime is set just before the record's
own, so even a write within the same clock tick as the last commit shows (git's "racily clean"
index entries). What this cannot see: a change that keeps size and times (a disk's own silent
corruption, or times set back on purpose); a statement that reads such a page still says the
catalog is damaged.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

SUFFIX = "-checked"


def path_of(catalog: Path) -> Path:
    return catalog.with_name(catalog.name + SUFFIX)


def unchanged(catalog: Path) -> bool:
    """Is the file exactly as the last clean close left it (and no write-ahead log beside it)?"""
    try:
        recorded = path_of(catalog).read_text(encoding="ascii")
        now = os.stat(catalog)
    except (OSError, ValueError):
        return False
    return recorded == _identity(now) and not _wal(catalog)


def forget(catalog: Path) -> None:
    """Drop the record before a writer changes the file: a run killed midway leaves none."""
    # Where it cannot be removed, the file's identity no longer matches it after the first write.
    with contextlib.suppress(OSError):
        path_of(catalog).unlink(missing_ok=True)


def record(catalog: Path) -> None:
    """After a clean close of a written catalog: its identity, for the next open to trust."""
    stamp = path_of(catalog)
    temp = stamp.with_name(stamp.name + ".tmp")
    if _wal(catalog):
        return  # another connection still has the log open: its frames are not in the file
    try:
        temp.write_text("", encoding="ascii")
        tick = os.stat(temp).st_mtime_ns  # the file system's clock, now
        st = os.stat(catalog)
        if st.st_mtime_ns >= tick:  # a later write in this tick would keep the same mtime
            os.utime(catalog, ns=(st.st_atime_ns, tick - 1))
            st = os.stat(catalog)
        temp.write_text(_identity(st), encoding="ascii")
        os.replace(temp, stamp)
    except OSError:
        # A folder we may not write in: no record, and the next open checks in full.
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"


def _wal(catalog: Path) -> bool:
    try:
        return os.stat(catalog.with_name(catalog.name + "-wal")).st_size > 0
    except OSError:
        return False
