"""Free space: checked before a profile starts, and its lowest point sampled while it runs."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from types import TracebackType

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)i?B?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'2G' -> 2 GiB, '500M' -> 500 MiB, '123' -> 123 bytes."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (try 2G or 500M)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


class PeakUse:
    """`with PeakUse(path) as peak:` samples free space; `peak.used` is the most it went down."""

    def __init__(self, path: Path, interval: float = 0.2) -> None:
        self.path = path
        self.interval = interval
        self.start = free_bytes(path)
        self.lowest = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="disk-sampler", daemon=True)

    @property
    def used(self) -> int:
        return max(0, self.start - self.lowest)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.lowest = min(self.lowest, free_bytes(self.path))

    def __enter__(self) -> PeakUse:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.lowest = min(self.lowest, free_bytes(self.path))
