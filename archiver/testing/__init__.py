"""A local useapi.net emulator with real media and switchable faults, for tests and demos.

Start it with `Emulator(MediaLibrary(cache_dir))`, or run `python -m archiver.testing`.
"""

from archiver.testing.faults import Seen
from archiver.testing.media import Media, MediaLibrary, VideoSpec
from archiver.testing.server import Emulator
from archiver.testing.tasks import ArtifactSpec

__all__ = ["ArtifactSpec", "Emulator", "Media", "MediaLibrary", "Seen", "VideoSpec"]
