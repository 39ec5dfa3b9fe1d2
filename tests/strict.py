"""Type-strict comparison of JSON-like values: True is not 1, 1.0 is not 1, "0755" is not 493."""

from __future__ import annotations

import math
from typing import Any


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Every place where `got` differs from `want` in type, value, key order or length."""
    if type(got) is not type(want):
        return [
            f"{where or '.'}: {type(got).__name__} {got!r}, want {type(want).__name__} {want!r}"
        ]
    if isinstance(want, dict):
        if list(got) != list(want):
            return [f"{where or '.'}: keys {list(got)!r}, want {list(want)!r}"]
        return [d for key in want for d in differences(got[key], want[key], f"{where}.{key}")]
    if isinstance(want, list):
        if len(got) != len(want):
            return [f"{where or '.'}: {len(got)} items, want {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{where}[{i}]")
        ]
    if isinstance(want, float) and (math.isnan(want) or math.isnan(got)):
        return [] if math.isnan(want) and math.isnan(got) else [f"{where}: {got!r}, want {want!r}"]
    if isinstance(want, float) and math.copysign(1, got) != math.copysign(1, want):
        return [f"{where}: {got!r}, want {want!r} (sign)"]
    return [] if got == want else [f"{where or '.'}: {got!r}, want {want!r}"]
