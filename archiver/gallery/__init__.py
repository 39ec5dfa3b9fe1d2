"""The offline gallery: index.html at the archive root, opened from file:// with no network.

`build` writes it from the catalog; `refresh` is what `run` and `verify --repair` call at the end.
"""

from __future__ import annotations

from pathlib import Path

from ..catalog import Catalog
from ..errors import ArchiverError
from .build import INDEX, Built, build

__all__ = ["INDEX", "Built", "build", "refresh"]


async def refresh(root: Path, catalog: Catalog, *, changed: bool, now: str) -> str | None:
    """Rebuild when the archive changed or has no gallery yet; a warning line if that failed."""
    if not changed and (root / INDEX).exists():
        return None
    try:
        await build(root, catalog, now=now)
    # The gallery is a view of the archive: when the disk or a planted file stops it, the
    # tasks are archived all the same and the run's exit code says so, not the gallery's
    # trouble. A bug is not that: it reaches the last-resort guard (exit 70) like any other.
    except (ArchiverError, OSError) as exc:
        return f"warning: gallery not refreshed: {exc or type(exc).__name__}"
    return None
