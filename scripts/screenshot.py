"""Take the README's screenshot: a gallery in headless Chromium, the first card's video playing.

Usage: scripts/screenshot.py ARCHIVE PNG (scripts/screenshot installs what it needs first).
"""

from __future__ import annotations

import sys
from pathlib import Path

from archiver.testing.browser import chromium

MAX_BYTES = 300_000


def main(archive: Path, png: Path) -> int:
    index = archive / "index.html"
    if not index.is_file():
        print(f"screenshot: no gallery at {index}: run runway-archiver gallery", file=sys.stderr)
        return 2
    png.parent.mkdir(parents=True, exist_ok=True)
    with chromium(width=1200, height=720) as browser:
        browser.open(index.resolve().as_uri())
        # Every thumbnail decoded, and the hovered card's video past its first frame.
        browser.until(lambda: browser.js("return [...document.images].every(i => i.complete)"))
        browser.hover(browser.find(".card"))
        browser.until(
            lambda: browser.js(
                "const v = document.querySelector('.card video'); return v && v.currentTime > 0.5"
            )
        )
        browser.screenshot(png)
    size = png.stat().st_size
    print(f"screenshot: {png} ({size:,} bytes)")
    if size > MAX_BYTES:
        print(
            f"screenshot: larger than {MAX_BYTES:,} bytes: too big for the README", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
