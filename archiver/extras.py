"""Optional engines and the extra that installs each: asking for one that is not installed is
one line naming the extra (exit 2), found before any request, never an ImportError's traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import MissingExtra

# extra -> the top-level modules it installs (what `pip install 'runway-archiver[extra]'` adds)
EXTRAS: dict[str, tuple[str, ...]] = {
    "s3": ("aiobotocore", "botocore"),
    "postgres": ("psycopg", "psycopg_pool"),
    "libav": ("av",),
}


def require(extra: str, *, wanted: str) -> None:
    """MissingExtra unless `extra` is installed; `wanted` names what needs it (`s3://b`).

    Finds the modules without importing them: cheap enough for checking a config.
    """
    for name in EXTRAS[extra]:
        if importlib.util.find_spec(name) is None:
            raise _missing(extra, wanted)


@contextmanager
def engine(extra: str, *, wanted: str) -> Iterator[None]:
    """Around the import of an engine that needs `extra`: MissingExtra when it is not there.

    with extras.engine("s3", wanted=str(url)):
        from .bucket import BucketTarget
    """
    require(extra, wanted=wanted)
    try:
        yield
    except ModuleNotFoundError as exc:
        # Only the extra's own modules mean "not installed"; any other missing module is a bug.
        if (exc.name or "").partition(".")[0] in EXTRAS[extra]:
            raise _missing(extra, wanted) from exc
        raise


def _missing(extra: str, wanted: str) -> MissingExtra:
    return MissingExtra(
        f"{wanted} needs the [{extra}] extra: pip install 'runway-archiver[{extra}]'"
    )
