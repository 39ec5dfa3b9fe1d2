"""`python -m archiver.testing`: run the useapi.net emulator standalone with seeded tasks.

Writes task ids, asset URLs and a ready file for demos and benchmarks, then serves until SIGTERM.
With --stats-file, SIGUSR1 (and the exit) writes the requests seen per origin and its own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

from archiver.testing.lifecycle import Lifecycle
from archiver.testing.listing import ORDERS
from archiver.testing.media import MediaLibrary, VideoSpec
from archiver.testing.scenarios import SCENARIOS
from archiver.testing.server import Emulator
from archiver.testing.tasks import default_options

_VIDEO = re.compile(r"^(\d+)x(\d+)@(\d+):([\d.]+)$")
_MIX = ("PENDING", "RUNNING", "THROTTLED", "FAILED", "CANCELLED")
# Varied prompts, so that a demo archive's gallery shows what search and cards are for.
_PROMPTS = (
    "a cat chasing a dog across a kitchen floor, slow motion",
    "aerial drone shot over a misty pine forest at sunrise",
    "neon city street at night in the rain, handheld tracking shot",
    "close up of a red fox in the snow, golden hour, 35mm film grain",
    "waves crashing on black volcanic rocks, cinematic wide angle",
    "a paper boat drifting down a gutter stream, macro lens",
)


def default_cache() -> Path:
    """$XDG_CACHE_HOME/runway-archiver/media, or ~/.cache/runway-archiver/media."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runway-archiver" / "media"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m archiver.testing", description=__doc__)
    p.add_argument("--tasks", type=int, default=5, help="SUCCEEDED tasks to seed (default 5)")
    p.add_argument("--mix", action="store_true", help="also seed PENDING/RUNNING/.../CANCELLED")
    _add_seed_kinds(p)
    p.add_argument("--video", default="320x192@24:2", help="WxH@FPS:SECONDS (default 320x192@24:2)")
    p.add_argument("--bitrate", default=None, help="constant bitrate such as 16M (realistic sizes)")
    p.add_argument("--variants", type=int, default=2, help="distinct video files shared by tasks")
    p.add_argument("--previews", type=int, default=3, help="preview JPEGs per artifact")
    p.add_argument("--token", default="test-token")
    p.add_argument("--cdn-rate", type=float, default=None, help="bytes/s per CDN connection")
    p.add_argument("--api-delay", type=float, default=0.0, help="seconds before each API answer")
    p.add_argument("--url-ttl", type=float, default=3600.0, help="lifetime of signed URLs (s)")
    p.add_argument("--cache", type=Path, default=None, help="media cache dir")
    p.add_argument("--ids-out", type=Path, default=None, help="write task ids here, one a line")
    p.add_argument("--urls-out", type=Path, default=None, help="write asset URLs here, one a line")
    p.add_argument("--ready-file", type=Path, default=None, help="write connection JSON here")
    p.add_argument(
        "--full-previews",
        action="store_true",
        help="previews at the video's full size with grain (50-150 KB at 1280x768), as real ones",
    )
    p.add_argument(
        "--manifest-out",
        type=Path,
        default=None,
        help="write JSON here: per task, each asset URL with its kind, bytes and file on disk",
    )
    p.add_argument(
        "--stats-file",
        type=Path,
        default=None,
        help="on SIGUSR1 and at exit write JSON here: requests per origin, own CPU seconds",
    )
    p.add_argument(
        "--no-request-log",
        action="store_true",
        help="keep only request counts, not a log entry per request (long benchmarks)",
    )
    args = p.parse_args(argv)
    if not _VIDEO.match(args.video):
        p.error(f"--video must look like 1280x768@24:5.2, not {args.video!r}")
    if args.variants < 1 or args.tasks < 0:
        p.error("--variants must be >= 1 and --tasks >= 0")
    args.scenarios = list(SCENARIOS) if args.scenarios == "all" else _names(args.scenarios)
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    return args


def _add_seed_kinds(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progressing",
        type=int,
        default=0,
        metavar="N",
        help="also seed N tasks that are PENDING 5 s, RUNNING 10 s, then SUCCEEDED",
    )
    p.add_argument("--listing-order", choices=ORDERS, default="newest", help="listing order")
    p.add_argument(
        "--scenarios",
        default="",
        metavar="NAMES",
        help=f"also seed these scenarios, comma-separated, or 'all': {', '.join(SCENARIOS)}",
    )
    p.add_argument(
        "--no-inputs",
        action="store_true",
        help="seeded tasks name no input asset (init_image null), as for benchmarks",
    )


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def seed(emu: Emulator, args: argparse.Namespace) -> list[str]:
    """Seed the tasks; many share the same few files on disk behind distinct URLs."""
    match = _VIDEO.match(args.video)
    assert match is not None
    w, h, fps, secs = match.groups()
    ids = []
    for i in range(args.tasks):
        spec = VideoSpec(int(w), int(h), int(fps), float(secs), i % args.variants, args.bitrate)
        prompt = _PROMPTS[i % len(_PROMPTS)]
        name = f"Gen-3 Alpha {1000 + i}, {' '.join(prompt.split()[:4]).rstrip(',')}"
        options = default_options(name, prompt, spec.seconds, None) if args.no_inputs else None
        ids.append(
            emu.add_task(
                video=spec, previews=args.previews, name=name, prompt=prompt, options=options
            )
        )
    if args.mix:
        ids += [emu.add_task(status, name=f"Gen-3 Alpha {status.lower()}") for status in _MIX]
    life = Lifecycle(pending=5, running=10, per="second", eta=5)
    ids += [
        emu.add_task(lifecycle=life, name=f"Gen-3 Alpha late {i}") for i in range(args.progressing)
    ]
    ids += [emu.add_scenario(name) for name in args.scenarios]
    return ids


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(emu: Emulator, ids: list[str], args: argparse.Namespace) -> None:
    if args.ids_out:
        _atomic_write(args.ids_out, "".join(f"{i}\n" for i in ids))
    if args.urls_out:
        urls = []
        for task_id in ids:
            for art in emu.task_json(task_id)["artifacts"]:
                urls.append(art["url"])
                urls.extend(art["previewUrls"])
        _atomic_write(args.urls_out, "".join(f"{u}\n" for u in urls))
    if args.manifest_out:
        _atomic_write(args.manifest_out, json.dumps(manifest(emu, ids)) + "\n")


def manifest(emu: Emulator, ids: list[str]) -> list[dict[str, object]]:
    """Per task, every output URL in the order of the JSON with its kind, size and served file."""
    tasks: list[dict[str, object]] = []
    for task_id in ids:
        data = emu.task_json(task_id)
        paths = iter(emu.media_of(task_id))
        assets = []
        for art in data["artifacts"]:
            kinds = [("artifact", art["url"])] + [("preview", u) for u in art["previewUrls"]]
            for kind, url in kinds:
                path = next(paths)
                assets.append(
                    {"kind": kind, "url": url, "bytes": path.stat().st_size, "path": str(path)}
                )
        tasks.append({"task_id": task_id, "status": data["status"], "assets": assets})
    return tasks


def _write_stats(emu: Emulator, path: Path, serial: int) -> None:
    _atomic_write(path, json.dumps({"serial": serial, "pid": os.getpid(), **emu.stats()}) + "\n")


async def serve(args: argparse.Namespace) -> None:
    media = MediaLibrary(args.cache or default_cache())
    emu = Emulator(media, token=args.token, url_ttl=args.url_ttl)
    emu.api_delay = args.api_delay
    emu.cdn_rate = args.cdn_rate
    emu.full_size_previews = args.full_previews
    emu.record_requests = not args.no_request_log
    emu.listing_order = args.listing_order
    # Seeding may render media for a while; do it off the loop, before listening.
    ids = await asyncio.to_thread(seed, emu, args)
    write_outputs(emu, ids, args)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    serial = 0
    if args.stats_file:

        def report() -> None:
            nonlocal serial
            serial += 1
            _write_stats(emu, args.stats_file, serial)

        loop.add_signal_handler(signal.SIGUSR1, report)
    async with emu:
        ready = json.dumps(
            {
                "api_url": emu.api_url,
                "cdn_url": emu.cdn_url,
                "uploads_url": emu.uploads_url,
                "token": emu.token,
                "pid": os.getpid(),
            }
        )
        if args.ready_file:
            _atomic_write(args.ready_file, ready + "\n")
        print(ready, flush=True)
        await done.wait()
    if args.stats_file:
        _write_stats(emu, args.stats_file, serial + 1)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
